//! The paper's five figures and the aggregates table, from summary.json.

use std::fmt::Write;

use aligntds_formats::summary::{Category, CurvePoint, MeanStats, ResponseSource};
use serde::Serialize;

use crate::svg::{self, Series};
use crate::{ReportError, Run};

/// The five figures, as (file stem, caption, svg).
pub fn figures(runs: &[Run]) -> Result<Vec<(&'static str, &'static str, String)>, ReportError> {
    let ratios: Vec<(String, [f64; 3])> = runs
        .iter()
        .map(|r| {
            let a = &r.agg().ratios;
            (r.name.clone(), Category::ALL.map(|c| a.get(c)))
        })
        .collect();
    let mut out = vec![(
        "ratios",
        "Unshifted / marginal / shifted positions per run (base rank 1, 2-3, > 3).",
        svg::stacked_ratios(&ratios)?,
    )];
    for r in runs {
        let rows: Vec<(String, f64, String)> = r
            .agg()
            .top_shifted_tokens
            .iter()
            .take(20)
            .map(|t| {
                (
                    format!("{:?}", t.token),
                    t.shifted as f64,
                    format!("{:.0} % of {}", t.shifted_ratio * 100.0, t.total),
                )
            })
            .collect();
        out.push(("top-shifted", "The most frequently shifted tokens (count; annotated with the share of that token's positions that are shifted).", svg::horizontal_bars(&format!("Most shifted tokens: {}", r.name), "shifted positions", &rows, svg::CATEGORY_COLORS[2])?));
    }
    let curve = |stat: fn(&CurvePoint) -> &MeanStats, decile: bool| -> Vec<Series> {
        runs.iter()
            .map(|r| Series {
                name: r.name.clone(),
                points: if decile {
                    &r.agg().curve_by_decile
                } else {
                    &r.agg().curve_by_position
                }
                .iter()
                .map(|p| (p.at() as f64, stat(p).mean, stat(p).se))
                .collect(),
            })
            .collect()
    };
    out.push((
        "kl-by-position",
        "Mean KL(aligned || base) by answer position, with 95 % confidence bands.",
        svg::lines(
            "KL(aligned || base) along the answer",
            "answer position",
            "mean KL (nats)",
            &curve(|p| &p.kl_aligned_base, false),
        )?,
    ));
    out.push((
        "rank-by-position",
        "Mean log2 of the base rank of the aligned token by position, with 95 % confidence bands.",
        svg::lines(
            "Base rank of the aligned token (mean log2)",
            "answer position",
            "mean log2 base rank",
            &curve(|p| &p.base_rank_log2, false),
        )?,
    ));
    out.push((
        "prob-by-position",
        "Mean base probability of the aligned token by position, with 95 % confidence bands.",
        svg::lines(
            "Base probability of the aligned token",
            "answer position",
            "mean base probability",
            &curve(|p| &p.base_prob, false),
        )?,
    ));
    out.push((
        "shifted-by-decile",
        "Shifted ratio by relative position in the answer (deciles), with 95 % confidence bands.",
        svg::lines(
            "Shifted ratio by relative position",
            "decile of the answer (0 = first tenth)",
            "shifted ratio",
            &curve(|p| &p.shifted_ratio, true),
        )?,
    ));
    let bins: Vec<String> = runs
        .first()
        .map(|r| {
            r.agg()
                .base_rank_histogram
                .iter()
                .map(|b| b.bin.clone())
                .collect()
        })
        .unwrap_or_default();
    let hist: Vec<(String, Vec<f64>)> = runs
        .iter()
        .map(|r| {
            let total = (r.agg().positions as f64).max(1.0);
            (
                r.name.clone(),
                r.agg()
                    .base_rank_histogram
                    .iter()
                    .map(|b| b.count as f64 / total * 100.0)
                    .collect(),
            )
        })
        .collect();
    out.push((
        "rank-histogram",
        "Distribution of the base rank of the aligned token (% of positions).",
        svg::grouped_bars(
            "Base rank of the aligned token",
            "% of positions",
            &bins,
            &hist,
        )?,
    ));
    Ok(out)
}

/// One row of the aggregates table: a statistic and its value per run.
#[derive(Serialize)]
pub struct AggregateRow {
    pub label: &'static str,
    pub values: Vec<String>,
}

