//! A loaded language model: its text side (tokenizer, chat template, stop
//! tokens; see text_model.rs) and its decoder.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::config::{ModelConfig, RawConfig};
use crate::error::{EngineError, Result};
use crate::generation::generate::{GenerateOptions, Generation};
use crate::loading::options::{DTypeChoice, LoadOptions};
use crate::loading::source::CheckpointFiles;
use crate::models::decoder::Decoder;
use crate::score::LogProbRows;
use crate::text_model::{Origin, TextModel};

/// The largest default batch: past it a decode step on a CPU is compute-bound
/// and more sequences only add cache.
pub const DEFAULT_BATCH: usize = 32;

/// Memory the default batch may spend on key/value caches.
pub const BATCH_CACHE_BYTES: usize = 4 << 30;

/// A model with its weights loaded: its text side and the decoder.
pub struct LanguageModel {
    /// Tokenizer, chat template, stop tokens and source (shared with sides that only need text).
    pub text: Arc<TextModel>,
    /// What the weights were loaded as, e.g. `f32` or `q (auto: ...)`.
    pub weights_dtype: String,
    pub(crate) decoder: Decoder,
}

impl LanguageModel {
    /// Loads a model from a checkpoint directory, a GGUF file or a Hub id.
    pub fn load(reference: &str, options: &LoadOptions) -> Result<Self> {
        let text = TextModel::load(reference, options.chat_template.as_deref())?;
        Self::from_text(Arc::new(text), options)
    }

    /// Loads the weights that go with `text` (its chat template stays as loaded;
    /// `options.chat_template` is not consulted).
    pub fn from_text(text: Arc<TextModel>, options: &LoadOptions) -> Result<Self> {
        if !text.has_weights() {
            return Err(EngineError::ModelReference {
                reference: text.reference.clone(),
                message: "was loaded for its text side only (tokenizer and template); load it with TextModel::load to run it locally".into(),
            });
        }
        let (decoder, weights_dtype) = match &text.origin {
            Origin::Gguf(path) => crate::loading::gguf_model::load_weights(path, options)?,
            Origin::Checkpoint(files) => load_checkpoint_weights(files, options)?,
        };
        Ok(Self {
            text,
            weights_dtype,
            decoder,
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

    /// The forward passes of several sequences, packed into few passes; see
    /// `crate::score::prepare_packed`. One result per request, in order.
    pub fn prepare_scoring_packed(
        &self,
        requests: &[crate::score::ScoreRequest<'_>],
    ) -> Vec<Result<crate::score::ScoredHidden>> {
        crate::score::prepare_packed(&self.decoder, requests)
    }

    /// Scoring for an answer this model generated (its first `answer_len`
    /// tokens after a prompt of `answer_start` tokens) from the hidden states
    /// the generation computed ([`crate::Generation::hidden_states`]).
    pub fn scoring_from_generation(
        &self,
        answer_start: usize,
        answer_len: usize,
        hidden_states: &[f32],
    ) -> Result<crate::score::PreparedScoring<'_>> {
        let state =
            crate::score::from_generation(&self.decoder, answer_start, answer_len, hidden_states)?;
        Ok(crate::score::PreparedScoring::resume(&self.decoder, state))
    }

    /// Whether a decode step computes each sequence's states as it would
    /// decoding that sequence alone (on the CPU with f32 activations: f32,
    /// quantized and packed bf16 weights, whose kernels take row by row), so
    /// scores taken from a batched generation's states do not depend on the
    /// batch. Not where the activations are bf16 or f16.
    pub fn decode_rows_independent(&self) -> bool {
        self.decoder.device().is_cpu() && self.decoder.dtype() == DType::F32
    }

    /// Whether scores taken from a generation's kept states equal a
    /// teacher-forced pass's up to f32 rounding (f32 weights, and quantized
    /// ones under `q`).
    /// Packed bf16 weights round each product's activations to bf16, which
    /// turns the two passes' last-bit differences into hundredths (0.2 at
    /// most on the real-model test, against 2e-5 in f32): a study
    /// teacher-forces there.
    /// Under `q8` each product rounds its activations to 8 bits, which turns
    /// the last-bit differences between a cached step's attention and a whole
    /// pass's into rounding flips: a study teacher-forces there too.
    pub fn generation_scores_match_forcing(&self) -> bool {
        self.decode_rows_independent()
            && self.decoder.weights_dtype() == DType::F32
            && self.decoder.activations() == crate::models::decoder::Activations::F32
    }

    /// The log-distributions of a sequence whose forward pass has run.
    pub fn resume_scoring(
        &self,
        state: crate::score::ScoredHidden,
    ) -> crate::score::PreparedScoring<'_> {
        crate::score::PreparedScoring::resume(&self.decoder, state)
    }

    /// Runs a context prefix once, for sequences that continue it
    /// ([`Self::prepare_scoring_after`], [`crate::generation::batch::Request::prefix`]).
    pub fn prefix_cache(&self, tokens: &[u32]) -> Result<crate::prefix::PrefixCache> {
        if tokens.is_empty() {
            return Err(EngineError::Input("an empty prefix".into()));
        }
        self.decoder.check_tokens(tokens, 0)?;
        crate::prefix::PrefixCache::new(&self.decoder, tokens)
    }

    /// [`Self::prepare_scoring`] continuing `prefix` (which `tokens` start with).
    pub fn prepare_scoring_after(
        &self,
        prefix: &crate::prefix::PrefixCache,
        tokens: &[u32],
        answer_start: usize,
    ) -> Result<crate::score::PreparedScoring<'_>> {
        crate::score::PreparedScoring::with_prefix(&self.decoder, prefix, tokens, answer_start)
    }

    /// Scores `tokens[start..]` in one forward pass; see `crate::score::score_sequence`.
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

    /// Generation (greedy unless `options.sampling`); `options.eos_token_ids`
    /// empty means the model's own.
    pub fn generate(&self, prompt: &[u32], options: &GenerateOptions) -> Result<Generation> {
        self.generate_with(prompt, options, None)
    }

    fn generate_with(
        &self,
        prompt: &[u32],
        options: &GenerateOptions,
        prefix: Option<&std::sync::Arc<crate::prefix::PrefixCache>>,
    ) -> Result<Generation> {
        if prompt.is_empty() {
            return Err(EngineError::Input("the prompt encodes to no tokens".into()));
        }
        let mut options = options.clone();
        if options.eos_token_ids.is_empty() {
            options.eos_token_ids = self.text.eos_token_ids.clone();
        }
        crate::generation::batch::generate_one(
            &self.decoder,
            &self.text.tokenizer,
            prompt,
            &options,
            prefix,
        )
    }

    /// [`Self::generate`] continuing `prefix`'s cache: only the prompt's tokens
    /// after it are prefilled (the answer is the one from scratch).
    pub fn generate_after(
        &self,
        prefix: &std::sync::Arc<crate::prefix::PrefixCache>,
        prompt: &[u32],
        options: &GenerateOptions,
    ) -> Result<Generation> {
        self.generate_with(prompt, options, Some(prefix))
    }

    /// Generation of many prompts, at most `batch` decoded together
    /// (see `crate::generation::batch`); results in the prompts' order, one per prompt.
    pub fn generate_batch(
        &self,
        prompts: &[Vec<u32>],
        options: &GenerateOptions,
        batch: usize,
    ) -> Result<Vec<Result<Generation>>> {
        let requests = crate::generation::batch::requests(prompts, options, None);
        crate::generation::batch::generate_all(self.batch_generator(batch), requests)
    }

    /// [`Self::generate_batch`] with each prompt's own options (its own
    /// sampling stream, say); results in the jobs' order.
    pub fn generate_each(
        &self,
        jobs: Vec<(Vec<u32>, GenerateOptions)>,
        batch: usize,
    ) -> Result<Vec<Result<Generation>>> {
        let requests = jobs
            .into_iter()
            .enumerate()
            .map(|(i, (prompt, options))| crate::generation::batch::Request {
                key: i as u64,
                prompt,
                options,
                prefix: None,
            })
            .collect();
        crate::generation::batch::generate_all(self.batch_generator(batch), requests)
    }

    /// A sequence fed a few tokens at a time with its own cache (room
    /// reserved for `reserve` tokens), giving the log-distribution after each
    /// feed; see `crate::generation::stepper`.
    pub fn stepper(&self, reserve: usize) -> crate::generation::stepper::Stepper<'_> {
        crate::generation::stepper::Stepper::new(&self.decoder, reserve)
    }

