//! One way to load a study's sides and to describe them in a run's identity,
//! used by [`crate::study::Study`] and by the live pair, so that what a
//! saved live answer records equals what `analyze` records for the same
//! sides (models, weights, templates and servers).
//!
//! Loading is in two steps so that cheap checks fail before slow work: the
//! text sides (tokenizers, templates; a remote side never reads its weights),
//! then the backends (servers checked with a probe prompt before any local
//! weights load; a model that several sides name loads once).

use std::sync::Arc;

use aligntds_engine::{EngineError, LanguageModel, LoadOptions, TextModel};
use aligntds_formats::sides::ComparedIdentity;
use aligntds_formats::summary::{
    FileIdentity, ModelIdentity, RecordedSettings, RunIdentity, ServerUse, TemplateIdentity,
};

use super::folder::fingerprint;
use super::folder::{sha256_file, FolderError};
use super::record::{check_compatible, RunError};
use super::StudyError;
use crate::backend::{Backend, LocalBackend, Side};
use crate::settings::ServerOptions;
use crate::settings::{Field, Runtime, SettingError, SideName, SideSettings};

/// Prompt tokens assumed per generated answer when the default batch is sized.
const DEFAULT_PROMPT_TOKENS: usize = 1024;

/// What loading the backends needs beyond each side's settings.
pub struct LoadPlan<'a> {
    pub runtime: &'a Runtime,
    pub server_options: ServerOptions,
    pub top_k: usize,
    /// New tokens per answer, which sizes the aligned side's default batch.
    pub max_new_tokens: usize,
}

