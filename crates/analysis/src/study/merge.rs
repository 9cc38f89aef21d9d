//! Merging the shards of one analysis (`shard: i/n`) into one run. Refuses
//! anything but a complete, consistent set: every shard finished, the shards
//! 0..n-1 of one n all present once, one fingerprint, and an output folder
//! that is none of the inputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aligntds_formats::summary::Summary;

use crate::settings::{Field, SettingError, Shard};
use crate::study::folder::{read_parts, read_stamp, RunFolder, Stamp};
use crate::study::StudyError;
use aligntds_stats::ExampleResult;

fn refuse(field: Field, message: String) -> StudyError {
    SettingError::new(field, message).into()
}

fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Merges the shard folders `inputs` into `out`; returns the merged summary.
pub fn merge(
    inputs: &[PathBuf],
    out: &Path,
    curve_positions: usize,
) -> Result<Summary, StudyError> {
    if let Some(input) = inputs.iter().find(|i| same_folder(i, out)) {
        return Err(refuse(
            Field::MergeOut,
            format!(
                "{} is one of the inputs; merge into a new folder",
                input.display()
            ),
        ));
    }
    let mut first: Option<(Stamp, &PathBuf)> = None;
    let mut seen: BTreeMap<usize, &PathBuf> = BTreeMap::new();
    let mut count = None;
    let mut all: BTreeMap<usize, ExampleResult> = BTreeMap::new();
    let mut manifest = None;
    for dir in inputs {
        let stamp = read_stamp(dir)?;
        let shard_text = stamp.shard.clone().ok_or_else(|| {
            refuse(
                Field::MergeInputs,
                format!("{} is a whole run, not a shard; only the shards of one sharded analysis are merged", dir.display()),
            )
        })?;
        let shard = Shard::parse(&shard_text).map_err(|e| {
            refuse(
                Field::MergeInputs,
                format!("{}: {}", dir.display(), e.message),
            )
        })?;
        match &first {
            Some((f, first_dir)) if f.fingerprint != stamp.fingerprint => {
                return Err(refuse(
                    Field::MergeInputs,
                    format!("{} and {} are runs of different settings (fingerprints differ); only shards of one analysis can be merged", first_dir.display(), dir.display()),
                ))
            }
            _ => {}
        }
        if *count.get_or_insert(shard.count) != shard.count {
            return Err(refuse(
                Field::MergeInputs,
                format!(
                    "{} is shard {shard}, but the others are shards of {}",
                    dir.display(),
                    count.unwrap_or(0)
                ),
            ));
        }
        if let Some(other) = seen.insert(shard.index, dir) {
            return Err(refuse(
                Field::MergeInputs,
                format!(
                    "{} and {} are both shard {shard}",
                    other.display(),
                    dir.display()
                ),
            ));
        }
        let summary = Summary::read(dir).map_err(|e| {
            refuse(
                Field::MergeInputs,
                format!("{}: the shard has not finished ({e})", dir.display()),
            )
        })?;
        let parts = read_parts(dir)?;
        if stamp.records.is_some_and(|n| n != parts.len()) {
            return Err(refuse(
                Field::MergeInputs,
                format!(
                    "{}: the shard has not finished ({} of {} records done); run it again to finish it",
                    dir.display(),
                    parts.len(),
                    stamp.records.unwrap_or(0)
                ),
            ));
        }
        for (index, result) in parts {
            if !shard.holds(index) {
                return Err(refuse(
                    Field::MergeInputs,
                    format!(
                        "{} holds record {index}, which is not in shard {shard}",
                        dir.display()
                    ),
                ));
            }
            all.insert(index, result);
        }
        manifest.get_or_insert(summary.manifest);
        if first.is_none() {
            first = Some((stamp, dir));
        }
    }
    let n = count.unwrap_or(0);
    let missing: Vec<String> = (0..n)
        .filter(|i| !seen.contains_key(i))
        .map(|i| format!("{i}/{n}"))
        .collect();
    if !missing.is_empty() || n == 0 {
        return Err(refuse(
            Field::MergeInputs,
            format!("incomplete set of shards: missing {}", missing.join(", ")),
        ));
    }
    let (Some((stamp, _)), Some(mut manifest)) = (first, manifest) else {
        return Err(refuse(Field::MergeInputs, "no shards given".into()));
    };
    let folder = RunFolder::lock(out)?;
    let existing = read_stamp(out).ok();
    if existing
        .as_ref()
        .is_some_and(|s| s.fingerprint != stamp.fingerprint)
        || (existing.is_none() && !read_parts(out)?.is_empty())
    {
        return Err(refuse(
            Field::MergeOut,
            format!(
                "{} holds another run; merge into a new folder",
                out.display()
            ),
        ));
    }
    crate::study::output::remove_outputs(out).map_err(|e| {
        StudyError::Folder(crate::study::folder::FolderError::File {
            path: out.to_path_buf(),
            message: e.to_string(),
        })
    })?;
    folder.stamp(&Stamp {
        shard: None,
        records: Some(all.len()),
        ..stamp
    })?;
    manifest.shard = None;
    manifest.merged_from = Some(inputs.iter().map(|d| d.display().to_string()).collect());
    let results: Vec<ExampleResult> = all.into_values().collect();
    Ok(crate::study::output::write_run(
        out,
        &results,
        manifest,
        curve_positions,
    )?)
}
