//! The paper's five figures and the aggregates table, from summary.json.

use std::fmt::Write;

use aligntds_formats::summary::{Category, CurvePoint, MeanStats};

use crate::html::escape;
use crate::svg::{self, Series};
use crate::Run;

/// The five figures, as (file stem, caption, svg).
pub fn figures(runs: &[Run]) -> Vec<(&'static str, &'static str, String)> {
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
        svg::stacked_ratios(&ratios),
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
        out.push(("top-shifted", "The most frequently shifted tokens (count; annotated with the share of that token's positions that are shifted).", svg::horizontal_bars(&format!("Most shifted tokens: {}", r.name), "shifted positions", &rows, svg::CATEGORY_COLORS[2])));
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
        ),
    ));
    out.push((
        "rank-by-position",
        "Mean log2 of the base rank of the aligned token by position, with 95 % confidence bands.",
        svg::lines(
            "Base rank of the aligned token (mean log2)",
            "answer position",
            "mean log2 base rank",
            &curve(|p| &p.base_rank_log2, false),
        ),
    ));
    out.push((
        "prob-by-position",
        "Mean base probability of the aligned token by position, with 95 % confidence bands.",
        svg::lines(
            "Base probability of the aligned token",
            "answer position",
            "mean base probability",
            &curve(|p| &p.base_prob, false),
        ),
    ));
    out.push((
        "shifted-by-decile",
        "Shifted ratio by relative position in the answer (deciles), with 95 % confidence bands.",
        svg::lines(
            "Shifted ratio by relative position",
            "decile of the answer (0 = first tenth)",
            "shifted ratio",
            &curve(|p| &p.shifted_ratio, true),
        ),
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
        ),
    ));
    out
}

pub fn aggregates_table(runs: &[Run], markdown: bool) -> String {
    let rows: Vec<(String, Vec<String>)> = vec![
        (
            "examples".into(),
            runs.iter().map(|r| r.agg().examples.to_string()).collect(),
        ),
        (
            "positions".into(),
            runs.iter().map(|r| r.agg().positions.to_string()).collect(),
        ),
        (
            "unshifted".into(),
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
            "marginal".into(),
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
            "shifted".into(),
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
            "KL(aligned || base)".into(),
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
            "KL median / 99 % / max".into(),
            runs.iter()
                .map(|r| {
                    let p = &r.agg().kl_aligned_base.percentiles;
                    format!("{:.4} / {:.4} / {:.4}", p.median, p.p99, p.max)
                })
                .collect(),
        ),
        (
            "KL(base || aligned)".into(),
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
            "same top-1".into(),
            runs.iter()
                .map(|r| format!("{:.1} %", r.agg().same_top1_rate * 100.0))
                .collect(),
        ),
        (
            "mean base prob. of o_t".into(),
            runs.iter()
                .map(|r| format!("{:.3}", r.agg().mean_base_prob))
                .collect(),
        ),
    ];
    let mut out = String::new();
    if markdown {
        let _ = writeln!(
            out,
            "| | {} |",
            runs.iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(out, "| --- |{}", " --- |".repeat(runs.len()));
        for (k, vals) in rows {
            let _ = writeln!(
                out,
                "| {} | {} |",
                k.replace('|', "\\|"),
                vals.join(" | ").replace("||", "\\|\\|")
            );
        }
    } else {
        out.push_str("<table><thead><tr><th></th>");
        for r in runs {
            let _ = write!(out, "<th>{}</th>", escape(&r.name));
        }
        out.push_str("</tr></thead><tbody>");
        for (k, vals) in rows {
            let _ = write!(
                out,
                "<tr><th>{}</th>{}</tr>",
                escape(&k),
                vals.iter()
                    .map(|v| format!("<td>{}</td>", escape(v)))
                    .collect::<String>()
            );
        }
        out.push_str("</tbody></table>");
    }
    out
}

pub fn manifest_html(run: &Run) -> String {
    let m = &run.summary.manifest.identity;
    let s = &m.settings;
    let sources = &run.agg().response_sources;
    format!(
        "<dl><dt>aligned</dt><dd>{} ({}; context <code>{}</code>)</dd><dt>base</dt><dd>{} ({}; context <code>{}</code>)</dd><dt>answers</dt><dd>{} ({} from the data set, {} generated)</dd><dt>data</dt><dd>{}</dd><dt>tool</dt><dd>{}</dd></dl>",
        escape(&m.aligned.reference),
        escape(&m.aligned_weights),
        escape(s.aligned_context.kind.as_str()),
        escape(&m.base.reference),
        escape(&m.base_weights),
        escape(s.base_context.kind.as_str()),
        escape(match s.response {
            aligntds_formats::summary::ResponseSource::Auto => "auto",
            aligntds_formats::summary::ResponseSource::Dataset => "dataset",
            aligntds_formats::summary::ResponseSource::Generate => "generate",
        }),
        sources.dataset,
        sources.generate,
        escape(m.data.as_deref().unwrap_or("(single query)")),
        escape(&m.tool),
    )
}
