//! index.html (runs, aggregates, figures, the example table) and report.md.

use std::collections::HashMap;
use std::fmt::Write;

use serde::Serialize;

use crate::example_page::page_path;
use crate::figures::{aggregate_rows, aggregates_markdown, AggregateRow, RunManifest};
use crate::run_data::ExampleInfo;
use crate::{templates, ReportError, Run};

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

const PER_RUN: [&str; 6] = [
    "tokens",
    "unshifted",
    "marginal",
    "shifted",
    "shifted %",
    "mean KL",
];

/// A number cell of the example table: `v` sorts, `text` shows.
#[derive(Serialize)]
struct Cell<'a> {
    v: String,
    text: String,
    href: Option<String>,
    run: &'a str,
}

#[derive(Serialize)]
struct ExampleRow<'a> {
    n: usize,
    /// What the filter box matches: id and query, lower-cased.
    search: String,
    href: String,
    id: &'a str,
    title: String,
    query: String,
    cells: Vec<Cell<'a>>,
}

fn example_rows<'a>(
    runs: &'a [Run],
    examples: &'a [Vec<ExampleInfo>],
    stats: &[Vec<Option<ExampleStats>>],
) -> Vec<ExampleRow<'a>> {
    let mut rows = Vec::new();
    for (n, (id, in_runs)) in table_ids(examples).into_iter().enumerate() {
        let Some((first_run, first_index)) = in_runs
            .iter()
            .enumerate()
            .find_map(|(k, i)| i.map(|i| (k, i)))
        else {
            continue;
        };
        let info = &examples[first_run][first_index];
        let mut cells = Vec::with_capacity(PER_RUN.len() * runs.len());
        for (k, index) in in_runs.iter().enumerate() {
            let run = runs[k].name.as_str();
            let (Some(i), Some(Some(st))) =
                (index, stats.get(k).and_then(|s| s.get(index.unwrap_or(0))))
            else {
                cells.extend((0..PER_RUN.len()).map(|_| Cell {
                    v: "-1".into(),
                    text: "–".into(),
                    href: None,
                    run,
                }));
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
            let plain = |v: String, text: String| Cell {
                v,
                text,
                href: None,
                run,
            };
            cells.push(Cell {
                v: st.tokens.to_string(),
                text: st.tokens.to_string(),
                href: Some(page_path(k, *i)),
                run,
            });
            for count in [u, m, s] {
                cells.push(plain(count.to_string(), count.to_string()));
            }
            cells.push(plain(format!("{shifted:.3}"), format!("{shifted:.1}")));
            cells.push(plain(format!("{kl:.6}"), format!("{kl:.4}")));
        }
        rows.push(ExampleRow {
            n: n + 1,
            search: format!("{} {}", id, info.query).to_lowercase(),
            href: page_path(first_run, first_index),
            id,
            title: truncate(&info.query, 300),
            query: truncate(&info.query, 90),
            cells,
        });
    }
    rows
}

#[derive(Serialize)]
struct Figure<'a> {
    svg: &'a str,
    caption: &'a str,
}

/// What templates/index.html shows.
#[derive(Serialize)]
struct IndexView<'a> {
    runs: Vec<RunManifest<'a>>,
    aggregates: Vec<AggregateRow>,
    figures: Vec<Figure<'a>>,
    per_run: [&'static str; 6],
    examples: Vec<ExampleRow<'a>>,
    tables: &'a [crate::tables::Table],
}

pub fn render_index(
    runs: &[Run],
    figs: &[(&'static str, &'static str, String)],
    tables: &[crate::tables::Table],
    examples: &[Vec<ExampleInfo>],
    stats: &[Vec<Option<ExampleStats>>],
) -> Result<String, ReportError> {
    let view = IndexView {
        runs: runs.iter().map(RunManifest::of).collect(),
        aggregates: aggregate_rows(runs),
        figures: figs
            .iter()
            .map(|(_, caption, svg)| Figure { svg, caption })
            .collect(),
        per_run: PER_RUN,
        examples: example_rows(runs, examples, stats),
        tables,
    };
    templates::render("index.html", &view)
}

pub fn render_markdown(
    runs: &[Run],
    figs: &[(&'static str, &'static str, String)],
    files: &[String],
    tables: &[crate::tables::Table],
) -> String {
    let mut md = format!(
        "# Token distribution shift\n\nRuns: {}\n\n## Aggregates\n\n{}\n",
        runs.iter()
            .map(|r| format!("`{}`", r.name))
            .collect::<Vec<_>>()
            .join(", "),
        aggregates_markdown(runs)
    );
    md.push_str(&crate::tables::markdown(tables));
    for ((_, caption, _), file) in figs.iter().zip(files) {
        let _ = write!(md, "\n![{caption}](figures/{file})\n");
    }
    md
}
