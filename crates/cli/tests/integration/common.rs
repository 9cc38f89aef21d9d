//! Helpers shared by the binary's test crates.
#![allow(dead_code)] // each test crate uses its own subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};

/// A running `aligntds serve`, killed when dropped.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `aligntds serve ARGS --port 0` and reads the address it prints first.
pub fn spawn_serve(args: &[&str]) -> (Server, String) {
    let (server, url) = spawn_serve_env(args, &[]);
    (server, address_of(&url))
}

/// Starts `aligntds serve ARGS --port 0` with extra environment variables and
/// returns the URL it prints first (with `?token=` where it asks for one).
pub fn spawn_serve_env(args: &[&str], env: &[(&str, &str)]) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aligntds"))
        .arg("serve")
        .args(args)
        .args(["--port", "0"])
        .env_remove("ALIGNTDS_TOKEN")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (Server(child), line.trim().to_string())
}

/// `HOST:PORT` of a printed `http://HOST:PORT/...` URL.
pub fn address_of(url: &str) -> String {
    url.strip_prefix("http://")
        .and_then(|a| a.split_once('/'))
        .map(|(address, _)| address.to_string())
        .unwrap_or_else(|| panic!("no address printed: {url:?}"))
}

/// The `token` of a printed URL, if it has one.
pub fn token_of(url: &str) -> Option<String> {
    url.split_once("?token=").map(|(_, t)| t.to_string())
}

/// Waits until a served pair has loaded (`/api/info` says ready).
pub fn wait_ready(address: &str) {
    wait_ready_with(address, &[]);
}

/// [`wait_ready`] with extra request headers (a token).
pub fn wait_ready_with(address: &str, headers: &[(&str, &str)]) {
    let started = std::time::Instant::now();
    loop {
        let (status, body) = http_with(address, "GET", "/api/info", headers, "");
        assert_eq!(status, 200);
        let info: serde_json::Value = serde_json::from_str(&body).unwrap();
        if info["ready"] == true {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "never loaded"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request (connection closed after it): status and body.
pub fn http(address: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    http_with(address, method, path, &[], body)
}

/// [`http`] with extra request headers.
pub fn http_with(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    let extra: String = headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let status = reply[9..12].parse().unwrap();
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// The JSON data of every server-sent event named `event` in a stream's body.
pub fn data_lines(body: &str, event: &str) -> Vec<serde_json::Value> {
    body.split("\n\n")
        .filter(|b| b.contains(&format!("event: {event}")))
        .filter_map(|b| b.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

pub use aligntds_testkit::{fixture, real_model};

pub fn aligntds(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aligntds"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `analyze` on the tiny llama3 (aligned, plain context) / mistral (base) pair.
pub fn pair_args(data: &str, out: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "analyze",
        "--aligned",
        &fixture("llama3"),
        "--base",
        &fixture("mistral"),
        "--aligned-context",
        "plain",
        "--data",
        data,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([
        "--out".to_string(),
        out.to_string_lossy().into_owned(),
        "--quiet".to_string(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// positions.parquet of a run folder, one JSON text per row.
pub fn position_rows(dir: &std::path::Path) -> Vec<String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = std::fs::File::open(dir.join("positions.parquet")).unwrap();
    SerializedFileReader::new(file)
        .unwrap()
        .get_row_iter(None)
        .unwrap()
        .map(|r| r.unwrap().to_json_value().to_string())
        .collect()
}

/// summary.json's manifest of a run folder.
pub fn manifest(dir: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["manifest"].clone()
}

/// `command` (analyze or handover) with the llama3 fixture on both sides,
/// the aligned side in `contexts.0` and the base side in `contexts.1`,
/// generating up to `new_tokens`; then `extra`.
pub fn one_model_run(
    command: &str,
    contexts: (&str, &str),
    data: &std::path::Path,
    out: &std::path::Path,
    new_tokens: usize,
    extra: &[&str],
) -> Output {
    let model = fixture("llama3");
    let new_tokens = new_tokens.to_string();
    let mut args = vec![
        command,
        "--aligned",
        &model,
        "--base",
        &model,
        "--aligned-context",
        contexts.0,
        "--base-context",
        contexts.1,
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--max-new-tokens",
        &new_tokens,
        "--response",
        "generate",
    ];
    args.extend_from_slice(extra);
    aligntds(&args)
}

/// Each example's answer token ids, in the run's order.
pub fn answers(dir: &std::path::Path) -> Vec<Vec<u32>> {
    aligntds_formats::examples::read(dir)
        .unwrap()
        .into_iter()
        .map(|e| e.answer_ids)
        .collect()
}
