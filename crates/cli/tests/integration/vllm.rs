//! Remote sides against real vLLM servers (CPU build, started by
//! scripts/vllm-servers.sh through scripts/test.sh): the SmolLM2-135M-Instruct
//! f32 checkpoint served by vLLM and run by the local engine must give the
//! same study. One test runs the scenarios in order, since the last one
//! kills a server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{fixture, stderr};
use aligntds_formats::positions::PositionRecord;

struct Servers {
    urls: Vec<String>,
    pids: Vec<String>,
    checkpoint: String,
}

fn servers() -> Option<Servers> {
    let urls = std::env::var("ALIGNTDS_VLLM_URLS")
        .ok()
        .filter(|u| !u.is_empty());
    let Some(urls) = urls else {
        if std::env::var("ALIGNTDS_ALLOW_MISSING").is_ok_and(|v| v == "1") {
            eprintln!("SKIPPED: no vLLM servers (run the tests through scripts/test.sh)");
            return None;
        }
        panic!("the vLLM tests need servers: run `bash scripts/test.sh` (or scripts/vllm-servers.sh start 2 and export target/vllm-servers.env); ALIGNTDS_ALLOW_MISSING=1 skips them");
    };
    let list = |v: &str| v.split(',').map(str::to_string).collect::<Vec<_>>();
    let s = Servers {
        urls: list(&urls),
        pids: list(&std::env::var("ALIGNTDS_VLLM_PIDS").unwrap_or_default()),
        checkpoint: std::env::var("ALIGNTDS_VLLM_CHECKPOINT").expect("ALIGNTDS_VLLM_CHECKPOINT"),
    };
    assert!(
        s.urls.len() >= 2 && s.pids.len() == s.urls.len(),
        "two servers with their pids"
    );
    Some(s)
}

fn command(args: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aligntds"));
    c.args(args).env("HF_HUB_OFFLINE", "1");
    c
}

fn run(args: &[String]) -> std::process::Output {
    command(args).output().unwrap()
}

