//! aligntds-formats: one typed definition of each file in a run folder
//! (summary.json, examples.jsonl, positions.parquet), used by the writer
//! (aligntds-analysis) and by every reader (the report, `summarize`, merge).
//! No model code: a reader of results needs nothing else.
//!
//! Every file carries `schema_version`; readers accept [`READABLE_VERSIONS`].
//! Every write goes to a temporary name and is renamed into place.

mod aggregates;
pub mod examples;
pub mod examples_table;
pub mod fields;
pub mod handover;
mod identity;
pub mod positions;
pub mod sides;
pub mod summary;

use std::path::{Path, PathBuf};

/// The version written. 2: nullable full-vocabulary columns (top-k backends),
/// skipped records, typed files.
pub const SCHEMA_VERSION: u32 = 2;
/// Versions readers accept.
pub const READABLE_VERSIONS: &[u32] = &[1, 2];

pub const SUMMARY_FILE: &str = "summary.json";
pub const EXAMPLES_FILE: &str = "examples.jsonl";
pub const POSITIONS_FILE: &str = "positions.parquet";

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{path}: field `{field}`: {message}")]
    Field {
        path: PathBuf,
        field: String,
        message: String,
    },
}

pub(crate) fn file_err(path: &Path, e: impl std::fmt::Display) -> FormatError {
    FormatError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes `bytes` to `path` atomically (a temporary file in the same folder, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FormatError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| file_err(&tmp, format!("cannot write: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| file_err(path, format!("cannot write: {e}")))
}

/// Parses JSON text into `T`; a missing or mistyped field is an error naming
/// the file and the field's path (e.g. `aggregates.ratios.shifted`).
pub fn from_json_text<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    line: Option<usize>,
) -> Result<T, FormatError> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let message = match line {
            Some(l) => format!("line {l}: {inner}"),
            None => inner.to_string(),
        };
        if field == "." {
            file_err(path, message)
        } else {
            FormatError::Field {
                path: path.to_path_buf(),
                field,
                message,
            }
        }
    })
}

/// Refuses a `schema_version` this build cannot read.
pub(crate) fn check_version(path: &Path, version: u32) -> Result<(), FormatError> {
    if READABLE_VERSIONS.contains(&version) {
        Ok(())
    } else {
        Err(FormatError::Field {
            path: path.to_path_buf(),
            field: "schema_version".into(),
            message: format!(
                "unsupported version {version}; this aligntds reads {READABLE_VERSIONS:?} (a newer aligntds wrote it?)"
            ),
        })
    }
}

pub(crate) fn read_text(path: &Path, what: &str) -> Result<String, FormatError> {
    std::fs::read_to_string(path).map_err(|e| file_err(path, format!("{e} ({what})")))
}
