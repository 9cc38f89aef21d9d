//! `aligntds serve` as a user runs it: it prints its address at once, answers
//! 503 while loading, then streams the answer `aligntds analyze --query` gives;
//! a non-loopback --host warns; bad options fail with exit code 2, naming
//! the flag.

mod common;

use std::io::{BufRead, BufReader};

use common::*;
use serde_json::{json, Value};

fn spawn(extra: &[&str]) -> (Server, String) {
    let (llama3, mistral) = (fixture("llama3"), fixture("mistral"));
    let mut args = vec![
        "--aligned",
        &llama3,
        "--base",
        &mistral,
        "--aligned-context",
        "plain",
    ];
    args.extend(extra);
    spawn_serve(&args)
}

#[test]
fn serve_prints_its_address_then_streams_what_analyze_computes() {
    let (_server, address) = spawn(&[]);
    wait_ready(&address);
    let (status, page) = http(&address, "GET", "/", "");
    assert_eq!(status, 200);
    assert!(page.contains("aligntds live"));
    let query = "Hello there?";
    let (status, body) = http(
        &address,
        "POST",
        "/api/analyze",
        &json!({"query": query, "max_new_tokens": 10}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let done = &data_lines(&body, "done")[0];
    let tokens = data_lines(&body, "token");
    assert_eq!(tokens.len() as u64, done["tokens"].as_u64().unwrap());

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut args = pair_args("unused", &out, &["--max-new-tokens", "10"]);
    let at = args.iter().position(|a| a == "--data").unwrap();
    args.splice(at..at + 2, ["--query".to_string(), query.to_string()]);
    let analyzed = aligntds(&strs(&args));
    assert!(analyzed.status.success(), "{}", stderr(&analyzed));
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(out.join("examples.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["answer_ids"], done["answer_ids"]);
    assert_eq!(line["unshifted"], done["counts"]["unshifted"]);
    assert_eq!(line["shifted"], done["counts"]["shifted"]);
}

#[test]
fn a_public_host_warns_that_anyone_can_use_the_models() {
    let (mut server, _address) = spawn(&["--host", "0.0.0.0"]);
    let mut stderr = BufReader::new(server.0.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(
        first.starts_with("warning:") && first.contains("anyone who can reach"),
        "{first}"
    );
}

#[test]
fn bad_serve_options_fail_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let not_a_run = tmp.path().to_string_lossy().into_owned();
    let llama3 = fixture("llama3");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--aligned-server", "ftp://nowhere"],
            "--aligned-server",
        ),
        (vec!["--max-new-tokens", "2000"], "--max-new-tokens"),
        (vec!["--runs", &not_a_run], "--runs"),
        (vec!["--aligned-context", "input"], "--aligned-context"),
        (vec!["--top-k", "0"], "--top-k"),
    ];
    for (extra, flag) in cases {
        let mut args = vec![
            "serve",
            "--aligned",
            &llama3,
            "--base",
            &llama3,
            "--port",
            "0",
        ];
        args.extend(&extra);
        let out = aligntds(&args);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        let message = stderr(&out);
        assert!(
            message.starts_with("error:") && message.contains(flag),
            "{extra:?}: {message}"
        );
    }
}
