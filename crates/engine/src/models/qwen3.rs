//! Qwen3: Qwen2's layout without q/k/v bias (unless `attention_bias`), an
//! RMSNorm on each query and key head before rope, and head_dim set apart
//! from hidden_size / heads (128 by default).

use crate::config::{ModelConfig, QkNorm, RawConfig};
use crate::error::Result;
use crate::models::{qwen2, Architecture};

pub fn config(raw: &RawConfig) -> Result<ModelConfig> {
    let mut config = ModelConfig::common(raw, Architecture::Qwen3)?;
    config.head_dim = raw.opt_usize("head_dim")?.unwrap_or(128);
    if config.head_dim % 2 != 0 {
        return Err(raw.error("head_dim", "must be even for rotary embeddings"));
    }
    qwen2::sliding_layers(&mut config, raw)?;
    config.switches.qk_norm = QkNorm::PerHead;
    Ok(config)
}
