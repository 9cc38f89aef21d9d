//! The two real models from PyPI (scripts/fetch-models.sh), dequantized to f32
//! and quantized, against transformers loading the same GGUF files.

use crate::common::*;
use aligntds_engine::{DTypeChoice, GenerateOptions, StopReason};

const SMOLLM2: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
const GEMMA3: &str = "models/gemma-3-270m-q4_k_m.gguf";
/// Many layers of f32 arithmetic in another order than transformers'.
const REAL_TOLERANCE: f64 = 1e-3;

fn golden(name: &str) -> serde_json::Value {
    read_json(&repo_root().join(format!("fixtures/real/{name}.json")))
}

#[test]
fn real_models_match_transformers_in_f32() {
    for (name, file) in [("smollm2", SMOLLM2), ("gemma3", GEMMA3)] {
        let Some(model) = real(file, DTypeChoice::Float(aligntds_engine::DType::F32)) else {
            return;
        };
        for (i, seq) in golden(name)["sequences"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let err = max_error(&model, seq, None);
            eprintln!("{name} sequence {i}: max |delta log-prob| = {err:.2e}");
            assert!(err <= REAL_TOLERANCE, "{name} sequence {i}: {err}");
        }
    }
}

#[test]
fn real_tokenizers_match_transformers() {
    for (name, file) in [("smollm2", SMOLLM2), ("gemma3", GEMMA3)] {
        let Some(model) = real(file, DTypeChoice::Quantized) else {
            return;
        };
        let tok = &model.text.tokenizer;
        for row in golden(name)["tokenization"].as_array().unwrap() {
            let text = row["text"].as_str().unwrap();
            assert_eq!(
                tok.encode(text).unwrap(),
                ids(&row["ids"]),
                "{name}: {text:?}"
            );
            let plain = ids(&row["ids_plain"]);
            assert_eq!(
                tok.encode_plain(text).unwrap(),
                plain,
                "{name}: {text:?} without specials"
            );
            assert_eq!(
                tok.decode(&plain, false).unwrap(),
                row["decoded"].as_str().unwrap(),
                "{name}: decode"
            );
        }
    }
}

#[test]
fn smollm2_template_and_greedy_generation() {
    let Some(model) = real(SMOLLM2, DTypeChoice::Float(aligntds_engine::DType::F32)) else {
        return;
    };
    let g = golden("smollm2");
    let query = g["chat"]["messages"][0]["content"].as_str().unwrap();
    let rendered = model
        .text
        .render_chat(&aligntds_engine::template::single_turn(query, None))
        .unwrap();
    assert_eq!(rendered, g["chat"]["rendered"].as_str().unwrap());
    let prompt = model.text.tokenizer.encode(&rendered).unwrap();
    assert_eq!(prompt, ids(&g["generation"]["prompt"]));
    let options = GenerateOptions {
        max_new_tokens: 64,
        stop_strings: vec![],
        eos_token_ids: vec![],
        cancel: Default::default(),
        sampling: None,
    };
    let out = model.generate(&prompt, &options).unwrap();
    let expected = ids(&g["generation"]["tokens"]);
    assert_eq!(
        out.tokens,
        expected,
        "greedy tokens; ours: {:?}",
        model.text.tokenizer.decode(&out.tokens, true)
    );
    for (a, b) in out
        .logprobs
        .iter()
        .zip(floats(&g["generation"]["logprobs"]))
    {
        assert!((*a as f64 - b).abs() <= REAL_TOLERANCE, "{a} vs {b}");
    }
}

/// KV-cache generation and one teacher-forced pass agree within 1e-4, in f32
/// and quantized (no 8-bit rounding of activations on either path).
#[test]
fn real_generation_agrees_with_teacher_forcing() {
    for file in [SMOLLM2, GEMMA3] {
        for dtype in [
            DTypeChoice::Float(aligntds_engine::DType::F32),
            DTypeChoice::Quantized,
        ] {
            let Some(model) = real(file, dtype) else {
                return;
            };
            let prompt = model
                .text
                .tokenizer
                .encode("The three primary colors are")
                .unwrap();
            let options = GenerateOptions {
                max_new_tokens: 24,
                stop_strings: vec![],
                eos_token_ids: vec![u32::MAX],
                cancel: Default::default(),
                sampling: None,
            };
            let out = model.generate(&prompt, &options).unwrap();
            assert_eq!(out.stop_reason, StopReason::MaxNewTokens);
            let full: Vec<u32> = prompt.iter().chain(&out.tokens).copied().collect();
            let mut worst = 0f32;
            let mut total = 0f32;
            model
                .score(&full, prompt.len(), |rows| {
                    for (pos, row) in rows.rows() {
                        let delta =
                            (row[full[pos] as usize] - out.logprobs[pos - prompt.len()]).abs();
                        worst = worst.max(delta);
                        total += delta;
                    }
                    Ok(())
                })
                .unwrap();
            let mean = total / out.tokens.len() as f32;
            eprintln!("{file} {dtype:?}: cache vs teacher forcing: max delta {worst:.2e}, mean {mean:.2e}");
            // Quantized too: both paths multiply the same dequantized block values
            // with f32 activations (every block type of both files has a kernel).
            assert!(worst <= 1e-4, "{file} {dtype:?}: max {worst}, mean {mean}");
        }
    }
}

/// Scoring many positions at once dequantizes weight tiles into the f32 GEMM,
/// so the quantized model scores like transformers running the same GGUF.
#[test]
fn quantized_scoring_matches_transformers_on_the_same_weights() {
    for (name, file) in [("smollm2", SMOLLM2), ("gemma3", GEMMA3)] {
        let Some(model) = real(file, DTypeChoice::Quantized) else {
            return;
        };
        let seq = &golden(name)["sequences"][0];
        let err = max_error(&model, seq, None);
        eprintln!("{name} q: max |delta log-prob| vs transformers = {err:.2e}");
        assert!(err <= REAL_TOLERANCE, "{name} q: {err}");
    }
}

/// bf16 is held to transformers' own bf16: on the same sequences, no further
/// from the f32 goldens (top-20 and target log-probabilities) than
/// transformers in bf16 is (fixtures/real/<name>.bf16.json, made by
/// make_real_goldens.py --bf16 from the same weights rounded to bf16).
#[test]
fn real_models_in_bf16_stay_as_close_to_f32_as_transformers_bf16() {
    for (name, file) in [("smollm2", SMOLLM2), ("gemma3", GEMMA3)] {
        let Some(model) = real(file, DTypeChoice::Float(aligntds_engine::DType::BF16)) else {
            return;
        };
        let theirs = golden(&format!("{name}.bf16"))["max_abs_delta_from_f32"]
            .as_f64()
            .unwrap();
        let ours = golden(name)["sequences"]
            .as_array()
            .unwrap()
            .iter()
            // bf16 may swap a top-1 that leads by less than its rounding.
            .map(|seq| max_error_with(&model, seq, None, 0.5))
            .fold(0f64, f64::max);
        let kernels = aligntds_engine::math::level().name();
        eprintln!("{name} bf16 ({kernels}): max |delta log-prob| from f32 {ours:.4}; transformers bf16 {theirs:.4}");
        assert!(
            ours <= theirs,
            "{name}: {ours} from f32, transformers bf16 {theirs}"
        );
    }
}
