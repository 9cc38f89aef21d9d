//! aligntds-serve: the live TDS demo. A web app and a JSON + server-sent
//! events API over one loaded base/aligned pair ([`aligntds_analysis::live`]):
//! a query's aligned answer streams in token by token, each token scored by
//! both sides as it comes; any prefix can be continued by either side; the
//! runs given at start are browsable with the report's pages. See
//! docs/serve.md for the API.
//!
//! One generation runs at a time (both models are busy with it); requests
//! wait in a bounded queue and the rest are refused with 429. A client that
//! disconnects cancels its generation at once.

mod access;
mod api;
mod responses;
mod site;
mod worker;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use aligntds_analysis::live::{LivePair, LiveSettings};

pub use access::{AccessError, AccessSettings};
pub use api::router;

/// Everything `aligntds serve` needs.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub live: LiveSettings,
    /// Run folders browsable under /runs/.
    pub runs: Vec<PathBuf>,
    /// Where "save as run" writes run folders.
    pub save_dir: PathBuf,
    /// Requests that may wait while one generates; more get 429.
    pub queue: usize,
    /// Who may use the server: Host and Origin checks, the token.
    pub access: AccessSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Report(#[from] aligntds_report::ReportError),
    /// Boxed: a study error is large and most results here are Ok.
    #[error(transparent)]
    Study(Box<aligntds_analysis::StudyError>),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("{0}")]
    Io(String),
}

impl From<aligntds_analysis::StudyError> for ServeError {
    fn from(e: aligntds_analysis::StudyError) -> Self {
        Self::Study(Box::new(e))
    }
}

/// The server's shared state: the pair (once loaded), the generation queue,
/// the browsable runs and the answers kept for "save as run".
pub struct AppState {
    settings: ServeSettings,
    pair: OnceLock<Result<Arc<LivePair>, String>>,
    worker: worker::Worker,
    site: site::Site,
    sessions: Mutex<worker::Sessions>,
}

impl AppState {
    /// Builds the run pages (a bad run folder fails here, before any model
    /// loads) and starts the generation worker; the pair is not loaded yet
    /// (the API answers 503 until [`Self::load`] finishes).
    ///
    /// Off loopback without a token, one is generated here
    /// (`settings().access.token`).
    pub fn new(mut settings: ServeSettings) -> Result<Arc<Self>, ServeError> {
        settings.access = settings.access.resolve()?;
        settings
            .live
            .validate()
            .map_err(|e| ServeError::from(aligntds_analysis::StudyError::from(e)))?;
        let site = site::Site::build(&settings.runs)?;
        let worker = worker::Worker::new(settings.queue);
        let state = Arc::new(Self {
            settings,
            pair: OnceLock::new(),
            worker,
            site,
            sessions: Mutex::new(worker::Sessions::default()),
        });
        worker::spawn(state.clone());
        Ok(state)
    }

    /// Loads the pair (slow: the weights); the API serves from then on.
    pub fn load(&self) -> Result<(), ServeError> {
        let (kept, outcome) = match LivePair::load(self.settings.live.clone()) {
            Ok(pair) => (Ok(Arc::new(pair)), Ok(())),
            Err(e) => (Err(e.to_string()), Err(ServeError::from(e))),
        };
        let _ = self.pair.set(kept);
        outcome
    }

    /// Loads an already built pair (for embedding and tests).
    pub fn with_pair(settings: ServeSettings, pair: LivePair) -> Result<Arc<Self>, ServeError> {
        let state = Self::new(settings)?;
        let _ = state.pair.set(Ok(Arc::new(pair)));
        Ok(state)
    }

    /// The pair, once loaded.
    pub(crate) fn pair(&self) -> Option<Result<&Arc<LivePair>, &str>> {
        self.pair.get().map(|r| r.as_ref().map_err(|e| e.as_str()))
    }

    pub fn settings(&self) -> &ServeSettings {
        &self.settings
    }
}

/// Serves `state` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<AppState>) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}
