//! `aligntds.handover(...)`: a handover study from keyword arguments, run
//! as `aligntds handover` runs it (one study per arm, then the curve), with
//! the study's progress and interrupt handling; and handover.json read
//! through its typed definition.

use std::path::PathBuf;

use aligntds_analysis::handover::{self, Policy};
use aligntds_analysis::Progress;
use aligntds_formats::handover::HandoverFile;
use pyo3::prelude::*;

use crate::errors::{setting_error, study_error};
use crate::study::{parse_spec, run_on_worker, settings};

/// Runs every arm of `policies` over the study `spec` describes; returns its
/// folder. `progress(done, total)` counts records over all arms.
#[pyfunction]
#[pyo3(name = "handover", signature = (spec, policies, progress=None))]
fn run_handover(
    py: Python<'_>,
    spec: &str,
    policies: Vec<String>,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let spec = parse_spec(spec)?;
    let mut parsed = Vec::new();
    for text in &policies {
        parsed.extend(Policy::parse_arms(text).map_err(|m| setting_error(py, "policy".into(), m))?);
    }
    let settings = settings(py, &spec)?;
    let out = settings.out.display().to_string();
    let arms = handover::arms(&parsed);
    let cancel = aligntds_engine::Cancel::default();
    run_on_worker(py, &cancel, progress, |report| {
        let n = arms.len();
        handover::run_with(&settings, &parsed, &cancel, &mut |arm, p| {
            // One bar over all arms: arm k's records come after k arms' worth.
            let k = arms.iter().position(|a| a == arm).unwrap_or(0);
            report(match p {
                Progress::Started { total, resumed } => Progress::Started {
                    total: n * total,
                    resumed: k * total + resumed,
                },
                Progress::Example {
                    id,
                    done,
                    total,
                    tokens,
                    skipped,
                } => Progress::Example {
                    id,
                    done: k * total + done,
                    total: n * total,
                    tokens,
                    skipped,
                },
                other => other,
            })
        })
        .map(|_| ())
        .map_err(Box::new)
    })?;
    Ok(out)
}

/// handover.json of a finished handover folder, checked by its typed
/// reader, as JSON text.
#[pyfunction]
fn read_handover(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    let file = py
        .detach(|| HandoverFile::read(&path))
        .map_err(crate::run_error)?;
    serde_json::to_string(&file).map_err(|e| crate::RunError::new_err(e.to_string()))
}

/// Merges a handover study's shards into `out` (as `aligntds merge`).
#[pyfunction]
#[pyo3(signature = (shards, out, curve_positions=200))]
fn merge_handover(
    py: Python<'_>,
    shards: Vec<PathBuf>,
    out: PathBuf,
    curve_positions: usize,
) -> PyResult<String> {
    py.detach(|| handover::merge(&shards, &out, curve_positions).map_err(Box::new))
        .map_err(|e| study_error(py, *e))?;
    Ok(out.display().to_string())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run_handover, m)?)?;
    m.add_function(wrap_pyfunction!(read_handover, m)?)?;
    m.add_function(wrap_pyfunction!(merge_handover, m)?)?;
    Ok(())
}
