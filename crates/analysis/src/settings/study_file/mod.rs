//! Study files (`aligntds analyze --study FILE`): a whole study in TOML, its
//! sides (a base model and its SFT, DPO and RLHF descendants, each with its
//! own context and servers), where its queries come from and its results go,
//! and every setting that changes results ([`StudyKeys`]), so one file
//! reproduces a run. Paths in the file are relative to it. The layout is
//! documented in docs/analysis.md.

use std::path::{Path, PathBuf};

mod keys;
mod of_run;

use serde::{Deserialize, Serialize};

pub use keys::{DtypeKey, StudyKeys};
pub use of_run::{write_for_run, RUN_STUDY_FILE};

use crate::settings::{
    BackendSettings, ComparedSide, Context, ContextKind, SideSettings, StudySettings,
};

#[derive(Debug, thiserror::Error)]
pub enum StudyFileError {
    #[error("cannot read the study file {path}: {message}")]
    Io { path: PathBuf, message: String },
    /// A TOML or layout error; the message names the key (and line).
    #[error("study file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("study file {path}: the data file {data} changed since the run (sha256 {expected}, now {found})")]
    DataChanged {
        path: PathBuf,
        data: PathBuf,
        expected: String,
        found: String,
    },
}

/// One side as a study file writes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideEntry {
    /// A compared side's name (`[[compare]]` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub model: String,
    /// chat, input, template, plain, urial or custom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ContextKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
    /// The system message of a `chat` context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// `enable_thinking` for a `chat` context's template (Qwen3's switch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_thinking: Option<bool>,
    /// A URIAL prefix file for a `urial` context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<PathBuf>,
    /// A `custom` context's template containing {query}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_name: Option<String>,
}

/// A study file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    /// The data file's sha256 when the study was run (a run's study.toml):
    /// a changed file is refused unless the caller goes on knowingly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    pub aligned: SideEntry,
    pub base: SideEntry,
    /// The compared sides, in stage order after base.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compare: Vec<SideEntry>,
}

/// A study file's sides and sources, paths resolved against its folder.
#[derive(Debug, Clone)]
pub struct StudySides {
    pub aligned: SideSettings,
    pub base: SideSettings,
    pub compare: Vec<ComparedSide>,
    pub data: Option<PathBuf>,
    /// The data file's sha256 when the run that wrote this file ran.
    pub data_sha256: Option<String>,
    pub query: Option<String>,
    pub out: Option<PathBuf>,
    pub group_by: Option<String>,
    /// The study's own settings the file gives.
    pub keys: StudyKeys,
}

impl StudySides {
    /// Refuses a data file whose sha256 is no longer the one the file
    /// records (a run's study.toml): the study would not be the same.
    pub fn check_data(&self, path: &Path) -> Result<(), StudyFileError> {
        let (Some(data), Some(expected)) = (&self.data, &self.data_sha256) else {
            return Ok(());
        };
        let found = crate::hashing::sha256_file(data).map_err(|e| StudyFileError::Invalid {
            path: path.to_path_buf(),
            message: format!("data: cannot read {}: {e}", data.display()),
        })?;
        if &found == expected {
            return Ok(());
        }
        Err(StudyFileError::DataChanged {
            path: path.to_path_buf(),
            data: data.clone(),
            expected: expected.clone(),
            found,
        })
    }

    /// The study the file describes: its sides, sources and keys over the
    /// defaults. `data`/`query` and `out` must be in the file (or set after).
    pub fn settings(&self) -> StudySettings {
        let queries = match (&self.data, &self.query) {
            (Some(d), _) => crate::settings::Queries::File(d.clone()),
            (None, Some(q)) => crate::settings::Queries::Single(q.clone()),
            (None, None) => crate::settings::Queries::File(PathBuf::new()),
        };
        let mut s = StudySettings::new(
            &self.aligned.model,
            &self.base.model,
            queries,
            self.out.clone().unwrap_or_default(),
        );
        s.aligned = self.aligned.clone();
        s.base = self.base.clone();
        s.compare = self.compare.clone();
        s.group_by = self.group_by.clone();
        self.keys.apply(&mut s);
        s
    }
}

/// Reads and checks a study file.
pub fn load(path: &Path) -> Result<StudySides, StudyFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| StudyFileError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    parse(&text, path)
}

/// Parses a study file's text; `path` resolves relative paths and names the
/// file in errors.
pub fn parse(text: &str, path: &Path) -> Result<StudySides, StudyFileError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| StudyFileError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    from_table(table, path)
}

