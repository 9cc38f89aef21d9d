//! A study end to end: settings checked, queries read, run folder locked,
//! models loaded, every record analyzed (resumably, shardably), outputs
//! written. Front ends (the CLI, a server, bindings) call [`Study::prepare`]
//! and [`Study::run`] with a progress callback.

use std::sync::Arc;
use std::time::Instant;

use aligntds_engine::{EngineError, LanguageModel, LoadOptions, TextModel};
use aligntds_formats::summary::{
    FileIdentity, Manifest, ModelIdentity, RunIdentity, ServerIdentity, ServerUse, SideTimings,
    Summary, TemplateIdentity, Timings,
};
use aligntds_formats::FormatError;

use crate::backend::{Backend, LocalBackend, Side};
use crate::dataset::{self, DatasetError, Record};
use crate::run::{analyze_example, check_compatible, check_vocabularies, ExampleResult, RunError};
use crate::run_folder::{fingerprint, sha256_file, FolderError, RunFolder, Stamp};
use crate::settings::{Field, Queries, SettingError, SideName, StudySettings};
use crate::vllm::{ConnectError, VllmBackend};

#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error(transparent)]
    Setting(#[from] SettingError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("cannot load the {} model `{reference}`: {source}", side.as_str())]
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
    let load_text = |side: SideName, s: &crate::settings::SideSettings| {
        let template = s.chat_template.as_deref();
        if s.is_remote() {
            TextModel::load_text_only(&s.model, template)
        } else {
            TextModel::load(&s.model, template)
        }
        .map(Arc::new)
        .map_err(|source| StudyError::Load {
            side,
            reference: s.model.clone(),
            source,
        })
    };
    let same_text =
        a.model == b.model && a.chat_template == b.chat_template && a.is_remote() == b.is_remote();
    let aligned = load_text(SideName::Aligned, a)?;
    let base = if same_text {
        aligned.clone()
    } else {
        load_text(SideName::Base, b)?
    };
    Ok((aligned, base))
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
    /// output folder, loads both text sides (tokenizers, templates) and renders
    /// both contexts of the first record, then loads the weights: a bad
    /// setting, data file or template fails before any slow work.
    pub fn prepare(settings: StudySettings) -> Result<Self, StudyError> {
        settings.validate()?;
        let records = match &settings.queries {
            Queries::File(path) => dataset::load(path, settings.limit)?,
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
        let folder = RunFolder::lock(&settings.out)?;
        // One model under two templates loads its weights once.
        let (a, b) = (&settings.aligned, &settings.base);
        let same_weights = !a.is_remote() && !b.is_remote() && a.model == b.model;
        let local_models = [a, b].iter().filter(|s| !s.is_remote()).count();
        let options = load_options(&settings, if same_weights { 1 } else { local_models })?;
        let started = Instant::now();
        // Text sides first: tokenizers and templates load without weights, so a
        // bad template, a top-k beyond the vocabulary or two vocabularies that
        // differ fail before the slow part. A remote side's text side never
        // needs its weights.
        let (aligned_text, base_text) = load_text_sides(a, b)?;
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
        check_vocabularies(&aligned_text, &base_text)?;
        let run = settings.run_settings();
        let mut first_contexts = (None, None);
        if let Some(first) = records.first() {
            first_contexts = (
                Some(
                    crate::context::render(&run.recorded.aligned_context, &aligned_text, first)
                        .map_err(RunError::from)?,
                ),
                Some(
                    crate::context::render(&run.recorded.base_context, &base_text, first)
                        .map_err(RunError::from)?,
                ),
            );
        }
        // Servers are checked before any local weights load: a wrong URL or
        // name fails fast.
        let connect = |side: SideName,
                       s: &crate::settings::SideSettings,
                       text: &Arc<TextModel>,
                       prompt: &Option<String>| {
            VllmBackend::connect(
                side,
                &s.servers,
                s.served_name.as_deref(),
                settings.server_options,
                text.clone(),
                Some(settings.top_k),
                prompt.as_deref(),
            )
            .map(Arc::new)
            .map_err(StudyError::from_connect)
        };
        let aligned_remote = a
            .is_remote()
            .then(|| connect(SideName::Aligned, a, &aligned_text, &first_contexts.0))
            .transpose()?;
        let base_remote = b
            .is_remote()
            .then(|| connect(SideName::Base, b, &base_text, &first_contexts.1))
            .transpose()?;
        let load_weights = |side, text: &Arc<TextModel>| load_weights(side, text, &options);
        let local = |backend: LocalBackend| match settings.runtime.reuse_prefixes {
            true => backend,
            false => backend.without_prefix_reuse(),
        };
        // Only the aligned side generates; its batch sets how many records are in flight.
        let aligned_backend: Arc<dyn Backend> = match &aligned_remote {
            Some(r) => r.clone(),
            None => {
                let model = load_weights(SideName::Aligned, &aligned_text)?;
                let batch = settings.runtime.batch.unwrap_or_else(|| {
                    let tokens = settings.max_new_tokens + DEFAULT_PROMPT_TOKENS;
                    model.default_batch(tokens.min(model.context_length()))
                });
                Arc::new(local(LocalBackend::with_batch(model, batch)))
            }
        };
        let base_backend: Arc<dyn Backend> = match (&base_remote, same_weights) {
            (Some(r), _) => r.clone(),
            (None, true) => aligned_backend.clone(),
            (None, false) => Arc::new(local(LocalBackend::new(load_weights(
                SideName::Base,
                &base_text,
            )?))),
        };
        let load_seconds = started.elapsed().as_secs_f64();
        let aligned = Side::new(aligned_text, aligned_backend);
        let base = Side::new(base_text, base_backend);
        check_compatible(&aligned, &base)?;
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
            aligned_server: server_identity(&aligned_remote),
            base_server: server_identity(&base_remote),
        };
        // The shard is not fingerprinted, so the shards of one analysis share a fingerprint.
        let fingerprint = fingerprint(&serde_json::to_value(&identity).unwrap_or_default());
        Ok(Self {
            settings,
            records,
            aligned,
            base,
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

    /// What each server of a remote side has done so far in this invocation.
    pub fn server_uses(&self) -> Vec<ServerUse> {
        let mut uses = Vec::new();
        let same = Arc::ptr_eq(&self.aligned.backend, &self.base.backend);
        for (side, s) in [("aligned", &self.aligned), ("base", &self.base)] {
            if side == "base" && same {
                break;
            }
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
            .aligned
            .backend
            .concurrency()
            .max(self.base.backend.concurrency())
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
        let analyze = |record: &Record| analyze_example(&self.aligned, &self.base, record, &run);
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
        };
        let summary = crate::output::write_run(
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
