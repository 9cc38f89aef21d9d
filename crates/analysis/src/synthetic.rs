//! Synthetic run directories of any size, for testing and benchmarking what
//! reads runs (reports) without scoring real models. Every position's metrics
//! come from `metrics::compare` over generated distributions, so the files are
//! as consistent as a real run's; the aligned side drifts away from the base
//! mostly early in each answer, as the paper found.

use std::path::Path;

use rayon::prelude::*;

use crate::metrics::{compare, Thresholds};
use aligntds_formats::examples::ExampleLine;
use aligntds_formats::positions::TopToken;
use aligntds_formats::summary::{
    Context, ContextKind, Manifest, ModelIdentity, RecordedSettings, ResponseSource, RunIdentity,
    Summary,
};
use aligntds_formats::FormatError;

use crate::study::output::write_run;
use crate::study::record::record_of;
use aligntds_stats::ExampleResult;

/// Token texts of the synthetic vocabulary; the first ones are the cases every
/// viewer must escape.
const SPECIAL: &[&str] = &[
    "<script>",
    "</s>",
    "<img src=x onerror=alert(1)>",
    "&amp;",
    "\n",
    "\n\n",
    " \"quoted\"",
    "'",
];
const WORDS: &[&str] = &[
    "the", "a", "of", "to", "and", "in", "is", "it", "that", "for", "you", "with", "on", "as",
    "are", "be", "this", "can", "or", "by", "model", "answer", "token", "shift", "base", "aligned",
    "Sure", "Thank", "Hello", "However", "sorry", "apolog", "help", "here", "Here", "some", "tips",
    "1.", "2.", "**", ":", ",", ".", "!", "?", "é", "日本", "🙂",
];

/// The vocabulary: specials, then every word with and without a leading space.
pub fn vocabulary() -> Vec<String> {
    let mut v: Vec<String> = SPECIAL.iter().map(|s| s.to_string()).collect();
    for w in WORDS {
        v.push(w.to_string());
        v.push(format!(" {w}"));
    }
    v
}

/// A small deterministic generator (splitmix64): reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Roughly standard normal (sum of four uniforms, rescaled).
    fn normal(&mut self) -> f32 {
        let s: f32 = (0..4).map(|_| self.uniform()).sum();
        (s - 2.0) * 1.732
    }
}

fn log_softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = row
        .iter()
        .map(|&x| ((x - max) as f64).exp())
        .sum::<f64>()
        .ln() as f32
        + max;
    row.iter_mut().for_each(|x| *x -= lse);
}

fn sample(log_p: &[f32], rng: &mut Rng) -> u32 {
    let mut u = rng.uniform() as f64;
    for (i, &lp) in log_p.iter().enumerate() {
        u -= (lp as f64).exp();
        if u <= 0.0 {
            return i as u32;
        }
    }
    (log_p.len() - 1) as u32
}

