//! Model configuration: the Hugging Face `config.json` read leniently (older and
//! newer key spellings), turned into a checked [`ModelConfig`] the decoder trusts.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{EngineError, Result};

/// The model families the engine runs (their registry, with each one's
/// switches, is `models::REGISTRY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Mistral,
    Qwen2,
    Gemma3,
    Qwen3,
    Olmo2,
    Gemma2,
    Phi3,
}

/// A raw `config.json`, with typed getters whose errors name the file and field.
pub struct RawConfig {
    pub path: PathBuf,
    pub value: Value,
}

impl RawConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let value = crate::error::read_json(path)?;
        if !value.is_object() {
            return Err(EngineError::config(
                path,
                "<root>",
                "expected a JSON object",
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            value,
        })
    }

    pub fn from_value(path: &Path, value: Value) -> Self {
        Self {
            path: path.to_path_buf(),
            value,
        }
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.value.get(field).filter(|v| !v.is_null())
    }

    pub fn error(&self, field: &str, message: impl Into<String>) -> EngineError {
        EngineError::config(&self.path, field, message)
    }

    pub fn usize(&self, field: &str) -> Result<usize> {
        self.opt_usize(field)?
            .ok_or_else(|| self.error(field, "missing; the model's config.json must set it"))
    }

    pub fn opt_usize(&self, field: &str) -> Result<Option<usize>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v.as_u64().map(|n| Some(n as usize)).ok_or_else(|| {
                self.error(field, format!("expected a non-negative integer, found {v}"))
            }),
        }
    }

    pub fn opt_f64(&self, field: &str) -> Result<Option<f64>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.error(field, format!("expected a number, found {v}"))),
        }
    }

    pub fn opt_bool(&self, field: &str) -> Result<Option<bool>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.error(field, format!("expected true or false, found {v}"))),
        }
    }

    pub fn opt_str(&self, field: &str) -> Result<Option<&str>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.error(field, format!("expected a string, found {v}"))),
        }
    }

    /// Token ids given as one integer or a list of integers (`eos_token_id`).
    pub fn token_ids(&self, field: &str) -> Result<Vec<u32>> {
        token_ids_of(self.get(field))
            .ok_or_else(|| self.error(field, "expected a token id or a list of token ids"))
    }
}

pub(crate) fn token_ids_of(value: Option<&Value>) -> Option<Vec<u32>> {
    match value {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Number(n)) => n.as_u64().map(|n| vec![n as u32]),
        Some(Value::Array(items)) => items.iter().map(|v| v.as_u64().map(|n| n as u32)).collect(),
        Some(_) => None,
    }
}

/// How rotary position embeddings are scaled (transformers' `rope_type`).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    Default,
    Linear {
        factor: f64,
    },
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
    /// Each inverse frequency divided by its own factor (llama.cpp's `rope_freqs.weight`).
    Factors(Vec<f32>),
    /// Phi-3's LongRoPE: per-frequency divisors, `short` for sequences of at
    /// most `original_max_position_embeddings` positions and `long` beyond,
    /// with cos and sin scaled by `attention_factor`.
    LongRope {
        short: Vec<f32>,
        long: Vec<f32>,
        original_max_position_embeddings: usize,
        attention_factor: f64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct RopeConfig {
    pub theta: f64,
    pub scaling: RopeScaling,
}

/// The attention pattern of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerAttention {
    Full,
    /// A query at position i sees keys j with i - window < j <= i.
    Sliding(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    GeluTanh,
}

/// A checked configuration: every field the decoder needs, validated.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    pub tie_word_embeddings: bool,
    pub qkv_bias: bool,
    pub o_bias: bool,
    pub mlp_bias: bool,
    pub activation: Activation,
    pub layers: Vec<LayerAttention>,
    pub rope_full: RopeConfig,
    pub rope_sliding: RopeConfig,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    /// What this architecture's decoder does beyond Llama's.
    pub switches: DecoderSwitches,
}

/// Where a decoder layer's RMSNorms sit around attention and the MLP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NormPlacement {
    /// Before each block only (Llama, Mistral, Qwen2): input_layernorm feeds
    /// attention, post_attention_layernorm feeds the MLP.
    #[default]
    Pre,
    /// Before and after each block (Gemma 2 and 3): input_layernorm and
    /// post_attention_layernorm around attention, pre_/post_feedforward_layernorm
    /// around the MLP.
    PreAndPost,
    /// After each block only (OLMo 2): post_attention_layernorm normalises the
    /// attention output and post_feedforward_layernorm the MLP output, each
    /// before its residual add; blocks see the raw residual stream.
    Post,
}

