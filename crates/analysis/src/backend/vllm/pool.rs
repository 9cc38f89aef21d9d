//! The servers of one side: HTTP/1 with connection reuse, a bound on the
//! requests in flight per server, timeouts, and retries with backoff that move
//! a failed request to another replica. Callers are plain threads (a study
//! analyzes several records at once); each call blocks on a shared runtime.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub use crate::backend::ServerStats;
pub use crate::settings::{normalize_url, ServerOptions};

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// An answer that retrying cannot change (a 4xx other than 429).
    #[error("{url} refused the request (HTTP {status}): {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    /// One server did not answer a check.
    #[error("{url} does not answer: {message}")]
    Unreachable { url: String, message: String },
    /// No server answered (connection errors, 5xx, 429, timeouts) within the retry window.
    #[error("no server answered within {seconds:.0} s; last failure: {last}")]
    Unavailable { seconds: f64, last: String },
    #[error("{url}: the answer is not what a vLLM server sends: {message}")]
    Protocol { url: String, message: String },
}

struct Replica {
    url: String,
    permits: tokio::sync::Semaphore,
    /// Not tried again before this instant after a failure.
    down_until: Mutex<Option<Instant>>,
    consecutive_failures: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    tokens: AtomicU64,
}

impl Replica {
    fn down_for(&self, now: Instant) -> Option<Duration> {
        let until = *self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        until.and_then(|u| u.checked_duration_since(now))
    }

    fn failed(&self) {
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        self.failures.fetch_add(1, Ordering::Relaxed);
        // 0.5 s, 1 s, 2 s ... up to 30 s before this server gets work again.
        let pause = Duration::from_millis(500 * (1u64 << n.min(6))).min(Duration::from_secs(30));
        *self.down_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + pause);
    }

    fn succeeded(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        *self.down_until.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("aligntds-http")
            .enable_all()
            .build()
            .expect("a tokio runtime for HTTP (threads and timers) starts")
    })
}

/// The servers of one side.
pub struct Pool {
    replicas: Vec<Replica>,
    client: Client<HttpConnector, Full<Bytes>>,
    options: ServerOptions,
}

impl Pool {
    /// `urls` already normalised.
    pub fn new(urls: &[String], options: ServerOptions) -> Self {
        let _guard = runtime().enter();
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(options.max_in_flight)
            .build(connector);
        let replicas = urls
            .iter()
            .map(|url| Replica {
                url: url.clone(),
                permits: tokio::sync::Semaphore::new(options.max_in_flight.max(1)),
                down_until: Mutex::new(None),
                consecutive_failures: AtomicU64::new(0),
                requests: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                tokens: AtomicU64::new(0),
            })
            .collect();
        Self {
            replicas,
            client,
            options,
        }
    }

    pub fn urls(&self) -> Vec<String> {
        self.replicas.iter().map(|r| r.url.clone()).collect()
    }

    /// Requests all replicas together can have in flight.
    pub fn capacity(&self) -> usize {
        self.replicas.len() * self.options.max_in_flight.max(1)
    }

    pub fn stats(&self) -> Vec<ServerStats> {
        self.replicas
            .iter()
            .map(|r| ServerStats {
                url: r.url.clone(),
                requests: r.requests.load(Ordering::Relaxed),
                failures: r.failures.load(Ordering::Relaxed),
                tokens: r.tokens.load(Ordering::Relaxed),
                healthy: r.consecutive_failures.load(Ordering::Relaxed) == 0,
            })
            .collect()
    }

    /// One GET to one server, once (the checks before work): no retries, so an
    /// unreachable server is reported at once.
    pub fn get_once(&self, replica: usize, path: &str) -> Result<Value, HttpError> {
        let r = &self.replicas[replica];
        runtime().block_on(async {
            match self.send(r, hyper::Method::GET, path, None).await {
                Ok((status, body)) => self.answer(r, status, &body),
                Err(message) => Err(HttpError::Unreachable {
                    url: r.url.clone(),
                    message,
                }),
            }
        })
    }

    /// One POST to one server, once (checks before work).
    pub fn post_once(&self, replica: usize, path: &str, body: &Value) -> Result<Value, HttpError> {
        let r = &self.replicas[replica];
        let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        runtime().block_on(async {
            match self.send(r, hyper::Method::POST, path, Some(bytes)).await {
                Ok((status, body)) => self.answer(r, status, &body),
                Err(message) => Err(HttpError::Unreachable {
                    url: r.url.clone(),
                    message,
                }),
            }
        })
    }

