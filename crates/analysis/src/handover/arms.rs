//! A handover study: one ordinary run folder per arm (`OUT/arms/FOLDER`,
//! each resumable and read by summarize, report and compare like any run),
//! then `OUT/handover.json`, the curve over the arms.

use std::collections::HashMap;
use std::path::Path;

use aligntds_engine::Cancel;
use aligntds_formats::handover::{Arm, ArmExample, HandoverFile};
use aligntds_formats::positions::PositionRecord;
use aligntds_formats::sides::Estimate;
use aligntds_stats::resampling::{bootstrap, by_query, Cluster, RESAMPLES, SEED};

use super::policy::Policy;
use crate::settings::{Field, SettingError, StudySettings};
use crate::study::{Progress, Study, StudyError};

/// The arms to run: `aligned` first (every arm is measured against its
/// answer), then the others as given, each once.
pub fn arms(policies: &[Policy]) -> Vec<Policy> {
    let mut out = vec![Policy::Aligned];
    for p in policies {
        if !out.contains(p) {
            out.push(*p);
        }
    }
    out
}

/// Runs every arm of `policies` (see [`arms`]) over `settings`' queries into
/// `settings.out/arms/`, then writes `handover.json`. `progress` hears
/// which arm starts and each arm's study progress.
pub fn run(
    settings: &StudySettings,
    policies: &[Policy],
    progress: &mut dyn FnMut(&Policy, Progress<'_>),
) -> Result<HandoverFile, StudyError> {
    run_with(settings, policies, &Cancel::default(), progress)
}

/// [`run`], stopped by `cancel` from any thread: the arm in flight returns
/// [`StudyError::Cancelled`] and every arm's folder resumes.
pub fn run_with(
    settings: &StudySettings,
    policies: &[Policy],
    cancel: &Cancel,
    progress: &mut dyn FnMut(&Policy, Progress<'_>),
) -> Result<HandoverFile, StudyError> {
    if policies.is_empty() {
        return Err(SettingError::new(
            Field::Handover,
            "names no policy; e.g. --policy base --policy first:5",
        )
        .into());
    }
    let arms = arms(policies);
    for arm in &arms {
        let mut s = settings.clone();
        s.handover = Some(*arm);
        s.out = settings.out.join("arms").join(arm.folder());
        let mut study = Study::prepare(s)?;
        study.cancel_with(cancel.clone());
        study.run(&mut |p| progress(arm, p))?;
    }
    let file = curve(&settings.out, &arms)?;
    file.write(&settings.out)?;
    Ok(file)
}

/// An arm's analyzed answer: id, query key, token ids, stop reason, rows.
type ArmAnswer = (String, String, Vec<u32>, String, Vec<PositionRecord>);

/// The curve from the arms' finished folders.
pub fn curve(out: &Path, arms: &[Policy]) -> Result<HandoverFile, StudyError> {
    let read = |arm: &Policy| -> Result<Vec<ArmAnswer>, StudyError> {
        let dir = out.join("arms").join(arm.folder());
        let lines = aligntds_formats::examples::read(&dir)?;
        let mut positions: HashMap<String, Vec<PositionRecord>> = HashMap::new();
        aligntds_formats::positions::for_each_example(&dir, |id, rows| {
            positions.insert(id.to_string(), rows);
            Ok(())
        })?;
        Ok(lines
            .into_iter()
            .filter(|l| l.skipped.is_none())
            .map(|l| {
                let rows = positions.remove(&l.id).unwrap_or_default();
                let query = l.query_key().to_string();
                (l.id, query, l.answer_ids, l.stop_reason, rows)
            })
            .collect())
    };
    let reference: HashMap<String, Vec<u32>> = read(&Policy::Aligned)?
        .into_iter()
        .map(|(id, _, ids, _, _)| (id, ids))
        .collect();
    let mut out_arms = Vec::new();
    for arm in arms {
        let mut per_example = Vec::new();
        let mut queries = Vec::new();
        for (id, query, ids, stop_reason, rows) in read(arm)? {
            let aligned_ids = reference.get(&id).map(Vec::as_slice).unwrap_or(&[]);
            per_example.push(figures(&id, &ids, aligned_ids, &rows, stop_reason));
            queries.push(query);
        }
        let estimate = |f: fn(&ArmExample) -> f64| -> Estimate {
            let clusters = by_query(
                queries
                    .iter()
                    .zip(&per_example)
                    .map(|(q, e)| (q.as_str(), Cluster::new(f(e), 1.0))),
                |t, m| {
                    t.numerator += m.numerator;
                    t.denominator += m.denominator;
                },
            );
            let i = bootstrap(&clusters, RESAMPLES, 0.95, SEED);
            Estimate {
                value: i.estimate,
                low: i.low,
                high: i.high,
            }
        };
        out_arms.push(Arm {
            policy: arm.label(),
            folder: arm.folder(),
            examples: per_example.len(),
            aligned_share: estimate(|e| e.aligned_share),
            handovers: estimate(|e| e.handovers as f64),
            agreement: estimate(|e| e.agreement),
            aligned_mean_logprob: estimate(|e| e.aligned_mean_logprob),
            base_mean_logprob: estimate(|e| e.base_mean_logprob),
            length: estimate(|e| e.length as f64),
            per_example,
        });
    }
    Ok(HandoverFile {
        schema_version: aligntds_formats::SCHEMA_VERSION,
        arms: out_arms,
    })
}

/// One example's figures: who chose, how it agrees with the aligned answer,
/// how probable it is under each side.
fn figures(
    id: &str,
    ids: &[u32],
    aligned_ids: &[u32],
    rows: &[PositionRecord],
    stop_reason: String,
) -> ArmExample {
    let chosen: Vec<bool> = rows
        .iter()
        .map(|p| p.chosen_by.as_deref() == Some("aligned"))
        .collect();
    let n = rows.len().max(1) as f64;
    let longer = ids.len().max(aligned_ids.len());
    ArmExample {
        id: id.to_string(),
        aligned_share: chosen.iter().filter(|&&a| a).count() as f64 / n,
        handovers: chosen.windows(2).filter(|w| w[0] != w[1]).count() as u32,
        agreement: if longer == 0 {
            1.0
        } else {
            1.0 - edit_distance(ids, aligned_ids) as f64 / longer as f64
        },
        first_difference: (ids != aligned_ids).then(|| {
            ids.iter()
                .zip(aligned_ids)
                .take_while(|(a, b)| a == b)
                .count() as u32
        }),
        aligned_mean_logprob: rows.iter().map(|p| p.aligned_logprob as f64).sum::<f64>() / n,
        base_mean_logprob: rows.iter().map(|p| p.base_logprob as f64).sum::<f64>() / n,
        length: ids.len() as u32,
        stop_reason,
    }
}

/// Levenshtein distance between two token sequences.
pub fn edit_distance(a: &[u32], b: &[u32]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(x != y));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance(&[], &[]), 0);
        assert_eq!(edit_distance(&[1, 2, 3], &[1, 2, 3]), 0);
        assert_eq!(edit_distance(&[1, 2, 3], &[1, 3]), 1);
        assert_eq!(edit_distance(&[1, 2, 3], &[1, 9, 3, 4]), 2);
        assert_eq!(edit_distance(&[5, 6], &[]), 2);
        // kitten -> sitting: 3.
        assert_eq!(
            edit_distance(&[1, 2, 3, 3, 4, 5], &[6, 2, 3, 3, 2, 5, 7]),
            3
        );
    }

    #[test]
    fn the_aligned_arm_runs_first_and_each_arm_once() {
        let got = arms(&[
            Policy::Base,
            Policy::Aligned,
            Policy::First(3),
            Policy::Base,
        ]);
        assert_eq!(got, [Policy::Aligned, Policy::Base, Policy::First(3)]);
    }
}
