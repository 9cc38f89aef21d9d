//! Query sets, by extension: JSON (a list of records, or an object holding
//! one under `data`, `instances` or `records`: AlignTDS/URIAL, AlpacaEval),
//! JSONL / NDJSON, Parquet (Hugging Face datasets' format), CSV with a header,
//! or a .txt file with one query per line. A malformed record is reported with
//! file and line (or record index, or Parquet column) before any model loads.

use std::path::{Path, PathBuf};

use serde_json::Value;

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
}

impl Record {
    /// A query alone: no pre-rendered input, no answer.
    pub fn query(id: impl Into<String>, query: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            query: query.into(),
            input: None,
            output: None,
            output_ids: None,
            fields: Default::default(),
        }
    }
}

const QUERY_KEYS: &[&str] = &["pure_input", "instruction", "prompt", "query"];
const ANSWER_KEYS: &[&str] = &["output", "response"];
/// Fields read as the query, answer, input or id: never kept as labels.
const KNOWN_KEYS: &[&str] = &[
    "pure_input",
    "instruction",
    "prompt",
    "query",
    "output",
    "response",
    "output_ids",
    "input",
    "id",
];
/// Longer record fields are texts, not labels to group by.
const MAX_FIELD_BYTES: usize = 200;

fn record_from(
    obj: &Value,
    index: usize,
    at: &dyn Fn(String) -> DatasetError,
) -> Result<Record, DatasetError> {
    let map = obj
        .as_object()
        .ok_or_else(|| at("expected a JSON object".into()))?;
    let query = QUERY_KEYS.iter().find_map(|k| map.get(*k)).ok_or_else(|| {
        at(format!(
            "no query: expected one of the fields {}",
            QUERY_KEYS.join(", ")
        ))
    })?;
    let query = query
        .as_str()
        .ok_or_else(|| at("the query must be a string".into()))?
        .to_string();
    let output = match ANSWER_KEYS.iter().find_map(|k| map.get(*k)) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(items)) => match items.first() {
            Some(Value::String(s)) => Some(s.clone()),
            None => None,
            _ => return Err(at("`output` as a list must hold strings".into())),
        },
        Some(_) => return Err(at("`output` must be a string or a list of strings".into())),
    };
    let output_ids = match map.get("output_ids") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
                .collect::<Option<Vec<u32>>>()
                .ok_or_else(|| at("`output_ids` must be a list of token ids".into()))?,
        ),
        Some(_) => return Err(at("`output_ids` must be a list of token ids".into())),
    };
    let id = match map.get("id") {
        None | Some(Value::Null) => index.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let input = map.get("input").and_then(Value::as_str).map(str::to_string);
    let fields = map
        .iter()
        .filter(|(k, _)| !KNOWN_KEYS.contains(&k.as_str()))
        .filter_map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            // Long texts (another model's answer, a reference) are not labels.
            (text.len() <= MAX_FIELD_BYTES).then(|| (k.clone(), text))
        })
        .collect();
    Ok(Record {
        id,
        query,
        input,
        output,
        output_ids,
        fields,
    })
}

/// A CSV cell as JSON: `output_ids` as a JSON list when it parses as one, else text.
fn csv_value(column: &str, cell: &str) -> Value {
    if column == "output_ids" {
        if let Ok(v @ Value::Array(_)) = serde_json::from_str::<Value>(cell) {
            return v;
        }
    }
    if cell.is_empty() && column != "id" {
        return Value::Null;
    }
    Value::String(cell.to_string())
}

/// The formats [`load`] reads, as named in errors.
pub const FORMATS: &str = ".json (a list, or {\"data\"|\"instances\"|\"records\": [...]}), .jsonl/.ndjson, .parquet, .csv (with a header) or .txt (one query per line)";

fn read_text(path: &Path) -> Result<String, DatasetError> {
    let bytes = std::fs::read(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| DatasetError::Record {
        path: path.to_path_buf(),
        line: format!("byte {}", e.utf8_error().valid_up_to()),
        message: format!("not UTF-8 text; the data formats are {FORMATS}"),
    })
}

