//! Greedy generation with a key/value cache: options, results, stop rules.
//! The decoding loop itself is batched (batch.rs, which also has the
//! single-sequence entry point).

use crate::error::Result;
use crate::tokenizer::TextTokenizer;

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    /// Generation stops before the first of these strings; it and the token it starts in are dropped.
    pub stop_strings: Vec<String>,
    /// Tokens that end generation (kept as the answer's last token).
    pub eos_token_ids: Vec<u32>,
    /// Checked after every decoding step: once set, generation stops with
    /// [`StopReason::Cancelled`] (the tokens so far kept).
    pub cancel: crate::Cancel,
    /// Draw each token from the distribution; None: greedy (the largest
    /// log-probability, the first on ties).
    pub sampling: Option<crate::Sampling>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    Eos,
    StopString(String),
    MaxNewTokens,
    /// The model's context (max_position_embeddings) is full.
    ContextFull,
    /// The options' cancel token was set.
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct Generation {
    /// The answer's token ids, with a final eos when one was generated.
    pub tokens: Vec<u32>,
    /// Each answer token's log-probability under the model.
    pub logprobs: Vec<f32>,
    pub stop_reason: StopReason,
    /// The final-norm hidden state that predicted each answer token, row-major
    /// `[tokens, hidden size]` in f32 (exact for every dtype the engine runs):
    /// the answer's scores without another forward pass
    /// ([`crate::LanguageModel::scoring_from_generation`]). Empty where the
    /// generator keeps none (an inference server).
    pub hidden_states: Vec<f32>,
}

/// When the decoded answer contains a stop string, the number of tokens to keep
/// (those whose text ends before the stop string begins) and the string found.
pub fn find_stop(
    tokenizer: &TextTokenizer,
    tokens: &[u32],
    stops: &[String],
) -> Result<Option<(usize, String)>> {
    if stops.is_empty() {
        return Ok(None);
    }
    let text = tokenizer.decode(tokens, false)?;
    let found = stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|p| (p, s)))
        .min_by_key(|(p, _)| *p);
    let Some((at, stop)) = found else {
        return Ok(None);
    };
    for keep in (0..tokens.len()).rev() {
        let prefix = tokenizer.decode(&tokens[..keep], false)?;
        if prefix.len() <= at && text.starts_with(&prefix) {
            return Ok(Some((keep, stop.clone())));
        }
    }
    Ok(Some((0, stop.clone())))
}
