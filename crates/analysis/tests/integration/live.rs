//! The live view against the study: an answer streamed one token per step
//! (each side from its own cache) carries what `analyze` computes for the same
//! query with a teacher-forced pass, within 1e-4 at every position; a branch
//! continues exactly as `generate` does from the same prefix, and its scores
//! equal a teacher-forced analysis of the branch's answer.

use std::sync::Arc;

use aligntds_analysis::backend::Side;
use aligntds_analysis::input::context::{default_stops, render};
use aligntds_analysis::input::dataset::Record;
use aligntds_analysis::live::{Chooser, LiveError, LivePair, LiveRequest, LiveSettings};
use aligntds_analysis::settings::{
    BackendSettings, ContextKind, Queries, ResponseSource, SideSettings, StudySettings,
};
use aligntds_analysis::study::record::analyze_example;
use aligntds_analysis::Study;
use aligntds_engine::{GenerateOptions, LanguageModel, LoadOptions};
use aligntds_formats::positions::PositionRecord;
use aligntds_stats::ExampleResult;

use crate::common::fixture;

const TOLERANCE: f64 = 1e-4;
pub(crate) const QUERY: &str = "Name three colours of the sea.";

/// llama3 (aligned, plain context) and mistral (base, the study's template): one vocabulary.
pub(crate) fn study_settings(max_new_tokens: usize) -> StudySettings {
    let mut s = StudySettings::new(
        &fixture("llama3"),
        &fixture("mistral"),
        Queries::Single(QUERY.into()),
        "unused",
    );
    s.aligned.context.kind = ContextKind::Plain;
    s.max_new_tokens = max_new_tokens;
    s.response = ResponseSource::Generate;
    s
}

pub(crate) fn live_settings(study: &StudySettings) -> LiveSettings {
    LiveSettings {
        aligned: study.aligned.clone(),
        base: study.base.clone(),
        runtime: study.runtime,
        top_k: study.top_k,
        thresholds: study.thresholds,
        stops: Vec::new(),
        limits: Default::default(),
        server_options: Default::default(),
    }
}

pub(crate) fn side(s: &SideSettings) -> (Side, Arc<LanguageModel>) {
    let model = Arc::new(LanguageModel::load(&s.model, &LoadOptions::default()).unwrap());
    (Side::local(model.clone()), model)
}

fn record(answer: Option<Vec<u32>>) -> Record {
    Record {
        output_ids: answer,
        ..Record::query("0", QUERY)
    }
}

pub(crate) fn assert_close(live: &[PositionRecord], study: &[PositionRecord], what: &str) {
    assert_eq!(live.len(), study.len(), "{what}: positions");
    for (l, s) in live.iter().zip(study) {
        let at = format!("{what}, position {}", s.position);
        assert_eq!(l.token_id, s.token_id, "{at}");
        assert_eq!(l.text, s.text, "{at}");
        for (name, a, b) in [
            (
                "aligned_logprob",
                l.aligned_logprob as f64,
                s.aligned_logprob as f64,
            ),
            ("base_logprob", l.base_logprob as f64, s.base_logprob as f64),
            (
                "kl_aligned_base",
                l.kl_aligned_base.unwrap(),
                s.kl_aligned_base.unwrap(),
            ),
            (
                "kl_base_aligned",
                l.kl_base_aligned.unwrap(),
                s.kl_base_aligned.unwrap(),
            ),
            ("js", l.js.unwrap(), s.js.unwrap()),
            (
                "base_entropy",
                l.base_entropy.unwrap(),
                s.base_entropy.unwrap(),
            ),
        ] {
            assert!((a - b).abs() <= TOLERANCE, "{at}: {name} {a} vs {b}");
        }
        assert_eq!(
            (l.aligned_rank, l.base_rank),
            (s.aligned_rank, s.base_rank),
            "{at}"
        );
        assert_eq!(l.category, s.category, "{at}");
        let ids = |t: &[aligntds_formats::positions::TopToken]| {
            t.iter().map(|x| x.id).collect::<Vec<_>>()
        };
        assert_eq!(ids(&l.base_top), ids(&s.base_top), "{at}: base top-k");
    }
}

