//! Query sets, by extension: JSON (a list of records, or an object holding
//! one under `data`, `instances` or `records`: AlignTDS/URIAL, AlpacaEval),
//! JSONL / NDJSON, Parquet (Hugging Face datasets' format), CSV with a header,
//! or a .txt file with one query per line. A malformed record is reported with
//! file and line (or record index, or Parquet column) before any model loads.
//! Text files may start with a UTF-8 byte-order mark (Notepad, Excel's "CSV
//! UTF-8"); UTF-16 files are refused naming their encoding. Which fields hold
//! the query, answer and id is a [`FieldMap`] (see [`fields`]).

mod fields;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use fields::FieldMap;
use fields::{csv_value, record_from};

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Record {
        path: PathBuf,
        line: String,
        message: String,
    },
}

/// One query, with the answer the data set may already hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    pub query: String,
    /// A pre-rendered prompt (the `input` field), for the `input` context.
    pub input: Option<String>,
    pub output: Option<String>,
    pub output_ids: Option<Vec<u32>>,
    /// The record's other scalar fields as text (`category`, `dataset`, ...),
    /// for `--group-by`.
    pub fields: std::collections::BTreeMap<String, String>,
    /// Set on one of several answers drawn for a query: the record's id in
    /// the data and the sample's index (the record's own id is `ID#K`).
    pub sample: Option<(String, usize)>,
}

impl Record {
    /// The query this record answers: its id in the data.
    pub fn query_id(&self) -> &str {
        self.sample.as_ref().map_or(&self.id, |(id, _)| id)
    }

    /// Which sample of its query this record is (0 for a record of one sample).
    pub fn sample_index(&self) -> usize {
        self.sample.as_ref().map_or(0, |(_, k)| *k)
    }

    /// Sample `index` of this record, as one record of its own (`ID#K`).
    pub fn sample(&self, index: usize) -> Self {
        Self {
            id: format!("{}#{index}", self.id),
            sample: Some((self.id.clone(), index)),
            ..self.clone()
        }
    }

    /// A query alone: no pre-rendered input, no answer.
    pub fn query(id: impl Into<String>, query: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            query: query.into(),
            input: None,
            output: None,
            output_ids: None,
            fields: Default::default(),
            sample: None,
        }
    }
}

/// The formats [`load`] reads, as named in errors.
pub const FORMATS: &str = ".json (a list, or {\"data\"|\"instances\"|\"records\": [...]}), .jsonl/.ndjson, .parquet, .csv (with a header) or .txt (one query per line)";

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Refuses UTF-16 (and UTF-32) text by its byte-order mark, naming it:
/// Excel's "Unicode text" and PowerShell's `>` write UTF-16.
fn check_not_utf16(path: &Path, head: &[u8]) -> Result<(), DatasetError> {
    let encoding = match head {
        [0xFF, 0xFE, 0, 0, ..] => "UTF-32 (little-endian)",
        [0, 0, 0xFE, 0xFF, ..] => "UTF-32 (big-endian)",
        [0xFF, 0xFE, ..] => "UTF-16 (little-endian)",
        [0xFE, 0xFF, ..] => "UTF-16 (big-endian)",
        _ => return Ok(()),
    };
    Err(DatasetError::Record {
        path: path.to_path_buf(),
        line: "1".into(),
        message: format!(
            "the file is {encoding} text (what Excel's \"Unicode text\" writes); save it as UTF-8 \
             (Excel: \"CSV UTF-8\"; or `iconv -f UTF-16 -t UTF-8 IN > OUT`)"
        ),
    })
}

