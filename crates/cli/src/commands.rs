//! One function per command; arguments are turned into engine settings here.

use std::io::Write;

use aligntds_engine::config::{LayerAttention, RopeScaling};
use aligntds_engine::{
    template, EngineError, GenerateOptions, LanguageModel, LoadOptions, StopReason,
};
use anyhow::{Context, Result};

use std::sync::Arc;

use aligntds_analysis::backend::vllm::ServerOptions;
use aligntds_analysis::backend::ConnectError;
use aligntds_analysis::backend::{self, Backend, LocalBackend};
use aligntds_analysis::settings::BackendSettings;
use aligntds_analysis::settings::{Field, SideName};
use aligntds_engine::{Remedy, TextModel};

use crate::args::{BenchArgs, Command, GenerateArgs, InspectArgs, ModelOptions, ServerArgs};
use crate::errors::{flag, unsupported_architecture_hint, Flags};
use crate::runtime::{device, dtype, threads};

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Inspect(args) => inspect(args),
        Command::Generate(args) => generate(args),
        Command::Analyze(args) => crate::analyze::analyze(*args),
        Command::Handover(args) => crate::handover::handover(*args),
        Command::Summarize(args) => crate::analyze::summarize(args),
        Command::Merge(args)
            if args
                .dirs
                .first()
                .is_some_and(|d| aligntds_analysis::handover::is_handover(d)) =>
        {
            crate::handover::merge(args)
        }
        Command::Merge(args) => crate::analyze::merge(args),
        Command::Compare(args) => crate::analyze::compare(args),
        Command::Report(args) => report(args),
        Command::Serve(args) => crate::serve::serve(*args),
        Command::Bench(args) => bench(args),
        Command::Completions(args) => {
            let mut command = <crate::args::Cli as clap::CommandFactory>::command();
            clap_complete::generate(args.shell, &mut command, "aligntds", &mut std::io::stdout());
            Ok(())
        }
        Command::Man(args) => man(args),
    }
}

fn man(args: crate::args::ManArgs) -> Result<()> {
    let command = <crate::args::Cli as clap::CommandFactory>::command();
    match args.out {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("option `--out`: cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, &dir).with_context(|| {
                format!(
                    "option `--out`: cannot write the pages into {}",
                    dir.display()
                )
            })?;
            println!("man pages written to {}", dir.display());
        }
        None => match clap_mangen::Man::new(command).render(&mut std::io::stdout()) {
            // `aligntds man | head` closes the pipe early: not a failure.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other?,
        },
    }
    Ok(())
}

/// An engine error with what the engine says to do, worded with this command's flags.
pub fn engine_error(e: EngineError, model: Option<&str>) -> anyhow::Error {
    let e = match (e.setting(), e.remedy()) {
        (Some((setting, message)), _) => {
            let field = Field::of_load_setting(setting, SideName::Aligned);
            return anyhow::anyhow!("option `{}`: {message}", flag(field, Flags::Model));
        }
        (None, Some(Remedy::ChooseChatTemplate)) => {
            return anyhow::anyhow!("{e}; pass --chat-template NAME|FILE");
        }
        (None, Some(Remedy::RunOnServer { gguf })) => {
            anyhow::anyhow!("{e}. {}", unsupported_architecture_hint(gguf, "--server"))
        }
        _ => anyhow::Error::new(e),
    };
    match model {
        Some(m) => e.context(format!("cannot load model `{m}`")),
        None => e,
    }
}

fn load(model: &str, options: &ModelOptions) -> Result<LanguageModel> {
    threads(options.runtime.threads)?;
    let device =
        device(&options.runtime.device).map_err(|m| anyhow::anyhow!("option `--device`: {m}"))?;
    let device =
        aligntds_engine::parse_device(&device.to_string()).map_err(|e| engine_error(e, None))?;
    let load_options = LoadOptions {
        dtype: dtype(options.runtime.dtype),
        device,
        chat_template: options.chat_template.clone(),
        models_in_memory: 1,
    };
    tracing::info!(model, "loading");
    LanguageModel::load(model, &load_options).map_err(|e| engine_error(e, Some(model)))
}

/// A model's text side and its checked servers (`--server`): nothing local runs.
fn connect(
    model: &str,
    options: &ModelOptions,
    server: &ServerArgs,
) -> Result<(Arc<TextModel>, Arc<dyn Backend>)> {
    let text = TextModel::load_text_only(model, options.chat_template.as_deref())
        .map(Arc::new)
        .map_err(|e| engine_error(e, Some(model)))?;
    let settings =
        BackendSettings::from_servers(server.servers.clone(), server.served_name.clone());
    let backend = backend::connect(
        SideName::Aligned,
        &settings,
        ServerOptions::default(),
        &text,
        None,
        None,
    )
    .map_err(|e| match e {
        ConnectError::Setting(s) => {
            anyhow::anyhow!("option `{}`: {}", flag(s.field, Flags::Model), s.message)
        }
        other => anyhow::Error::new(other),
    })?
    .context("--server names no server")?;
    Ok((text, backend))
}

