//! Phi-3 and Phi-3.5 (mini, medium): fused `qkv_proj` and `gate_up_proj`
//! (split by rows on load), no bias, an optional sliding window on every
//! layer, and LongRoPE (short and long factors) for the long-context models.

use crate::config::{LayerAttention, ModelConfig, RawConfig, RopeScaling};
use crate::error::Result;
use crate::models::Architecture;

pub fn config(raw: &RawConfig) -> Result<ModelConfig> {
    if let Some(p) = raw.opt_f64("partial_rotary_factor")? {
        if p != 1.0 {
            return Err(raw.error(
                "partial_rotary_factor",
                format!("{p} is not supported (only 1.0: Phi-3 and Phi-3.5, not Phi-4-mini)"),
            ));
        }
    }
    let mut config = ModelConfig::common(raw, Architecture::Phi3)?;
    config.qkv_bias = false;
    config.o_bias = false;
    config.rms_norm_eps = raw.opt_f64("rms_norm_eps")?.unwrap_or(1e-5);
    config.max_position_embeddings = raw.opt_usize("max_position_embeddings")?.unwrap_or(4096);
    if let Some(window) = raw.opt_usize("sliding_window")? {
        if window == 0 {
            return Err(raw.error("sliding_window", "must be positive or null"));
        }
        config.layers = vec![LayerAttention::Sliding(window); config.num_layers];
    }
    config.switches.fused_qkv = true;
    config.switches.fused_gate_up = true;
    Ok(config)
}

/// The Phi-3 keys llama.cpp's converter writes beyond the common ones: a
/// sliding window of 0 means none.
pub(crate) fn gguf_config(
    _: &crate::loading::gguf::GgufFile,
    c: &mut serde_json::Value,
) -> Result<()> {
    if c.get("sliding_window").and_then(|w| w.as_u64()) == Some(0) {
        c["sliding_window"] = serde_json::Value::Null;
    }
    Ok(())
}

/// LongRoPE from a GGUF file's `rope_factors_short` / `rope_factors_long`
/// tensors, its original context and attention factor (computed as
/// transformers does where the file gives none).
pub(crate) fn gguf_long_rope(
    g: &crate::loading::gguf::GgufFile,
    short: Vec<f32>,
    long: Vec<f32>,
    context: usize,
) -> Result<RopeScaling> {
    let original = g
        .opt_u64("phi3.rope.scaling.original_context_length")?
        .unwrap_or(context as u64) as usize;
    let factor = context as f64 / original.max(1) as f64;
    let attention_factor = match g.opt_f64("phi3.rope.scaling.attn_factor")? {
        Some(a) => a,
        None => crate::config::long_rope_attention_factor(factor, original),
    };
    Ok(RopeScaling::LongRope {
        short,
        long,
        original_max_position_embeddings: original,
        attention_factor,
    })
}
