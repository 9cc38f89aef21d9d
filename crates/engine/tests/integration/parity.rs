//! Parity with transformers: every fixture architecture's log-probabilities,
//! greedy generation, and teacher-forced vs KV-cache agreement.

use crate::common::*;
use aligntds_engine::{GenerateOptions, StopReason};

#[test]
fn log_probs_match_transformers_for_every_architecture() {
    for name in FIXTURES {
        let model = load(name);
        let goldens = read_json(&fixture_dir(name).join("goldens.json"));
        for (i, seq) in goldens["sequences"].as_array().unwrap().iter().enumerate() {
            let err = max_error(&model, seq, None);
            eprintln!("{name} sequence {i}: max |delta log-prob| = {err:.2e}");
            assert!(
                err <= TOLERANCE,
                "{name} sequence {i}: max |delta log-prob| {err} > {TOLERANCE}"
            );
        }
    }
}

#[test]
fn chunked_scoring_gives_the_same_rows() {
    let model = load("mistral");
    let goldens = read_json(&fixture_dir("mistral").join("goldens.json"));
    let seq = &goldens["sequences"][0];
    for chunk in [1, 3, 7] {
        let err = max_error(&model, seq, Some(chunk));
        assert!(err <= TOLERANCE, "chunk of {chunk} rows: {err}");
    }
}

#[test]
fn greedy_generation_matches_transformers_and_teacher_forcing() {
    for name in FIXTURES {
        let model = load(name);
        let golden = &read_json(&fixture_dir(name).join("goldens.json"))["generation"];
        let prompt = ids(&golden["prompt"]);
        let expected = ids(&golden["tokens"]);
        let options = GenerateOptions {
            max_new_tokens: expected.len(),
            stop_strings: vec![],
            eos_token_ids: vec![u32::MAX],
            cancel: Default::default(),
            sampling: None,
        };
        let out = model.generate(&prompt, &options).unwrap();
        assert_eq!(out.tokens, expected, "{name}: greedy tokens");
        assert_eq!(out.stop_reason, StopReason::MaxNewTokens);
        for (ours, theirs) in out.logprobs.iter().zip(floats(&golden["logprobs"])) {
            assert!(
                (*ours as f64 - theirs).abs() <= TOLERANCE,
                "{name}: generated log-prob {ours} vs {theirs}"
            );
        }
        // The KV-cache path and one teacher-forced pass over prompt + answer agree.
        let full: Vec<u32> = prompt.iter().chain(&out.tokens).copied().collect();
        for (a, b) in out
            .logprobs
            .iter()
            .zip(&forced(&model, &full, prompt.len()))
        {
            assert!(
                (a - b).abs() <= 1e-4,
                "{name}: cache {a} vs teacher-forced {b}"
            );
        }
    }
}

#[test]
fn generation_stops_at_eos_and_keeps_it() {
    let model = load("llama2");
    let golden = &read_json(&fixture_dir("llama2").join("goldens.json"))["generation"];
    let prompt = ids(&golden["prompt"]);
    let expected = ids(&golden["tokens"]);
    // Declare the 4th greedy token an eos: generation must end right after it, keeping it.
    let options = GenerateOptions {
        max_new_tokens: 50,
        stop_strings: vec![],
        eos_token_ids: vec![expected[3]],
        cancel: Default::default(),
        sampling: None,
    };
    let out = model.generate(&prompt, &options).unwrap();
    let first = expected.iter().position(|&t| t == expected[3]).unwrap();
    assert_eq!(out.tokens, expected[..=first].to_vec());
    assert_eq!(out.stop_reason, StopReason::Eos);
}

/// A cancel token set from another thread stops generation at its next
/// decoding step, keeping what was generated (transformers' greedy tokens).
#[test]
fn a_cancel_set_from_another_thread_stops_generation_at_its_next_step() {
    let model = load("llama2");
    let golden = &read_json(&fixture_dir("llama2").join("goldens.json"))["generation"];
    let prompt = ids(&golden["prompt"]);
    let expected = ids(&golden["tokens"]);
    let options = GenerateOptions {
        max_new_tokens: 50,
        stop_strings: vec![],
        eos_token_ids: vec![u32::MAX],
        cancel: aligntds_engine::Cancel::new(),
        sampling: None,
    };
    let setter = options.cancel.clone();
    std::thread::spawn(move || setter.cancel()).join().unwrap();
    let out = model.generate(&prompt, &options).unwrap();
    // The prefill gives the first token; the check after it ends the loop.
    assert_eq!(out.stop_reason, StopReason::Cancelled);
    assert_eq!(out.tokens, expected[..1].to_vec());
    // A batch whose requests share the token stops every one of them.
    let prompts = vec![prompt.clone(), prompt[..prompt.len() - 1].to_vec()];
    for answer in model.generate_batch(&prompts, &options, 2).unwrap() {
        let answer = answer.unwrap();
        assert_eq!(
            (answer.stop_reason, answer.tokens.len()),
            (StopReason::Cancelled, 1)
        );
    }
}

