//! The binary: successful commands, and errors printed once with exit code 2.

use std::path::PathBuf;
use std::process::Command;

use crate::common::{aligntds, fixture, pair_args, real_model, stderr, stdout, strs};

/// Fails with exit code 2 and one `error:` line naming `needles`, never a panic.
fn assert_fails(args: &[&str], needles: &[&str]) {
    let out = aligntds(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert_eq!(
        err.matches("error:").count(),
        1,
        "{args:?}: error printed once: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "{args:?}: {err} should mention {n}");
    }
}

#[test]
fn inspect_reports_the_model() {
    let out = aligntds(&["inspect", &fixture("llama2"), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(info["architecture"], "llama");
    // transformers' num_parameters() for this fixture (goldens.json)
    let goldens: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(PathBuf::from(fixture("llama2")).join("goldens.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(info["parameters"], goldens["parameters"]);
    assert_eq!(info["vocabulary"], 586);
    assert_eq!(info["logits_width"], 640);
    assert_eq!(info["bos"], "<s> (1)");
    assert_eq!(info["adds_bos"], true);
    assert_eq!(info["stop_token_ids"], serde_json::json!([2]));

    let mistral = aligntds(&["inspect", &fixture("mistral")]);
    let text = stdout(&mistral);
    assert!(
        text.contains("sliding_window_layers: 0:5, 1:5 (rope theta 10000)"),
        "{text}"
    );
}

#[test]
fn inspect_says_when_a_model_has_no_template() {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture("qwen2")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    let cfg_path = tmp.path().join("tokenizer_config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg.as_object_mut().unwrap().remove("chat_template");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let dir = tmp.path().to_str().unwrap();
    let out = aligntds(&["inspect", dir]);
    assert!(
        stdout(&out).contains("chat_template: none"),
        "{}",
        stdout(&out)
    );
    assert_fails(
        &["generate", dir, "--chat", "hi"],
        &["no chat template", "--chat-template"],
    );
    // Choosing one by name makes --chat work.
    let out = aligntds(&[
        "generate",
        dir,
        "--chat",
        "hi",
        "--chat-template",
        "chatml",
        "--max-new-tokens",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn generate_prints_tokens_with_logprobs() {
    let out = aligntds(&[
        "generate",
        &fixture("qwen2"),
        "--chat",
        "Hello",
        "--max-new-tokens",
        "6",
        "--logprobs",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 6, "{text}");
    for row in rows {
        let lp: f64 = row.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert!(lp <= 0.0);
    }
    assert!(stderr(&out).contains("stopped at --max-new-tokens (6)"));
}

#[test]
fn generate_with_a_stop_string_and_threads() {
    let out = aligntds(&[
        "generate",
        &fixture("llama2"),
        "--prompt",
        "Hello world",
        "--max-new-tokens",
        "40",
        "--threads",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let answer = stdout(&out);
    let answer = answer.trim_end_matches('\n');
    // Stop at a piece of the answer: the output must end before it.
    let cut = answer
        .char_indices()
        .nth(answer.chars().count() / 2)
        .map(|(i, _)| i)
        .unwrap();
    let stop: String = answer[cut..].chars().take(3).collect();
    let out = aligntds(&[
        "generate",
        &fixture("llama2"),
        "--prompt",
        "Hello world",
        "--max-new-tokens",
        "40",
        "--stop",
        &stop,
    ]);
    let shorter = stdout(&out);
    assert!(!shorter.contains(&stop), "{shorter:?} still has {stop:?}");
    assert!(
        answer.starts_with(shorter.trim_end_matches('\n')),
        "{shorter:?} is a prefix of {answer:?}"
    );
    assert!(stderr(&out).contains("stop string"), "{}", stderr(&out));
}

#[test]
fn bad_input_fails_with_exit_code_2() {
    assert_fails(&["inspect", "/no/such/model"], &["/no/such/model"]);
    assert_fails(
        &["inspect", &fixture("llama2"), "--dtype", "f8"],
        &["--dtype", "f8"],
    );
    assert_fails(
        &["inspect", &fixture("llama2"), "--device", "tpu"],
        &["--device", "tpu"],
    );
    assert_fails(
        &["inspect", &fixture("llama2"), "--chat-template", "nope"],
        &["--chat-template", "nope", "llama2-study"],
    );
    assert_fails(
        &[
            "generate",
            &fixture("llama2"),
            "--prompt",
            "x",
            "--threads",
            "0",
        ],
        &["--threads"],
    );
    assert_fails(
        &["inspect", "acme/not-cached-anywhere"],
        &["acme/not-cached-anywhere", "local directory"],
    );
    let long = "word ".repeat(400);
    assert_fails(
        &["generate", &fixture("llama3"), "--prompt", &long],
        &["exceeds the model's context", "context of 256 tokens"],
    );
}

#[test]
fn usage_errors_exit_with_code_2() {
    let out = aligntds(&["generate", &fixture("llama2")]);
    assert_eq!(out.status.code(), Some(2));
    let out = aligntds(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn inspect_and_generate_work_on_both_real_gguf_files() {
    let (Some(smollm2), Some(gemma)) = (
        real_model("SmolLM2-135M-Instruct.Q4_1.gguf"),
        real_model("gemma-3-270m-q4_k_m.gguf"),
    ) else {
        return;
    };
    let out = aligntds(&["inspect", &smollm2, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(info["architecture"], "llama");
    assert_eq!(info["vocabulary"], 49152);
    assert_eq!(info["adds_bos"], false);
    let out = aligntds(&["inspect", &gemma, "--json", "--dtype", "q"]);
    let info: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(info["architecture"], "gemma3_text");
    assert_eq!(info["logits_width"], 262144);
    assert_eq!(info["dtype"], "q");
    assert!(info["chat_template"].as_str().unwrap().starts_with("none"));

    let out = aligntds(&[
        "generate",
        &smollm2,
        "--chat",
        "What is the capital of France?",
        "--max-new-tokens",
        "12",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Paris"), "{}", stdout(&out));
    let out = aligntds(&[
        "generate",
        &gemma,
        "--prompt",
        "The capital of France is",
        "--max-new-tokens",
        "8",
        "--dtype",
        "q",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_fails(&["generate", &gemma, "--chat", "hi"], &["no chat template"]);
}

#[test]
fn broken_gguf_fails_with_exit_code_2() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("broken.gguf");
    let bytes =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/llama2.gguf"))
            .unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert_fails(
        &["inspect", path.to_str().unwrap()],
        &["broken.gguf", "truncated"],
    );
    assert_fails(
        &["inspect", &fixture("llama2"), "--dtype", "q"],
        &["--dtype", "GGUF"],
    );
}

fn write_data(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn analyze_writes_documented_outputs_and_summarize_reprints() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write_data(tmp.path(), "q.jsonl", "{\"id\": \"a\", \"prompt\": \"Hello\", \"output_ids\": [300, 301, 302, 2]}\n{\"id\": \"b\", \"prompt\": \"Why?\"}\n");
    let out = tmp.path().join("run");
    let out_s = out.to_str().unwrap();
    let args = [
        "analyze",
        "--aligned",
        &fixture("llama3"),
        "--base",
        &fixture("mistral"),
        "--data",
        &data,
        "--out",
        out_s,
        "--max-new-tokens",
        "5",
        "--top-k",
        "4",
    ];
    let o = aligntds(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("unshifted") && stdout(&o).contains("positions"),
        "{}",
        stdout(&o)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["schema_version"], 2);
    let a = &summary["aggregates"];
    assert_eq!(a["examples"], 2);
    assert_eq!(a["response_sources"]["dataset"], 1);
    assert_eq!(a["response_sources"]["generate"], 1);
    let n = a["positions"].as_u64().unwrap();
    assert_eq!(n, 4 + 5, "4 given answer tokens + 5 generated");
    let c = &a["counts"];
    assert_eq!(
        c["unshifted"].as_u64().unwrap()
            + c["marginal"].as_u64().unwrap()
            + c["shifted"].as_u64().unwrap(),
        n
    );
    assert_eq!(
        a["kl_aligned_base"]["percentiles"]
            .as_object()
            .unwrap()
            .len(),
        11
    );
    let examples = std::fs::read_to_string(out.join("examples.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(examples.lines().next().unwrap()).unwrap();
    assert_eq!(first["answer_ids"], serde_json::json!([300, 301, 302, 2]));
    assert_eq!(first["source"], "dataset");
    assert_eq!(first["schema_version"], 2);
    let parquet = std::fs::read(out.join("positions.parquet")).unwrap();
    assert_eq!(&parquet[..4], b"PAR1");
    // summarize prints the same text again
    let again = aligntds(&["summarize", out_s]);
    assert!(again.status.success());
    assert!(
        stdout(&o).starts_with(&stdout(&again)),
        "{}\nvs\n{}",
        stdout(&o),
        stdout(&again)
    );
    // The same command again resumes (nothing left to do) and gives the same files.
    let before = std::fs::read(out.join("positions.parquet")).unwrap();
    let again = aligntds(&args);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("resuming: 2 of 2"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        std::fs::read(out.join("positions.parquet")).unwrap(),
        before
    );
    // Other settings in the same folder are refused unless --overwrite.
    let mut other = args.to_vec();
    other.extend(["--unshifted-max", "2", "--marginal-max", "4"]);
    assert_fails(&other, &["other settings", "--overwrite"]);
    other.push("--overwrite");
    assert!(aligntds(&other).status.success());
}

#[test]
fn interrupted_runs_resume_to_the_same_result_and_shards_merge_to_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let queries: String = (0..6).map(|i| format!("Question number {i}?\n")).collect();
    let data = write_data(tmp.path(), "q.txt", &queries);
    let run = |out: &str, extra: &[&str]| {
        let mut all = vec!["--max-new-tokens", "12"];
        all.extend_from_slice(extra);
        let o = aligntds(&strs(&pair_args(&data, std::path::Path::new(out), &all)));
        assert!(o.status.success(), "{}", stderr(&o));
        o
    };
    let full = tmp.path().join("full");
    run(full.to_str().unwrap(), &[]);
    let reference = std::fs::read(full.join("positions.parquet")).unwrap();

    // A run killed after some examples: their parts exist, others do not, a part was half written.
    let cut = tmp.path().join("cut");
    run(cut.to_str().unwrap(), &[]);
    for part in ["0000002.json", "0000004.json", "0000005.json"] {
        std::fs::remove_file(cut.join("parts").join(part)).unwrap();
    }
    std::fs::write(cut.join("parts/0000002.json.tmp"), b"{\"half\": ").unwrap();
    std::fs::remove_file(cut.join("positions.parquet")).unwrap();
    let o = run(cut.to_str().unwrap(), &[]);
    assert!(stderr(&o).is_empty() || !stderr(&o).contains("error"));
    assert_eq!(
        std::fs::read(cut.join("positions.parquet")).unwrap(),
        reference,
        "resumed run equals the uninterrupted one"
    );

    // A real kill -9 while running, then the same command.
    let killed = tmp.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_aligntds"))
        .args(pair_args(&data, &killed, &["--max-new-tokens", "12"]))
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline
        && std::fs::read_dir(killed.join("parts")).map_or(0, |d| d.count()) < 2
    {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    run(killed.to_str().unwrap(), &[]);
    assert_eq!(
        std::fs::read(killed.join("positions.parquet")).unwrap(),
        reference
    );

    // Shards 0/2 and 1/2, merged, equal one run.
    let (a, b, merged) = (
        tmp.path().join("s0"),
        tmp.path().join("s1"),
        tmp.path().join("merged"),
    );
    run(a.to_str().unwrap(), &["--shard", "0/2"]);
    run(b.to_str().unwrap(), &["--shard", "1/2"]);
    let o = aligntds(&[
        "merge",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(merged.join("positions.parquet")).unwrap(),
        reference,
        "merged shards equal one run"
    );
    let agg = |d: &std::path::Path| {
        serde_json::from_str::<serde_json::Value>(
            &std::fs::read_to_string(d.join("summary.json")).unwrap(),
        )
        .unwrap()["aggregates"]
            .clone()
    };
    assert_eq!(agg(&merged), agg(&full));
    // Runs of different settings do not merge.
    let other = tmp.path().join("other");
    run(other.to_str().unwrap(), &["--shard", "1/2", "--top-k", "3"]);
    assert_fails(
        &[
            "merge",
            a.to_str().unwrap(),
            other.to_str().unwrap(),
            "--out",
            tmp.path().join("m2").to_str().unwrap(),
        ],
        &["different settings"],
    );
    assert_fails(
        &[
            "analyze",
            "--aligned",
            &fixture("llama3"),
            "--base",
            &fixture("mistral"),
            "--data",
            &data,
            "--out",
            tmp.path().join("x").to_str().unwrap(),
            "--shard",
            "2/2",
        ],
        &["--shard"],
    );
}

#[test]
fn analyze_rejects_bad_input_before_loading_models() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = write_data(
        tmp.path(),
        "bad.jsonl",
        "{\"prompt\": \"ok\"}\n{\"text\": \"no query here\"}\n",
    );
    let out = tmp.path().join("run");
    let out_s = out.to_str().unwrap();
    // The models do not exist: the data error must come first.
    assert_fails(
        &[
            "analyze",
            "--aligned",
            "/nope/a",
            "--base",
            "/nope/b",
            "--data",
            &bad,
            "--out",
            out_s,
        ],
        &["bad.jsonl:2", "no query"],
    );
    let good = write_data(tmp.path(), "good.txt", "one query\n");
    assert_fails(
        &[
            "analyze",
            "--aligned",
            &fixture("llama3"),
            "--base",
            &fixture("mistral"),
            "--data",
            &good,
            "--out",
            out_s,
            "--base-context",
            "weird",
        ],
        &["--base-context", "weird"],
    );
    assert_fails(
        &[
            "analyze",
            "--aligned",
            &fixture("llama3"),
            "--base",
            &fixture("qwen2"),
            "--query",
            "hi",
            "--out",
            out_s,
        ],
        &["cannot be compared"],
    );
    assert_fails(
        &[
            "analyze",
            "--aligned",
            &fixture("llama3"),
            "--base",
            &fixture("mistral"),
            "--query",
            "hi",
            "--out",
            out_s,
            "--base-context",
            "input",
        ],
        &["input"],
    );
    let (l3, mi) = (fixture("llama3"), fixture("mistral"));
    let base_args = [
        "analyze",
        "--aligned",
        &l3,
        "--base",
        &mi,
        "--query",
        "hi",
        "--out",
        out_s,
    ];
    let with = |extra: &[&'static str]| {
        base_args
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .collect::<Vec<&str>>()
    };
    assert_fails(
        &with(&["--response", "dataset"]),
        &["--response dataset", "no answer"],
    );
    assert_fails(&with(&["--shard", "1/0"]), &["--shard"]);
    assert_fails(
        &with(&["--response", "sometimes"]),
        &["--response", "sometimes"],
    );
}

#[test]
fn report_renders_the_figures_with_the_summary_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write_data(
        tmp.path(),
        "q.txt",
        "What is <script>alert(1)</script>?\nTell me about &amp; entities.\n",
    );
    // A run folder whose name needs escaping too.
    let run = tmp.path().join("run <i>&1");
    let o = aligntds(&strs(&pair_args(&data, &run, &["--max-new-tokens", "16"])));
    assert!(o.status.success(), "{}", stderr(&o));
    let site = tmp.path().join("site");
    let o = aligntds(&[
        "report",
        run.to_str().unwrap(),
        "--out",
        site.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    let md = std::fs::read_to_string(site.join("report.md")).unwrap();
    for figure in [
        "ratios",
        "top-shifted",
        "kl-by-position",
        "rank-by-position",
        "prob-by-position",
        "shifted-by-decile",
        "rank-histogram",
    ] {
        let svg =
            std::fs::read_to_string(site.join("figures").join(format!("{figure}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.ends_with("</svg>"),
            "{figure}"
        );
        assert!(
            md.contains(&format!("figures/{figure}.svg")),
            "{figure} in report.md"
        );
    }
    // Spot checks against summary.json.
    let a = &summary["aggregates"];
    let shifted = format!(
        "{:.1} % ({})",
        a["ratios"]["shifted"].as_f64().unwrap() * 100.0,
        a["counts"]["shifted"]
    );
    assert!(
        index.contains(&shifted) && md.contains(&shifted),
        "{shifted}"
    );
    let kl = format!("{:.4}", a["kl_aligned_base"]["mean"].as_f64().unwrap());
    assert!(index.contains(&kl) && md.contains(&kl), "{kl}");
    let ratios = std::fs::read_to_string(site.join("figures/ratios.svg")).unwrap();
    let unshifted = a["ratios"]["unshifted"].as_f64().unwrap() * 100.0;
    assert!(
        unshifted < 4.0 || ratios.contains(&format!(">{unshifted:.1}<")),
        "bar label {unshifted:.1}"
    );
    // Nothing from the data or file names is interpreted as markup.
    assert!(!index.contains("<i>&1") && index.contains("run &lt;i&gt;&amp;1"));
    assert!(
        !index.contains("<script>"),
        "the query's script tag stays text"
    );
    assert_eq!(
        index.matches("<script").count(),
        2,
        "only the site's own scripts (tds-page.js, report.js)"
    );
    // One page and one data script per example.
    for n in 1..=2 {
        assert!(site.join(format!("r0/e0000{n}.html")).is_file());
        assert!(site.join(format!("data/r0/e0000{n}.js")).is_file());
    }
}

#[test]
fn bench_measures_scoring_and_generation() {
    let out = aligntds(&[
        "bench",
        &fixture("llama3"),
        "--score-tokens",
        "24",
        "--generate-tokens",
        "6",
        "--repeats",
        "1",
        "--threads",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["threads"], "1");
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases[0]["case"], "score");
    assert_eq!(cases[0]["tokens"], 24);
    assert_eq!(cases[1]["case"], "generate");
    assert_eq!(cases[1]["tokens"], 6, "generation never stops early");
    for c in cases {
        let (secs, rate) = (
            c["best_seconds"].as_f64().unwrap(),
            c["tokens_per_second"].as_f64().unwrap(),
        );
        assert!(secs > 0.0 && (rate * secs - c["tokens"].as_f64().unwrap()).abs() < 1e-6);
    }
    assert_fails(
        &["bench", &fixture("llama3"), "--dtype", "q"],
        &["--dtype", "GGUF"],
    );
}
