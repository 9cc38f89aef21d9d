//! A study end to end: settings checked, queries read, run folder locked,
//! models loaded, every record analyzed (resumably, shardably), outputs
//! written. Front ends (the CLI, a server, bindings) call [`Study::prepare`]
//! and [`Study::run`] with a progress callback.

pub mod folder;
pub mod merge;
pub mod output;
pub mod record;

use std::sync::Arc;
use std::time::Instant;

use aligntds_engine::{EngineError, LanguageModel, LoadOptions, TextModel};
use aligntds_formats::sides::ComparedIdentity;
use aligntds_formats::summary::{
    FileIdentity, Manifest, ModelIdentity, RunIdentity, ServerIdentity, ServerUse, SideTimings,
    Summary, TemplateIdentity, Timings,
};
use aligntds_formats::FormatError;

use crate::backend::vllm::{ConnectError, VllmBackend};
use crate::backend::{Backend, LocalBackend, Side};
use crate::input::dataset::{self, DatasetError, Record};
use crate::settings::{Field, Queries, SettingError, SideName, StudySettings};
use crate::study::folder::{fingerprint, sha256_file, FolderError, RunFolder, Stamp};
use crate::study::record::{analyze_example_sides, check_compatible, check_vocabularies, RunError};
use aligntds_stats::ExampleResult;

#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error(transparent)]
    Setting(#[from] SettingError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("cannot load the {side} model `{reference}`: {source}")]
    Load {
        side: SideName,
        reference: String,
        #[source]
        source: EngineError,
    },
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A remote side's server failed a check with an HTTP error.
    #[error(transparent)]
    Server(ConnectError),
}

impl StudyError {
    /// A failed server check; one that names a setting is a setting error.
    pub(crate) fn from_connect(e: ConnectError) -> Self {
        match e {
            ConnectError::Setting(s) => StudyError::Setting(s),
            other => StudyError::Server(other),
        }
    }
}

impl StudyError {
    /// The engine error at the root of this one, however it was wrapped
    /// (loading a side, rendering a context, running a record).
    pub fn engine(&self) -> Option<&aligntds_engine::EngineError> {
        use crate::input::context::ContextError;
        match self {
            StudyError::Load { source, .. } => Some(source),
            StudyError::Run(RunError::Engine(e) | RunError::Context(ContextError::Engine(e))) => {
                Some(e)
            }
            _ => None,
        }
    }
}

/// What a study reports while it works.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress<'a> {
    /// Models loaded; `total` records to analyze in this run (or shard), `resumed` already done.
    Started { total: usize, resumed: usize },
    /// One more record finished.
    Example {
        id: &'a str,
        done: usize,
        total: usize,
        /// Answer tokens scored for this record.
        tokens: usize,
        /// Why it was skipped, if it was.
        skipped: Option<&'a str>,
    },
    /// All records done; writing the outputs.
    Writing,
}

/// A finished run.
pub struct Outcome {
    pub summary: Summary,
    pub resumed: usize,
}

/// A study ready to run: settings checked, queries read, folder locked, models loaded.
pub struct Study {
    settings: StudySettings,
    records: Vec<Record>,
    aligned: Side,
    base: Side,
    /// The compared sides, by name, in study order.
    compared: Vec<(String, Side)>,
    identity: RunIdentity,
    fingerprint: String,
    load_seconds: f64,
    folder: RunFolder,
}

/// How the weights load; the chat templates belong to the text sides, loaded before.
fn load_options(settings: &StudySettings, models: usize) -> Result<LoadOptions, StudyError> {
    let device = aligntds_engine::parse_device(&settings.runtime.device.to_string())
        .map_err(|e| SettingError::new(Field::Device, setting_message(e)))?;
    Ok(LoadOptions {
        dtype: settings.runtime.dtype,
        device,
        chat_template: None,
        models_in_memory: models,
    })
}

fn setting_message(e: EngineError) -> String {
    match e {
        EngineError::Option { message, .. } => message,
        other => other.to_string(),
    }
}

