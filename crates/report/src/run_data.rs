//! Reads a run's examples.jsonl and streams its positions.parquet one example
//! at a time, so a large run never sits in memory whole.

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, UInt32Type};
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use crate::{file_err, ReportError};

/// One line of examples.jsonl, as the report needs it.
#[derive(Debug, Clone)]
pub struct ExampleInfo {
    pub id: String,
    pub query: String,
    pub aligned_context: String,
    pub base_context: String,
    pub source: String,
    pub stop_reason: String,
    pub counts: [u64; 3],
}

impl ExampleInfo {
    pub fn tokens(&self) -> u64 {
        self.counts.iter().sum()
    }
}

pub fn read_examples(dir: &Path) -> Result<Vec<ExampleInfo>, ReportError> {
    let path = dir.join("examples.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| file_err(&path, e))?;
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let v: Value = serde_json::from_str(line)
                .map_err(|e| file_err(&path, format!("line {}: {e}", i + 1)))?;
            let id = v["id"]
                .as_str()
                .ok_or_else(|| file_err(&path, format!("line {}: no `id`", i + 1)))?;
            Ok(ExampleInfo {
                id: id.to_string(),
                query: s(&v, "query"),
                aligned_context: s(&v, "aligned_context"),
                base_context: s(&v, "base_context"),
                source: s(&v, "source"),
                stop_reason: s(&v, "stop_reason"),
                counts: ["unshifted", "marginal", "shifted"].map(|k| v[k].as_u64().unwrap_or(0)),
            })
        })
        .collect()
}

/// One answer position: the columns of positions.parquet that the pages show.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    pub position: u32,
    pub token_id: u32,
    /// The token's share of the answer text (`text`; `token` in older runs).
    pub token: String,
    /// 0 unshifted, 1 marginal, 2 shifted.
    pub category: u8,
    pub aligned_rank: u32,
    pub base_rank: u32,
    pub aligned_logprob: f32,
    pub base_logprob: f32,
    pub kl_aligned_base: f64,
    pub kl_base_aligned: f64,
    pub js: f64,
    pub log_ratio: f64,
    pub aligned_entropy: f64,
    pub base_entropy: f64,
    pub top1_agree: bool,
    pub aligned_top: Vec<(u32, String, f32)>,
    pub base_top: Vec<(u32, String, f32)>,
}

