//! The paper's five figures and the aggregates table, from summary.json.

use std::fmt::Write;

use serde_json::Value;

use crate::html::escape;
use crate::svg::{self, Series};
use crate::Run;

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// The five figures, as (file stem, caption, svg).
pub fn figures(runs: &[Run]) -> Vec<(&'static str, &'static str, String)> {
    let ratios: Vec<(String, [f64; 3])> = runs
        .iter()
        .map(|r| {
            let a = &r.agg()["ratios"];
            (
                r.name.clone(),
                [
                    num(&a["unshifted"]),
                    num(&a["marginal"]),
                    num(&a["shifted"]),
                ],
            )
        })
        .collect();
    let mut out = vec![(
        "ratios",
        "Unshifted / marginal / shifted positions per run (base rank 1, 2-3, > 3).",
        svg::stacked_ratios(&ratios),
    )];
    for r in runs {
        let rows: Vec<(String, f64, String)> = r.agg()["top_shifted_tokens"]
            .as_array()
            .into_iter()
            .flatten()
            .take(20)
            .map(|t| {
                let text = format!("{:?}", t["token"].as_str().unwrap_or(""));
                (
                    text,
                    num(&t["shifted"]),
                    format!(
                        "{:.0} % of {}",
                        num(&t["shifted_ratio"]) * 100.0,
                        t["total"]
                    ),
                )
            })
            .collect();
        out.push(("top-shifted", "The most frequently shifted tokens (count; annotated with the share of that token's positions that are shifted).", svg::horizontal_bars(&format!("Most shifted tokens: {}", r.name), "shifted positions", &rows, svg::CATEGORY_COLORS[2])));
    }
    let curve = |key: &str, field: &str, decile: bool| -> Vec<Series> {
        runs.iter()
            .map(|r| Series {
                name: r.name.clone(),
                points: r.agg()[if decile {
                    "curve_by_decile"
                } else {
                    "curve_by_position"
                }]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    (
                        num(&p[if decile { "decile" } else { "position" }]),
                        num(&p[key][field]),
                        num(&p[key]["se"]),
                    )
                })
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
            &curve("kl_aligned_base", "mean", false),
        ),
    ));
    out.push((
        "rank-by-position",
        "Mean log2 of the base rank of the aligned token by position, with 95 % confidence bands.",
        svg::lines(
            "Base rank of the aligned token (mean log2)",
            "answer position",
            "mean log2 base rank",
            &curve("base_rank_log2", "mean", false),
        ),
    ));
    out.push((
        "prob-by-position",
        "Mean base probability of the aligned token by position, with 95 % confidence bands.",
        svg::lines(
            "Base probability of the aligned token",
            "answer position",
            "mean base probability",
            &curve("base_prob", "mean", false),
        ),
    ));
    out.push((
        "shifted-by-decile",
        "Shifted ratio by relative position in the answer (deciles), with 95 % confidence bands.",
        svg::lines(
            "Shifted ratio by relative position",
            "decile of the answer (0 = first tenth)",
            "shifted ratio",
            &curve("shifted_ratio", "mean", true),
        ),
    ));
    let bins: Vec<String> = runs
        .first()
        .and_then(|r| r.agg()["base_rank_histogram"].as_array())
        .into_iter()
        .flatten()
        .map(|b| b["bin"].as_str().unwrap_or("").to_string())
        .collect();
    let hist: Vec<(String, Vec<f64>)> = runs
        .iter()
        .map(|r| {
            let total = num(&r.agg()["positions"]).max(1.0);
            (
                r.name.clone(),
                r.agg()["base_rank_histogram"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|b| num(&b["count"]) / total * 100.0)
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
            runs.iter()
                .map(|r| r.agg()["examples"].to_string())
                .collect(),
        ),
        (
            "positions".into(),
            runs.iter()
                .map(|r| r.agg()["positions"].to_string())
                .collect(),
        ),
        (
            "unshifted".into(),
            runs.iter()
                .map(|r| {
                    format!(
                        "{:.1} % ({})",
                        num(&r.agg()["ratios"]["unshifted"]) * 100.0,
                        r.agg()["counts"]["unshifted"]
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
                        num(&r.agg()["ratios"]["marginal"]) * 100.0,
                        r.agg()["counts"]["marginal"]
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
                        num(&r.agg()["ratios"]["shifted"]) * 100.0,
                        r.agg()["counts"]["shifted"]
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
                        num(&r.agg()["kl_aligned_base"]["mean"]),
                        num(&r.agg()["kl_aligned_base"]["se"])
                    )
                })
                .collect(),
        ),
        (
            "KL median / 99 % / max".into(),
            runs.iter()
                .map(|r| {
                    let p = &r.agg()["kl_aligned_base"]["percentiles"];
                    format!(
                        "{:.4} / {:.4} / {:.4}",
                        num(&p["median"]),
                        num(&p["99"]),
                        num(&p["max"])
                    )
                })
                .collect(),
        ),
        (
            "KL(base || aligned)".into(),
            runs.iter()
                .map(|r| {
                    format!(
                        "{:.4} ± {:.4}",
                        num(&r.agg()["kl_base_aligned"]["mean"]),
                        num(&r.agg()["kl_base_aligned"]["se"])
                    )
                })
                .collect(),
        ),
        (
            "same top-1".into(),
            runs.iter()
                .map(|r| format!("{:.1} %", num(&r.agg()["same_top1_rate"]) * 100.0))
                .collect(),
        ),
        (
            "mean base prob. of o_t".into(),
            runs.iter()
                .map(|r| format!("{:.3}", num(&r.agg()["mean_base_prob"])))
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
    let m = &run.summary["manifest"];
    let s = &m["settings"];
    let model = |v: &Value| escape(v["reference"].as_str().unwrap_or("?"));
    format!(
        "<dl><dt>aligned</dt><dd>{} ({}; context <code>{}</code>)</dd><dt>base</dt><dd>{} ({}; context <code>{}</code>)</dd><dt>answers</dt><dd>{} ({} from the data set, {} generated)</dd><dt>data</dt><dd>{}</dd><dt>tool</dt><dd>{}</dd></dl>",
        model(&m["aligned"]),
        escape(m["aligned_weights"].as_str().unwrap_or("")),
        escape(s["aligned_context"]["kind"].as_str().unwrap_or("")),
        model(&m["base"]),
        escape(m["base_weights"].as_str().unwrap_or("")),
        escape(s["base_context"]["kind"].as_str().unwrap_or("")),
        escape(s["response"].as_str().unwrap_or("")),
        run.agg()["response_sources"]["dataset"],
        run.agg()["response_sources"]["generate"],
        escape(m["data"].as_str().unwrap_or("(single query)")),
        escape(m["tool"].as_str().unwrap_or("")),
    )
}
