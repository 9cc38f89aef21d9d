//! Batched greedy generation on the two real models (scripts/fetch-models.sh):
//! answers equal one-at-a-time answers except where the top two tokens tie
//! within rounding (counted and printed), and every generated token's
//! log-probability equals teacher forcing's, as do the whole distributions
//! scored from the hidden states the generation kept.

use crate::common::*;
use aligntds_engine::{DType, DTypeChoice, GenerateOptions, LanguageModel};

const SMOLLM2: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
const GEMMA3: &str = "models/gemma-3-270m-q4_k_m.gguf";

/// Prompts of different lengths, so sequences join and finish at different
/// steps (more prompts than the batch, so waiting ones join as others leave).
const PROMPTS: &[&str] = &[
    "The three primary colors are",
    "Q: What is the capital of France?\nA:",
    "Write a haiku about the sea.",
    "1, 2, 3, 4,",
    "Once upon a time, in a small village at the edge of a dark forest, there lived an old",
    "def fibonacci(n):",
];

/// Teacher-forced log-probabilities of `answer` after `prompt`: per answer
/// position, the answer token's and the gap between the two best tokens.
fn teacher_forced(model: &LanguageModel, prompt: &[u32], answer: &[u32]) -> Vec<(f32, f32)> {
    let full: Vec<u32> = prompt.iter().chain(answer).copied().collect();
    let mut out = Vec::new();
    model
        .score(&full, prompt.len(), |rows| {
            for (pos, row) in rows.rows() {
                let mut best = [f32::NEG_INFINITY; 2];
                for &v in row {
                    if v > best[0] {
                        best = [v, best[0]];
                    } else if v > best[1] {
                        best[1] = v;
                    }
                }
                out.push((row[full[pos] as usize], best[0] - best[1]));
            }
            Ok(())
        })
        .unwrap();
    out
}

/// Checks one model in one dtype; `tie` is the top-two gap below which a
/// batched and a single answer may part, `logprob_tolerance` how far a
/// generated log-probability may be from teacher forcing's.
fn check(file: &str, dtype: DTypeChoice, tie: f32, logprob_tolerance: f32) {
    let Some(model) = real(file, dtype) else {
        return;
    };
    let prompts: Vec<Vec<u32>> = PROMPTS
        .iter()
        .map(|p| model.text.tokenizer.encode(p).unwrap())
        .collect();
    let options = GenerateOptions {
        max_new_tokens: 24,
        // Per-sequence stop rules: some answers end early on this string.
        stop_strings: vec!["\n\n".into()],
        eos_token_ids: vec![],
        cancel: Default::default(),
        sampling: None,
    };
    let batched = model.generate_batch(&prompts, &options, 4).unwrap();
    let mut ties = 0;
    let mut worst = 0f32;
    let mut worst_row = 0f32;
    for ((prompt, batched), text) in prompts.iter().zip(batched).zip(PROMPTS) {
        let batched = batched.unwrap();
        let alone = model.generate(prompt, &options).unwrap();
        // Where the study scores from them (f32, quantized): bf16 rounds a
        // cached step and a whole pass apart by far more than its ties.
        if model.generation_scores_match_forcing() {
            worst_row = worst_row.max(rows_from_generation_vs_forced(&model, prompt, &batched));
        }
        // Log-probabilities of what the batch generated, against teacher forcing.
        let forced = teacher_forced(&model, prompt, &batched.tokens);
        for (got, (want, _)) in batched.logprobs.iter().zip(&forced) {
            worst = worst.max((got - want).abs());
        }
        if batched.tokens == alone.tokens {
            assert_eq!(batched.stop_reason, alone.stop_reason, "{file} {text:?}");
            // The kept states do not depend on the batch either, so neither do their scores.
            let same = batched
                .hidden_states
                .iter()
                .zip(&alone.hidden_states)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                !model.decode_rows_independent()
                    || (same && batched.hidden_states.len() == alone.hidden_states.len()),
                "{file} {dtype:?} {text:?}: hidden states differ batched and alone"
            );
            continue;
        }
        // Where they part, the single run's two best tokens must tie within `tie`.
        let at = batched
            .tokens
            .iter()
            .zip(&alone.tokens)
            .position(|(a, b)| a != b)
            .unwrap_or(batched.tokens.len().min(alone.tokens.len()));
        let gaps = teacher_forced(
            &model,
            prompt,
            &alone.tokens[..=at.min(alone.tokens.len() - 1)],
        );
        let gap = gaps.get(at).map_or(0.0, |g| g.1);
        assert!(
            gap <= tie,
            "{file} {dtype:?} {text:?}: batched and single answers part at token {at} where the top two differ by {gap:e}"
        );
        ties += 1;
    }
    eprintln!(
        "{file} {dtype:?}: {} prompts, batch 4: {ties} near-tie divergences; generated vs teacher-forced log-probabilities: max delta {worst:.2e}; whole rows from the generation's states: {worst_row:.2e}",
        PROMPTS.len()
    );
    assert!(
        worst <= logprob_tolerance,
        "{file} {dtype:?}: generated log-probabilities {worst:e} from teacher forcing"
    );
    assert!(
        worst_row <= logprob_tolerance,
        "{file} {dtype:?}: rows scored from the generation's states {worst_row:e} from teacher forcing"
    );
}

/// The largest difference, over every answer position and every token the
/// teacher-forced pass gives a log-probability of at least -20 (all the mass
/// and every top-k; the far tail's rounding is larger in absolute terms and
/// moves no metric), between scoring from the generation's kept hidden
/// states and a teacher-forced pass.
fn rows_from_generation_vs_forced(
    model: &LanguageModel,
    prompt: &[u32],
    generation: &aligntds_engine::Generation,
) -> f32 {
    let n = generation.tokens.len();
    if n == 0 {
        return 0.0;
    }
    let full: Vec<u32> = prompt.iter().chain(&generation.tokens).copied().collect();
    let (mut kept, mut forced) = (Vec::new(), Vec::new());
    model
        .scoring_from_generation(prompt.len(), n, &generation.hidden_states)
        .unwrap()
        .log_probs(0, n, &mut kept)
        .unwrap();
    model
        .prepare_scoring(&full, prompt.len())
        .unwrap()
        .log_probs(0, n, &mut forced)
        .unwrap();
    assert_eq!(kept.len(), forced.len());
    kept.iter()
        .zip(&forced)
        .filter(|(_, &b)| b >= -20.0)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
}

#[test]
fn batched_generation_equals_single_in_f32() {
    for file in [SMOLLM2, GEMMA3] {
        check(file, DTypeChoice::Float(DType::F32), 1e-5, 1e-4);
    }
}

#[test]
fn batched_generation_equals_single_quantized() {
    for file in [SMOLLM2, GEMMA3] {
        check(file, DTypeChoice::Quantized, 1e-5, 1e-4);
    }
}

/// bf16 rounds each product's inputs to 8 bits of mantissa, so ties are
/// wider, and a decode step and teacher forcing, whose f32 states differ in
/// the last bits, can round apart: 0.04 at most here (the packed bf16 kernels
/// serve both, on every CPU).
#[test]
fn batched_generation_equals_single_in_bf16() {
    check(SMOLLM2, DTypeChoice::Float(DType::BF16), 0.1, 0.1);
}
