//! A finished run's files: positions.parquet, examples.jsonl, then
//! summary.json last (its presence marks a finished run). The file formats
//! themselves are aligntds-formats'.

use std::path::Path;

use aligntds_formats::examples::ExampleLine;
use aligntds_formats::positions::PositionRecord;
use aligntds_formats::summary::{Manifest, Summary};
use aligntds_formats::{FormatError, SCHEMA_VERSION};

use crate::run::ExampleResult;

/// Writes a finished run into `dir` and returns its summary.
pub fn write_run(
    dir: &Path,
    results: &[ExampleResult],
    manifest: Manifest,
    curve_positions: usize,
) -> Result<Summary, FormatError> {
    let rows: Vec<(&str, &PositionRecord)> = results
        .iter()
        .flat_map(|e| e.positions.iter().map(move |p| (e.example.id.as_str(), p)))
        .collect();
    aligntds_formats::positions::write(&dir.join(aligntds_formats::POSITIONS_FILE), &rows)?;
    let lines: Vec<ExampleLine> = results.iter().map(|e| e.example.clone()).collect();
    aligntds_formats::examples::write(dir, &lines)?;
    let summary = Summary {
        schema_version: SCHEMA_VERSION,
        manifest,
        aggregates: crate::summary::aggregates(results, curve_positions),
    };
    summary.write(dir)?;
    Ok(summary)
}

/// Removes a run's output files (not its parts), so that no stale result
/// outlives a run that is starting over or resuming.
pub fn remove_outputs(dir: &Path) -> std::io::Result<()> {
    // summary.json first: without it the folder no longer claims to be finished.
    for name in [
        aligntds_formats::SUMMARY_FILE,
        aligntds_formats::POSITIONS_FILE,
        aligntds_formats::EXAMPLES_FILE,
    ] {
        match std::fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}
