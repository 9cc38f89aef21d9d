//! Model references: a local checkpoint directory or a Hugging Face Hub id,
//! resolved to the files a model is made of.

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

const SINGLE_WEIGHTS: &str = "model.safetensors";
const WEIGHTS_INDEX: &str = "model.safetensors.index.json";

/// Resolves `reference`: an existing directory is a local checkpoint; otherwise
/// `owner/name[@revision]` is looked up on the Hugging Face Hub (cache first).
pub fn resolve(reference: &str) -> Result<CheckpointFiles> {
    let path = Path::new(reference);
    if path.is_dir() {
        return local_checkpoint(reference, path);
    }
    if path.exists() {
        return Err(EngineError::ModelReference {
            reference: reference.into(),
            message:
                "is a file, not a checkpoint directory; pass the directory holding config.json"
                    .into(),
        });
    }
    match parse_hub_id(reference) {
        Some((id, revision)) => crate::hub::fetch_checkpoint(reference, id, revision),
        None => Err(EngineError::ModelReference {
            reference: reference.into(),
            message: "no such directory, and not a Hugging Face Hub id (owner/name[@revision])"
                .into(),
        }),
    }
}

/// Splits `owner/name[@revision]`; `None` when the text cannot be a hub id.
pub fn parse_hub_id(reference: &str) -> Option<(&str, Option<&str>)> {
    let (id, revision) = match reference.split_once('@') {
        Some((id, rev)) if !rev.is_empty() => (id, Some(rev)),
        Some(_) => return None,
        None => (reference, None),
    };
    let mut parts = id.split('/');
    let (owner, name) = (parts.next()?, parts.next()?);
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    (parts.next().is_none() && valid(owner) && valid(name) && !id.contains(".."))
        .then_some((id, revision))
}

fn local_checkpoint(reference: &str, dir: &Path) -> Result<CheckpointFiles> {
    let required = |name: &str| -> Result<PathBuf> {
        let p = dir.join(name);
        if p.is_file() {
            Ok(p)
        } else {
            Err(EngineError::ModelReference {
                reference: reference.into(),
                message: format!("missing {}; a Hugging Face checkpoint directory needs config.json, tokenizer.json and model*.safetensors", p.display()),
            })
        }
    };
    let optional = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
    let config = required("config.json")?;
    let weights = if let Some(index) = optional(WEIGHTS_INDEX) {
        shard_paths(&index)?
            .into_iter()
            .map(|name| dir.join(name))
            .collect()
    } else {
        vec![required(SINGLE_WEIGHTS)?]
    };
    Ok(CheckpointFiles {
        reference: reference.into(),
        config,
        weights,
        tokenizer: required("tokenizer.json")?,
        tokenizer_config: optional("tokenizer_config.json"),
        chat_template: optional("chat_template.jinja"),
        generation_config: optional("generation_config.json"),
    })
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

#[cfg(test)]
mod tests {
    use super::parse_hub_id;

    #[test]
    fn hub_ids_are_recognised() {
        assert_eq!(
            parse_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct"),
            Some(("HuggingFaceTB/SmolLM2-135M-Instruct", None))
        );
        assert_eq!(
            parse_hub_id("meta-llama/Llama-2-7b-hf@main"),
            Some(("meta-llama/Llama-2-7b-hf", Some("main")))
        );
        for bad in [
            "model",
            "a/b/c",
            "a/",
            "/b",
            "a/b@",
            "../x",
            "a b/c",
            "./models/x",
        ] {
            assert_eq!(parse_hub_id(bad), None, "{bad}");
        }
    }
}
