//! Batched greedy generation: many sequences decoded together, each with its
//! own key/value cache and position. A decode step runs every active
//! sequence's newest token through one packed forward pass, so the weights are
//! read once per step for all of them instead of once per sequence. Sequences
//! leave as they finish (per-sequence stop rules) and waiting ones join, their
//! prompts prefilled together.

use crate::error::{EngineError, Result};
use crate::generation::generate::{find_stop, GenerateOptions, Generation, StopReason};
use crate::models::decoder::{Decoder, KvCache, Segment};
use crate::models::PASS_ROWS;
use crate::prefix::PrefixCache;
use crate::score::argmax;
use crate::tokenizer::TextTokenizer;

/// At most this many prompt tokens in one packed prefill (a longer prompt goes
/// alone), so joining many long prompts keeps activations bounded.
const PREFILL_TOKENS: usize = 4096;

/// A sequence to generate.
pub struct Request {
    /// The caller's name for it, given back in [`Finished`].
    pub key: u64,
    /// The prompt's token ids.
    pub prompt: Vec<u32>,
    pub options: GenerateOptions,
    /// A cached prefix the prompt continues: only the rest is prefilled.
    pub prefix: Option<std::sync::Arc<PrefixCache>>,
}

/// A finished sequence: the caller's key and its answer (or why it failed).
pub struct Finished {
    pub key: u64,
    pub result: Result<Generation>,
}

struct Sequence {
    key: u64,
    cache: KvCache,
    tokens: Vec<u32>,
    logprobs: Vec<f32>,
    /// The hidden state behind each token (see [`Generation::hidden_states`]).
    hidden: Vec<f32>,
    options: GenerateOptions,
}

/// Sequences being decoded together; see the module docs.
pub struct BatchGenerator<'m> {
    decoder: &'m Decoder,
    tokenizer: &'m TextTokenizer,
    default_eos: Vec<u32>,
    capacity: usize,
    active: Vec<Sequence>,
}

impl<'m> BatchGenerator<'m> {
    pub(crate) fn new(
        decoder: &'m Decoder,
        tokenizer: &'m TextTokenizer,
        default_eos: Vec<u32>,
        capacity: usize,
    ) -> Self {
        Self {
            decoder,
            tokenizer,
            default_eos,
            capacity: capacity.max(1),
            active: Vec::new(),
        }
    }

    /// Sequences being decoded.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// How many more sequences may join.
    pub fn free(&self) -> usize {
        self.capacity.saturating_sub(self.active.len())
    }

