//! Supported architectures. Each file turns a raw `config.json` into a checked
//! [`ModelConfig`]; the shared [`decoder`] runs all of them. Adding an
//! architecture means one file here, one registry row, and any new knob in the
//! decoder.

mod cpu_ops;
pub mod decoder;
mod gemma3;
mod llama;
mod mistral;
mod quantized_gemv;
mod quantized_linear;
mod qwen2;

use crate::config::{ModelConfig, RawConfig};
use crate::error::{EngineError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Mistral,
    Qwen2,
    Gemma3,
}

struct Registration {
    architecture: Architecture,
    model_type: &'static str,
    hf_class: &'static str,
    parse: fn(&RawConfig) -> Result<ModelConfig>,
}

const REGISTRY: &[Registration] = &[
    Registration {
        architecture: Architecture::Llama,
        model_type: "llama",
        hf_class: "LlamaForCausalLM",
        parse: llama::config,
    },
    Registration {
        architecture: Architecture::Mistral,
        model_type: "mistral",
        hf_class: "MistralForCausalLM",
        parse: mistral::config,
    },
    Registration {
        architecture: Architecture::Qwen2,
        model_type: "qwen2",
        hf_class: "Qwen2ForCausalLM",
        parse: qwen2::config,
    },
    Registration {
        architecture: Architecture::Gemma3,
        model_type: "gemma3_text",
        hf_class: "Gemma3ForCausalLM",
        parse: gemma3::config,
    },
];

impl Architecture {
    pub fn name(self) -> &'static str {
        REGISTRY
            .iter()
            .find(|r| r.architecture == self)
            .map(|r| r.model_type)
            .unwrap_or("unknown")
    }

    /// The supported architectures, as listed in error messages.
    pub fn supported() -> String {
        REGISTRY
            .iter()
            .map(|r| format!("{} ({})", r.model_type, r.hf_class))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Identifies the architecture from `model_type` (or `architectures[0]`) and
/// parses the config with that architecture's defaults.
pub fn parse_config(raw: &RawConfig) -> Result<ModelConfig> {
    let model_type = raw.opt_str("model_type")?;
    let class = raw
        .get("architectures")
        .and_then(|a| a.as_array())
        .and_then(|a| a.first())
        .and_then(|c| c.as_str());
    let found = REGISTRY.iter().find(|r| {
        model_type == Some(r.model_type) || (model_type.is_none() && class == Some(r.hf_class))
    });
    match found {
        Some(r) => (r.parse)(raw),
        None => Err(EngineError::UnsupportedArchitecture {
            path: raw.path.clone(),
            found: model_type
                .or(class)
                .unwrap_or("<none: no model_type or architectures>")
                .to_string(),
            supported: Architecture::supported(),
        }),
    }
}
