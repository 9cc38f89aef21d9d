//! aligntds-report: turns analyze runs into a self-contained static site
//! (index.html with inline SVG figures and an example table, one page per
//! example with coloured tokens and a details panel, report.md with the figures
//! as SVG files beside it). Reads only what a run directory holds; needs no
//! network and no server to view.

pub mod example_page;
pub mod figures;
pub mod handover;
pub mod index;
pub mod inline;
pub mod run_data;
pub mod svg;
pub mod tables;
mod templates;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aligntds_formats::summary::{Aggregates, Summary};

use crate::example_page::{data_path, page_path, render_data, render_page, PageContext};
pub use crate::figures::figures;
pub use crate::handover::{open, Curve};
use crate::index::ExampleStats;
use crate::run_data::{for_each_example_sides, read_examples, ExampleInfo};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error(transparent)]
    Format(#[from] aligntds_formats::FormatError),
    /// A page template failed to render: a bug in the report, not in the run.
    #[error("report template {0}")]
    Template(String),
}

pub(crate) fn file_err(path: &Path, e: impl std::fmt::Display) -> ReportError {
    ReportError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// One analyze run, as its summary.json describes it.
pub struct Run {
    pub name: String,
    pub dir: PathBuf,
    pub summary: Summary,
}

impl Run {
    pub fn load(dir: &Path) -> Result<Self, ReportError> {
        let summary = Summary::read(dir)?;
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

    pub(crate) fn agg(&self) -> &Aggregates {
        &self.summary.aggregates
    }
}

/// The report's stylesheet (category colours and cues), shared by the live page.
pub const STYLE: &str = include_str!("../assets/report.css");
const SCRIPT: &str = include_str!("../assets/report.js");
/// Helpers shared by the report's pages and the live page (a classic script).
pub const PAGE_SCRIPT: &str = include_str!("../assets/tds-page.js");

/// Writes `bytes` to `path` through a temporary name, so no reader sees half a file.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    Ok(aligntds_formats::write_atomic(path, bytes)?)
}

fn create_dir(path: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(path).map_err(|e| file_err(path, e))
}

/// What `build` wrote.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BuildStats {
    /// Each page has its data script beside it.
    pub example_pages: usize,
    pub bytes: u64,
}

/// The file that marks a folder as an aligntds report (so it may be replaced).
const MARKER: &str = ".aligntds-report";

/// Builds the site for the run and handover folders `dirs` (see [`open`])
/// into `out`: what `aligntds report DIR... --out OUT` does.
pub fn build_from(dirs: &[PathBuf], out: &Path) -> Result<BuildStats, ReportError> {
    let (runs, curves) = open(dirs)?;
    build_with(&runs, &curves, out)
}

/// Builds the site for `runs` into `out`; see [`build_with`].
pub fn build(runs: &[Run], out: &Path) -> Result<BuildStats, ReportError> {
    build_with(runs, &[], out)
}

