//! A finished run's files: positions.parquet, examples.jsonl, study.toml
//! (the study that reproduces it), then summary.json last (its presence
//! marks a finished run). The file formats
//! themselves are aligntds-formats'.

use std::path::Path;

use aligntds_formats::examples::ExampleLine;
use aligntds_formats::positions::PositionRecord;
use aligntds_formats::sides::{SideSummary, BASE_SIDE};
use aligntds_formats::summary::{Manifest, Summary};
use aligntds_formats::{FormatError, SCHEMA_VERSION};

use aligntds_stats::ExampleResult;

/// Writes a finished run into `dir` and returns its summary.
pub fn write_run(
    dir: &Path,
    results: &[ExampleResult],
    manifest: Manifest,
    curve_positions: usize,
) -> Result<Summary, FormatError> {
    let rows: Vec<(&str, &str, &PositionRecord)> = results
        .iter()
        .flat_map(|e| {
            e.sides().into_iter().flat_map(move |(side, positions)| {
                positions
                    .iter()
                    .map(move |p| (e.example.id.as_str(), side, p))
            })
        })
        .collect();
    aligntds_formats::positions::write(&dir.join(aligntds_formats::POSITIONS_FILE), &rows)?;
    let lines: Vec<ExampleLine> = results.iter().map(|e| e.example.clone()).collect();
    aligntds_formats::examples::write(dir, &lines)?;
    let group_by = manifest.group_by.as_deref();
    let aggregates = aligntds_stats::summary::aggregates_of(
        results,
        &|e| &e.positions,
        curve_positions,
        group_by,
    );
    let identity = &manifest.identity;
    let compare = &identity.settings.compare;
    let mut sides = Vec::new();
    if !compare.is_empty() {
        sides.push(SideSummary {
            name: BASE_SIDE.to_string(),
            model: identity.base.reference.clone(),
            context: identity.settings.base_context.clone(),
            aggregates: aggregates.clone(),
        });
        for (i, c) in compare.iter().enumerate() {
            sides.push(SideSummary {
                name: c.name.clone(),
                model: identity
                    .compare
                    .get(i)
                    .map_or_else(String::new, |m| m.model.reference.clone()),
                context: c.context.clone(),
                aggregates: aligntds_stats::summary::aggregates_of(
                    results,
                    &|e| compared_positions(e, i),
                    curve_positions,
                    group_by,
                ),
            });
        }
    }
    let stages = aligntds_stats::stages::stages(results, identity.settings.thresholds);
    crate::settings::study_file::write_for_run(dir, &manifest, curve_positions, &lines)?;
    let summary = Summary {
        schema_version: SCHEMA_VERSION,
        manifest,
        aggregates,
        sides,
        stages,
    };
    summary.write(dir)?;
    Ok(summary)
}

/// The i-th compared side's positions of an example (none if it lacks them).
pub fn compared_positions(e: &ExampleResult, i: usize) -> &[PositionRecord] {
    e.compared.get(i).map_or(&[], |s| s.positions.as_slice())
}

/// Removes a run's output files (not its parts), so that no stale result
/// outlives a run that is starting over or resuming.
pub fn remove_outputs(dir: &Path) -> std::io::Result<()> {
    // summary.json first: without it the folder no longer claims to be finished.
    for name in [
        aligntds_formats::SUMMARY_FILE,
        aligntds_formats::POSITIONS_FILE,
        aligntds_formats::EXAMPLES_FILE,
        crate::settings::study_file::RUN_STUDY_FILE,
    ] {
        match std::fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}
