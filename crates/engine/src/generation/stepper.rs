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
        crate::kernels::fastmath::log_softmax_into(&logits, row);
        self.tokens.extend_from_slice(tokens);
        Ok(())
    }

    /// Appends one token to each of two sequences and writes each one's next
    /// log-distribution. Where both run on the same model (one model under
    /// two contexts), the two steps share one packed pass, so the weights are
    /// read once; a packed row computes what a pass over it alone does.
    pub fn feed_pair(
        (a, a_token, a_row): (&mut Stepper<'m>, u32, &mut Vec<f32>),
        (b, b_token, b_row): (&mut Stepper<'m>, u32, &mut Vec<f32>),
    ) -> Result<()> {
        if !std::ptr::eq(a.decoder, b.decoder) {
            a.feed(&[a_token], a_row)?;
            return b.feed(&[b_token], b_row);
        }
        let decoder = a.decoder;
        decoder.check_tokens(&[a_token], a.tokens.len())?;
        decoder.check_tokens(&[b_token], b.tokens.len())?;
        let hidden = decoder.hidden_states_packed(
            &[a_token, b_token],
            &mut [
                Segment {
                    len: 1,
                    cache: Some(&mut a.cache),
                },
                Segment {
                    len: 1,
                    cache: Some(&mut b.cache),
                },
            ],
        )?;
        let logits = decoder.logits(&hidden)?.flatten_all()?.to_vec1::<f32>()?;
        let width = logits.len() / 2;
        for (row, logits) in [a_row, b_row].into_iter().zip(logits.chunks_exact(width)) {
            row.resize(width, 0.0);
            crate::kernels::fastmath::log_softmax_into(logits, row);
        }
        a.tokens.push(a_token);
        b.tokens.push(b_token);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::LanguageModel;

    fn fixture() -> LanguageModel {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/qwen2");
        LanguageModel::load(dir.to_str().unwrap(), &Default::default()).unwrap()
    }

    #[test]
    fn two_steps_in_one_pass_equal_two_steps_alone_and_a_teacher_forced_pass() {
        let model = fixture();
        let (pa, pb): (Vec<u32>, Vec<u32>) = ((3..40).collect(), (50..61).collect());
        let (mut a, mut b) = (model.stepper(64), model.stepper(64));
        let (mut alone_a, mut alone_b) = (model.stepper(64), model.stepper(64));
        let mut rows: [Vec<f32>; 4] = Default::default();
        a.feed(&pa, &mut rows[0]).unwrap();
        b.feed(&pb, &mut rows[1]).unwrap();
        alone_a.feed(&pa, &mut rows[2]).unwrap();
        alone_b.feed(&pb, &mut rows[3]).unwrap();
        for (ta, tb) in [(7u32, 9u32), (11, 13), (100, 2)] {
            let [ra, rb, sa, sb] = &mut rows;
            super::Stepper::feed_pair((&mut a, ta, ra), (&mut b, tb, rb)).unwrap();
            alone_a.feed(&[ta], sa).unwrap();
            alone_b.feed(&[tb], sb).unwrap();
            for (x, y) in [(&*ra, &*sa), (&*rb, &*sb)] {
                let worst = x
                    .iter()
                    .zip(y)
                    .map(|(p, q)| (p - q).abs())
                    .fold(0f32, f32::max);
                assert!(worst <= 1e-5, "{worst}");
            }
        }
        // The last row also equals the teacher-forced pass over the whole sequence.
        let tokens: Vec<u32> = pa.iter().copied().chain([7, 11, 100]).collect();
        let mut forced = Vec::new();
        let n = tokens.len();
        model
            .prepare_scoring(&tokens, n - 1)
            .unwrap()
            .log_probs(0, 1, &mut forced)
            .unwrap();
        let mut before_last = model.stepper(64);
        let mut row = Vec::new();
        before_last.feed(&tokens[..n - 1], &mut row).unwrap();
        let worst = row
            .iter()
            .zip(&forced)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-4, "{worst}");
        assert_eq!(a.tokens(), &tokens[..]);
    }
}
