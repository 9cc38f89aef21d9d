//! A study end to end: settings checked, queries read, run folder locked,
//! models loaded, every record analyzed (resumably, shardably), outputs
//! written. Front ends (the CLI, a server, bindings) call [`Study::prepare`]
//! and [`Study::run`] with a progress callback.

pub(crate) mod answer;
pub mod folder;
pub mod merge;
pub mod output;
pub mod record;
mod remedy;
pub(crate) mod run_error;
pub mod sides;

pub use remedy::Remedy;

pub use sides::model_identity;

use std::time::Instant;

use aligntds_engine::EngineError;
use aligntds_formats::summary::{Manifest, RunIdentity, ServerUse, SideTimings, Summary, Timings};
use aligntds_formats::FormatError;

use crate::backend::ConnectError;
use crate::backend::Side;
use crate::input::dataset::{self, DatasetError, Record};
use crate::settings::{Field, Queries, SettingError, SideName, StudySettings};
use crate::study::folder::{fingerprint, sha256_file, FolderError, RunFolder, Stamp};
use crate::study::record::{analyze_example_sides, check_vocabularies, RunError};
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
    /// The study's cancel token was set: `done` of `total` records are in the
    /// run folder, which resumes where it stopped (no outputs were written).
    #[error("cancelled after {done} of {total} records; run the same study again to resume")]
    Cancelled { done: usize, total: usize },
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
    cancel: aligntds_engine::Cancel,
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
        let records = sampled(records, &settings)?;
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
        let started = Instant::now();
        // Text sides first: tokenizers and templates load without weights, so a
        // bad template, a top-k beyond the vocabulary or two vocabularies that
        // differ fail before the slow part.
        let texts = sides::load_texts(&sides)?;
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
            check_vocabularies(&aligned_text, text).map_err(|e| sides::name_side(e, *name))?;
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
        let plan = sides::LoadPlan {
            runtime: &settings.runtime,
            server_options: settings.server_options,
            top_k: settings.top_k,
            max_new_tokens: settings.max_new_tokens,
        };
        let loaded = sides::load_backends(&sides, texts, &first_contexts, &plan)?;
        let load_seconds = started.elapsed().as_secs_f64();
        let compared_names: Vec<String> = settings.compare.iter().map(|c| c.name.clone()).collect();
        let mut identity = sides::identity(
            format!("aligntds {}", env!("CARGO_PKG_VERSION")),
            &loaded,
            &compared_names,
            &settings.runtime,
            run.recorded.clone(),
        )?;
        identity.data_sha256 = match &settings.queries {
            Queries::File(p) => Some(sha256_file(p)?),
            Queries::Single(_) => None,
        };
        identity.data = match &settings.queries {
            Queries::File(p) => Some(p.display().to_string()),
            Queries::Single(_) => None,
        };
        identity.query = match &settings.queries {
            Queries::Single(q) => Some(q.clone()),
            Queries::File(_) => None,
        };
        identity.limit = settings.limit;
        identity.fields = settings.fields.recorded();
        let mut built = loaded.into_iter().map(|l| l.side);
        let (Some(aligned), Some(base)) = (built.next(), built.next()) else {
            unreachable!("a study has an aligned and a base side")
        };
        let compared: Vec<(String, Side)> = compared_names.into_iter().zip(built).collect();
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
            cancel: Default::default(),
        })
    }

    pub fn settings(&self) -> &StudySettings {
        &self.settings
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// A token that stops [`Self::run`] from any thread: no record starts
    /// after it is set, and records in flight stop at their next decoding
    /// step or scoring chunk; `run` then returns [`StudyError::Cancelled`]
    /// and the folder resumes. (A request already sent to a server is
    /// waited for.)
    pub fn canceller(&self) -> aligntds_engine::Cancel {
        self.cancel.clone()
    }

    /// The study stops when `cancel` is set (several studies can share one,
    /// as a handover study's arms do).
    pub fn cancel_with(&mut self, cancel: aligntds_engine::Cancel) {
        self.cancel = cancel;
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
        sides::server_uses(
            self.named_sides()
                .into_iter()
                .map(|(name, s)| (name, &s.backend)),
        )
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
        let mut run = self.settings.run_settings();
        run.cancel = self.cancel.clone();
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
        let analyzed = if workers == 1 {
            pending
                .iter()
                .take_while(|_| !self.cancel.is_cancelled())
                .try_for_each(|(index, record)| finished(*index, record, analyze(record)))
        } else {
            in_parallel(workers, &pending, &self.cancel, analyze, &mut finished)
        };
        if self.cancel.is_cancelled() {
            // Records that finished are journaled (and in `results`); one cut short is redone on resume.
            return Err(StudyError::Cancelled {
                done: results.len(),
                total,
            });
        }
        analyzed?;
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

/// Each record as its samples (`ID#0`, `ID#1`, ...) when a study draws
/// several answers per query; refuses records whose answers would be read
/// from the data set rather than drawn.
fn sampled(records: Vec<Record>, settings: &StudySettings) -> Result<Vec<Record>, StudyError> {
    let samples = settings.sampling.map_or(1, |s| s.samples);
    if samples <= 1 {
        return Ok(records);
    }
    if settings.response == crate::settings::ResponseSource::Auto {
        let answered = records
            .iter()
            .filter(|r| r.output.is_some() || r.output_ids.is_some())
            .count();
        if answered > 0 {
            return Err(SettingError::new(
                Field::Sampling("samples"),
                format!(
                    "{samples} answers per query are drawn, but {answered} of the {} records have an answer in the data set, which would be read instead; use response = generate",
                    records.len()
                ),
            )
            .into());
        }
    }
    Ok(records
        .iter()
        .flat_map(|r| (0..samples).map(|k| r.sample(k)))
        .collect())
}

/// Analyzes `pending` on `workers` threads; results come back to the calling
/// thread (which journals them) as each finishes. An error stops new records
/// from starting; records already running finish and are kept. The error
/// returned is that of the earliest failing record in input order, as a run
/// one record at a time would report: records are handed out in order, so
/// every record before a failing one has started and is waited for.
fn in_parallel<'r>(
    workers: usize,
    pending: &[(usize, &'r Record)],
    cancel: &aligntds_engine::Cancel,
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
            let cancel = cancel.clone();
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) && !cancel.is_cancelled() {
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
