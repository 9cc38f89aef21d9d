//! examples.jsonl: one line per record of the run (analyzed or skipped); the
//! per-position values are in positions.parquet.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{check_version, from_json_text, read_text, write_atomic, FormatError};

/// One line of examples.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleLine {
    /// The record's id; with several answers per query, `QUERY_ID#K` for
    /// sample K (counted from 0) of the record `QUERY_ID`.
    pub id: String,
    /// With several answers per query: the record's id in the data (the
    /// query the statistics cluster by) and the sample's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<usize>,
    pub query: String,
    /// The rendered prompts each side saw before the answer.
    pub aligned_context: String,
    pub base_context: String,
    pub answer: String,
    pub answer_ids: Vec<u32>,
    /// `dataset` or `generate` (empty for a record skipped before it had an answer).
    pub source: String,
    pub stop_reason: String,
    /// A trailing end-of-turn marker that the aligned tokenizer does not know was replaced by its eos.
    pub eos_replaced: bool,
    /// Seconds the aligned side spent generating the answer (0 for data set answers).
    #[serde(default)]
    pub generation_seconds: f64,
    /// Seconds each side spent scoring.
    #[serde(default)]
    pub aligned_scoring_seconds: f64,
    #[serde(default)]
    pub base_scoring_seconds: f64,
    pub unshifted: u32,
    pub marginal: u32,
    pub shifted: u32,
    /// Why the record was not analyzed (version 2): `context_overflow`,
    /// `empty_answer` or `empty_context`; absent for analyzed records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// The skip in words, with the numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_detail: Option<String>,
    /// The record's other scalar fields (a data set's `category`, `dataset`,
    /// ...), as text: what `--group-by` splits by.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub fields: std::collections::BTreeMap<String, String>,
    /// The compared sides after `base`, in study order (absent in pair runs);
    /// `unshifted`, `marginal` and `shifted` above are the base side's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sides: Vec<crate::sides::SideCounts>,
    pub schema_version: u32,
}

/// A line with nothing set but the schema version: for code that builds
/// lines (a live answer, synthetic runs, tests) and sets what it knows.
impl Default for ExampleLine {
    fn default() -> Self {
        Self {
            id: String::new(),
            query_id: None,
            sample: None,
            query: String::new(),
            aligned_context: String::new(),
            base_context: String::new(),
            answer: String::new(),
            answer_ids: Vec::new(),
            source: String::new(),
            stop_reason: String::new(),
            eos_replaced: false,
            generation_seconds: 0.0,
            aligned_scoring_seconds: 0.0,
            base_scoring_seconds: 0.0,
            unshifted: 0,
            marginal: 0,
            shifted: 0,
            skipped: None,
            skip_detail: None,
            fields: Default::default(),
            sides: Vec::new(),
            schema_version: crate::SCHEMA_VERSION,
        }
    }
}

impl ExampleLine {
    /// The query this answer belongs to: what intervals resample (the
    /// answers of one query move together, like the positions of one answer).
    pub fn query_key(&self) -> &str {
        self.query_id.as_deref().unwrap_or(&self.id)
    }

    pub fn tokens(&self) -> u64 {
        (self.unshifted + self.marginal + self.shifted) as u64
    }
}

/// Reads `dir/examples.jsonl`; a bad line is an error naming the line and the field.
pub fn read(dir: &Path) -> Result<Vec<ExampleLine>, FormatError> {
    let path = dir.join(crate::EXAMPLES_FILE);
    let text = read_text(&path, "is this a finished `aligntds analyze` run?")?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let version: crate::summary::VersionOnly = from_json_text(&path, line, Some(i + 1))?;
        check_version(&path, version.schema_version)?;
        out.push(from_json_text(&path, line, Some(i + 1))?);
    }
    Ok(out)
}

/// Writes `dir/examples.jsonl` (every line stamped with the current schema version).
pub fn write(dir: &Path, examples: &[ExampleLine]) -> Result<(), FormatError> {
    let path = dir.join(crate::EXAMPLES_FILE);
    let mut out = String::new();
    for e in examples {
        let mut e = e.clone();
        e.schema_version = crate::SCHEMA_VERSION;
        out.push_str(&serde_json::to_string(&e).map_err(|err| crate::file_err(&path, err))?);
        out.push('\n');
    }
    write_atomic(&path, out.as_bytes())
}
