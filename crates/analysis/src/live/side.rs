//! One side of a live pair behind the backend seam: the local engine (its own
//! cache, fed one token per step, full rows) or a backend such as vLLM
//! servers (top-k views; each step asks the server for the row of the new
//! token, which its prefix cache makes cheap).

use std::sync::Arc;

use aligntds_engine::score::argmax;
use aligntds_engine::{GenerateOptions, LanguageModel, Stepper, TextModel};

use crate::backend::{Backend, Rows};
use crate::metrics::{compare, compare_top_k, PositionMetrics, Thresholds, TopKRow, COMPAT_KEEP};

use super::LiveError;

/// What computes a side's distributions.
#[derive(Clone)]
pub enum SideEngine {
    Local(Arc<LanguageModel>),
    /// A remote backend (vLLM servers): top-k views.
    Remote(Arc<dyn Backend>),
}

/// One loaded side: its text model (tokenizer, template, stop tokens) and engine.
pub struct LiveSide {
    pub text: Arc<TextModel>,
    pub engine: SideEngine,
}

impl LiveSide {
    /// The local model, where the side runs on the local engine.
    pub fn model(&self) -> Option<&LanguageModel> {
        match &self.engine {
            SideEngine::Local(m) => Some(m),
            SideEngine::Remote(_) => None,
        }
    }

    /// The most tokens one sequence may hold.
    pub fn context_length(&self) -> usize {
        match &self.engine {
            SideEngine::Local(m) => m.context_length(),
            SideEngine::Remote(b) => b.context_length(),
        }
    }

    /// What ran, as a run's manifest names it (`f32`, `vllm:NAME`).
    pub fn weights(&self) -> String {
        match &self.engine {
            SideEngine::Local(m) => m.weights_dtype.clone(),
            SideEngine::Remote(b) => b.weights(),
        }
    }

    /// Token ids below this are in the side's vocabulary.
    pub fn vocabulary(&self) -> usize {
        match &self.engine {
            SideEngine::Local(m) => m.logits_width(),
            SideEngine::Remote(_) => self.text.tokenizer.vocab_size(),
        }
    }

    /// A cursor after `prompt` (room reserved for `reserve` more tokens).
    pub(super) fn start(
        &self,
        prompt: &[u32],
        reserve: usize,
        top_k: usize,
    ) -> Result<Cursor<'_>, LiveError> {
        Ok(match &self.engine {
            SideEngine::Local(model) => {
                let mut stepper = model.stepper(prompt.len() + reserve);
                let mut row = Vec::new();
                stepper.feed(prompt, &mut row)?;
                Cursor::Local { stepper, row }
            }
            SideEngine::Remote(backend) => Cursor::Remote {
                backend: backend.as_ref(),
                tokens: prompt.to_vec(),
                top_k,
                eos: self.text.eos_token_ids.clone(),
                limit: backend.context_length(),
            },
        })
    }
}

/// A side's sequence so far; see [`LiveSide::start`].
pub(super) enum Cursor<'a> {
    Local {
        stepper: Stepper<'a>,
        /// The log-distribution after the tokens fed so far.
        row: Vec<f32>,
    },
    Remote {
        backend: &'a dyn Backend,
        tokens: Vec<u32>,
        top_k: usize,
        eos: Vec<u32>,
        limit: usize,
    },
}

/// A side's distribution at one position.
pub(super) enum View<'r> {
    Full(&'r [f32]),
    TopK(TopKRow),
}

impl Cursor<'_> {
    /// The side's greedy next token.
    pub fn choose(&mut self) -> Result<u32, LiveError> {
        match self {
            Cursor::Local { row, .. } => Ok(argmax(row) as u32),
            Cursor::Remote {
                backend,
                tokens,
                eos,
                ..
            } => {
                let options = GenerateOptions {
                    max_new_tokens: 1,
                    stop_strings: Vec::new(),
                    eos_token_ids: eos.clone(),
                };
                let generation = backend.generate(tokens, &options).map_err(remote)?;
                generation.tokens.first().copied().ok_or_else(|| {
                    remote(crate::backend::BackendError::Remote {
                        backend: backend.weights(),
                        message: "generated no token".into(),
                    })
                })
            }
        }
    }

    /// The distribution at the next position, seen from `token` there.
    pub fn view(&mut self, token: u32) -> Result<View<'_>, LiveError> {
        match self {
            Cursor::Local { row, .. } => Ok(View::Full(row)),
            Cursor::Remote {
                backend,
                tokens,
                top_k,
                ..
            } => {
                let start = tokens.len();
                tokens.push(token);
                let scored = backend.prepare(tokens, start, *top_k);
                tokens.pop();
                let mut scored = scored.map_err(remote)?;
                match scored.rows(0, 1).map_err(remote)? {
                    Rows::TopK([row]) => Ok(View::TopK(row.clone())),
                    Rows::Full { data, .. } => Ok(View::TopK(TopKRow::from_full(
                        data,
                        token,
                        (*top_k).max(COMPAT_KEEP),
                    ))),
                    Rows::TopK(rows) => Err(remote(crate::backend::BackendError::Remote {
                        backend: backend.weights(),
                        message: format!("gave {} rows for one position", rows.len()),
                    })),
                }
            }
        }
    }

    /// Appends `token`: the next position's distribution follows it.
    pub fn push(&mut self, token: u32) -> Result<(), LiveError> {
        match self {
            Cursor::Local { stepper, row } => Ok(stepper.feed(&[token], row)?),
            Cursor::Remote { tokens, .. } => {
                tokens.push(token);
                Ok(())
            }
        }
    }

    /// Whether one more token fits the side's context.
    pub fn fits_one(&self) -> bool {
        match self {
            Cursor::Local { stepper, .. } => stepper.fits(1),
            Cursor::Remote { tokens, limit, .. } => tokens.len() < *limit,
        }
    }
}

/// Appends `token` to both sides' sequences: one packed pass where both run
/// on the same local model.
pub(super) fn push_both<'m>(
    a: &mut Cursor<'m>,
    b: &mut Cursor<'m>,
    token: u32,
) -> Result<(), LiveError> {
    match (a, b) {
        (
            Cursor::Local {
                stepper: sa,
                row: ra,
            },
            Cursor::Local {
                stepper: sb,
                row: rb,
            },
        ) => Ok(Stepper::feed_pair((sa, token, ra), (sb, token, rb))?),
        (a, b) => {
            a.push(token)?;
            b.push(token)
        }
    }
}

fn remote(e: crate::backend::BackendError) -> LiveError {
    LiveError::Run(crate::study::record::RunError::Backend(e))
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
