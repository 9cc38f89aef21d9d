//! Routes: the live page and its assets, the JSON + SSE API, the run pages.
//! Every refusal is a JSON `{"error", "field"}` with its status; no body,
//! however malformed, reaches a panic.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aligntds_analysis::live::{LiveError, LiveRequest};
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;

use crate::responses::{add_security_headers, error};
use crate::site::content_type;
use crate::worker::{Event, Job, Refused};
use crate::AppState;

const LIVE_HTML: &str = include_str!("../assets/live.html");
const LIVE_JS: &str = include_str!("../assets/live.js");
const LIVE_CSS: &str = include_str!("../assets/live.css");

/// The most bytes a request body may hold (a query is capped lower by the limits).
const MAX_BODY: usize = 1 << 20;

/// Seconds a refused client is told to wait.
const RETRY_QUEUE: &str = "2";
const RETRY_LOADING: &str = "5";

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { page(LIVE_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/assets/live.js",
            get(|| async { page(LIVE_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/tds-page.js",
            get(|| async {
                page(
                    aligntds_report::PAGE_SCRIPT,
                    "text/javascript; charset=utf-8",
                )
            }),
        )
        .route(
            "/assets/live.css",
            get(|| async { page(LIVE_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/assets/report.css",
            get(|| async { page(aligntds_report::STYLE, "text/css; charset=utf-8") }),
        )
        .route("/api/info", get(info))
        .route("/api/analyze", post(analyze))
        .route("/api/continue", post(continue_))
        .route("/api/save", post(save))
        .route("/runs", get(|| async { Redirect::permanent("/runs/") }))
        .route(
            "/runs/",
            get(|State(s): State<Arc<AppState>>| async move { run_file(&s, "") }),
        )
        .route("/runs/{*path}", get(run_page))
        .fallback(|| async { error(StatusCode::NOT_FOUND, None, "no such page or endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::access::guard,
        ))
        .with_state(state)
}

fn secure(mut response: Response) -> Response {
    add_security_headers(response.headers_mut());
    response
}

fn page(body: &'static str, kind: &'static str) -> Response {
    secure(([(header::CONTENT_TYPE, kind)], body).into_response())
}

fn with_retry(mut response: Response, seconds: &'static str) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
    response
}

fn loading() -> Response {
    with_retry(
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "the models are still loading; try again in a few seconds",
        ),
        RETRY_LOADING,
    )
}

fn run_file(state: &AppState, path: &str) -> Response {
    match state.site.get(path) {
        Some(bytes) => secure(
            (
                [(
                    header::CONTENT_TYPE,
                    content_type(if path.is_empty() { "index.html" } else { path }),
                )],
                bytes.to_vec(),
            )
                .into_response(),
        ),
        None if state.site.is_empty() => error(
            StatusCode::NOT_FOUND,
            None,
            "no runs are served: start `aligntds serve` with --runs DIR",
        ),
        None => error(
            StatusCode::NOT_FOUND,
            None,
            "no such file in the served runs",
        ),
    }
}

async fn run_page(State(state): State<Arc<AppState>>, Path(path): Path<String>) -> Response {
    run_file(&state, &path)
}

async fn info(State(state): State<Arc<AppState>>) -> Response {
    let settings = &state.settings.live;
    let side = |s: &aligntds_analysis::settings::SideSettings,
                live: Option<&aligntds_analysis::live::LiveSide>| {
        let model = live.and_then(|l| l.model());
        serde_json::json!({
            "model": s.model,
            "servers": s.servers(),
            "context": s.context.kind.as_str(),
            "chat_template": live.and_then(|l| l.text.chat_template.as_ref().map(|t| t.name.clone())),
            "weights": live.map(|l| l.weights()),
            "architecture": model.map(|m| format!("{:?}", m.config().architecture)),
            "context_length": live.map(|l| l.context_length()),
        })
    };
    let pair = state.pair();
    let loaded = match pair {
        Some(Ok(p)) => Some(p),
        _ => None,
    };
    let body = serde_json::json!({
        "ready": loaded.is_some(),
        "load_error": match pair { Some(Err(e)) => Some(e), _ => None },
        "aligned": side(&settings.aligned, loaded.map(|p| &p.aligned)),
        "base": side(&settings.base, loaded.map(|p| &p.base)),
        "device": settings.runtime.device.to_string(),
        "top_k": settings.top_k,
        "thresholds": settings.thresholds,
        "limits": settings.limits,
        "queue": state.settings.queue,
        "runs": !state.site.is_empty(),
        "tool": format!("aligntds {}", env!("CARGO_PKG_VERSION")),
    });
    axum::Json(body).into_response()
}

/// Whether a request says its body is JSON (`application/json`, parameters
/// such as `; charset=utf-8` allowed). A page on another site can send a
/// form or `text/plain` without asking first, but never JSON.
fn is_json(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads and parses a JSON body; errors name the field at fault.
async fn body<T: DeserializeOwned>(request: Request) -> Result<T, Response> {
    if !is_json(&request) {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            "the body must be JSON, sent with Content-Type: application/json",
        ));
    }
    let bytes: Bytes = axum::body::to_bytes(request.into_body(), MAX_BODY)
        .await
        .map_err(|_| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                &format!("the request body is over {MAX_BODY} bytes"),
            )
        })?;
    let mut json = serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != ".").then_some(path);
        let inner = e.into_inner();
        let message = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!("the body is not valid JSON: {inner}")
            }
            _ => inner.to_string(),
        };
        error(StatusCode::BAD_REQUEST, field.as_deref(), &message)
    })
}

