//! One side of a live pair: its text model and its backend, stepped through
//! the seam's sessions ([`crate::backend::Session`]) whatever computes it.

use std::sync::Arc;

use aligntds_engine::{LanguageModel, TextModel};

use crate::backend::{Backend, Session, View};
use crate::metrics::{compare, compare_top_k, PositionMetrics, Thresholds, TopKRow, COMPAT_KEEP};

/// One loaded side: its text model (tokenizer, template, stop tokens) and
/// the backend that computes its distributions.
pub struct LiveSide {
    pub text: Arc<TextModel>,
    pub backend: Arc<dyn Backend>,
    /// The weights, where the side runs on the local engine (for what
    /// `/api/info` shows of it).
    pub model: Option<Arc<LanguageModel>>,
}

impl LiveSide {
    /// The local model, where the side runs on the local engine.
    pub fn model(&self) -> Option<&LanguageModel> {
        self.model.as_deref()
    }

    /// The most tokens one sequence may hold.
    pub fn context_length(&self) -> usize {
        self.backend.context_length()
    }

    /// What ran, as a run's manifest names it (`f32`, `vllm:NAME`).
    pub fn weights(&self) -> String {
        self.backend.weights()
    }

    /// Token ids below this are in the side's vocabulary.
    pub fn vocabulary(&self) -> usize {
        self.backend
            .logits_width()
            .unwrap_or_else(|| self.text.tokenizer.vocab_size())
    }

    /// A session after `prompt` (room reserved for `reserve` more tokens).
    pub(super) fn start(
        &self,
        prompt: &[u32],
        reserve: usize,
        top_k: usize,
    ) -> Result<Box<dyn Session<'_> + '_>, crate::backend::BackendError> {
        self.backend
            .session(prompt, reserve, top_k, &self.text.eos_token_ids)
    }
}

/// The metrics at one position from both sides' views, as `analyze` computes
/// them: exact over two full rows, from top-k views otherwise.
pub(super) fn metrics(
    a: View<'_>,
    b: View<'_>,
    token: u32,
    top_k: usize,
    thresholds: Thresholds,
) -> PositionMetrics {
    let keep = top_k.max(COMPAT_KEEP);
    match (a, b) {
        (View::Full(a), View::Full(b)) => compare(a, b, token, top_k, thresholds),
        (a, b) => {
            let view = |v: View<'_>| match v {
                View::Full(row) => TopKRow::from_full(row, token, keep),
                View::TopK(row) => row,
            };
            compare_top_k(&view(a), &view(b), token, top_k, thresholds)
        }
    }
}
