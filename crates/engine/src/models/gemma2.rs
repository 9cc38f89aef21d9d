//! Gemma 2: sliding and global layers alternating (sliding first), tanh
//! soft-capping of attention logits and final logits, sandwich norms,
//! (1 + w) RMSNorm, scaled embeddings, gelu-tanh MLP and
//! `query_pre_attn_scalar`; one rope for every layer.

use crate::config::{DecoderSwitches, LayerAttention, ModelConfig, NormPlacement, RawConfig};
use crate::error::Result;
use crate::models::{gemma3, Architecture};

pub fn config(raw: &RawConfig) -> Result<ModelConfig> {
    let mut config = ModelConfig::common(raw, Architecture::Gemma2)?;
    config.activation = gemma3::activation(raw, "Gemma 2")?;
    config.head_dim = raw.opt_usize("head_dim")?.unwrap_or(256);
    config.tie_word_embeddings = raw.opt_bool("tie_word_embeddings")?.unwrap_or(true);
    config.max_position_embeddings = raw.opt_usize("max_position_embeddings")?.unwrap_or(8192);
    let window = raw.opt_usize("sliding_window")?.unwrap_or(4096);
    if !config.apply_layer_types(raw, Some(window))? {
        for (i, layer) in config.layers.iter_mut().enumerate() {
            if i % 2 == 0 {
                *layer = LayerAttention::Sliding(window);
            }
        }
    }
    // An absent cap takes Gemma 2's default; an explicit null turns it off.
    let cap = |key: &str, default: f64| match raw.value.get(key) {
        None => Ok(Some(default)),
        Some(_) => raw.opt_f64(key),
    };
    config.switches = DecoderSwitches {
        norm_weight_offset: true,
        norms: NormPlacement::PreAndPost,
        embed_scale: Some((config.hidden_size as f64).sqrt()),
        query_pre_attn_scalar: Some(raw.opt_f64("query_pre_attn_scalar")?.unwrap_or(256.0)),
        attn_logit_softcapping: cap("attn_logit_softcapping", 50.0)?,
        final_logit_softcapping: cap("final_logit_softcapping", 30.0)?,
        ..DecoderSwitches::default()
    };
    Ok(config)
}

/// The Gemma 2 keys llama.cpp's converter writes beyond the common ones: the
/// two soft-caps (llama.cpp's defaults where absent). The converter writes no
/// query scale: llama.cpp takes hidden_size / heads for the 46-layer 27B model
/// and head_dim otherwise (what every Gemma 2 config sets), unless
/// `attention.scale` is given.
pub(crate) fn gguf_config(
    g: &crate::loading::gguf::GgufFile,
    c: &mut serde_json::Value,
) -> Result<()> {
    use serde_json::json;
    let k = |name: &str| format!("gemma2.{name}");
    c["attn_logit_softcapping"] = json!(g.opt_f64(&k("attn_logit_softcapping"))?.unwrap_or(50.0));
    c["final_logit_softcapping"] = json!(g.opt_f64(&k("final_logit_softcapping"))?.unwrap_or(30.0));
    c["query_pre_attn_scalar"] = match g.opt_f64(&k("attention.scale"))? {
        Some(scale) => json!(1.0 / (scale * scale)),
        None => json!(llama_cpp_query_scalar(
            c["num_hidden_layers"].as_u64().unwrap_or(0),
            c["hidden_size"].as_u64().unwrap_or(0),
            c["num_attention_heads"].as_u64().unwrap_or(1).max(1),
            c["head_dim"].as_u64().unwrap_or(256),
        )),
    };
    Ok(())
}

/// llama.cpp's Gemma 2 query scale, as the scalar whose inverse square root it is.
fn llama_cpp_query_scalar(layers: u64, hidden: u64, heads: u64, head_dim: u64) -> u64 {
    if layers == 46 {
        hidden / heads
    } else {
        head_dim
    }
}

#[cfg(test)]
mod tests {
    use super::llama_cpp_query_scalar;

    #[test]
    fn query_scalar_follows_llama_cpp_and_the_released_configs() {
        // Gemma 2 2B, 9B and 27B as Google configured them (query_pre_attn_scalar 256, 256, 144).
        assert_eq!(llama_cpp_query_scalar(26, 2304, 8, 256), 256);
        assert_eq!(llama_cpp_query_scalar(42, 3584, 16, 256), 256);
        assert_eq!(llama_cpp_query_scalar(46, 4608, 32, 128), 144);
    }
}
