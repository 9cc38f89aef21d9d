//! Loading a language model from one GGUF file.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::config::{RawConfig, RopeScaling};
use crate::error::{EngineError, Result};
use crate::loading::gguf::{
    fix_dense, map_tensor, reorder_qtensor_rows, unpermute_rows, GgufFile, TensorMapping,
};
use crate::loading::options::{DTypeChoice, LoadOptions};
use crate::models::decoder::{Decoder, QuantizedWeights, RowSource};

/// Bytes of memory the system can still give, from /proc/meminfo (Linux); None elsewhere.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resolves `--dtype` for a GGUF file: `(dtype of dense weights, keep quantized, description)`.
fn choose_dtype(choice: DTypeChoice, parameters: u64, models: usize) -> (DType, bool, String) {
    match choice {
        DTypeChoice::Float(d) => (d, false, format!("{d:?}").to_lowercase()),
        DTypeChoice::Quantized => (DType::F32, true, "q".into()),
        DTypeChoice::QuantizedInt8 => (DType::F32, true, "q8".into()),
        DTypeChoice::Auto => {
            // "Comfortably": all models together within half of the memory available now.
            let budget = available_memory().map_or(u64::MAX, |m| m / 2);
            let need = |bytes_per_weight: u64| parameters * bytes_per_weight * models.max(1) as u64;
            let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
            if need(4) <= budget {
                (
                    DType::F32,
                    false,
                    format!(
                        "f32 (auto: {:.1} GiB for {models} model(s) fits in memory)",
                        gib(need(4))
                    ),
                )
            } else if need(2) <= budget {
                (
                    DType::BF16,
                    false,
                    format!("bf16 (auto: f32 would need {:.1} GiB)", gib(need(4))),
                )
            } else {
                (
                    DType::F32,
                    true,
                    format!("q (auto: bf16 would need {:.1} GiB)", gib(need(2))),
                )
            }
        }
    }
}

const PROJECTIONS: &[&str] = &[
    "attn_q.weight",
    "attn_k.weight",
    "attn_v.weight",
    "attn_qkv.weight",
    "attn_output.weight",
    "ffn_gate.weight",
    "ffn_up.weight",
    "ffn_down.weight",
];

