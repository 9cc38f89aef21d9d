//! Merging the shards of one handover study (`handover --shard i/n`): each
//! arm's shard folders merge as analyze's do, then the curve is drawn anew
//! over all the queries (a shard's handover.json covers only its own).

use std::path::{Path, PathBuf};

use aligntds_formats::handover::{HandoverFile, HANDOVER_FILE};

use super::arms::curve;
use super::policy::Policy;
use crate::settings::{Field, SettingError};
use crate::study::StudyError;

/// Whether `dir` is a finished handover study (or a shard of one).
pub fn is_handover(dir: &Path) -> bool {
    dir.join(HANDOVER_FILE).is_file()
}

/// Merges the shard folders `inputs` of one handover study into `out`:
/// `out/arms/FOLDER` per arm, then `out/handover.json`.
pub fn merge(
    inputs: &[PathBuf],
    out: &Path,
    curve_positions: usize,
) -> Result<HandoverFile, StudyError> {
    let refuse =
        |message: String| -> StudyError { SettingError::new(Field::MergeInputs, message).into() };
    let mut arms: Option<(Vec<String>, &PathBuf)> = None;
    for dir in inputs {
        if !is_handover(dir) {
            return Err(refuse(format!(
                "{} is not a finished `aligntds handover` shard (it has no {HANDOVER_FILE}); merge handover shards only with each other",
                dir.display()
            )));
        }
        let labels: Vec<String> = HandoverFile::read(dir)?
            .arms
            .into_iter()
            .map(|a| a.policy)
            .collect();
        match &arms {
            Some((first, first_dir)) if *first != labels => {
                return Err(refuse(format!(
                    "{} has the arms {} but {} has {}; only the shards of one handover study merge",
                    first_dir.display(),
                    first.join(", "),
                    dir.display(),
                    labels.join(", ")
                )))
            }
            Some(_) => {}
            None => arms = Some((labels, dir)),
        }
    }
    let Some((labels, _)) = arms else {
        return Err(refuse("no shards given".into()));
    };
    let mut policies = Vec::new();
    for label in &labels {
        match Policy::parse_arms(label).as_deref() {
            Ok([policy]) => policies.push(*policy),
            _ => {
                return Err(refuse(format!(
                    "{HANDOVER_FILE} names the arm `{label}`, which is not one policy; was it written by this version?"
                )))
            }
        }
    }
    for policy in &policies {
        let shards: Vec<PathBuf> = inputs
            .iter()
            .map(|dir| dir.join("arms").join(policy.folder()))
            .collect();
        crate::study::merge::merge(
            &shards,
            &out.join("arms").join(policy.folder()),
            curve_positions,
        )?;
    }
    let file = curve(out, &policies)?;
    file.write(out)?;
    Ok(file)
}