    /// Adds sequences (at most [`Self::free`] are taken; the rest are returned
    /// untouched): prefills their prompts and takes each one's first token.
    /// Returns the ones already finished, and those that did not fit.
    pub fn join(&mut self, mut requests: Vec<Request>) -> Result<(Vec<Finished>, Vec<Request>)> {
        let rest = requests.split_off(self.free().min(requests.len()));
        let mut finished = Vec::new();
        let mut ready = Vec::new();
        for mut r in requests {
            if r.options.eos_token_ids.is_empty() {
                r.options.eos_token_ids = self.default_eos.clone();
            }
            let problem = if r.prompt.is_empty() {
                Some(EngineError::Input("the prompt encodes to no tokens".into()))
            } else {
                self.decoder.check_tokens(&r.prompt, 0).err()
            };
            match problem {
                Some(e) => finished.push(Finished {
                    key: r.key,
                    result: Err(e),
                }),
                None if r.options.max_new_tokens == 0 => finished.push(Finished {
                    key: r.key,
                    result: Ok(Generation {
                        tokens: Vec::new(),
                        logprobs: Vec::new(),
                        stop_reason: StopReason::MaxNewTokens,
                        hidden_states: Vec::new(),
                    }),
                }),
                None => {
                    // A prefix the prompt does not continue is not used.
                    let reused = r.prefix.take().filter(|p| {
                        p.continued_by(&r.prompt)
                            && p.holds_for(r.prompt.len() + r.options.max_new_tokens)
                    });
                    let cached = reused.as_ref().map_or(0, |p| p.len());
                    let cache = match &reused {
                        Some(p) => p.fork(r.prompt.len() - cached + r.options.max_new_tokens)?,
                        None => self
                            .decoder
                            .new_cache_for(r.prompt.len() + r.options.max_new_tokens),
                    };
                    ready.push((r, cache, cached));
                }
            }
        }
        // Prompts (past their cached prefixes) packed into passes of at most PREFILL_TOKENS.
        while !ready.is_empty() {
            let run = |(r, _, cached): &(Request, KvCache, usize)| r.prompt.len() - cached;
            // A prompt short enough for the small-pass kernels is prefilled
            // alone, as it would be without company: a prompt's states then
            // never depend on the prompts beside it (rows of a GEMM do not).
            let packs = |r: &(Request, KvCache, usize)| run(r) > PASS_ROWS;
            let mut take = 1;
            let mut tokens = run(&ready[0]);
            while take < ready.len()
                && packs(&ready[0])
                && packs(&ready[take])
                && tokens + run(&ready[take]) <= PREFILL_TOKENS
            {
                tokens += run(&ready[take]);
                take += 1;
            }
            let mut group: Vec<_> = ready.drain(..take).collect();
            let packed: Vec<u32> = group
                .iter()
                .flat_map(|(r, _, cached)| r.prompt[*cached..].iter().copied())
                .collect();
            let lasts = {
                let lens: Vec<usize> = group.iter().map(run).collect();
                let mut segments: Vec<Segment> = group
                    .iter_mut()
                    .zip(&lens)
                    .map(|((_, cache, _), &len)| Segment {
                        len,
                        cache: Some(cache),
                    })
                    .collect();
                let hidden = self.decoder.hidden_states_packed(&packed, &mut segments)?;
                let mut rows = Vec::with_capacity(lens.len());
                let mut end = 0;
                for len in lens {
                    end += len;
                    rows.push(hidden.narrow(0, end - 1, 1)?);
                }
                candle_core::Tensor::cat(&rows, 0)?
            };
            let draws: Vec<_> = group
                .iter()
                .map(|(r, _, _)| (r.options.sampling, 0))
                .collect();
            let next = self.next_tokens(&lasts, &draws)?;
            let rows = hidden_rows(&lasts)?;
            for (((r, cache, _), (id, logprob)), row) in group.into_iter().zip(next).zip(rows) {
                let mut sequence = Sequence {
                    key: r.key,
                    cache,
                    tokens: Vec::new(),
                    logprobs: Vec::new(),
                    hidden: Vec::new(),
                    options: r.options,
                };
                match self.advance(&mut sequence, id, logprob, row) {
                    Ok(None) => self.active.push(sequence),
                    Ok(Some(reason)) => finished.push(done(sequence, reason)),
                    Err(e) => finished.push(Finished {
                        key: sequence.key,
                        result: Err(e),
                    }),
                }
            }
        }
        Ok((finished, rest))
    }

    /// One decode step for every active sequence; returns those that finished.
    pub fn step(&mut self) -> Result<Vec<Finished>> {
        if self.active.is_empty() {
            return Ok(Vec::new());
        }
        let last: Vec<u32> = self
            .active
            .iter()
            .map(|s| s.tokens.last().copied().unwrap_or_default())
            .collect();
        let hidden = {
            let mut segments: Vec<Segment> = self
                .active
                .iter_mut()
                .map(|s| Segment {
                    len: 1,
                    cache: Some(&mut s.cache),
                })
                .collect();
            self.decoder.hidden_states_packed(&last, &mut segments)?
        };
        let draws: Vec<_> = self
            .active
            .iter()
            .map(|s| (s.options.sampling, s.tokens.len()))
            .collect();
        let next = self.next_tokens(&hidden, &draws)?;
        let rows = hidden_rows(&hidden)?;
        let mut finished = Vec::new();
        let mut still = Vec::with_capacity(self.active.len());
        let active = std::mem::take(&mut self.active);
        for ((mut sequence, (id, logprob)), row) in active.into_iter().zip(next).zip(rows) {
            match self.advance(&mut sequence, id, logprob, row) {
                Ok(None) => still.push(sequence),
                Ok(Some(reason)) => finished.push(done(sequence, reason)),
                Err(e) => finished.push(Finished {
                    key: sequence.key,
                    result: Err(e),
                }),
            }
        }
        self.active = still;
        Ok(finished)
    }

    /// The next token and its log-probability for each hidden row `[n,
    /// hidden]`: greedy, or draw `index` of the row's sampling (`draws`, one
    /// per row: the draw's index is the sequence's token count, so a
    /// sequence draws the same whatever shares its batch).
    fn next_tokens(
        &self,
        hidden: &candle_core::Tensor,
        draws: &[(Option<crate::Sampling>, usize)],
    ) -> Result<Vec<(u32, f32)>> {
        let width = self.decoder.logits_width();
        let logits = self
            .decoder
            .logits(hidden)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(logits
            .chunks_exact(width)
            .zip(draws)
            .map(|(logits, (sampling, index))| {
                let mut row = vec![0f32; logits.len()];
                crate::kernels::fastmath::log_softmax_into(logits, &mut row);
                let id = match sampling {
                    Some(s) => s.choose(&row, *index),
                    None => argmax(&row),
                };
                (id as u32, row[id])
            })
            .collect())
    }

