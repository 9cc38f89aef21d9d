//! The tables of a run with several reference sides (each side's categories
//! with intervals, the stage view), where in the answer alignment acts (the
//! first tokens against the rest), the paired comparison of several runs of
//! the same queries, and the figures of the base-rank CDF and the position
//! split. Every number is formatted here; the templates only lay them out.

use std::fmt::Write;

use aligntds_formats::sides::Estimate;
use aligntds_stats::format::{percent, percent_with_interval};
use serde::Serialize;

use crate::svg::{self, Series};
use crate::{ReportError, Run};

/// A titled table of text cells (escaped by the template).
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub id: String,
    pub title: String,
    pub caption: String,
    pub head: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

fn pct(x: f64) -> String {
    percent(x).unwrap_or_else(|| "–".into())
}

fn with_interval(e: &Estimate) -> String {
    percent_with_interval(e).unwrap_or_else(|| "–".into())
}

/// Each multi-side run's sides table and stage view.
pub fn side_tables(runs: &[Run]) -> Vec<Table> {
    let mut out = Vec::new();
    for (k, run) in runs.iter().enumerate() {
        let s = &run.summary;
        if s.sides.is_empty() {
            continue;
        }
        let rows = s
            .sides
            .iter()
            .map(|side| {
                let a = &side.aggregates;
                let interval = |f: fn(
                    &aligntds_formats::summary::Intervals,
                ) -> &aligntds_formats::summary::Bounds,
                                value: f64| {
                    a.intervals.as_ref().map_or_else(
                        || pct(value),
                        |i| {
                            let b = f(i);
                            with_interval(&Estimate {
                                value,
                                low: b.low,
                                high: b.high,
                            })
                        },
                    )
                };
                vec![
                    side.name.clone(),
                    format!("{} ({})", side.model, side.context.kind.as_str()),
                    interval(|i| &i.unshifted, a.ratios.unshifted),
                    interval(|i| &i.marginal, a.ratios.marginal),
                    interval(|i| &i.shifted, a.ratios.shifted),
                    format!("{:.4}", a.kl_aligned_base.mean),
                ]
            })
            .collect();
        out.push(Table {
            id: format!("sides-r{k}"),
            title: format!("{}: reference sides", run.name),
            caption: "Every reference side scores the same answer; categories by that side's rank of the aligned token, with 95 % bootstrap intervals over examples.".into(),
            head: ["side", "model (context)", "unshifted", "marginal", "shifted", "mean KL(aligned || side)"]
                .map(String::from)
                .to_vec(),
            rows,
        });
        if let Some(stages) = &s.stages {
            let mut head = vec!["stage".to_string()];
            let mut columns: Vec<Vec<String>> = Vec::new();
            for bar in &stages.by_bar {
                let what = if bar.max_rank == 1 {
                    "top-1".to_string()
                } else {
                    format!("rank <= {}", bar.max_rank)
                };
                head.push(format!("settles ({what})"));
                head.push(format!("its tokens ({what})"));
                columns.push(
                    bar.stages
                        .iter()
                        .map(|st| {
                            with_interval(&Estimate {
                                value: st.share,
                                ..st.interval
                            })
                        })
                        .collect(),
                );
                columns.push(
                    bar.stages
                        .iter()
                        .map(|st| {
                            st.top_tokens
                                .iter()
                                .take(8)
                                .map(|t| format!("{:?} {}", t.token, t.count))
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .collect(),
                );
            }
            let names: Vec<String> = stages.by_bar.first().map_or_else(Vec::new, |b| {
                b.stages.iter().map(|st| st.stage.clone()).collect()
            });
            let rows = names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    std::iter::once(n.clone())
                        .chain(
                            columns
                                .iter()
                                .map(|c| c.get(i).cloned().unwrap_or_default()),
                        )
                        .collect()
                })
                .collect();
            out.push(Table {
                id: format!("stages-r{k}"),
                title: format!("{}: stage view", run.name),
                caption: format!(
                    "Per answer position, the first stage in the order {} whose rank of the aligned token is within the bar; `unsettled`: not even the aligned side's.",
                    stages.order.join(" → ")
                ),
                head,
                rows,
            });
        }
    }
    out
}

/// The shifted share of the first 1, 5, 10 and 20 answer tokens against the
/// rest, per run (the base side), where the runs have it.
pub fn position_table(runs: &[Run]) -> Option<Table> {
    let splits = runs.iter().find(|r| !r.agg().position_splits.is_empty())?;
    let mut head = vec!["shifted".to_string()];
    head.extend(runs.iter().map(|r| r.name.clone()));
    let rows = splits
        .agg()
        .position_splits
        .iter()
        .flat_map(|s| {
            let n = s.first;
            let cell = |head: bool| -> Vec<String> {
                runs.iter()
                    .map(|r| {
                        r.agg()
                            .position_splits
                            .iter()
                            .find(|x| x.first == n)
                            .map_or("–".into(), |x| {
                                with_interval(if head {
                                    &x.head.shifted
                                } else {
                                    &x.rest.shifted
                                })
                            })
                    })
                    .collect()
            };
            [
                std::iter::once(format!("first {n}"))
                    .chain(cell(true))
                    .collect(),
                std::iter::once(format!("after {n}"))
                    .chain(cell(false))
                    .collect(),
            ]
        })
        .collect();
    Some(Table {
        id: "positions".into(),
        title: "Where in the answer".into(),
        caption: "Shifted share of the first answer tokens against the rest, with 95 % bootstrap intervals over examples (shallow alignment sits in the first few tokens).".into(),
        head,
        rows,
    })
}

