//! What the command line does with finished runs, from Python: the report
//! site, two runs compared, shards merged. Each is the library call the
//! command runs, with errors naming the argument to change.

use std::path::PathBuf;

use aligntds_stats::compare::{compare, render_text, CompareError, Operand};
use pyo3::prelude::*;

use crate::errors::{setting_error, study_error};
use crate::run_error;

/// Builds the report site of `runs` in `out`; returns (index.html, example pages, bytes).
#[pyfunction]
fn build_report(
    py: Python<'_>,
    runs: Vec<PathBuf>,
    out: PathBuf,
) -> PyResult<(String, usize, u64)> {
    if runs.is_empty() {
        return Err(setting_error(
            py,
            "runs".into(),
            "give at least one run folder".into(),
        ));
    }
    let stats = py
        .detach(|| aligntds_report::build_from(&runs, &out))
        .map_err(|e| crate::RunError::new_err(e.to_string()))?;
    Ok((
        out.join("index.html").display().to_string(),
        stats.example_pages,
        stats.bytes,
    ))
}

/// Two runs (`RUN` or `RUN@SIDE`) compared on their shared examples: the
/// comparison as JSON text and as `aligntds compare` prints it.
#[pyfunction]
#[pyo3(signature = (a, b, common=false))]
fn compare_runs(py: Python<'_>, a: String, b: String, common: bool) -> PyResult<(String, String)> {
    let comparison = py
        .detach(|| compare(&Operand::parse(&a), &Operand::parse(&b), common))
        .map_err(|e| match e {
            CompareError::Mismatch { message, common } if common > 0 => setting_error(
                py,
                "common".into(),
                format!("{message}; pass common=True to compare the {common} shared examples"),
            ),
            CompareError::Format(e) => run_error(e),
            other => setting_error(py, "b".into(), other.to_string()),
        })?;
    let json =
        serde_json::to_string(&comparison).map_err(|e| crate::RunError::new_err(e.to_string()))?;
    Ok((json, render_text(&comparison)))
}

/// Merges shard runs into `out` (as `aligntds merge`); returns `out`.
#[pyfunction]
#[pyo3(signature = (shards, out, curve_positions=200))]
fn merge_runs(
    py: Python<'_>,
    shards: Vec<PathBuf>,
    out: PathBuf,
    curve_positions: usize,
) -> PyResult<String> {
    py.detach(|| aligntds_analysis::merge(&shards, &out, curve_positions).map_err(Box::new))
        .map_err(|e| study_error(py, *e))?;
    Ok(out.display().to_string())
}

/// Runs the `aligntds` command line with `argv` (the program name first),
/// the GIL released; returns its exit code.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.detach(|| aligntds_cli::main(argv))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(build_report, m)?)?;
    m.add_function(wrap_pyfunction!(compare_runs, m)?)?;
    m.add_function(wrap_pyfunction!(merge_runs, m)?)?;
    Ok(())
}