/// How queries and keys are normalised before rope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QkNorm {
    #[default]
    None,
    /// An RMSNorm of head_dim on each query and key head (Gemma 3, Qwen3).
    PerHead,
    /// An RMSNorm over the whole query and key projections, before the heads
    /// are split (OLMo 2).
    Whole,
}

/// The decoder's switches, named by what they do; every architecture sets
/// the ones it needs and leaves the rest at Llama's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecoderSwitches {
    /// RMSNorm scales by (1 + weight) rather than weight (Gemma).
    pub norm_weight_offset: bool,
    pub norms: NormPlacement,
    pub qk_norm: QkNorm,
    /// Embeddings are multiplied by this (Gemma: sqrt(hidden_size)).
    pub embed_scale: Option<f64>,
    /// Attention scores are scaled by this number to the power -1/2 (default: head_dim).
    pub query_pre_attn_scalar: Option<f64>,
    /// tanh soft-capping of attention logits and of the final logits at these values.
    pub attn_logit_softcapping: Option<f64>,
    pub final_logit_softcapping: Option<f64>,
    /// Queries, keys and values come from one `qkv_proj` (Phi-3), split by rows on load.
    pub fused_qkv: bool,
    /// Gate and up projections are one `gate_up_proj` (Phi-3), split by rows on load.
    pub fused_gate_up: bool,
}

impl DecoderSwitches {
    /// What this decoder does beyond Llama's, in words (for `inspect`).
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self.norms {
            NormPlacement::Pre => out.push("pre-norm".to_string()),
            NormPlacement::PreAndPost => out.push("norms before and after each block".into()),
            NormPlacement::Post => out.push("norms after each block only".into()),
        }
        if self.norm_weight_offset {
            out.push("RMSNorm scaled by 1 + w".into());
        }
        match self.qk_norm {
            QkNorm::None => {}
            QkNorm::PerHead => out.push("q/k RMSNorm per head".into()),
            QkNorm::Whole => out.push("q/k RMSNorm over the whole projection".into()),
        }
        if let Some(scale) = self.embed_scale {
            out.push(format!("embeddings x{scale:.3}"));
        }
        if let Some(q) = self.query_pre_attn_scalar {
            out.push(format!("query_pre_attn_scalar {q}"));
        }
        if let Some(cap) = self.attn_logit_softcapping {
            out.push(format!("attention logits soft-capped at {cap}"));
        }
        if let Some(cap) = self.final_logit_softcapping {
            out.push(format!("final logits soft-capped at {cap}"));
        }
        if self.fused_qkv {
            out.push("fused qkv_proj".into());
        }
        if self.fused_gate_up {
            out.push("fused gate_up_proj".into());
        }
        out
    }
}

impl ModelConfig {
    pub fn rope_for(&self, layer: LayerAttention) -> &RopeConfig {
        match layer {
            LayerAttention::Full => &self.rope_full,
            LayerAttention::Sliding(_) => &self.rope_sliding,
        }
    }

