//! What one Hugging Face checkpoint is made of, found by a local folder or
//! the Hub cache alike (`source.rs` decides which; `hub.rs` fetches).

use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};

/// The files of one Hugging Face checkpoint.
#[derive(Debug, Clone)]
pub struct CheckpointFiles {
    /// The reference as the user gave it, for messages.
    pub reference: String,
    pub config: PathBuf,
    pub weights: Vec<PathBuf>,
    pub tokenizer: PathBuf,
    pub tokenizer_config: Option<PathBuf>,
    pub chat_template: Option<PathBuf>,
    pub generation_config: Option<PathBuf>,
}

impl CheckpointFiles {
    /// Every file the model is made of, for fingerprints.
    pub fn all(&self) -> Vec<PathBuf> {
        let mut files = vec![self.config.clone(), self.tokenizer.clone()];
        files.extend(self.weights.iter().cloned());
        files.extend(
            [
                &self.tokenizer_config,
                &self.chat_template,
                &self.generation_config,
            ]
            .into_iter()
            .flatten()
            .cloned(),
        );
        files
    }

    /// The Hub commit of files that sit in a cache snapshot (`snapshots/<commit>/...`).
    pub fn snapshot_commit(&self) -> Option<String> {
        let dir = self.config.parent()?;
        (dir.parent()?.file_name()? == "snapshots")
            .then(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
            .flatten()
    }
}

/// Whether a checkpoint's weights are part of what is loaded: a side scored
/// by a server needs only the text files (tokenizer, config, template).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    Required,
    Skipped,
}

/// The distinct shard file names of a `model.safetensors.index.json`, in order.
pub(crate) fn shard_paths(index: &Path) -> Result<Vec<String>> {
    let value = crate::error::read_json(index)?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| EngineError::config(index, "weight_map", "missing or not an object"))?;
    let mut names: Vec<String> = Vec::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| {
            EngineError::config(
                index,
                &format!("weight_map.{tensor}"),
                "expected a file name",
            )
        })?;
        if file.contains('/') || file.contains('\\') {
            return Err(EngineError::config(
                index,
                &format!("weight_map.{tensor}"),
                "file names must not contain paths",
            ));
        }
        if !names.iter().any(|n| n == file) {
            names.push(file.to_string());
        }
    }
    names.sort();
    Ok(names)
}
