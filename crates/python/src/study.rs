//! `aligntds.analyze(...)`: a study from keyword arguments, run as the
//! command line runs it. The Python half lays the arguments out as a study
//! file's table (the same keys, named as analyze's flags); this side checks
//! and runs it with the GIL released, reports progress to a callback, and
//! stops at the interrupt key (the run's cancel token), leaving a folder that
//! resumes.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use aligntds_analysis::settings::study_file::{self, StudyKeys, StudySides};
use aligntds_analysis::settings::{Shard, StudySettings};
use aligntds_analysis::{Progress, Study, StudyError};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use serde::Deserialize;

use crate::errors::{setting_error, study_error, SettingError, StudyFailed};

/// What the Python half sends: the study file it names, the table of the
/// study's keyword arguments laid out as a study file, and the run options
/// a study file does not hold.
#[derive(Deserialize)]
pub(crate) struct Spec {
    study: Option<PathBuf>,
    table: toml::Table,
    #[serde(default)]
    overwrite: bool,
    #[serde(default)]
    strict: bool,
    shard: Option<String>,
    device: Option<String>,
}

fn file_error(py: Python<'_>, e: study_file::StudyFileError) -> PyErr {
    setting_error(py, "study".into(), e.to_string())
}

/// The study the spec describes: its study file's, with the keyword
/// arguments over it (as flags over a study file's keys), or the arguments alone.
pub(crate) fn settings(py: Python<'_>, spec: &Spec) -> PyResult<StudySettings> {
    let here = std::env::current_dir()
        .unwrap_or_default()
        .join("<aligntds.analyze>");
    let mut settings = match &spec.study {
        Some(path) => {
            let sides = study_file::load(path).map_err(|e| file_error(py, e))?;
            for side in ["aligned", "base", "compare"] {
                if spec.table.contains_key(side) {
                    return Err(setting_error(
                        py,
                        side.into(),
                        format!(
                            "the sides come from the study file {}; set them there, or leave `study` out",
                            path.display()
                        ),
                    ));
                }
            }
            sides.check_data(path).map_err(|e| file_error(py, e))?;
            over_file(py, &sides, &spec.table, &here)?
        }
        None => study_file::from_table(spec.table.clone(), &here)
            .map_err(|e| setting_error(py, "study".into(), e.to_string()))?
            .settings(),
    };
    settings.runtime.device = crate::errors::device(py, spec.device.as_deref())?;
    settings.overwrite = spec.overwrite;
    settings.strict = spec.strict;
    settings.shard = spec
        .shard
        .as_deref()
        .map(Shard::parse)
        .transpose()
        .map_err(|e| study_error(py, e.into()))?;
    Ok(settings)
}

/// A study file's settings with the arguments' sources and keys over them.
fn over_file(
    py: Python<'_>,
    sides: &StudySides,
    table: &toml::Table,
    here: &Path,
) -> PyResult<StudySettings> {
    let mut settings = sides.settings();
    // The arguments' own sources and keys, read as a study file's would be.
    let mut own = table.clone();
    let keys: toml::Table = StudyKeys::NAMES
        .iter()
        .filter_map(|k| own.remove(*k).map(|v| (k.to_string(), v)))
        .collect();
    let keys: StudyKeys = keys
        .try_into()
        .map_err(|e: toml::de::Error| setting_error(py, "study".into(), e.to_string()))?;
    keys.apply(&mut settings);
    let path = |key: &str| {
        own.get(key)
            .and_then(|v| v.as_str())
            .map(|p| here.parent().unwrap_or(Path::new(".")).join(p))
    };
    if let Some(data) = path("data") {
        settings.queries = aligntds_analysis::settings::Queries::File(data);
    } else if let Some(query) = own.get("query").and_then(|v| v.as_str()) {
        settings.queries = aligntds_analysis::settings::Queries::Single(query.into());
    }
    if let Some(out) = path("out") {
        settings.out = out;
    }
    if let Some(group_by) = own.get("group_by").and_then(|v| v.as_str()) {
        settings.group_by = Some(group_by.into());
    }
    Ok(settings)
}

/// What the worker thread reports to the calling one.
enum Event {
    Total { total: usize, resumed: usize },
    Done { done: usize, total: usize },
    Finished(Result<(), StudyError>),
}

