//! `aligntds analyze` and `aligntds summarize`.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use aligntds_analysis::context::{Context, ContextKind};
use aligntds_analysis::dataset::{self, Record};
use aligntds_analysis::metrics::Thresholds;
use aligntds_analysis::output;
use aligntds_analysis::run::{analyze_example, check_compatible, ResponseSource, RunSettings};
use aligntds_analysis::summary;
use aligntds_engine::LanguageModel;
use anyhow::{bail, Context as _, Result};
use serde_json::json;

use aligntds_analysis::journal::{self, Journal};
use aligntds_analysis::run::ExampleResult;

use crate::args::{AnalyzeArgs, MergeArgs, SummarizeArgs};

/// Parses `--shard i/n`.
fn shard(text: Option<&str>) -> Result<Option<(usize, usize)>> {
    let Some(text) = text else { return Ok(None) };
    let parsed = text.split_once('/').and_then(|(i, n)| {
        Some((
            i.trim().parse::<usize>().ok()?,
            n.trim().parse::<usize>().ok()?,
        ))
    });
    match parsed {
        Some((i, n)) if n > 0 && i < n => Ok(Some((i, n))),
        _ => bail!("option `--shard`: `{text}` is not i/n with 0 <= i < n"),
    }
}

/// A model reference with the sha256 of its files (a Hub id is kept as given).
fn model_identity(reference: &str) -> Result<serde_json::Value> {
    let path = Path::new(reference);
    let mut files = Vec::new();
    if path.is_file() {
        files.push(path.to_path_buf());
    } else if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        files = entries;
    }
    let mut listed = Vec::new();
    for f in files {
        let bytes = std::fs::metadata(&f)?.len();
        listed.push(json!({"file": f.file_name().map(|n| n.to_string_lossy().into_owned()), "bytes": bytes, "sha256": journal::sha256_file(&f)?}));
    }
    Ok(json!({"reference": reference, "files": listed}))
}

/// Writes positions.parquet, examples.jsonl and summary.json from finished examples.
fn context(
    kind: &str,
    option: &str,
    system: &Option<String>,
    prefix: &Option<std::path::PathBuf>,
    template: &Option<String>,
) -> Result<Context> {
    let kind = ContextKind::parse(kind)
        .with_context(|| format!("option `{option}`: unknown context `{kind}`; use chat, input, template, plain, urial or custom"))?;
    let prefix = match prefix {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read prefix file {}", path.display()))?,
        ),
        None => None,
    };
    if kind == ContextKind::Custom && !template.as_deref().is_some_and(|t| t.contains("{query}")) {
        bail!(
            "option `{option}` custom needs --{}-template with {{query}} in it",
            option
                .trim_start_matches("--")
                .split('-')
                .next()
                .unwrap_or("aligned")
        );
    }
    Ok(Context {
        kind,
        system: system.clone(),
        prefix,
        template: template.clone(),
    })
}

fn records(args: &AnalyzeArgs) -> Result<Vec<Record>> {
    match (&args.data, &args.query) {
        (Some(path), _) => Ok(dataset::load(path, args.limit)?),
        (None, Some(q)) => Ok(vec![Record {
            id: "0".into(),
            query: q.clone(),
            input: None,
            output: None,
            output_ids: None,
        }]),
        (None, None) => bail!("give --data FILE or --query TEXT"),
    }
}

