//! Mistral: Llama's layout with sliding-window attention on every layer.

use crate::config::{LayerAttention, ModelConfig, RawConfig};
use crate::error::Result;
use crate::models::Architecture;

pub fn config(raw: &RawConfig) -> Result<ModelConfig> {
    let mut config = ModelConfig::common(raw, Architecture::Mistral)?;
    // Mistral's config has no attention_bias key; its projections never have bias.
    config.qkv_bias = false;
    config.o_bias = false;
    if let Some(window) = raw.opt_usize("sliding_window")? {
        if window == 0 {
            return Err(raw.error("sliding_window", "must be positive or null"));
        }
        config.layers = vec![LayerAttention::Sliding(window); config.num_layers];
    }
    Ok(config)
}