/// The decoder of a GGUF file, and how its weights were loaded (`--dtype`).
pub fn load_weights(path: &Path, options: &LoadOptions) -> Result<(Decoder, String)> {
    let mut gguf = GgufFile::open(path)?;
    let (_, spec) = gguf.spec()?;
    let raw = RawConfig::from_value(path, gguf.hf_config()?);
    let mut config = crate::models::parse_config(&raw)?;
    if let Some(factors) = gguf.rope_freq_factors()? {
        config.rope_full.scaling = RopeScaling::Factors(factors.clone());
        config.rope_sliding.scaling = RopeScaling::Factors(factors);
    }
    if let Some((short, long)) = gguf.long_rope_factors()? {
        let half = config.head_dim / 2;
        if short.len() != half || long.len() != half {
            return Err(EngineError::Weights {
                path: path.to_path_buf(),
                message: format!(
                    "rope_factors_short / rope_factors_long have {} and {} entries; head_dim / 2 is {half}",
                    short.len(),
                    long.len()
                ),
            });
        }
        let scaling =
            crate::models::gguf_long_rope(&gguf, short, long, config.max_position_embeddings)?;
        config.rope_full.scaling = scaling.clone();
        config.rope_sliding.scaling = scaling;
    }
    let names: Vec<String> = gguf.tensor_names().cloned().collect();
    let parameters: u64 = names.iter().filter_map(|n| gguf.tensor_elems(n)).sum();
    let (dtype, keep_quantized, described) =
        choose_dtype(options.dtype, parameters, options.models_in_memory);
    tracing::info!(model = %path.display(), dtype = %described, "loading GGUF weights");
    let device = &options.device;
    let mut dense = HashMap::new();
    let mut quantized = QuantizedWeights {
        activations: match options.dtype {
            DTypeChoice::QuantizedInt8 => crate::models::decoder::Activations::Int8,
            _ => crate::models::decoder::Activations::F32,
        },
        ..Default::default()
    };
    for name in &names {
        let Some(mapping) = map_tensor(name, spec, config.num_heads, config.num_kv_heads) else {
            continue;
        };
        let float = matches!(
            gguf.tensor_type(name),
            Some(GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
        );
        let projection = PROJECTIONS.iter().any(|p| name.ends_with(p))
            || name == "output.weight"
            || name == "token_embd.weight";
        let q = gguf.qtensor(name, device)?;
        if keep_quantized && projection && !float {
            let q = match mapping.unpermute_heads {
                Some(heads) => {
                    reorder_qtensor_rows(&q, &unpermute_rows(q.shape().dims()[0], heads), device)?
                }
                None => q,
            };
            quantized.insert(mapping.hf_name, q)?;
        } else {
            dense.insert(mapping.hf_name.clone(), (q, mapping));
        }
    }
    tracing::debug!(
        tensors = quantized.tiled.len(),
        "Q4_0 projections repacked eight rows at a time for q8"
    );
    let dense = Arc::new(Dequantizing(dense));
    let vb = VarBuilder::from_backend(Box::new(Shared(dense.clone())), dtype, device.clone());
    let rows = (dtype == DType::F32).then_some(&*dense as &dyn RowSource);
    let decoder =
        Decoder::load(config, vb, keep_quantized.then_some(&quantized), rows).map_err(|e| {
            EngineError::Weights {
                path: path.to_path_buf(),
                message: format!("{e} (is this a complete model file?)"),
            }
        })?;
    Ok((decoder, described))
}

/// GGUF tensors the decoder takes dense, dequantized only when it asks for
/// each: the decoder packs its projections as it loads them, and holding every
/// dequantized tensor until the end of loading as well doubled the peak (a
/// 262,144-token embedding is 671 MB in f32).
struct Dequantizing(HashMap<String, (QTensor, TensorMapping)>);

impl Dequantizing {
    fn tensor(&self, name: &str, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        let (q, mapping) = self.0.get(name).ok_or_else(|| {
            candle_core::Error::CannotFindTensor {
                path: name.to_string(),
            }
            .bt()
        })?;
        fix_dense(q.dequantize(device)?, mapping)
            .map_err(|e| candle_core::Error::Msg(format!("{name}: {e}")))?
            .to_dtype(dtype)
    }
}

impl RowSource for Dequantizing {
    fn shape(&self, name: &str) -> Option<(usize, usize)> {
        let (q, mapping) = self.0.get(name)?;
        // Reordered or offset tensors go through the whole-tensor path.
        if mapping.unpermute_heads.is_some() || mapping.minus_one {
            return None;
        }
        q.shape().dims2().ok()
    }

    fn rows(&self, name: &str, r0: usize, rows: usize) -> candle_core::Result<Vec<f32>> {
        let (q, _) = self.0.get(name).ok_or_else(|| {
            candle_core::Error::CannotFindTensor {
                path: name.to_string(),
            }
            .bt()
        })?;
        let (n, k) = q.shape().dims2()?;
        if r0 + rows > n {
            candle_core::bail!("{name}: rows {r0}..{} of {n}", r0 + rows);
        }
        let data = q.data()?;
        let row_bytes = data.len() / n;
        let bytes = &data[r0 * row_bytes..(r0 + rows) * row_bytes];
        let device = q.device();
        let storage = QStorage::from_data(Cow::Borrowed(bytes), &device, q.dtype())?;
        QTensor::new(storage, (rows, k))?
            .dequantize(&device)?
            .flatten_all()?
            .to_vec1::<f32>()
    }
}

/// The one [`Dequantizing`] both the variable builder and the row source read.
struct Shared(Arc<Dequantizing>);

impl SimpleBackend for Shared {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let tensor = self.0.tensor(name, dtype, device)?;
        if tensor.shape() != &shape {
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: shape,
                got: tensor.shape().clone(),
            }
            .bt());
        }
        Ok(tensor)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0.tensor(name, dtype, device)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0 .0.contains_key(name)
    }
}