/// The file as UTF-8 text, without a leading byte-order mark.
fn read_text(path: &Path) -> Result<String, DatasetError> {
    let mut bytes = std::fs::read(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    check_not_utf16(path, &bytes)?;
    if bytes.starts_with(UTF8_BOM) {
        bytes.drain(..UTF8_BOM.len());
    }
    String::from_utf8(bytes).map_err(|e| DatasetError::Record {
        path: path.to_path_buf(),
        line: format!("byte {}", e.utf8_error().valid_up_to()),
        message: format!("not UTF-8 text; the data formats are {FORMATS}"),
    })
}

/// The first bytes of a file (for its byte-order mark).
fn read_head(path: &Path) -> Result<Vec<u8>, DatasetError> {
    use std::io::Read;
    let mut head = Vec::with_capacity(4);
    std::fs::File::open(path)
        .and_then(|f| f.take(4).read_to_end(&mut head))
        .map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(head)
}

/// Reads a data set, choosing the format by extension (see [`FORMATS`]),
/// the query, answer and id from the fields `fields` names (the default
/// names where it names none).
pub fn load(
    path: &Path,
    limit: Option<usize>,
    fields: &FieldMap,
) -> Result<Vec<Record>, DatasetError> {
    let err = |line: String, message: String| DatasetError::Record {
        path: path.to_path_buf(),
        line,
        message,
    };
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut records = Vec::new();
    match ext.as_str() {
        "json" => {
            let text = read_text(path)?;
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| err(e.line().to_string(), format!("invalid JSON: {e}")))?;
            let items = match &value {
                Value::Array(items) => items,
                Value::Object(map) => ["data", "instances", "records"]
                    .iter()
                    .find_map(|k| map.get(*k).and_then(Value::as_array))
                    .ok_or_else(|| {
                        err("1".into(), "expected a JSON list of records, or an object with one under `data`, `instances` or `records`".into())
                    })?,
                _ => return Err(err("1".into(), "expected a JSON list of records".into())),
            };
            for (i, item) in items.iter().enumerate() {
                records.push(record_from(item, i, fields, &|m| {
                    err(format!("record {i}"), m)
                })?);
            }
        }
        "jsonl" | "ndjson" => {
            let text = read_text(path)?;
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let at = |m: String| err((n + 1).to_string(), m);
                let value: Value =
                    serde_json::from_str(line).map_err(|e| at(format!("invalid JSON: {e}")))?;
                records.push(record_from(&value, records.len(), fields, &at)?);
            }
        }
        "csv" => {
            let head = read_head(path)?;
            check_not_utf16(path, &head)?;
            let mut reader = csv::ReaderBuilder::new()
                .flexible(false)
                .from_path(path)
                .map_err(|e| err("1".into(), format!("cannot read CSV: {e}")))?;
            let header = reader
                .headers()
                .map_err(|e| err("1".into(), format!("cannot read the CSV header: {e}")))?
                .clone();
            for (n, row) in reader.records().enumerate() {
                let line = (n + 2).to_string();
                let row = row.map_err(|e| err(line.clone(), format!("invalid CSV: {e}")))?;
                let object: serde_json::Map<String, Value> = header
                    .iter()
                    .zip(row.iter())
                    .map(|(k, v)| (k.to_string(), csv_value(k, v, fields)))
                    .collect();
                let at = |m: String| err(line.clone(), m);
                records.push(record_from(
                    &Value::Object(object),
                    records.len(),
                    fields,
                    &at,
                )?);
            }
        }
        "parquet" => {
            let file = std::fs::File::open(path).map_err(|source| DatasetError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            use parquet::file::reader::{FileReader, SerializedFileReader};
            let reader = SerializedFileReader::new(file)
                .map_err(|e| err("file".into(), format!("not a readable Parquet file: {e}")))?;
            let rows = reader
                .get_row_iter(None)
                .map_err(|e| err("file".into(), format!("cannot read Parquet rows: {e}")))?;
            for (n, row) in rows.enumerate() {
                let at_row = format!("row {n}");
                let row = row.map_err(|e| err(at_row.clone(), format!("cannot read: {e}")))?;
                let value = row.to_json_value();
                let at = |m: String| err(format!("{at_row} (Parquet columns)"), m);
                records.push(record_from(&value, records.len(), fields, &at)?);
            }
        }
        "txt" | "text" => {
            let text = read_text(path)?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let id = records.len().to_string();
                records.push(Record::query(id, line));
            }
        }
        other => {
            return Err(err(
                "file".into(),
                format!(
                    "unknown data format `{}`; the data formats are {FORMATS}",
                    if other.is_empty() {
                        "(no extension)"
                    } else {
                        other
                    }
                ),
            ))
        }
    }
    if records.is_empty() {
        return Err(err("1".into(), "no records".into()));
    }
    if let Some(answer) = &fields.answer {
        // Records may lack an answer (it is generated), but a field that no
        // record has is a misspelling.
        if records.iter().all(|r| r.output.is_none()) {
            return Err(err(
                "file".into(),
                format!("no record has an answer under `{answer}` (the answer field)"),
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for r in &records {
        if !seen.insert(r.id.clone()) {
            return Err(err(format!("record id {}", r.id), "duplicate id".into()));
        }
    }
    if let Some(n) = limit {
        records.truncate(n);
    }
    Ok(records)
}

#[cfg(test)]
mod tests;