#[test]
fn generation_stops_before_a_stop_string_dropping_the_token_it_starts_in() {
    let model = load("qwen2");
    let golden = &read_json(&fixture_dir("qwen2").join("goldens.json"))["generation"];
    let prompt = ids(&golden["prompt"]);
    let expected = ids(&golden["tokens"]);
    let tok = &model.text.tokenizer;
    // A stop string starting inside the 5th token's text and running into the 6th.
    let pieces = tok.pieces(&expected).unwrap();
    let (k, piece) = pieces
        .iter()
        .enumerate()
        .skip(4)
        .find(|(_, p)| p.chars().count() >= 2)
        .expect("a piece of 2+ chars");
    let tail: String = piece.chars().skip(1).collect();
    let stop = format!("{tail}{}", pieces[k + 1]);
    let options = GenerateOptions {
        max_new_tokens: 50,
        stop_strings: vec!["never-generated".into(), stop.clone()],
        eos_token_ids: vec![u32::MAX],
        cancel: Default::default(),
        sampling: None,
    };
    let out = model.generate(&prompt, &options).unwrap();
    let text_before = tok.decode(&expected[..k], false).unwrap();
    let full_text = tok.decode(&expected[..k + 2], false).unwrap();
    let first_hit = full_text.find(&stop).unwrap();
    assert!(
        first_hit >= text_before.len(),
        "stop string starts inside token {k}"
    );
    assert_eq!(
        out.tokens,
        expected[..k].to_vec(),
        "tokens before the one containing the stop string's start"
    );
    assert_eq!(out.stop_reason, StopReason::StopString(stop));
}

#[test]
fn half_precision_dtypes_load_and_stay_close() {
    for dtype in [aligntds_engine::DType::BF16, aligntds_engine::DType::F16] {
        let options = aligntds_engine::LoadOptions {
            dtype: aligntds_engine::DTypeChoice::Float(dtype),
            ..Default::default()
        };
        let model =
            aligntds_engine::LanguageModel::load(fixture_dir("qwen2").to_str().unwrap(), &options)
                .unwrap();
        let goldens = read_json(&fixture_dir("qwen2").join("goldens.json"));
        let err = max_error_with(&model, &goldens["sequences"][0], None, 0.3);
        eprintln!("{dtype:?}: max |delta log-prob| vs f32 transformers = {err:.3}");
        // Reduced precision moves log-probs by a few hundredths here, never by whole units.
        assert!(err > 1e-6 && err < 0.25, "{dtype:?}: {err}");
    }
}

/// Target log-probabilities of `tokens[start..]` scored after a cached `prefix`.
fn after_prefix(
    model: &aligntds_engine::LanguageModel,
    prefix: &aligntds_engine::PrefixCache,
    tokens: &[u32],
    start: usize,
) -> Vec<f32> {
    let prepared = model.prepare_scoring_after(prefix, tokens, start).unwrap();
    let (n, width) = (prepared.answer_len(), prepared.width());
    let mut rows = Vec::new();
    prepared.log_probs(0, n, &mut rows).unwrap();
    (0..n)
        .map(|i| rows[i * width + tokens[start + i] as usize])
        .collect()
}

