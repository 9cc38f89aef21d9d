//! End to end on the tiny fixture pair (llama3 aligned under its chat template,
//! mistral base under the zero-shot template) against torch-computed goldens.

use std::path::PathBuf;

use aligntds_analysis::backend::Side;
use aligntds_analysis::input::context::{Context, ContextKind};
use aligntds_analysis::input::dataset::Record;
use aligntds_analysis::metrics::Thresholds;
use aligntds_analysis::settings::{ResponseSource, RunSettings};
use aligntds_analysis::study::record::{analyze_example, check_compatible};
use aligntds_engine::{LanguageModel, LoadOptions};
use aligntds_formats::summary::RecordedSettings;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn load(name: &str) -> Side {
    Side::local(std::sync::Arc::new(
        LanguageModel::load(
            fixtures().join(name).to_str().unwrap(),
            &LoadOptions::default(),
        )
        .unwrap(),
    ))
}

fn ctx(kind: ContextKind) -> Context {
    Context {
        kind,
        system: None,
        prefix: None,
        template: None,
        enable_thinking: None,
    }
}

#[test]
fn tds_of_the_fixture_pair_matches_torch() {
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("tds-pair.json")).unwrap())
            .unwrap();
    let (aligned, base) = (load("llama3"), load("mistral"));
    check_compatible(&aligned, &base).unwrap();
    let settings = RunSettings {
        recorded: RecordedSettings {
            aligned_context: ctx(ContextKind::Chat),
            base_context: ctx(ContextKind::Template),
            response: ResponseSource::Dataset,
            max_new_tokens: 0,
            stops: vec![],
            top_k: 5,
            thresholds: Thresholds::default(),
            compare: vec![],
            sampling: None,
            answered_by: None,
            handover: None,
        },
        strict: false,
        cancel: Default::default(),
    };
    let as_ids = |v: &serde_json::Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect::<Vec<u32>>()
    };
    let mut checked = 0;
    for r in golden["records"].as_array().unwrap() {
        let record = Record {
            output_ids: Some(as_ids(&r["output_ids"])),
            ..Record::query(r["id"].as_str().unwrap(), r["query"].as_str().unwrap())
        };
        let result = analyze_example(&aligned, &base, &record, &settings).unwrap();
        assert_eq!(
            aligned
                .text
                .tokenizer
                .encode(&result.example.aligned_context)
                .unwrap(),
            as_ids(&r["aligned_context_ids"]),
            "aligned context"
        );
        assert_eq!(
            base.text
                .tokenizer
                .encode(&result.example.base_context)
                .unwrap(),
            as_ids(&r["base_context_ids"]),
            "base context"
        );
        assert_eq!(result.example.source, "dataset");
        let positions = r["positions"].as_array().unwrap();
        assert_eq!(result.positions.len(), positions.len());
        for (ours, g) in result.positions.iter().zip(positions) {
            let m = ours;
            assert_eq!(ours.token_id as u64, g["token_id"].as_u64().unwrap());
            assert_eq!(
                m.base_rank as u64,
                g["base_rank"].as_u64().unwrap(),
                "base rank at {}",
                ours.position
            );
            assert_eq!(m.aligned_rank as u64, g["aligned_rank"].as_u64().unwrap());
            assert_eq!(m.category.as_str(), g["category"].as_str().unwrap());
            for (name, value) in [
                ("kl_aligned_base", m.kl_aligned_base.unwrap()),
                ("kl_base_aligned", m.kl_base_aligned.unwrap()),
                ("js", m.js.unwrap()),
            ] {
                let want = g[name].as_f64().unwrap();
                assert!(
                    (value - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "{name} at {}: {value} vs {want}",
                    ours.position
                );
            }
            assert!((m.base_logprob as f64 - g["base_logprob"].as_f64().unwrap()).abs() <= 1e-4);
            assert!(
                (m.aligned_logprob as f64 - g["aligned_logprob"].as_f64().unwrap()).abs() <= 1e-4
            );
            checked += 1;
        }
        let total = result.example.unshifted + result.example.marginal + result.example.shifted;
        assert_eq!(total as usize, positions.len());
        // The per-token texts the report shows add up to the decoded answer.
        let joined: String = result.positions.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(joined, result.example.answer);
    }
    assert!(checked > 40);
}

#[test]
fn mismatched_vocabularies_are_refused() {
    let err = check_compatible(&load("llama3"), &load("qwen2"))
        .unwrap_err()
        .to_string();
    // The message names the first token the vocabularies disagree on, with both ids.
    assert!(
        err.contains("token \"")
            && err.contains("for the aligned model but")
            && !err.contains("Some("),
        "{err}"
    );
    let err = check_compatible(&load("llama2"), &load("gemma3"));
    assert!(err.is_ok(), "same tokenizer and width: {err:?}");
}

#[test]
fn dataset_answers_replace_unknown_end_markers_with_eos() {
    let qwen = load("qwen2");
    let settings = RunSettings {
        recorded: RecordedSettings {
            aligned_context: ctx(ContextKind::Chat),
            base_context: ctx(ContextKind::Plain),
            response: ResponseSource::Dataset,
            max_new_tokens: 0,
            stops: vec![],
            top_k: 3,
            thresholds: Thresholds::default(),
            compare: vec![],
            sampling: None,
            answered_by: None,
            handover: None,
        },
        strict: false,
        cancel: Default::default(),
    };
    let record = Record {
        output: Some("Hello there! </s>".into()),
        ..Record::query("x", "Hi")
    };
    let result = analyze_example(&qwen, &qwen, &record, &settings).unwrap();
    assert!(result.example.eos_replaced);
    assert_eq!(
        *result.example.answer_ids.last().unwrap(),
        qwen.text.eos_token_ids[0]
    );
    assert!(!result.example.answer.contains("</s>"));
    // Same model and a known special token: kept as that token, not replaced.
    let record = Record {
        output: Some("Hello there!<|im_end|>".into()),
        ..record
    };
    let result = analyze_example(&qwen, &qwen, &record, &settings).unwrap();
    assert!(!result.example.eos_replaced);
    assert_eq!(
        *result.example.answer_ids.last().unwrap(),
        qwen.text.tokenizer.token_to_id("<|im_end|>").unwrap()
    );
}
