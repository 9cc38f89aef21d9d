//! One sequence advanced a few tokens at a time with its own key/value cache:
//! each call runs only the new tokens and gives the log-distribution after the
//! last of them. A live view streams an answer with it (one side choosing
//! tokens, the other scoring each as it comes) at a flat cost per token, where
//! a teacher-forced pass would re-run the whole prefix every time.
//!
//! A prompt fed at once and then one token per call is the arithmetic of
//! [`crate::LanguageModel::generate`] (its prefill, then its decode steps), so
//! choosing the arg-max of each row reproduces `generate`'s greedy answer.

use crate::error::{EngineError, Result};
use crate::models::decoder::{Decoder, KvCache, Segment};

/// A sequence being extended; see the module docs.
pub struct Stepper<'m> {
    decoder: &'m Decoder,
    cache: KvCache,
    tokens: Vec<u32>,
}

impl<'m> Stepper<'m> {
    pub(crate) fn new(decoder: &'m Decoder, reserve: usize) -> Self {
        Self {
            decoder,
            cache: decoder.new_cache_for(reserve),
            tokens: Vec::new(),
        }
    }

    /// Tokens fed so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether `more` tokens still fit the model's context.
    pub fn fits(&self, more: usize) -> bool {
        self.tokens.len() + more <= self.decoder.config().max_position_embeddings
    }

    /// Appends `tokens` (at least one) and writes the log-distribution over the
    /// vocabulary that follows the last of them into `row` (its memory reused).
    pub fn feed(&mut self, tokens: &[u32], row: &mut Vec<f32>) -> Result<()> {
        if tokens.is_empty() {
            return Err(EngineError::Input("no tokens to feed".into()));
        }
        self.decoder.check_tokens(tokens, self.tokens.len())?;
        let hidden = self.decoder.hidden_states_packed(
            tokens,
            &mut [Segment {
                len: tokens.len(),
                cache: Some(&mut self.cache),
            }],
        )?;
        let last = hidden.narrow(0, tokens.len() - 1, 1)?;
        let logits = self
            .decoder
            .logits(&last)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        row.resize(logits.len(), 0.0);
        crate::fastmath::log_softmax_into(&logits, row);
        self.tokens.extend_from_slice(tokens);
        Ok(())
    }
}
