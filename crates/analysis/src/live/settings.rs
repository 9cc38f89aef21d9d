//! What a live pair is set up with and what one request may ask: typed
//! settings and requests, checked before any model work, with errors that
//! name the field.

use aligntds_engine::EngineError;
use aligntds_formats::summary::{ContextKind, Thresholds};

use crate::settings::{Field, Runtime, SettingError, SideName, SideSettings};
use crate::study::run_error::RunError;

/// Which side chooses the answer tokens after the given prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Chooser {
    Aligned,
    Base,
}

impl Chooser {
    pub fn as_str(self) -> &'static str {
        match self {
            Chooser::Aligned => "aligned",
            Chooser::Base => "base",
        }
    }
}

/// One live request: a query, its options, and optionally an answer prefix to
/// keep (its last token replaced by `replace`) before `with` continues.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveRequest {
    pub query: String,
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub max_new_tokens: Option<usize>,
    #[serde(default)]
    pub aligned_context: Option<ContextKind>,
    #[serde(default)]
    pub base_context: Option<ContextKind>,
    #[serde(default)]
    pub prefix_ids: Vec<u32>,
    #[serde(default)]
    pub with: Option<Chooser>,
    #[serde(default)]
    pub replace: Option<u32>,
    /// Sampled tokens (any of the four turns sampling on; unset ones take
    /// their defaults): as `analyze`'s settings of the same names.
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub top_k_sampling: Option<usize>,
    #[serde(default)]
    pub seed: Option<u64>,
}

impl LiveRequest {
    /// The request's sampling settings; None: greedy.
    pub fn sampling(&self) -> Option<crate::settings::SamplingSettings> {
        crate::settings::sampling::from_values(
            self.temperature,
            self.top_p,
            self.top_k_sampling,
            self.seed,
        )
    }
}

/// What a live pair allows one request.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LiveLimits {
    pub max_query_bytes: usize,
    /// The most new tokens a request may ask for.
    pub max_new_tokens: usize,
    /// New tokens when a request names none.
    pub default_new_tokens: usize,
    /// Seconds one request may run before it stops (stop reason `time_limit`).
    pub time_limit_seconds: f64,
}

impl Default for LiveLimits {
    fn default() -> Self {
        Self {
            max_query_bytes: 8192,
            max_new_tokens: 1024,
            default_new_tokens: 256,
            time_limit_seconds: 300.0,
        }
    }
}

/// A request refused before any model work, by the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// A field's value is not allowed (HTTP 400).
    #[error("`{field}`: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// Over a size limit (HTTP 413).
    #[error("`{field}`: {message}")]
    TooLarge {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Run(#[from] RunError),
}

impl From<EngineError> for LiveError {
    fn from(e: EngineError) -> Self {
        LiveError::Run(RunError::Engine(e))
    }
}

/// A backend's engine error reads as the engine's, as in a study.
impl From<crate::backend::BackendError> for LiveError {
    fn from(e: crate::backend::BackendError) -> Self {
        match e {
            crate::backend::BackendError::Engine(e) => LiveError::Run(RunError::Engine(e)),
            other => LiveError::Run(RunError::Backend(other)),
        }
    }
}

/// Settings of a live pair: the two sides, how they load, what is scored.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSettings {
    pub aligned: SideSettings,
    pub base: SideSettings,
    pub runtime: Runtime,
    pub top_k: usize,
    pub thresholds: Thresholds,
    /// Stop strings added to each context's own.
    pub stops: Vec<String>,
    pub limits: LiveLimits,
    /// How sides on vLLM servers are reached.
    pub server_options: crate::backend::vllm::ServerOptions,
}

impl LiveSettings {
    /// Refuses what the live view cannot do, before any model loads.
    pub fn validate(&self) -> Result<(), SettingError> {
        let settings = self;
        crate::settings::check_sides(&settings.aligned, &settings.base)?;
        for (name, side) in [
            (SideName::Aligned, &settings.aligned),
            (SideName::Base, &settings.base),
        ] {
            if side.context.kind == ContextKind::Input {
                return Err(SettingError::new(
                    Field::Context(name),
                    "the `input` context needs a data set's pre-rendered input; a live query has none",
                ));
            }
        }
        if settings.top_k == 0 || settings.top_k > crate::settings::MAX_TOP_K {
            return Err(SettingError::new(Field::TopK, "must be 1 to 1000"));
        }
        let limits = &settings.limits;
        if limits.default_new_tokens == 0 || limits.default_new_tokens > limits.max_new_tokens {
            return Err(SettingError::new(
                Field::MaxNewTokens,
                format!(
                    "{} must be 1 to the cap of {} new tokens per request",
                    limits.default_new_tokens, limits.max_new_tokens
                ),
            ));
        }
        Ok(())
    }
}
