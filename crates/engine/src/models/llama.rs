//! Llama family: Llama 2 and 3 (rope scaling), Vicuna, TinyLlama, SmolLM/SmolLM2.

use crate::config::{ModelConfig, RawConfig};
use crate::error::Result;
use crate::models::Architecture;

pub fn config(raw: &RawConfig) -> Result<ModelConfig> {
    ModelConfig::common(raw, Architecture::Llama)
}