    /// The fields every supported decoder shares, read with Llama's defaults.
    pub fn common(raw: &RawConfig, architecture: Architecture) -> Result<Self> {
        let hidden_size = raw.usize("hidden_size")?;
        let num_heads = raw.usize("num_attention_heads")?;
        if num_heads == 0 {
            return Err(raw.error("num_attention_heads", "must be positive"));
        }
        let num_kv_heads = raw.opt_usize("num_key_value_heads")?.unwrap_or(num_heads);
        if num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(raw.error(
                "num_key_value_heads",
                format!(
                    "{num_kv_heads} must be positive and divide num_attention_heads ({num_heads})"
                ),
            ));
        }
        let head_dim = match raw.opt_usize("head_dim")? {
            Some(d) => d,
            None => {
                if hidden_size % num_heads != 0 {
                    return Err(raw.error(
                        "hidden_size",
                        format!("{hidden_size} is not divisible by num_attention_heads ({num_heads}); set head_dim"),
                    ));
                }
                hidden_size / num_heads
            }
        };
        if head_dim % 2 != 0 {
            return Err(raw.error(
                "head_dim",
                format!("{head_dim} must be even for rotary embeddings"),
            ));
        }
        let num_layers = raw.usize("num_hidden_layers")?;
        let (rope_full, rope_sliding) = parse_rope(raw)?;
        for rope in [&rope_full, &rope_sliding] {
            if let RopeScaling::LongRope { short, long, .. } = &rope.scaling {
                if short.len() != head_dim / 2 || long.len() != head_dim / 2 {
                    return Err(raw.error(
                        "rope_parameters",
                        format!(
                            "LongRoPE short_factor and long_factor need head_dim / 2 = {} entries each, found {} and {}",
                            head_dim / 2,
                            short.len(),
                            long.len()
                        ),
                    ));
                }
            }
        }
        let attention_bias = raw.opt_bool("attention_bias")?.unwrap_or(false);
        let activation = match raw.opt_str("hidden_act")?.unwrap_or("silu") {
            "silu" | "swish" => Activation::Silu,
            "gelu_pytorch_tanh" | "gelu_tanh" => Activation::GeluTanh,
            other => {
                return Err(raw.error(
                    "hidden_act",
                    format!("unsupported activation `{other}`; supported: silu, gelu_pytorch_tanh"),
                ))
            }
        };
        Ok(Self {
            architecture,
            hidden_size,
            intermediate_size: raw.usize("intermediate_size")?,
            num_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            vocab_size: raw.usize("vocab_size")?,
            max_position_embeddings: raw.opt_usize("max_position_embeddings")?.unwrap_or(2048),
            rms_norm_eps: raw.opt_f64("rms_norm_eps")?.unwrap_or(1e-6),
            tie_word_embeddings: raw.opt_bool("tie_word_embeddings")?.unwrap_or(false),
            qkv_bias: attention_bias,
            o_bias: attention_bias,
            mlp_bias: raw.opt_bool("mlp_bias")?.unwrap_or(false),
            activation,
            layers: vec![LayerAttention::Full; num_layers],
            rope_full,
            rope_sliding,
            bos_token_id: raw.opt_usize("bos_token_id")?.map(|n| n as u32),
            eos_token_ids: raw.token_ids("eos_token_id")?,
            switches: DecoderSwitches::default(),
        })
    }

    /// Applies transformers' `layer_types` list when the config has one.
    pub fn apply_layer_types(&mut self, raw: &RawConfig, window: Option<usize>) -> Result<bool> {
        let Some(types) = raw.get("layer_types") else {
            return Ok(false);
        };
        let types = types
            .as_array()
            .ok_or_else(|| raw.error("layer_types", "expected a list of strings"))?;
        if types.len() != self.num_layers {
            return Err(raw.error(
                "layer_types",
                format!(
                    "has {} entries but num_hidden_layers is {}",
                    types.len(),
                    self.num_layers
                ),
            ));
        }
        for (i, t) in types.iter().enumerate() {
            self.layers[i] = match t.as_str() {
                Some("full_attention") => LayerAttention::Full,
                Some("sliding_attention") => LayerAttention::Sliding(window.ok_or_else(|| {
                    raw.error(
                        "sliding_window",
                        "layer_types has sliding_attention layers but no window is set",
                    )
                })?),
                _ => {
                    return Err(raw.error(
                        &format!("layer_types[{i}]"),
                        format!(
                        "unsupported layer type {t}; expected full_attention or sliding_attention"
                    ),
                    ))
                }
            };
        }
        Ok(true)
    }
}

/// Reads rope settings from `rope_parameters` (transformers >= 5, flat or keyed
/// by layer type) or from the older `rope_theta` + `rope_scaling`.
pub(crate) fn parse_rope(raw: &RawConfig) -> Result<(RopeConfig, RopeConfig)> {
    let default_theta = raw.opt_f64("rope_theta")?.unwrap_or(10_000.0);
    if let Some(params) = raw.get("rope_parameters") {
        let obj = params
            .as_object()
            .ok_or_else(|| raw.error("rope_parameters", "expected an object"))?;
        let per_layer = obj.contains_key("full_attention") || obj.contains_key("sliding_attention");
        if per_layer {
            let full = match obj.get("full_attention") {
                Some(v) => {
                    parse_rope_object(raw, "rope_parameters.full_attention", v, default_theta)?
                }
                None => RopeConfig {
                    theta: default_theta,
                    scaling: RopeScaling::Default,
                },
            };
            let sliding = match obj.get("sliding_attention") {
                Some(v) => {
                    parse_rope_object(raw, "rope_parameters.sliding_attention", v, default_theta)?
                }
                None => full.clone(),
            };
            return Ok((full, sliding));
        }
        let rope = parse_rope_object(raw, "rope_parameters", params, default_theta)?;
        return Ok((rope.clone(), rope));
    }
    let rope = match raw.get("rope_scaling") {
        None => RopeConfig {
            theta: default_theta,
            scaling: RopeScaling::Default,
        },
        Some(v) => parse_rope_object(raw, "rope_scaling", v, default_theta)?,
    };
    Ok((rope.clone(), rope))
}

