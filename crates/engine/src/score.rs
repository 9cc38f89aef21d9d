//! Teacher-forced scoring: one forward pass over a whole sequence, then the
//! next-token log-distribution of every scored position, handed to the caller
//! chunk by chunk so `[positions x vocabulary]` never exists in full.

use rayon::prelude::*;

use crate::error::{EngineError, Result};
use crate::models::decoder::{Decoder, Segment};
use crate::models::PASS_ROWS;
use crate::prefix::PrefixCache;

/// Bytes of log-probabilities held at once while scoring.
pub const DEFAULT_CHUNK_BYTES: usize = 256 << 20;

/// Log-distributions for consecutive scored positions, row-major.
pub struct LogProbRows<'a> {
    /// The sequence position whose token the first row predicts.
    pub first_position: usize,
    /// Logits width: the length of each row.
    pub width: usize,
    pub data: &'a [f32],
}

impl LogProbRows<'_> {
    pub fn len(&self) -> usize {
        self.data.len() / self.width
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The log-distribution over the token at `first_position + i`, given the tokens before it.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.width..(i + 1) * self.width]
    }

    pub fn rows(&self) -> impl Iterator<Item = (usize, &[f32])> {
        self.data
            .chunks_exact(self.width)
            .enumerate()
            .map(move |(i, r)| (self.first_position + i, r))
    }
}

/// Replaces logits by log-probabilities: the max is subtracted before
/// exponentiating and the sum is accumulated in f64.
pub fn log_softmax_in_place(row: &mut [f32]) {
    crate::kernels::fastmath::log_softmax_in_place(row)
}

/// Scores `tokens[start..]`: for each position t in `start..tokens.len()`, the
/// distribution of token t given `tokens[..t]`, from one forward pass. `start`
/// must be at least 1 (the first token has no context). `chunk_rows` caps the
/// rows per chunk; `None` sizes chunks to [`DEFAULT_CHUNK_BYTES`].
pub fn score_sequence<F>(
    decoder: &Decoder,
    tokens: &[u32],
    start: usize,
    chunk_rows: Option<usize>,
    mut sink: F,
) -> Result<()>
where
    F: FnMut(LogProbRows<'_>) -> Result<()>,
{
    if start == 0 || start > tokens.len() {
        return Err(EngineError::Input(format!(
            "scoring must start at a position between 1 and the sequence length ({}), not {start}",
            tokens.len()
        )));
    }
    decoder.check_tokens(tokens, 0)?;
    if start == tokens.len() {
        return Ok(());
    }
    // The last token's hidden state predicts nothing we score.
    let hidden = decoder.hidden_states(&tokens[..tokens.len() - 1], None)?;
    let width = decoder.logits_width();
    let rows_per_chunk = chunk_rows
        .unwrap_or(DEFAULT_CHUNK_BYTES / (width * 4))
        .max(1);
    let mut buffer: Vec<f32> = Vec::new();
    let mut position = start;
    while position < tokens.len() {
        let n = rows_per_chunk.min(tokens.len() - position);
        log_probs_into(decoder, &hidden, position - 1, n, &mut buffer)?;
        sink(LogProbRows {
            first_position: position,
            width,
            data: &buffer,
        })?;
        position += n;
    }
    Ok(())
}

/// Log-probabilities for hidden rows `first..first + n`, written into `buffer`.
fn log_probs_into(
    decoder: &Decoder,
    hidden: &candle_core::Tensor,
    first: usize,
    n: usize,
    buffer: &mut Vec<f32>,
) -> Result<()> {
    let width = decoder.logits_width();
    let rows = hidden.narrow(0, first, n)?;
    if decoder.logits_into(&rows, buffer)? {
        // The logits were written where their log-probabilities go.
        buffer
            .par_chunks_mut(width)
            .for_each(crate::kernels::fastmath::log_softmax_in_place);
        return Ok(());
    }
    let logits = decoder.logits(&rows)?.contiguous()?;
    buffer.resize(n * width, 0.0);
    let (storage, layout) = logits.storage_and_layout();
    if let (candle_core::Storage::Cpu(cpu), Some((start, end))) =
        (&*storage, layout.contiguous_offsets())
    {
        // Read the logits where the GEMM left them: one pass writes the log-probabilities.
        let logits = &cpu.as_slice::<f32>()?[start..end];
        buffer
            .par_chunks_mut(width)
            .zip(logits.par_chunks(width))
            .for_each(|(out, row)| crate::kernels::fastmath::log_softmax_into(row, out));
        return Ok(());
    }
    drop(storage);
    buffer.copy_from_slice(&logits.flatten_all()?.to_vec1::<f32>()?);
    buffer.par_chunks_mut(width).for_each(log_softmax_in_place);
    Ok(())
}

/// A sequence after its forward pass: the hidden states, from which the
/// log-distributions of answer positions are computed a chunk at a time, so
/// `[positions x vocabulary]` never exists whole.
pub struct PreparedScoring<'a> {
    decoder: &'a Decoder,
    state: ScoredHidden,
}