/// The 16 first demo queries.
fn queries(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/demo-instructions.jsonl"),
    )
    .unwrap();
    let lines: Vec<&str> = text.lines().take(16).collect();
    assert_eq!(lines.len(), 16);
    let path = dir.join("queries.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

/// analyze of the demo pair (one model, chat context vs the zero-shot template).
fn analyze(model: &str, data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["analyze", "--aligned", model, "--base", model, "--data"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(data.display().to_string());
    args.extend([
        "--out".into(),
        out.display().to_string(),
        "--quiet".into(),
        "--max-new-tokens".into(),
        "48".into(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn remote(urls: &[&str], side: &str) -> Vec<String> {
    urls.iter()
        .flat_map(|u| [format!("--{side}-server"), u.to_string()])
        .collect()
}

fn with(mut args: Vec<String>, more: Vec<String>) -> Vec<String> {
    args.extend(more);
    args
}

/// One reference side's rows of every example (`base` in a pair run).
fn positions(dir: &Path, side: &str) -> BTreeMap<String, Vec<PositionRecord>> {
    let mut all = BTreeMap::new();
    aligntds_formats::positions::for_each_example_by_side(dir, |id, sides| {
        if let Some(s) = sides.into_iter().find(|s| s.side == side) {
            all.insert(id.to_string(), s.positions);
        }
        Ok(())
    })
    .unwrap();
    all
}

fn answers(dir: &Path) -> Vec<(String, Vec<u32>, String)> {
    aligntds_formats::examples::read(dir)
        .unwrap()
        .into_iter()
        .map(|e| (e.id, e.answer_ids, e.stop_reason))
        .collect()
}

/// The remote run equals the local one: token ids and categories exactly,
/// ranks exactly down to rank 100 (deeper, f32 near-ties among thousands of
/// tail tokens may order differently: within 3), log-probabilities within
/// 2e-4, top-k ids the same except where neighbours are within 2e-4 (ties).
fn assert_same_study(local: &Path, remote: &Path) {
    assert_same_side((local, "base"), (remote, "base"));
}

/// [`assert_same_study`] for one reference side of each run.
fn assert_same_side((local, ls): (&Path, &str), (remote, rs): (&Path, &str)) {
    let (l, r) = (positions(local, ls), positions(remote, rs));
    assert!(!l.is_empty(), "{} has rows of side {ls}", local.display());
    assert_eq!(l.keys().collect::<Vec<_>>(), r.keys().collect::<Vec<_>>());
    let (mut n, mut worst, mut deep, mut swaps) = (0usize, 0f32, 0usize, 0usize);
    for (id, lp) in &l {
        let rp = &r[id];
        assert_eq!(lp.len(), rp.len(), "record {id}: answer lengths");
        assert!(!lp.is_empty(), "record {id} was scored");
        for (a, b) in lp.iter().zip(rp) {
            n += 1;
            let at = format!("record {id} position {}", a.position);
            assert_eq!(a.token_id, b.token_id, "{at}");
            assert_eq!(a.category, b.category, "{at}");
            for (x, y) in [(a.base_rank, b.base_rank), (a.aligned_rank, b.aligned_rank)] {
                if x <= 100 {
                    assert_eq!(x, y, "{at}: rank");
                } else if x != y {
                    assert!(x.abs_diff(y) <= 3, "{at}: deep rank {x} vs {y}");
                    deep += 1;
                }
            }
            for (x, y) in [
                (a.base_logprob, b.base_logprob),
                (a.aligned_logprob, b.aligned_logprob),
            ] {
                let d = (x - y).abs();
                worst = worst.max(d);
                assert!(d <= 2e-4, "{at}: log-probability {x} vs {y}");
            }
            for (la, ra) in [(&a.aligned_top, &b.aligned_top), (&a.base_top, &b.base_top)] {
                assert_eq!(la.len(), ra.len(), "{at}: top-k length");
                for (i, (x, y)) in la.iter().zip(ra.iter()).enumerate() {
                    if x.id != y.id {
                        swaps += 1;
                        assert!(
                            (x.logprob - y.logprob).abs() <= 2e-4,
                            "{at}: top-{} id {} vs {} are no tie",
                            i + 1,
                            x.id,
                            y.id
                        );
                    }
                }
            }
            assert!(
                b.orig_kl_at_k.is_some(),
                "{at}: the server returned 30 tokens, so the original's metrics are exact"
            );
            assert!(!b.full_vocabulary && a.full_vocabulary);
        }
    }
    eprintln!("{n} positions equal; max |log-probability difference| {worst:.2e}; {deep} deep ranks (> 100) off by at most 3; {swaps} top-k swaps of tied tokens");
}

fn wait_for_parts(dir: &Path, at_least: usize, child: &mut std::process::Child) {
    let started = Instant::now();
    loop {
        let parts = std::fs::read_dir(dir.join("parts"))
            .map(|d| d.count())
            .unwrap_or(0);
        if parts >= at_least {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before {at_least} records were done"
        );
        assert!(started.elapsed() < Duration::from_secs(600), "no progress");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn vllm_servers_compute_the_same_study_as_the_local_engine() {
    let Some(s) = servers() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = queries(tmp.path());
    let (u1, u2) = (s.urls[0].as_str(), s.urls[1].as_str());
    let ck = s.checkpoint.as_str();

    // Checks before work: each a clear error, exit 2, before anything is analyzed.
    let refused = |args: Vec<String>, wants: &[&str]| {
        let o = run(&args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        for w in wants {
            assert!(
                e.to_lowercase().contains(&w.to_lowercase()),
                "{args:?}: wanted {w:?} in: {e}"
            );
        }
    };
    let out = tmp.path().join("refused");
    refused(
        with(
            analyze(ck, &data, &out, &["--top-k", "60"]),
            remote(&[u1], "aligned"),
        ),
        &["--aligned-server", "--max-logprobs", "at most 50"],
    );
    refused(
        with(
            analyze(ck, &data, &out, &["--base-served-name", "nope"]),
            remote(&[u1], "base"),
        ),
        &["--base-served-name", "serves `smollm2`, not `nope`"],
    );
    let qwen = fixture("qwen2");
    refused(
        with(
            analyze(&qwen, &data, &out, &["--aligned-context", "plain"]),
            remote(&[u1], "aligned"),
        ),
        &[
            "--aligned",
            "tokenize the first record's prompt differently",
            "locally but id",
        ],
    );
    refused(
        with(
            analyze(ck, &data, &out, &[]),
            remote(&["http://127.0.0.1:9"], "aligned"),
        ),
        &[
            "--aligned-server",
            "cannot use http://127.0.0.1:9",
            "connection refused",
        ],
    );
    assert!(
        !out.join("parts").exists() || std::fs::read_dir(out.join("parts")).unwrap().count() == 0
    );

    // Generation: greedy answers on the servers (aligned on two replicas)
    // equal the local engine's, stop reasons included.
    let (local_gen, remote_gen) = (tmp.path().join("local-gen"), tmp.path().join("remote-gen"));
    let o = run(&analyze(
        ck,
        &data,
        &local_gen,
        &["--response", "generate", "--dtype", "f32"],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let both = |mut a: Vec<String>| {
        a.extend(remote(&[u1, u2], "aligned"));
        a.extend(remote(&[u1], "base"));
        a
    };
    let o = run(&both(analyze(
        ck,
        &data,
        &remote_gen,
        &["--response", "generate"],
    )));
    assert!(o.status.success(), "{}", stderr(&o));
    let (la, ra) = (answers(&local_gen), answers(&remote_gen));
    assert_eq!(la.len(), 16);
    for (l, r) in la.iter().zip(&ra) {
        assert_eq!(l, r, "record {}: generated answer and stop reason", l.0);
    }
    assert!(
        la.iter().any(|a| a.2 == "eos") && la.iter().any(|a| a.2 == "max_new_tokens"),
        "both stop rules are exercised: {:?}",
        la.iter().map(|a| &a.2).collect::<Vec<_>>()
    );
    assert_same_study(&local_gen, &remote_gen);

    // Sampled answers on a server: vLLM draws them with a per-request seed
    // from each record's stream, so a rerun with the seed gives the same
    // answers (not the local engine's: vLLM has its own generator), and
    // another seed others.
    let sampled = |name: &str, seed: &str| {
        let out = tmp.path().join(name);
        let mut args = analyze(
            ck,
            &data,
            &out,
            &[
                "--response",
                "generate",
                "--limit",
                "6",
                "--temperature",
                "0.9",
                "--seed",
                seed,
            ],
        );
        args.extend(remote(&[u1], "aligned"));
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        answers(&out)
    };
    let (first, again, other) = (
        sampled("s7", "7"),
        sampled("s7-again", "7"),
        sampled("s8", "8"),
    );
    assert_eq!(
        first, again,
        "one seed, one server: the same sampled answers"
    );
    let differ = first.iter().zip(&other).filter(|(a, b)| a.1 != b.1).count();
    assert!(
        differ >= 5,
        "{differ} of 6 sampled answers differ under another seed"
    );
    let greedy_differ = first.iter().zip(&la).filter(|(a, b)| a.1 != b.1).count();
    assert!(
        greedy_differ >= 5,
        "{greedy_differ} of 6 sampled answers differ from the greedy ones"
    );

    // Handover arms with the aligned side on a server (stepped one request
    // per token through the seam's scoring session): the same greedy arms
    // as the local engine's.
    let handover = |name: &str, extra: &[&str]| {
        let out = tmp.path().join(name);
        let mut args = analyze(ck, &data, &out, &["--limit", "3"]);
        args[0] = "handover".into();
        args.extend(["--policy", "base", "--policy", "first:3"].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        out
    };
    let local_arms = handover("local-arms", &["--dtype", "f32"]);
    let remote_arms = handover("remote-arms", &["--aligned-server", u1]);
    for arm in ["aligned", "base", "first-3"] {
        let (l, r) = (
            local_arms.join("arms").join(arm),
            remote_arms.join("arms").join(arm),
        );
        assert_eq!(answers(&l), answers(&r), "handover arm {arm}");
        // Tokens, ranks and categories equal; log-probabilities within the
        // remote tolerance.
        assert_same_study(&l, &r);
    }
    assert_eq!(answers(&local_arms.join("arms/aligned")), la[..3]);

    // A data-set-answer analysis: the answers as text, scored on both sides remotely.
    let dataset = tmp.path().join("answers.jsonl");
    let lines: Vec<String> = aligntds_formats::examples::read(&local_gen)
        .unwrap()
        .iter()
        .map(|e| {
            serde_json::json!({"id": e.id, "instruction": e.query, "output": e.answer}).to_string()
        })
        .collect();
    std::fs::write(&dataset, lines.join("\n")).unwrap();
    let (local_ds, remote_ds) = (tmp.path().join("local-ds"), tmp.path().join("remote-ds"));
    let o = run(&analyze(
        ck,
        &dataset,
        &local_ds,
        &["--response", "dataset", "--dtype", "f32"],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&both(analyze(
        ck,
        &dataset,
        &remote_ds,
        &["--response", "dataset"],
    )));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_same_study(&local_ds, &remote_ds);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(remote_ds.join("summary.json")).unwrap())
            .unwrap();
    let m = &summary["manifest"];
    assert_eq!(m["aligned_weights"], "vllm:smollm2");
    assert_eq!(m["aligned_server"]["served_model"], "smollm2");
    assert_eq!(m["aligned_server"]["max_model_len"], 2048);
    assert_eq!(m["base_server"]["logprobs"], 30);
    let used: Vec<&str> = m["servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["side"] == "aligned")
        .map(|u| u["url"].as_str().unwrap())
        .collect();
    assert_eq!(used, [u1, u2]);

    // A compared side on a server: its rows equal a local pair run's base
    // side under the same context, beside a local base side in the same run.
    let (local_plain, multi) = (tmp.path().join("local-plain"), tmp.path().join("multi"));
    let o = run(&analyze(
        ck,
        &dataset,
        &local_plain,
        &[
            "--response",
            "dataset",
            "--dtype",
            "f32",
            "--base-context",
            "plain",
        ],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let plain_side = format!("plain={ck}");
    let plain_server = format!("plain={u2}");
    let o = run(&analyze(
        ck,
        &dataset,
        &multi,
        &[
            "--response",
            "dataset",
            "--dtype",
            "f32",
            "--compare",
            &plain_side,
            "--compare-context",
            "plain=plain",
            "--compare-server",
            &plain_server,
        ],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_same_side((&local_plain, "base"), (&multi, "plain"));
    // The local base side beside it is the local pair run's, row for row.
    assert_eq!(positions(&local_ds, "base"), positions(&multi, "base"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(multi.join("summary.json")).unwrap())
            .unwrap();
    let m = &summary["manifest"];
    assert_eq!(m["compare"][0]["name"], "plain");
    assert_eq!(m["compare"][0]["weights"], "vllm:smollm2");
    assert_eq!(m["compare"][0]["server"]["served_model"], "smollm2");
    let sides: Vec<&str> = m["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["side"].as_str().unwrap())
        .collect();
    assert_eq!(sides, ["plain"]);
    assert_eq!(
        summary["sides"][1]["aggregates"]["divergences"],
        "lower_bound"
    );

    // Killing aligntds mid-run loses nothing: the rerun resumes to the same study.
    let resumed = tmp.path().join("resumed");
    let args = both(analyze(ck, &dataset, &resumed, &["--response", "dataset"]));
    let mut child = command(&args).spawn().unwrap();
    wait_for_parts(&resumed, 3, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(resumed.join("summary.json")).unwrap())
            .unwrap();
    let kept = summary["manifest"]["timings"]["examples_resumed"]
        .as_u64()
        .unwrap();
    assert!(
        (3..16).contains(&kept),
        "the rerun kept the {kept} records done before the kill"
    );
    assert_same_study(&local_ds, &resumed);

    // Killing one replica mid-run: its requests move to the other one.
    let survived = tmp.path().join("survived");
    let args = both(analyze(
        ck,
        &dataset,
        &survived,
        &["--response", "dataset", "--max-in-flight", "4"],
    ));
    let mut child = command(&args).spawn().unwrap();
    wait_for_parts(&survived, 2, &mut child);
    let killed = Command::new("kill")
        .args(["-9", "--", &format!("-{}", s.pids[1])])
        .status()
        .unwrap();
    assert!(killed.success(), "killed the second server");
    let status = child.wait().unwrap();
    assert!(status.success(), "the run finished on the surviving server");
    assert_same_study(&local_ds, &survived);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(survived.join("summary.json")).unwrap())
            .unwrap();
    let dead = summary["manifest"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["url"] == u2)
        .cloned()
        .unwrap();
    eprintln!("the killed replica: {dead}");
}
