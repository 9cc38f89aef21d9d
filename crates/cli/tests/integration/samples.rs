//! `analyze --samples N`: N sampled answers per query, each a record of its
//! own (`ID#K`) drawn from the stream of (seed, ID, K); sample 0 is the
//! answer a run of one sample draws; shards merge; `compare` pairs answers
//! by query and sample; intervals resample queries.

use std::path::Path;

use crate::common::{aligntds, manifest, pair_args, position_rows, stderr, stdout, strs};

const SAMPLED: &[&str] = &["--temperature", "1.0", "--seed", "5"];

/// The fixture pair's aligned model on both sides (chat-less `plain` against
/// the template), so the categories vary.
fn run(data: &str, out: &Path, extra: &[&str]) {
    let mut all = vec!["--max-new-tokens", "10"];
    all.extend_from_slice(SAMPLED);
    all.extend_from_slice(extra);
    let mut args = pair_args(data, out, &all);
    args[4] = args[2].clone();
    let o = aligntds(&strs(&args));
    assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
}

fn lines(dir: &Path) -> Vec<aligntds_formats::examples::ExampleLine> {
    aligntds_formats::examples::read(dir).unwrap()
}

#[test]
fn several_samples_per_query_are_records_resampled_by_query() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("q.txt");
    let queries: String = (0..4).map(|i| format!("Tell me about {i}.\n")).collect();
    std::fs::write(&data, queries).unwrap();
    let data = data.to_str().unwrap();
    let (full, one) = (tmp.path().join("full"), tmp.path().join("one"));
    run(data, &full, &["--samples", "3"]);
    run(data, &one, &[]);

    let sampled = lines(&full);
    let single = lines(&one);
    assert_eq!(sampled.len(), 12);
    for (i, e) in sampled.iter().enumerate() {
        let (query, k) = (single[i / 3].id.clone(), i % 3);
        assert_eq!(e.id, format!("{query}#{k}"));
        assert_eq!(
            (e.query_id.as_deref(), e.sample),
            (Some(query.as_str()), Some(k))
        );
        assert_eq!(e.query, single[i / 3].query);
        // Sample 0 draws what a run of one answer per query draws.
        if k == 0 {
            assert_eq!(e.answer_ids, single[i / 3].answer_ids, "{}", e.id);
        }
    }
    let varied = sampled
        .chunks(3)
        .filter(|c| c[0].answer_ids != c[1].answer_ids || c[1].answer_ids != c[2].answer_ids)
        .count();
    assert!(
        varied >= 3,
        "only {varied} of 4 queries got differing samples"
    );
    // A run of one answer per query carries neither.
    assert!(single
        .iter()
        .all(|e| e.query_id.is_none() && e.sample.is_none()));

    // Recorded only above one, and reproduced by study.toml.
    assert_eq!(manifest(&full)["settings"]["sampling"]["samples"], 3);
    assert!(manifest(&one)["settings"]["sampling"]
        .get("samples")
        .is_none());
    let study = std::fs::read_to_string(full.join("study.toml")).unwrap();
    assert!(study.contains("samples = 3"), "{study}");

    // The headline interval is a bootstrap over the 4 queries: each query's
    // three answers' counts added into one cluster.
    let clusters: Vec<aligntds_stats::resampling::Cluster> = sampled
        .chunks(3)
        .map(|c| {
            let shifted: u32 = c.iter().map(|e| e.shifted).sum();
            let tokens: u64 = c.iter().map(|e| e.tokens()).sum();
            aligntds_stats::resampling::Cluster::new(shifted as f64, tokens as f64)
        })
        .collect();
    let expected = aligntds_stats::resampling::bootstrap(
        &clusters,
        aligntds_stats::resampling::RESAMPLES,
        0.95,
        aligntds_stats::resampling::SEED,
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(full.join("summary.json")).unwrap()).unwrap();
    let shifted = &summary["aggregates"]["intervals"]["shifted"];
    assert!(
        expected.low < expected.high,
        "{expected:?}: a case that tells"
    );
    assert_eq!(shifted["low"].as_f64().unwrap(), expected.low);
    assert_eq!(shifted["high"].as_f64().unwrap(), expected.high);

    // Shards of the sampled records merge into the whole run.
    let (s0, s1, merged) = (
        tmp.path().join("s0"),
        tmp.path().join("s1"),
        tmp.path().join("merged"),
    );
    run(data, &s0, &["--samples", "3", "--shard", "0/2"]);
    run(data, &s1, &["--samples", "3", "--shard", "1/2"]);
    let o = aligntds(&[
        "merge",
        s0.to_str().unwrap(),
        s1.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(position_rows(&merged), position_rows(&full));
    let ids = |ls: Vec<aligntds_formats::examples::ExampleLine>| -> Vec<(String, Vec<u32>)> {
        ls.into_iter().map(|e| (e.id, e.answer_ids)).collect()
    };
    assert_eq!(ids(lines(&merged)), ids(sampled.clone()));

    // compare pairs the 12 answers by query and sample.
    let other = tmp.path().join("plain");
    run(data, &other, &["--samples", "3", "--base-context", "plain"]);
    let o = aligntds(&[
        "compare",
        full.to_str().unwrap(),
        other.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(c["examples"], 12);
}

#[test]
fn samples_of_answers_read_from_the_data_set_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("q.jsonl");
    std::fs::write(&data, "{\"prompt\": \"Hi?\", \"output\": \"Hello.\"}\n").unwrap();
    let data = data.to_str().unwrap();
    for extra in [
        &["--samples", "2"][..],
        &["--samples", "2", "--response", "dataset"],
    ] {
        let mut all = vec!["--max-new-tokens", "4"];
        all.extend_from_slice(extra);
        let o = aligntds(&strs(&pair_args(data, &tmp.path().join("out"), &all)));
        assert_eq!(o.status.code(), Some(2));
        let err = stderr(&o);
        assert!(
            err.contains("--samples") && err.contains("generate"),
            "{err}"
        );
    }
    // With generated answers it runs.
    let mut all = vec![
        "--max-new-tokens",
        "4",
        "--samples",
        "2",
        "--response",
        "generate",
    ];
    all.extend_from_slice(SAMPLED);
    let o = aligntds(&strs(&pair_args(data, &tmp.path().join("gen"), &all)));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lines(&tmp.path().join("gen")).len(), 2);
}
