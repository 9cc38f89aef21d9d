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
    #[error("setting `{}`: {message}", option.name())]
    Option {
        option: LoadSetting,
        message: String,
    },
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

    pub(crate) fn option(option: LoadSetting, message: impl Into<String>) -> Self {
        Self::Option {
            option,
            message: message.into(),
        }
    }

    /// What the user can do about this error, if the engine knows.
    pub fn remedy(&self) -> Option<Remedy> {
        match self {
            Self::Option { option, .. } => Some(Remedy::ChangeSetting(*option)),
            Self::UnsupportedArchitecture { path, .. } => Some(Remedy::RunOnServer {
                gguf: path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("gguf")),
            }),
            Self::NoChatTemplate { .. } => Some(Remedy::ChooseChatTemplate),
            _ => None,
        }
    }

    /// A load setting's error: the setting and what is wrong with it (the
    /// message alone, without the setting's name, for a front end to prefix
    /// with its own name for it).
    pub fn setting(&self) -> Option<(LoadSetting, &str)> {
        match self {
            Self::Option { option, message } => Some((*option, message)),
            _ => None,
        }
    }
}

/// The load settings the engine checks, so that a front end can name the
/// option of its own that sets each (a flag, a keyword argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoadSetting {
    Dtype,
    Device,
    ChatTemplate,
    Threads,
}

impl LoadSetting {
    /// The setting's name as `LoadOptions` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dtype => "dtype",
            Self::Device => "device",
            Self::ChatTemplate => "chat_template",
            Self::Threads => "threads",
        }
    }
}

/// What a user can do about an engine error, for a front end to word with its
/// own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// Change this load setting (the error says why).
    ChangeSetting(LoadSetting),
    /// The local engine does not run this architecture. A server can, given
    /// the checkpoint folder or Hub id; not from a GGUF file, whose tokenizer
    /// and chat template cannot be read here either (`gguf`).
    RunOnServer { gguf: bool },
    /// The model has no chat template: choose one, or a prompt without one.
    ChooseChatTemplate,
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
