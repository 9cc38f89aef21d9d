//! `--dtype q8` against llama.cpp itself: the tiny llama3 fixture quantized by
//! llama.cpp's quantizer to Q8_0 and Q4_0, and a wider checkpoint of its family
//! (hidden 256, as wide as a K-quant block) to Q4_K_M (Q4_K and Q6_K
//! tensors), fed one token at a time (every
//! token a decode step) and in one teacher-forced pass, against llama.cpp's
//! own log-probabilities for the same tokens fed the same ways
//! (fixtures/llamacpp, made by scripts/make_llamacpp_goldens.py with an f32
//! KV cache). `q8` takes llama.cpp's 8-bit activations, so it
//! lands closer to llama.cpp than the exact `q` does.

use crate::common::*;
use aligntds_engine::{DTypeChoice, LanguageModel, LoadOptions};

/// How the tokens reach the model: one decode step per token, or one
/// teacher-forced pass over all of them.
#[derive(Clone, Copy, Debug)]
enum Feed {
    Steps,
    OnePass,
}

/// Per position: the largest |Δ log-prob| over llama.cpp's top-20, and how
/// many positions have the same top token.
fn against_llamacpp(name: &str, dtype: DTypeChoice, feed: Feed) -> (Vec<f64>, usize) {
    let golden = read_json(
        &repo_root()
            .join("fixtures/llamacpp")
            .join(format!("{name}.json")),
    );
    let path = repo_root()
        .join("fixtures")
        .join(golden["file"].as_str().unwrap());
    let model = load(&path, dtype);
    let tokens = ids(&golden["tokens"]);
    // Row i: the distribution after tokens[..=i].
    let rows: Vec<Vec<f32>> = match feed {
        Feed::Steps => {
            let mut stepper = model.stepper(tokens.len());
            let mut row = Vec::new();
            tokens
                .iter()
                .map(|t| {
                    stepper.feed(&[*t], &mut row).unwrap();
                    row.clone()
                })
                .collect()
        }
        Feed::OnePass => {
            // Scores the positions after the first token, all in one pass.
            let all = forced_rows(&model, &tokens, 1);
            let width = all.len() / (tokens.len() - 1);
            all.chunks_exact(width).map(<[f32]>::to_vec).collect()
        }
    };
    let golden_rows = match feed {
        Feed::Steps => &golden["steps"],
        Feed::OnePass => &golden["one_pass"],
    };
    let (mut errors, mut same_top) = (vec![], 0);
    for (row, step) in rows.iter().zip(golden_rows.as_array().unwrap()) {
        let top = ids(&step["top_ids"]);
        let want: Vec<f64> = step["top_logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let worst = top
            .iter()
            .zip(&want)
            .map(|(&id, &w)| (row[id as usize] as f64 - w).abs())
            .fold(0.0, f64::max);
        errors.push(worst);
        let ours = (0..row.len())
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap();
        same_top += usize::from(ours as u32 == top[0]);
    }
    (errors, same_top)
}

/// Per position, how far llama.cpp's one pass strays from its own decode
/// steps over the ids both top-20s hold. Zero for Q8_0 and Q4_0; for the
/// K-quants its batched kernels quantize activations with their own code
/// (repacked Q4_K tiles), which moved one position of 47 by 6e-3 here, where
/// `q8` takes the steps' arithmetic in every pass.
fn llamacpp_self_gap(name: &str) -> Vec<f64> {
    let golden = read_json(&repo_root().join(format!("fixtures/llamacpp/{name}.json")));
    let (steps, one_pass) = (
        golden["steps"].as_array().unwrap(),
        golden["one_pass"].as_array().unwrap(),
    );
    let row = |r: &serde_json::Value| -> Vec<(u32, f64)> {
        ids(&r["top_ids"])
            .into_iter()
            .zip(r["top_logprobs"].as_array().unwrap())
            .map(|(id, v)| (id, v.as_f64().unwrap()))
            .collect()
    };
    steps
        .iter()
        .zip(one_pass)
        .map(|(s, o)| {
            let s = row(s);
            row(o)
                .iter()
                .filter_map(|(id, v)| s.iter().find(|(i, _)| i == id).map(|(_, w)| (v - w).abs()))
                .fold(0.0, f64::max)
        })
        .collect()
}

#[test]
fn q8_follows_llamacpp_closer_than_q_in_steps_and_one_pass() {
    for feed in [Feed::Steps, Feed::OnePass] {
        for name in ["llama3.q8_0", "llama3.q4_0", "llama3-256.q4_k_m"] {
            let (q8, q8_top) = against_llamacpp(name, DTypeChoice::QuantizedInt8, feed);
            let (q, q_top) = against_llamacpp(name, DTypeChoice::Quantized, feed);
            // In one pass, what llama.cpp's own two paths differ by is allowed on top.
            let gap = match feed {
                Feed::Steps => vec![0.0; q8.len()],
                Feed::OnePass => llamacpp_self_gap(name),
            };
            let excess: Vec<f64> = q8.iter().zip(&gap).map(|(e, g)| (e - g).max(0.0)).collect();
            let max = |e: &[f64]| e.iter().copied().fold(0.0, f64::max);
            let mean = |e: &[f64]| e.iter().sum::<f64>() / e.len() as f64;
            eprintln!(
                "{name}.gguf, {feed:?}, {} positions against llama.cpp: q8 max {:.2e} mean {:.2e} (beyond llama.cpp's own steps-to-pass gap, max {:.2e}: {:.2e}) top-1 {q8_top}; q max {:.2e} mean {:.2e} top-1 {q_top}",
                q8.len(),
                max(&q8),
                mean(&q8),
                max(&gap),
                max(&excess),
                max(&q),
                mean(&q)
            );
            assert!(q8.len() >= 47, "{name} {feed:?}: {} positions", q8.len());
            // The golden rounds to 1e-6; what is left is f32 summation order.
            assert!(
                max(&excess) < 1e-4,
                "{name} {feed:?}: q8 strays {:.2e} from llama.cpp",
                max(&excess)
            );
            assert_eq!(
                q8_top,
                q8.len(),
                "{name} {feed:?}: q8 picks another top token than llama.cpp"
            );
            // The exact path is a hundred times further: the difference is the arithmetic.
            assert!(
                max(&q) > 100.0 * max(&excess),
                "{name} {feed:?}: q {:.2e} vs q8 {:.2e}",
                max(&q),
                max(&excess)
            );
        }
    }
}

/// Per position of a teacher-forced pass (one `score` call, as a study scores
/// an answer): the next token's rank over the whole vocabulary (1 + the ids
/// scored higher) and its log-probability (the rows are log-distributions).
fn forced_ranks(model: &LanguageModel, tokens: &[u32]) -> Vec<(usize, f64)> {
    let mut out = Vec::new();
    model
        .score(tokens, 1, |r| {
            for (_, row) in r.rows() {
                let target = row[tokens[out.len() + 1] as usize];
                let rank = 1 + row.iter().filter(|&&v| v > target).count();
                out.push((rank, target as f64));
            }
            Ok(())
        })
        .unwrap();
    out
}

/// `(ranks equal, categories equal, largest |Δ log-prob|)` of `ours` against
/// llama.cpp's golden (`ranks`, `logprobs`).
fn agreement(ours: &[(usize, f64)], golden: &serde_json::Value) -> (usize, usize, f64) {
    let category = |rank: usize| match rank {
        1 => 0,
        2..=3 => 1,
        _ => 2,
    };
    let ranks = ids(&golden["ranks"]);
    let logprobs = golden["logprobs"].as_array().unwrap();
    assert_eq!(ours.len(), ranks.len());
    let (mut same_rank, mut same_category, mut worst) = (0, 0, 0f64);
    for ((rank, logprob), (&want, want_lp)) in ours.iter().zip(ranks.iter().zip(logprobs)) {
        same_rank += usize::from(*rank == want as usize);
        same_category += usize::from(category(*rank) == category(want as usize));
        worst = worst.max((logprob - want_lp.as_f64().unwrap()).abs());
    }
    (same_rank, same_category, worst)
}

fn load(path: &std::path::Path, dtype: DTypeChoice) -> LanguageModel {
    LanguageModel::load(
        path.to_str().unwrap(),
        &LoadOptions {
            dtype,
            ..Default::default()
        },
    )
    .unwrap()
}

/// A sequence that is not the greedy answer (llama.cpp's rank-1, 2, 3, 4, 12
/// and 200 tokens in turn after the prompt), scored in one pass as a study
/// scores, against llama.cpp fed the same tokens one at a time. On Q8_0 and
/// Q4_0, where `q8`'s activations meet the weights as llama.cpp's do, every
/// rank and category is llama.cpp's. On the 256-wide Q4_K_M fixture every
/// category is, but not every rank: its random weights give nearly flat
/// distributions (neighbouring ranks a few 1e-4 apart), and one activation
/// that rounds to the other 8-bit value at one position (a last-bit
/// difference upstream of the quantization) moves every later position by
/// about 1e-3 through the cache; llama.cpp's own one pass and steps differ
/// the same way there (1.7e-3).
#[test]
fn q8_gives_llamacpps_ranks_and_categories() {
    for name in ["llama3.q8_0", "llama3.q4_0", "llama3-256.q4_k_m"] {
        let golden = read_json(&repo_root().join(format!("fixtures/llamacpp/{name}.json")));
        let forced = &golden["forced"];
        let tokens = ids(&forced["tokens"]);
        let path = repo_root()
            .join("fixtures")
            .join(golden["file"].as_str().unwrap());
        for dtype in [DTypeChoice::QuantizedInt8, DTypeChoice::Quantized] {
            let ours = forced_ranks(&load(&path, dtype), &tokens);
            let (ranks, categories, worst) = agreement(&ours, forced);
            let n = ours.len();
            eprintln!(
                "{name}.gguf under {dtype:?}, {n} forced positions against llama.cpp: ranks equal {ranks}, categories equal {categories}, log-prob within {worst:.2e}"
            );
            let enough = (n * 995).div_ceil(1000);
            if dtype == DTypeChoice::QuantizedInt8 {
                assert!(
                    n >= 120 && categories >= enough,
                    "{name}: categories {categories} of {n}"
                );
            }
            if dtype == DTypeChoice::QuantizedInt8 && !name.contains("q4_k") {
                assert!(
                    n >= 120 && ranks == n && categories == n,
                    "{name}: {ranks}, {categories} of {n}"
                );
                assert!(worst < 1e-4, "{name}: log-probabilities {worst:.2e} apart");
            }
        }
    }
}

/// Under `q8` a row's products do not depend on the other rows in the pass
/// (the row kernels of a short pass and the GEMM tiles of a long one give the
/// same bits), so scoring a suffix after a shorter or longer pass agrees to
/// attention's rounding; and a study still teacher-forces rather than take
/// scores from generation's steps.
#[test]
fn q8_scores_do_not_depend_on_how_the_pass_is_cut() {
    for file in ["llama3.q4_0.gguf", "llama3-256.q4_k_m.gguf"] {
        pass_cut_does_not_matter(file);
    }
}

fn pass_cut_does_not_matter(file: &str) {
    let path = repo_root().join("fixtures").join(file);
    let (q8, q) = (
        load(&path, DTypeChoice::QuantizedInt8),
        load(&path, DTypeChoice::Quantized),
    );
    assert!(!q8.generation_scores_match_forcing() && q.generation_scores_match_forcing());
    let tokens: Vec<u32> = (0..60).map(|i| (i * 37 % 580) as u32 + 1).collect();
    // 59 rows (the GEMM) against 4 (the row kernels) for the last four positions.
    let (long, short) = (forced_rows(&q8, &tokens, 1), forced_rows(&q8, &tokens, 56));
    let tail = &long[long.len() - short.len()..];
    let worst = tail
        .iter()
        .zip(&short)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst < 1e-4,
        "{file} q8: the same positions differ by {worst:.2e}"
    );
    // And q8's arithmetic is not q's.
    let exact = forced_rows(&q, &tokens, 56);
    assert!(exact.iter().zip(&short).any(|(a, b)| a != b));
}