/// A model as fingerprinted: its files with sha256 (a Hub model by its commit
/// and cached blob ids, which are content hashes), so a changed file or a
/// re-pushed Hub model never resumes an old run.
pub fn model_identity(model: &TextModel) -> Result<ModelIdentity, FolderError> {
    let mut files = Vec::new();
    for path in &model.source.files {
        let bytes = std::fs::metadata(path)
            .map_err(|e| FolderError::File {
                path: path.clone(),
                message: e.to_string(),
            })?
            .len();
        let blob = std::fs::read_link(path)
            .ok()
            .filter(|_| model.source.kind == "hub")
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()));
        files.push(FileIdentity {
            file: path.file_name().map(|n| n.to_string_lossy().into_owned()),
            bytes,
            sha256: match blob {
                Some(id) => format!("blob:{id}"),
                None => sha256_file(path)?,
            },
        });
    }
    Ok(ModelIdentity {
        reference: model.reference.clone(),
        kind: Some(model.source.kind.to_string()),
        commit: model.source.commit.clone(),
        files,
    })
}

/// Both sides' text models (tokenizer, template, special tokens), one load
/// where both sides name the same model and template; a remote side's never
/// reads its weights.
pub(crate) fn load_text_sides(
    a: &crate::settings::SideSettings,
    b: &crate::settings::SideSettings,
) -> Result<(Arc<TextModel>, Arc<TextModel>), StudyError> {
    let mut texts = load_text_list(&[(SideName::Aligned, a), (SideName::Base, b)])?.into_iter();
    match (texts.next(), texts.next()) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => unreachable!("two sides give two text models"),
    }
}

/// Every side's text model, in order, each distinct (model, template,
/// remote) loaded once.
fn load_text_list(
    sides: &[(SideName, &crate::settings::SideSettings)],
) -> Result<Vec<Arc<TextModel>>, StudyError> {
    let mut texts: Vec<Arc<TextModel>> = Vec::with_capacity(sides.len());
    for (i, &(side, s)) in sides.iter().enumerate() {
        let same = sides[..i].iter().position(|(_, o)| {
            o.model == s.model
                && o.chat_template == s.chat_template
                && o.is_remote() == s.is_remote()
        });
        if let Some(j) = same {
            texts.push(texts[j].clone());
            continue;
        }
        let template = s.chat_template.as_deref();
        let text = if s.is_remote() {
            TextModel::load_text_only(&s.model, template)
        } else {
            TextModel::load(&s.model, template)
        }
        .map_err(|source| StudyError::Load {
            side,
            reference: s.model.clone(),
            source,
        })?;
        texts.push(Arc::new(text));
    }
    Ok(texts)
}

/// A pair check's error, told which reference side it was about.
fn name_side(e: RunError, side: SideName) -> RunError {
    match (e, side) {
        (RunError::Incompatible(m), SideName::Compare(_)) => RunError::Incompatible(format!(
            "{side} (a compared side): {}",
            m.replace("base model", "compared model")
                .replace("base ", "compared ")
        )),
        (e, _) => e,
    }
}

/// A remote side's servers, checked (models, context length, logprobs) with
/// `prompt` as a probe.
pub(crate) fn connect_side(
    side: SideName,
    s: &crate::settings::SideSettings,
    options: crate::backend::vllm::ServerOptions,
    text: &Arc<TextModel>,
    top_k: usize,
    prompt: Option<&str>,
) -> Result<Arc<VllmBackend>, StudyError> {
    VllmBackend::connect(
        side,
        &s.servers,
        s.served_name.as_deref(),
        options,
        text.clone(),
        Some(top_k),
        prompt,
    )
    .map(Arc::new)
    .map_err(StudyError::from_connect)
}

/// A side's weights, on top of its loaded text model.
pub(crate) fn load_weights(
    side: SideName,
    text: &Arc<TextModel>,
    options: &LoadOptions,
) -> Result<Arc<LanguageModel>, StudyError> {
    LanguageModel::from_text(text.clone(), options)
        .map(Arc::new)
        .map_err(|source| StudyError::Load {
            side,
            reference: text.reference.clone(),
            source,
        })
}

