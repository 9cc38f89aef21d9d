//! OLMo 2: norms after attention and after the MLP only (each block sees the
//! raw residual stream), and RMSNorms over the whole query and key
//! projections before the heads are split.

use crate::config::{ModelConfig, NormPlacement, QkNorm, RawConfig};
use crate::error::Result;
use crate::models::Architecture;

pub fn config(raw: &RawConfig) -> Result<ModelConfig> {
    let mut config = ModelConfig::common(raw, Architecture::Olmo2)?;
    config.rms_norm_eps = raw.opt_f64("rms_norm_eps")?.unwrap_or(1e-5);
    config.switches.norms = NormPlacement::Post;
    config.switches.qk_norm = QkNorm::Whole;
    Ok(config)
}
