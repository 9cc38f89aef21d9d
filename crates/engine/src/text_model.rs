//! A model's text side: tokenizer, chat template, stop tokens and where they
//! came from. It loads without reading any weights, so a study can render its
//! contexts on the first record before the slow weights load, and a side whose
//! distributions come from a server still tokenizes and renders locally (token
//! ids are what travels).

use std::path::{Path, PathBuf};

use crate::config::RawConfig;
use crate::error::{EngineError, Result};
use crate::loading::gguf::GgufFile;
use crate::loading::source::{CheckpointFiles, ModelSource, Weights};
use crate::template::{ChatMessage, ChatTemplate, TemplateTokens};
use crate::tokenizer::TextTokenizer;

/// What a reference resolved to: `checkpoint`, `gguf` or `hub`, the Hub
/// commit for a Hub id, and every file the model was loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSource {
    pub kind: &'static str,
    pub commit: Option<String>,
    pub files: Vec<std::path::PathBuf>,
}

/// Where the weights that go with this text side are.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    Checkpoint(CheckpointFiles),
    Gguf(PathBuf),
}

pub struct TextModel {
    /// The reference as given (directory, Hub id or .gguf file).
    pub reference: String,
    /// What the reference resolved to, and the files that make the model.
    pub source: ResolvedSource,
    pub tokenizer: TextTokenizer,
    pub chat_template: Option<ChatTemplate>,
    /// Token ids that end generation (generation_config.json, else config.json, else the tokenizer's EOS).
    pub eos_token_ids: Vec<u32>,
    pub(crate) origin: Origin,
}

impl TextModel {
    /// Loads the text side of a checkpoint folder, a GGUF file or a Hub id;
    /// `chat_template` (a shipped name or a Jinja file) replaces the model's own.
    pub fn load(reference: &str, chat_template: Option<&str>) -> Result<Self> {
        Self::load_with(reference, chat_template, Weights::Required)
    }

    /// The text side alone, for a model whose distributions come from a
    /// server: a checkpoint folder (or Hub id) needs only config.json,
    /// tokenizer.json and the tokenizer config, never its weights, and its
    /// architecture need not be one the local engine runs.
    pub fn load_text_only(reference: &str, chat_template: Option<&str>) -> Result<Self> {
        Self::load_with(reference, chat_template, Weights::Skipped)
    }

    fn load_with(reference: &str, chat_template: Option<&str>, want: Weights) -> Result<Self> {
        match ModelSource::parse(reference)? {
            ModelSource::Gguf(path) => Self::from_gguf(&path, chat_template),
            ModelSource::Checkpoint(dir) => Self::from_checkpoint(
                crate::loading::source::local_checkpoint(reference, &dir, want)?,
                chat_template,
            ),
            ModelSource::Hub { id, revision } => {
                let files = crate::loading::hub::fetch_checkpoint(
                    reference,
                    &id,
                    revision.as_deref(),
                    want,
                )?;
                let mut text = Self::from_checkpoint(files, chat_template)?;
                text.source.kind = "hub";
                Ok(text)
            }
        }
    }

    /// Whether the weights that go with this text side were located.
    pub fn has_weights(&self) -> bool {
        match &self.origin {
            Origin::Checkpoint(files) => !files.weights.is_empty(),
            Origin::Gguf(_) => true,
        }
    }

    pub(crate) fn from_checkpoint(
        files: CheckpointFiles,
        chat_template: Option<&str>,
    ) -> Result<Self> {
        let raw = RawConfig::load(&files.config)?;
        let config = text_config(&raw, !files.weights.is_empty())?;
        let tokenizer_config = match &files.tokenizer_config {
            Some(p) => crate::error::read_json(p)?,
            None => serde_json::Value::Null,
        };
        let tokenizer = TextTokenizer::load(&files.tokenizer, &tokenizer_config)?;
        check_vocabulary(&tokenizer, &config, &files.config)?;
        let eos_token_ids = eos_ids(&files, &config, &tokenizer)?;
        let templates =
            crate::template::model_templates(&tokenizer_config, files.chat_template.as_deref())?;
        let chat_template = crate::template::select(chat_template, &templates, &files.reference)?;
        Ok(Self {
            reference: files.reference.clone(),
            source: ResolvedSource {
                kind: "checkpoint",
                commit: files.snapshot_commit(),
                files: files.all(),
            },
            tokenizer,
            chat_template,
            eos_token_ids,
            origin: Origin::Checkpoint(files),
        })
    }

