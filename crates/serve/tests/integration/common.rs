#![allow(dead_code)]
//! A server in the test process on a loopback port, and a plain HTTP/1 client
//! that reads server-sent events as they arrive.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use aligntds_analysis::live::{LivePair, LiveSettings};
use aligntds_analysis::settings::{ContextKind, Runtime, SideSettings};
use aligntds_formats::summary::{Context, Thresholds};
use aligntds_serve::{AppState, ServeSettings};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;

pub const SMOLLM2: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

pub use aligntds_testkit::{fixture, repo_root, smollm2};

fn side(model: &str, kind: ContextKind) -> SideSettings {
    SideSettings {
        model: model.into(),
        chat_template: None,
        context: Context::of(kind),
        backend: Default::default(),
    }
}

/// A pair's settings: `aligned` under `aligned_kind`, `base` under the study's template.
pub fn live_settings(aligned: &str, aligned_kind: ContextKind, base: &str) -> LiveSettings {
    LiveSettings {
        aligned: side(aligned, aligned_kind),
        base: side(base, ContextKind::Template),
        runtime: Runtime::default(),
        top_k: 10,
        thresholds: Thresholds::default(),
        stops: Vec::new(),
        limits: Default::default(),
        server_options: Default::default(),
    }
}

/// The tiny llama3 (aligned, plain) / mistral (base) pair.
pub fn fixture_settings() -> LiveSettings {
    live_settings(&fixture("llama3"), ContextKind::Plain, &fixture("mistral"))
}

pub fn serve_settings(live: LiveSettings, save_dir: &Path, queue: usize) -> ServeSettings {
    ServeSettings {
        live,
        runs: Vec::new(),
        save_dir: save_dir.to_path_buf(),
        queue,
        access: Default::default(),
    }
}

/// Starts `state` on a free loopback port.
pub async fn start(state: Arc<AppState>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(aligntds_serve::serve(listener, state));
    addr
}

/// A loaded pair served on a free port.
pub async fn serve_loaded(settings: ServeSettings) -> (SocketAddr, Arc<AppState>) {
    let pair = LivePair::load(settings.live.clone()).unwrap();
    let state = AppState::with_pair(settings, pair).unwrap();
    (start(state.clone()).await, state)
}

pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Sends one request on a fresh connection; the response head comes back
/// with the body still streaming.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> hyper::Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    sender.send_request(request).await.unwrap()
}

/// A whole request and response.
pub async fn call(addr: SocketAddr, method: &str, path: &str, body: Vec<u8>) -> Reply {
    let response = send(addr, method, path, body).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub async fn post(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    call(addr, "POST", path, body.to_string().into_bytes()).await
}

/// The (event, data) pairs of a whole text/event-stream body.
pub fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut name = String::from("message");
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = n.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push(d.strip_prefix(' ').unwrap_or(d).to_string());
                }
            }
            (!data.is_empty()).then(|| (name, serde_json::from_str(&data.join("\n")).unwrap()))
        })
        .collect()
}

/// Reads a streaming body until `n` events have arrived; returns them and the
/// rest of the body (dropping it closes the connection).
pub async fn first_events(body: &mut Incoming, n: usize) -> Vec<(String, Value)> {
    let mut text = String::new();
    loop {
        let found = events(&text);
        let complete = text.matches("\n\n").count();
        if found.len() >= n && complete >= n {
            return found;
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    text.push_str(&String::from_utf8_lossy(data));
                }
            }
            _ => return events(&text),
        }
    }
}

/// This process's resident memory in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// One HTTP/1.1 request with exactly `headers` (no Host unless given; a
/// body gets its Content-Length), read to the end: for the access checks,
/// which look at Host, Origin, Content-Type, Authorization and Cookie.
pub async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    use std::io::{Read, Write};
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    // A plain blocking socket, off the runtime's threads.
    let reply = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).unwrap();
        reply
    })
    .await
    .unwrap();
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.get(9..12)).unwrap_or("0");
    let mut map = hyper::HeaderMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            map.append(
                hyper::header::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                value.trim().parse().unwrap(),
            );
        }
    }
    Reply {
        status: status.parse().unwrap(),
        headers: map,
        body: body.to_string(),
    }
}
