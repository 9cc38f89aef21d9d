//! index.html (runs, aggregates, figures, the example table) and report.md.

use std::collections::HashMap;
use std::fmt::Write;

use crate::example_page::page_path;
use crate::figures::{aggregates_table, manifest_html};
use crate::html::escape;
use crate::run_data::ExampleInfo;
use crate::Run;

/// Per-example numbers that only positions.parquet holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExampleStats {
    pub tokens: usize,
    pub mean_kl: f64,
}

fn truncate(text: &str, chars: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(chars) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

/// Example ids in table order: the first run's order, then ids only later runs have.
fn table_ids(examples: &[Vec<ExampleInfo>]) -> Vec<(&str, Vec<Option<usize>>)> {
    let mut order: Vec<&str> = Vec::new();
    let mut rows: HashMap<&str, Vec<Option<usize>>> = HashMap::new();
    for (k, list) in examples.iter().enumerate() {
        for (i, e) in list.iter().enumerate() {
            let row = rows.entry(e.id.as_str()).or_insert_with(|| {
                order.push(e.id.as_str());
                vec![None; examples.len()]
            });
            row[k] = Some(i);
        }
    }
    order
        .into_iter()
        .map(|id| {
            let r = rows.remove(id).unwrap_or_default();
            (id, r)
        })
        .collect()
}

fn example_table(
    runs: &[Run],
    examples: &[Vec<ExampleInfo>],
    stats: &[Vec<Option<ExampleStats>>],
) -> String {
    const PER_RUN: [&str; 6] = [
        "tokens",
        "unshifted",
        "marginal",
        "shifted",
        "shifted %",
        "mean KL",
    ];
    let mut h = String::from("<section id=\"examples\"><h2>Examples</h2><p class=\"controls\"><input id=\"filter\" type=\"search\" placeholder=\"Filter by id or query\" aria-label=\"filter examples\"> <span id=\"shown\"></span> <small>Click a column to sort; click an id to open the example.</small></p><div class=\"scroll\"><table id=\"example-table\"><thead>");
    if runs.len() > 1 {
        h.push_str("<tr><th colspan=\"3\"></th>");
        for r in runs {
            let _ = write!(
                h,
                "<th colspan=\"{}\" class=\"group\">{}</th>",
                PER_RUN.len(),
                escape(&r.name)
            );
        }
        h.push_str("</tr>");
    }
    let mut col = 0;
    let mut th = |h: &mut String, label: &str, kind: &str| {
        let _ = write!(
            h,
            "<th data-col=\"{col}\" data-type=\"{kind}\" aria-sort=\"none\">{}</th>",
            escape(label)
        );
        col += 1;
    };
    h.push_str("<tr>");
    th(&mut h, "#", "num");
    th(&mut h, "id", "text");
    th(&mut h, "query", "text");
    for _ in runs {
        for label in PER_RUN {
            th(&mut h, label, "num");
        }
    }
    h.push_str("</tr></thead><tbody>");
    for (n, (id, in_runs)) in table_ids(examples).into_iter().enumerate() {
        let Some((first_run, first_index)) = in_runs
            .iter()
            .enumerate()
            .find_map(|(k, i)| i.map(|i| (k, i)))
        else {
            continue;
        };
        let info = &examples[first_run][first_index];
        let _ = write!(
            h,
            "<tr data-text=\"{}\"><td data-v=\"{}\">{}</td><td class=\"id\"><a href=\"{}\">{}</a></td><td class=\"q\" title=\"{}\">{}</td>",
            escape(&format!("{} {}", id, info.query).to_lowercase()),
            n + 1,
            n + 1,
            page_path(first_run, first_index),
            escape(id),
            escape(&truncate(&info.query, 300)),
            escape(&truncate(&info.query, 90)),
        );
        for (k, index) in in_runs.iter().enumerate() {
            let (Some(i), Some(Some(st))) =
                (index, stats.get(k).and_then(|s| s.get(index.unwrap_or(0))))
            else {
                h.push_str(&"<td data-v=\"-1\">–</td>".repeat(PER_RUN.len()));
                continue;
            };
            let [u, m, s] = examples[k][*i].counts;
            let shifted = if st.tokens > 0 {
                s as f64 / st.tokens as f64 * 100.0
            } else {
                0.0
            };
            let kl = if st.mean_kl.is_finite() {
                st.mean_kl
            } else {
                0.0
            };
            let _ = write!(
                h,
                "<td data-v=\"{t}\"><a href=\"{}\" title=\"open in {}\">{t}</a></td><td data-v=\"{u}\">{u}</td><td data-v=\"{m}\">{m}</td><td data-v=\"{s}\">{s}</td><td data-v=\"{shifted:.3}\">{shifted:.1}</td><td data-v=\"{kl:.6}\">{kl:.4}</td>",
                page_path(k, *i),
                escape(&runs[k].name),
                t = st.tokens,
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table></div></section>");
    h
}

pub fn render_index(
    runs: &[Run],
    figs: &[(&'static str, &'static str, String)],
    examples: &[Vec<ExampleInfo>],
    stats: &[Vec<Option<ExampleStats>>],
) -> String {
    let mut h = String::from("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>aligntds report</title><link rel=\"stylesheet\" href=\"assets/report.css\"></head><body class=\"index\"><h1>Token distribution shift</h1><nav class=\"toc\"><a href=\"#runs\">runs</a> · <a href=\"#aggregates\">aggregates</a> · <a href=\"#figures\">figures</a> · <a href=\"#examples\">examples</a></nav><section id=\"runs\" class=\"runs-grid\">");
    for r in runs {
        let _ = write!(
            h,
            "<div><h2>{}</h2>{}</div>",
            escape(&r.name),
            manifest_html(r)
        );
    }
    let _ = write!(
        h,
        "</section><section id=\"aggregates\"><h2>Aggregates</h2>{}</section><section id=\"figures\"><h2>Figures</h2>",
        aggregates_table(runs, false)
    );
    for (_, caption, svg) in figs {
        let _ = write!(
            h,
            "<figure>{svg}<figcaption>{}</figcaption></figure>",
            escape(caption)
        );
    }
    h.push_str("</section>");
    h.push_str(&example_table(runs, examples, stats));
    h.push_str("<script src=\"assets/report.js\"></script></body></html>\n");
    h
}

pub fn render_markdown(
    runs: &[Run],
    figs: &[(&'static str, &'static str, String)],
    files: &[String],
) -> String {
    let mut md = format!(
        "# Token distribution shift\n\nRuns: {}\n\n## Aggregates\n\n{}\n",
        runs.iter()
            .map(|r| format!("`{}`", r.name))
            .collect::<Vec<_>>()
            .join(", "),
        aggregates_table(runs, true)
    );
    for ((_, caption, _), file) in figs.iter().zip(files) {
        let _ = write!(md, "\n![{caption}](figures/{file})\n");
    }
    md
}
