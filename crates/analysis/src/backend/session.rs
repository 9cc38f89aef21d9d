//! Step-by-step sessions on the seam: a sequence extended one token at a
//! time, with the side's distribution after each token. The live pair runs
//! both sides through this, whatever computes them.
//!
//! The local engine keeps its own key/value cache and gives full rows
//! ([`super::LocalBackend`]); any other backend can step by what the seam
//! already offers ([`ScoringSession`]): the row of a new token is a scoring
//! request for the prefix plus that token (cheap on a server with a prefix
//! cache), and a greedy choice is a one-token generation.

use aligntds_engine::{GenerateOptions, Stepper};

use super::{Backend, BackendError, Rows};
use crate::metrics::{TopKRow, COMPAT_KEEP};

/// A side's distribution at one position.
pub enum View<'r> {
    /// The full log-distribution.
    Full(&'r [f32]),
    /// A top-k view with the token's own rank and log-probability.
    TopK(TopKRow),
}

/// A sequence a backend extends one token at a time; `'m` is the backend's
/// borrow. Errors are the backend's.
pub trait Session<'m> {
    /// The side's next token after the sequence so far: greedy, or draw
    /// `index` of `sampling`.
    fn choose(
        &mut self,
        sampling: Option<&aligntds_engine::Sampling>,
        index: usize,
    ) -> Result<u32, BackendError>;
    /// The distribution at the next position, seen from `token` there (its
    /// rank and log-probability exact; the rest as the backend gives it).
    fn view(&mut self, token: u32) -> Result<View<'_>, BackendError>;
    /// Appends `token`: the next position's distribution follows it.
    fn push(&mut self, token: u32) -> Result<(), BackendError>;
    /// Whether one more token fits the side's context.
    fn fits_one(&self) -> bool;
    /// The local engine's stepper and current row, where this session has
    /// them, so that two sessions on one model share a pass ([`push_both`]).
    fn stepper(&mut self) -> Option<(&mut Stepper<'m>, &mut Vec<f32>)> {
        None
    }
}

/// Appends `token` to both sessions: one packed pass where both step the
/// same local model (the weights read once), else one step each.
pub fn push_both<'m>(
    a: &mut dyn Session<'m>,
    b: &mut dyn Session<'m>,
    token: u32,
) -> Result<(), BackendError> {
    if let (Some((sa, ra)), Some((sb, rb))) = (a.stepper(), b.stepper()) {
        return Ok(Stepper::feed_pair((sa, token, ra), (sb, token, rb))?);
    }
    a.push(token)?;
    b.push(token)
}

/// A session over any backend's scoring and generation: each view asks for
/// the row of one new token, each choice for a one-token generation.
pub struct ScoringSession<'m> {
    backend: &'m dyn Backend,
    tokens: Vec<u32>,
    top_k: usize,
    eos: Vec<u32>,
}

impl<'m> ScoringSession<'m> {
    /// A session after `prompt`; choices stop at `eos` (empty: the model's own).
    pub fn new(backend: &'m dyn Backend, prompt: &[u32], top_k: usize, eos: &[u32]) -> Self {
        Self {
            backend,
            tokens: prompt.to_vec(),
            top_k,
            eos: eos.to_vec(),
        }
    }

    fn failure(&self, message: String) -> BackendError {
        BackendError::Remote {
            backend: self.backend.weights(),
            message,
        }
    }
}

impl<'m> Session<'m> for ScoringSession<'m> {
    fn choose(
        &mut self,
        sampling: Option<&aligntds_engine::Sampling>,
        _index: usize,
    ) -> Result<u32, BackendError> {
        // A server draws with its own generator, seeded from the stream at
        // the sequence's position (see vllm's generate), so `index` is not
        // needed here.
        let options = GenerateOptions {
            max_new_tokens: 1,
            stop_strings: Vec::new(),
            eos_token_ids: self.eos.clone(),
            cancel: Default::default(),
            sampling: sampling.copied(),
        };
        let generation = self.backend.generate(&self.tokens, &options)?;
        match generation.tokens.first() {
            Some(&token) => Ok(token),
            None => Err(self.failure("generated no token".into())),
        }
    }

    fn view(&mut self, token: u32) -> Result<View<'_>, BackendError> {
        let start = self.tokens.len();
        self.tokens.push(token);
        let scored = self.backend.prepare(&self.tokens, start, self.top_k);
        self.tokens.pop();
        let mut scored = scored?;
        let keep = self.top_k.max(COMPAT_KEEP);
        let row = match scored.rows(0, 1)? {
            Rows::TopK([row]) => Ok(row.clone()),
            Rows::Full { data, .. } => Ok(TopKRow::from_full(data, token, keep)),
            Rows::TopK(rows) => Err(rows.len()),
        };
        drop(scored);
        row.map(View::TopK)
            .map_err(|n| self.failure(format!("gave {n} rows for one position")))
    }

    fn push(&mut self, token: u32) -> Result<(), BackendError> {
        self.tokens.push(token);
        Ok(())
    }

    fn fits_one(&self) -> bool {
        self.tokens.len() < self.backend.context_length()
    }
}