/// Calls `each(example_id, rows)` for every example of positions.parquet, in file order.
pub fn for_each_example(
    dir: &Path,
    mut each: impl FnMut(&str, Vec<TokenRow>) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    let path = dir.join("positions.parquet");
    let file = File::open(&path).map_err(|e| file_err(&path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(8192).build())
        .map_err(|e| file_err(&path, e))?;
    let mut current: Option<(String, Vec<TokenRow>)> = None;
    for batch in reader {
        let batch = batch.map_err(|e| file_err(&path, e))?;
        let columns = Columns::new(&batch).map_err(|e| file_err(&path, e))?;
        for row in 0..batch.num_rows() {
            let id = columns.example_id.value(row);
            if current.as_ref().is_none_or(|(c, _)| c != id) {
                if let Some((done, rows)) = current.take() {
                    each(&done, rows)?;
                }
                current = Some((id.to_string(), Vec::new()));
            }
            if let Some((_, rows)) = current.as_mut() {
                rows.push(columns.row(row));
            }
        }
    }
    if let Some((done, rows)) = current {
        each(&done, rows)?;
    }
    Ok(())
}

struct Columns<'a> {
    example_id: &'a arrow_array::StringArray,
    position: &'a arrow_array::UInt32Array,
    token_id: &'a arrow_array::UInt32Array,
    token: &'a arrow_array::StringArray,
    category: &'a arrow_array::StringArray,
    aligned_rank: &'a arrow_array::UInt32Array,
    base_rank: &'a arrow_array::UInt32Array,
    aligned_logprob: &'a arrow_array::Float32Array,
    base_logprob: &'a arrow_array::Float32Array,
    f64s: [&'a arrow_array::Float64Array; 6],
    top1_agree: &'a arrow_array::BooleanArray,
    tops: [[&'a arrow_array::ListArray; 3]; 2],
}

impl<'a> Columns<'a> {
    fn new(batch: &'a RecordBatch) -> Result<Self, String> {
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| format!("no column `{name}` (not an aligntds positions file?)"))
        };
        macro_rules! typed {
            ($name:expr, $cast:ident $(::<$t:ty>)?) => {
                col($name)?
                    .$cast$(::<$t>)?()
                    .ok_or_else(|| format!("column `{}` has an unexpected type", $name))?
            };
        }
        let f64col = |name: &str| -> Result<&'a arrow_array::Float64Array, String> {
            Ok(typed!(name, as_primitive_opt::<Float64Type>))
        };
        let list = |name: &str| -> Result<&'a arrow_array::ListArray, String> {
            Ok(typed!(name, as_list_opt::<i32>))
        };
        Ok(Self {
            example_id: typed!("example_id", as_string_opt::<i32>),
            position: typed!("position", as_primitive_opt::<UInt32Type>),
            token_id: typed!("token_id", as_primitive_opt::<UInt32Type>),
            // `text` (the token's exact share of the answer) is newer than `token`.
            token: if batch.column_by_name("text").is_some() {
                typed!("text", as_string_opt::<i32>)
            } else {
                typed!("token", as_string_opt::<i32>)
            },
            category: typed!("category", as_string_opt::<i32>),
            aligned_rank: typed!("aligned_rank", as_primitive_opt::<UInt32Type>),
            base_rank: typed!("base_rank", as_primitive_opt::<UInt32Type>),
            aligned_logprob: typed!("aligned_logprob", as_primitive_opt::<Float32Type>),
            base_logprob: typed!("base_logprob", as_primitive_opt::<Float32Type>),
            f64s: [
                f64col("kl_aligned_base")?,
                f64col("kl_base_aligned")?,
                f64col("js")?,
                f64col("log_ratio")?,
                f64col("aligned_entropy")?,
                f64col("base_entropy")?,
            ],
            top1_agree: typed!("top1_agree", as_boolean_opt),
            tops: [
                [
                    list("aligned_top_ids")?,
                    list("aligned_top_tokens")?,
                    list("aligned_top_logprobs")?,
                ],
                [
                    list("base_top_ids")?,
                    list("base_top_tokens")?,
                    list("base_top_logprobs")?,
                ],
            ],
        })
    }

    fn top(&self, side: usize, row: usize) -> Vec<(u32, String, f32)> {
        let [ids, tokens, logprobs] = self.tops[side];
        let (ids, tokens, logprobs) = (ids.value(row), tokens.value(row), logprobs.value(row));
        let (ids, tokens, logprobs) = (
            ids.as_primitive::<UInt32Type>(),
            tokens.as_string::<i32>(),
            logprobs.as_primitive::<Float32Type>(),
        );
        (0..ids.len().min(tokens.len()).min(logprobs.len()))
            .map(|i| (ids.value(i), tokens.value(i).to_string(), logprobs.value(i)))
            .collect()
    }

    fn row(&self, row: usize) -> TokenRow {
        let f = |i: usize| self.f64s[i].value(row);
        TokenRow {
            position: self.position.value(row),
            token_id: self.token_id.value(row),
            token: self.token.value(row).to_string(),
            category: match self.category.value(row) {
                "unshifted" => 0,
                "marginal" => 1,
                _ => 2,
            },
            aligned_rank: self.aligned_rank.value(row),
            base_rank: self.base_rank.value(row),
            aligned_logprob: self.aligned_logprob.value(row),
            base_logprob: self.base_logprob.value(row),
            kl_aligned_base: f(0),
            kl_base_aligned: f(1),
            js: f(2),
            log_ratio: f(3),
            aligned_entropy: f(4),
            base_entropy: f(5),
            top1_agree: self.top1_agree.value(row),
            aligned_top: self.top(0, row),
            base_top: self.top(1, row),
        }
    }
}