/// A side ready to score: its text model and backend, and what the run's
/// identity records of it.
pub struct LoadedSide {
    pub name: SideName,
    pub side: Side,
    /// The weights, where the side runs on the local engine.
    pub model: Option<Arc<LanguageModel>>,
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

/// Every side's text model, in order, each distinct (model, template,
/// remote) loaded once.
pub fn load_texts(sides: &[(SideName, &SideSettings)]) -> Result<Vec<Arc<TextModel>>, StudyError> {
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

/// Every side's backend over its loaded text model: servers first (checked
/// with the side's `probes` prompt), then local weights, one backend per
/// distinct local model; then every side is checked against the first
/// (vocabularies and logits widths).
pub fn load_backends(
    sides: &[(SideName, &SideSettings)],
    texts: Vec<Arc<TextModel>>,
    probes: &[Option<String>],
    plan: &LoadPlan<'_>,
) -> Result<Vec<LoadedSide>, StudyError> {
    let mut servers: Vec<Option<Arc<dyn Backend>>> = Vec::with_capacity(sides.len());
    for (i, ((name, s), text)) in sides.iter().zip(&texts).enumerate() {
        let probe = probes.get(i).and_then(|p| p.as_deref());
        let remote = crate::backend::connect(
            *name,
            &s.backend,
            plan.server_options,
            text,
            Some(plan.top_k),
            probe,
        );
        servers.push(remote.map_err(StudyError::from_connect)?);
    }
    let mut local_models: Vec<&str> = sides
        .iter()
        .filter(|(_, s)| !s.is_remote())
        .map(|(_, s)| s.model.as_str())
        .collect();
    local_models.sort();
    local_models.dedup();
    let options = load_options(plan.runtime, local_models.len())?;
    // The aligned side's batch sets how many records are in flight, since
    // only it generates.
    let mut loaded: Vec<(&str, Arc<LanguageModel>, Arc<dyn Backend>)> = Vec::new();
    let mut out = Vec::with_capacity(sides.len());
    for (((name, s), text), server) in sides.iter().zip(texts).zip(servers) {
        let (model, backend): (Option<Arc<LanguageModel>>, Arc<dyn Backend>) = match &server {
            Some(r) => (None, r.clone()),
            None => match loaded.iter().find(|(m, _, _)| *m == s.model) {
                Some((_, model, backend)) => (Some(model.clone()), backend.clone()),
                None => {
                    let model = load_weights(*name, &text, &options)?;
                    let backend = local_backend(&model, *name == SideName::Aligned, plan);
                    loaded.push((s.model.as_str(), model.clone(), backend.clone()));
                    (Some(model), backend)
                }
            },
        };
        out.push(LoadedSide {
            name: *name,
            side: Side::new(text, backend),
            model,
        });
    }
    if let Some((first, rest)) = out.split_first() {
        for other in rest {
            check_compatible(&first.side, &other.side).map_err(|e| name_side(e, other.name))?;
        }
    }
    Ok(out)
}

fn local_backend(
    model: &Arc<LanguageModel>,
    aligned: bool,
    plan: &LoadPlan<'_>,
) -> Arc<dyn Backend> {
    let backend = if aligned {
        let batch = plan.runtime.batch.unwrap_or_else(|| {
            let tokens = plan.max_new_tokens + DEFAULT_PROMPT_TOKENS;
            model.default_batch(tokens.min(model.context_length()))
        });
        LocalBackend::with_batch(model.clone(), batch)
    } else {
        LocalBackend::new(model.clone())
    };
    Arc::new(match plan.runtime.reuse_prefixes {
        true => backend,
        false => backend.without_prefix_reuse(),
    })
}

/// The identity of a run over `sides` (aligned, base, then the compared ones
/// named `compared`): models with file hashes, weights, templates, servers.
/// What the data was (file, hash, query, limit, field mapping) is the
/// caller's to fill in.
pub fn identity(
    tool: String,
    sides: &[LoadedSide],
    compared: &[String],
    runtime: &Runtime,
    settings: RecordedSettings,
) -> Result<RunIdentity, StudyError> {
    let [aligned, base, rest @ ..] = sides else {
        unreachable!("a study has an aligned and a base side")
    };
    let mut compare = Vec::with_capacity(rest.len());
    for (name, side) in compared.iter().zip(rest) {
        compare.push(ComparedIdentity {
            name: name.clone(),
            model: model_identity(&side.side.text)?,
            weights: side.side.backend.weights(),
            chat_template: template(&side.side.text),
            server: side.side.backend.server_identity(),
        });
    }
    Ok(RunIdentity {
        tool,
        aligned: model_identity(&aligned.side.text)?,
        base: model_identity(&base.side.text)?,
        aligned_weights: aligned.side.backend.weights(),
        base_weights: base.side.backend.weights(),
        device: runtime.device.to_string(),
        aligned_chat_template: template(&aligned.side.text),
        base_chat_template: template(&base.side.text),
        settings,
        data: None,
        data_sha256: None,
        query: None,
        limit: None,
        aligned_server: aligned.side.backend.server_identity(),
        base_server: base.side.backend.server_identity(),
        compare,
        fields: None,
    })
}

/// What each server of a remote side has done so far in this process, by side
/// name (a backend shared by sides counts once, under its first side).
pub fn server_uses<'s>(
    backends: impl IntoIterator<Item = (&'s str, &'s Arc<dyn Backend>)>,
) -> Vec<ServerUse> {
    let mut uses = Vec::new();
    let mut seen: Vec<&Arc<dyn Backend>> = Vec::new();
    for (side, backend) in backends {
        if seen.iter().any(|b| Arc::ptr_eq(b, backend)) {
            continue;
        }
        seen.push(backend);
        for stat in backend.server_stats() {
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

fn template(m: &TextModel) -> Option<TemplateIdentity> {
    m.chat_template.as_ref().map(|t| TemplateIdentity {
        name: t.name.clone(),
        sha256: fingerprint(&serde_json::json!(t.source)),
    })
}

/// How the weights load; the chat templates belong to the text sides, loaded before.
fn load_options(runtime: &Runtime, models: usize) -> Result<LoadOptions, StudyError> {
    let device = aligntds_engine::parse_device(&runtime.device.to_string())
        .map_err(|e| SettingError::new(Field::Device, setting_message(e)))?;
    Ok(LoadOptions {
        dtype: runtime.dtype,
        device,
        chat_template: None,
        models_in_memory: models,
    })
}

fn setting_message(e: EngineError) -> String {
    match e.setting() {
        Some((_, message)) => message.to_string(),
        None => e.to_string(),
    }
}

/// A pair check's error, told which reference side it was about.
pub(super) fn name_side(e: RunError, side: SideName) -> RunError {
    match (e, side) {
        (RunError::Incompatible(m), SideName::Compare(_)) => RunError::Incompatible(format!(
            "{side} (a compared side): {}",
            m.replace("base model", "compared model")
                .replace("base ", "compared ")
        )),
        (e, _) => e,
    }
}

/// A side's weights, on top of its loaded text model.
fn load_weights(
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
