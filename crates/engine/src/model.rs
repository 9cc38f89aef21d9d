//! A loaded language model: decoder, tokenizer, chat template and stop tokens.

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::config::{ModelConfig, RawConfig};
use crate::error::{EngineError, Result};
use crate::generate::{GenerateOptions, Generation};
use crate::models::decoder::Decoder;
use crate::score::LogProbRows;
use crate::source::CheckpointFiles;
use crate::template::{ChatMessage, ChatTemplate, TemplateTokens};
use crate::tokenizer::TextTokenizer;

/// `--dtype`: a float type, GGUF weights kept quantized, or a choice made per model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DTypeChoice {
    Float(DType),
    /// Keep GGUF weights quantized (matrix products on the quantized blocks).
    Quantized,
    /// f32 when every model the command loads fits comfortably in memory, else bf16, else quantized.
    Auto,
}

/// Options every model-loading command shares.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub dtype: DTypeChoice,
    pub device: Device,
    /// `--chat-template NAME|FILE`; `None` uses the model's own.
    pub chat_template: Option<String>,
    /// How many models of this size the command holds at once (for `auto`).
    pub models_in_memory: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            dtype: DTypeChoice::Float(DType::F32),
            device: Device::Cpu,
            chat_template: None,
            models_in_memory: 1,
        }
    }
}

/// Parses `--dtype`.
pub fn parse_dtype(text: &str) -> Result<DTypeChoice> {
    match text {
        "f32" => Ok(DTypeChoice::Float(DType::F32)),
        "bf16" => Ok(DTypeChoice::Float(DType::BF16)),
        "f16" => Ok(DTypeChoice::Float(DType::F16)),
        "q" => Ok(DTypeChoice::Quantized),
        "auto" => Ok(DTypeChoice::Auto),
        other => Err(EngineError::option(
            "dtype",
            format!("unknown dtype `{other}`; use auto, f32, bf16, f16 or q"),
        )),
    }
}

/// Parses `--device cpu|cuda[:N]`.
pub fn parse_device(text: &str) -> Result<Device> {
    let ordinal = match text {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        _ => match text.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => {
                return Err(EngineError::option(
                    "device",
                    format!("unknown device `{text}`; use cpu, cuda or cuda:N"),
                ))
            }
        },
    };
    if !candle_core::utils::cuda_is_available() {
        return Err(EngineError::option(
            "device",
            format!("`{text}` needs a build with CUDA support: rebuild with `cargo build --release --features cuda`"),
        ));
    }
    Device::new_cuda(ordinal)
        .map_err(|e| EngineError::option("device", format!("cannot open `{text}`: {e}")))
}

/// What a reference resolved to: `checkpoint`, `gguf` or `hub`, the Hub
/// commit for a Hub id, and every file the model was loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSource {
    pub kind: &'static str,
    pub commit: Option<String>,
    pub files: Vec<std::path::PathBuf>,
}

pub struct LanguageModel {
    /// The reference as given (directory, Hub id or .gguf file).
    pub reference: String,
    /// What the weights were loaded as, e.g. `f32` or `q (auto: ...)`.
    pub weights_dtype: String,
    pub(crate) decoder: Decoder,
    /// What the reference resolved to, and the files that make the model.
    pub source: ResolvedSource,
    pub tokenizer: TextTokenizer,
    pub chat_template: Option<ChatTemplate>,
    /// Token ids that end generation (generation_config.json, else config.json, else the tokenizer's EOS).
    pub eos_token_ids: Vec<u32>,
}

impl LanguageModel {
    /// Loads a model from a checkpoint directory, a GGUF file or a Hub id.
    pub fn load(reference: &str, options: &LoadOptions) -> Result<Self> {
        match crate::source::ModelSource::parse(reference)? {
            crate::source::ModelSource::Gguf(path) => crate::gguf_model::load(&path, options),
            crate::source::ModelSource::Checkpoint(dir) => {
                Self::load_files(crate::source::local_checkpoint(reference, &dir)?, options)
            }
            crate::source::ModelSource::Hub { id, revision } => {
                let mut model = Self::load_files(
                    crate::hub::fetch_checkpoint(reference, &id, revision.as_deref())?,
                    options,
                )?;
                model.source.kind = "hub";
                Ok(model)
            }
        }
    }