pub fn analyze(args: AnalyzeArgs) -> Result<()> {
    let started = Instant::now();
    let records = records(&args)?;
    let aligned_context = context(
        &args.aligned_context,
        "--aligned-context",
        &args.system,
        &args.aligned_prefix,
        &args.aligned_template,
    )?;
    let base_context = context(
        &args.base_context,
        "--base-context",
        &args.system,
        &args.base_prefix,
        &args.base_template,
    )?;
    let response = ResponseSource::parse(&args.response).with_context(|| {
        format!(
            "option `--response`: unknown `{}`; use auto, dataset or generate",
            args.response
        )
    })?;
    if args.unshifted_max == 0 || args.marginal_max < args.unshifted_max {
        bail!("options `--unshifted-max` and `--marginal-max`: need 1 <= unshifted-max <= marginal-max");
    }
    let shard = shard(args.shard.as_deref())?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    let same = args.aligned == args.base && args.aligned_chat_template == args.base_chat_template;
    let options = crate::commands::runtime_options(
        &args.runtime,
        args.aligned_chat_template.clone(),
        if same { 1 } else { 2 },
    )?;
    let load_started = Instant::now();
    let aligned = LanguageModel::load(&args.aligned, &options)
        .with_context(|| format!("cannot load the aligned model `{}`", args.aligned))?;
    let base_owned;
    let base: &LanguageModel = if same {
        &aligned
    } else {
        let base_options = aligntds_engine::LoadOptions {
            chat_template: args.base_chat_template.clone(),
            ..options.clone()
        };
        base_owned = LanguageModel::load(&args.base, &base_options)
            .with_context(|| format!("cannot load the base model `{}`", args.base))?;
        &base_owned
    };
    let load_seconds = load_started.elapsed().as_secs_f64();
    check_compatible(&aligned, base)?;
    let settings = RunSettings {
        aligned_context,
        base_context,
        response,
        max_new_tokens: args.max_new_tokens,
        stops: args.stops.clone(),
        top_k: args.top_k,
        thresholds: Thresholds {
            unshifted_max: args.unshifted_max,
            marginal_max: args.marginal_max,
        },
    };

    // Everything that changes results, fingerprinted; the shard is checked separately so
    // that the shards of one analysis share a fingerprint and can be merged.
    let data_sha = match &args.data {
        Some(p) => Some(journal::sha256_file(p)?),
        None => None,
    };
    let template_text = |m: &LanguageModel| {
        m.chat_template
            .as_ref()
            .map(|t| json!({"name": t.name, "sha256": journal::fingerprint(&json!(t.source))}))
    };
    let identity = json!({
        "tool": format!("aligntds {}", env!("CARGO_PKG_VERSION")),
        "aligned": model_identity(&args.aligned)?,
        "base": model_identity(&args.base)?,
        "aligned_weights": aligned.weights_dtype,
        "base_weights": base.weights_dtype,
        "device": args.runtime.device,
        "aligned_chat_template": template_text(&aligned),
        "base_chat_template": template_text(base),
        "settings": settings,
        "data": args.data.as_ref().map(|p| p.display().to_string()),
        "data_sha256": data_sha,
        "query": args.query,
        "limit": args.limit,
    });
    let fingerprint = journal::fingerprint(&identity);
    let journal = Journal::open(
        &args.out,
        &fingerprint,
        &json!({"identity": identity, "shard": args.shard}),
        args.overwrite,
    )?;
    let selected: Vec<(usize, &Record)> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| shard.is_none_or(|(k, n)| i % n == k))
        .collect();
    let mut results: std::collections::BTreeMap<usize, ExampleResult> =
        journal.done()?.into_iter().collect();
    if let Some(stray) = results
        .keys()
        .find(|i| !selected.iter().any(|(j, _)| j == *i))
    {
        bail!("{} holds example {stray}, which is not in this run's shard; use another --out for each shard", args.out.display());
    }
    let resumed = results.len();
    if resumed > 0 && !args.quiet {
        eprintln!(
            "resuming: {resumed} of {} examples already done in {}",
            selected.len(),
            args.out.display()
        );
    }
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let run_started = Instant::now();
    let (mut tokens, mut finished) = (0usize, 0usize);
    let todo: Vec<&(usize, &Record)> = selected
        .iter()
        .filter(|(i, _)| !results.contains_key(i))
        .collect();
    for (index, record) in &todo {
        let result = analyze_example(&aligned, base, record, &settings)
            .with_context(|| format!("record {}", record.id))?;
        journal.record(*index, &result)?;
        tokens += result.positions.len();
        finished += 1;
        if progress {
            let secs = run_started.elapsed().as_secs_f64().max(1e-9);
            let eta = secs / finished as f64 * (todo.len() - finished) as f64;
            eprint!(
                "\r[{}/{}] {:.2} examples/s, {:.0} answer tokens/s, ETA {:.0} s   ",
                resumed + finished,
                selected.len(),
                finished as f64 / secs,
                tokens as f64 / secs,
                eta
            );
        }
        results.insert(*index, result);
    }
    if progress {
        eprintln!();
    }
    let run_seconds = run_started.elapsed().as_secs_f64();
    let results: Vec<ExampleResult> = results.into_values().collect();
    let mut manifest = identity;
    manifest["shard"] = json!(args.shard);
    manifest["fingerprint"] = json!(fingerprint);
    let sum = |f: &dyn Fn(&ExampleResult) -> f64| results.iter().map(f).sum::<f64>();
    let generated: usize = results
        .iter()
        .filter(|e| e.source == "generate")
        .map(|e| e.answer_ids.len())
        .sum();
    let scored: usize = results.iter().map(|e| e.answer_ids.len()).sum();
    let rate = |n: usize, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let (gen_s, a_s, b_s) = (
        sum(&|e| e.generation_seconds),
        sum(&|e| e.aligned_scoring_seconds),
        sum(&|e| e.base_scoring_seconds),
    );
    manifest["timings"] = json!({
        "load_seconds": load_seconds,
        "analysis_seconds_this_invocation": run_seconds,
        "total_seconds_this_invocation": started.elapsed().as_secs_f64(),
        "examples_resumed": resumed,
        "aligned": {"generation_seconds": gen_s, "generated_tokens": generated, "generation_tokens_per_second": rate(generated, gen_s),
                    "scoring_seconds": a_s, "scored_tokens": scored, "scoring_tokens_per_second": rate(scored, a_s)},
        "base": {"scoring_seconds": b_s, "scored_tokens": scored, "scoring_tokens_per_second": rate(scored, b_s)},
    });
    let summary = output::write_run(&args.out, &results, manifest, args.curve_positions)?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", summary::render_text(&summary))?;
    writeln!(out, "  results in {}", args.out.display())?;
    Ok(())
}

