//! One record from a JSON object (a JSON or JSONL record, a CSV row, a
//! Parquet row): the query, answer and id under their default names, or
//! under the fields a [`FieldMap`] names, which may be dotted paths into
//! nested JSON (`turns.0`, `conversation.0.content`).

use serde_json::{Map, Value};

use super::{DatasetError, Record};
pub use aligntds_formats::fields::FieldMap;

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
/// Keys listed in a refusal before "...".
const SHOWN_KEYS: usize = 20;

/// The value at `path`: a key as written first (a CSV column `a.b`), else a
/// dotted path through objects and lists.
pub(crate) fn lookup<'a>(record: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = record.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut value = record.get(parts.next()?)?;
    for part in parts {
        value = match value {
            Value::Object(m) => m.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// The record's top-level key that `path` reads (kept out of the labels).
fn top_key<'a>(record: &Map<String, Value>, path: &'a str) -> &'a str {
    if record.contains_key(path) {
        path
    } else {
        path.split('.').next().unwrap_or(path)
    }
}

/// `a, b, c` (the first few), for refusals that list what a record has.
pub(crate) fn keys_of(record: &Map<String, Value>) -> String {
    let mut keys: Vec<&str> = record.keys().map(String::as_str).take(SHOWN_KEYS).collect();
    if record.len() > SHOWN_KEYS {
        keys.push("...");
    }
    if keys.is_empty() {
        "no fields".into()
    } else {
        keys.join(", ")
    }
}

/// Why a value is not text, with the path that would reach text in it.
fn not_text(path: &str, value: &Value) -> String {
    match value {
        Value::Array(items) => format!(
            "`{path}` is a list of {}; pick one element with a dotted path, e.g. {path}.0",
            items.len()
        ),
        Value::Object(m) => format!(
            "`{path}` is an object with the keys {}; pick one with a dotted path, e.g. {path}.{}",
            keys_of(m),
            m.keys().next().map_or("KEY", String::as_str)
        ),
        other => format!("`{path}` must be text, not {other}"),
    }
}

fn query_of(map: &Map<String, Value>, fields: &FieldMap) -> Result<String, String> {
    let (path, value) = match &fields.query {
        Some(path) => (
            path.as_str(),
            lookup(map, path).ok_or_else(|| {
                format!(
                    "no field `{path}` (the query field); this record has: {}",
                    keys_of(map)
                )
            })?,
        ),
        None => QUERY_KEYS
            .iter()
            .find_map(|k| map.get(*k).map(|v| (*k, v)))
            .ok_or_else(|| {
                format!(
                    "no query: expected one of the fields {}; this record has: {}. Name the query's \
                     field with --query-field NAME (query_field in a study file; a dotted path such \
                     as turns.0 reaches into nested JSON)",
                    QUERY_KEYS.join(", "),
                    keys_of(map)
                )
            })?,
    };
    match value {
        Value::String(s) => Ok(s.clone()),
        other if fields.query.is_some() => Err(not_text(path, other)),
        _ => Err("the query must be a string".into()),
    }
}

fn answer_of(map: &Map<String, Value>, fields: &FieldMap) -> Result<Option<String>, String> {
    let (path, value) = match &fields.answer {
        Some(path) => (path.as_str(), lookup(map, path)),
        None => ANSWER_KEYS
            .iter()
            .find_map(|k| map.get(*k).map(|v| (*k, Some(v))))
            .unwrap_or(("output", None)),
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        // AlignTDS's format: a list holding the answer.
        Some(Value::Array(items)) => match items.first() {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            None => Ok(None),
            Some(_) => Err(format!(
                "`{path}` as a list must hold strings; pick the answer's text with a dotted path"
            )),
        },
        Some(other) => Err(not_text(path, other)),
    }
}

fn id_of(map: &Map<String, Value>, fields: &FieldMap, index: usize) -> Result<String, String> {
    let value = match &fields.id {
        Some(path) => Some(lookup(map, path).ok_or_else(|| {
            format!(
                "no field `{path}` (the id field); this record has: {}",
                keys_of(map)
            )
        })?),
        None => map.get("id"),
    };
    match value {
        None | Some(Value::Null) if fields.id.is_none() => Ok(index.to_string()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(v.to_string()),
        Some(other) => Err(format!("the id must be text or a number, not {other}")),
        None => unreachable!("a named id field was found above"),
    }
}

pub(crate) fn record_from(
    obj: &Value,
    index: usize,
    fields: &FieldMap,
    at: &dyn Fn(String) -> DatasetError,
) -> Result<Record, DatasetError> {
    let map = obj
        .as_object()
        .ok_or_else(|| at("expected a JSON object".into()))?;
    let query = query_of(map, fields).map_err(at)?;
    let output = answer_of(map, fields).map_err(at)?;
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
    let id = id_of(map, fields, index).map_err(at)?;
    let input = map.get("input").and_then(Value::as_str).map(str::to_string);
    let mapped: Vec<&str> = [&fields.query, &fields.answer, &fields.id]
        .into_iter()
        .flatten()
        .map(|p| top_key(map, p))
        .collect();
    let labels = map
        .iter()
        .filter(|(k, _)| !KNOWN_KEYS.contains(&k.as_str()) && !mapped.contains(&k.as_str()))
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
        fields: labels,
        sample: None,
    })
}

/// A CSV cell as JSON: `output_ids` as a JSON list when it parses as one, else text.
pub(crate) fn csv_value(column: &str, cell: &str, fields: &FieldMap) -> Value {
    if column == "output_ids" {
        if let Ok(v @ Value::Array(_)) = serde_json::from_str::<Value>(cell) {
            return v;
        }
    }
    let is_id = fields.id.as_deref().unwrap_or("id") == column;
    if cell.is_empty() && !is_id {
        return Value::Null;
    }
    Value::String(cell.to_string())
}
