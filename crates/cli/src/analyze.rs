//! `aligntds analyze`, `summarize` and `merge`: arguments -> typed settings ->
//! the library -> rendered results. No study logic lives here.

use std::io::{IsTerminal, Write};

use aligntds_analysis::settings::{
    BackendSettings, ComparedSide, Context, ContextKind, Field, FieldMap, Queries, ResponseSource,
    Runtime, SettingError, Shard, SideName, SideSettings, StudySettings, Thresholds,
};
use aligntds_analysis::{Progress, Study};
use aligntds_formats::summary::{ServerUse, Summary};
use aligntds_stats::summary::render_text;
use anyhow::{Context as _, Result};

use crate::args::{
    AnalyzeArgs, CompareArgs, ContextArg, MergeArgs, PairArgs, ResponseArg, SummarizeArgs,
};
use crate::errors::{study_error, Flags};

fn context_kind(arg: ContextArg) -> ContextKind {
    match arg {
        ContextArg::Chat => ContextKind::Chat,
        ContextArg::Input => ContextKind::Input,
        ContextArg::Template => ContextKind::Template,
        ContextArg::Plain => ContextKind::Plain,
        ContextArg::Urial => ContextKind::Urial,
        ContextArg::Custom => ContextKind::Custom,
    }
}

/// One side's settings from the flags of that side (`--aligned-*` or `--base-*`).
pub(crate) fn side(name: SideName, args: &PairArgs) -> Result<SideSettings, SettingError> {
    let (model, chat_template, kind, prefix, template, servers, served_name) = match name {
        SideName::Compare(_) => unreachable!("compared sides come from compare_sides"),
        SideName::Aligned => (
            &args.aligned,
            &args.aligned_chat_template,
            args.aligned_context,
            &args.aligned_prefix,
            &args.aligned_template,
            &args.aligned_servers,
            &args.aligned_served_name,
        ),
        SideName::Base => (
            &args.base,
            &args.base_chat_template,
            args.base_context,
            &args.base_prefix,
            &args.base_template,
            &args.base_servers,
            &args.base_served_name,
        ),
    };
    let prefix = match prefix {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
            SettingError::new(
                Field::Prefix(name),
                format!("cannot read {}: {e}", path.display()),
            )
        })?),
        None => None,
    };
    let model = model.as_ref().ok_or_else(|| {
        SettingError::new(
            Field::Model(name),
            "is required: name the model (a checkpoint folder, .gguf file or Hub id)",
        )
    })?;
    Ok(SideSettings {
        model: model.to_string(),
        chat_template: chat_template.clone(),
        context: Context {
            kind: context_kind(kind),
            system: args.system.clone(),
            prefix,
            template: template.clone(),
            enable_thinking: args.enable_thinking,
        },
        backend: BackendSettings::from_servers(servers.clone(), served_name.clone()),
    })
}

/// Splits `NAME=VALUE`, naming the flag on a malformed one.
fn named<'a>(flag: &str, text: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    text.split_once('=')
        .filter(|(n, v)| !n.is_empty() && !v.is_empty())
        .ok_or_else(|| anyhow::anyhow!("option `{flag}`: `{text}` is not NAME=VALUE"))
}

/// The compared sides from `--compare NAME=MODEL` and their per-side options.
fn compare_sides(args: &AnalyzeArgs) -> anyhow::Result<Vec<ComparedSide>> {
    let c = &args.compare;
    let mut sides: Vec<ComparedSide> = Vec::new();
    for text in &c.sides {
        let (name, model) = named("--compare", text)?;
        sides.push(ComparedSide {
            name: name.to_string(),
            side: SideSettings {
                model: model.to_string(),
                chat_template: None,
                context: Context {
                    kind: ContextKind::Template,
                    system: args.pair.system.clone(),
                    prefix: None,
                    template: None,
                    enable_thinking: args.pair.enable_thinking,
                },
                backend: BackendSettings::Local,
            },
        });
    }
    let options: [(&str, &Vec<String>); 6] = [
        ("--compare-context", &c.contexts),
        ("--compare-chat-template", &c.chat_templates),
        ("--compare-prefix", &c.prefixes),
        ("--compare-template", &c.templates),
        ("--compare-server", &c.servers),
        ("--compare-served-name", &c.served_names),
    ];
    for (flag, values) in options {
        for text in values {
            let (name, value) = named(flag, text)?;
            let Some(side) = sides.iter_mut().find(|s| s.name == name) else {
                anyhow::bail!(
                    "option `{flag}`: no compared side is named `{name}` (name it with --compare {name}=MODEL)"
                );
            };
            let s = &mut side.side;
            match flag {
                "--compare-context" => {
                    s.context.kind = <ContextArg as clap::ValueEnum>::from_str(value, true)
                        .map(context_kind)
                        .map_err(|_| {
                            anyhow::anyhow!(
                                "option `{flag}`: `{value}` is not a context; use chat, input, template, plain, urial or custom"
                            )
                        })?
                }
                "--compare-chat-template" => s.chat_template = Some(value.to_string()),
                "--compare-prefix" => {
                    s.context.prefix = Some(std::fs::read_to_string(value).map_err(|e| {
                        anyhow::anyhow!("option `{flag}`: cannot read {value}: {e}")
                    })?)
                }
                "--compare-template" => s.context.template = Some(value.to_string()),
                "--compare-server" => {
                    let (mut servers, served_name) = vllm_of(&s.backend);
                    servers.push(value.to_string());
                    s.backend = BackendSettings::from_servers(servers, served_name);
                }
                _ => {
                    let (servers, _) = vllm_of(&s.backend);
                    s.backend = BackendSettings::from_servers(servers, Some(value.to_string()));
                }
            }
        }
    }
    Ok(sides)
}

