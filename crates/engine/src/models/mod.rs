//! Supported architectures. Each family's file turns a raw `config.json` into
//! a checked [`ModelConfig`]; the shared [`decoder`] runs all of them, with
//! its projections (`projections`, `quantized_linear`), key/value caches and
//! rotary embeddings beside it; the arithmetic they call is in `kernels/`.
//! Adding an architecture means one file here (its config function, and for
//! GGUF its metadata extras), one registry row (HF names and the GGUF spec),
//! and any new decoder switch it needs.

pub(crate) mod decoder;
mod gemma2;
mod gemma3;
mod kv_cache;
mod llama;
mod mistral;
mod olmo2;
mod phi3;
mod projections;
mod quantized_linear;
pub(crate) use quantized_linear::PASS_ROWS;
mod qwen2;
mod qwen3;
pub(crate) mod rope;

pub use crate::config::Architecture;
use crate::config::{ModelConfig, RawConfig};
use crate::error::{EngineError, Result};
use crate::loading::gguf::GgufSpec;

struct Registration {
    architecture: Architecture,
    model_type: &'static str,
    hf_class: &'static str,
    parse: fn(&RawConfig) -> Result<ModelConfig>,
    /// How llama.cpp's converter writes this architecture, if we read its GGUF files.
    gguf: Option<GgufSpec>,
}

const REGISTRY: &[Registration] = &[
    Registration {
        architecture: Architecture::Llama,
        model_type: "llama",
        hf_class: "LlamaForCausalLM",
        parse: llama::config,
        gguf: Some(GgufSpec {
            permuted_qk: true,
            ..GgufSpec::plain("llama", 10_000.0)
        }),
    },
    Registration {
        architecture: Architecture::Mistral,
        model_type: "mistral",
        hf_class: "MistralForCausalLM",
        parse: mistral::config,
        gguf: Some(GgufSpec {
            requires_key: Some("attention.sliding_window"),
            permuted_qk: true,
            ..GgufSpec::plain("llama", 10_000.0)
        }),
    },
    Registration {
        architecture: Architecture::Qwen2,
        model_type: "qwen2",
        hf_class: "Qwen2ForCausalLM",
        parse: qwen2::config,
        gguf: Some(GgufSpec::plain("qwen2", 1_000_000.0)),
    },
    Registration {
        architecture: Architecture::Gemma3,
        model_type: "gemma3_text",
        hf_class: "Gemma3ForCausalLM",
        parse: gemma3::config,
        gguf: Some(GgufSpec {
            norms_plus_one: true,
            sandwich_norms: true,
            config: Some(gemma3::gguf_config),
            ..GgufSpec::plain("gemma3", 1_000_000.0)
        }),
    },
    Registration {
        architecture: Architecture::Qwen3,
        model_type: "qwen3",
        hf_class: "Qwen3ForCausalLM",
        parse: qwen3::config,
        gguf: Some(GgufSpec::plain("qwen3", 1_000_000.0)),
    },
    Registration {
        architecture: Architecture::Olmo2,
        model_type: "olmo2",
        hf_class: "Olmo2ForCausalLM",
        parse: olmo2::config,
        gguf: Some(GgufSpec::plain("olmo2", 10_000.0)),
    },
    Registration {
        architecture: Architecture::Gemma2,
        model_type: "gemma2",
        hf_class: "Gemma2ForCausalLM",
        parse: gemma2::config,
        gguf: Some(GgufSpec {
            norms_plus_one: true,
            sandwich_norms: true,
            config: Some(gemma2::gguf_config),
            ..GgufSpec::plain("gemma2", 10_000.0)
        }),
    },
    Registration {
        architecture: Architecture::Phi3,
        model_type: "phi3",
        hf_class: "Phi3ForCausalLM",
        parse: phi3::config,
        gguf: Some(GgufSpec {
            fused_gate_up: true,
            config: Some(phi3::gguf_config),
            ..GgufSpec::plain("phi3", 10_000.0)
        }),
    },
];

pub(crate) use phi3::gguf_long_rope;

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

/// The registry row for a GGUF file of llama.cpp architecture `name`;
/// `has_key(k)` says whether metadata `{name}.{k}` exists. Rows that need a key
/// are preferred when it is there. Also returns the model_type.
pub(crate) fn gguf_spec(
    name: &str,
    has_key: impl Fn(&str) -> bool,
) -> Option<(&'static str, &'static GgufSpec)> {
    let rows = || {
        REGISTRY
            .iter()
            .filter_map(|r| r.gguf.as_ref().map(|g| (r.model_type, g)))
            .filter(|(_, g)| g.name == name)
    };
    rows()
        .find(|(_, g)| g.requires_key.is_some_and(&has_key))
        .or_else(|| rows().find(|(_, g)| g.requires_key.is_none()))
}

/// The llama.cpp architecture names we read, for messages.
pub(crate) fn gguf_names() -> String {
    let mut names: Vec<&str> = REGISTRY
        .iter()
        .filter_map(|r| r.gguf.as_ref().map(|g| g.name))
        .collect();
    names.dedup();
    names.join(", ")
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
