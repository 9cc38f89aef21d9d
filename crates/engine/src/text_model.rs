//! A model's text side: tokenizer, chat template, stop tokens and where they
//! came from. It loads without reading any weights, so a study can render its
//! contexts on the first record before the slow weights load, and a side whose
//! distributions come from a server still tokenizes and renders locally (token
//! ids are what travels).

use std::path::{Path, PathBuf};

use crate::config::{ModelConfig, RawConfig};
use crate::error::{EngineError, Result};
use crate::gguf::GgufFile;
use crate::source::{CheckpointFiles, ModelSource};
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
        match ModelSource::parse(reference)? {
            ModelSource::Gguf(path) => Self::from_gguf(&path, chat_template),
            ModelSource::Checkpoint(dir) => Self::from_checkpoint(
                crate::source::local_checkpoint(reference, &dir)?,
                chat_template,
            ),
            ModelSource::Hub { id, revision } => {
                let files = crate::hub::fetch_checkpoint(reference, &id, revision.as_deref())?;
                let mut text = Self::from_checkpoint(files, chat_template)?;
                text.source.kind = "hub";
                Ok(text)
            }
        }
    }

    pub(crate) fn from_checkpoint(
        files: CheckpointFiles,
        chat_template: Option<&str>,
    ) -> Result<Self> {
        let raw = RawConfig::load(&files.config)?;
        let config = crate::models::parse_config(&raw)?;
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
        let config = crate::models::parse_config(&raw)?;
        let (inner, tokenizer_config) = crate::gguf_tokenizer::build(&gguf)?;
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
        let template = self.chat_template.as_ref().ok_or_else(|| EngineError::Template {
            name: "<none>".into(),
            message: format!(
                "model `{}` has no chat template (a base model?); choose a chat template (a shipped name or a Jinja file) or use a plain prompt",
                self.reference
            ),
        })?;
        template.render(messages, true, &self.template_tokens())
    }
}

fn eos_ids(
    files: &CheckpointFiles,
    config: &ModelConfig,
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
    config: &ModelConfig,
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
