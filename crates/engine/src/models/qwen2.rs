//! Qwen2 / Qwen2.5: Llama's layout with bias on q, k and v, and optional
//! sliding windows on the layers from `max_window_layers` on.

use crate::config::{LayerAttention, ModelConfig, RawConfig};
use crate::error::Result;
use crate::models::Architecture;

pub fn config(raw: &RawConfig) -> Result<ModelConfig> {
    let mut config = ModelConfig::common(raw, Architecture::Qwen2)?;
    config.qkv_bias = true;
    config.o_bias = false;
    sliding_layers(&mut config, raw)?;
    Ok(config)
}

/// Qwen's sliding windows: with `use_sliding_window`, on the layers from
/// `max_window_layers` on (or as `layer_types` says).
pub(super) fn sliding_layers(config: &mut ModelConfig, raw: &RawConfig) -> Result<()> {
    let window = if raw.opt_bool("use_sliding_window")?.unwrap_or(false) {
        raw.opt_usize("sliding_window")?
    } else {
        None
    };
    if !config.apply_layer_types(raw, window)? {
        if let Some(window) = window {
            let first = raw.opt_usize("max_window_layers")?.unwrap_or(28);
            for (i, layer) in config.layers.iter_mut().enumerate() {
                if i >= first {
                    *layer = LayerAttention::Sliding(window);
                }
            }
        }
    }
    Ok(())
}