    pub fn load_files(files: CheckpointFiles, options: &LoadOptions) -> Result<Self> {
        let dtype = match options.dtype {
            DTypeChoice::Float(d) => d,
            DTypeChoice::Auto => DType::F32,
            DTypeChoice::Quantized => {
                return Err(EngineError::option("dtype", format!("`q` keeps GGUF weights quantized, but `{}` is a safetensors checkpoint; use f32, bf16 or f16", files.reference)))
            }
        };
        let raw = RawConfig::load(&files.config)?;
        let config = crate::models::parse_config(&raw)?;
        let tokenizer_config = match &files.tokenizer_config {
            Some(p) => crate::error::read_json(p)?,
            None => serde_json::Value::Null,
        };
        let tokenizer = TextTokenizer::load(&files.tokenizer, &tokenizer_config)?;
        check_vocabulary(&tokenizer, &config, &files.config)?;
        let eos_token_ids = eos_ids(&files, &config, &tokenizer)?;
        let vb = mmap_weights(&files.weights, dtype, &options.device)?;
        let weights_place = files
            .weights
            .first()
            .map(|p| p.as_path())
            .unwrap_or(Path::new(&files.reference));
        let decoder = Decoder::load(config, vb, None).map_err(|e| EngineError::Weights {
            path: weights_place.to_path_buf(),
            message: format!("{e} (does config.json match these weights?)"),
        })?;
        let templates =
            crate::template::model_templates(&tokenizer_config, files.chat_template.as_deref())?;
        let chat_template = crate::template::select(
            options.chat_template.as_deref(),
            &templates,
            &files.reference,
        )?;
        let source = ResolvedSource {
            kind: "checkpoint",
            commit: files.snapshot_commit(),
            files: files.all(),
        };
        Ok(Self {
            reference: files.reference.clone(),
            weights_dtype: format!("{dtype:?}").to_lowercase(),
            decoder,
            source,
            tokenizer,
            chat_template,
            eos_token_ids,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        self.decoder.config()
    }

    pub fn parameter_count(&self) -> usize {
        self.decoder.parameter_count()
    }

    /// The width of each next-token distribution (the lm-head's rows; may exceed the vocabulary).
    pub fn logits_width(&self) -> usize {
        self.decoder.logits_width()
    }

    /// The most tokens one sequence may hold (max_position_embeddings, or the GGUF context length).
    pub fn context_length(&self) -> usize {
        self.config().max_position_embeddings
    }

    /// Runs the forward pass over `tokens` for scoring `tokens[answer_start..]`.
    pub fn prepare_scoring(
        &self,
        tokens: &[u32],
        answer_start: usize,
    ) -> Result<crate::score::PreparedScoring<'_>> {
        crate::score::PreparedScoring::new(&self.decoder, tokens, answer_start)
    }

    pub fn template_tokens(&self) -> TemplateTokens {
        TemplateTokens {
            bos_token: self
                .tokenizer
                .bos
                .as_ref()
                .map(|t| t.text.clone())
                .unwrap_or_default(),
            eos_token: self
                .tokenizer
                .eos
                .as_ref()
                .map(|t| t.text.clone())
                .unwrap_or_default(),
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

    /// Scores `tokens[start..]` in one forward pass; see [`crate::score::score_sequence`].
    pub fn score<F>(&self, tokens: &[u32], start: usize, sink: F) -> Result<()>
    where
        F: FnMut(LogProbRows<'_>) -> Result<()>,
    {
        crate::score::score_sequence(&self.decoder, tokens, start, None, sink)
    }

    /// As [`Self::score`], with at most `chunk_rows` rows per call of `sink`.
    pub fn score_chunked<F>(
        &self,
        tokens: &[u32],
        start: usize,
        chunk_rows: Option<usize>,
        sink: F,
    ) -> Result<()>
    where
        F: FnMut(LogProbRows<'_>) -> Result<()>,
    {
        crate::score::score_sequence(&self.decoder, tokens, start, chunk_rows, sink)
    }

    /// Greedy generation; `options.eos_token_ids` empty means the model's own.
    pub fn generate(&self, prompt: &[u32], options: &GenerateOptions) -> Result<Generation> {
        if prompt.is_empty() {
            return Err(EngineError::Input("the prompt encodes to no tokens".into()));
        }
        let mut options = options.clone();
        if options.eos_token_ids.is_empty() {
            options.eos_token_ids = self.eos_token_ids.clone();
        }
        crate::generate::generate(&self.decoder, &self.tokenizer, prompt, &options)
    }
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

/// Memory-maps safetensors files, checking each one so a missing or truncated
/// file is reported by name.
#[allow(unsafe_code)]
fn mmap_weights(
    paths: &[std::path::PathBuf],
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>> {
    for path in paths {
        if !path.is_file() {
            return Err(EngineError::Weights {
                path: path.clone(),
                message: "weights file is missing".into(),
            });
        }
        // SAFETY: the file is mapped read-only; like every mmap-based loader we rely on it not
        // being modified while the model is loaded.
        unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }.map_err(|e| {
            EngineError::Weights {
                path: path.clone(),
                message: format!(
                    "not a valid safetensors file (truncated or corrupt?): {}",
                    root_message(&e)
                ),
            }
        })?;
    }
    // SAFETY: as above.
    Ok(unsafe { VarBuilder::from_mmaped_safetensors(paths, dtype, device) }?)
}

fn root_message(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithPath { inner, .. } => root_message(inner),
        candle_core::Error::WithBacktrace { inner, .. } => root_message(inner),
        other => other.to_string(),
    }
}
