//! `study.toml` in every finished run folder: the effective study, written
//! from the run's manifest (the fingerprinted identity, the servers it used,
//! `group_by`), so `aligntds analyze --study RUN/study.toml --out DIR`
//! reproduces the run. Model references are resolved (absolute paths, Hub
//! ids pinned to their commit), the dtype is the one the run used (`q`, not
//! `auto`), a URIAL prefix and a chat-template file are copied into the run
//! folder (`study/`) and referred to relatively, and the data file is named
//! by path and sha256. A run without a data file or query (one saved by
//! `serve`) gets its queries and answer ids as `queries.jsonl` beside it.

use std::path::{Path, PathBuf};

use aligntds_formats::examples::ExampleLine;
use aligntds_formats::summary::{
    Context, Manifest, ModelIdentity, ResponseSource, TemplateIdentity,
};
use aligntds_formats::FormatError;
use serde::Serialize;

use super::{DtypeKey, SideEntry, StudyFile, StudyKeys};

/// The file's name in a run folder.
pub const RUN_STUDY_FILE: &str = "study.toml";
/// Where copied prefix and chat-template files go, inside the run folder.
const COPIES_DIR: &str = "study";
/// The queries of a run that had no data file (a run saved by `serve`).
const QUERIES_FILE: &str = "queries.jsonl";

fn io_err(path: &Path, e: impl std::fmt::Display) -> FormatError {
    FormatError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A model reference another process can load: an absolute path, or a Hub
/// id pinned to the commit the run used.
fn resolved(model: &ModelIdentity) -> String {
    match (&model.kind, &model.commit) {
        (Some(kind), Some(commit)) if kind == "hub" => {
            let id = model
                .reference
                .split('@')
                .next()
                .unwrap_or(&model.reference);
            format!("{id}@{commit}")
        }
        _ => absolute(&model.reference),
    }
}

fn absolute(path: &str) -> String {
    std::fs::canonicalize(path).map_or_else(|_| path.to_string(), |p| p.display().to_string())
}

/// The dtype the run's local sides used, from their weights' description
/// (`q (auto: ...)` -> q, by DtypeKey's own names); None when every side ran
/// on servers.
fn dtype_of(weights: &[&str]) -> Option<DtypeKey> {
    weights.iter().find_map(|w| {
        let word = w.split_whitespace().next()?;
        serde_json::from_value(serde_json::Value::String(word.into()))
            .ok()
            .filter(|d| *d != DtypeKey::Auto)
    })
}

/// Writes `bytes` to `dir/study/NAME` and returns the path relative to `dir`.
fn copy_in(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, FormatError> {
    let folder = dir.join(COPIES_DIR);
    std::fs::create_dir_all(&folder).map_err(|e| io_err(&folder, e))?;
    aligntds_formats::write_atomic(&folder.join(name), bytes)?;
    Ok(Path::new(COPIES_DIR).join(name))
}

/// A chat template as a study file names it: none for the model's own, a
/// copy of the file it came from while that file is unchanged, else its name.
fn chat_template(
    dir: &Path,
    label: &str,
    t: Option<&TemplateIdentity>,
) -> Result<Option<String>, FormatError> {
    let Some(t) = t else { return Ok(None) };
    if t.name.ends_with(" (model's own)") {
        return Ok(None);
    }
    if let Ok(source) = std::fs::read_to_string(&t.name) {
        if crate::hashing::fingerprint(&serde_json::json!(source)) == t.sha256 {
            let copy = copy_in(
                dir,
                &format!("{label}.chat_template.jinja"),
                source.as_bytes(),
            )?;
            return Ok(Some(copy.display().to_string()));
        }
    }
    Ok(Some(t.name.clone()))
}

struct Side<'a> {
    label: &'a str,
    model: &'a ModelIdentity,
    context: &'a Context,
    template: Option<&'a TemplateIdentity>,
    served_name: Option<String>,
}

fn side_entry(dir: &Path, manifest: &Manifest, side: Side) -> Result<SideEntry, FormatError> {
    let prefix = match &side.context.prefix {
        Some(text) => Some(copy_in(
            dir,
            &format!("{}.prefix.txt", side.label),
            text.as_bytes(),
        )?),
        None => None,
    };
    Ok(SideEntry {
        name: None,
        model: resolved(side.model),
        context: Some(side.context.kind),
        chat_template: chat_template(dir, side.label, side.template)?,
        system: side.context.system.clone(),
        enable_thinking: side.context.enable_thinking,
        prefix,
        template: side.context.template.clone(),
        servers: manifest
            .servers
            .iter()
            .filter(|s| s.side == side.label)
            .map(|s| s.url.clone())
            .collect(),
        served_name: side.served_name,
    })
}

/// Every key before any table, as TOML requires.
#[derive(Serialize)]
struct Written<'a> {
    #[serde(flatten)]
    keys: &'a StudyKeys,
    #[serde(flatten)]
    file: &'a StudyFile,
}

