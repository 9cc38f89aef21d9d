//! Greedy generation with a key/value cache.

use crate::error::Result;
use crate::models::decoder::Decoder;
use crate::score::{argmax, log_softmax_in_place};
use crate::tokenizer::TextTokenizer;

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    /// Generation stops before the first of these strings; it and the token it starts in are dropped.
    pub stop_strings: Vec<String>,
    /// Tokens that end generation (kept as the answer's last token).
    pub eos_token_ids: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    Eos,
    StopString(String),
    MaxNewTokens,
    /// The model's context (max_position_embeddings) is full.
    ContextFull,
}

#[derive(Debug, Clone)]
pub struct Generation {
    /// The answer's token ids, with a final eos when one was generated.
    pub tokens: Vec<u32>,
    /// Each answer token's log-probability under the model.
    pub logprobs: Vec<f32>,
    pub stop_reason: StopReason,
}

fn next_token(decoder: &Decoder, hidden_last: &candle_core::Tensor) -> Result<(u32, f32)> {
    let mut row = decoder
        .logits(hidden_last)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    log_softmax_in_place(&mut row);
    let id = argmax(&row);
    Ok((id as u32, row[id]))
}

/// Greedy decoding of `prompt` (token ids, at least one).
pub fn generate(
    decoder: &Decoder,
    tokenizer: &TextTokenizer,
    prompt: &[u32],
    options: &GenerateOptions,
) -> Result<Generation> {
    // One token at a time, each step is hundreds of small parallel operations:
    // running the loop on a pool thread lets it take part in them, instead of
    // handing every one to the pool and sleeping until it returns.
    rayon::scope(|_| generate_on_pool(decoder, tokenizer, prompt, options))
}

fn generate_on_pool(
    decoder: &Decoder,
    tokenizer: &TextTokenizer,
    prompt: &[u32],
    options: &GenerateOptions,
) -> Result<Generation> {
    let mut cache = decoder.new_cache();
    let mut tokens = Vec::new();
    let mut logprobs = Vec::new();
    if options.max_new_tokens == 0 {
        return Ok(Generation {
            tokens,
            logprobs,
            stop_reason: StopReason::MaxNewTokens,
        });
    }
    let hidden = decoder.hidden_states(prompt, Some(&mut cache))?;
    let mut last = hidden.narrow(0, prompt.len() - 1, 1)?;
    loop {
        let (id, logprob) = next_token(decoder, &last)?;
        tokens.push(id);
        logprobs.push(logprob);
        if options.eos_token_ids.contains(&id) {
            return Ok(Generation {
                tokens,
                logprobs,
                stop_reason: StopReason::Eos,
            });
        }
        if let Some((keep, stop)) = find_stop(tokenizer, &tokens, &options.stop_strings)? {
            tokens.truncate(keep);
            logprobs.truncate(keep);
            return Ok(Generation {
                tokens,
                logprobs,
                stop_reason: StopReason::StopString(stop),
            });
        }
        if tokens.len() >= options.max_new_tokens {
            return Ok(Generation {
                tokens,
                logprobs,
                stop_reason: StopReason::MaxNewTokens,
            });
        }
        if cache.len() + 1 > decoder.config().max_position_embeddings {
            return Ok(Generation {
                tokens,
                logprobs,
                stop_reason: StopReason::ContextFull,
            });
        }
        last = decoder.hidden_states(&[id], Some(&mut cache))?;
    }
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
