//! Several sequences scored in packed passes give, bit for bit, the rows of
//! scoring each alone (with and without a reused prefix), on the real
//! SmolLM2 GGUF (scripts/fetch-models.sh) in f32 and quantized, and on the
//! tiny fixtures; a bad request fails alone.

use std::sync::Arc;

use crate::common::*;
use aligntds_engine::ScoreRequest;
use aligntds_engine::{DType, DTypeChoice, LanguageModel};

const SMOLLM2: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

fn all_rows(prepared: &aligntds_engine::PreparedScoring<'_>) -> Vec<f32> {
    let mut out = Vec::new();
    if prepared.answer_len() > 0 {
        prepared
            .log_probs(0, prepared.answer_len(), &mut out)
            .unwrap();
    }
    out
}

/// Sequences of assorted lengths: long ones that pack, one short enough to
/// run alone, one with an empty answer; all after the same system prompt.
fn sequences(model: &LanguageModel) -> Vec<(Vec<u32>, usize)> {
    let tok = &model.text.tokenizer;
    let head = "You are a careful assistant. Answer briefly and precisely, and say so when you are unsure.\n";
    let cases = [
        ("What is the capital of France?", "The capital of France is Paris, on the Seine, and it has been for centuries."),
        ("Name three colors.", "Red, green and blue are three colors; so are cyan, magenta and yellow."),
        ("Hi", "Hello!"),
        ("How do I boil an egg?", "Put the egg in boiling water for nine minutes, then cool it in cold water before peeling it."),
        ("Say nothing.", ""),
    ];
    cases
        .iter()
        .map(|(q, a)| {
            let mut tokens = tok.encode(&format!("{head}Q: {q}\nA:")).unwrap();
            let start = tokens.len();
            tokens.extend(tok.encode_plain(a).unwrap());
            (tokens, start)
        })
        .collect()
}

fn check(model: &LanguageModel, name: &str) {
    let seqs = sequences(model);
    let shared = aligntds_engine::shared_prefix_len(&seqs[0].0, &seqs[1].0);
    assert!(shared > 8, "{name}: the sequences share {shared} tokens");
    let prefix = Arc::new(model.prefix_cache(&seqs[0].0[..shared]).unwrap());
    // Each sequence twice: from scratch and after the prefix (the short one too).
    let mut requests: Vec<ScoreRequest> = Vec::new();
    for (tokens, start) in &seqs {
        requests.push(ScoreRequest {
            tokens,
            answer_start: *start,
            prefix: None,
        });
        requests.push(ScoreRequest {
            tokens,
            answer_start: *start,
            prefix: Some(&prefix),
        });
    }
    // A bad request among them fails alone.
    requests.insert(
        3,
        ScoreRequest {
            tokens: &seqs[0].0,
            answer_start: 0,
            prefix: None,
        },
    );
    let packed = model.prepare_scoring_packed(&requests);
    assert_eq!(packed.len(), requests.len());
    for (i, (r, result)) in requests.iter().zip(packed).enumerate() {
        if r.answer_start == 0 {
            let e = result
                .err()
                .expect("a request scoring from position 0 fails");
            assert!(e.to_string().contains("not 0"), "{e}");
            continue;
        }
        let packed = all_rows(&model.resume_scoring(result.unwrap()));
        let alone = match r.prefix {
            Some(p) => model.prepare_scoring_after(p, r.tokens, r.answer_start),
            None => model.prepare_scoring(r.tokens, r.answer_start),
        }
        .unwrap();
        let alone = all_rows(&alone);
        assert_eq!(packed.len(), alone.len(), "{name}: request {i}");
        let same = packed
            .iter()
            .zip(&alone)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{name}: request {i} differs when packed");
    }
}

#[test]
fn packed_scoring_equals_scoring_each_sequence_alone_on_the_fixtures() {
    for name in FIXTURES {
        check(&load(name), name);
    }
}

#[test]
fn packed_scoring_equals_scoring_each_sequence_alone_on_smollm2() {
    for dtype in [
        DTypeChoice::Float(DType::F32),
        DTypeChoice::Quantized,
        DTypeChoice::Float(DType::BF16),
    ] {
        if let Some(model) = real(SMOLLM2, dtype) {
            check(&model, &format!("SmolLM2 {dtype:?}"));
        }
    }
}
