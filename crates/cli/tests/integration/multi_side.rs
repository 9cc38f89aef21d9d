//! `analyze --compare NAME=MODEL` and `analyze --study FILE` on the fixture
//! pair: the same three-side study from flags and from a study file, its
//! per-side outputs, `compare RUN@SIDE`, and the refusals that name the flag.

use crate::common::{aligntds, fixture, pair_args, stderr, stdout, strs};
use serde_json::Value;

fn json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn compared_sides_from_flags_and_from_a_study_file_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..4)
        .map(|i| {
            let kind = if i % 2 == 0 { "even" } else { "odd" };
            format!(
                "{{\"id\": \"q{i}\", \"prompt\": \"Question {i}: why?\", \"kind\": \"{kind}\"}}"
            )
        })
        .collect();
    let data = tmp.path().join("q.jsonl");
    std::fs::write(&data, lines.join("\n")).unwrap();
    let flags_run = tmp.path().join("flags");
    let compare_flags = [
        "--compare".to_string(),
        format!("plain={}", fixture("mistral")),
        "--compare-context".into(),
        "plain=plain".into(),
        "--compare".into(),
        format!("self={}", fixture("llama3")),
        "--compare-context".into(),
        "self=plain".into(),
        "--max-new-tokens".into(),
        "8".into(),
        "--group-by".into(),
        "kind".into(),
    ];
    let extra: Vec<&str> = compare_flags.iter().map(String::as_str).collect();
    let o = aligntds(&strs(&pair_args(
        data.to_str().unwrap(),
        &flags_run,
        &extra,
    )));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("reference sides") && text.contains("settles (top-1)"),
        "{text}"
    );
    assert!(text.contains("by kind:"), "{text}");

    let summary = json(&flags_run.join("summary.json"));
    let names: Vec<&str> = summary["sides"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["base", "plain", "self"]);
    assert_eq!(
        summary["stages"]["order"],
        serde_json::json!(["base", "plain", "self", "aligned"])
    );
    // The aligned model under its own context as a reference side ranks its
    // own greedy answer first everywhere: nothing is left for later stages.
    let self_side = &summary["sides"][2]["aggregates"];
    assert_eq!(self_side["ratios"]["unshifted"], 1.0, "{self_side}");
    let top1 = &summary["stages"]["by_bar"][0]["stages"];
    assert_eq!(top1[3]["stage"], "aligned");
    assert_eq!(
        (top1[3]["positions"].as_u64(), top1[4]["positions"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(summary["manifest"]["group_by"], "kind");
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(flags_run.join("examples.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["sides"][0]["name"], "plain");
    assert_eq!(line["fields"]["kind"], "even");

    // The same study from a study file, paths relative to it.
    let study = tmp.path().join("study.toml");
    std::fs::write(
        &study,
        format!(
            "data = \"q.jsonl\"\nout = \"file\"\ngroup_by = \"kind\"\n\n[aligned]\nmodel = {:?}\ncontext = \"plain\"\n\n[base]\nmodel = {:?}\n\n[[compare]]\nname = \"plain\"\nmodel = {:?}\ncontext = \"plain\"\n\n[[compare]]\nname = \"self\"\nmodel = {:?}\ncontext = \"plain\"\n",
            fixture("llama3"),
            fixture("mistral"),
            fixture("mistral"),
            fixture("llama3")
        ),
    )
    .unwrap();
    let o = aligntds(&[
        "analyze",
        "--study",
        study.to_str().unwrap(),
        "--max-new-tokens",
        "8",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let file_run = tmp.path().join("file");
    assert_eq!(
        std::fs::read(file_run.join("positions.parquet")).unwrap(),
        std::fs::read(flags_run.join("positions.parquet")).unwrap()
    );
    let file_summary = json(&file_run.join("summary.json"));
    assert_eq!(file_summary["sides"], summary["sides"]);
    assert_eq!(file_summary["stages"], summary["stages"]);

    // Two sides of one run.
    let at = |side: &str| format!("{}@{side}", flags_run.display());
    let o = aligntds(&["compare", &at("self"), &at("base"), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(c["examples"], 4);
    assert_eq!(c["rows"][0]["statistic"], "unshifted");
    assert_eq!(c["rows"][0]["a"], 1.0);
    let o = aligntds(&["compare", &at("dpo"), &at("base")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no side `dpo`") && stderr(&o).contains("plain, self"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn compared_side_mistakes_name_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("q.txt");
    std::fs::write(&data, "Why?\n").unwrap();
    let out = tmp.path().join("out");
    let refused = |extra: &[&str]| {
        let o = aligntds(&strs(&pair_args(data.to_str().unwrap(), &out, extra)));
        assert_eq!(o.status.code(), Some(2), "{extra:?}");
        stderr(&o)
    };
    let mistral = format!("sft={}", fixture("mistral"));
    let e = refused(&["--compare", &mistral, "--compare-context", "dpo=plain"]);
    assert!(
        e.contains("--compare-context") && e.contains("no compared side is named `dpo`"),
        "{e}"
    );
    let e = refused(&["--compare", "sft"]);
    assert!(e.contains("--compare") && e.contains("NAME=VALUE"), "{e}");
    let e = refused(&["--compare", &mistral, "--compare-context", "sft=zeroshot"]);
    assert!(e.contains("zeroshot") && e.contains("urial"), "{e}");
    let base = format!("base={}", fixture("mistral"));
    let e = refused(&["--compare", &base]);
    assert!(
        e.contains("--compare base=") && e.contains("reserved"),
        "{e}"
    );
    let qwen = format!("qwen={}", fixture("qwen2"));
    let e = refused(&["--compare", &qwen]);
    assert!(e.contains("compare[0]") && e.contains("vocabulary"), "{e}");
    let e = refused(&["--compare", &mistral, "--compare-context", "sft=custom"]);
    assert!(
        e.contains("--compare-template sft=") && e.contains("{query}"),
        "{e}"
    );
    let e = refused(&["--group-by", "category"]);
    assert!(
        e.contains("--group-by") && e.contains("no record has a field `category`"),
        "{e}"
    );
    let study = tmp.path().join("s.toml");
    std::fs::write(&study, "[aligned]\nmodel = \"a\"\n").unwrap();
    let o = aligntds(&[
        "analyze",
        "--study",
        study.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("s.toml") && stderr(&o).contains("base"),
        "{}",
        stderr(&o)
    );
}