/// Reads a data set, choosing the format by extension (see [`FORMATS`]).
pub fn load(path: &Path, limit: Option<usize>) -> Result<Vec<Record>, DatasetError> {
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
                records.push(record_from(item, i, &|m| err(format!("record {i}"), m))?);
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
                records.push(record_from(&value, records.len(), &at)?);
            }
        }
        "csv" => {
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
                    .map(|(k, v)| (k.to_string(), csv_value(k, v)))
                    .collect();
                let at = |m: String| err(line.clone(), m);
                records.push(record_from(&Value::Object(object), records.len(), &at)?);
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
                records.push(record_from(&value, records.len(), &at)?);
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
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_every_format() {
        let (_d, p) = write(
            "a.json",
            r#"[{"id": 7, "pure_input": "q1", "input": "<s>q1", "output": ["a1"], "reference": "x"},
                                        {"instruction": "q2", "output": "a2"}]"#,
        );
        let r = load(&p, None).unwrap();
        assert_eq!(
            r[0],
            Record {
                id: "7".into(),
                query: "q1".into(),
                input: Some("<s>q1".into()),
                output: Some("a1".into()),
                output_ids: None,
                // A short extra field is a label; the known ones are not.
                fields: [("reference".to_string(), "x".to_string())].into(),
            }
        );
        assert_eq!(
            (
                r[1].id.as_str(),
                r[1].query.as_str(),
                r[1].output.as_deref()
            ),
            ("1", "q2", Some("a2"))
        );
        let (_d, p) = write("b.jsonl", "{\"prompt\": \"q\", \"response\": \"r\", \"output_ids\": [1, 2]}\n\n{\"query\": \"z\"}\n");
        let r = load(&p, None).unwrap();
        assert_eq!(r[0].output_ids, Some(vec![1, 2]));
        assert_eq!(r[1].output, None);
        let (_d, p) = write("c.txt", "first query\n\nsecond query\n");
        let r = load(&p, Some(1)).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].query, "first query");
    }

    #[test]
    fn malformed_records_name_file_and_line() {
        let (_d, p) = write(
            "bad.jsonl",
            "{\"prompt\": \"ok\"}\n{\"answer\": \"no query\"}\n",
        );
        let e = load(&p, None).unwrap_err().to_string();
        assert!(e.contains("bad.jsonl:2") && e.contains("no query"), "{e}");
        let (_d, p) = write("bad2.jsonl", "{\"prompt\": \"ok\"}\n{not json\n");
        let e = load(&p, None).unwrap_err().to_string();
        assert!(
            e.contains("bad2.jsonl:2") && e.contains("invalid JSON"),
            "{e}"
        );
        let (_d, p) = write(
            "bad3.json",
            r#"[{"pure_input": "a", "output_ids": [1, -2]}]"#,
        );
        let e = load(&p, None).unwrap_err().to_string();
        assert!(e.contains("record 0") && e.contains("output_ids"), "{e}");
        let (_d, p) = write(
            "dup.json",
            r#"[{"id": "x", "pure_input": "a"}, {"id": "x", "pure_input": "b"}]"#,
        );
        assert!(load(&p, None)
            .unwrap_err()
            .to_string()
            .contains("duplicate id"));
    }

    #[test]
    fn reads_csv_ndjson_wrapped_json_and_parquet() {
        let (_d, p) = write(
            "q.csv",
            "id,instruction,output,category\nx1,\"What, exactly?\",,safety\nx2,Tell me,\"An answer\",info\n",
        );
        let r = load(&p, None).unwrap();
        assert_eq!(r.len(), 2, "the header is not a query");
        assert_eq!(
            (
                r[0].id.as_str(),
                r[0].query.as_str(),
                r[0].output.as_deref()
            ),
            ("x1", "What, exactly?", None)
        );
        assert_eq!(r[1].output.as_deref(), Some("An answer"));
        let (_d, p) = write("q.ndjson", "{\"query\": \"a\"}\n{\"query\": \"b\"}\n");
        assert_eq!(load(&p, None).unwrap().len(), 2);
        let (_d, p) = write(
            "q.json",
            r#"{"instances": [{"instruction": "a"}, {"instruction": "b"}]}"#,
        );
        assert_eq!(load(&p, None).unwrap()[1].query, "b");

        // Parquet, as Hugging Face datasets write it: string columns and a list column.
        use arrow_array::builder::{ListBuilder, UInt32Builder};
        use arrow_array::{ArrayRef, RecordBatch, StringArray};
        use std::sync::Arc;
        let mut ids = ListBuilder::new(UInt32Builder::new());
        ids.values().append_slice(&[5, 6]);
        ids.append(true);
        ids.append(false);
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("id", Arc::new(StringArray::from(vec!["p0", "p1"]))),
            (
                "instruction",
                Arc::new(StringArray::from(vec!["first", "second"])),
            ),
            ("output_ids", Arc::new(ids.finish())),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.parquet");
        let mut w = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(&path).unwrap(),
            batch.schema(),
            None,
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let r = load(&path, None).unwrap();
        assert_eq!(r[0].query, "first");
        assert_eq!(r[0].output_ids, Some(vec![5, 6]));
        assert_eq!((r[1].id.as_str(), r[1].output_ids.clone()), ("p1", None));
        // A Parquet file without a query column says which columns it expected.
        let batch = RecordBatch::try_from_iter(vec![(
            "text",
            Arc::new(StringArray::from(vec!["x"])) as ArrayRef,
        )])
        .unwrap();
        let bad = dir.path().join("bad.parquet");
        let mut w = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(&bad).unwrap(),
            batch.schema(),
            None,
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let e = load(&bad, None).unwrap_err().to_string();
        assert!(
            e.contains("row 0") && e.contains("Parquet columns") && e.contains("pure_input"),
            "{e}"
        );
    }

    #[test]
    fn other_formats_are_refused_naming_the_ones_read() {
        for name in ["q.xlsx", "q.tsv", "noextension"] {
            let (_d, p) = write(name, "a\tb\n");
            let e = load(&p, None).unwrap_err().to_string();
            assert!(
                e.contains("unknown data format") && e.contains(".parquet") && e.contains(".csv"),
                "{e}"
            );
        }
        // Binary data under a text extension says so instead of a UTF-8 error per line.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.jsonl");
        std::fs::write(&p, b"PAR1\xff\xfe\x00").unwrap();
        let e = load(&p, None).unwrap_err().to_string();
        assert!(e.contains("not UTF-8") && e.contains(".parquet"), "{e}");
        // A bad CSV row names its line.
        let (_d, p) = write("q.csv", "instruction,output\nfine,ok\ntoo,many,cells\n");
        let e = load(&p, None).unwrap_err().to_string();
        assert!(e.contains("q.csv:3") && e.contains("CSV"), "{e}");
    }
}
