//! Durable progress: each finished example is written at once as a part file
//! (atomically), so an interrupted run keeps what finished and the same command
//! resumes. A fingerprint of everything that changes results guards the folder.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::output::write_atomic;
use crate::run::ExampleResult;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{dir} holds a run with other settings (fingerprint {found}, this run {expected}); choose another --out or pass --overwrite")]
    Fingerprint {
        dir: PathBuf,
        found: String,
        expected: String,
    },
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> JournalError {
    JournalError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, JournalError> {
    let mut file = std::fs::File::open(path).map_err(|e| file_err(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| file_err(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// sha256 of a value's canonical JSON text.
pub fn fingerprint(value: &serde_json::Value) -> String {
    hex(&Sha256::digest(value.to_string().as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub struct Journal {
    parts: PathBuf,
}

const FINGERPRINT_FILE: &str = "fingerprint.json";

impl Journal {
    /// Opens (or starts) the journal in `dir` for a run with `fingerprint`
    /// (`settings` is stored beside it for people and `merge`). With `overwrite`,
    /// an earlier run of other settings is discarded.
    pub fn open(
        dir: &Path,
        fingerprint: &str,
        settings: &serde_json::Value,
        overwrite: bool,
    ) -> Result<Self, JournalError> {
        let parts = dir.join("parts");
        let stamp = dir.join(FINGERPRINT_FILE);
        if stamp.exists() {
            let found = read_fingerprint(dir)?;
            // A run that finished no example yet has nothing to protect.
            let has_parts = !read_parts(&parts)?.is_empty();
            if found != fingerprint && has_parts {
                if !overwrite {
                    return Err(JournalError::Fingerprint {
                        dir: dir.to_path_buf(),
                        found,
                        expected: fingerprint.to_string(),
                    });
                }
                std::fs::remove_dir_all(&parts)
                    .or_else(|e| if parts.exists() { Err(e) } else { Ok(()) })
                    .map_err(|e| file_err(&parts, e))?;
            }
        }
        std::fs::create_dir_all(&parts).map_err(|e| file_err(&parts, e))?;
        let text = serde_json::json!({"schema_version": crate::output::SCHEMA_VERSION, "fingerprint": fingerprint, "settings": settings});
        write_atomic(&stamp, text.to_string().as_bytes()).map_err(|e| file_err(&stamp, e))?;
        Ok(Self { parts })
    }

    fn part(&self, index: usize) -> PathBuf {
        self.parts.join(format!("{index:07}.json"))
    }

    /// Finished examples by record index.
    pub fn done(&self) -> Result<Vec<(usize, ExampleResult)>, JournalError> {
        read_parts(&self.parts)
    }

    pub fn record(&self, index: usize, result: &ExampleResult) -> Result<(), JournalError> {
        let path = self.part(index);
        let text = serde_json::to_vec(result).map_err(|e| file_err(&path, e))?;
        write_atomic(&path, &text).map_err(|e| file_err(&path, e))
    }
}

pub fn read_fingerprint(dir: &Path) -> Result<String, JournalError> {
    let stamp = dir.join(FINGERPRINT_FILE);
    let text = std::fs::read_to_string(&stamp).map_err(|e| file_err(&stamp, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| file_err(&stamp, e))?;
    v["fingerprint"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| file_err(&stamp, "no fingerprint"))
}

/// Reads every part of a run folder, sorted by record index.
pub fn read_parts(parts: &Path) -> Result<Vec<(usize, ExampleResult)>, JournalError> {
    let mut done = Vec::new();
    let Ok(entries) = std::fs::read_dir(parts) else {
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