#[test]
fn a_streamed_answer_equals_analyze_on_the_same_query() {
    let study = study_settings(40);
    let pair = LivePair::load(live_settings(&study)).unwrap();
    let mut streamed = Vec::new();
    let request = LiveRequest {
        query: QUERY.into(),
        max_new_tokens: Some(40),
        ..Default::default()
    };
    let outcome = pair
        .stream(&request, &|| false, &mut |t| streamed.push(t.clone()))
        .unwrap();
    let (a, _) = side(&study.aligned);
    let (b, _) = side(&study.base);
    let reference: ExampleResult =
        analyze_example(&a, &b, &record(None), &study.run_settings()).unwrap();
    assert!(reference.positions.len() >= 10, "a real answer to compare");
    assert_eq!(
        outcome.result.example.answer_ids,
        reference.example.answer_ids
    );
    assert_eq!(outcome.stop_reason, reference.example.stop_reason);
    assert_eq!(outcome.result.example.answer, reference.example.answer);
    assert_eq!(
        outcome.result.example.base_context,
        reference.example.base_context
    );
    assert_close(&outcome.result.positions, &reference.positions, "answer");
    // Each token went out as soon as both sides had it, with the same numbers.
    assert_eq!(streamed.len(), outcome.streamed);
    for (s, p) in streamed.iter().zip(&outcome.result.positions) {
        assert_eq!(s.record.aligned_logprob, p.aligned_logprob);
        assert_eq!(s.chosen_by, "aligned");
    }
    assert_eq!(
        (outcome.result.example.unshifted
            + outcome.result.example.marginal
            + outcome.result.example.shifted) as usize,
        reference.positions.len()
    );
}

#[test]
fn branches_continue_as_generate_does_and_score_as_analyze_does() {
    let study = study_settings(30);
    let pair = LivePair::load(live_settings(&study)).unwrap();
    let main = pair
        .stream(
            &LiveRequest {
                query: QUERY.into(),
                max_new_tokens: Some(30),
                ..Default::default()
            },
            &|| false,
            &mut |_| {},
        )
        .unwrap();
    let answer = main.result.example.answer_ids.clone();
    assert!(answer.len() > 8);
    let (a, a_model) = side(&study.aligned);
    let (b, b_model) = side(&study.base);
    let dataset = {
        let mut s = study.run_settings();
        s.recorded.response = ResponseSource::Dataset;
        s
    };
    let rec = record(None);
    let prompt = |side: &Side, kind: ContextKind| {
        let context = aligntds_formats::summary::Context::of(kind);
        side.text
            .tokenizer
            .encode(&render(&context, &side.text, &rec).unwrap())
            .unwrap()
    };
    for (with, replace) in [
        (Chooser::Base, None),
        (Chooser::Aligned, Some(17u32)),
        (Chooser::Base, Some(29)),
    ] {
        let keep = 5;
        let request = LiveRequest {
            query: QUERY.into(),
            max_new_tokens: Some(12),
            prefix_ids: answer[..keep].to_vec(),
            with: Some(with),
            replace,
            ..Default::default()
        };
        let branch = pair.stream(&request, &|| false, &mut |_| {}).unwrap();
        let mut given = answer[..keep].to_vec();
        if let Some(r) = replace {
            given[keep - 1] = r;
        }
        let what = format!("{with:?} after {keep} tokens, replace {replace:?}");
        let ids = &branch.result.example.answer_ids;
        assert_eq!(&ids[..keep], &given[..], "{what}");
        // The continuing side's own greedy answer from the same prefix.
        let (model, kind, text) = match with {
            Chooser::Base => (&b_model, ContextKind::Template, &b.text),
            Chooser::Aligned => (&a_model, ContextKind::Plain, &a.text),
        };
        let mut full_prompt = prompt(if with == Chooser::Base { &b } else { &a }, kind);
        full_prompt.extend(&given);
        let generated = model
            .generate(
                &full_prompt,
                &GenerateOptions {
                    max_new_tokens: 12,
                    stop_strings: default_stops(kind).iter().map(|s| s.to_string()).collect(),
                    eos_token_ids: text.eos_token_ids.clone(),
                    cancel: Default::default(),
                    sampling: None,
                },
            )
            .unwrap();
        let continued = &ids[keep..];
        eprintln!(
            "{what}: {} continued tokens, stop {}",
            continued.len(),
            branch.stop_reason
        );
        // Equal, except that a stop string's closing fence is trimmed as analyze trims it.
        match generated.stop_reason {
            aligntds_engine::StopReason::StopString(_) => assert!(
                generated.tokens.starts_with(continued),
                "{what}: live {continued:?} vs generate {:?}",
                generated.tokens
            ),
            _ => assert_eq!(continued, &generated.tokens[..], "{what}"),
        }
        let by: Vec<&str> = branch.chosen_by.clone();
        assert_eq!(
            by[keep - 1],
            if replace.is_some() {
                "replace"
            } else {
                "prefix"
            }
        );
        assert!(
            by[keep..].iter().all(|b| *b == with.as_str()),
            "{what}: {by:?}"
        );
        // Scores equal a teacher-forced analysis of the branch's answer.
        let reference = analyze_example(&a, &b, &record(Some(ids.clone())), &dataset).unwrap();
        assert_close(&branch.result.positions, &reference.positions, &what);
    }
}