#[test]
fn long_rope_keeps_one_regime_per_sequence_through_the_cache() {
    // Phi-3's LongRoPE switches to its long factors past the original context
    // (32 positions in the fixture). A sequence planned past it takes them from
    // its first position, so cached decoding equals one teacher-forced pass over
    // the whole sequence (which transformers computes in the long regime).
    let model = load("phi3");
    let goldens = read_json(&fixture_dir("phi3").join("goldens.json"));
    let long = ids(&goldens["sequences"][1]["tokens"]);
    assert_eq!(long.len(), 48);
    let prompt = &long[..30];
    let options = GenerateOptions {
        max_new_tokens: 10,
        stop_strings: vec![],
        eos_token_ids: vec![u32::MAX],
        cancel: Default::default(),
        sampling: None,
    };
    let out = model.generate(prompt, &options).unwrap();
    let full: Vec<u32> = prompt.iter().chain(&out.tokens).copied().collect();
    assert!(
        full.len() > 32,
        "the sequence must pass the original context"
    );
    for (a, b) in out.logprobs.iter().zip(forced(&model, &full, prompt.len())) {
        assert!((a - b).abs() <= 1e-4, "cache {a} vs teacher-forced {b}");
    }
    // A prefix cached in the short regime is not continued into a long sequence:
    // scoring after it equals scoring from scratch (which matches transformers).
    let prefix = model.prefix_cache(&long[..20]).unwrap();
    let after = after_prefix(&model, &prefix, &long, 25);
    let scratch = forced(&model, &long, 25);
    assert_eq!(after.len(), scratch.len());
    for (a, b) in after.iter().zip(&scratch) {
        assert!(
            (a - b).abs() <= 1e-5,
            "after a short prefix {a} vs from scratch {b}"
        );
    }
    // Within the short regime the prefix is continued as usual.
    let short = &long[..30];
    let prefix = model.prefix_cache(&short[..20]).unwrap();
    let after = after_prefix(&model, &prefix, short, 25);
    for (a, b) in after.iter().zip(forced(&model, short, 25)) {
        assert!(
            (a - b).abs() <= 1e-5,
            "after a prefix {a} vs from scratch {b}"
        );
    }
}

#[test]
fn the_added_architectures_load_in_every_dtype() {
    use aligntds_engine::{DType, DTypeChoice, LanguageModel, LoadOptions};
    for name in ["qwen3", "olmo2", "gemma2", "phi3"] {
        let goldens = read_json(&fixture_dir(name).join("goldens.json"));
        let gguf = repo_root().join(format!("fixtures/{name}.gguf"));
        for (path, dtype) in [
            (fixture_dir(name), DTypeChoice::Float(DType::BF16)),
            (fixture_dir(name), DTypeChoice::Float(DType::F16)),
            (gguf.clone(), DTypeChoice::Float(DType::BF16)),
            (gguf.clone(), DTypeChoice::Quantized),
            (fixture_dir(name), DTypeChoice::Auto),
        ] {
            let options = LoadOptions {
                dtype,
                ..Default::default()
            };
            let model = LanguageModel::load(path.to_str().unwrap(), &options).unwrap();
            let err = max_error_with(&model, &goldens["sequences"][0], None, 0.5);
            eprintln!(
                "{name} {dtype:?} ({}): max |delta log-prob| = {err:.4}",
                path.display()
            );
            match dtype {
                // An F32 file keeps its float tensors dense under `q`; auto picks f32 here.
                DTypeChoice::Quantized | DTypeChoice::Auto => assert!(err <= TOLERANCE, "{err}"),
                // Reduced precision moves these random-weight log-probs by hundredths in f16
                // and tenths in bf16 (its 8-bit mantissa; Gemma 3's fixture moves 0.9), never more.
                DTypeChoice::Float(DType::F16) => {
                    assert!(err > 1e-6 && err < 0.1, "{name} f16: {err}")
                }
                _ => assert!(err > 1e-6 && err < 0.5, "{name} {dtype:?}: {err}"),
            }
        }
    }
}

/// Which kernels ran is printed, and `ALIGNTDS_CPU` caps them: scripts/test.sh
/// runs these tests again at each lower level, so every path is checked on a
/// CPU that has the widest.
#[test]
fn the_kernel_level_is_what_the_cpu_has_under_aligntds_cpu() {
    use aligntds_engine::math::{level, Level};
    let cap = std::env::var("ALIGNTDS_CPU").ok();
    eprintln!("kernels at level {} (ALIGNTDS_CPU={cap:?})", level().name());
    match cap.as_deref() {
        Some("portable") => assert_eq!(level(), Level::Portable),
        Some("avx2") => assert!(level() <= Level::Avx2, "{:?}", level()),
        Some("avx512") => assert!(level() <= Level::Avx512, "{:?}", level()),
        _ => {}
    }
}