/// A side's servers and served name so far, to add a flag's value to.
fn vllm_of(backend: &BackendSettings) -> (Vec<String>, Option<String>) {
    match backend {
        BackendSettings::Local => (Vec::new(), None),
        BackendSettings::Vllm {
            servers,
            served_name,
        } => (servers.clone(), served_name.clone()),
    }
}

/// The flags that set one side (clap ids): a study file holds its sides, so
/// these are refused beside `--study` rather than mixed into the file's.
const SIDE_FLAGS: &[&str] = &[
    "aligned_servers",
    "base_servers",
    "aligned_served_name",
    "base_served_name",
    "aligned_context",
    "base_context",
    "aligned_chat_template",
    "base_chat_template",
    "system",
    "enable_thinking",
    "aligned_prefix",
    "base_prefix",
    "aligned_template",
    "base_template",
    "contexts",
    "chat_templates",
    "prefixes",
    "templates",
    "servers",
    "served_names",
];

/// The study file's key a settings field is read from, for errors about a
/// value that came from the file.
fn file_key(field: Field) -> Option<&'static str> {
    Some(match field {
        Field::TopK => "top_k",
        Field::MaxNewTokens => "max_new_tokens",
        Field::Thresholds => "unshifted_max` and `marginal_max",
        Field::Limit => "limit",
        Field::CurvePositions => "curve_positions",
        Field::QueryField => "query_field",
        Field::AnswerField => "answer_field",
        Field::IdField => "id_field",
        Field::GroupBy => "group_by",
        _ => return None,
    })
}

/// A study error as the user reads it: a setting that came from the study
/// file (its flag not given) is named as the file's key, else as the flag.
pub(crate) fn analyze_error(
    args: &AnalyzeArgs,
    e: aligntds_analysis::StudyError,
    flags: Flags,
) -> anyhow::Error {
    if let (aligntds_analysis::StudyError::Setting(s), Some(path)) = (&e, &args.study) {
        let given = |key: &str| {
            key.split('`')
                .any(|k| args.given.iter().any(|(id, _)| id == k))
        };
        if let Some(key) = file_key(s.field).filter(|k| !given(k)) {
            return anyhow::anyhow!("study file {}: `{key}`: {}", path.display(), s.message);
        }
    }
    study_error(e, flags)
}

/// A study file's sides and keys under the flags given beside it: a flag
/// overrides the file's key, which overrides the default; side flags are refused.
fn apply_study_file(
    args: &AnalyzeArgs,
    file: &aligntds_analysis::settings::study_file::StudySides,
    settings: &mut StudySettings,
) -> anyhow::Result<()> {
    let path = args.study.as_deref().unwrap_or(std::path::Path::new(""));
    let own_data = args.data.is_none() && args.query.is_none();
    if own_data && !args.allow_changed_data {
        file.check_data(path).map_err(|e| {
            anyhow::anyhow!("{e}; pass --allow-changed-data to go on with it as it is now")
        })?;
    }
    if let Some((_, flag)) = args
        .given
        .iter()
        .find(|(id, _)| SIDE_FLAGS.contains(&id.as_str()))
    {
        anyhow::bail!(
            "option `{flag}`: the sides come from the study file {} beside --study; set this in its \
             [aligned], [base] or [[compare]] table instead",
            path.display()
        );
    }
    settings.aligned = file.aligned.clone();
    settings.base = file.base.clone();
    settings.compare = file.compare.clone();
    let mut keys = file.keys.clone();
    for (id, _) in &args.given {
        keys.clear(id);
    }
    keys.apply(settings);
    // Early, so a bad key is named as the file's before anything loads.
    settings
        .validate()
        .map_err(|e| analyze_error(args, e.into(), Flags::Analyze(&[])))
}

