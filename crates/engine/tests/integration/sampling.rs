//! Sampled generation on the tiny llama3 fixture: an answer depends on its
//! seed and stream alone (the same whatever the batch size, 1, 4 or 32, and
//! on a rerun; different under another seed), and over many temperature-1
//! draws the first answer token's frequencies match the model's own
//! probabilities (a chi-square test at a fixed seed, which rejects the
//! frequencies of another temperature).

use crate::common::*;
use aligntds_engine::{GenerateOptions, LanguageModel, Sampling};

const PROMPTS: &[&str] = &[
    "The three primary colors are",
    "Q: What is the capital of France?\nA:",
    "Write a haiku about the sea.",
    "1, 2, 3, 4,",
    "Once upon a time, in a small village at the edge of a dark forest",
    "def fibonacci(n):",
    "Name three colours of the sea.",
    "Hello?",
];

fn options(max_new_tokens: usize, sampling: Option<Sampling>) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens,
        stop_strings: vec![],
        eos_token_ids: vec![],
        cancel: Default::default(),
        sampling,
    }
}

fn sampling(seed: u64, name: &str, temperature: f32, top_p: f32) -> Sampling {
    Sampling {
        temperature,
        top_p,
        top_k: 0,
        stream: Sampling::stream(seed, &[name.as_bytes()]),
    }
}

/// Each prompt's sampled answer under `seed`, `batch` decoded together.
fn answers(model: &LanguageModel, seed: u64, batch: usize) -> Vec<Vec<u32>> {
    let jobs = PROMPTS
        .iter()
        .map(|p| {
            let prompt = model.text.tokenizer.encode(p).unwrap();
            (prompt, options(20, Some(sampling(seed, p, 1.0, 0.95))))
        })
        .collect();
    model
        .generate_each(jobs, batch)
        .unwrap()
        .into_iter()
        .map(|g| g.unwrap().tokens)
        .collect()
}

#[test]
fn a_sampled_answer_depends_on_its_seed_and_stream_alone() {
    let model = load("llama3");
    let one = answers(&model, 11, 1);
    assert_eq!(answers(&model, 11, 4), one, "batch 4");
    assert_eq!(answers(&model, 11, 32), one, "batch 32");
    assert_eq!(answers(&model, 11, 1), one, "rerun");
    let other = answers(&model, 12, 4);
    let differ = one.iter().zip(&other).filter(|(a, b)| a != b).count();
    assert!(
        differ >= PROMPTS.len() - 1,
        "{differ} of {} differ",
        PROMPTS.len()
    );
    // Greedy stays greedy: no sampling gives generate's answer.
    let prompt = model.text.tokenizer.encode(PROMPTS[0]).unwrap();
    let greedy = model.generate(&prompt, &options(20, None)).unwrap().tokens;
    let top1 = sampling(11, "x", 1.0, 1.0);
    let top1 = Sampling { top_k: 1, ..top1 };
    let drawn = model
        .generate(&prompt, &options(20, Some(top1)))
        .unwrap()
        .tokens;
    assert_eq!(drawn, greedy);
}

/// The chi-square statistic of the first tokens of `draws` one-token
/// answers against `probabilities`, and its degrees of freedom (cells of an
/// expected count under 5 pooled into one).
fn chi_square(
    model: &LanguageModel,
    prompt: &[u32],
    temperature: f32,
    probabilities: &[f64],
) -> (f64, usize) {
    let draws = 4000;
    let jobs = (0..draws)
        .map(|i| {
            let s = sampling(2024, &i.to_string(), temperature, 1.0);
            (prompt.to_vec(), options(1, Some(s)))
        })
        .collect();
    let mut counts = vec![0usize; probabilities.len()];
    for g in model.generate_each(jobs, 32).unwrap() {
        counts[g.unwrap().tokens[0] as usize] += 1;
    }
    let (mut statistic, mut cells) = (0.0, 0);
    let (mut pooled_seen, mut pooled_expected) = (0.0, 0.0);
    for (&seen, &p) in counts.iter().zip(probabilities) {
        let expected = p * draws as f64;
        if expected >= 5.0 {
            statistic += (seen as f64 - expected).powi(2) / expected;
            cells += 1;
        } else {
            pooled_seen += seen as f64;
            pooled_expected += expected;
        }
    }
    if pooled_expected > 0.0 {
        statistic += (pooled_seen - pooled_expected).powi(2) / pooled_expected;
        cells += 1;
    }
    (statistic, cells - 1)
}

/// The chi-square distribution's 0.999 quantile for `df` degrees of freedom
/// (Wilson and Hilferty's approximation, good to a few tenths of a percent here).
fn critical(df: usize) -> f64 {
    let k = df as f64;
    let z = 3.090_232; // the standard normal's 0.999 quantile
    k * (1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)).sqrt()).powi(3)
}

#[test]
fn first_tokens_drawn_at_temperature_one_follow_the_models_probabilities() {
    let model = load("llama3");
    let prompt = model.text.tokenizer.encode(PROMPTS[1]).unwrap();
    // The model's distribution after the prompt, from a step of its own.
    let mut stepper = model.stepper(prompt.len() + 1);
    let mut row = Vec::new();
    stepper.feed(&prompt, &mut row).unwrap();
    let probabilities: Vec<f64> = row.iter().map(|&l| f64::from(l).exp()).collect();
    assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-4);
    let (statistic, df) = chi_square(&model, &prompt, 1.0, &probabilities);
    assert!(df >= 20, "{df} cells: a real test");
    assert!(
        statistic < critical(df),
        "chi-square {statistic:.1} over {df} degrees of freedom"
    );
    // The test has power: draws at another temperature fail it.
    let (hot, df) = chi_square(&model, &prompt, 0.5, &probabilities);
    assert!(
        hot > 2.0 * critical(df),
        "temperature 0.5: {hot:.1} over {df}"
    );
}
