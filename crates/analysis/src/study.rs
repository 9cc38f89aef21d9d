//! A study end to end: settings checked, queries read, run folder locked,
//! models loaded, every record analyzed (resumably, shardably), outputs
//! written. Front ends (the CLI, a server, bindings) call [`Study::prepare`]
//! and [`Study::run`] with a progress callback.

use std::sync::Arc;
use std::time::Instant;

use aligntds_engine::{EngineError, LanguageModel, LoadOptions, TextModel};
use aligntds_formats::summary::{
    FileIdentity, Manifest, ModelIdentity, RunIdentity, SideTimings, Summary, TemplateIdentity,
    Timings,
};
use aligntds_formats::FormatError;

use crate::backend::{LocalBackend, Side};
use crate::dataset::{self, DatasetError, Record};
use crate::run::{analyze_example, check_compatible, check_vocabularies, ExampleResult, RunError};
use crate::run_folder::{fingerprint, sha256_file, FolderError, RunFolder, Stamp};
use crate::settings::{Field, Queries, SettingError, SideName, StudySettings};

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

impl Study {
    /// Checks the settings and the data (before any model loads), locks the
    /// output folder, loads both text sides (tokenizers, templates) and renders
    /// both contexts of the first record, then loads the weights: a bad
    /// setting, data file or template fails before any slow work.
    pub fn prepare(settings: StudySettings) -> Result<Self, StudyError> {
        settings.validate()?;
        let records = match &settings.queries {
            Queries::File(path) => dataset::load(path, settings.limit)?,
            Queries::Single(q) => vec![Record {
                id: "0".into(),
                query: q.clone(),
                input: None,
                output: None,
                output_ids: None,
            }],
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
        let same_weights = settings.aligned.model == settings.base.model;
        let options = load_options(&settings, if same_weights { 1 } else { 2 })?;
        let started = Instant::now();
        // Text sides first: tokenizers and templates load without weights, so a
        // bad template, a top-k beyond the vocabulary or two vocabularies that
        // differ fail before the slow part.
        let same_text = settings.aligned.model == settings.base.model
            && settings.aligned.chat_template == settings.base.chat_template;
        let load_text = |side: SideName, s: &crate::settings::SideSettings| {
            TextModel::load(&s.model, s.chat_template.as_deref())
                .map(Arc::new)
                .map_err(|source| StudyError::Load {
                    side,
                    reference: s.model.clone(),
                    source,
                })
        };
        let aligned_text = load_text(SideName::Aligned, &settings.aligned)?;
        let base_text = if same_text {
            aligned_text.clone()
        } else {
            load_text(SideName::Base, &settings.base)?
        };
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
        if let Some(first) = records.first() {
            crate::context::render(&run.recorded.aligned_context, &aligned_text, first)
                .map_err(RunError::from)?;
            crate::context::render(&run.recorded.base_context, &base_text, first)
                .map_err(RunError::from)?;
        }
        let load_weights = |side: SideName, text: &Arc<TextModel>| {
            LanguageModel::from_text(text.clone(), &options)
                .map(Arc::new)
                .map_err(|source| StudyError::Load {
                    side,
                    reference: text.reference.clone(),
                    source,
                })
        };
        let aligned_model = load_weights(SideName::Aligned, &aligned_text)?;
        let base_model = if same_weights {
            aligned_model.clone()
        } else {
            load_weights(SideName::Base, &base_text)?
        };
        let load_seconds = started.elapsed().as_secs_f64();
        let local = |text: Arc<TextModel>, model: Arc<LanguageModel>| {
            Side::new(text, Arc::new(LocalBackend::new(model)))
        };
        let aligned = local(aligned_text, aligned_model);
        let base = local(base_text, base_model);
        check_compatible(&aligned, &base)?;
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
        let mut done = resumed;
        for (index, record) in &selected {
            if results.contains_key(index) {
                continue;
            }
            let result = analyze_example(&self.aligned, &self.base, record, &run)?;
            self.folder.record(*index, &result)?;
            done += 1;
            progress(Progress::Example {
                id: &record.id,
                done,
                total: selected.len(),
                tokens: result.positions.len(),
                skipped: result.example.skipped.as_deref(),
            });
            results.insert(*index, result);
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
