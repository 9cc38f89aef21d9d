//! A shared context prefix run once and continued (PrefixCache) gives the
//! scores and answers of running each sequence from scratch, on the real
//! Gemma 3 270M (scripts/fetch-models.sh), in f32 and quantized.

use std::sync::Arc;

use crate::common::*;
use aligntds_engine::Request;
use aligntds_engine::{DType, DTypeChoice, GenerateOptions, LanguageModel};

const GEMMA3: &str = "models/gemma-3-270m-q4_k_m.gguf";

/// A few hundred tokens that every record starts with, as a URIAL prefix is.
const PREFIX: &str = "# Instruction\n\nBelow is a list of conversations between a human and an AI assistant (you). \
Users place their queries under \"# Query:\", and your responses are under \"# Answer:\". \
You are a helpful, respectful, and honest assistant. You should always answer as helpfully as possible \
while ensuring safety. Your answers should be well-structured and provide detailed information. \
They should also have an engaging tone. Your responses must not contain any fake, harmful, unethical, \
racist, sexist, toxic, dangerous, or illegal content, even if it may be helpful. Your response must be \
socially responsible, and thus you can refuse to answer some controversial topics.\n\n\
# Query:\n```\nCan you tell me some common types of renewable energy sources?\n```\n\n# Answer:\n```\n\
Hello! Certainly! Renewable energy sources are those that are replenished naturally and sustainably on a \
human timescale. Here are some common types: 1. Solar energy, from the sun's radiation. 2. Wind energy, from \
moving air. 3. Hydropower, from flowing water. 4. Geothermal energy, from the earth's heat. 5. Biomass, from \
organic material.\n```\n\n# Query:\n```\n";

const QUERIES: &[(&str, &str)] = &[
    (
        "What is the capital of France?",
        "The capital of France is Paris.",
    ),
    ("Name three colors.", "Red, green and blue."),
    (
        "How do I boil an egg?",
        "Put the egg in boiling water for nine minutes.",
    ),
];

fn context(query: &str) -> String {
    format!("{PREFIX}{query}\n```\n\n# Answer:\n```\n")
}

/// Largest difference between two sets of rows of full log-distributions.
fn rows(
    model: &LanguageModel,
    prefix: Option<&Arc<aligntds_engine::PrefixCache>>,
    tokens: &[u32],
    start: usize,
) -> Vec<f32> {
    let prepared = match prefix {
        Some(p) => model.prepare_scoring_after(p, tokens, start).unwrap(),
        None => model.prepare_scoring(tokens, start).unwrap(),
    };
    let mut out = Vec::new();
    prepared
        .log_probs(0, prepared.answer_len(), &mut out)
        .unwrap();
    out
}

fn check(dtype: DTypeChoice) {
    let Some(model) = real(GEMMA3, dtype) else {
        return;
    };
    let tok = &model.text.tokenizer;
    let contexts: Vec<Vec<u32>> = QUERIES
        .iter()
        .map(|(q, _)| tok.encode(&context(q)).unwrap())
        .collect();
    let shared = aligntds_engine::shared_prefix_len(&contexts[0], &contexts[1]);
    assert!(shared > 200, "the records share {shared} tokens");
    let prefix = Arc::new(model.prefix_cache(&contexts[0][..shared]).unwrap());
    // Scoring: every answer position's whole row, with and without the prefix.
    let mut worst = 0f32;
    for (ctx, (_, answer)) in contexts.iter().zip(QUERIES) {
        let mut tokens = ctx.clone();
        tokens.extend(tok.encode_plain(answer).unwrap());
        let scratch = rows(&model, None, &tokens, ctx.len());
        let reused = rows(&model, Some(&prefix), &tokens, ctx.len());
        assert_eq!(scratch.len(), reused.len());
        for (a, b) in scratch.iter().zip(&reused) {
            worst = worst.max((a - b).abs());
        }
    }
    eprintln!("{dtype:?}: {shared}-token prefix reused: scores within {worst:.2e} of from scratch");
    assert!(worst <= 1e-5, "{dtype:?}: {worst}");
    // Generation, alone and batched: the answers from scratch.
    let options = GenerateOptions {
        max_new_tokens: 16,
        stop_strings: vec![],
        eos_token_ids: vec![],
        cancel: Default::default(),
        sampling: None,
    };
    let mut generator = model.batch_generator(2);
    let requests: Vec<Request> = contexts
        .iter()
        .enumerate()
        .map(|(i, c)| Request {
            key: i as u64,
            prompt: c.clone(),
            options: options.clone(),
            prefix: Some(prefix.clone()),
        })
        .collect();
    let mut batched: Vec<Option<Vec<u32>>> = vec![None; contexts.len()];
    let mut waiting = requests;
    while !waiting.is_empty() || generator.active() > 0 {
        let (finished, rest) = generator.join(std::mem::take(&mut waiting)).unwrap();
        waiting = rest;
        for f in finished.into_iter().chain(generator.step().unwrap()) {
            batched[f.key as usize] = Some(f.result.unwrap().tokens);
        }
    }
    for (ctx, batched) in contexts.iter().zip(batched) {
        let scratch = model.generate(ctx, &options).unwrap();
        let after = model.generate_after(&prefix, ctx, &options).unwrap();
        assert_eq!(after.tokens, scratch.tokens, "{dtype:?}: alone");
        assert_eq!(batched.unwrap(), scratch.tokens, "{dtype:?}: batched");
        for (a, b) in after.logprobs.iter().zip(&scratch.logprobs) {
            assert!((a - b).abs() <= 1e-5, "{dtype:?}: {a} vs {b}");
        }
    }
}

#[test]
fn a_reused_prefix_scores_and_generates_as_from_scratch_in_f32() {
    check(DTypeChoice::Float(DType::F32));
}

#[test]
fn a_reused_prefix_scores_and_generates_as_from_scratch_quantized() {
    check(DTypeChoice::Quantized);
}