/// A sequence's hidden states after its forward pass, owned (it borrows no
/// model, so it may pass between threads): [`PreparedScoring::resume`] turns
/// it back into log-distributions.
pub struct ScoredHidden {
    /// Hidden states of positions `offset..` (a cached prefix covers the rest).
    hidden: Option<candle_core::Tensor>,
    offset: usize,
    answer_start: usize,
    answer_len: usize,
}

/// One sequence for [`crate::LanguageModel::prepare_scoring_packed`]: its tokens, where its answer starts,
/// and the cached prefix it continues, if any.
#[derive(Clone, Copy)]
pub struct ScoreRequest<'r> {
    pub tokens: &'r [u32],
    pub answer_start: usize,
    pub prefix: Option<&'r PrefixCache>,
}

/// Most tokens (cached and new) the sequences of one packed pass hold.
pub const PACKED_PASS_TOKENS: usize = 4096;

/// The checks of a scoring request; returns the prefix length and the answer length.
fn check_request(decoder: &Decoder, r: &ScoreRequest<'_>) -> Result<(usize, usize)> {
    let (tokens, answer_start) = (r.tokens, r.answer_start);
    if answer_start == 0 || answer_start > tokens.len() {
        return Err(EngineError::Input(format!(
            "scoring must start at a position between 1 and the sequence length ({}), not {answer_start}",
            tokens.len()
        )));
    }
    let offset = r.prefix.map_or(0, |p| p.len());
    if r.prefix
        .is_some_and(|p| !p.continued_by(tokens) || offset >= answer_start)
    {
        return Err(EngineError::Input(format!(
            "a sequence of {} tokens with its answer at {answer_start} does not continue the {offset}-token prefix before its answer",
            tokens.len()
        )));
    }
    decoder.check_tokens(tokens, 0)?;
    Ok((offset, tokens.len() - answer_start))
}

/// Runs the forward passes of several sequences, packing them into passes of
/// at most [`PACKED_PASS_TOKENS`] tokens (each sequence attends only to itself
/// and its prefix), so short records still give the projections many rows.
/// Every sequence's hidden states equal, bit for bit, those of a pass over it
/// alone: rows of a GEMM do not depend on the rows beside them, and a sequence
/// short enough that alone it would take the small-pass kernels (at most
/// `PASS_ROWS` new rows) runs alone. One result per request, in order.
pub fn prepare_packed(
    decoder: &Decoder,
    requests: &[ScoreRequest<'_>],
) -> Vec<Result<ScoredHidden>> {
    let mut results: Vec<Option<Result<ScoredHidden>>> = requests.iter().map(|_| None).collect();
    // A prefix whose cache cannot hold the whole sequence (LongRoPE's regime) is not used.
    let requests: Vec<ScoreRequest<'_>> = requests
        .iter()
        .map(|r| ScoreRequest {
            prefix: r.prefix.filter(|p| p.holds_for(r.tokens.len())),
            ..*r
        })
        .collect();
    let requests = requests.as_slice();
    // (request, prefix length, rows run): the tokens after the prefix, less the last.
    let mut packable: Vec<(usize, usize, usize)> = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        match check_request(decoder, r) {
            Err(e) => results[i] = Some(Err(e)),
            Ok((offset, answer_len)) => {
                let run = r.tokens.len() - 1 - offset;
                if answer_len == 0 || run <= PASS_ROWS {
                    results[i] = Some(run_alone(decoder, r, offset, answer_len));
                } else {
                    packable.push((i, offset, run));
                }
            }
        }
    }
    let mut rest = packable.as_slice();
    while !rest.is_empty() {
        let mut take = 1;
        let mut held = rest[0].1 + rest[0].2;
        while take < rest.len() && held + rest[take].1 + rest[take].2 <= PACKED_PASS_TOKENS {
            held += rest[take].1 + rest[take].2;
            take += 1;
        }
        let (group, after) = rest.split_at(take);
        rest = after;
        if let [(i, offset, _)] = group {
            let r = &requests[*i];
            results[*i] = Some(run_alone(
                decoder,
                r,
                *offset,
                r.tokens.len() - r.answer_start,
            ));
            continue;
        }
        match run_packed(decoder, requests, group) {
            Ok(states) => {
                for (&(i, ..), state) in group.iter().zip(states) {
                    results[i] = Some(Ok(state));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for &(i, ..) in group {
                    results[i] = Some(Err(EngineError::Input(format!(
                        "a packed scoring pass failed: {message}"
                    ))));
                }
            }
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| Err(EngineError::Input("a scoring request was not run".into())))
        })
        .collect()
}

