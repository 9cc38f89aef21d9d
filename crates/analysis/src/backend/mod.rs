//! The seam between a study and whatever computes next-token distributions.
//! Tokenization and chat templates are always local (the side's text model);
//! token ids go to a backend, which scores a sequence or generates from a
//! prompt. A backend's scoring rows are full log-distributions (the local
//! engine) or top-k views (inference servers); metrics accept either.

use std::sync::Arc;

use aligntds_engine::{EngineError, GenerateOptions, Generation, LanguageModel, TextModel};

use crate::metrics::TopKRow;

pub mod local;
mod session;
pub mod vllm;

pub use local::LocalBackend;
pub use session::{push_both, ScoringSession, Session, View};

use crate::settings::{BackendSettings, ServerOptions, SideName};

/// The one place that turns a side's backend setting into a remote backend,
/// checked (for vLLM: the served model, its context length, its
/// log-probabilities, with `probe` as a first prompt). None for the local
/// engine, whose weights the caller loads once per model and wraps in a
/// [`LocalBackend`]. A new kind of backend adds its arm here.
pub fn connect(
    side: SideName,
    settings: &BackendSettings,
    options: ServerOptions,
    text: &Arc<TextModel>,
    top_k: Option<usize>,
    probe: Option<&str>,
) -> Result<Option<Arc<dyn Backend>>, ConnectError> {
    Ok(match settings {
        BackendSettings::Local => None,
        BackendSettings::Vllm {
            servers,
            served_name,
        } => Some(Arc::new(vllm::VllmBackend::connect(
            side,
            servers,
            served_name.as_deref(),
            options,
            text.clone(),
            top_k,
            probe,
        )?)),
    })
}

/// Why a side's remote backend cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A setting of the side (an address, a served name) is wrong.
    #[error(transparent)]
    Setting(#[from] crate::settings::SettingError),
    /// The side's server refused or failed the checks.
    #[error("the {} side's server: {source}", side.as_str())]
    Server {
        side: SideName,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A remote backend's failure, with the backend's own message.
    #[error("{backend}: {message}")]
    Remote { backend: String, message: String },
}

/// Rows for consecutive answer positions, as the backend computed them.
pub enum Rows<'a> {
    /// Full log-distributions, row-major, `width` values each.
    Full { width: usize, data: &'a [f32] },
    /// One top-k view per position.
    TopK(&'a [TopKRow]),
}

impl Rows<'_> {
    pub fn len(&self) -> usize {
        match self {
            Rows::Full { width, data } => data.len() / width.max(&1),
            Rows::TopK(rows) => rows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A sequence a backend has run its forward pass over; answer rows are
/// produced a chunk at a time so memory stays bounded.
pub trait Scored {
    fn answer_len(&self) -> usize;
    /// Rows predicting answer tokens `first..first + n`.
    fn rows(&mut self, first: usize, n: usize) -> Result<Rows<'_>, BackendError>;
}

/// What computes one side's distributions.
pub trait Backend: Send + Sync {
    /// How the manifest names what ran (e.g. `f32`, `q`): results depend on it.
    fn weights(&self) -> String;
    /// The width of a full row (equal widths are needed to compare full
    /// rows); None for a backend that gives top-k views.
    fn logits_width(&self) -> Option<usize>;
    /// The most tokens one sequence (context + answer) may hold.
    fn context_length(&self) -> usize;
    /// Answer rows per chunk (memory bound) when paired with another side.
    fn chunk_rows(&self) -> usize;
    /// Records worth having in flight at once (a server batches what it is
    /// sent; the local engine uses every core on one).
    fn concurrency(&self) -> usize {
        1
    }
    /// Per-server request counts and rates, for progress.
    fn server_stats(&self) -> Vec<ServerStats> {
        Vec::new()
    }
    /// Runs the forward pass over `tokens` to score `tokens[answer_start..]`;
    /// a top-k backend keeps at least `top_k` tokens per position.
    fn prepare<'a>(
        &'a self,
        tokens: &[u32],
        answer_start: usize,
        top_k: usize,
    ) -> Result<Box<dyn Scored + 'a>, BackendError>;
    /// Scoring for an answer this backend generated (`generation`, from
    /// `tokens[..answer_start]`; the answer `tokens[answer_start..]` begins its
    /// tokens) from what the generation computed, with no second forward pass.
    /// None where nothing was kept (then [`Self::prepare`] scores it).
    fn prepare_generated<'a>(
        &'a self,
        _tokens: &[u32],
        _answer_start: usize,
        _generation: &Generation,
    ) -> Result<Option<Box<dyn Scored + 'a>>, BackendError> {
        Ok(None)
    }
    /// A step-by-step session after `prompt`, with room for `reserve` more
    /// tokens; views keep at least `top_k` tokens; greedy choices stop at
    /// `eos` (empty: the model's own). A backend without a stepping engine of
    /// its own returns a [`ScoringSession`] over its scoring and generation.
    fn session<'m>(
        &'m self,
        prompt: &[u32],
        reserve: usize,
        top_k: usize,
        eos: &[u32],
    ) -> Result<Box<dyn Session<'m> + 'm>, BackendError>;
    /// What the run's identity records of the server computing this side
    /// (None for the local engine).
    fn server_identity(&self) -> Option<aligntds_formats::summary::ServerIdentity> {
        None
    }
    /// Where this side's distributions come from, for `inspect`: a server's
    /// addresses and what it reported (empty for the local engine, whose
    /// model describes itself).
    fn describe(&self) -> Vec<(&'static str, serde_json::Value)> {
        Vec::new()
    }
    /// Greedy generation from `prompt` (eos ids empty: the model's own).
    fn generate(
        &self,
        prompt: &[u32],
        options: &GenerateOptions,
    ) -> Result<Generation, BackendError>;
}

/// One side of a study: the local text model (tokenizer, chat template, stop
/// tokens) and the backend that computes its distributions.
#[derive(Clone)]
pub struct Side {
    pub text: Arc<TextModel>,
    pub backend: Arc<dyn Backend>,
}

impl Side {
    pub fn new(text: Arc<TextModel>, backend: Arc<dyn Backend>) -> Self {
        Self { text, backend }
    }

    /// A side computed by the local engine with the model's own text side.
    pub fn local(model: Arc<LanguageModel>) -> Self {
        Self {
            text: model.text.clone(),
            backend: Arc::new(LocalBackend::new(model)),
        }
    }
}

/// Per-server counters for progress and the closing figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerStats {
    pub url: String,
    pub requests: u64,
    pub failures: u64,
    /// Tokens the server computed (scored positions and generated tokens).
    pub tokens: u64,
    /// Whether the last request to it succeeded.
    pub healthy: bool,
}