/// One synthetic example of `tokens` answer positions.
pub fn example(index: usize, tokens: usize, top_k: usize) -> ExampleResult {
    let vocab = vocabulary();
    let mut rng = Rng(0xA11C_0000 + index as u64);
    let query = match index % 4 {
        0 => format!("Synthetic query {index}: what does <script>alert(1)</script> do?"),
        1 => format!("Synthetic query {index}: explain &amp; and </s> in one line."),
        2 => format!("Synthetic query {index}: <img src=x onerror=alert(1)>"),
        _ => format!("Synthetic query {index}: give me some tips."),
    };
    let mut positions = Vec::with_capacity(tokens);
    let mut answer = String::new();
    let mut answer_ids = Vec::with_capacity(tokens);
    for t in 0..tokens {
        let mut base: Vec<f32> = (0..vocab.len()).map(|_| 2.5 * rng.normal()).collect();
        // The aligned model departs from the base most at the start of the answer.
        let drift = 3.0 / (1.0 + t as f32 / 20.0);
        let mut aligned: Vec<f32> = base.iter().map(|&b| b + drift * rng.normal()).collect();
        log_softmax(&mut base);
        log_softmax(&mut aligned);
        let token = sample(&aligned, &mut rng);
        let metrics = compare(&aligned, &base, token, top_k, Thresholds::default());
        let tops = |ids: &[u32], logprobs: &[f32]| -> Vec<TopToken> {
            ids.iter()
                .zip(logprobs)
                .map(|(&id, &logprob)| TopToken {
                    id,
                    text: vocab[id as usize].clone(),
                    logprob,
                })
                .collect()
        };
        answer.push_str(&vocab[token as usize]);
        answer_ids.push(token);
        let text = vocab[token as usize].clone();
        positions.push(record_of(
            t,
            token,
            [&text, &text.replace(' ', "\u{2581}"), &text],
            tops(&metrics.aligned_top_ids, &metrics.aligned_top_logprobs),
            tops(&metrics.base_top_ids, &metrics.base_top_logprobs),
            metrics,
        ));
    }
    let count = |c: &str| {
        positions
            .iter()
            .filter(|p| p.category.as_str() == c)
            .count() as u32
    };
    ExampleResult {
        example: ExampleLine {
            id: format!("syn-{index:05}"),
            aligned_context: format!("<|user|>\n{query}\n<|assistant|>\n"),
            base_context: format!("# Query:\n{query}\n\n# Answer:\n"),
            query,
            unshifted: count("unshifted"),
            marginal: count("marginal"),
            shifted: count("shifted"),
            answer,
            answer_ids,
            source: "dataset".into(),
            stop_reason: "dataset".into(),
            ..Default::default()
        },
        positions,
        compared: Vec::new(),
    }
}

/// Writes a finished run of `examples` synthetic examples, `tokens` positions
/// each, into `dir` (which must exist); returns its summary.
pub fn write_synthetic_run(
    dir: &Path,
    examples: usize,
    tokens: usize,
) -> Result<Summary, FormatError> {
    let results: Vec<ExampleResult> = (0..examples)
        .into_par_iter()
        .map(|i| example(i, tokens, 10))
        .collect();
    let side = |name: &str| ModelIdentity {
        reference: format!("synthetic/{name}"),
        kind: None,
        commit: None,
        files: Vec::new(),
    };
    let manifest = Manifest {
        servers: Vec::new(),
        group_by: None,
        identity: RunIdentity {
            tool: format!("aligntds {} (synthetic run)", env!("CARGO_PKG_VERSION")),
            aligned: side("aligned"),
            base: side("base"),
            aligned_weights: "synthetic".into(),
            base_weights: "synthetic".into(),
            device: "none".into(),
            aligned_chat_template: None,
            base_chat_template: None,
            settings: RecordedSettings {
                aligned_context: Context::of(ContextKind::Chat),
                base_context: Context::of(ContextKind::Template),
                response: ResponseSource::Dataset,
                max_new_tokens: 0,
                stops: Vec::new(),
                top_k: 10,
                thresholds: Default::default(),
                compare: Vec::new(),
                sampling: None,
                answered_by: None,
                handover: None,
            },
            data: Some(format!("synthetic: {examples} examples x {tokens} tokens")),
            data_sha256: None,
            query: None,
            limit: None,
            aligned_server: None,
            base_server: None,
            compare: Vec::new(),
            fields: None,
        },
        shard: None,
        fingerprint: "synthetic".into(),
        timings: None,
        merged_from: None,
    };
    write_run(dir, &results, manifest, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_are_reproducible_and_shift_early() {
        let a = example(3, 200, 10);
        let b = example(3, 200, 10);
        assert_eq!(a.example.answer_ids, b.example.answer_ids);
        assert_eq!(a.positions.len(), 200);
        assert_eq!(
            a.example.unshifted + a.example.marginal + a.example.shifted,
            200
        );
        let mean_kl = |r: std::ops::Range<usize>| {
            let n = r.len() as f64;
            r.map(|i| a.positions[i].kl_aligned_base.unwrap())
                .sum::<f64>()
                / n
        };
        assert!(mean_kl(0..20) > 2.0 * mean_kl(180..200));
        // The top-10 texts match the ids through the vocabulary.
        let vocab = vocabulary();
        let p = &a.positions[7];
        assert_eq!(p.base_top[0].text, vocab[p.base_top[0].id as usize]);
    }
}