/// Runs a study; returns its folder. `progress(done, total)` is called on
/// the calling thread as records finish (and once when the models are
/// loaded, with `done` the resumed records).
#[pyfunction]
#[pyo3(signature = (spec, progress=None))]
pub fn analyze(py: Python<'_>, spec: &str, progress: Option<Py<PyAny>>) -> PyResult<String> {
    let spec = parse_spec(spec)?;
    let settings = settings(py, &spec)?;
    let out = settings.out.display().to_string();
    let study = py
        .detach(|| Study::prepare(settings).map_err(Box::new))
        .map_err(|e| study_error(py, *e))?;
    let cancel = study.canceller();
    run_on_worker(py, &cancel, progress, |report| {
        study.run(&mut |p| report(p)).map(|_| ()).map_err(Box::new)
    })?;
    Ok(out)
}

pub(crate) fn parse_spec(spec: &str) -> PyResult<Spec> {
    serde_json::from_str(spec)
        .map_err(|e| PyValueError::new_err(format!("the study's arguments: {e}")))
}

/// Runs `work` on a worker thread while the calling thread relays its
/// progress to `progress(done, total)` and watches the interrupt key; the
/// interrupt, or an error from the callback, sets `cancel` and is raised
/// once `work` has stopped.
pub(crate) fn run_on_worker(
    py: Python<'_>,
    cancel: &aligntds_engine::Cancel,
    progress: Option<Py<PyAny>>,
    work: impl FnOnce(&mut dyn FnMut(Progress<'_>)) -> Result<(), Box<StudyError>> + Send,
) -> PyResult<()> {
    // A rendezvous: the run waits for each event to be taken, so a callback
    // (or the interrupt key) acts before the run is more than a record ahead.
    let (send, receive) = mpsc::sync_channel(0);
    // Shared with the GIL-free wait below, which must be Send.
    let receive = std::sync::Mutex::new(receive);
    std::thread::scope(|scope| -> PyResult<()> {
        scope.spawn(move || {
            let result = work(&mut |p| {
                let event = match p {
                    Progress::Started { total, resumed } => Event::Total { total, resumed },
                    Progress::Example { done, total, .. } => Event::Done { done, total },
                    Progress::Writing => return,
                };
                let _ = send.send(event);
            });
            let _ = send.send(Event::Finished(result.map_err(|e| *e)));
        });
        // The calling thread waits here, looking at the interrupt key
        // between events (Python handles signals on this thread only).
        let mut stopped: Option<PyErr> = None;
        loop {
            let event = py.detach(|| {
                let receive = receive.lock().unwrap_or_else(|e| e.into_inner());
                receive.recv_timeout(Duration::from_millis(100))
            });
            let reported = match event {
                Ok(Event::Finished(result)) => {
                    return match (stopped, result) {
                        (Some(e), Ok(()) | Err(StudyError::Cancelled { .. })) => Err(e),
                        (_, Err(e)) => Err(study_error(py, e)),
                        (None, Ok(())) => Ok(()),
                    }
                }
                Ok(Event::Total { total, resumed }) => call(py, &progress, resumed, total),
                Ok(Event::Done { done, total }) => call(py, &progress, done, total),
                Err(mpsc::RecvTimeoutError::Timeout) => Ok(()),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(StudyFailed::new_err(
                        "the study's thread ended without a result",
                    ))
                }
            };
            if stopped.is_none() {
                if let Err(e) = reported.and_then(|()| py.check_signals()) {
                    cancel.cancel();
                    stopped = Some(e);
                }
            }
        }
    })
}

fn call(py: Python<'_>, progress: &Option<Py<PyAny>>, done: usize, total: usize) -> PyResult<()> {
    if let Some(f) = progress {
        f.call1(py, (done, total))?;
    }
    Ok(())
}

/// The size this process's thread pool was given (it is built once).
static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Sizes the engine's thread pool; once per process, before the first model runs.
#[pyfunction]
fn set_threads(py: Python<'_>, threads: usize) -> PyResult<()> {
    let refuse = |message: String| Err(setting_error(py, "threads".into(), message));
    if threads == 0 {
        return refuse("must be at least 1".into());
    }
    match THREADS.get() {
        Some(&n) if n == threads => return Ok(()),
        Some(&n) => {
            return refuse(format!(
                "this process's thread pool already has {n} threads and is sized once; restart the interpreter (or kernel) to change it"
            ))
        }
        None => {}
    }
    aligntds_engine::set_threads(threads).or_else(|_| {
        refuse("the thread pool already started at its default size (all cores); pass threads= on the first analyze or Pair of the process".into())
    })?;
    let _ = THREADS.set(threads);
    Ok(())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(set_threads, m)?)?;
    // The study's own settings, as `aligntds.analyze` takes them.
    m.add("SETTINGS", StudyKeys::NAMES.to_vec())?;
    m.add("SettingError", m.py().get_type::<SettingError>())?;
    m.add("StudyFailed", m.py().get_type::<StudyFailed>())?;
    m.add_function(wrap_pyfunction!(analyze, m)?)?;
    Ok(())
}
