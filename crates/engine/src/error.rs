use std::path::PathBuf;

/// Errors of the engine. Each variant names the file, field, option or token
/// at fault and, where there is one, what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: field `{field}`: {message}")]
    Config {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("{path}: unsupported architecture `{found}`; supported: {supported}")]
    UnsupportedArchitecture {
        path: PathBuf,
        found: String,
        supported: String,
    },
    #[error("{path}: {message}")]
    Weights { path: PathBuf, message: String },
    #[error("model reference `{reference}`: {message}")]
    ModelReference { reference: String, message: String },
    #[error("{path}: tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("chat template `{name}`: {message}")]
    Template { name: String, message: String },
    /// A chat prompt for a model without a chat template and none chosen.
    #[error("model `{reference}` has no chat template (a base model?); choose a chat template (a shipped name or a Jinja file) or use a plain prompt")]
    NoChatTemplate { reference: String },
    #[error("setting `{option}`: {message}")]
    Option { option: String, message: String },
    #[error("input: {0}")]
    Input(String),
    #[error("tensor computation failed: {0}")]
    Compute(#[from] candle_core::Error),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    pub(crate) fn config(path: &std::path::Path, field: &str, message: impl Into<String>) -> Self {
        Self::Config {
            path: path.to_path_buf(),
            field: field.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn option(option: &str, message: impl Into<String>) -> Self {
        Self::Option {
            option: option.to_string(),
            message: message.into(),
        }
    }
}

pub(crate) fn read_to_string(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| EngineError::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn read_json(path: &std::path::Path) -> Result<serde_json::Value> {
    let text = read_to_string(path)?;
    serde_json::from_str(&text).map_err(|source| EngineError::Json {
        path: path.to_path_buf(),
        source,
    })
}