/// Each later run against the first on the queries both hold: paired
/// differences with intervals and permutation p-values.
pub fn comparison_table(runs: &[Run]) -> Result<Option<Table>, ReportError> {
    use aligntds_stats::compare::{compare, CompareError, Operand};
    let Some((first, rest)) = runs.split_first() else {
        return Ok(None);
    };
    let mut rows = Vec::new();
    for other in rest {
        let c = match compare(&Operand::run(&other.dir), &Operand::run(&first.dir), true) {
            Ok(c) => c,
            // Runs of other queries have nothing to pair.
            Err(CompareError::Mismatch { .. }) => continue,
            Err(e) => return Err(ReportError::Template(e.to_string())),
        };
        for r in &c.rows {
            let kl = r.statistic.starts_with("kl_");
            let f = |x: f64| {
                if kl {
                    format!("{x:+.4}")
                } else {
                    format!("{:+.2}", x * 100.0)
                }
            };
            rows.push(vec![
                format!("{} − {}", other.name, first.name),
                r.statistic.to_string(),
                c.examples.to_string(),
                format!(
                    "{}{}",
                    f(r.difference.estimate),
                    if kl { "" } else { " pp" }
                ),
                format!("[{}, {}]", f(r.difference.low), f(r.difference.high)),
                format!("{:.4}", r.p_value),
            ]);
        }
    }
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(Table {
        id: "paired".into(),
        title: "Paired comparison".into(),
        caption: "Each run against the first on the examples both hold: the difference, its 95 % paired-bootstrap interval and a paired permutation p-value (as `aligntds compare`).".into(),
        head: ["runs", "statistic", "examples", "difference", "95 % interval", "p"]
            .map(String::from)
            .to_vec(),
        rows,
    }))
}

/// The base-rank CDF (every run, and every side of a multi-side run) and the
/// first-tokens split, as figures.
pub fn figures(runs: &[Run]) -> Result<Vec<(&'static str, &'static str, String)>, ReportError> {
    let mut out = Vec::new();
    let mut series = Vec::new();
    for r in runs {
        let sides: Vec<(String, &[aligntds_formats::sides::CdfPoint])> =
            if r.summary.sides.is_empty() {
                vec![(r.name.clone(), r.agg().rank_cdf.as_slice())]
            } else {
                r.summary
                    .sides
                    .iter()
                    .map(|s| {
                        (
                            format!("{} / {}", r.name, s.name),
                            s.aggregates.rank_cdf.as_slice(),
                        )
                    })
                    .collect()
            };
        for (name, cdf) in sides {
            if !cdf.is_empty() {
                series.push(Series {
                    name,
                    points: cdf
                        .iter()
                        .map(|p| ((p.rank as f64).log10(), p.share, 0.0))
                        .collect(),
                });
            }
        }
    }
    if !series.is_empty() {
        out.push((
            "rank-cdf",
            "Cumulative distribution of the base rank of the aligned token: the share of positions ranked at most 10^x by each reference side.",
            svg::lines(
                "Base rank CDF",
                "log10 base rank",
                "share of positions",
                &series,
            )?,
        ));
    }
    if let Some(t) = position_table(runs) {
        let bins: Vec<String> = t.rows.iter().map(|r| r[0].clone()).collect();
        let values: Vec<(String, Vec<f64>)> = runs
            .iter()
            .filter(|r| r.agg().position_splits.len() * 2 == bins.len())
            .map(|r| {
                let v = r
                    .agg()
                    .position_splits
                    .iter()
                    .flat_map(|s| [s.head.shifted.value, s.rest.shifted.value])
                    .map(|x| if x.is_finite() { x * 100.0 } else { 0.0 })
                    .collect();
                (r.name.clone(), v)
            })
            .collect();
        out.push((
            "shifted-by-head",
            "Shifted share (%) of the first 1, 5, 10 and 20 answer tokens and of the tokens after them.",
            svg::grouped_bars("Shifted in the first tokens vs after", "% shifted", &bins, &values)?,
        ));
    }
    Ok(out)
}

/// The tables in Markdown, for report.md.
pub fn markdown(tables: &[Table]) -> String {
    let mut md = String::new();
    for t in tables {
        let head: Vec<String> = t.head.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = write!(
            md,
            "\n## {}\n\n{}\n\n| {} |\n|{}\n",
            t.title,
            t.caption,
            head.join(" | "),
            "---|".repeat(t.head.len())
        );
        for row in &t.rows {
            let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
            let _ = writeln!(md, "| {} |", cells.join(" | "));
        }
    }
    md
}
