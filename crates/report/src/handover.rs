//! Handover studies in the report: a handover folder (`aligntds handover`)
//! is read as its arms, each an ordinary run named `FOLDER · POLICY`, and its
//! curve (handover.json), drawn as the intervention budget: each arm's share
//! of aligned tokens against how close its answers come to the aligned
//! answer, one point per arm with 95 % intervals over queries.

use std::path::{Path, PathBuf};

use aligntds_formats::handover::{HandoverFile, HANDOVER_FILE};
use aligntds_formats::sides::Estimate;

use crate::svg::{self, Point};
use crate::tables::Table;
use crate::{file_err, ReportError, Run};

/// One handover study's curve; its arms are among the report's runs.
pub struct Curve {
    pub name: String,
    pub file: HandoverFile,
}

fn folder_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

/// What `aligntds report` was given, opened: an analyze run as it is; a
/// handover folder (it holds handover.json) as its arms in the curve's
/// order, named `FOLDER · POLICY`, and its curve.
pub fn open(dirs: &[PathBuf]) -> Result<(Vec<Run>, Vec<Curve>), ReportError> {
    let mut runs = Vec::new();
    let mut curves = Vec::new();
    for dir in dirs {
        if !dir.join(HANDOVER_FILE).is_file() {
            runs.push(Run::load(dir)?);
            continue;
        }
        let file = HandoverFile::read(dir)?;
        let name = folder_name(dir);
        for arm in &file.arms {
            let arm_dir = dir.join("arms").join(&arm.folder);
            if !arm_dir.is_dir() {
                return Err(file_err(
                    &arm_dir,
                    format!(
                        "is missing: {HANDOVER_FILE} names arm `{}`; rerun `aligntds handover` into {}",
                        arm.policy,
                        dir.display()
                    ),
                ));
            }
            let mut run = Run::load(&arm_dir)?;
            run.name = format!("{name} · {}", arm.policy);
            runs.push(run);
        }
        curves.push(Curve { name, file });
    }
    Ok((runs, curves))
}

type Figure = (&'static str, &'static str, String);

/// Two charts per curve: aligned share against agreement with the aligned
/// answer, and against the aligned model's mean log-probability.
pub fn figures(curves: &[Curve]) -> Result<Vec<Figure>, ReportError> {
    let mut out = Vec::new();
    for curve in curves {
        let points = |y: fn(&aligntds_formats::handover::Arm) -> Estimate| -> Vec<Point> {
            curve
                .file
                .arms
                .iter()
                .map(|arm| Point {
                    label: arm.policy.clone(),
                    x: percent(&arm.aligned_share),
                    y: y(arm),
                })
                .collect()
        };
        out.push((
            "handover-agreement",
            "Intervention budget: each arm's share of tokens chosen by the aligned model against its answers' agreement with the aligned model's own answer (1 − token edit distance over the longer length), with 95 % intervals over queries.",
            svg::scatter(
                &format!("Handover {}: how few aligned tokens give the aligned answer", curve.name),
                "aligned tokens (%)",
                (0.0, 100.0),
                "agreement with the aligned answer",
                &points(|a| a.agreement),
            )?,
        ));
        out.push((
            "handover-logprob",
            "Intervention budget: each arm's share of tokens chosen by the aligned model against the aligned model's mean log-probability of the arm's answers, with 95 % intervals over queries.",
            svg::scatter(
                &format!("Handover {}: how probable the aligned model finds each arm", curve.name),
                "aligned tokens (%)",
                (0.0, 100.0),
                "aligned mean log-probability",
                &points(|a| a.aligned_mean_logprob),
            )?,
        ));
    }
    Ok(out)
}

fn percent(e: &Estimate) -> Estimate {
    Estimate {
        value: e.value * 100.0,
        low: e.low * 100.0,
        high: e.high * 100.0,
    }
}

fn cell(e: &Estimate, digits: usize) -> String {
    if !e.value.is_finite() {
        return "–".into();
    }
    format!(
        "{:.d$} [{:.d$}, {:.d$}]",
        e.value,
        e.low,
        e.high,
        d = digits
    )
}

/// Each curve as a table: one row per arm.
pub fn tables(curves: &[Curve]) -> Vec<Table> {
    curves
        .iter()
        .enumerate()
        .map(|(k, curve)| Table {
            id: format!("handover-{k}"),
            title: format!("Handover {}", curve.name),
            caption: "Each arm's answers: the share of tokens the aligned model chose, how often the choosing side changed, agreement with the aligned model's own answer, both models' mean log-probability of the answer and its length; means with 95 % bootstrap intervals over queries.".into(),
            head: [
                "arm",
                "examples",
                "aligned tokens (%)",
                "handovers",
                "agreement",
                "aligned mean log-prob",
                "base mean log-prob",
                "length",
            ]
            .map(String::from)
            .to_vec(),
            rows: curve
                .file
                .arms
                .iter()
                .map(|a| {
                    vec![
                        a.policy.clone(),
                        a.examples.to_string(),
                        cell(&percent(&a.aligned_share), 1),
                        cell(&a.handovers, 1),
                        cell(&a.agreement, 3),
                        cell(&a.aligned_mean_logprob, 2),
                        cell(&a.base_mean_logprob, 2),
                        cell(&a.length, 1),
                    ]
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(value: f64) -> Estimate {
        Estimate {
            value,
            low: value - 1.0,
            high: value + 1.0,
        }
    }

    fn point(label: &str, x: f64, y: f64) -> Point {
        Point {
            label: label.into(),
            x: at(x),
            y: at(y),
        }
    }

    #[test]
    fn scatter_draws_a_point_per_arm_and_shares_labels_of_one_spot() {
        let svg = svg::scatter(
            "<t>",
            "aligned tokens (%)",
            (0.0, 100.0),
            "y",
            &[
                point("aligned", 100.0, 0.0),
                point("uncertain:<0.1>", 100.0, 0.0),
                point("base", 0.0, -5.0),
                point("lost", f64::NAN, 1.0),
            ],
        )
        .unwrap();
        // Three drawn points (NaN is left out), each with whiskers on both axes.
        assert_eq!(svg.matches("<circle ").count(), 3, "{svg}");
        assert!(
            svg.contains(">aligned, uncertain:&lt;0.1&gt;</text>"),
            "{svg}"
        );
        assert!(svg.contains(">base</text>") && !svg.contains(">lost<"));
        assert!(svg.contains("<title>base: aligned tokens (%) 0.000 [-1.000, 1.000]; y -5.000 [-6.000, -4.000]</title>"), "{svg}");
        assert!(!svg.contains("<t>"));
    }
}
