//! Throughput measurements of the two jobs a TDS study runs: teacher-forced
//! scoring (one forward pass plus the log-softmax of every position) and greedy
//! generation with the KV cache. `aligntds bench` and `scripts/bench.sh` use
//! them; the peers in `scripts/bench_peers.py` use the same token ids.

use std::time::Instant;

use crate::error::Result;
use crate::generation::generate::GenerateOptions;
use crate::model::LanguageModel;

/// The prompt generation starts from.
pub const PROMPT: &str = "The three primary colors are";

/// Best wall time of several runs of `tokens` tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    pub tokens: usize,
    pub best_seconds: f64,
}

impl Throughput {
    pub fn tokens_per_second(&self) -> f64 {
        self.tokens as f64 / self.best_seconds.max(1e-12)
    }
}

/// A deterministic pseudo-random sequence (xorshift64) of ids below `vocab`.
pub fn pseudo_random_tokens(n: usize, vocab: usize) -> Vec<u32> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % vocab.max(1) as u64) as u32
        })
        .collect()
}

fn best_of(repeats: usize, mut run: impl FnMut() -> Result<()>) -> Result<f64> {
    // One unmeasured warm-up run, then the best of `repeats`.
    run()?;
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let t0 = Instant::now();
        run()?;
        best = best.min(t0.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Scores `tokens` pseudo-random tokens: the forward pass and the full-vocabulary log-softmax.
pub fn score(model: &LanguageModel, tokens: usize, repeats: usize) -> Result<Throughput> {
    let ids = pseudo_random_tokens(tokens.max(2), model.text.tokenizer.vocab_size());
    let best_seconds = best_of(repeats, || {
        let mut checksum = 0f64;
        model.score(&ids, 1, |rows| {
            for (pos, row) in rows.rows() {
                checksum += row[ids[pos] as usize] as f64;
            }
            Ok(())
        })?;
        std::hint::black_box(checksum);
        Ok(())
    })?;
    Ok(Throughput {
        tokens: ids.len(),
        best_seconds,
    })
}

/// Generates `tokens` tokens greedily after [`PROMPT`], never stopping early;
/// with `batch` above 1, that many sequences decoded together (prompts
/// numbered "1. ", "2. ", ... before [`PROMPT`]), `tokens` each.
pub fn generate(
    model: &LanguageModel,
    tokens: usize,
    batch: usize,
    repeats: usize,
) -> Result<Throughput> {
    let options = GenerateOptions {
        max_new_tokens: tokens,
        stop_strings: vec![],
        eos_token_ids: vec![u32::MAX],
        cancel: Default::default(),
    };
    let mut produced = 0;
    let best_seconds = if batch <= 1 {
        let prompt = model.text.tokenizer.encode(PROMPT)?;
        best_of(repeats, || {
            produced = model.generate(&prompt, &options)?.tokens.len();
            Ok(())
        })?
    } else {
        let prompts = (1..=batch)
            .map(|i| model.text.tokenizer.encode(&format!("{i}. {PROMPT}")))
            .collect::<Result<Vec<_>>>()?;
        best_of(repeats, || {
            produced = 0;
            for generation in model.generate_batch(&prompts, &options, batch)? {
                produced += generation?.tokens.len();
            }
            Ok(())
        })?
    };
    Ok(Throughput {
        tokens: produced,
        best_seconds,
    })
}