/// [`parse`] for a study already in a table (the Python package builds one
/// from keyword arguments): the same keys, layout and checks; `path` resolves
/// relative paths (against its folder) and names the study in errors.
pub fn from_table(mut table: toml::Table, path: &Path) -> Result<StudySides, StudyFileError> {
    let invalid = |message: String| StudyFileError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let toml_error = |e: toml::de::Error| invalid(e.to_string().trim_end().to_string());
    // The study's keys and the rest (sources, sides) each refuse unknown keys.
    let keys: toml::Table = StudyKeys::NAMES
        .iter()
        .filter_map(|k| table.remove(*k).map(|v| (k.to_string(), v)))
        .collect();
    let keys: StudyKeys = keys.try_into().map_err(toml_error)?;
    let file: StudyFile = table.try_into().map_err(|e: toml::de::Error| {
        let message = e.to_string();
        let message = message.trim_end();
        if message.contains("unknown field") {
            invalid(format!(
                "{message}; the study's own keys are {}",
                StudyKeys::NAMES.join(", ")
            ))
        } else {
            invalid(message.to_string())
        }
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        }
    };
    let side = |entry: &SideEntry,
                key: &str,
                default: ContextKind|
     -> Result<SideSettings, StudyFileError> {
        let prefix = match &entry.prefix {
            Some(p) => Some(std::fs::read_to_string(resolve(p)).map_err(|e| {
                invalid(format!(
                    "{key}.prefix: cannot read {}: {e}",
                    resolve(p).display()
                ))
            })?),
            None => None,
        };
        let chat_template = entry.chat_template.as_ref().map(|t| {
            // A template file is relative to the study file; a name stays a name.
            let p = Path::new(t);
            if t.ends_with(".jinja") || t.contains('/') {
                resolve(p).display().to_string()
            } else {
                t.clone()
            }
        });
        Ok(SideSettings {
            model: entry.model.clone(),
            chat_template,
            context: Context {
                kind: entry.context.unwrap_or(default),
                system: entry.system.clone(),
                prefix,
                template: entry.template.clone(),
                enable_thinking: entry.enable_thinking,
            },
            backend: BackendSettings::from_servers(
                entry.servers.clone(),
                entry.served_name.clone(),
            ),
        })
    };
    for (key, entry) in [("aligned", &file.aligned), ("base", &file.base)] {
        if entry.name.is_some() {
            return Err(invalid(format!(
                "{key}.name: the {key} side's name is fixed; only [[compare]] sides take a name"
            )));
        }
    }
    let mut compare = Vec::with_capacity(file.compare.len());
    for (i, entry) in file.compare.iter().enumerate() {
        let key = format!("compare[{i}]");
        let name = entry.name.clone().ok_or_else(|| {
            invalid(format!(
                "{key}: a compared side needs a `name` (e.g. name = \"sft\")"
            ))
        })?;
        compare.push(ComparedSide {
            name,
            side: side(entry, &key, ContextKind::Template)?,
        });
    }
    Ok(StudySides {
        aligned: side(&file.aligned, "aligned", ContextKind::Chat)?,
        base: side(&file.base, "base", ContextKind::Template)?,
        compare,
        data: file.data.as_deref().map(resolve),
        data_sha256: file.data_sha256,
        query: file.query,
        out: file.out.as_deref().map(resolve),
        group_by: file.group_by,
        keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_study_file_gives_sides_in_order_with_paths_beside_it() {
        let text = r#"
data = "queries.json"
out = "runs/stages"
group_by = "category"

[aligned]
model = "allenai/OLMo-2-0425-1B-Instruct"
enable_thinking = false

[base]
model = "allenai/OLMo-2-0425-1B"

[[compare]]
name = "sft"
model = "allenai/OLMo-2-0425-1B-SFT"
context = "plain"

[[compare]]
name = "dpo"
model = "allenai/OLMo-2-0425-1B-DPO"
servers = ["http://gpu1:8000"]
"#;
        let s = parse(text, Path::new("/studies/olmo.toml")).unwrap();
        assert_eq!(s.aligned.context.kind, ContextKind::Chat);
        assert_eq!(s.aligned.context.enable_thinking, Some(false));
        assert_eq!(s.base.context.kind, ContextKind::Template);
        assert_eq!(s.base.context.enable_thinking, None);
        let names: Vec<&str> = s.compare.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["sft", "dpo"]);
        assert_eq!(s.compare[0].side.context.kind, ContextKind::Plain);
        assert_eq!(s.compare[1].side.servers(), ["http://gpu1:8000"]);
        assert_eq!(s.data.unwrap(), Path::new("/studies/queries.json"));
        assert_eq!(s.out.unwrap(), Path::new("/studies/runs/stages"));
        assert_eq!(s.group_by.as_deref(), Some("category"));
    }

    #[test]
    fn mistakes_name_the_key() {
        let p = Path::new("s.toml");
        let e = parse(
            "[aligned]\nmodel = \"a\"\n[base]\nmodel = \"b\"\nmodle = 1\n",
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("s.toml") && e.contains("modle"), "{e}");
        let e = parse(
            "[aligned]\nmodel = \"a\"\n[base]\nmodel = \"b\"\n[[compare]]\nmodel = \"c\"\n",
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("compare[0]") && e.contains("name"), "{e}");
        let e = parse(
            "[aligned]\nmodel = \"a\"\n[base]\nmodel = \"b\"\ncontext = \"zero\"\n",
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("context") && e.contains("zero"), "{e}");
        let e = parse("[aligned]\nmodel = \"a\"\n", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("base"), "{e}");
    }
}