/// The arguments as typed settings (nothing is checked here: the library does).
pub(crate) fn settings(args: &AnalyzeArgs) -> anyhow::Result<StudySettings> {
    let flags = Flags::Analyze(&[]);
    let setting = |e: SettingError| study_error(e.into(), flags);
    let file = match &args.study {
        Some(path) => Some(aligntds_analysis::settings::study_file::load(path)?),
        None => None,
    };
    let (data, query) = match (&args.data, &args.query, &file) {
        (None, None, Some(f)) => (f.data.clone(), f.query.clone()),
        _ => (args.data.clone(), args.query.clone()),
    };
    let queries = match (data, query) {
        (Some(path), _) => Queries::File(path),
        (None, Some(q)) => Queries::Single(q),
        (None, None) => {
            return Err(setting(SettingError::new(
                Field::Data,
                "give a data file or a query",
            )))
        }
    };
    let out = args
        .out
        .clone()
        .or_else(|| file.as_ref().and_then(|f| f.out.clone()))
        .ok_or_else(|| setting(SettingError::new(Field::Out, "give an output folder")))?;
    let (aligned, base, compare, group_by) = match &file {
        // Replaced by the file's below.
        Some(f) => (
            f.aligned.clone(),
            f.base.clone(),
            Vec::new(),
            args.group_by.clone().or(f.group_by.clone()),
        ),
        None => (
            side(SideName::Aligned, &args.pair).map_err(setting)?,
            side(SideName::Base, &args.pair).map_err(setting)?,
            compare_sides(args)?,
            args.group_by.clone(),
        ),
    };
    let mut settings = StudySettings {
        aligned,
        base,
        compare,
        group_by,
        fields: FieldMap {
            query: args.query_field.clone(),
            answer: args.answer_field.clone(),
            id: args.id_field.clone(),
        },
        queries,
        out,
        response: match args.response {
            ResponseArg::Auto => ResponseSource::Auto,
            ResponseArg::Dataset => ResponseSource::Dataset,
            ResponseArg::Generate => ResponseSource::Generate,
        },
        max_new_tokens: args.max_new_tokens,
        stops: args.pair.stops.clone(),
        top_k: args.pair.top_k,
        thresholds: Thresholds {
            unshifted_max: args.pair.unshifted_max,
            marginal_max: args.pair.marginal_max,
        },
        limit: args.limit,
        shard: args
            .shard
            .as_deref()
            .map(Shard::parse)
            .transpose()
            .map_err(setting)?,
        curve_positions: args.curve_positions,
        overwrite: args.overwrite,
        strict: args.strict,
        runtime: Runtime {
            dtype: crate::runtime::dtype(args.pair.runtime.dtype),
            device: crate::runtime::device(&args.pair.runtime.device)
                .map_err(|m| setting(SettingError::new(Field::Device, m)))?,
            batch: args.batch.map(|b| b as usize),
            reuse_prefixes: !args.no_prefix_reuse,
        },
        server_options: crate::runtime::server_options(&args.pair.server_tuning),
        sampling: aligntds_analysis::settings::sampling::with_samples(
            crate::runtime::sampling_settings(&args.sampling),
            args.samples.map(|n| n as usize),
        ),
        answered_by: args.answered_by.clone(),
        handover: None,
    };
    if let Some(file) = &file {
        apply_study_file(args, file, &mut settings)?;
    }
    Ok(settings)
}

/// Progress on a terminal: a bar per phase with answer tokens/s and ETA.
pub(crate) struct Bar {
    bar: Option<indicatif::ProgressBar>,
    started: std::time::Instant,
    tokens: usize,
    /// Tokens each server had computed when the examples started (same order as `server_uses`).
    server_start: Vec<u64>,
}

impl Bar {
    pub(crate) fn new(quiet: bool) -> Self {
        let shown = !quiet && std::io::stderr().is_terminal();
        Self {
            bar: shown.then(|| {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.set_message("loading models");
                bar.enable_steady_tick(std::time::Duration::from_millis(200));
                bar
            }),
            started: std::time::Instant::now(),
            tokens: 0,
            server_start: Vec::new(),
        }
    }

