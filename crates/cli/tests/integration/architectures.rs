//! The architectures added after the first four (Qwen3, OLMo 2, Gemma 2,
//! Phi-3) through every command a user runs on them: inspect (transformers'
//! parameter count), generate (a GGUF twin answers as its checkpoint does),
//! analyze (a checkpoint against its GGUF twin), serve (streams what analyze
//! computes) and bench; Qwen3's thinking switch and Gemma 2's refusal of a
//! system message, as the user meets them.

use crate::common::*;
use serde_json::{json, Value};

const ADDED: [(&str, &str); 4] = [
    ("qwen3", "q/k RMSNorm per head"),
    (
        "olmo2",
        "norms after each block only, q/k RMSNorm over the whole projection",
    ),
    (
        "gemma2",
        "attention logits soft-capped at 4, final logits soft-capped at 6",
    ),
    ("phi3", "fused qkv_proj, fused gate_up_proj"),
];

const QUERY: &str = "What is the capital of France?";

fn json_of(args: &[&str]) -> Value {
    let out = aligntds(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn first_example(run: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(run.join("examples.jsonl")).unwrap();
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}

#[test]
fn inspect_and_generate_on_each_checkpoint_and_its_gguf_twin() {
    for (name, switches) in ADDED {
        let dir = fixture(name);
        let gguf = format!("{dir}.gguf");
        let goldens: Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{dir}/goldens.json")).unwrap())
                .unwrap();
        for model in [&dir, &gguf] {
            let info = json_of(&["inspect", model, "--json"]);
            assert_eq!(info["architecture"], name, "{model}");
            // transformers' num_parameters() (a tied embedding counted once)
            assert_eq!(info["parameters"], goldens["parameters"], "{model}");
            let decoder = info["decoder"].as_str().unwrap();
            assert!(decoder.contains(switches), "{model}: {decoder}");
        }
        let answers: Vec<String> = [&dir, &gguf]
            .iter()
            .map(|model| {
                let args = ["generate", model, "--chat", QUERY, "--max-new-tokens", "12"];
                let out = aligntds(&args);
                assert!(out.status.success(), "{model}: {}", stderr(&out));
                stdout(&out)
            })
            .collect();
        assert_eq!(
            answers[0], answers[1],
            "{name}: the GGUF twin answers alike"
        );
    }
    let phi3 = json_of(&["inspect", &fixture("phi3"), "--json"]);
    assert!(
        phi3["rope"]
            .as_str()
            .unwrap()
            .contains("LongRoPE (long factors past 32 positions"),
        "{phi3}"
    );
    let gemma2 = json_of(&["inspect", &fixture("gemma2"), "--json"]);
    assert_eq!(
        gemma2["sliding_window_layers"],
        "0:5, 2:5 (rope theta 10000)"
    );
}

#[test]
fn analyze_serve_and_bench_run_on_each() {
    for (name, _) in ADDED {
        let dir = fixture(name);
        let gguf = format!("{dir}.gguf");
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let pair = ["--aligned", dir.as_str(), "--base", gguf.as_str()];
        let mut args = vec!["analyze"];
        args.extend(pair);
        let out_arg = out.to_string_lossy().into_owned();
        args.extend([
            "--query",
            QUERY,
            "--max-new-tokens",
            "40",
            "--out",
            &out_arg,
            "--quiet",
        ]);
        let analyzed = aligntds(&args);
        assert!(analyzed.status.success(), "{name}: {}", stderr(&analyzed));
        let line = first_example(&out);
        let answer = line["answer_ids"].as_array().unwrap().len() as u64;
        let counted: u64 = ["unshifted", "marginal", "shifted"]
            .iter()
            .map(|k| line[*k].as_u64().unwrap())
            .sum();
        assert!(answer > 0 && counted == answer, "{name}: {line}");

        let (_server, address) = spawn_serve(&pair);
        wait_ready(&address);
        let (status, body) = http(
            &address,
            "POST",
            "/api/analyze",
            &json!({"query": QUERY, "max_new_tokens": 40}).to_string(),
        );
        assert_eq!(status, 200, "{name}: {body}");
        let done = &data_lines(&body, "done")[0];
        assert_eq!(done["answer_ids"], line["answer_ids"], "{name}");
        for k in ["unshifted", "marginal", "shifted"] {
            assert_eq!(done["counts"][k], line[k], "{name}: {k}");
        }

        let report = json_of(&[
            "bench",
            &dir,
            "--score-tokens",
            "40",
            "--generate-tokens",
            "6",
            "--repeats",
            "1",
            "--json",
        ]);
        let cases = report["cases"].as_array().unwrap();
        assert_eq!(cases[0]["tokens"], 40, "{name}");
        assert_eq!(cases[1]["tokens"], 6, "{name}");
    }
}

/// `analyze` of the qwen3 checkpoint against its GGUF twin into `out`, with
/// `--enable-thinking SWITCH` where given.
fn analyze_qwen3(out: &std::path::Path, switch: Option<&str>) -> std::process::Output {
    let qwen3 = fixture("qwen3");
    let gguf = format!("{qwen3}.gguf");
    let out = out.to_string_lossy().into_owned();
    let mut args = vec![
        "analyze",
        "--aligned",
        &qwen3,
        "--base",
        &gguf,
        "--query",
        QUERY,
        "--max-new-tokens",
        "4",
        "--out",
        &out,
        "--quiet",
    ];
    if let Some(on) = switch {
        args.extend(["--enable-thinking", on]);
    }
    aligntds(&args)
}

#[test]
fn qwen3_thinking_switch_reaches_the_prompt_and_the_run_record() {
    let tmp = tempfile::tempdir().unwrap();
    let mut contexts = Vec::new();
    for switch in [None, Some("false"), Some("true")] {
        let out = tmp.path().join(format!("run-{switch:?}"));
        let analyzed = analyze_qwen3(&out, switch);
        assert!(analyzed.status.success(), "{}", stderr(&analyzed));
        let context = first_example(&out)["aligned_context"]
            .as_str()
            .unwrap()
            .to_string();
        let summary: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap())
                .unwrap();
        let recorded = &summary["manifest"]["settings"]["aligned_context"]["enable_thinking"];
        match switch {
            None => assert!(recorded.is_null(), "{summary}"),
            Some(on) => assert_eq!(recorded.to_string(), on),
        }
        contexts.push(context);
    }
    // The switch is part of the run's identity: a run without it is not resumed with it.
    let resumed = analyze_qwen3(&tmp.path().join("run-None"), Some("false"));
    assert_eq!(resumed.status.code(), Some(2));
    assert!(
        stderr(&resumed).contains("other settings"),
        "{}",
        stderr(&resumed)
    );
    let expected = format!("<|im_start|>user\n{QUERY}<|im_end|>\n<|im_start|>assistant\n");
    assert_eq!(contexts[0], expected, "unset: the template's default");
    assert_eq!(contexts[1], format!("{expected}<think>\n\n</think>\n\n"));
    assert_eq!(contexts[2], expected, "on renders as the default");
}

#[test]
fn gemma2_refusing_a_system_message_reaches_the_user() {
    let gemma2 = fixture("gemma2");
    for args in [
        vec![
            "generate",
            &gemma2,
            "--chat",
            QUERY,
            "--system",
            "Be brief.",
        ],
        vec![
            "analyze",
            "--aligned",
            &gemma2,
            "--base",
            &gemma2,
            "--query",
            QUERY,
            "--system",
            "Be brief.",
            "--out",
            "/nonexistent/never-written",
        ],
    ] {
        let out = aligntds(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let message = stderr(&out);
        assert!(
            message.starts_with("error:")
                && message.contains("System role not supported")
                && message.contains("leave the system message out"),
            "{args:?}: {message}"
        );
    }
}
