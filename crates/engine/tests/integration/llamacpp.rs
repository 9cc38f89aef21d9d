//! `--dtype q8` against llama.cpp itself: the tiny llama3 fixture quantized by
//! llama.cpp's quantizer to Q8_0 and Q4_0, fed one token at a time (every
//! token a decode step), against llama.cpp's own log-probabilities for the
//! same tokens (fixtures/llamacpp, made by scripts/make_llamacpp_goldens.py
//! with an f32 KV cache). `q8` takes llama.cpp's 8-bit activations, so it
//! lands closer to llama.cpp than the exact `q` does.

use crate::common::*;
use aligntds_engine::{DTypeChoice, LanguageModel, LoadOptions};

/// Per step: the largest |Δ log-prob| over llama.cpp's top-20, and whether
/// the top token is the same.
fn against_llamacpp(name: &str, dtype: DTypeChoice) -> (Vec<f64>, usize) {
    let golden = read_json(
        &repo_root()
            .join("fixtures/llamacpp")
            .join(format!("llama3.{name}.json")),
    );
    let path = repo_root()
        .join("fixtures")
        .join(golden["file"].as_str().unwrap());
    let model = LanguageModel::load(
        path.to_str().unwrap(),
        &LoadOptions {
            dtype,
            ..Default::default()
        },
    )
    .unwrap();
    let tokens = ids(&golden["tokens"]);
    let mut stepper = model.stepper(tokens.len());
    let mut row = Vec::new();
    let (mut errors, mut same_top) = (vec![], 0);
    for (token, step) in tokens.iter().zip(golden["steps"].as_array().unwrap()) {
        stepper.feed(&[*token], &mut row).unwrap();
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

#[test]
fn q8_decode_steps_follow_llamacpp_closer_than_q() {
    for name in ["q8_0", "q4_0"] {
        let (q8, q8_top) = against_llamacpp(name, DTypeChoice::QuantizedInt8);
        let (q, q_top) = against_llamacpp(name, DTypeChoice::Quantized);
        let max = |e: &[f64]| e.iter().copied().fold(0.0, f64::max);
        let mean = |e: &[f64]| e.iter().sum::<f64>() / e.len() as f64;
        eprintln!(
            "llama3.{name}.gguf, {} decode steps against llama.cpp: q8 max {:.2e} mean {:.2e} top-1 {q8_top}; q max {:.2e} mean {:.2e} top-1 {q_top}",
            q8.len(),
            max(&q8),
            mean(&q8),
            max(&q),
            mean(&q)
        );
        // The golden rounds to 1e-6; what is left is f32 summation order.
        assert!(
            max(&q8) < 1e-4,
            "{name}: q8 strays {:.2e} from llama.cpp",
            max(&q8)
        );
        assert_eq!(
            q8_top,
            q8.len(),
            "{name}: q8 picks another top token than llama.cpp"
        );
        // The exact path is a hundred times further: the difference is the arithmetic.
        assert!(
            max(&q) > 100.0 * max(&q8),
            "{name}: q {:.2e} vs q8 {:.2e}",
            max(&q),
            max(&q8)
        );
    }
}

/// `q8` changes decode steps only: a teacher-forced pass (one pass over the
/// whole sequence, or a short one that the block kernels take) scores
/// exactly as `q`, and generation's scores are not taken from its steps.
#[test]
fn q8_teacher_forcing_scores_as_q_does() {
    let path = repo_root().join("fixtures/llama3.q4_0.gguf");
    let load = |dtype| {
        LanguageModel::load(
            path.to_str().unwrap(),
            &LoadOptions {
                dtype,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let (q8, q) = (
        load(DTypeChoice::QuantizedInt8),
        load(DTypeChoice::Quantized),
    );
    assert!(!q8.generation_scores_match_forcing() && q.generation_scores_match_forcing());
    let tokens: Vec<u32> = (0..40).map(|i| (i * 37 % 580) as u32 + 1).collect();
    for start in [1, 30] {
        let (a, b) = (
            forced_rows(&q8, &tokens, start),
            forced_rows(&q, &tokens, start),
        );
        assert!(!a.is_empty());
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "start {start}"
        );
    }
}