/// One checked sequence's forward pass on its own.
fn run_alone(
    decoder: &Decoder,
    r: &ScoreRequest<'_>,
    offset: usize,
    answer_len: usize,
) -> Result<ScoredHidden> {
    let tokens = r.tokens;
    // The last token's hidden state predicts nothing we score.
    let hidden = match (answer_len, r.prefix) {
        (0, _) => None,
        (_, None) => Some(decoder.hidden_states(&tokens[..tokens.len() - 1], None)?),
        (_, Some(p)) => {
            let mut cache = p.fork(tokens.len() - offset)?;
            let rest = &tokens[offset..tokens.len() - 1];
            Some(decoder.hidden_states(rest, Some(&mut cache))?)
        }
    };
    Ok(ScoredHidden {
        hidden,
        offset,
        answer_start: r.answer_start,
        answer_len,
    })
}

/// Checked sequences `(request, prefix length, rows)` in one packed pass.
fn run_packed(
    decoder: &Decoder,
    requests: &[ScoreRequest<'_>],
    group: &[(usize, usize, usize)],
) -> Result<Vec<ScoredHidden>> {
    let mut caches = Vec::with_capacity(group.len());
    let mut packed = Vec::new();
    for &(i, offset, run) in group {
        let r = &requests[i];
        caches.push(match r.prefix {
            Some(p) => Some(p.fork(run)?),
            None => None,
        });
        packed.extend_from_slice(&r.tokens[offset..offset + run]);
    }
    let mut segments: Vec<Segment> = group
        .iter()
        .zip(caches.iter_mut())
        .map(|(&(_, _, run), cache)| Segment {
            len: run,
            cache: cache.as_mut(),
        })
        .collect();
    let hidden = decoder.hidden_states_packed(&packed, &mut segments)?;
    let mut row = 0;
    let mut states = Vec::with_capacity(group.len());
    for &(i, offset, run) in group {
        let r = &requests[i];
        states.push(ScoredHidden {
            hidden: Some(hidden.narrow(0, row, run)?),
            offset,
            answer_start: r.answer_start,
            answer_len: r.tokens.len() - r.answer_start,
        });
        row += run;
    }
    Ok(states)
}

/// The scoring state of an answer the model generated itself: the hidden
/// states its generation computed (`hidden_states`, row-major f32, at least
/// one row per answer token) stand in for a forward pass.
pub fn from_generation(
    decoder: &Decoder,
    answer_start: usize,
    answer_len: usize,
    hidden_states: &[f32],
) -> Result<ScoredHidden> {
    let width = decoder.config().hidden_size;
    if answer_start == 0 || hidden_states.len() < answer_len * width {
        return Err(EngineError::Input(format!(
            "{} hidden values do not cover an answer of {answer_len} tokens at position {answer_start}",
            hidden_states.len()
        )));
    }
    let hidden = (answer_len > 0)
        .then(|| {
            candle_core::Tensor::from_slice(
                &hidden_states[..answer_len * width],
                (answer_len, width),
                decoder.device(),
            )?
            .to_dtype(decoder.dtype())
        })
        .transpose()?;
    // Row i predicts answer token i: as a pass whose first row is the one before the answer.
    Ok(ScoredHidden {
        hidden,
        offset: answer_start - 1,
        answer_start,
        answer_len,
    })
}

impl<'a> PreparedScoring<'a> {
    /// Runs the forward pass over `tokens` for scoring `tokens[answer_start..]`.
    pub fn new(decoder: &'a Decoder, tokens: &[u32], answer_start: usize) -> Result<Self> {
        Self::prepare(decoder, None, tokens, answer_start)
    }

    /// As [`Self::new`], continuing `prefix`'s cache: only the tokens after the
    /// prefix run. The prefix must end before the answer's first predicting
    /// position (`prefix.len() < answer_start`).
    pub fn with_prefix(
        decoder: &'a Decoder,
        prefix: &PrefixCache,
        tokens: &[u32],
        answer_start: usize,
    ) -> Result<Self> {
        Self::prepare(decoder, Some(prefix), tokens, answer_start)
    }

    /// The log-distributions of a sequence whose forward pass has run.
    pub fn resume(decoder: &'a Decoder, state: ScoredHidden) -> Self {
        Self { decoder, state }
    }

    fn prepare(
        decoder: &'a Decoder,
        prefix: Option<&PrefixCache>,
        tokens: &[u32],
        answer_start: usize,
    ) -> Result<Self> {
        let request = ScoreRequest {
            tokens,
            answer_start,
            prefix: prefix.filter(|p| p.holds_for(tokens.len())),
        };
        let (offset, answer_len) = check_request(decoder, &request)?;
        let state = run_alone(decoder, &request, offset, answer_len)?;
        Ok(Self { decoder, state })
    }

    pub fn answer_len(&self) -> usize {
        self.state.answer_len
    }

    pub fn width(&self) -> usize {
        self.decoder.logits_width()
    }

    /// Log-distributions of answer tokens `first..first + n` (row-major into `buffer`).
    pub fn log_probs(&self, first: usize, n: usize, buffer: &mut Vec<f32>) -> Result<()> {
        let s = &self.state;
        let Some(hidden) = &s.hidden else {
            return Err(EngineError::Input("the answer is empty".into()));
        };
        if first + n > s.answer_len {
            return Err(EngineError::Input(format!(
                "answer positions {first}..{} are past the answer's {} tokens",
                first + n,
                s.answer_len
            )));
        }
        log_probs_into(
            self.decoder,
            hidden,
            s.answer_start + first - 1 - s.offset,
            n,
            buffer,
        )
    }
}

/// Rows per chunk when two sides hold a chunk each: `DEFAULT_CHUNK_BYTES` (256 MiB) in all.
pub fn pair_chunk_rows(width: usize) -> usize {
    (DEFAULT_CHUNK_BYTES / 2 / (width.max(1) * 4)).max(1)
}

/// The index of the largest value, the first one on ties (as torch.argmax).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_matches_a_hand_computed_case() {
        // logits (1, 2, 3): log-sum-exp = 3 + ln(1 + e^-1 + e^-2) = 3.40760596444438
        let mut row = [1.0f32, 2.0, 3.0];
        log_softmax_in_place(&mut row);
        let expected = [
            -2.407_605_964_444_38,
            -1.407_605_964_444_38,
            -0.407_605_964_444_38,
        ];
        for (got, want) in row.iter().zip(expected) {
            assert!((*got as f64 - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn log_softmax_is_stable_for_huge_logits() {
        let mut row = [1000.0f32, 1000.0, -1000.0];
        log_softmax_in_place(&mut row);
        assert!((row[0] as f64 - (0.5f64).ln()).abs() < 1e-6);
        assert!(row.iter().all(|x| !x.is_nan()));
    }

    #[test]
    fn argmax_takes_the_first_of_ties() {
        assert_eq!(argmax(&[0.0, 2.0, 1.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, -1.0]), 1);
    }
}
