//! `aligntds compare`: two runs of the fixture pair over the same queries
//! (the base side under two contexts), compared example by example.

use crate::common::{aligntds, pair_args, stderr, stdout, strs};
use serde_json::Value;

fn run(dir: &std::path::Path, name: &str, extra: &[&str]) -> std::path::PathBuf {
    let out = dir.join(name);
    let args = pair_args(dir.join("q.jsonl").to_str().unwrap(), &out, extra);
    let o = aligntds(&strs(&args));
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

fn compare(args: &[&str]) -> Value {
    let mut all = vec!["compare"];
    all.extend(args);
    all.push("--json");
    let o = aligntds(&all);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn summary(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn compare_gives_paired_differences_refuses_other_queries_and_zero_for_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..8)
        .map(|i| format!("{{\"id\": \"q{i}\", \"prompt\": \"Question {i}: why?\"}}"))
        .collect();
    std::fs::write(tmp.path().join("q.jsonl"), lines.join("\n")).unwrap();
    let common = ["--max-new-tokens", "10"];
    let a = run(tmp.path(), "template", &common);
    let b = run(
        tmp.path(),
        "plain",
        &[common[0], common[1], "--base-context", "plain"],
    );
    let (pa, pb) = (a.to_str().unwrap(), b.to_str().unwrap());

    // A run against itself: every difference 0 with [0, 0], p = 1.
    let same = compare(&[pa, pa]);
    assert_eq!(same["examples"], 8);
    for row in same["rows"].as_array().unwrap() {
        let d = &row["difference"];
        assert_eq!(
            (
                d["estimate"].as_f64(),
                d["low"].as_f64(),
                d["high"].as_f64()
            ),
            (Some(0.0), Some(0.0), Some(0.0)),
            "{row}"
        );
        assert_eq!(row["p_value"], 1.0);
    }

    // Two contexts of the base side: the differences are those of the summaries.
    let c = compare(&[pa, pb]);
    let (sa, sb) = (summary(&a), summary(&b));
    for row in c["rows"].as_array().unwrap() {
        let name = row["statistic"].as_str().unwrap();
        let value = |s: &Value| match name {
            "unshifted" | "marginal" | "shifted" => {
                s["aggregates"]["ratios"][name].as_f64().unwrap()
            }
            "kl_aligned_base" | "kl_base_aligned" => {
                s["aggregates"][name]["mean"].as_f64().unwrap()
            }
            _ => s["aggregates"][name].as_f64().unwrap(),
        };
        let (x, y) = (row["a"].as_f64().unwrap(), row["b"].as_f64().unwrap());
        assert!(
            (x - value(&sa)).abs() < 1e-9 && (y - value(&sb)).abs() < 1e-9,
            "{name}"
        );
        let d = &row["difference"];
        let (e, lo, hi) = (
            d["estimate"].as_f64().unwrap(),
            d["low"].as_f64().unwrap(),
            d["high"].as_f64().unwrap(),
        );
        assert!((e - (x - y)).abs() < 1e-12);
        assert!(lo <= e && e <= hi, "{row}");
        assert_eq!(d["resamples"], 1000);
        let p = row["p_value"].as_f64().unwrap();
        assert!(p > 0.0 && p <= 1.0);
        // Eight examples: all 256 labellings, an exact p-value.
        assert_eq!(row["permutations"], 256);
    }
    let text = aligntds(&["compare", pa, pb]);
    assert!(stdout(&text).contains("8 examples compared") && stdout(&text).contains("shifted"));

    // Other queries: refused, naming --common; with it, the shared ones.
    let c_dir = run(tmp.path(), "fewer", &[common[0], common[1], "--limit", "5"]);
    let refused = aligntds(&["compare", pa, c_dir.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
    let e = stderr(&refused);
    assert!(
        e.contains("different queries") && e.contains("5 shared") && e.contains("--common"),
        "{e}"
    );
    let shared = compare(&[pa, c_dir.to_str().unwrap(), "--common"]);
    assert_eq!(
        (shared["examples"].as_u64(), shared["only_a"].as_u64()),
        (Some(5), Some(3))
    );
    let not_a_run = aligntds(&["compare", pa, tmp.path().to_str().unwrap()]);
    assert_eq!(not_a_run.status.code(), Some(2));
}
