//! `aligntds analyze` and `aligntds summarize`.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use aligntds_analysis::context::{Context, ContextKind};
use aligntds_analysis::dataset::{self, Record};
use aligntds_analysis::metrics::Thresholds;
use aligntds_analysis::output::{self, SCHEMA_VERSION};
use aligntds_analysis::run::{analyze_example, check_compatible, ResponseSource, RunSettings};
use aligntds_analysis::summary;
use aligntds_engine::LanguageModel;
use anyhow::{bail, Context as _, Result};
use serde_json::json;

use crate::args::{AnalyzeArgs, SummarizeArgs};

const OUTPUTS: &[&str] = &["positions.parquet", "examples.jsonl", "summary.json"];

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

fn file_info(reference: &str) -> serde_json::Value {
    let path = Path::new(reference);
    let bytes = if path.is_file() {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    } else {
        std::fs::read_dir(path)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    };
    json!({"reference": reference, "bytes": bytes})
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
    if args.out.exists() && !args.overwrite && OUTPUTS.iter().any(|f| args.out.join(f).exists()) {
        bail!(
            "{} already holds the results of a run; choose another --out or pass --overwrite",
            args.out.display()
        );
    }
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

    let progress = !args.quiet && std::io::stderr().is_terminal();
    let mut results = Vec::with_capacity(records.len());
    let run_started = Instant::now();
    let mut tokens = 0usize;
    for (i, record) in records.iter().enumerate() {
        let result = analyze_example(&aligned, base, record, &settings)
            .with_context(|| format!("record {}", record.id))?;
        tokens += result.positions.len();
        if progress {
            let secs = run_started.elapsed().as_secs_f64().max(1e-9);
            let eta = secs / (i + 1) as f64 * (records.len() - i - 1) as f64;
            eprint!(
                "\r[{}/{}] {:.2} examples/s, {:.0} answer tokens/s, ETA {:.0} s   ",
                i + 1,
                records.len(),
                (i + 1) as f64 / secs,
                tokens as f64 / secs,
                eta
            );
        }
        results.push(result);
    }
    if progress {
        eprintln!();
    }
    let run_seconds = run_started.elapsed().as_secs_f64();
    let decode = |id: u32| aligned.tokenizer.decode(&[id], false).unwrap_or_default();
    output::write_positions(&args.out.join("positions.parquet"), &results, &decode)?;
    output::write_examples(&args.out.join("examples.jsonl"), &results)?;
    let summary = json!({
        "schema_version": SCHEMA_VERSION,
        "manifest": {
            "tool": format!("aligntds {}", env!("CARGO_PKG_VERSION")),
            "aligned": file_info(&args.aligned),
            "base": file_info(&args.base),
            "aligned_weights": aligned.weights_dtype,
            "base_weights": base.weights_dtype,
            "device": args.runtime.device,
            "aligned_chat_template": aligned.chat_template.as_ref().map(|t| t.name.clone()),
            "base_chat_template": base.chat_template.as_ref().map(|t| t.name.clone()),
            "settings": settings,
            "data": args.data.as_ref().map(|p| p.display().to_string()),
            "limit": args.limit,
            "timings": {
                "load_seconds": load_seconds,
                "analysis_seconds": run_seconds,
                "total_seconds": started.elapsed().as_secs_f64(),
                "answer_tokens": tokens,
                "answer_tokens_per_second": tokens as f64 / run_seconds.max(1e-9),
            },
        },
        "aggregates": summary::aggregates(&results, args.curve_positions, &decode),
    });
    output::write_atomic(
        &args.out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", summary::render_text(&summary))?;
    writeln!(out, "  results in {}", args.out.display())?;
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
