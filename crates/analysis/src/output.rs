//! Run outputs: positions.parquet, examples.jsonl, summary.json. Every file
//! carries `schema_version`; every file is written to a temporary name and
//! renamed into place, so readers never see a half-written file.

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, ListBuilder, StringBuilder, UInt32Builder};
use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, RecordBatch, StringArray, UInt32Array,
};
use arrow_schema::{Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use crate::run::ExampleResult;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> OutputError {
    OutputError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writes `bytes` to `path` atomically (temporary file in the same folder, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, bytes).map_err(|e| write_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| write_err(path, e))
}

fn list_u32(values: impl Iterator<Item = Vec<u32>>) -> ArrayRef {
    let mut b = ListBuilder::new(UInt32Builder::new());
    for v in values {
        b.values().append_slice(&v);
        b.append(true);
    }
    Arc::new(b.finish())
}

fn list_f32(values: impl Iterator<Item = Vec<f32>>) -> ArrayRef {
    let mut b = ListBuilder::new(Float32Builder::new());
    for v in values {
        b.values().append_slice(&v);
        b.append(true);
    }
    Arc::new(b.finish())
}

fn list_str(values: impl Iterator<Item = Vec<String>>) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for v in values {
        for s in v {
            b.values().append_value(s);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

/// positions.parquet: one row per (example, answer position).
pub fn write_positions(path: &Path, examples: &[ExampleResult]) -> Result<(), OutputError> {
    let rows: Vec<(&ExampleResult, &crate::run::PositionRow)> = examples
        .iter()
        .flat_map(|e| e.positions.iter().map(move |p| (e, p)))
        .collect();
    let m = |f: &dyn Fn(&crate::metrics::PositionMetrics) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|(_, p)| f(&p.metrics)),
        ))
    };
    let f32col = |f: &dyn Fn(&crate::metrics::PositionMetrics) -> f32| -> ArrayRef {
        Arc::new(Float32Array::from_iter_values(
            rows.iter().map(|(_, p)| f(&p.metrics)),
        ))
    };
    let u32col = |f: &dyn Fn(&crate::run::PositionRow) -> u32| -> ArrayRef {
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|(_, p)| f(p)),
        ))
    };
    let strcol = |f: &dyn Fn(&ExampleResult, &crate::run::PositionRow) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(e, p)| f(e, p)),
        ))
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("example_id", strcol(&|e, _| e.id.clone())),
        ("position", u32col(&|p| p.position)),
        ("token_id", u32col(&|p| p.token_id)),
        ("token", strcol(&|_, p| p.token.clone())),
        ("token_piece", strcol(&|_, p| p.token_piece.clone())),
        ("text", strcol(&|_, p| p.text.clone())),
        ("aligned_logprob", f32col(&|m| m.aligned_logprob)),
        ("aligned_rank", u32col(&|p| p.metrics.aligned_rank)),
        ("base_logprob", f32col(&|m| m.base_logprob)),
        ("base_rank", u32col(&|p| p.metrics.base_rank)),
        (
            "category",
            strcol(&|_, p| p.metrics.category.as_str().to_string()),
        ),
        ("kl_aligned_base", m(&|m| m.kl_aligned_base)),
        ("kl_base_aligned", m(&|m| m.kl_base_aligned)),
        ("js", m(&|m| m.js)),
        ("aligned_entropy", m(&|m| m.aligned_entropy)),
        ("base_entropy", m(&|m| m.base_entropy)),
        ("log_ratio", m(&|m| m.log_ratio)),
        (
            "top1_agree",
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|(_, p)| Some(p.metrics.top1_agree)),
            )),
        ),
        (
            "aligned_top1_base_rank",
            u32col(&|p| p.metrics.aligned_top1_base_rank),
        ),
        (
            "aligned_top_ids",
            list_u32(rows.iter().map(|(_, p)| p.metrics.aligned_top_ids.clone())),
        ),
        (
            "aligned_top_tokens",
            list_str(rows.iter().map(|(_, p)| p.aligned_top_tokens.clone())),
        ),
        (
            "aligned_top_logprobs",
            list_f32(
                rows.iter()
                    .map(|(_, p)| p.metrics.aligned_top_logprobs.clone()),
            ),
        ),
        (
            "base_top_ids",
            list_u32(rows.iter().map(|(_, p)| p.metrics.base_top_ids.clone())),
        ),
        (
            "base_top_tokens",
            list_str(rows.iter().map(|(_, p)| p.base_top_tokens.clone())),
        ),
        (
            "base_top_logprobs",
            list_f32(
                rows.iter()
                    .map(|(_, p)| p.metrics.base_top_logprobs.clone()),
            ),
        ),
        ("orig_kl_at_k", m(&|m| m.compat.kl_at_k)),
        ("orig_jaccard_at_k", m(&|m| m.compat.jaccard_at_k)),
        ("orig_ws_at_k", m(&|m| m.compat.ws_at_k)),
        (
            "orig_top_rank_at_k",
            u32col(&|p| p.metrics.compat.top_rank_at_k),
        ),
    ];
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), false))
        .collect();
    let metadata = [
        ("schema_version".to_string(), SCHEMA_VERSION.to_string()),
        (
            "producer".to_string(),
            format!("aligntds {}", env!("CARGO_PKG_VERSION")),
        ),
    ];
    let metadata: std::collections::HashMap<String, String> = metadata.into_iter().collect();
    let schema = Arc::new(Schema::new(fields).with_metadata(metadata));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .map_err(|e| write_err(path, e))?;
    let mut buffer = Vec::new();
    let props = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut writer =
        ArrowWriter::try_new(&mut buffer, schema, Some(props)).map_err(|e| write_err(path, e))?;
    writer.write(&batch).map_err(|e| write_err(path, e))?;
    writer.close().map_err(|e| write_err(path, e))?;
    write_atomic(path, &buffer)
}

/// Writes a finished run: positions.parquet, examples.jsonl and summary.json
/// (manifest plus aggregates); returns the summary.
pub fn write_run(
    dir: &Path,
    results: &[ExampleResult],
    manifest: serde_json::Value,
    curve_positions: usize,
) -> Result<serde_json::Value, OutputError> {
    write_positions(&dir.join("positions.parquet"), results)?;
    write_examples(&dir.join("examples.jsonl"), results)?;
    let summary = serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "manifest": manifest,
        "aggregates": crate::summary::aggregates(results, curve_positions),
    });
    let path = dir.join("summary.json");
    let text = serde_json::to_string_pretty(&summary).map_err(|e| write_err(&path, e))?;
    write_atomic(&path, text.as_bytes())?;
    Ok(summary)
}

/// examples.jsonl: one JSON object per example (positions are in the Parquet file).
pub fn write_examples(path: &Path, examples: &[ExampleResult]) -> Result<(), OutputError> {
    let mut out = String::new();
    for e in examples {
        let mut v = serde_json::to_value(e).map_err(|err| write_err(path, err))?;
        if let Some(obj) = v.as_object_mut() {
            obj.remove("positions");
        }
        v["schema_version"] = SCHEMA_VERSION.into();
        out.push_str(&v.to_string());
        out.push('\n');
    }
    write_atomic(path, out.as_bytes())
}
