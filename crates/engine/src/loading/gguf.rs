//! GGUF files as model references: hyper-parameters, weights, tokenizer and
//! chat template all come from the file. Tensors are renamed to Hugging Face
//! names and undone where llama.cpp changed them (Llama's Q/K row permutation,
//! Gemma's norms stored as 1 + w), so the same decoder runs them.

use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{Device, Tensor};

use crate::error::{EngineError, Result};

pub struct GgufFile {
    pub path: PathBuf,
    content: Content,
    file: File,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let err = |message: String| EngineError::Weights {
            path: path.to_path_buf(),
            message,
        };
        let mut file = File::open(path).map_err(|source| EngineError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let content = Content::read(&mut file).map_err(|e| {
            err(format!(
                "not a readable GGUF file (truncated, or an unsupported tensor type?): {e}"
            ))
        })?;
        let file_len = file
            .metadata()
            .map_err(|source| EngineError::Io {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        for (name, info) in &content.tensor_infos {
            let bytes = info.shape.elem_count() / info.ggml_dtype.block_size()
                * info.ggml_dtype.type_size();
            let end = content.tensor_data_offset + info.offset + bytes as u64;
            if end > file_len {
                return Err(err(format!(
                    "truncated: tensor `{name}` ends at byte {end} but the file has {file_len} bytes; download the file again"
                )));
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            content,
            file,
        })
    }

    pub(crate) fn error(&self, key: &str, message: impl Into<String>) -> EngineError {
        EngineError::Config {
            path: self.path.clone(),
            field: key.to_string(),
            message: message.into(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    pub fn architecture(&self) -> Result<String> {
        self.string("general.architecture")
    }

    pub fn string(&self, key: &str) -> Result<String> {
        match self.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(self.error(key, "expected a string")),
            None => Err(self.error(key, "missing from the GGUF metadata")),
        }
    }

    pub fn opt_string(&self, key: &str) -> Option<String> {
        match self.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        }
    }

    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        self.get(key)
            .map(|v| {
                v.to_u64()
                    .or_else(|_| v.to_u32().map(u64::from))
                    .or_else(|_| v.to_i32().map(|x| x as u64))
                    .map_err(|_| self.error(key, "expected an integer"))
            })
            .transpose()
    }

    pub fn u64(&self, key: &str) -> Result<u64> {
        self.opt_u64(key)?
            .ok_or_else(|| self.error(key, "missing from the GGUF metadata"))
    }

    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        self.get(key)
            .map(|v| {
                v.to_f32()
                    .map(f64::from)
                    .or_else(|_| v.to_f64())
                    .map_err(|_| self.error(key, "expected a number"))
            })
            .transpose()
    }

    pub fn opt_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(|v| v.to_bool().ok())
    }

    /// An array value, None when the key is absent.
    fn array(&self, key: &str) -> Result<Option<&Vec<Value>>> {
        self.get(key)
            .map(|v| v.to_vec().map_err(|_| self.error(key, "expected an array")))
            .transpose()
    }

    pub fn strings(&self, key: &str) -> Result<Vec<String>> {
        let values = self
            .array(key)?
            .ok_or_else(|| self.error(key, "missing from the GGUF metadata"))?;
        values
            .iter()
            .map(|v| {
                v.to_string()
                    .cloned()
                    .map_err(|_| self.error(key, "expected an array of strings"))
            })
            .collect()
    }

