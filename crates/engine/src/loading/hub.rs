//! Hugging Face Hub ids resolved through the standard cache (HF_HOME), with
//! HF_HUB_OFFLINE honoured: offline, only cached files are used.

use std::path::PathBuf;

use hf_hub::{api::sync::ApiBuilder, Cache, Repo, RepoType};

use crate::error::{EngineError, Result};
use crate::loading::checkpoint::{shard_paths, CheckpointFiles, Weights};

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

pub(crate) fn fetch_checkpoint(
    reference: &str,
    id: &str,
    revision: Option<&str>,
    want: Weights,
) -> Result<CheckpointFiles> {
    let repo = match revision {
        Some(rev) => Repo::with_revision(id.to_string(), RepoType::Model, rev.to_string()),
        None => Repo::new(id.to_string(), RepoType::Model),
    };
    let cache = Cache::from_env();
    let cached = cache.repo(repo.clone());
    let api = if offline() {
        None
    } else {
        Some(
            ApiBuilder::from_env()
                .with_progress(true)
                .build()
                .map_err(|e| EngineError::ModelReference {
                    reference: reference.into(),
                    message: format!("cannot set up the Hugging Face Hub client: {e}"),
                })?,
        )
    };
    let api_repo = api.as_ref().map(|a| a.repo(repo));
    let unreachable = |file: &str, why: String| {
        EngineError::ModelReference {
        reference: reference.into(),
        message: format!(
            "cannot get {file} for Hub id `{id}` ({why}) and it is not in the cache at {}; \
             download the checkpoint (e.g. `huggingface-cli download {id} --local-dir DIR`) and pass the local directory DIR instead",
            cache.path().display()
        ),
    }
    };
    // A revision that is a commit hash (an id pinned by a run's study.toml)
    // has no refs/ entry: its files sit in snapshots/COMMIT, as
    // huggingface_hub reads them.
    let pinned = revision.filter(|r| r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit()));
    let snapshot_file = |file: &str| {
        let folder = Repo::new(id.to_string(), RepoType::Model).folder_name();
        let path = cache
            .path()
            .join(folder)
            .join("snapshots")
            .join(pinned?)
            .join(file);
        path.is_file().then_some(path)
    };
    let get = |file: &str, required: bool| -> Result<Option<PathBuf>> {
        if let Some(p) = cached.get(file).or_else(|| snapshot_file(file)) {
            return Ok(Some(p));
        }
        let Some(api_repo) = &api_repo else {
            return if required {
                Err(unreachable(file, "HF_HUB_OFFLINE is set".into()))
            } else {
                Ok(None)
            };
        };
        match api_repo.get(file) {
            Ok(p) => Ok(Some(p)),
            Err(e) if required => Err(unreachable(file, e.to_string())),
            Err(_) => Ok(None),
        }
    };
    let config = get("config.json", true)?.unwrap_or_default();
    let weights = match get("model.safetensors.index.json", false)? {
        _ if want == Weights::Skipped => Vec::new(),
        Some(index) => {
            let mut files = Vec::new();
            for name in shard_paths(&index)? {
                files.push(get(&name, true)?.unwrap_or_default());
            }
            files
        }
        None => vec![get("model.safetensors", true)?.unwrap_or_default()],
    };
    Ok(CheckpointFiles {
        reference: reference.into(),
        config,
        weights,
        tokenizer: get("tokenizer.json", true)?.unwrap_or_default(),
        tokenizer_config: get("tokenizer_config.json", false)?,
        chat_template: get("chat_template.jinja", false)?,
        generation_config: get("generation_config.json", false)?,
    })
}