pub(crate) fn parse_rope_object(
    raw: &RawConfig,
    field: &str,
    value: &Value,
    default_theta: f64,
) -> Result<RopeConfig> {
    let obj = value
        .as_object()
        .ok_or_else(|| raw.error(field, "expected an object"))?;
    let number = |key: &str| -> Result<Option<f64>> {
        match obj.get(key).filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                raw.error(
                    &format!("{field}.{key}"),
                    format!("expected a number, found {v}"),
                )
            }),
        }
    };
    let required = |key: &str| -> Result<f64> {
        number(key)?.ok_or_else(|| raw.error(&format!("{field}.{key}"), "missing"))
    };
    let theta = number("rope_theta")?.unwrap_or(default_theta);
    if let Some(p) = number("partial_rotary_factor")? {
        if p != 1.0 {
            return Err(raw.error(
                &format!("{field}.partial_rotary_factor"),
                format!("{p} is not supported (only 1.0)"),
            ));
        }
    }
    let kind = obj
        .get("rope_type")
        .or_else(|| obj.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let scaling = match kind {
        "default" => RopeScaling::Default,
        "linear" => RopeScaling::Linear {
            factor: required("factor")?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: required("factor")?,
            low_freq_factor: required("low_freq_factor")?,
            high_freq_factor: required("high_freq_factor")?,
            original_max_position_embeddings: required("original_max_position_embeddings")?,
        },
        // "su" is LongRoPE's name in the first Phi-3 long-context configs.
        "longrope" | "su" => long_rope(raw, field, obj, number)?,
        other => {
            return Err(raw.error(
                &format!("{field}.rope_type"),
                format!(
                    "unsupported rope type `{other}`; supported: default, linear, llama3, longrope"
                ),
            ))
        }
    };
    Ok(RopeConfig { theta, scaling })
}

/// LongRoPE's default attention factor, as transformers sets it: 1 up to the
/// original context, else sqrt(1 + ln(factor) / ln(original)).
pub(crate) fn long_rope_attention_factor(factor: f64, original: usize) -> f64 {
    if factor <= 1.0 {
        1.0
    } else {
        (1.0 + factor.ln() / (original as f64).ln()).sqrt()
    }
}

/// LongRoPE as transformers computes it: the original context from the rope
/// object or the config's top level; `factor` defaulting to the ratio of the
/// context to the original one, and `attention_factor` to
/// sqrt(1 + ln(factor) / ln(original)) when the factor exceeds 1.
fn long_rope(
    raw: &RawConfig,
    field: &str,
    obj: &serde_json::Map<String, Value>,
    number: impl Fn(&str) -> Result<Option<f64>>,
) -> Result<RopeScaling> {
    let factors = |key: &str| -> Result<Vec<f32>> {
        let name = format!("{field}.{key}");
        let items = obj
            .get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| raw.error(&name, "missing; LongRoPE needs a list of numbers"))?;
        items
            .iter()
            .map(|v| {
                v.as_f64()
                    .map(|x| x as f32)
                    .ok_or_else(|| raw.error(&name, format!("expected numbers, found {v}")))
            })
            .collect()
    };
    let original = match number("original_max_position_embeddings")? {
        Some(n) => n as usize,
        None => raw.usize("original_max_position_embeddings")?,
    };
    if original == 0 {
        return Err(raw.error("original_max_position_embeddings", "must be positive"));
    }
    let factor = match number("factor")? {
        Some(f) => f,
        None => raw.usize("max_position_embeddings")? as f64 / original as f64,
    };
    let attention_factor = match number("attention_factor")? {
        Some(a) => a,
        None => long_rope_attention_factor(factor, original),
    };
    Ok(RopeScaling::LongRope {
        short: factors("short_factor")?,
        long: factors("long_factor")?,
        original_max_position_embeddings: original,
        attention_factor,
    })
}