    pub fn numbers(&self, key: &str) -> Result<Option<Vec<f64>>> {
        let Some(values) = self.array(key)? else {
            return Ok(None);
        };
        values
            .iter()
            .map(|v| {
                v.to_f32()
                    .map(f64::from)
                    .or_else(|_| v.to_i32().map(f64::from))
                    .or_else(|_| v.to_u32().map(f64::from))
                    .map_err(|_| self.error(key, "expected an array of numbers"))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    pub fn tensor_names(&self) -> impl Iterator<Item = &String> {
        self.content.tensor_infos.keys()
    }

    pub fn tensor_elems(&self, name: &str) -> Option<u64> {
        self.content
            .tensor_infos
            .get(name)
            .map(|i| i.shape.elem_count() as u64)
    }

    pub fn tensor_type(&self, name: &str) -> Option<GgmlDType> {
        self.content.tensor_infos.get(name).map(|i| i.ggml_dtype)
    }

    pub fn qtensor(&mut self, name: &str, device: &Device) -> Result<QTensor> {
        self.content
            .tensor(&mut self.file, name, device)
            .map_err(|e| EngineError::Weights {
                path: self.path.clone(),
                message: format!("tensor `{name}`: {e}"),
            })
    }

    /// Gemma 3 layer kinds: `sliding_window_pattern` as a per-layer bool array
    /// (true = sliding) or an integer n (every n-th layer full); llama.cpp's default is 6.
    pub(crate) fn sliding_pattern(&self, key: &str, layers: u64) -> Result<Vec<&'static str>> {
        let kind = |sliding: bool| {
            if sliding {
                "sliding_attention"
            } else {
                "full_attention"
            }
        };
        if let Some(Value::Array(items)) = self.get(key) {
            let flags: Vec<bool> = items
                .iter()
                .map(|v| {
                    v.to_bool()
                        .map_err(|_| self.error(key, "expected booleans"))
                })
                .collect::<Result<_>>()?;
            if flags.len() as u64 != layers {
                return Err(self.error(
                    key,
                    format!("has {} entries for {layers} layers", flags.len()),
                ));
            }
            return Ok(flags.into_iter().map(kind).collect());
        }
        let n = self.opt_u64(key)?.unwrap_or(6).max(1);
        Ok((0..layers).map(|i| kind((i + 1) % n != 0)).collect())
    }

    /// LongRoPE's short and long divisors (`rope_factors_short` / `_long`, how
    /// llama.cpp stores Phi-3's long-context rope), when the file has them.
    pub fn long_rope_factors(&mut self) -> Result<Option<(Vec<f32>, Vec<f32>)>> {
        if !self.has_tensor("rope_factors_long.weight") {
            return Ok(None);
        }
        let mut read = |name: &str| -> Result<Vec<f32>> {
            let t = self.qtensor(name, &Device::Cpu)?.dequantize(&Device::Cpu)?;
            Ok(t.flatten_all()?.to_vec1::<f32>()?)
        };
        Ok(Some((
            read("rope_factors_short.weight")?,
            read("rope_factors_long.weight")?,
        )))
    }

    /// Per-frequency rope divisors (`rope_freqs.weight`, how llama.cpp stores Llama 3 scaling).
    pub fn rope_freq_factors(&mut self) -> Result<Option<Vec<f32>>> {
        if !self.has_tensor("rope_freqs.weight") {
            return Ok(None);
        }
        let t = self
            .qtensor("rope_freqs.weight", &Device::Cpu)?
            .dequantize(&Device::Cpu)?;
        Ok(Some(t.flatten_all()?.to_vec1::<f32>()?))
    }
}

/// What reading an architecture from GGUF takes: llama.cpp's name for it,
/// what its converter changed, and the metadata that becomes config.json.
pub(crate) struct GgufSpec {
    /// `general.architecture` as llama.cpp writes it.
    pub name: &'static str,
    /// A metadata key (after `{name}.`) that must be present for this row,
    /// for architectures llama.cpp writes under another's name (Mistral as `llama`).
    pub requires_key: Option<&'static str>,
    /// The converter permuted Q/K rows for its rope layout; undone on load.
    pub permuted_qk: bool,
    /// Norm weights are stored as 1 + w where Hugging Face stores w.
    pub norms_plus_one: bool,
    /// `ffn_norm` is the norm before the MLP of a pre+post ("sandwich") layer,
    /// not the post-attention norm of a pre-norm layer.
    pub sandwich_norms: bool,
    /// `ffn_up` holds the gate and up projections together (Phi-3's `gate_up_proj`).
    pub fused_gate_up: bool,
    /// rope_theta when the file gives none.
    pub default_rope_theta: f64,
    /// Architecture-specific keys from the metadata into the config (after the common ones).
    pub config: Option<fn(&GgufFile, &mut serde_json::Value) -> Result<()>>,
}

impl GgufSpec {
    pub(crate) const fn plain(name: &'static str, default_rope_theta: f64) -> Self {
        Self {
            name,
            requires_key: None,
            permuted_qk: false,
            norms_plus_one: false,
            sandwich_norms: false,
            fused_gate_up: false,
            default_rope_theta,
            config: None,
        }
    }
}

/// How a GGUF tensor maps to a Hugging Face one.
pub struct TensorMapping {
    pub hf_name: String,
    /// Undo llama.cpp's Q/K row permutation with this many heads.
    pub unpermute_heads: Option<usize>,
    /// Stored as 1 + w (Gemma norms): subtract one.
    pub minus_one: bool,
}

/// The Hugging Face name of a GGUF tensor, or None for tensors the decoder does not use.
pub(crate) fn map_tensor(
    name: &str,
    spec: &GgufSpec,
    heads: usize,
    kv_heads: usize,
) -> Option<TensorMapping> {
    let sandwich = spec.sandwich_norms;
    let map = |hf: String, minus_one: bool| {
        Some(TensorMapping {
            hf_name: hf,
            unpermute_heads: None,
            minus_one: minus_one && spec.norms_plus_one,
        })
    };
    match name {
        "token_embd.weight" => return map("model.embed_tokens.weight".into(), false),
        "output_norm.weight" => return map("model.norm.weight".into(), true),
        "output.weight" => return map("lm_head.weight".into(), false),
        _ => {}
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, leaf) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (stem, kind) = leaf.rsplit_once('.')?;
    let p = format!("model.layers.{layer}");
    let hf = |s: &str| format!("{p}.{s}.{kind}");
    let permute = spec.permuted_qk;
    match stem {
        "attn_norm" => map(hf("input_layernorm"), true),
        "ffn_norm" if sandwich => map(hf("pre_feedforward_layernorm"), true),
        "ffn_norm" => map(hf("post_attention_layernorm"), false),
        "post_attention_norm" => map(hf("post_attention_layernorm"), true),
        "post_ffw_norm" => map(hf("post_feedforward_layernorm"), true),
        "attn_q_norm" => map(hf("self_attn.q_norm"), true),
        "attn_k_norm" => map(hf("self_attn.k_norm"), true),
        "attn_q" => Some(TensorMapping {
            hf_name: hf("self_attn.q_proj"),
            unpermute_heads: permute.then_some(heads),
            minus_one: false,
        }),
        "attn_k" => Some(TensorMapping {
            hf_name: hf("self_attn.k_proj"),
            unpermute_heads: permute.then_some(kv_heads),
            minus_one: false,
        }),
        "attn_v" => map(hf("self_attn.v_proj"), false),
        "attn_qkv" => map(hf("self_attn.qkv_proj"), false),
        "ffn_up" if spec.fused_gate_up => map(hf("mlp.gate_up_proj"), false),
        "attn_output" => map(hf("self_attn.o_proj"), false),
        "ffn_gate" => map(hf("mlp.gate_proj"), false),
        "ffn_up" => map(hf("mlp.up_proj"), false),
        "ffn_down" => map(hf("mlp.down_proj"), false),
        _ => None,
    }
}

/// Row order that undoes llama.cpp's permutation: Hugging Face row r of a head
/// (half j, index i) is GGUF row 2i + j of that head.
pub fn unpermute_rows(rows: usize, heads: usize) -> Vec<usize> {
    let head_dim = rows / heads;
    let half = head_dim / 2;
    (0..rows)
        .map(|r| {
            let (h, rem) = (r / head_dim, r % head_dim);
            let (j, i) = (rem / half, rem % half);
            h * head_dim + 2 * i + j
        })
        .collect()
}

/// The rows `order` of a (possibly quantized) tensor, in that order, without
/// dequantizing (a permutation, or a subset: one part of a fused projection):
/// a row of blocks is contiguous, so rows move as byte ranges.
pub fn reorder_qtensor_rows(t: &QTensor, order: &[usize], device: &Device) -> Result<QTensor> {
    let mut dims = t.shape().dims().to_vec();
    let data = t.data()?;
    let row_bytes = data.len() / dims[0];
    let mut out = Vec::with_capacity(data.len());
    for &src in order {
        out.extend_from_slice(&data[src * row_bytes..(src + 1) * row_bytes]);
    }
    let storage = QStorage::from_data(std::borrow::Cow::Owned(out), device, t.dtype())?;
    dims[0] = order.len();
    Ok(QTensor::new(storage, dims)?)
}

/// Applies a mapping to a dequantized tensor.
pub fn fix_dense(t: Tensor, m: &TensorMapping) -> Result<Tensor> {
    let t = match m.unpermute_heads {
        Some(heads) => {
            let order: Vec<u32> = unpermute_rows(t.dim(0)?, heads)
                .into_iter()
                .map(|x| x as u32)
                .collect();
            let idx = Tensor::new(order.as_slice(), t.device())?;
            t.index_select(&idx, 0)?
        }
        None => t,
    };
    Ok(if m.minus_one { (t - 1.0)? } else { t })
}