pub fn merge(args: MergeArgs) -> Result<()> {
    let mut fingerprint: Option<(String, &Path)> = None;
    let mut all: std::collections::BTreeMap<usize, ExampleResult> =
        std::collections::BTreeMap::new();
    let mut manifest = serde_json::Value::Null;
    for dir in &args.dirs {
        let fp = journal::read_fingerprint(dir)
            .with_context(|| format!("{} is not an analyze run", dir.display()))?;
        match &fingerprint {
            Some((first, first_dir)) if *first != fp => {
                bail!("{} and {} are runs of different settings (fingerprints differ); only shards of one analysis can be merged", first_dir.display(), dir.display())
            }
            None => fingerprint = Some((fp, dir)),
            _ => {}
        }
        if manifest.is_null() {
            let text = std::fs::read_to_string(dir.join("summary.json")).with_context(|| {
                format!(
                    "{}: the shard has not finished (no summary.json)",
                    dir.display()
                )
            })?;
            manifest = serde_json::from_str::<serde_json::Value>(&text)?["manifest"].clone();
        }
        for (index, result) in journal::read_parts(&dir.join("parts"))? {
            if all.insert(index, result).is_some() {
                bail!("example {index} appears in more than one of the merged runs");
            }
        }
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    manifest["shard"] = serde_json::Value::Null;
    manifest["merged_from"] = json!(args
        .dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>());
    let results: Vec<ExampleResult> = all.into_values().collect();
    let summary = output::write_run(&args.out, &results, manifest, args.curve_positions)?;
    print!("{}", summary::render_text(&summary));
    println!(
        "  merged {} runs into {}",
        args.dirs.len(),
        args.out.display()
    );
    Ok(())
}

pub fn summarize(args: SummarizeArgs) -> Result<()> {
    let path = args.dir.join("summary.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (is {} a finished analyze run?)",
            path.display(),
            args.dir.display()
        )
    })?;
    let summary: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&summary["aggregates"])?
        )?;
    } else {
        write!(out, "{}", summary::render_text(&summary))?;
    }
    Ok(())
}
