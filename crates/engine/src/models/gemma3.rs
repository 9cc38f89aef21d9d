//! Gemma 3 text (`gemma3_text`): alternating sliding/full attention layers with
//! their own rope bases, q/k norms, sandwich norms, (1 + w) RMSNorm, scaled
//! embeddings, gelu-tanh MLP and `query_pre_attn_scalar`.

use crate::config::{
    parse_rope_object, Activation, DecoderSwitches, LayerAttention, ModelConfig, NormPlacement,
    QkNorm, RawConfig, RopeConfig, RopeScaling,
};
use crate::error::Result;
use crate::models::Architecture;

pub fn config(raw: &RawConfig) -> Result<ModelConfig> {
    let mut config = ModelConfig::common(raw, Architecture::Gemma3)?;
    config.activation = activation(raw, "Gemma 3")?;
    config.head_dim = raw.opt_usize("head_dim")?.unwrap_or(256);
    config.tie_word_embeddings = raw.opt_bool("tie_word_embeddings")?.unwrap_or(true);
    config.max_position_embeddings = raw.opt_usize("max_position_embeddings")?.unwrap_or(131_072);
    if raw.get("rope_parameters").is_none() {
        // Older configs: rope_theta (+ rope_scaling) for full layers, rope_local_base_freq for sliding ones.
        let full_theta = raw.opt_f64("rope_theta")?.unwrap_or(1_000_000.0);
        config.rope_full = match raw.get("rope_scaling") {
            Some(v) => parse_rope_object(raw, "rope_scaling", v, full_theta)?,
            None => RopeConfig {
                theta: full_theta,
                scaling: RopeScaling::Default,
            },
        };
        config.rope_sliding = RopeConfig {
            theta: raw.opt_f64("rope_local_base_freq")?.unwrap_or(10_000.0),
            scaling: RopeScaling::Default,
        };
    }
    let window = raw.opt_usize("sliding_window")?.unwrap_or(4096);
    if !config.apply_layer_types(raw, Some(window))? {
        let pattern = raw.opt_usize("sliding_window_pattern")?.unwrap_or(6).max(1);
        for (i, layer) in config.layers.iter_mut().enumerate() {
            *layer = if (i + 1) % pattern == 0 {
                LayerAttention::Full
            } else {
                LayerAttention::Sliding(window)
            };
        }
    }
    config.switches = DecoderSwitches {
        norm_weight_offset: true,
        qk_norm: QkNorm::PerHead,
        norms: NormPlacement::PreAndPost,
        embed_scale: Some((config.hidden_size as f64).sqrt()),
        query_pre_attn_scalar: Some(raw.opt_f64("query_pre_attn_scalar")?.unwrap_or(256.0)),
        // Gemma 3's config carries attn_logit_softcapping, but transformers' Gemma 3 attention
        // never applies it (q/k norms replaced it); neither do we.
        attn_logit_softcapping: None,
        final_logit_softcapping: raw.opt_f64("final_logit_softcapping")?,
        ..DecoderSwitches::default()
    };
    Ok(config)
}

/// Gemma's MLP activation (gelu-tanh), refusing the encoder variant.
pub(super) fn activation(raw: &RawConfig, family: &str) -> Result<Activation> {
    if raw
        .opt_bool("use_bidirectional_attention")?
        .unwrap_or(false)
    {
        return Err(raw.error(
            "use_bidirectional_attention",
            format!("bidirectional (encoder) {family} is not supported"),
        ));
    }
    match raw
        .opt_str("hidden_activation")?
        .or(raw.opt_str("hidden_act")?)
        .unwrap_or("gelu_pytorch_tanh")
    {
        "gelu_pytorch_tanh" | "gelu_tanh" => Ok(Activation::GeluTanh),
        other => Err(raw.error(
            "hidden_activation",
            format!("unsupported activation `{other}`; {family} uses gelu_pytorch_tanh"),
        )),
    }
}

/// The Gemma 3 keys llama.cpp's converter writes beyond the common ones: rope
/// bases per layer kind, the sliding pattern, the query scale and the final softcap.
pub(crate) fn gguf_config(
    g: &crate::loading::gguf::GgufFile,
    c: &mut serde_json::Value,
) -> Result<()> {
    use serde_json::json;
    let k = |name: &str| format!("gemma3.{name}");
    // Gemma 3 keys rope by layer kind: the common rope_theta / rope_scaling become the full layers'.
    let map = c
        .as_object_mut()
        .ok_or_else(|| crate::error::EngineError::Input("GGUF config is not an object".into()))?;
    let theta = map.remove("rope_theta").unwrap_or(json!(1_000_000.0));
    let mut full = match map.remove("rope_scaling") {
        Some(s) if !s.is_null() => s,
        _ => json!({"rope_type": "default"}),
    };
    full["rope_theta"] = theta;
    c["rope_parameters"] = json!({
        "full_attention": full,
        "sliding_attention": {"rope_type": "default", "rope_theta": g.opt_f64(&k("rope.freq_base_swa"))?.unwrap_or(10_000.0)},
    });
    if c.get("sliding_window").is_none() {
        c["sliding_window"] = json!(4096);
    }
    let layers = c["num_hidden_layers"].as_u64().unwrap_or(0);
    c["layer_types"] = json!(g.sliding_pattern(&k("attention.sliding_window_pattern"), layers)?);
    // llama.cpp scales Gemma 3 queries by 1/sqrt(head_dim) unless attention.scale says otherwise
    c["query_pre_attn_scalar"] = match g.opt_f64(&k("attention.scale"))? {
        Some(scale) => json!(1.0 / (scale * scale)),
        None => c["head_dim"].clone(),
    };
    c["final_logit_softcapping"] = json!(g.opt_f64(&k("final_logit_softcapping"))?);
    Ok(())
}
