//! The browsable runs: the report's site for the run folders given at start,
//! built once and held in memory. A request names a file of that site
//! exactly or gets 404, so no path (`..`, encoded or not) reaches anything
//! outside it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::ServeError;

pub(crate) struct Site {
    files: HashMap<String, Vec<u8>>,
}

impl Site {
    pub fn build(runs: &[PathBuf]) -> Result<Self, ServeError> {
        let mut files = HashMap::new();
        if runs.is_empty() {
            return Ok(Self { files });
        }
        let tmp = tempfile::tempdir().map_err(|e| ServeError::Io(e.to_string()))?;
        let out = tmp.path().join("site");
        aligntds_report::build_from(runs, &out)?;
        collect(&out, &out, &mut files)?;
        Ok(Self { files })
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The file at `path` (relative to the site, `/`-separated), if the site has it.
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        let path = if path.is_empty() || path.ends_with('/') {
            format!("{path}index.html")
        } else {
            path.to_string()
        };
        self.files.get(&path).map(Vec::as_slice)
    }
}

fn collect(
    root: &Path,
    dir: &Path,
    files: &mut HashMap<String, Vec<u8>>,
) -> Result<(), ServeError> {
    let io = |e: std::io::Error| ServeError::Io(format!("{}: {e}", dir.display()));
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect(root, &path, files)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            let key = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            files.insert(key, std::fs::read(&path).map_err(io)?);
        }
    }
    Ok(())
}

/// The content type of a site file, by its extension.
pub(crate) fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "md" => "text/markdown; charset=utf-8",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}