fn describe_remote(text: &TextModel, backend: &dyn Backend) -> serde_json::Value {
    let tok = &text.tokenizer;
    let special = |t: &Option<aligntds_engine::tokenizer::SpecialToken>| {
        t.as_ref()
            .map_or("none".to_string(), |t| format!("{} ({})", t.text, t.id))
    };
    let mut info = serde_json::json!({
        "model": text.reference,
        "source": text.source.kind,
        "vocabulary": tok.vocab_size(),
        "bos": special(&tok.bos),
        "adds_bos": tok.add_bos,
        "eos": special(&tok.eos),
        "stop_token_ids": text.eos_token_ids,
        "chat_template": text.chat_template.as_ref().map_or("none (a base model?)".to_string(), |t| t.name.clone()),
    });
    for (key, value) in backend.describe() {
        info[key] = value;
    }
    info
}

fn inspect(args: InspectArgs) -> Result<()> {
    let info = if args.server.servers.is_empty() {
        let model = load(&args.model, &args.options)?;
        describe(&model, &args.options)
    } else {
        let (text, backend) = connect(&args.model, &args.options, &args.server)?;
        describe_remote(&text, backend.as_ref())
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&info)?)?;
    } else {
        for (key, value) in info.as_object().into_iter().flatten() {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            writeln!(out, "{key:>20}: {text}")?;
        }
    }
    Ok(())
}

fn describe(model: &LanguageModel, options: &ModelOptions) -> serde_json::Value {
    let sliding_theta = model.config().rope_sliding.theta;
    let c = model.config();
    let tok = &model.text.tokenizer;
    let sliding: Vec<String> = c
        .layers
        .iter()
        .enumerate()
        .filter_map(|(i, l)| match l {
            LayerAttention::Sliding(w) => Some(format!("{i}:{w}")),
            LayerAttention::Full => None,
        })
        .collect();
    let rope = match &c.rope_full.scaling {
        RopeScaling::Default => format!("theta {}", c.rope_full.theta),
        RopeScaling::Linear { factor } => {
            format!("theta {}, linear scaling x{factor}", c.rope_full.theta)
        }
        RopeScaling::Llama3 { factor, .. } => {
            format!("theta {}, llama3 scaling x{factor}", c.rope_full.theta)
        }
        RopeScaling::Factors(_) => {
            format!(
                "theta {}, per-frequency factors (rope_freqs)",
                c.rope_full.theta
            )
        }
        RopeScaling::LongRope {
            original_max_position_embeddings,
            attention_factor,
            ..
        } => format!(
            "theta {}, LongRoPE (long factors past {original_max_position_embeddings} positions, attention factor {attention_factor:.4})",
            c.rope_full.theta
        ),
    };
    let special = |t: &Option<aligntds_engine::tokenizer::SpecialToken>| {
        t.as_ref()
            .map_or("none".to_string(), |t| format!("{} ({})", t.text, t.id))
    };
    serde_json::json!({
        "model": model.text.reference,
        "architecture": c.architecture.name(),
        "source": model.text.source.kind,
        "hub_commit": model.text.source.commit,
        "parameters": model.parameter_count(),
        "dtype": model.weights_dtype,
        "device": options.runtime.device,
        "layers": c.num_layers,
        "hidden_size": c.hidden_size,
        "attention_heads": c.num_heads,
        "kv_heads": c.num_kv_heads,
        "head_dim": c.head_dim,
        "intermediate_size": c.intermediate_size,
        "sliding_window_layers": if sliding.is_empty() { "none".to_string() } else { format!("{} (rope theta {sliding_theta})", sliding.join(", ")) },
        "rope": rope,
        "decoder": c.switches.describe().join(", "),
        "context_length": c.max_position_embeddings,
        "vocabulary": tok.vocab_size(),
        "logits_width": model.logits_width(),
        "bos": special(&tok.bos),
        "adds_bos": tok.add_bos,
        "eos": special(&tok.eos),
        "stop_token_ids": model.text.eos_token_ids,
        "chat_template": model.text.chat_template.as_ref().map_or("none (a base model?)".to_string(), |t| t.name.clone()),
    })
}