    /// The text side of a GGUF file: tokenizer and chat template from its metadata.
    pub(crate) fn from_gguf(path: &Path, chat_template: Option<&str>) -> Result<Self> {
        let gguf = GgufFile::open(path)?;
        gguf.spec()?;
        let raw = RawConfig::from_value(path, gguf.hf_config()?);
        let parsed = crate::models::parse_config(&raw)?;
        let config = TextConfig {
            vocab_size: parsed.vocab_size,
            eos_token_ids: parsed.eos_token_ids,
        };
        let (inner, tokenizer_config) = crate::loading::gguf_tokenizer::build(&gguf)?;
        let tokenizer = TextTokenizer::from_tokenizer(inner, path, &tokenizer_config)?;
        check_vocabulary(&tokenizer, &config, path)?;
        let templates = crate::template::model_templates(&tokenizer_config, None)?;
        let reference = path.display().to_string();
        let chat_template = crate::template::select(chat_template, &templates, &reference)?;
        let eos_token_ids = if config.eos_token_ids.is_empty() {
            tokenizer.eos.iter().map(|t| t.id).collect()
        } else {
            config.eos_token_ids.clone()
        };
        Ok(Self {
            reference,
            source: ResolvedSource {
                kind: "gguf",
                commit: None,
                files: vec![path.to_path_buf()],
            },
            tokenizer,
            chat_template,
            eos_token_ids,
            origin: Origin::Gguf(path.to_path_buf()),
        })
    }

    pub fn template_tokens(&self) -> TemplateTokens {
        let text = |t: &Option<crate::tokenizer::SpecialToken>| {
            t.as_ref().map(|t| t.text.clone()).unwrap_or_default()
        };
        TemplateTokens {
            bos_token: text(&self.tokenizer.bos),
            eos_token: text(&self.tokenizer.eos),
        }
    }

    /// Renders a conversation with the model's chat template, ready for the assistant's turn.
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        self.render_chat_with(messages, &crate::template::TemplateVars::new())
    }

    /// As [`Self::render_chat`], with more template variables (`enable_thinking`).
    pub fn render_chat_with(
        &self,
        messages: &[ChatMessage],
        vars: &crate::template::TemplateVars,
    ) -> Result<String> {
        let template = self
            .chat_template
            .as_ref()
            .ok_or_else(|| EngineError::NoChatTemplate {
                reference: self.reference.clone(),
            })?;
        template
            .render_with(messages, true, &self.template_tokens(), vars)
            .map_err(|e| match e {
                // Gemma's templates raise on a system message; say what to change.
                EngineError::Template { name, message }
                    if messages.first().is_some_and(|m| m.role == "system") =>
                {
                    EngineError::Template {
                        name,
                        message: format!(
                            "{message}; the conversation starts with a system message, which this template may not take: leave the system message out"
                        ),
                    }
                }
                other => other,
            })
    }
}

/// What the text side needs of config.json: the vocabulary size and stop ids.
pub(crate) struct TextConfig {
    vocab_size: usize,
    eos_token_ids: Vec<u32>,
}

/// The text side's view of a config: from the engine's own parse when the
/// weights will be loaded (an unknown architecture fails here, early), else
/// read directly so a server-side model of any architecture works.
fn text_config(raw: &RawConfig, with_weights: bool) -> Result<TextConfig> {
    match crate::models::parse_config(raw) {
        Ok(c) => Ok(TextConfig {
            vocab_size: c.vocab_size,
            eos_token_ids: c.eos_token_ids,
        }),
        Err(e) if with_weights => Err(e),
        Err(_) => {
            // Multimodal checkpoints nest the language model's fields.
            let nested = raw.get("text_config").cloned();
            let text = nested.map_or_else(
                || RawConfig::from_value(&raw.path, raw.value.clone()),
                |v| RawConfig::from_value(&raw.path, v),
            );
            let vocab_size = text
                .opt_usize("vocab_size")?
                .map_or_else(|| raw.usize("vocab_size"), Ok)?;
            let mut eos_token_ids = raw.token_ids("eos_token_id").unwrap_or_default();
            if eos_token_ids.is_empty() {
                eos_token_ids = text.token_ids("eos_token_id").unwrap_or_default();
            }
            Ok(TextConfig {
                vocab_size,
                eos_token_ids,
            })
        }
    }
}

fn eos_ids(
    files: &CheckpointFiles,
    config: &TextConfig,
    tokenizer: &TextTokenizer,
) -> Result<Vec<u32>> {
    if let Some(path) = &files.generation_config {
        let raw = RawConfig::load(path)?;
        let ids = raw.token_ids("eos_token_id")?;
        if !ids.is_empty() {
            return Ok(ids);
        }
    }
    if !config.eos_token_ids.is_empty() {
        return Ok(config.eos_token_ids.clone());
    }
    Ok(tokenizer.eos.iter().map(|t| t.id).collect())
}

pub(crate) fn check_vocabulary(
    tokenizer: &TextTokenizer,
    config: &TextConfig,
    config_path: &Path,
) -> Result<()> {
    let n = tokenizer.vocab_size();
    if n > config.vocab_size {
        return Err(EngineError::Tokenizer {
            path: tokenizer.path().to_path_buf(),
            message: format!(
                "vocabulary of {n} tokens does not fit the model's embedding of {} rows (vocab_size in {}); is this the model's own tokenizer?",
                config.vocab_size,
                config_path.display()
            ),
        });
    }
    Ok(())
}
