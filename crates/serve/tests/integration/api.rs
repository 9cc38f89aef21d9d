//! The JSON + SSE API over loopback: streams, branches, saving, every refusal
//! with its status and field, the queue, cancelling by disconnecting, run
//! pages that never serve a path outside the site, and thousands of random
//! and malformed bodies without a panic.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use aligntds_serve::AppState;
use serde_json::{json, Value};

fn tokens(events: &[(String, Value)]) -> Vec<&Value> {
    events
        .iter()
        .filter(|(n, _)| n == "token")
        .map(|(_, d)| d)
        .collect()
}

fn done(events: &[(String, Value)]) -> &Value {
    &events
        .iter()
        .find(|(n, _)| n == "done")
        .unwrap_or_else(|| panic!("no done event: {events:?}"))
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_streams_every_token_then_done_and_a_branch_and_save_follow() {
    let tmp = tempfile::tempdir().unwrap();
    let (addr, _) = serve_loaded(serve_settings(fixture_settings(), tmp.path(), 4)).await;
    let reply = post(
        addr,
        "/api/analyze",
        &json!({"query": "Hello there?", "max_new_tokens": 12}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.headers["content-type"], "text/event-stream");
    let events = events(&reply.body);
    let toks = tokens(&events);
    let end = done(&events);
    assert_eq!(toks.len(), end["tokens"].as_u64().unwrap() as usize);
    for (i, t) in toks.iter().enumerate() {
        assert_eq!(t["position"], i);
        for key in [
            "token_id",
            "text",
            "aligned_logprob",
            "aligned_rank",
            "base_logprob",
            "base_rank",
            "category",
            "kl_aligned_base",
            "chosen_by",
        ] {
            assert!(!t[key].is_null(), "{key} missing in {t}");
        }
        assert_eq!(t["aligned_top"].as_array().unwrap().len(), 10);
        assert_eq!(t["base_top"].as_array().unwrap().len(), 10);
        let rank = t["base_rank"].as_u64().unwrap();
        let expected = match rank {
            1 => "unshifted",
            2 | 3 => "marginal",
            _ => "shifted",
        };
        assert_eq!(t["category"], expected);
    }
    let ids: Vec<u64> = toks
        .iter()
        .map(|t| t["token_id"].as_u64().unwrap())
        .collect();
    assert_eq!(end["answer_ids"], json!(ids));
    let counts = &end["counts"];
    let total: u64 = ["unshifted", "marginal", "shifted"]
        .iter()
        .map(|c| counts[c].as_u64().unwrap())
        .sum();
    assert_eq!(total as usize, toks.len());

    // The base model takes over after four tokens.
    let branch = post(
        addr,
        "/api/continue",
        &json!({"query": "Hello there?", "max_new_tokens": 6, "prefix_ids": &ids[..4], "with": "base"}),
    )
    .await;
    let branch_events = crate::common::events(&branch.body);
    let bt = tokens(&branch_events);
    assert!(bt.len() > 4, "{}", branch.body);
    for (a, b) in toks[..4].iter().zip(&bt[..4]) {
        assert_eq!(a["token_id"], b["token_id"]);
        assert_eq!(a["base_logprob"], b["base_logprob"]);
        assert_eq!(b["chosen_by"], "prefix");
    }
    assert!(bt[4..]
        .iter()
        .all(|t| t["chosen_by"] == "base" && t["base_rank"] == 1));

    // Both saved as one run that the report reads.
    let sessions = json!([end["session"], done(&branch_events)["session"]]);
    let saved = post(
        addr,
        "/api/save",
        &json!({"name": "pair-1", "sessions": sessions}),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let dir = tmp.path().join("pair-1");
    let summary = aligntds_formats::summary::Summary::read(&dir).unwrap();
    assert_eq!(summary.aggregates.examples, 2);
    let report = tmp.path().join("report");
    aligntds_report::build(&[aligntds_report::Run::load(&dir).unwrap()], &report).unwrap();
    assert!(report.join("r0/e00001.html").is_file());
    // Its study.toml names its queries and answers (queries.jsonl beside it):
    // analyze scores the same answers, branch included, to the same categories.
    let queries = std::fs::read_to_string(dir.join("queries.jsonl")).unwrap();
    assert_eq!(queries.lines().count(), 2);
    let mut study = aligntds_analysis::settings::study_file::load(&dir.join("study.toml"))
        .unwrap()
        .settings();
    study.out = tmp.path().join("again");
    let outcome = aligntds_analysis::Study::prepare(study)
        .unwrap()
        .run(&mut |_| {})
        .unwrap();
    assert_eq!(outcome.summary.aggregates.examples, 2);
    let saved = aligntds_formats::examples::read(&dir).unwrap();
    let again = aligntds_formats::examples::read(&tmp.path().join("again")).unwrap();
    for (a, b) in saved.iter().zip(&again) {
        assert_eq!((&a.id, &a.answer_ids), (&b.id, &b.answer_ids));
        assert_eq!(
            (a.unshifted, a.marginal, a.shifted),
            (b.unshifted, b.marginal, b.shifted)
        );
        assert_eq!(b.source, "dataset");
    }
    let again = post(
        addr,
        "/api/save",
        &json!({"name": "pair-1", "sessions": sessions}),
    )
    .await;
    assert_eq!(again.status, 400);
    for name in ["../escape", ".hidden", "a/b", ""] {
        let r = post(
            addr,
            "/api/save",
            &json!({"name": name, "sessions": sessions}),
        )
        .await;
        assert_eq!(
            (r.status, r.json()["field"].clone()),
            (400, json!("name")),
            "{name}"
        );
    }
    assert!(!tmp.path().join("../escape").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_their_status_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let mut live = fixture_settings();
    live.limits.max_query_bytes = 100;
    live.limits.max_new_tokens = 50;
    live.limits.default_new_tokens = 8;
    let (addr, _) = serve_loaded(serve_settings(live, tmp.path(), 2)).await;
    let cases: Vec<(&str, Vec<u8>, u16, Option<&str>)> = vec![
        ("/api/analyze", b"{not json".to_vec(), 400, None),
        ("/api/analyze", b"".to_vec(), 400, None),
        ("/api/analyze", b"{}".to_vec(), 400, None),
        (
            "/api/analyze",
            br#"{"query": 5}"#.to_vec(),
            400,
            Some("query"),
        ),
        (
            "/api/analyze",
            br#"{"query": "x", "max_new_tokens": "ten"}"#.to_vec(),
            400,
            Some("max_new_tokens"),
        ),
        (
            "/api/analyze",
            br#"{"query": "x", "max_new_tokens": -1}"#.to_vec(),
            400,
            Some("max_new_tokens"),
        ),
        (
            "/api/analyze",
            br#"{"query": "x", "colour": 1}"#.to_vec(),
            400,
            None,
        ),
        (
            "/api/analyze",
            br#"{"query": "x", "aligned_context": "sideways"}"#.to_vec(),
            400,
            Some("aligned_context"),
        ),
        (
            "/api/analyze",
            br#"{"query": "x", "prefix_ids": [1]}"#.to_vec(),
            400,
            Some("prefix_ids"),
        ),
        (
            "/api/analyze",
            json!({"query": "y".repeat(101)}).to_string().into_bytes(),
            413,
            Some("query"),
        ),
        (
            "/api/analyze",
            br#"{"query": "x", "max_new_tokens": 51}"#.to_vec(),
            413,
            Some("max_new_tokens"),
        ),
        (
            "/api/continue",
            br#"{"query": "x", "prefix_ids": [1]}"#.to_vec(),
            400,
            Some("with"),
        ),
        (
            "/api/continue",
            br#"{"query": "x", "with": "both"}"#.to_vec(),
            400,
            Some("with"),
        ),
        (
            "/api/continue",
            br#"{"query": "x", "with": "base", "replace": 3}"#.to_vec(),
            400,
            Some("replace"),
        ),
        (
            "/api/continue",
            br#"{"query": "x", "with": "base", "prefix_ids": [4294967295]}"#.to_vec(),
            400,
            Some("prefix_ids"),
        ),
        (
            "/api/save",
            br#"{"name": "x", "sessions": [999999]}"#.to_vec(),
            400,
            Some("sessions"),
        ),
        (
            "/api/save",
            br#"{"name": "x", "sessions": []}"#.to_vec(),
            400,
            Some("sessions"),
        ),
    ];
    for (path, body, status, field) in cases {
        let shown = String::from_utf8_lossy(&body)
            .chars()
            .take(60)
            .collect::<String>();
        let reply = call(addr, "POST", path, body).await;
        assert_eq!(reply.status, status, "{path} {shown}: {}", reply.body);
        let error = reply.json();
        assert!(
            error["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{error}"
        );
        if let Some(field) = field {
            assert_eq!(error["field"], field, "{path} {shown}: {error}");
        }
    }
    let big = vec![b' '; (1 << 20) + 10];
    assert_eq!(call(addr, "POST", "/api/analyze", big).await.status, 413);
    assert_eq!(
        call(addr, "GET", "/api/nothing", Vec::new()).await.status,
        404
    );
    assert_eq!(
        call(addr, "GET", "/api/analyze", Vec::new()).await.status,
        405
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_loading_the_api_answers_503_with_retry_after() {
    let tmp = tempfile::tempdir().unwrap();
    let state = AppState::new(serve_settings(fixture_settings(), tmp.path(), 2)).unwrap();
    let addr = start(state.clone()).await;
    let reply = post(addr, "/api/analyze", &json!({"query": "hi"})).await;
    assert_eq!(reply.status, 503);
    assert!(reply.headers.contains_key("retry-after"));
    assert_eq!(
        call(addr, "GET", "/api/info", Vec::new()).await.json()["ready"],
        false
    );
    assert_eq!(call(addr, "GET", "/", Vec::new()).await.status, 200);
    tokio::task::spawn_blocking(move || state.load().unwrap())
        .await
        .unwrap();
    let info = call(addr, "GET", "/api/info", Vec::new()).await.json();
    assert_eq!(info["ready"], true);
    assert_eq!(info["aligned"]["context"], "plain");
    assert_eq!(info["limits"]["max_new_tokens"], 1024);
    assert_eq!(
        post(
            addr,
            "/api/analyze",
            &json!({"query": "hi", "max_new_tokens": 3})
        )
        .await
        .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_and_a_client_that_leaves_frees_the_model_at_once() {
    let Some(model) = smollm2() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let live = live_settings(
        &model,
        aligntds_analysis::settings::ContextKind::Chat,
        &model,
    );
    // Queue 0: one answer generating, none waiting.
    let (addr, _) = serve_loaded(serve_settings(live, tmp.path(), 0)).await;
    let long =
        json!({"query": "Write a long story about a lighthouse keeper.", "max_new_tokens": 1024});
    let mut first = send(addr, "POST", "/api/analyze", long.to_string().into_bytes()).await;
    assert_eq!(first.status(), 200);
    let seen = first_events(first.body_mut(), 2).await;
    assert_eq!(seen.len(), 2);
    let busy = post(
        addr,
        "/api/analyze",
        &json!({"query": "hi", "max_new_tokens": 4}),
    )
    .await;
    assert_eq!(busy.status, 429, "{}", busy.body);
    assert_eq!(busy.headers["retry-after"], "2");
    assert!(busy.json()["error"].as_str().unwrap().contains("busy"));
    // The client leaves: the next request is taken at once, not after the
    // abandoned answer's remaining ~1000 tokens (tens of seconds here).
    drop(first);
    let left = Instant::now();
    let reply = loop {
        let r = post(
            addr,
            "/api/analyze",
            &json!({"query": "hi", "max_new_tokens": 4}),
        )
        .await;
        if r.status != 429 || left.elapsed() > Duration::from_secs(20) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let waited = left.elapsed();
    eprintln!("next request accepted {waited:?} after the client left");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    assert!(done(&events(&reply.body))["tokens"].as_u64().unwrap() <= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_pages_are_served_and_no_path_leaves_the_site() {
    let tmp = tempfile::tempdir().unwrap();
    let (addr, _) = serve_loaded(serve_settings(fixture_settings(), tmp.path(), 2)).await;
    let reply = post(
        addr,
        "/api/analyze",
        &json!({"query": "<b>bold</b>?", "max_new_tokens": 6}),
    )
    .await;
    let session = done(&events(&reply.body))["session"].clone();
    let saved = post(
        addr,
        "/api/save",
        &json!({"name": "one", "sessions": [session]}),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let mut settings = serve_settings(fixture_settings(), tmp.path(), 2);
    settings.runs = vec![tmp.path().join("one")];
    let state = AppState::new(settings).unwrap();
    let addr = start(state).await;
    let index = call(addr, "GET", "/runs/", Vec::new()).await;
    assert_eq!(index.status, 200);
    assert!(
        index.body.contains("<html")
            && index.headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
    );
    let page = call(addr, "GET", "/runs/r0/e00001.html", Vec::new()).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("&lt;b&gt;bold&lt;&#x2f;b&gt;") || page.body.contains("&lt;b&gt;bold"),
        "query escaped"
    );
    assert_eq!(
        call(addr, "GET", "/runs/assets/report.js", Vec::new())
            .await
            .status,
        200
    );
    let secret = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    for path in [
        "/runs/../Cargo.toml",
        "/runs/..%2fCargo.toml",
        "/runs/%2e%2e/Cargo.toml",
        "/runs/%2e%2e%2fCargo.toml",
        "/runs/r0/../../Cargo.toml",
        "/runs/..%5cCargo.toml",
        "/runs/%252e%252e%252fCargo.toml",
        "/runs//etc/passwd",
        "/runs/%2fetc%2fpasswd",
        "/runs/..;/Cargo.toml",
        "/../../../../etc/passwd",
        "/assets/../../Cargo.toml",
        "/runs/r0/e00001.html/../../../summary.json",
        "/runs/....//....//Cargo.toml",
    ] {
        let r = call(addr, "GET", path, Vec::new()).await;
        assert!(
            r.status == 404 || r.status == 400,
            "{path}: {} {}",
            r.status,
            &r.body[..r.body.len().min(80)]
        );
        assert!(
            !r.body.contains("[workspace]") && !r.body.contains("root:"),
            "{path}"
        );
        assert!(!secret.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_random_and_malformed_bodies_never_panic_the_server() {
    let panics = Arc::new(AtomicUsize::new(0));
    let counter = panics.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        counter.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let tmp = tempfile::tempdir().unwrap();
    let mut live = fixture_settings();
    live.limits.max_new_tokens = 4;
    live.limits.default_new_tokens = 4;
    let (addr, _) = serve_loaded(serve_settings(live, tmp.path(), 1)).await;
    // A small deterministic generator (xorshift), so a failure reproduces.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let values = [
        json!(null),
        json!(true),
        json!(-1),
        json!(1.5),
        json!(1e308),
        json!(u64::MAX),
        json!(""),
        json!("<script>alert(1)</script>"),
        json!("\u{0}\u{ffff}"),
        json!([]),
        json!([1, 2, -3]),
        json!([4294967296u64]),
        json!({}),
        json!("base"),
        json!("aligned"),
        json!("chat"),
        json!("urial"),
        json!([0, 1, 2]),
        json!(2),
        json!("x".repeat(9000)),
    ];
    let keys = [
        "query",
        "system",
        "max_new_tokens",
        "aligned_context",
        "base_context",
        "prefix_ids",
        "with",
        "replace",
        "name",
        "sessions",
        "extra",
        "",
    ];
    let mut statuses = std::collections::BTreeMap::new();
    let started = Instant::now();
    for i in 0..3000 {
        let path = ["/api/analyze", "/api/continue", "/api/save"][i % 3];
        let body: Vec<u8> = match next() % 4 {
            // Random bytes.
            0 => (0..next() % 64).map(|_| next() as u8).collect(),
            // A JSON object with random keys and values.
            1 | 2 => {
                let mut object = serde_json::Map::new();
                for _ in 0..next() % 5 {
                    let key = keys[(next() % keys.len() as u64) as usize];
                    object.insert(
                        key.into(),
                        values[(next() % values.len() as u64) as usize].clone(),
                    );
                }
                if next() % 2 == 0 {
                    object.insert("query".into(), json!("hi"));
                    object.insert("max_new_tokens".into(), json!(1 + next() % 3));
                }
                serde_json::to_vec(&Value::Object(object)).unwrap()
            }
            // A valid body cut short.
            _ => {
                let full =
                    json!({"query": "hello", "prefix_ids": [1, 2, 3], "with": "base"}).to_string();
                full.as_bytes()[..(next() as usize % full.len())].to_vec()
            }
        };
        let reply = call(addr, "POST", path, body).await;
        assert!(
            matches!(reply.status, 200 | 400 | 413 | 429),
            "{path}: {} {}",
            reply.status,
            reply.body
        );
        if reply.status != 200 {
            assert!(reply.json()["error"].is_string());
        }
        *statuses.entry(reply.status).or_insert(0) += 1;
    }
    eprintln!("3000 bodies in {:?}: {statuses:?}", started.elapsed());
    assert!(statuses.get(&400).copied().unwrap_or(0) > 1000);
    assert!(
        statuses.get(&200).copied().unwrap_or(0) > 10,
        "some valid ones streamed"
    );
    assert_eq!(panics.load(Ordering::SeqCst), 0, "a request panicked");
    // Still serving.
    let reply = post(
        addr,
        "/api/analyze",
        &json!({"query": "still there?", "max_new_tokens": 2}),
    )
    .await;
    assert_eq!(reply.status, 200);
}