    /// POSTs `body` to whichever live server has the most room, retrying
    /// connection errors, timeouts, 5xx and 429 (on another server where there
    /// is one) until the retry window closes. `tokens` counts toward the
    /// server's rate.
    pub fn post(&self, path: &str, body: &Value, tokens: u64) -> Result<Value, HttpError> {
        let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        let started = Instant::now();
        runtime().block_on(async {
            let mut last = String::new();
            loop {
                let (r, wait) = self.pick();
                if let Some(wait) = wait {
                    if started.elapsed() + wait > self.options.retry_window {
                        return Err(HttpError::Unavailable {
                            seconds: started.elapsed().as_secs_f64(),
                            last,
                        });
                    }
                    tokio::time::sleep(wait).await;
                }
                let permit = r.permits.acquire().await;
                r.requests.fetch_add(1, Ordering::Relaxed);
                let sent = tokio::time::timeout(
                    self.options.request_timeout,
                    self.send(r, hyper::Method::POST, path, Some(bytes.clone())),
                )
                .await;
                drop(permit);
                let failure = match sent {
                    Ok(Ok((status, answer))) if status.is_success() || !retryable(status) => {
                        r.succeeded();
                        let value = self.answer(r, status, &answer);
                        if value.is_ok() {
                            r.tokens.fetch_add(tokens, Ordering::Relaxed);
                        }
                        return value;
                    }
                    Ok(Ok((status, answer))) => {
                        format!(
                            "{} answered HTTP {}: {}",
                            r.url,
                            status.as_u16(),
                            error_message(&answer)
                        )
                    }
                    Ok(Err(message)) => format!("{}: {message}", r.url),
                    Err(_) => format!(
                        "{}: no answer within {} s",
                        r.url,
                        self.options.request_timeout.as_secs()
                    ),
                };
                tracing::warn!(%failure, "retrying on another server or after a pause");
                r.failed();
                last = failure;
                if started.elapsed() > self.options.retry_window {
                    return Err(HttpError::Unavailable {
                        seconds: started.elapsed().as_secs_f64(),
                        last,
                    });
                }
            }
        })
    }

    /// The live server with the most free permits, or else the one that comes
    /// back first with how long to wait for it.
    fn pick(&self) -> (&Replica, Option<Duration>) {
        let now = Instant::now();
        let live = self
            .replicas
            .iter()
            .filter(|r| r.down_for(now).is_none())
            .max_by_key(|r| r.permits.available_permits());
        if let Some(r) = live {
            return (r, None);
        }
        let (r, wait) = self
            .replicas
            .iter()
            .map(|r| (r, r.down_for(now).unwrap_or_default()))
            .min_by_key(|(_, w)| *w)
            .expect("a side has at least one server");
        (r, Some(wait))
    }

    async fn send(
        &self,
        r: &Replica,
        method: hyper::Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(hyper::StatusCode, Bytes), String> {
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", r.url))
            .header("content-type", "application/json")
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| connection_message(&e))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("the answer broke off: {e}"))?
            .to_bytes();
        Ok((status, body))
    }

    fn answer(
        &self,
        r: &Replica,
        status: hyper::StatusCode,
        body: &[u8],
    ) -> Result<Value, HttpError> {
        if !status.is_success() {
            return Err(HttpError::Refused {
                url: r.url.clone(),
                status: status.as_u16(),
                message: error_message(body),
            });
        }
        serde_json::from_slice(body).map_err(|e| HttpError::Protocol {
            url: r.url.clone(),
            message: format!("not JSON ({e})"),
        })
    }
}

fn retryable(status: hyper::StatusCode) -> bool {
    status.is_server_error() || status == hyper::StatusCode::TOO_MANY_REQUESTS
}

/// vLLM's `{"error": {"message": ...}}`, else the body as text.
fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .or_else(|| v.get("detail"))
                .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string))
        })
        .unwrap_or_else(|| text.chars().take(300).collect())
}

/// The innermost cause of a connection failure ("connection refused").
fn connection_message(e: &hyper_util::client::legacy::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut message = e.to_string();
    while let Some(s) = source {
        message = s.to_string();
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::normalize_url;

    #[test]
    fn server_urls_are_normalised_or_refused_with_a_reason() {
        assert_eq!(
            normalize_url("http://gpu1:8000/v1/").unwrap(),
            "http://gpu1:8000"
        );
        assert_eq!(
            normalize_url("http://127.0.0.1:8000").unwrap(),
            "http://127.0.0.1:8000"
        );
        assert!(normalize_url("https://x:1").unwrap_err().contains("https"));
        assert!(normalize_url("gpu1:8000").unwrap_err().contains("http://"));
        assert!(normalize_url("http://").unwrap_err().contains("no host"));
    }
}
