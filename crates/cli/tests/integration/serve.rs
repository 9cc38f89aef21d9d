//! `aligntds serve` as a user runs it: it prints its address at once, answers
//! 503 while loading, then streams the answer `aligntds analyze --query` gives;
//! a non-loopback --host warns, generates a token and prints it in the
//! address, which opens the live page in Chromium; bad options fail with exit
//! code 2, naming the flag.

use std::io::{BufRead, BufReader};

use crate::common::*;
use serde_json::{json, Value};

/// `aligntds serve` on the tiny llama3 (aligned, plain) / mistral pair with
/// `extra` flags and `env`: the printed URL.
fn spawn_pair(extra: &[&str], env: &[(&str, &str)]) -> (Server, String) {
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
    spawn_serve_env(&args, env)
}

fn spawn(extra: &[&str]) -> (Server, String) {
    let (server, url) = spawn_pair(extra, &[]);
    (server, address_of(&url))
}

/// POST /api/analyze with a bearer token: status and the event stream.
fn analyze_with(address: &str, bearer: &str, query: &str, tokens: usize) -> (u16, String) {
    let body = json!({"query": query, "max_new_tokens": tokens}).to_string();
    http_with(
        address,
        "POST",
        "/api/analyze",
        &[("Authorization", bearer)],
        &body,
    )
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
fn a_public_host_generates_a_token_prints_it_in_the_url_and_asks_for_it() {
    let (mut server, url) = spawn_pair(&["--host", "0.0.0.0"], &[]);
    let mut stderr = BufReader::new(server.0.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(
        first.starts_with("warning:")
            && first.contains("anyone who can reach")
            && first.contains("has the token"),
        "{first}"
    );
    // 0.0.0.0 is shown as an address a browser opens.
    let address = address_of(&url);
    assert!(address.starts_with("127.0.0.1:"), "{url}");
    let token = token_of(&url).unwrap_or_else(|| panic!("no token in {url}"));
    assert_eq!(token.len(), 48);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
    let bearer = format!("Bearer {token}");
    wait_ready_with(&address, &[("Authorization", &bearer)]);
    let (status, body) = http(&address, "GET", "/api/info", "");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("Authorization: Bearer"), "{body}");
    assert_eq!(http(&address, "GET", "/", "").0, 401);
    let (status, body) = analyze_with(&address, &bearer, "Hi?", 3);
    assert_eq!(status, 200, "{body}");
    assert_eq!(data_lines(&body, "done").len(), 1);
    // Another start, another token.
    let (_again, url2) = spawn_pair(&["--host", "0.0.0.0"], &[]);
    assert_ne!(token_of(&url2), Some(token));
}

#[test]
fn a_token_from_the_environment_guards_a_loopback_server() {
    let token = "from-the-environment-0123";
    let (_server, url) = spawn_pair(&[], &[("ALIGNTDS_TOKEN", token)]);
    assert_eq!(token_of(&url).as_deref(), Some(token), "{url}");
    let address = address_of(&url);
    let bearer = format!("Bearer {token}");
    wait_ready_with(&address, &[("Authorization", &bearer)]);
    assert_eq!(http(&address, "GET", "/api/info", "").0, 401);
    // Without a token, a loopback server prints a plain address.
    let (_plain, url) = spawn_pair(&[], &[]);
    assert!(token_of(&url).is_none() && url.ends_with('/'), "{url}");
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
        (vec!["--token", "short"], "--token"),
        (vec!["--token", "spaces are not allowed in one"], "--token"),
        (
            vec!["--allowed-host", "https://lab.example.org/"],
            "--allowed-host",
        ),
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

/// Waits until `script` returns true in the page.
async fn until(client: &fantoccini::Client, script: &str, what: &str) {
    for _ in 0..600 {
        if aligntds_testkit::chromium::js(client, script).await == json!(true) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let url = client.current_url().await.unwrap();
    panic!("timed out waiting for {what} at {url}");
}

async fn screenshot(client: &fantoccini::Client, name: &str) {
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/serve-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), client.screenshot().await.unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_token_address_opens_the_live_page_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((_driver, client)) =
        aligntds_testkit::chromium::start_browser(&tmp.path().join("profile")).await
    else {
        return;
    };
    let (_server, url) = spawn_pair(&["--host", "0.0.0.0"], &[]);
    let (address, token) = (address_of(&url), token_of(&url).unwrap());
    let bearer = format!("Bearer {token}");
    wait_ready_with(&address, &[("Authorization", &bearer)]);

    // The printed address: the token becomes a cookie the page cannot read,
    // and leaves the address bar.
    client.goto(&url).await.unwrap();
    until(
        &client,
        "return document.getElementById('pair').textContent.indexOf('aligned') === 0",
        "the pair",
    )
    .await;
    assert_eq!(
        client.current_url().await.unwrap().as_str(),
        format!("http://{address}/")
    );
    assert_eq!(
        aligntds_testkit::chromium::js(&client, "return document.cookie").await,
        json!("")
    );

    // The whole page works on the cookie: an answer streams in as the API gives it.
    let query = "Hello there?";
    client
        .execute("document.getElementById('query').value = arguments[0]; document.getElementById('max-new').value = '8'; return true;", vec![json!(query)])
        .await
        .unwrap();
    aligntds_testkit::chromium::click(&client, fantoccini::Locator::Id("run")).await;
    until(&client, "var s = document.querySelector('[data-stream=\"0\"]'); return !!s && s.getAttribute('data-done') === '1';", "the answer").await;
    let shown = aligntds_testkit::chromium::js(&client, "return Array.from(document.querySelectorAll('[data-stream=\"0\"] .answer .t')).map(t => t.textContent)").await;
    let (status, api) = analyze_with(&address, &bearer, query, 8);
    assert_eq!(status, 200, "{api}");
    let texts: Vec<Value> = data_lines(&api, "token")
        .iter()
        .map(|t| t["text"].clone())
        .collect();
    assert_eq!(shown, json!(texts));
    assert!(!texts.is_empty());
    screenshot(&client, "live-token.png").await;

    // Without the cookie, or with a wrong token, the page says how to get in.
    client.delete_all_cookies().await.unwrap();
    client.goto(&format!("http://{address}/")).await.unwrap();
    let page = aligntds_testkit::chromium::js(&client, "return document.body.textContent").await;
    let page = page.as_str().unwrap();
    assert!(
        page.contains("asks for a token") && page.contains("No token came"),
        "{page}"
    );
    screenshot(&client, "live-401.png").await;
    client
        .goto(&format!("http://{address}/?token=0123456789abcdef0123"))
        .await
        .unwrap();
    let page = aligntds_testkit::chromium::js(&client, "return document.body.textContent").await;
    assert!(
        page.as_str().unwrap().contains("not this server's"),
        "{page}"
    );
    client.close().await.unwrap();
}
