//! A run folder, owned by one process at a time. Each finished example is
//! written at once as a part file (atomically), so an interrupted run keeps
//! what finished and the same settings resume. A fingerprint of everything
//! that changes results guards the folder; outputs exist only for a finished run.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use aligntds_stats::ExampleResult;

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{dir} is in use by another aligntds process (pid {pid}); wait for it to finish or choose another output folder")]
    Locked { dir: PathBuf, pid: String },
    #[error("{dir} holds a run with other settings (fingerprint {found}, this run {expected}); choose another output folder or overwrite it")]
    Fingerprint {
        dir: PathBuf,
        found: String,
        expected: String,
    },
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> FolderError {
    FolderError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, FolderError> {
    crate::hashing::sha256_file(path).map_err(|e| file_err(path, e))
}

pub use crate::hashing::fingerprint;

const LOCK_FILE: &str = ".aligntds.lock";
const STAMP_FILE: &str = "fingerprint.json";
const PARTS: &str = "parts";

/// What fingerprint.json records.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    pub schema_version: u32,
    pub fingerprint: String,
    /// `i/n` for a shard.
    #[serde(default)]
    pub shard: Option<String>,
    /// How many records this run (or shard) covers: finished when all have parts.
    #[serde(default)]
    pub records: Option<usize>,
    /// The run's identity, for people and for merge.
    pub settings: serde_json::Value,
}

/// An exclusively locked run folder. The lock is the operating system's
/// (released when the process ends, however it ends); the file holds the
/// holder's pid for the message a second process gets.
pub struct RunFolder {
    dir: PathBuf,
    _lock: File,
}

impl RunFolder {
    /// Creates `dir` if needed and takes its lock, refusing at once when another process holds it.
    pub fn lock(dir: &Path) -> Result<Self, FolderError> {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, format!("cannot create: {e}")))?;
        let path = dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| file_err(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(FolderError::Locked {
                    dir: dir.to_path_buf(),
                    pid: if pid.trim().is_empty() {
                        "unknown".into()
                    } else {
                        pid.trim().to_string()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(file_err(&path, e)),
        }
        file.set_len(0).map_err(|e| file_err(&path, e))?;
        write!(file, "{}", std::process::id()).map_err(|e| file_err(&path, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            _lock: file,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn parts(&self) -> PathBuf {
        self.dir.join(PARTS)
    }

    /// Starts or resumes the run of `stamp`. A folder holding finished examples
    /// of another fingerprint is refused, or with `overwrite` emptied first
    /// (outputs, then parts). Old outputs always go before any work starts, so a
    /// killed run never leaves results that look current.
    pub fn begin(&self, stamp: &Stamp, overwrite: bool) -> Result<(), FolderError> {
        let stamp_path = self.dir.join(STAMP_FILE);
        let parts = self.parts();
        if stamp_path.exists() {
            let found = read_stamp(&self.dir)?;
            let has_parts = !read_parts(&self.dir)?.is_empty();
            if found.fingerprint != stamp.fingerprint && has_parts && !overwrite {
                return Err(FolderError::Fingerprint {
                    dir: self.dir.clone(),
                    found: found.fingerprint,
                    expected: stamp.fingerprint.clone(),
                });
            }
            crate::study::output::remove_outputs(&self.dir).map_err(|e| file_err(&self.dir, e))?;
            if found.fingerprint != stamp.fingerprint {
                std::fs::remove_dir_all(&parts)
                    .or_else(|e| if parts.exists() { Err(e) } else { Ok(()) })
                    .map_err(|e| file_err(&parts, e))?;
            }
        } else {
            crate::study::output::remove_outputs(&self.dir).map_err(|e| file_err(&self.dir, e))?;
        }
        std::fs::create_dir_all(&parts).map_err(|e| file_err(&parts, e))?;
        self.stamp(stamp)
    }

    /// Finished examples by record index.
    pub fn done(&self) -> Result<Vec<(usize, ExampleResult)>, FolderError> {
        read_parts(&self.dir)
    }

    pub fn record(&self, index: usize, result: &ExampleResult) -> Result<(), FolderError> {
        let path = self.parts().join(format!("{index:07}.json"));
        let text = serde_json::to_vec(result).map_err(|e| file_err(&path, e))?;
        aligntds_formats::write_atomic(&path, &text).map_err(|e| file_err(&path, e))
    }

    /// Records the run's stamp (merge writes only this and the outputs, no parts).
    pub fn stamp(&self, stamp: &Stamp) -> Result<(), FolderError> {
        let path = self.dir.join(STAMP_FILE);
        let text = serde_json::to_string(stamp).map_err(|e| file_err(&path, e))?;
        aligntds_formats::write_atomic(&path, text.as_bytes()).map_err(|e| file_err(&path, e))
    }
}

/// Reads a run folder's fingerprint.json.
pub fn read_stamp(dir: &Path) -> Result<Stamp, FolderError> {
    let path = dir.join(STAMP_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        file_err(
            &path,
            format!("{e} (not an `aligntds analyze` run folder?)"),
        )
    })?;
    aligntds_formats::from_json_text(&path, &text, None).map_err(|e| file_err(&path, e))
}

/// Reads every part of a run folder, sorted by record index.
pub fn read_parts(dir: &Path) -> Result<Vec<(usize, ExampleResult)>, FolderError> {
    let parts = dir.join(PARTS);
    let mut done = Vec::new();
    let Ok(entries) = std::fs::read_dir(&parts) else {
        return Ok(done);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(index) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read(&path).map_err(|e| file_err(&path, e))?;
        let result: ExampleResult =
            serde_json::from_slice(&text).map_err(|e| file_err(&path, e))?;
        done.push((index, result));
    }
    done.sort_by_key(|(i, _)| *i);
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunFolder::lock(dir.path()).unwrap();
        let err = RunFolder::lock(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("in use") && err.contains(&std::process::id().to_string()),
            "{err}"
        );
        drop(first);
        RunFolder::lock(dir.path()).unwrap();
    }
}