    /// Appends a generated token and applies the stop rules, in the order the
    /// single-sequence loop always has: eos, stop strings, length, context.
    fn advance(
        &self,
        s: &mut Sequence,
        id: u32,
        logprob: f32,
        hidden: Vec<f32>,
    ) -> Result<Option<StopReason>> {
        let width = hidden.len();
        s.tokens.push(id);
        s.logprobs.push(logprob);
        s.hidden.extend(hidden);
        if s.options.eos_token_ids.contains(&id) {
            return Ok(Some(StopReason::Eos));
        }
        if let Some((keep, stop)) = find_stop(self.tokenizer, &s.tokens, &s.options.stop_strings)? {
            s.tokens.truncate(keep);
            s.logprobs.truncate(keep);
            s.hidden.truncate(keep * width);
            return Ok(Some(StopReason::StopString(stop)));
        }
        if s.tokens.len() >= s.options.max_new_tokens {
            return Ok(Some(StopReason::MaxNewTokens));
        }
        if s.cache.len() + 1 > self.decoder.config().max_position_embeddings {
            return Ok(Some(StopReason::ContextFull));
        }
        if s.options.cancel.is_cancelled() {
            return Ok(Some(StopReason::Cancelled));
        }
        Ok(None)
    }
}

fn done(sequence: Sequence, stop_reason: StopReason) -> Finished {
    Finished {
        key: sequence.key,
        result: Ok(Generation {
            tokens: sequence.tokens,
            logprobs: sequence.logprobs,
            stop_reason,
            hidden_states: sequence.hidden,
        }),
    }
}

/// The rows of hidden states `[n, hidden]` in f32, one vector each.
fn hidden_rows(hidden: &candle_core::Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(hidden.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?)
}

/// Greedy decoding of `prompt` (token ids, at least one; continuing `prefix`'s
/// cache where it is given and the prompt continues it): a batch of one, so a
/// sequence stops by exactly the rules it would in a batch.
pub(crate) fn generate_one(
    decoder: &Decoder,
    tokenizer: &TextTokenizer,
    prompt: &[u32],
    options: &GenerateOptions,
    prefix: Option<&std::sync::Arc<crate::prefix::PrefixCache>>,
) -> Result<Generation> {
    let generator = BatchGenerator::new(decoder, tokenizer, options.eos_token_ids.clone(), 1);
    let requests = requests(&[prompt.to_vec()], options, prefix);
    generate_all(generator, requests)?
        .pop()
        .unwrap_or_else(|| Err(EngineError::Input("no generation".into())))
}

/// Generates every request with at most `batch` decoded together, waiting
/// ones joining as others finish; results in the requests' order (their keys
/// must be 0..n).
pub(crate) fn generate_all(
    mut generator: BatchGenerator<'_>,
    mut waiting: Vec<Request>,
) -> Result<Vec<Result<Generation>>> {
    let mut results: Vec<Option<Result<Generation>>> = waiting.iter().map(|_| None).collect();
    let mut keep = |f: Finished| {
        if let Some(slot) = results.get_mut(f.key as usize) {
            *slot = Some(f.result);
        }
    };
    // Decoding runs on a pool thread, so it takes part in the many small
    // parallel operations of a step instead of sleeping until each returns.
    rayon::scope(|_| -> Result<()> {
        while !waiting.is_empty() || generator.active() > 0 {
            if generator.free() > 0 && !waiting.is_empty() {
                let (finished, rest) = generator.join(std::mem::take(&mut waiting))?;
                waiting = rest;
                finished.into_iter().for_each(&mut keep);
            }
            generator.step()?.into_iter().for_each(&mut keep);
        }
        Ok(())
    })?;
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(EngineError::Input("a prompt was not generated".into()))))
        .collect())
}

/// Requests for `prompts` under the same options, keyed by their index.
pub(crate) fn requests(
    prompts: &[Vec<u32>],
    options: &GenerateOptions,
    prefix: Option<&std::sync::Arc<PrefixCache>>,
) -> Vec<Request> {
    prompts
        .iter()
        .enumerate()
        .map(|(i, p)| Request {
            key: i as u64,
            prompt: p.clone(),
            options: options.clone(),
            prefix: prefix.cloned(),
        })
        .collect()
}