    /// `servers`: the remote sides' servers now, so each one's rate can be shown.
    pub(crate) fn update(&mut self, progress: Progress<'_>, servers: &[ServerUse]) {
        let Some(bar) = &self.bar else { return };
        match progress {
            Progress::Started { total, resumed } => {
                bar.set_length(total as u64);
                bar.set_position(resumed as u64);
                bar.reset_eta();
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:30} {pos}/{len} examples  {msg}  ETA {eta}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                self.started = std::time::Instant::now();
                self.server_start = servers.iter().map(|s| s.tokens).collect();
                if resumed > 0 {
                    bar.println(format!(
                        "resuming: {resumed} of {total} examples already done"
                    ));
                }
            }
            Progress::Example {
                id,
                done,
                tokens,
                skipped,
                ..
            } => {
                self.tokens += tokens;
                let secs = self.started.elapsed().as_secs_f64().max(1e-9);
                bar.set_position(done as u64);
                let mut message = format!("{:.0} answer tokens/s", self.tokens as f64 / secs);
                message.push_str(&server_rates(servers, &self.server_start, secs));
                bar.set_message(message);
                if let Some(reason) = skipped {
                    bar.println(format!("skipped record {id}: {reason}"));
                }
            }
            Progress::Writing => bar.set_message("writing outputs"),
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Each server's rate since the examples started, e.g. ` | aligned gpu1:8000 812 tok/s, base gpu2:8000 640 tok/s (3 failed)`.
fn server_rates(servers: &[ServerUse], start: &[u64], secs: f64) -> String {
    if servers.is_empty() {
        return String::new();
    }
    let rates: Vec<String> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let since = s.tokens.saturating_sub(start.get(i).copied().unwrap_or(0));
            let host = s.url.strip_prefix("http://").unwrap_or(&s.url);
            let failed = match s.failed_requests {
                0 => String::new(),
                n => format!(" ({n} failed)"),
            };
            format!("{} {host} {:.0} tok/s{failed}", s.side, since as f64 / secs)
        })
        .collect();
    format!(" | {}", rates.join(", "))
}

pub fn analyze(args: AnalyzeArgs) -> Result<()> {
    crate::runtime::threads(args.pair.runtime.threads)?;
    let settings = settings(&args)?;
    let names: Vec<String> = settings.compare.iter().map(|c| c.name.clone()).collect();
    let flags = Flags::Analyze(&names);
    let out_dir = settings.out.clone();
    let mut bar = Bar::new(args.quiet);
    let study = Study::prepare(settings).map_err(|e| {
        bar.finish();
        analyze_error(&args, e, flags)
    })?;
    // Without a terminal the bar is hidden; say the resume once anyway.
    let quiet = args.quiet;
    let outcome = study
        .run(&mut |p| {
            if let Progress::Started { total, resumed } = p {
                if resumed > 0 && !quiet && bar.bar.is_none() {
                    eprintln!(
                        "resuming: {resumed} of {total} examples already done in {}",
                        out_dir.display()
                    );
                }
            }
            bar.update(p, &study.server_uses())
        })
        .map_err(|e| {
            bar.finish();
            study_error(e, flags)
        })?;
    bar.finish();
    let mut out = std::io::stdout().lock();
    write!(out, "{}", render_text(&outcome.summary))?;
    writeln!(out, "  results in {}", out_dir.display())?;
    Ok(())
}

pub fn merge(args: MergeArgs) -> Result<()> {
    let summary = aligntds_analysis::merge(&args.dirs, &args.out, args.curve_positions)
        .map_err(|e| study_error(e, Flags::Merge))?;
    print!("{}", render_text(&summary));
    println!(
        "  merged {} runs into {}",
        args.dirs.len(),
        args.out.display()
    );
    Ok(())
}

pub fn summarize(args: SummarizeArgs) -> Result<()> {
    let summary = Summary::read(&args.dir)
        .with_context(|| format!("{} is not a finished analyze run", args.dir.display()))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&summary.aggregates)?
        )?;
    } else {
        write!(out, "{}", render_text(&summary))?;
    }
    Ok(())
}

pub fn compare(args: CompareArgs) -> Result<()> {
    use aligntds_stats::compare::{compare, render_text, CompareError, Operand};
    let (a, b) = (Operand::parse(&args.a), Operand::parse(&args.b));
    let comparison = compare(&a, &b, args.common).map_err(|e| match e {
        CompareError::Mismatch { message, common } if common > 0 => {
            anyhow::anyhow!("{message}; pass --common to compare the {common} shared examples")
        }
        other => anyhow::Error::new(other),
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&comparison)?);
    } else {
        print!("{}", render_text(&comparison));
    }
    Ok(())
}

#[cfg(test)]
#[path = "analyze_precedence_tests.rs"]
mod precedence_tests;