impl Study {
    /// Checks the settings and the data (before any model loads), locks the
    /// output folder, loads every text side (tokenizers, templates) and renders
    /// every side's context of the first record, then loads the weights: a bad
    /// setting, data file or template fails before any slow work. A model that
    /// several sides name loads its weights once.
    pub fn prepare(settings: StudySettings) -> Result<Self, StudyError> {
        settings.validate()?;
        let records = match &settings.queries {
            Queries::File(path) => dataset::load(path, settings.limit, &settings.fields)?,
            Queries::Single(q) => vec![Record::query("0", q.clone())],
        };
        if let Some(shard) = settings.shard {
            if !(0..records.len()).any(|i| shard.holds(i)) {
                return Err(SettingError::new(
                    Field::Shard,
                    format!("shard {shard} holds none of the {} records", records.len()),
                )
                .into());
            }
        }
        if let Some(field) = &settings.group_by {
            if !records.iter().any(|r| r.fields.contains_key(field)) {
                let mut known: Vec<&String> =
                    records.iter().flat_map(|r| r.fields.keys()).collect();
                known.sort();
                known.dedup();
                return Err(SettingError::new(
                    Field::GroupBy,
                    format!(
                        "no record has a field `{field}`; the records' label fields are: {}",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known
                                .iter()
                                .map(|k| k.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ),
                )
                .into());
            }
        }
        let folder = RunFolder::lock(&settings.out)?;
        let sides = settings.sides();
        let mut local_models: Vec<&str> = sides
            .iter()
            .filter(|(_, s)| !s.is_remote())
            .map(|(_, s)| s.model.as_str())
            .collect();
        local_models.sort();
        local_models.dedup();
        let options = load_options(&settings, local_models.len())?;
        let started = Instant::now();
        // Text sides first: tokenizers and templates load without weights, so a
        // bad template, a top-k beyond the vocabulary or two vocabularies that
        // differ fail before the slow part. A remote side's text side never
        // needs its weights.
        let texts = load_text_list(&sides)?;
        let aligned_text = texts[0].clone();
        let vocabulary = aligned_text.tokenizer.vocab_size();
        if settings.top_k > vocabulary {
            return Err(SettingError::new(
                Field::TopK,
                format!(
                    "{} exceeds the vocabulary of {vocabulary} tokens; use 1 to {vocabulary}",
                    settings.top_k
                ),
            )
            .into());
        }
        for ((name, _), text) in sides.iter().zip(&texts).skip(1) {
            check_vocabularies(&aligned_text, text).map_err(|e| name_side(e, *name))?;
        }
        let run = settings.run_settings();
        let contexts: Vec<&crate::settings::Context> =
            std::iter::once(&run.recorded.aligned_context)
                .chain(std::iter::once(&run.recorded.base_context))
                .chain(run.recorded.compare.iter().map(|c| &c.context))
                .collect();
        let mut first_contexts = vec![None; sides.len()];
        if let Some(first) = records.first() {
            let each = first_contexts
                .iter_mut()
                .zip(&contexts)
                .zip(&texts)
                .zip(&sides);
            for (((slot, context), text), (name, _)) in each {
                *slot = Some(
                    crate::input::context::render(context, text, first).map_err(|e| match e {
                        // The side is known here: name it, so its flags can be.
                        crate::input::context::ContextError::Engine(
                            source @ aligntds_engine::EngineError::NoChatTemplate { .. },
                        ) => StudyError::Load {
                            side: *name,
                            reference: text.reference.clone(),
                            source,
                        },
                        other => RunError::from(other).into(),
                    })?,
                );
            }
        }
        // Servers are checked before any local weights load: a wrong URL or
        // name fails fast.
        let mut remotes: Vec<Option<Arc<VllmBackend>>> = Vec::with_capacity(sides.len());
        for (((name, s), text), prompt) in sides.iter().zip(&texts).zip(&first_contexts) {
            remotes.push(if s.is_remote() {
                Some(connect_side(
                    *name,
                    s,
                    settings.server_options,
                    text,
                    settings.top_k,
                    prompt.as_deref(),
                )?)
            } else {
                None
            });
        }
        let local = |backend: LocalBackend| match settings.runtime.reuse_prefixes {
            true => backend,
            false => backend.without_prefix_reuse(),
        };
        // One backend per local model: sides naming the same weights share it.
        // The aligned side's batch sets how many records are in flight, since
        // only it generates.
        let mut loaded: Vec<(&str, Arc<dyn Backend>)> = Vec::new();
        let mut backends: Vec<Arc<dyn Backend>> = Vec::with_capacity(sides.len());
        for (((name, s), text), remote) in sides.iter().zip(&texts).zip(&remotes) {
            let backend: Arc<dyn Backend> = match remote {
                Some(r) => r.clone(),
                None => match loaded.iter().find(|(m, _)| *m == s.model) {
                    Some((_, b)) => b.clone(),
                    None => {
                        let model = load_weights(*name, text, &options)?;
                        let backend: Arc<dyn Backend> = if *name == SideName::Aligned {
                            let batch = settings.runtime.batch.unwrap_or_else(|| {
                                let tokens = settings.max_new_tokens + DEFAULT_PROMPT_TOKENS;
                                model.default_batch(tokens.min(model.context_length()))
                            });
                            Arc::new(local(LocalBackend::with_batch(model, batch)))
                        } else {
                            Arc::new(local(LocalBackend::new(model)))
                        };
                        loaded.push((s.model.as_str(), backend.clone()));
                        backend
                    }
                },
            };
            backends.push(backend);
        }
        let load_seconds = started.elapsed().as_secs_f64();
        let built: Vec<Side> = texts
            .into_iter()
            .zip(backends)
            .map(|(t, b)| Side::new(t, b))
            .collect();
        for ((name, _), side) in sides.iter().zip(&built).skip(1) {
            check_compatible(&built[0], side).map_err(|e| name_side(e, *name))?;
        }
        let server_identity = |r: &Option<Arc<VllmBackend>>| {
            r.as_ref().map(|r| ServerIdentity {
                served_model: r.served().name.clone(),
                max_model_len: r.served().max_model_len,
                logprobs: r.logprobs(),
            })
        };
        let data_sha256 = match &settings.queries {
            Queries::File(p) => Some(sha256_file(p)?),
            Queries::Single(_) => None,
        };
        let template = |m: &TextModel| {
            m.chat_template.as_ref().map(|t| TemplateIdentity {
                name: t.name.clone(),
                sha256: fingerprint(&serde_json::json!(t.source)),
            })
        };
        let mut compare = Vec::with_capacity(settings.compare.len());
        for ((c, side), remote) in settings.compare.iter().zip(&built[2..]).zip(&remotes[2..]) {
            compare.push(ComparedIdentity {
                name: c.name.clone(),
                model: model_identity(&side.text)?,
                weights: side.backend.weights(),
                chat_template: template(&side.text),
                server: server_identity(remote),
            });
        }
        let mut built = built.into_iter();
        let (Some(aligned), Some(base)) = (built.next(), built.next()) else {
            unreachable!("a study has an aligned and a base side")
        };
        let compared: Vec<(String, Side)> = settings
            .compare
            .iter()
            .map(|c| c.name.clone())
            .zip(built)
            .collect();
        let identity = RunIdentity {
            tool: format!("aligntds {}", env!("CARGO_PKG_VERSION")),
            aligned: model_identity(&aligned.text)?,
            base: model_identity(&base.text)?,
            aligned_weights: aligned.backend.weights(),
            base_weights: base.backend.weights(),
            device: settings.runtime.device.to_string(),
            aligned_chat_template: template(&aligned.text),
            base_chat_template: template(&base.text),
            settings: run.recorded.clone(),
            data: match &settings.queries {
                Queries::File(p) => Some(p.display().to_string()),
                Queries::Single(_) => None,
            },
            data_sha256,
            query: match &settings.queries {
                Queries::Single(q) => Some(q.clone()),
                Queries::File(_) => None,
            },
            limit: settings.limit,
            aligned_server: server_identity(&remotes[0]),
            base_server: server_identity(&remotes[1]),
            compare,
            fields: settings.fields.recorded(),
        };
        // The shard is not fingerprinted, so the shards of one analysis share a fingerprint.
        let fingerprint = fingerprint(&serde_json::to_value(&identity).unwrap_or_default());
        Ok(Self {
            settings,
            records,
            aligned,
            base,
            compared,
            identity,
            fingerprint,
            load_seconds,
            folder,
        })
    }

    pub fn settings(&self) -> &StudySettings {
        &self.settings
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn sides(&self) -> (&Side, &Side) {
        (&self.aligned, &self.base)
    }

    /// Every side by name: `aligned`, `base`, then the compared sides.
    pub fn named_sides(&self) -> Vec<(&str, &Side)> {
        [("aligned", &self.aligned), ("base", &self.base)]
            .into_iter()
            .chain(self.compared.iter().map(|(n, s)| (n.as_str(), s)))
            .collect()
    }

    /// What each server of a remote side has done so far in this invocation.
    pub fn server_uses(&self) -> Vec<ServerUse> {
        let mut uses = Vec::new();
        let mut seen: Vec<&Arc<dyn Backend>> = Vec::new();
        for (side, s) in self.named_sides() {
            // A backend shared by sides counts once, under its first side.
            if seen.iter().any(|b| Arc::ptr_eq(b, &s.backend)) {
                continue;
            }
            seen.push(&s.backend);
            for stat in s.backend.server_stats() {
                uses.push(ServerUse {
                    side: side.to_string(),
                    url: stat.url,
                    requests: stat.requests,
                    failed_requests: stat.failures,
                    tokens: stat.tokens,
                });
            }
        }
        uses
    }

    /// Analyzes every record of the run (or shard) not yet done, then writes
    /// positions.parquet, examples.jsonl and summary.json.
    pub fn run(&self, progress: &mut dyn FnMut(Progress<'_>)) -> Result<Outcome, StudyError> {
        let started = Instant::now();
        let selected: Vec<(usize, &Record)> = self
            .records
            .iter()
            .enumerate()
            .filter(|(i, _)| self.settings.shard.is_none_or(|s| s.holds(*i)))
            .collect();
        let stamp = Stamp {
            schema_version: aligntds_formats::SCHEMA_VERSION,
            fingerprint: self.fingerprint.clone(),
            shard: self.settings.shard.map(|s| s.to_string()),
            records: Some(selected.len()),
            settings: serde_json::to_value(&self.identity).unwrap_or_default(),
        };
        self.folder.begin(&stamp, self.settings.overwrite)?;
        let mut results: std::collections::BTreeMap<usize, ExampleResult> =
            self.folder.done()?.into_iter().collect();
        if let Some(stray) = results
            .keys()
            .find(|i| !selected.iter().any(|(j, _)| j == *i))
        {
            return Err(SettingError::new(
                Field::Shard,
                format!(
                    "{} holds example {stray}, which is not in this run's shard; use another output folder for each shard",
                    self.settings.out.display()
                ),
            )
            .into());
        }
        let resumed = results.len();
        progress(Progress::Started {
            total: selected.len(),
            resumed,
        });
        let run = self.settings.run_settings();
        let run_started = Instant::now();
        let pending: Vec<(usize, &Record)> = selected
            .iter()
            .filter(|(i, _)| !results.contains_key(i))
            .copied()
            .collect();
        // Remote sides batch what they are sent: keep their servers full.
        let workers = self
            .named_sides()
            .iter()
            .map(|(_, s)| s.backend.concurrency())
            .max()
            .unwrap_or(1)
            .min(pending.len())
            .max(1);
        let mut done = resumed;
        let total = selected.len();
        let mut finished = |index: usize,
                            record: &Record,
                            result: Result<ExampleResult, RunError>|
         -> Result<(), StudyError> {
            let result = result?;
            // Journaled as soon as it is done, in whatever order records finish.
            self.folder.record(index, &result)?;
            done += 1;
            progress(Progress::Example {
                id: &record.id,
                done,
                total,
                tokens: result.positions.len(),
                skipped: result.example.skipped.as_deref(),
            });
            results.insert(index, result);
            Ok(())
        };
        let references: Vec<&Side> = std::iter::once(&self.base)
            .chain(self.compared.iter().map(|(_, s)| s))
            .collect();
        let analyze =
            |record: &Record| analyze_example_sides(&self.aligned, &references, record, &run);
        if workers == 1 {
            for (index, record) in &pending {
                finished(*index, record, analyze(record))?;
            }
        } else {
            in_parallel(workers, &pending, analyze, &mut finished)?;
        }
        progress(Progress::Writing);
        let results: Vec<ExampleResult> = results.into_values().collect();
        let timings = timings(
            &results,
            self.load_seconds,
            run_started.elapsed().as_secs_f64(),
            started.elapsed().as_secs_f64() + self.load_seconds,
            resumed,
        );
        let manifest = Manifest {
            identity: self.identity.clone(),
            shard: self.settings.shard.map(|s| s.to_string()),
            fingerprint: self.fingerprint.clone(),
            timings: Some(timings),
            merged_from: None,
            servers: self.server_uses(),
            group_by: self.settings.group_by.clone(),
        };
        let summary = crate::study::output::write_run(
            self.folder.dir(),
            &results,
            manifest,
            self.settings.curve_positions,
        )?;
        Ok(Outcome { summary, resumed })
    }
}

/// Prompt tokens assumed per generated answer when the default batch is sized.
const DEFAULT_PROMPT_TOKENS: usize = 1024;

/// Analyzes `pending` on `workers` threads; results come back to the calling
/// thread (which journals them) as each finishes. An error stops new records
/// from starting; records already running finish and are kept. The error
/// returned is that of the earliest failing record in input order, as a run
/// one record at a time would report: records are handed out in order, so
/// every record before a failing one has started and is waited for.
fn in_parallel<'r>(
    workers: usize,
    pending: &[(usize, &'r Record)],
    analyze: impl Fn(&Record) -> Result<ExampleResult, RunError> + Sync,
    finished: &mut dyn FnMut(
        usize,
        &'r Record,
        Result<ExampleResult, RunError>,
    ) -> Result<(), StudyError>,
) -> Result<(), StudyError> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let mut first_error: Option<(usize, StudyError)> = None;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..workers {
            let (tx, next, stop, analyze) = (tx.clone(), &next, &stop, &analyze);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some(&(index, record)) = pending.get(next.fetch_add(1, Ordering::Relaxed))
                    else {
                        break;
                    };
                    if tx.send((index, record, analyze(record))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (index, record, result) in rx {
            if let Err(e) = finished(index, record, result) {
                stop.store(true, Ordering::Relaxed);
                if first_error.as_ref().is_none_or(|(first, _)| index < *first) {
                    first_error = Some((index, e));
                }
            }
        }
    });
    first_error.map_or(Ok(()), |(_, e)| Err(e))
}

fn timings(
    results: &[ExampleResult],
    load_seconds: f64,
    analysis_seconds: f64,
    total_seconds: f64,
    resumed: usize,
) -> Timings {
    let sum = |f: &dyn Fn(&ExampleResult) -> f64| results.iter().map(f).sum::<f64>();
    let generated: usize = results
        .iter()
        .filter(|e| e.example.source == "generate")
        .map(|e| e.example.answer_ids.len())
        .sum();
    let scored: usize = results.iter().map(|e| e.positions.len()).sum();
    let rate = |n: usize, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let (gen_s, a_s, b_s) = (
        sum(&|e| e.example.generation_seconds),
        sum(&|e| e.example.aligned_scoring_seconds),
        sum(&|e| e.example.base_scoring_seconds),
    );
    Timings {
        load_seconds,
        analysis_seconds_this_invocation: analysis_seconds,
        total_seconds_this_invocation: total_seconds,
        examples_resumed: resumed,
        aligned: SideTimings {
            generation_seconds: Some(gen_s),
            generated_tokens: Some(generated),
            generation_tokens_per_second: Some(rate(generated, gen_s)),
            scoring_seconds: a_s,
            scored_tokens: scored,
            scoring_tokens_per_second: rate(scored, a_s),
        },
        base: SideTimings {
            generation_seconds: None,
            generated_tokens: None,
            generation_tokens_per_second: None,
            scoring_seconds: b_s,
            scored_tokens: scored,
            scoring_tokens_per_second: rate(scored, b_s),
        },
    }
}