fn generate(args: GenerateArgs) -> Result<()> {
    // The text side is always local; the forward passes are local or remote.
    let (text, backend): (Arc<TextModel>, Arc<dyn Backend>) = if args.server.servers.is_empty() {
        let model = Arc::new(load(&args.model, &args.options)?);
        (model.text.clone(), Arc::new(LocalBackend::new(model)))
    } else {
        connect(&args.model, &args.options, &args.server)?
    };
    let prompt_text = match (&args.prompt, &args.chat) {
        (Some(p), _) => p.clone(),
        (None, Some(q)) => {
            let mut vars = template::TemplateVars::new();
            if let Some(on) = args.enable_thinking {
                vars.insert("enable_thinking".into(), on.into());
            }
            text.render_chat_with(&template::single_turn(q, args.system.as_deref()), &vars)
                .map_err(|e| engine_error(e, None))?
        }
        (None, None) => anyhow::bail!("give --prompt TEXT or --chat TEXT"),
    };
    let prompt = text.tokenizer.encode(&prompt_text)?;
    anyhow::ensure!(!prompt.is_empty(), "the prompt encodes to no tokens");
    let options = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        stop_strings: args.stops.clone(),
        eos_token_ids: text.eos_token_ids.clone(),
        cancel: Default::default(),
        // One prompt, one stream: the seed alone names it.
        sampling: crate::runtime::sampling(&args.sampling, &[])?,
    };
    let started = std::time::Instant::now();
    let out = backend.generate(&prompt, &options)?;
    let elapsed = started.elapsed().as_secs_f64();
    let mut stdout = std::io::stdout().lock();
    if args.logprobs {
        let pieces = text.tokenizer.pieces(&out.tokens)?;
        writeln!(
            stdout,
            "{:>5}  {:>7}  {:>10}  token",
            "index", "id", "logprob"
        )?;
        for (i, ((id, lp), piece)) in out
            .tokens
            .iter()
            .zip(&out.logprobs)
            .zip(&pieces)
            .enumerate()
        {
            writeln!(stdout, "{i:>5}  {id:>7}  {lp:>10.5}  {piece:?}")?;
        }
    } else {
        writeln!(stdout, "{}", text.tokenizer.decode(&out.tokens, true)?)?;
    }
    let reason = match &out.stop_reason {
        StopReason::Eos => "end-of-sequence token".to_string(),
        StopReason::StopString(s) => format!("stop string {s:?}"),
        StopReason::MaxNewTokens => format!("--max-new-tokens ({})", args.max_new_tokens),
        StopReason::ContextFull => "the end of the model's context".to_string(),
        StopReason::Cancelled => "cancelled".to_string(),
    };
    eprintln!(
        "weights {}; {} prompt tokens, {} generated in {elapsed:.2} s ({:.1} tokens/s); stopped at {reason}",
        backend.weights(),
        prompt.len(),
        out.tokens.len(),
        out.tokens.len() as f64 / elapsed.max(1e-9)
    );
    Ok(())
}

fn report(args: crate::args::ReportArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let stats = aligntds_report::build_from(&args.runs, &args.out)?;
    println!(
        "report: {} ({} example pages, {:.1} MB, {:.1} s)",
        args.out.join("index.html").display(),
        stats.example_pages,
        stats.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    println!("        {}", args.out.join("report.md").display());
    Ok(())
}

fn bench(args: BenchArgs) -> Result<()> {
    let model = load(
        &args.model,
        &ModelOptions {
            runtime: args.runtime.clone(),
            chat_template: None,
        },
    )?;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_default();
    let mut cases = Vec::new();
    if args.score_tokens > 0 {
        let t = aligntds_engine::bench::score(&model, args.score_tokens, args.repeats)
            .context("scoring benchmark")?;
        cases.push(("score", t));
    }
    if args.generate_tokens > 0 {
        let t = aligntds_engine::bench::generate(
            &model,
            args.generate_tokens,
            args.batch as usize,
            args.repeats,
        )
        .context("generation benchmark")?;
        cases.push((
            if args.batch > 1 {
                "generate-batch"
            } else {
                "generate"
            },
            t,
        ));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let rows: Vec<serde_json::Value> = cases
            .iter()
            .map(|(case, t)| serde_json::json!({"case": case, "tokens": t.tokens, "best_seconds": t.best_seconds, "tokens_per_second": t.tokens_per_second()}))
            .collect();
        let report = serde_json::json!({"schema_version": 1, "model": model.text.reference, "dtype": model.weights_dtype, "threads": threads, "batch": args.batch, "cases": rows});
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        for (case, t) in &cases {
            writeln!(
                out,
                "{case} {} tokens ({}, {threads} threads): best {:.3} s = {:.1} tokens/s",
                t.tokens,
                model.weights_dtype,
                t.best_seconds,
                t.tokens_per_second()
            )?;
        }
    }
    Ok(())
}