#[test]
fn requests_outside_the_limits_are_refused_by_field_and_a_cancel_stops_at_once() {
    let study = study_settings(8);
    let mut settings = live_settings(&study);
    settings.limits.max_query_bytes = 64;
    settings.limits.max_new_tokens = 16;
    settings.limits.default_new_tokens = 8;
    let pair = LivePair::load(settings).unwrap();
    let refused = |r: LiveRequest| match pair.check(&r) {
        Err(LiveError::Invalid { field, .. }) => ("invalid", field),
        Err(LiveError::TooLarge { field, .. }) => ("too large", field),
        other => panic!("{r:?}: {other:?}"),
    };
    let q = |query: &str| LiveRequest {
        query: query.into(),
        ..Default::default()
    };
    assert_eq!(refused(q("  ")), ("invalid", "query"));
    assert_eq!(refused(q(&"x".repeat(65))), ("too large", "query"));
    assert_eq!(
        refused(LiveRequest {
            max_new_tokens: Some(17),
            ..q("hi")
        }),
        ("too large", "max_new_tokens")
    );
    assert_eq!(
        refused(LiveRequest {
            max_new_tokens: Some(0),
            ..q("hi")
        }),
        ("invalid", "max_new_tokens")
    );
    assert_eq!(
        refused(LiveRequest {
            replace: Some(3),
            ..q("hi")
        }),
        ("invalid", "replace")
    );
    assert_eq!(
        refused(LiveRequest {
            prefix_ids: vec![1, 1 << 30],
            ..q("hi")
        }),
        ("invalid", "prefix_ids")
    );
    assert_eq!(
        refused(LiveRequest {
            aligned_context: Some(ContextKind::Input),
            ..q("hi")
        }),
        ("invalid", "aligned_context")
    );
    // A client that leaves after three tokens stops the generation there.
    let calls = std::cell::Cell::new(0);
    let outcome = pair
        .stream(
            &LiveRequest {
                max_new_tokens: Some(16),
                ..q("hi there")
            },
            &|| {
                calls.set(calls.get() + 1);
                calls.get() >= 3
            },
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(outcome.stop_reason, "cancelled");
    assert_eq!(outcome.result.positions.len(), 3);
    // Past the per-request time limit, an answer stops after the token in hand.
    let mut settings = live_settings(&study);
    settings.limits.time_limit_seconds = 0.0;
    let pair = LivePair::load(settings).unwrap();
    let outcome = pair
        .stream(
            &LiveRequest {
                max_new_tokens: Some(16),
                ..q("hi there")
            },
            &|| false,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(
        (outcome.stop_reason.as_str(), outcome.result.positions.len()),
        ("time_limit", 1)
    );
}

#[test]
fn a_saved_session_is_a_run_the_report_reads() {
    let study = study_settings(10);
    let pair = LivePair::load(live_settings(&study)).unwrap();
    let request = LiveRequest {
        query: QUERY.into(),
        max_new_tokens: Some(10),
        ..Default::default()
    };
    let outcome = pair.stream(&request, &|| false, &mut |_| {}).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("saved");
    let contexts = pair.request_contexts(&request);
    let summary = pair
        .save_run(
            &dir,
            std::slice::from_ref(&outcome.result),
            (&contexts.0, &contexts.1),
            10,
        )
        .unwrap();
    assert_eq!(summary.aggregates.examples, 1);
    assert_eq!(
        summary.aggregates.positions as usize,
        outcome.result.positions.len()
    );
    let read = aligntds_formats::summary::Summary::read(&dir).unwrap();
    assert_eq!(
        read.manifest.identity.settings.aligned_context.kind,
        ContextKind::Plain
    );
    assert!(dir.join("positions.parquet").is_file() && dir.join("examples.jsonl").is_file());
    // A second save to the same place is refused, naming it.
    let again = pair
        .save_run(&dir, &[outcome.result], (&contexts.0, &contexts.1), 10)
        .err()
        .unwrap()
        .to_string();
    assert!(again.contains("not empty"), "{again}");
}

/// The real SmolLM2-135M-Instruct (chat vs the study's template, f32): the
/// same equality over a real answer, where a shared prefix and a real
/// vocabulary of 49,152 tokens are at work.
#[test]
fn a_real_models_streamed_answer_equals_analyze() {
    let Some(model) = crate::common::smollm2() else {
        return;
    };
    let mut study = StudySettings::new(&model, &model, Queries::Single(QUERY.into()), "unused");
    study.max_new_tokens = 48;
    study.response = ResponseSource::Generate;
    let pair = LivePair::load(live_settings(&study)).unwrap();
    let request = LiveRequest {
        query: QUERY.into(),
        max_new_tokens: Some(48),
        ..Default::default()
    };
    let outcome = pair.stream(&request, &|| false, &mut |_| {}).unwrap();
    let side = Side::local(Arc::new(
        LanguageModel::load(&model, &LoadOptions::default()).unwrap(),
    ));
    let reference = analyze_example(&side, &side, &record(None), &study.run_settings()).unwrap();
    assert!(reference.positions.len() >= 20);
    assert_eq!(
        outcome.result.example.answer_ids,
        reference.example.answer_ids
    );
    assert_close(
        &outcome.result.positions,
        &reference.positions,
        "SmolLM2 answer",
    );
}

/// A side on a real vLLM server (scripts/test.sh starts them) streams what the
/// local engine does on the same f32 weights: the same tokens, log-probabilities
/// within 2e-4 and the same ranks and categories, whichever side is remote,
/// also when the remote side chooses (a base branch).
#[test]
fn a_side_on_vllm_servers_streams_what_the_local_engine_does() {
    let Some(url) = std::env::var("ALIGNTDS_VLLM_URLS")
        .ok()
        .and_then(|u| u.split(',').next().map(str::to_string))
        .filter(|u| !u.is_empty())
    else {
        let allow = std::env::var("ALIGNTDS_ALLOW_MISSING").is_ok_and(|v| v == "1");
        assert!(allow, "the vLLM tests need servers: run `bash scripts/test.sh` (ALIGNTDS_ALLOW_MISSING=1 skips them)");
        eprintln!("SKIPPED: no vLLM servers");
        return;
    };
    let checkpoint = std::env::var("ALIGNTDS_VLLM_CHECKPOINT").expect("ALIGNTDS_VLLM_CHECKPOINT");
    let mut study = StudySettings::new(
        &checkpoint,
        &checkpoint,
        Queries::Single(QUERY.into()),
        "unused",
    );
    study.max_new_tokens = 24;
    let local = LivePair::load(live_settings(&study)).unwrap();
    let remote = |aligned: bool, base: bool| {
        let mut s = live_settings(&study);
        if aligned {
            s.aligned.backend = BackendSettings::from_servers(vec![url.clone()], None);
        }
        if base {
            s.base.backend = BackendSettings::from_servers(vec![url.clone()], None);
        }
        LivePair::load(s).unwrap()
    };
    let compare = |live: &[PositionRecord], reference: &[PositionRecord], what: &str| {
        assert_eq!(live.len(), reference.len(), "{what}");
        for (l, r) in live.iter().zip(reference) {
            let at = format!("{what}, position {}", r.position);
            assert_eq!(l.token_id, r.token_id, "{at}");
            assert!(
                (l.aligned_logprob - r.aligned_logprob).abs() <= 2e-4,
                "{at}"
            );
            assert!((l.base_logprob - r.base_logprob).abs() <= 2e-4, "{at}");
            if r.base_rank <= 100 {
                assert_eq!(l.base_rank, r.base_rank, "{at}");
            }
            assert_eq!(l.category, r.category, "{at}");
        }
    };
    let request = LiveRequest {
        query: QUERY.into(),
        max_new_tokens: Some(24),
        ..Default::default()
    };
    let reference = local.stream(&request, &|| false, &mut |_| {}).unwrap();
    let ids = reference.result.example.answer_ids.clone();
    for (aligned, base) in [(false, true), (true, false)] {
        let pair = remote(aligned, base);
        let what = format!("aligned remote {aligned}, base remote {base}");
        let got = pair.stream(&request, &|| false, &mut |_| {}).unwrap();
        assert_eq!(got.result.example.answer_ids, ids, "{what}");
        compare(&got.result.positions, &reference.result.positions, &what);
        assert!(got.result.positions.iter().all(|p| !p.full_vocabulary));
    }
    // The remote base model continues from the third token, as the local one does.
    let branch = LiveRequest {
        prefix_ids: ids[..3].to_vec(),
        with: Some(Chooser::Base),
        max_new_tokens: Some(12),
        ..request.clone()
    };
    let local_branch = local.stream(&branch, &|| false, &mut |_| {}).unwrap();
    let remote_branch = remote(false, true)
        .stream(&branch, &|| false, &mut |_| {})
        .unwrap();
    compare(
        &remote_branch.result.positions,
        &local_branch.result.positions,
        "base branch",
    );
    assert_eq!(remote_branch.stop_reason, local_branch.stop_reason);
    // "Save as run" from a pair with its base on servers records the servers
    // as `analyze` does for the same sides: the served model and the
    // invocation's server use, by side.
    let pair = remote(false, true);
    let streamed = pair.stream(&request, &|| false, &mut |_| {}).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let contexts = pair.request_contexts(&request);
    let saved = pair
        .save_run(
            &tmp.path().join("saved"),
            &[streamed.result],
            (&contexts.0, &contexts.1),
            24,
        )
        .unwrap()
        .manifest;
    let mut settings = study.clone();
    settings.base.backend = BackendSettings::from_servers(vec![url.clone()], None);
    settings.out = tmp.path().join("analyzed");
    let analyzed = Study::prepare(settings)
        .unwrap()
        .run(&mut |_| {})
        .unwrap()
        .summary
        .manifest;
    assert!(analyzed.identity.base_server.is_some());
    assert_eq!(saved.identity.base_server, analyzed.identity.base_server);
    assert_eq!(saved.identity.base_weights, analyzed.identity.base_weights);
    assert_eq!(saved.identity.aligned_server, None);
    let by_side = |m: &aligntds_formats::summary::Manifest| {
        m.servers
            .iter()
            .map(|u| (u.side.clone(), u.url.clone(), u.requests > 0))
            .collect::<Vec<_>>()
    };
    assert_eq!(by_side(&saved), by_side(&analyzed));
    let normalized = aligntds_analysis::settings::normalize_url(&url).unwrap();
    assert_eq!(by_side(&saved), vec![("base".into(), normalized, true)]);
}