/// Builds the site for `runs` and the handover `curves` (whose arms are
/// among `runs`; [`open`] reads both from folders) into `out`: index.html, report.md,
/// figures/*.svg, assets/, r{run}/e{n}.html and data/r{run}/e{n}.js. The site
/// is built in a fresh folder beside `out` and replaces `out` only when
/// complete, so an earlier report's pages never mix with the new ones and a
/// failed build leaves `out` as it was. A non-empty `out` that is not an
/// earlier aligntds report is refused.
pub fn build_with(runs: &[Run], curves: &[Curve], out: &Path) -> Result<BuildStats, ReportError> {
    if out.is_file() {
        return Err(file_err(out, "is a file; give a folder for the report"));
    }
    let replaces = out.is_dir();
    if replaces {
        let empty = std::fs::read_dir(out)
            .map_err(|e| file_err(out, e))?
            .next()
            .is_none();
        // Reports written before the marker existed are recognised by their own files.
        let earlier = out.join(MARKER).is_file()
            || ["index.html", "report.md", "assets/report.js"]
                .iter()
                .all(|f| out.join(f).is_file());
        if !empty && !earlier {
            return Err(file_err(
                out,
                "is a non-empty folder that is not an aligntds report; choose a new or empty folder",
            ));
        }
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_dir(&parent)?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let staging = parent.join(format!(".{name}.building-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| file_err(&staging, e))?;
    }
    let built = build_into(runs, curves, &staging).and_then(|stats| {
        write_file(&staging.join(MARKER), b"aligntds report\n")?;
        Ok(stats)
    });
    let stats = match built {
        Ok(stats) => stats,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if replaces {
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        std::fs::rename(out, &old).map_err(|e| file_err(out, e))?;
        std::fs::rename(&staging, out).map_err(|e| file_err(out, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&staging, out).map_err(|e| file_err(out, e))?;
    }
    Ok(stats)
}

fn build_into(runs: &[Run], curves: &[Curve], out: &Path) -> Result<BuildStats, ReportError> {
    let mut stats = BuildStats::default();
    for dir in ["figures", "assets", "data"] {
        create_dir(&out.join(dir))?;
    }
    for (name, text) in [
        ("report.css", STYLE),
        ("tds-page.js", PAGE_SCRIPT),
        ("report.js", SCRIPT),
    ] {
        write_file(&out.join("assets").join(name), text.as_bytes())?;
    }
    let examples: Vec<Vec<ExampleInfo>> = runs
        .iter()
        .map(|r| read_examples(&r.dir))
        .collect::<Result<_, _>>()?;
    let positions: Vec<HashMap<&str, usize>> = examples
        .iter()
        .map(|list| {
            list.iter()
                .enumerate()
                .map(|(i, e)| (e.id.as_str(), i))
                .collect()
        })
        .collect();
    let run_names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
    let mut example_stats: Vec<Vec<Option<ExampleStats>>> = Vec::new();
    for (k, run) in runs.iter().enumerate() {
        create_dir(&out.join(format!("r{k}")))?;
        create_dir(&out.join(format!("data/r{k}")))?;
        let settings = &run.summary.manifest.identity.settings;
        let (aligned_kind, base_kind) = (
            settings.aligned_context.kind.as_str().to_string(),
            settings.base_context.kind.as_str().to_string(),
        );
        let side_kinds: Vec<String> = settings
            .compare
            .iter()
            .map(|c| c.context.kind.as_str().to_string())
            .collect();
        let mut seen: Vec<Option<ExampleStats>> = vec![None; examples[k].len()];
        let mut write_example =
            |index: usize, rows: &[run_data::TokenRow], compared: &[run_data::SideRows]| {
                let info = &examples[k][index];
                let ctx = PageContext {
                    run_names: &run_names,
                    run: k,
                    index,
                    total: examples[k].len(),
                    in_runs: positions
                        .iter()
                        .map(|p| p.get(info.id.as_str()).copied())
                        .collect(),
                    aligned_context_kind: &aligned_kind,
                    base_context_kind: &base_kind,
                    side_context_kinds: &side_kinds,
                    thresholds: settings.thresholds,
                    handover: settings.handover.as_deref(),
                };
                let page = render_page(&ctx, info, rows, compared)?;
                let data = render_data(rows, compared);
                write_file(&out.join(page_path(k, index)), page.as_bytes())?;
                write_file(&out.join(data_path(k, index)), data.as_bytes())?;
                stats.example_pages += 1;
                stats.bytes += (page.len() + data.len()) as u64;
                seen[index] = Some(ExampleStats {
                    tokens: rows.len(),
                    mean_kl: example_page::mean_kl(rows),
                });
                Ok::<(), ReportError>(())
            };
        let parquet = run.dir.join("positions.parquet");
        let mut written = vec![false; examples[k].len()];
        for_each_example_sides(&run.dir, |id, rows, compared| {
            let index = *positions[k].get(id).ok_or_else(|| {
                file_err(&parquet, format!("example `{id}` is not in examples.jsonl"))
            })?;
            written[index] = true;
            write_example(index, &rows, &compared)
        })?;
        // Examples without positions (empty answers) still get a page, so navigation never breaks.
        for (index, done) in written.iter().enumerate() {
            if !done {
                write_example(index, &[], &[])?;
            }
        }
        example_stats.push(seen);
    }
    let mut figs = handover::figures(curves)?;
    figs.extend(figures(runs)?);
    figs.extend(tables::figures(runs)?);
    let mut tables = handover::tables(curves);
    tables.extend(tables::side_tables(runs));
    tables.extend(tables::position_table(runs));
    tables.extend(tables::comparison_table(runs)?);
    let mut fig_files = Vec::new();
    let mut used = HashMap::new();
    for (stem, _, svg) in &figs {
        let n = used.entry(*stem).or_insert(0);
        *n += 1;
        let file = if *n == 1 {
            format!("{stem}.svg")
        } else {
            format!("{stem}-{n}.svg")
        };
        write_file(&out.join("figures").join(&file), svg.as_bytes())?;
        fig_files.push(file);
    }
    let html = index::render_index(runs, &figs, &tables, &examples, &example_stats)?;
    let md = index::render_markdown(runs, &figs, &fig_files, &tables);
    stats.bytes += (html.len() + md.len()) as u64;
    write_file(&out.join("report.md"), md.as_bytes())?;
    write_file(&out.join("index.html"), html.as_bytes())?;
    Ok(stats)
}
