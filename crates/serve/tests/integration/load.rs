//! A bounded loopback load test on the real SmolLM2 model: tens of clients
//! stream answers at once through the one generation thread and its queue.
//! It reports time to first token and tokens/s (figures, not assertions:
//! timings are the bench's business) and asserts what must hold under load:
//! every request answered, none refused by a queue sized for them, and the
//! server's memory flat from round to round. Also the time per token along a
//! long answer, which incremental scoring keeps flat. Figures go to stderr
//! and target/serve-load.json.

use std::time::{Duration, Instant};

use crate::common::*;
use aligntds_analysis::settings::ContextKind;
use http_body_util::BodyExt;
use serde_json::json;

const CLIENTS: usize = 24;
const ROUNDS: usize = 3;
const NEW_TOKENS: usize = 12;

struct Sample {
    first_token: Duration,
    total: Duration,
    tokens: usize,
}

/// One streamed request: when its first token arrived, how many came.
async fn one(
    addr: std::net::SocketAddr,
    query: String,
    new_tokens: usize,
) -> (Sample, Vec<Duration>) {
    let started = Instant::now();
    let body = json!({"query": query, "max_new_tokens": new_tokens}).to_string();
    let mut response = send(addr, "POST", "/api/analyze", body.into_bytes()).await;
    assert_eq!(response.status(), 200);
    let mut text = String::new();
    let mut arrivals = Vec::new();
    while let Some(frame) = response.body_mut().frame().await {
        if let Some(data) = frame.unwrap().data_ref() {
            let chunk = String::from_utf8_lossy(data);
            for _ in 0..chunk.matches("event: token").count() {
                arrivals.push(started.elapsed());
            }
            text.push_str(&chunk);
        }
    }
    let tokens = events(&text).iter().filter(|(n, _)| n == "token").count();
    assert!(text.contains("event: done"), "{text}");
    let sample = Sample {
        first_token: arrivals.first().copied().unwrap_or_default(),
        total: started.elapsed(),
        tokens,
    };
    (sample, arrivals)
}

fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[((values.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tens_of_clients_stream_through_the_queue_with_memory_flat() {
    let Some(model) = smollm2() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let live = live_settings(&model, ContextKind::Chat, &model);
    let (addr, _) = serve_loaded(serve_settings(live, tmp.path(), CLIENTS)).await;
    // Warm-up: first allocations and caches.
    one(addr, "Warm up.".into(), NEW_TOKENS).await;
    let mut rss = vec![rss_bytes()];
    let mut samples = Vec::new();
    let wall = Instant::now();
    for round in 0..ROUNDS {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let query = format!("Client {c} asks, round {round}: name a fruit and say why.");
                tokio::spawn(async move { one(addr, query, NEW_TOKENS).await.0 })
            })
            .collect();
        for h in handles {
            samples.push(h.await.unwrap());
        }
        rss.push(rss_bytes());
    }
    let wall = wall.elapsed().as_secs_f64();
    let tokens: usize = samples.iter().map(|s| s.tokens).sum();
    let ttft: Vec<f64> = samples
        .iter()
        .map(|s| s.first_token.as_secs_f64())
        .collect();
    let per_request: Vec<f64> = samples
        .iter()
        .map(|s| s.tokens as f64 / s.total.as_secs_f64())
        .collect();

    // One long answer: seconds per token over its first and last 32 tokens.
    let (_, arrivals) = one(addr, "Write a long story about the sea.".into(), 256).await;
    let gap = |w: &[Duration]| (w[w.len() - 1] - w[0]).as_secs_f64() / (w.len() - 1) as f64;
    let n = arrivals.len();
    let (early, late) = (
        gap(&arrivals[1..33.min(n)]),
        gap(&arrivals[n.saturating_sub(32)..]),
    );

    let mb = |b: u64| b as f64 / 1e6;
    let report = json!({
        "clients": CLIENTS, "rounds": ROUNDS, "new_tokens": NEW_TOKENS,
        "requests": samples.len(), "tokens": tokens, "wall_seconds": wall,
        "tokens_per_second": tokens as f64 / wall,
        "time_to_first_token_seconds": {"p50": percentile(ttft.clone(), 0.5), "p95": percentile(ttft.clone(), 0.95), "max": percentile(ttft, 1.0)},
        "per_request_tokens_per_second_p50": percentile(per_request, 0.5),
        "rss_mb_after_each_round": rss.iter().map(|&b| mb(b)).collect::<Vec<_>>(),
        "long_answer": {"tokens": n, "seconds_per_token_first_32": early, "seconds_per_token_last_32": late},
    });
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/serve-load.json");
    let _ = std::fs::write(out, serde_json::to_string_pretty(&report).unwrap());

    assert_eq!(samples.len(), CLIENTS * ROUNDS);
    assert!(samples.iter().all(|s| s.tokens > 0));
    // Memory flat: after the first loaded round, later rounds add at most a few tens of MB.
    let growth = rss[ROUNDS].saturating_sub(rss[1]);
    assert!(
        growth < 48 << 20,
        "resident memory grew {:.1} MB over rounds: {rss:?}",
        mb(growth)
    );
}
