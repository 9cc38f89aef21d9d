//! The one generation thread: takes requests from a bounded queue, streams
//! each through the pair, and keeps finished answers for "save as run".

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use aligntds_analysis::live::{LiveOutcome, LiveRequest};
use aligntds_formats::summary::Context;
use aligntds_stats::ExampleResult;
use tokio::sync::mpsc::UnboundedSender;

use crate::AppState;

/// What a stream sends its client: the JSON data of one SSE event.
pub(crate) enum Event {
    Token(String),
    Done(String),
    Error(String),
}

pub(crate) struct Job {
    pub request: LiveRequest,
    pub events: UnboundedSender<Event>,
    /// Set when the client's stream is dropped (it disconnected).
    pub cancel: Arc<AtomicBool>,
}

/// The jobs waiting for the generation thread, bounded.
#[derive(Default)]
struct Queue {
    waiting: VecDeque<Job>,
    /// Whether the thread is generating now.
    running: bool,
}

pub(crate) struct Worker {
    queue: Mutex<Queue>,
    arrived: Condvar,
    /// Jobs that may wait while one runs.
    capacity: usize,
    next_session: AtomicU64,
}

/// Why a job was not queued.
pub(crate) enum Refused {
    Full,
}

impl Worker {
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: Mutex::default(),
            arrived: Condvar::new(),
            capacity,
            next_session: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a job: taken at once when the thread is idle, else it waits
    /// if fewer than `capacity` jobs wait already. Jobs whose clients left
    /// while waiting give up their places.
    pub fn submit(&self, job: Job) -> Result<(), Refused> {
        let mut queue = self.lock();
        queue.waiting.retain(|j| !j.abandoned());
        let idle = !queue.running && queue.waiting.is_empty();
        if !idle && queue.waiting.len() >= self.capacity {
            return Err(Refused::Full);
        }
        queue.waiting.push_back(job);
        self.arrived.notify_one();
        Ok(())
    }

    /// The next job to run (blocks until one arrives), marking the thread busy.
    fn take(&self) -> Job {
        let mut queue = self.lock();
        queue.running = false;
        loop {
            while let Some(job) = queue.waiting.pop_front() {
                // A client that left while queued costs nothing.
                if !job.abandoned() {
                    queue.running = true;
                    return job;
                }
            }
            queue = self.arrived.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Job {
    fn abandoned(&self) -> bool {
        self.events.is_closed() || self.cancel.load(Ordering::Relaxed)
    }
}

/// A finished answer kept for "save as run".
pub(crate) struct Session {
    pub id: u64,
    pub result: ExampleResult,
    pub contexts: (Context, Context),
    pub max_new_tokens: usize,
}

/// The most recent finished answers (older ones are dropped).
#[derive(Default)]
pub(crate) struct Sessions {
    kept: VecDeque<Arc<Session>>,
}

/// Finished answers kept for saving; a live page saves what it just streamed.
const KEPT_SESSIONS: usize = 256;

impl Sessions {
    fn keep(&mut self, session: Session) {
        if self.kept.len() == KEPT_SESSIONS {
            self.kept.pop_front();
        }
        self.kept.push_back(Arc::new(session));
    }

    pub fn get(&self, id: u64) -> Option<Arc<Session>> {
        self.kept.iter().find(|s| s.id == id).cloned()
    }
}

pub(crate) fn spawn(state: Arc<AppState>) {
    std::thread::Builder::new()
        .name("aligntds-live".into())
        .spawn(move || loop {
            let job = state.worker.take();
            run(&state, job);
        })
        .expect("cannot start the generation thread");
}

fn run(state: &AppState, job: Job) {
    let Some(Ok(pair)) = state.pair() else {
        let _ = job
            .events
            .send(Event::Error(error_json("the models are not loaded")));
        return;
    };
    let id = state.worker.next_session.fetch_add(1, Ordering::Relaxed);
    let cancelled = || job.cancel.load(Ordering::Relaxed) || job.events.is_closed();
    let mut sink = |token: &aligntds_analysis::live::LiveToken| {
        if let Ok(json) = serde_json::to_string(token) {
            let _ = job.events.send(Event::Token(json));
        }
    };
    // A panic in the model code must not take the server down.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pair.stream(&job.request, &cancelled, &mut sink)
    }));
    match outcome {
        Ok(Ok(outcome)) => {
            let done = done_json(id, &outcome);
            let cancelled = outcome.stop_reason == "cancelled";
            if !cancelled {
                let mut sessions = state.sessions.lock().unwrap_or_else(|p| p.into_inner());
                sessions.keep(Session {
                    id,
                    contexts: pair.request_contexts(&job.request),
                    max_new_tokens: job
                        .request
                        .max_new_tokens
                        .unwrap_or(pair.settings.limits.default_new_tokens),
                    result: outcome.result,
                });
            }
            let _ = job.events.send(Event::Done(done));
        }
        Ok(Err(e)) => {
            let _ = job.events.send(Event::Error(error_json(&e.to_string())));
        }
        Err(_) => {
            tracing::error!("a live generation panicked");
            let _ = job
                .events
                .send(Event::Error(error_json("internal error in the generation")));
        }
    }
}

fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// The `done` event: counts, ratios, mean KL, why it stopped.
fn done_json(session: u64, outcome: &LiveOutcome) -> String {
    let e = &outcome.result.example;
    let n = outcome.result.positions.len();
    let kl: f64 = outcome
        .result
        .positions
        .iter()
        .filter_map(|p| p.kl_aligned_base)
        .sum();
    let ratio = |c: u32| if n == 0 { 0.0 } else { c as f64 / n as f64 };
    serde_json::json!({
        "session": session,
        "tokens": n,
        "streamed": outcome.streamed,
        "answer": e.answer,
        "answer_ids": e.answer_ids,
        "counts": {"unshifted": e.unshifted, "marginal": e.marginal, "shifted": e.shifted},
        "ratios": {"unshifted": ratio(e.unshifted), "marginal": ratio(e.marginal), "shifted": ratio(e.shifted)},
        "mean_kl": if n == 0 { 0.0 } else { kl / n as f64 },
        "stop_reason": outcome.stop_reason,
        "seconds": outcome.seconds,
        "aligned_context": e.aligned_context,
        "base_context": e.base_context,
    })
    .to_string()
}