pub fn aggregate_rows(runs: &[Run]) -> Vec<AggregateRow> {
    let rows: Vec<(&'static str, Vec<String>)> = vec![
        (
            "examples",
            runs.iter().map(|r| r.agg().examples.to_string()).collect(),
        ),
        (
            "positions",
            runs.iter().map(|r| r.agg().positions.to_string()).collect(),
        ),
        (
            "unshifted",
            runs.iter()
                .map(|r| {
                    format!(
                        "{:.1} % ({})",
                        r.agg().ratios.unshifted * 100.0,
                        r.agg().counts.unshifted
                    )
                })
                .collect(),
        ),
        (
            "marginal",
            runs.iter()
                .map(|r| {
                    format!(
                        "{:.1} % ({})",
                        r.agg().ratios.marginal * 100.0,
                        r.agg().counts.marginal
                    )
                })
                .collect(),
        ),
        (
            "shifted",
            runs.iter()
                .map(|r| {
                    format!(
                        "{:.1} % ({})",
                        r.agg().ratios.shifted * 100.0,
                        r.agg().counts.shifted
                    )
                })
                .collect(),
        ),
        (
            "KL(aligned || base)",
            runs.iter()
                .map(|r| {
                    format!(
                        "{:.4} ± {:.4}",
                        r.agg().kl_aligned_base.mean,
                        r.agg().kl_aligned_base.se
                    )
                })
                .collect(),
        ),
        (
            "KL median / 99 % / max",
            runs.iter()
                .map(|r| {
                    let p = &r.agg().kl_aligned_base.percentiles;
                    format!("{:.4} / {:.4} / {:.4}", p.median, p.p99, p.max)
                })
                .collect(),
        ),
        (
            "KL(base || aligned)",
            runs.iter()
                .map(|r| {
                    format!(
                        "{:.4} ± {:.4}",
                        r.agg().kl_base_aligned.mean,
                        r.agg().kl_base_aligned.se
                    )
                })
                .collect(),
        ),
        (
            "same top-1",
            runs.iter()
                .map(|r| format!("{:.1} %", r.agg().same_top1_rate * 100.0))
                .collect(),
        ),
        (
            "mean base prob. of o_t",
            runs.iter()
                .map(|r| format!("{:.3}", r.agg().mean_base_prob))
                .collect(),
        ),
    ];
    rows.into_iter()
        .map(|(label, values)| AggregateRow { label, values })
        .collect()
}

pub fn aggregates_markdown(runs: &[Run]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| | {} |",
        runs.iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(out, "| --- |{}", " --- |".repeat(runs.len()));
    for row in aggregate_rows(runs) {
        let _ = writeln!(
            out,
            "| {} | {} |",
            row.label.replace('|', "\\|"),
            row.values.join(" | ").replace("||", "\\|\\|")
        );
    }
    out
}

/// A run's card on the index page: what was compared, on what.
#[derive(Serialize)]
pub struct RunManifest<'a> {
    name: &'a str,
    aligned: &'a str,
    aligned_weights: &'a str,
    aligned_context: &'static str,
    base: &'a str,
    base_weights: &'a str,
    base_context: &'static str,
    response: &'static str,
    /// The side that answered, and how its answers were drawn (empty: greedy).
    answered_by: &'a str,
    sampling: String,
    /// The handover policy of an arm of `aligntds handover`.
    handover: Option<&'a str>,
    from_dataset: usize,
    generated: usize,
    data: &'a str,
    tool: &'a str,
}

impl<'a> RunManifest<'a> {
    pub fn of(run: &'a Run) -> Self {
        let m = &run.summary.manifest.identity;
        let s = &m.settings;
        let sources = &run.agg().response_sources;
        Self {
            name: &run.name,
            aligned: &m.aligned.reference,
            aligned_weights: &m.aligned_weights,
            aligned_context: s.aligned_context.kind.as_str(),
            base: &m.base.reference,
            base_weights: &m.base_weights,
            base_context: s.base_context.kind.as_str(),
            response: match s.response {
                ResponseSource::Auto => "auto",
                ResponseSource::Dataset => "dataset",
                ResponseSource::Generate => "generate",
            },
            answered_by: s
                .answered_by
                .as_deref()
                .unwrap_or(aligntds_formats::sides::ALIGNED_SIDE),
            sampling: s
                .sampling
                .as_ref()
                .map(aligntds_stats::summary::sampling_words)
                .unwrap_or_default(),
            handover: s.handover.as_deref(),
            from_dataset: sources.dataset,
            generated: sources.generate,
            data: m.data.as_deref().unwrap_or("(single query)"),
            tool: &m.tool,
        }
    }
}
