//! aligntds-report: turns analyze runs into a self-contained report (index.html
//! with inline SVG figures, report.md with the figures as SVG files beside it).
//! Reads only what a run directory holds.

pub mod html;
pub mod svg;

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::html::escape;
use crate::svg::Series;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> ReportError {
    ReportError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// One analyze run, as its summary.json describes it.
pub struct Run {
    pub name: String,
    pub dir: PathBuf,
    pub summary: Value,
}

impl Run {
    pub fn load(dir: &Path) -> Result<Self, ReportError> {
        let path = dir.join("summary.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            file_err(
                &path,
                format!("{e} (is this a finished `aligntds analyze` run?)"),
            )
        })?;
        let summary: Value = serde_json::from_str(&text).map_err(|e| file_err(&path, e))?;
        if summary["schema_version"] != 1 {
            return Err(file_err(
                &path,
                format!("unsupported schema_version {}", summary["schema_version"]),
            ));
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Self {
            name,
            dir: dir.to_path_buf(),
            summary,
        })
    }

    fn agg(&self) -> &Value {
        &self.summary["aggregates"]
    }
}

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

fn aggregates_table(runs: &[Run], markdown: bool) -> String {
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

fn manifest_html(run: &Run) -> String {
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

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}h1{font-size:1.5em}table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}thead th{background:#f4f4f4}tbody th{text-align:left;font-weight:500}figure{margin:1.5em 0}figcaption{color:#555;font-size:.9em}dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:600}code{background:#f4f4f4;padding:0 3px}";

/// Writes `index.html`, `report.md` and `figures/*.svg` into `out`.
pub fn build(runs: &[Run], out: &Path) -> Result<(), ReportError> {
    let figures_dir = out.join("figures");
    std::fs::create_dir_all(&figures_dir).map_err(|e| file_err(&figures_dir, e))?;
    let figs = figures(runs);
    let mut html = format!("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>aligntds report</title><style>{STYLE}</style></head><body><h1>Token distribution shift</h1>");
    for r in runs {
        let _ = write!(html, "<h2>{}</h2>{}", escape(&r.name), manifest_html(r));
    }
    let _ = write!(html, "<h2>Aggregates</h2>{}", aggregates_table(runs, false));
    let mut md = format!(
        "# Token distribution shift\n\nRuns: {}\n\n## Aggregates\n\n{}\n",
        runs.iter()
            .map(|r| format!("`{}`", r.name))
            .collect::<Vec<_>>()
            .join(", "),
        aggregates_table(runs, true)
    );
    let mut used = std::collections::HashMap::new();
    for (stem, caption, svg) in &figs {
        let n = used.entry(*stem).or_insert(0);
        *n += 1;
        let file = if *n == 1 {
            format!("{stem}.svg")
        } else {
            format!("{stem}-{n}.svg")
        };
        let path = figures_dir.join(&file);
        std::fs::write(&path, svg).map_err(|e| file_err(&path, e))?;
        let _ = write!(
            html,
            "<figure>{svg}<figcaption>{}</figcaption></figure>",
            escape(caption)
        );
        let _ = write!(md, "\n![{caption}](figures/{file})\n");
    }
    html.push_str("</body></html>\n");
    for (name, text) in [("index.html", html), ("report.md", md)] {
        let path = out.join(name);
        let tmp = out.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).map_err(|e| file_err(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| file_err(&path, e))?;
    }
    Ok(())
}