fn live_error(e: LiveError) -> Response {
    match e {
        LiveError::Invalid { field, message } => error(
            StatusCode::BAD_REQUEST,
            Some(field),
            &format!("{field} {message}"),
        ),
        LiveError::TooLarge { field, message } => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some(field),
            &format!("{field} {message}"),
        ),
        LiveError::Run(e) => error(StatusCode::BAD_REQUEST, None, &e.to_string()),
    }
}

async fn analyze(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let live: LiveRequest = match body(request).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    for (field, given) in [
        ("prefix_ids", !live.prefix_ids.is_empty()),
        ("with", live.with.is_some()),
        ("replace", live.replace.is_some()),
    ] {
        if given {
            return error(
                StatusCode::BAD_REQUEST,
                Some(field),
                &format!("{field} belongs to /api/continue; /api/analyze always starts the aligned answer from scratch"),
            );
        }
    }
    start(&state, live)
}

async fn continue_(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let live: LiveRequest = match body(request).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    if live.with.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            Some("with"),
            "with must say which side continues: \"base\" or \"aligned\"",
        );
    }
    start(&state, live)
}

/// Sets the job's cancel flag when the client's stream goes away.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn start(state: &Arc<AppState>, request: LiveRequest) -> Response {
    let pair = match state.pair() {
        None => return loading(),
        Some(Err(e)) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                &format!("the models failed to load: {e}"),
            )
        }
        Some(Ok(pair)) => pair,
    };
    if let Err(e) = pair.check(&request) {
        return live_error(e);
    }
    let (events, rx) = tokio::sync::mpsc::unbounded_channel();
    let cancel = Arc::new(AtomicBool::new(false));
    let job = Job {
        request,
        events,
        cancel: cancel.clone(),
    };
    match state.worker.submit(job) {
        Ok(()) => {}
        Err(Refused::Full) => {
            return with_retry(
                error(
                    StatusCode::TOO_MANY_REQUESTS,
                    None,
                    "the server is busy: one answer is being generated and the queue is full; try again shortly",
                ),
                RETRY_QUEUE,
            )
        }
    }
    let guard = CancelOnDrop(cancel);
    let stream = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let event = rx.recv().await?;
        let sse = match event {
            Event::Token(json) => SseEvent::default().event("token").data(json),
            Event::Done(json) => SseEvent::default().event("done").data(json),
            Event::Error(json) => SseEvent::default().event("error").data(json),
        };
        Some((Ok::<_, Infallible>(sse), (rx, guard)))
    });
    // Comments every second while queued: a client that left is noticed
    // (the write fails) and its job skipped.
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(1)))
        .into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveRequest {
    name: String,
    sessions: Vec<u64>,
}

async fn save(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let save: SaveRequest = match body(request).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let Some(Ok(pair)) = state.pair() else {
        return loading();
    };
    let name_ok = !save.name.is_empty()
        && save.name.len() <= 80
        && !save.name.starts_with('.')
        && save
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return error(
            StatusCode::BAD_REQUEST,
            Some("name"),
            "name must be 1 to 80 letters, digits, '-', '_' or '.', not starting with '.'",
        );
    }
    if save.sessions.is_empty() || save.sessions.len() > 64 {
        return error(
            StatusCode::BAD_REQUEST,
            Some("sessions"),
            "sessions must list 1 to 64 finished answers (the `session` of their done events)",
        );
    }
    let sessions = {
        let kept = state.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let mut found = Vec::new();
        for id in &save.sessions {
            match kept.get(*id) {
                Some(s) => found.push(s),
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        Some("sessions"),
                        &format!("session {id} is not a finished answer this server still holds; stream it again"),
                    )
                }
            }
        }
        found
    };
    if sessions.iter().any(|s| s.contexts != sessions[0].contexts) {
        return error(
            StatusCode::BAD_REQUEST,
            Some("sessions"),
            "these answers use different contexts; save each set of contexts as its own run",
        );
    }
    let results: Vec<_> = sessions
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut r = s.result.clone();
            r.example.id = format!("{}-s{}", i + 1, s.id);
            r
        })
        .collect();
    let dir = state.settings.save_dir.join(&save.name);
    let first = sessions[0].clone();
    let pair = pair.clone();
    let saved = tokio::task::spawn_blocking(move || {
        pair.save_run(
            &dir,
            &results,
            (&first.contexts.0, &first.contexts.1),
            first.max_new_tokens,
        )
        .map(|_| dir)
        // Only the message goes back to the client.
        .map_err(|e| e.to_string())
    })
    .await;
    match saved {
        Ok(Ok(dir)) => axum::Json(serde_json::json!({
            "saved": dir.display().to_string(),
            "examples": save.sessions.len(),
            "report": format!("aligntds report {} --out report", dir.display()),
        }))
        .into_response(),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, Some("name"), &e),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, None, "saving failed"),
    }
}
