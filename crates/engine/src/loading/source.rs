//! Model references: a local checkpoint directory or a Hugging Face Hub id,
//! resolved to the files a model is made of.

use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};
use crate::loading::checkpoint::shard_paths;
pub use crate::loading::checkpoint::{CheckpointFiles, Weights};

const SINGLE_WEIGHTS: &str = "model.safetensors";
const WEIGHTS_INDEX: &str = "model.safetensors.index.json";

/// What a model reference names, decided in this one place for loading,
/// fingerprints, manifests and `inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A Hugging Face checkpoint folder (config.json, tokenizer.json, *.safetensors).
    Checkpoint(PathBuf),
    /// A GGUF file.
    Gguf(PathBuf),
    /// A Hugging Face Hub id, resolved through the cache (and the Hub unless offline).
    Hub {
        id: String,
        revision: Option<String>,
    },
}

/// A reference that can only mean a path: it starts with `.` or `/` (or `~`),
/// ends in a weights suffix, or has a path separator whose parent exists.
pub fn looks_like_path(reference: &str) -> bool {
    let lower = reference.to_ascii_lowercase();
    reference.starts_with('.')
        || reference.starts_with('/')
        || reference.starts_with('~')
        || reference.contains('\\')
        || [".gguf", ".safetensors", ".bin"]
            .iter()
            .any(|s| lower.ends_with(s))
        || Path::new(reference)
            .parent()
            .is_some_and(|p| !p.as_os_str().is_empty() && p.exists())
}

impl ModelSource {
    pub fn parse(reference: &str) -> Result<Self> {
        let path = Path::new(reference);
        let bad = |message: &str| EngineError::ModelReference {
            reference: reference.into(),
            message: message.into(),
        };
        if path.is_dir() {
            return Ok(Self::Checkpoint(path.to_path_buf()));
        }
        if path.is_file() {
            return if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
            {
                Ok(Self::Gguf(path.to_path_buf()))
            } else {
                Err(bad("is a file, but neither a .gguf file nor a checkpoint directory; pass a .gguf file or the directory holding config.json"))
            };
        }
        if looks_like_path(reference) {
            return Err(bad("no such file or folder"));
        }
        match parse_hub_id(reference) {
            Some((id, revision)) => Ok(Self::Hub {
                id: id.to_string(),
                revision: revision.map(str::to_string),
            }),
            None => Err(bad(
                "no such file or folder, and not a Hugging Face Hub id (owner/name[@revision])",
            )),
        }
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

pub(crate) fn local_checkpoint(
    reference: &str,
    dir: &Path,
    want: Weights,
) -> Result<CheckpointFiles> {
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
    let weights = if want == Weights::Skipped {
        Vec::new()
    } else if let Some(index) = optional(WEIGHTS_INDEX) {
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

#[cfg(test)]
mod tests {
    use super::{parse_hub_id, ModelSource};

    #[test]
    fn a_hub_id_with_a_revision_stays_a_hub_id() {
        assert!(matches!(
            ModelSource::parse("acme/tiny-llama@main").unwrap(),
            ModelSource::Hub { revision: Some(r), .. } if r == "main"
        ));
    }

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