    /// A generator that decodes up to `capacity` sequences together, for callers
    /// that feed it as requests arrive (join, then step until each finishes).
    pub fn batch_generator(&self, capacity: usize) -> crate::generation::batch::BatchGenerator<'_> {
        crate::generation::batch::BatchGenerator::new(
            &self.decoder,
            &self.text.tokenizer,
            self.text.eos_token_ids.clone(),
            capacity,
        )
    }

    /// A batch size for this machine and model: enough sequences that a decode
    /// step is a matrix product rather than a matrix-vector one, with their
    /// key/value caches (at `tokens_per_sequence`) within `BATCH_CACHE_BYTES`.
    pub fn default_batch(&self, tokens_per_sequence: usize) -> usize {
        let c = self.config();
        let bytes_per_token =
            2 * c.num_layers * c.num_kv_heads * c.head_dim * self.decoder.dtype().size_in_bytes();
        let per_sequence = (bytes_per_token * tokens_per_sequence.max(1)).max(1);
        (BATCH_CACHE_BYTES / per_sequence).clamp(1, DEFAULT_BATCH)
    }
}

fn load_checkpoint_weights(
    files: &CheckpointFiles,
    options: &LoadOptions,
) -> Result<(Decoder, String)> {
    let dtype = match options.dtype {
        DTypeChoice::Float(d) => d,
        DTypeChoice::Auto => DType::F32,
        DTypeChoice::Quantized | DTypeChoice::QuantizedInt8 => {
            return Err(EngineError::option(crate::LoadSetting::Dtype, format!("`q` and `q8` keep GGUF weights quantized, but `{}` is a safetensors checkpoint; use f32, bf16 or f16", files.reference)))
        }
    };
    let config = crate::models::parse_config(&RawConfig::load(&files.config)?)?;
    let vb = mmap_weights(&files.weights, dtype, &options.device)?;
    let weights_place = files
        .weights
        .first()
        .map(|p| p.as_path())
        .unwrap_or(Path::new(&files.reference));
    let decoder = Decoder::load(config, vb, None, None).map_err(|e| EngineError::Weights {
        path: weights_place.to_path_buf(),
        message: format!("{e} (does config.json match these weights?)"),
    })?;
    Ok((decoder, format!("{dtype:?}").to_lowercase()))
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