/// Writes `dir/study.toml` for the finished run whose manifest is `manifest`.
pub fn write_for_run(
    dir: &Path,
    manifest: &Manifest,
    curve_positions: usize,
    examples: &[ExampleLine],
) -> Result<(), FormatError> {
    let id = &manifest.identity;
    let s = &id.settings;
    let served = |server: &Option<aligntds_formats::summary::ServerIdentity>| {
        server.as_ref().map(|s| s.served_model.clone())
    };
    let aligned = side_entry(
        dir,
        manifest,
        Side {
            label: "aligned",
            model: &id.aligned,
            context: &s.aligned_context,
            template: id.aligned_chat_template.as_ref(),
            served_name: served(&id.aligned_server),
        },
    )?;
    let base = side_entry(
        dir,
        manifest,
        Side {
            label: "base",
            model: &id.base,
            context: &s.base_context,
            template: id.base_chat_template.as_ref(),
            served_name: served(&id.base_server),
        },
    )?;
    let mut compare = Vec::with_capacity(id.compare.len());
    for (c, named) in id.compare.iter().zip(&s.compare) {
        let mut entry = side_entry(
            dir,
            manifest,
            Side {
                label: &c.name,
                model: &c.model,
                context: &named.context,
                template: c.chat_template.as_ref(),
                served_name: served(&c.server),
            },
        )?;
        entry.name = Some(c.name.clone());
        compare.push(entry);
    }
    let mut response = s.response;
    let (data, data_sha256) = match (&id.data, &id.data_sha256, &id.query) {
        (Some(data), sha, _) => (Some(PathBuf::from(absolute(data))), sha.clone()),
        (None, _, Some(_)) => (None, None),
        // Saved by serve: its answers, as token ids, are the data set.
        (None, _, None) => {
            let mut text = String::new();
            for e in examples {
                let line =
                    serde_json::json!({"id": e.id, "query": e.query, "output_ids": e.answer_ids});
                text.push_str(&line.to_string());
                text.push('\n');
            }
            let path = dir.join(QUERIES_FILE);
            aligntds_formats::write_atomic(&path, text.as_bytes())?;
            response = ResponseSource::Dataset;
            let sha = crate::hashing::sha256_file(&path).map_err(|e| io_err(&path, e))?;
            (Some(PathBuf::from(QUERIES_FILE)), Some(sha))
        }
    };
    let mut weights = vec![id.aligned_weights.as_str(), id.base_weights.as_str()];
    weights.extend(id.compare.iter().map(|c| c.weights.as_str()));
    let fields = id.fields.clone().unwrap_or_default();
    let keys = StudyKeys {
        top_k: Some(s.top_k),
        unshifted_max: Some(s.thresholds.unshifted_max),
        marginal_max: Some(s.thresholds.marginal_max),
        max_new_tokens: Some(s.max_new_tokens),
        response: Some(response),
        stops: Some(s.stops.clone()),
        limit: id.limit,
        batch: None,
        dtype: dtype_of(&weights),
        curve_positions: Some(curve_positions),
        query_field: fields.query,
        answer_field: fields.answer,
        id_field: fields.id,
        // Sampled answers reproduce from the same seed (a serve save's are its data).
        temperature: s
            .sampling
            .filter(|_| response != ResponseSource::Dataset)
            .map(|x| x.temperature),
        top_p: s
            .sampling
            .filter(|_| response != ResponseSource::Dataset)
            .map(|x| x.top_p),
        top_k_sampling: s
            .sampling
            .filter(|x| response != ResponseSource::Dataset && x.top_k > 0)
            .map(|x| x.top_k),
        seed: s
            .sampling
            .filter(|_| response != ResponseSource::Dataset)
            .map(|x| x.seed),
        samples: s
            .sampling
            .filter(|x| response != ResponseSource::Dataset && x.samples > 1)
            .map(|x| x.samples),
        answered_by: s.answered_by.clone(),
    };
    let file = StudyFile {
        data,
        data_sha256,
        query: id.query.clone(),
        out: None,
        group_by: manifest.group_by.clone(),
        aligned,
        base,
        compare,
    };
    let path = dir.join(RUN_STUDY_FILE);
    let body = toml::to_string(&Written {
        keys: &keys,
        file: &file,
    })
    .map_err(|e| io_err(&path, e))?;
    let shard = match (&manifest.shard, &manifest.merged_from) {
        (Some(shard), _) => format!(
            "\n# This run is shard {shard} of the study: add --shard {shard} to redo only it."
        ),
        (None, Some(from)) => format!(
            "\n# Merged from {} shards; one unsharded run gives the same rows.",
            from.len()
        ),
        _ => String::new(),
    };
    let shard = match &s.handover {
        Some(policy) => format!(
            "{shard}\n# This run is the `{policy}` arm of a handover study: \
             `aligntds handover --study {RUN_STUDY_FILE} --policy {policy} --out DIR` reproduces it \
             (in DIR/arms/); `analyze` would analyze the aligned answers instead."
        ),
        None => shard,
    };
    let text = format!(
        "# The study of this run, written by {} from its manifest:\n\
         #   aligntds analyze --study {RUN_STUDY_FILE} --out DIR\n\
         # reproduces it (a flag given beside it overrides a key; see docs/analysis.md).{shard}\n\n{body}",
        id.tool
    );
    aligntds_formats::write_atomic(&path, text.as_bytes())
}
