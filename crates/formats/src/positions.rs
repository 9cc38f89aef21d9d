//! positions.parquet: one row per (example, answer position, reference side):
//! tidy for pandas, polars and DuckDB. A pair run has one side, `base`; a run
//! with compared sides repeats each position once per side, the `aligned_*`
//! columns equal across its rows and the `base_*` columns (and the category,
//! divergences and agreement) those of the row's side. The column names
//! live in [`col`] and nowhere else; [`write`], [`for_each_example`] and
//! [`batches`] are the only code that touches the file.

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, ListBuilder, StringBuilder, UInt32Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, UInt32Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, RecordBatch, StringArray,
    UInt32Array,
};
use arrow_schema::{Field, Schema};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::summary::Category;
use crate::{file_err, write_atomic, FormatError};

/// Column names of positions.parquet, in file order.
pub mod col {
    pub const EXAMPLE_ID: &str = "example_id";
    /// Version 2, multi-side runs: the reference side of the row (`base`
    /// or a compared side's name); files without it hold `base` only.
    pub const SIDE: &str = "side";
    pub const POSITION: &str = "position";
    pub const TOKEN_ID: &str = "token_id";
    pub const TOKEN: &str = "token";
    pub const TOKEN_PIECE: &str = "token_piece";
    pub const TEXT: &str = "text";
    pub const ALIGNED_LOGPROB: &str = "aligned_logprob";
    pub const ALIGNED_RANK: &str = "aligned_rank";
    pub const BASE_LOGPROB: &str = "base_logprob";
    pub const BASE_RANK: &str = "base_rank";
    pub const CATEGORY: &str = "category";
    pub const KL_ALIGNED_BASE: &str = "kl_aligned_base";
    pub const KL_BASE_ALIGNED: &str = "kl_base_aligned";
    pub const JS: &str = "js";
    pub const ALIGNED_ENTROPY: &str = "aligned_entropy";
    pub const BASE_ENTROPY: &str = "base_entropy";
    pub const LOG_RATIO: &str = "log_ratio";
    pub const TOP1_AGREE: &str = "top1_agree";
    pub const ALIGNED_TOP1_BASE_RANK: &str = "aligned_top1_base_rank";
    pub const ALIGNED_TOP_IDS: &str = "aligned_top_ids";
    pub const ALIGNED_TOP_TOKENS: &str = "aligned_top_tokens";
    pub const ALIGNED_TOP_LOGPROBS: &str = "aligned_top_logprobs";
    pub const BASE_TOP_IDS: &str = "base_top_ids";
    pub const BASE_TOP_TOKENS: &str = "base_top_tokens";
    pub const BASE_TOP_LOGPROBS: &str = "base_top_logprobs";
    pub const ORIG_KL_AT_K: &str = "orig_kl_at_k";
    pub const ORIG_JACCARD_AT_K: &str = "orig_jaccard_at_k";
    pub const ORIG_WS_AT_K: &str = "orig_ws_at_k";
    pub const ORIG_TOP_RANK_AT_K: &str = "orig_top_rank_at_k";
    /// Version 2: whether the divergences and entropies are over full distributions.
    pub const FULL_VOCABULARY: &str = "full_vocabulary";
    /// Handover runs only: who chose the token, `aligned` or `base`
    /// (absent from other runs' files).
    pub const CHOSEN_BY: &str = "chosen_by";
}

/// One of a side's k most probable tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopToken {
    pub id: u32,
    pub text: String,
    pub logprob: f32,
}

/// One scored answer position: one row of positions.parquet (without the example id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionRecord {
    pub position: u32,
    pub token_id: u32,
    /// The decoded text of this one token (lossy inside a multi-byte character).
    pub token: String,
    /// The vocabulary entry.
    pub token_piece: String,
    /// This token's share of the decoded answer: in position order the shares
    /// concatenate to the answer exactly.
    pub text: String,
    pub aligned_logprob: f32,
    pub aligned_rank: u32,
    pub base_logprob: f32,
    pub base_rank: u32,
    pub category: Category,
    /// Exact over full distributions; lower bounds where `full_vocabulary` is false.
    pub kl_aligned_base: Option<f64>,
    pub kl_base_aligned: Option<f64>,
    pub js: Option<f64>,
    pub aligned_entropy: Option<f64>,
    pub base_entropy: Option<f64>,
    pub log_ratio: f64,
    pub top1_agree: bool,
    /// None when the aligned top-1 is outside the base side's top-k view.
    pub aligned_top1_base_rank: Option<u32>,
    pub aligned_top: Vec<TopToken>,
    pub base_top: Vec<TopToken>,
    /// The original AlignTDS's top-30 metrics; None when a side kept fewer than 30 tokens.
    pub orig_kl_at_k: Option<f64>,
    pub orig_jaccard_at_k: Option<f64>,
    pub orig_ws_at_k: Option<f64>,
    pub orig_top_rank_at_k: Option<u32>,
    pub full_vocabulary: bool,
    /// In a handover arm, the side whose token this is (`aligned`, `base`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen_by: Option<String>,
}

fn f64s(rows: &[(&str, &PositionRecord)], f: impl Fn(&PositionRecord) -> Option<f64>) -> ArrayRef {
    Arc::new(Float64Array::from_iter(rows.iter().map(|(_, p)| f(p))))
}

fn u32s(rows: &[(&str, &PositionRecord)], f: impl Fn(&PositionRecord) -> Option<u32>) -> ArrayRef {
    Arc::new(UInt32Array::from_iter(rows.iter().map(|(_, p)| f(p))))
}

fn f32s(rows: &[(&str, &PositionRecord)], f: impl Fn(&PositionRecord) -> f32) -> ArrayRef {
    Arc::new(Float32Array::from_iter_values(
        rows.iter().map(|(_, p)| f(p)),
    ))
}

fn strs(rows: &[(&str, &PositionRecord)], f: impl Fn(&str, &PositionRecord) -> String) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(
        rows.iter().map(|(id, p)| f(id, p)),
    ))
}

fn bools(rows: &[(&str, &PositionRecord)], f: impl Fn(&PositionRecord) -> bool) -> ArrayRef {
    Arc::new(BooleanArray::from_iter(
        rows.iter().map(|(_, p)| Some(f(p))),
    ))
}

/// The three list columns of one side's top tokens.
fn tops(
    rows: &[(&str, &PositionRecord)],
    side: fn(&PositionRecord) -> &[TopToken],
) -> [ArrayRef; 3] {
    let mut ids = ListBuilder::new(UInt32Builder::new());
    let mut texts = ListBuilder::new(StringBuilder::new());
    let mut logprobs = ListBuilder::new(Float32Builder::new());
    for (_, p) in rows {
        for t in side(p) {
            ids.values().append_value(t.id);
            texts.values().append_value(&t.text);
            logprobs.values().append_value(t.logprob);
        }
        ids.append(true);
        texts.append(true);
        logprobs.append(true);
    }
    [
        Arc::new(ids.finish()),
        Arc::new(texts.finish()),
        Arc::new(logprobs.finish()),
    ]
}

/// Writes positions.parquet from (example id, side, row) triples in file
/// order: each example's rows together, side by side in study order.
pub fn write(path: &Path, rows: &[(&str, &str, &PositionRecord)]) -> Result<(), FormatError> {
    let batch = record_batch(rows).map_err(|e| file_err(path, e))?;
    let mut buffer = Vec::new();
    let props = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(&mut buffer, batch.schema(), Some(props))
        .map_err(|e| file_err(path, e))?;
    writer.write(&batch).map_err(|e| file_err(path, e))?;
    writer.close().map_err(|e| file_err(path, e))?;
    write_atomic(path, &buffer)
}

/// The rows of positions.parquet as one Arrow batch, with the file's
/// columns and metadata (what [`write`] stores; the Python package hands
/// a live example's rows over in this layout).
pub fn record_batch(
    rows: &[(&str, &str, &PositionRecord)],
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let sides = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1)));
    let rows: Vec<(&str, &PositionRecord)> = rows.iter().map(|r| (r.0, r.2)).collect();
    let rows = rows.as_slice();
    let [a_ids, a_tokens, a_logprobs] = tops(rows, |p| &p.aligned_top);
    let [b_ids, b_tokens, b_logprobs] = tops(rows, |p| &p.base_top);
    // (name, values, nullable)
    let columns: Vec<(&str, ArrayRef, bool)> = vec![
        (col::EXAMPLE_ID, strs(rows, |id, _| id.to_string()), false),
        (col::SIDE, sides, false),
        (col::POSITION, u32s(rows, |p| Some(p.position)), false),
        (col::TOKEN_ID, u32s(rows, |p| Some(p.token_id)), false),
        (col::TOKEN, strs(rows, |_, p| p.token.clone()), false),
        (
            col::TOKEN_PIECE,
            strs(rows, |_, p| p.token_piece.clone()),
            false,
        ),
        (col::TEXT, strs(rows, |_, p| p.text.clone()), false),
        (
            col::ALIGNED_LOGPROB,
            f32s(rows, |p| p.aligned_logprob),
            false,
        ),
        (
            col::ALIGNED_RANK,
            u32s(rows, |p| Some(p.aligned_rank)),
            false,
        ),
        (col::BASE_LOGPROB, f32s(rows, |p| p.base_logprob), false),
        (col::BASE_RANK, u32s(rows, |p| Some(p.base_rank)), false),
        (
            col::CATEGORY,
            strs(rows, |_, p| p.category.as_str().to_string()),
            false,
        ),
        (
            col::KL_ALIGNED_BASE,
            f64s(rows, |p| p.kl_aligned_base),
            true,
        ),
        (
            col::KL_BASE_ALIGNED,
            f64s(rows, |p| p.kl_base_aligned),
            true,
        ),
        (col::JS, f64s(rows, |p| p.js), true),
        (
            col::ALIGNED_ENTROPY,
            f64s(rows, |p| p.aligned_entropy),
            true,
        ),
        (col::BASE_ENTROPY, f64s(rows, |p| p.base_entropy), true),
        (col::LOG_RATIO, f64s(rows, |p| Some(p.log_ratio)), false),
        (col::TOP1_AGREE, bools(rows, |p| p.top1_agree), false),
        (
            col::ALIGNED_TOP1_BASE_RANK,
            u32s(rows, |p| p.aligned_top1_base_rank),
            true,
        ),
        (col::ALIGNED_TOP_IDS, a_ids, false),
        (col::ALIGNED_TOP_TOKENS, a_tokens, false),
        (col::ALIGNED_TOP_LOGPROBS, a_logprobs, false),
        (col::BASE_TOP_IDS, b_ids, false),
        (col::BASE_TOP_TOKENS, b_tokens, false),
        (col::BASE_TOP_LOGPROBS, b_logprobs, false),
        (col::ORIG_KL_AT_K, f64s(rows, |p| p.orig_kl_at_k), true),
        (
            col::ORIG_JACCARD_AT_K,
            f64s(rows, |p| p.orig_jaccard_at_k),
            true,
        ),
        (col::ORIG_WS_AT_K, f64s(rows, |p| p.orig_ws_at_k), true),
        (
            col::ORIG_TOP_RANK_AT_K,
            u32s(rows, |p| p.orig_top_rank_at_k),
            true,
        ),
        (
            col::FULL_VOCABULARY,
            bools(rows, |p| p.full_vocabulary),
            false,
        ),
    ];
    let mut columns = columns;
    // Only a handover arm's file has the column, so other runs' files are
    // what they were.
    if rows.iter().any(|(_, p)| p.chosen_by.is_some()) {
        let chosen: ArrayRef = Arc::new(StringArray::from_iter(
            rows.iter().map(|(_, p)| p.chosen_by.as_deref()),
        ));
        columns.push((col::CHOSEN_BY, chosen, true));
    }
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a, nullable)| Field::new(*name, a.data_type().clone(), *nullable))
        .collect();
    let metadata: std::collections::HashMap<String, String> = [
        (
            "schema_version".to_string(),
            crate::SCHEMA_VERSION.to_string(),
        ),
        (
            "producer".to_string(),
            format!("aligntds {}", env!("CARGO_PKG_VERSION")),
        ),
    ]
    .into_iter()
    .collect();
    let schema = Arc::new(Schema::new(fields).with_metadata(metadata));
    RecordBatch::try_new(schema, columns.into_iter().map(|(_, a, _)| a).collect())
}

/// One reference side's rows of one example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SidePositions {
    pub side: String,
    pub positions: Vec<PositionRecord>,
}

/// Calls `each(example_id, rows)` with the base side's rows of every example
/// of `dir/positions.parquet`, in file order, one example in memory at a
/// time: the rows of a pair run, and a multi-side run's `base` rows. Reads
/// versions 1 and 2.
pub fn for_each_example(
    dir: &Path,
    mut each: impl FnMut(&str, Vec<PositionRecord>) -> Result<(), FormatError>,
) -> Result<(), FormatError> {
    for_each_example_by_side(dir, |id, sides| {
        let base = sides
            .into_iter()
            .find(|s| s.side == crate::sides::BASE_SIDE)
            .map(|s| s.positions)
            .unwrap_or_default();
        each(id, base)
    })
}

/// The file's columns as they are, in batches of up to 8,192 rows, its
/// `schema_version` checked: for readers that hand the table on whole (the
/// Python package's Arrow stream).
pub fn batches(dir: &Path) -> Result<ParquetRecordBatchReader, FormatError> {
    open(dir).map(|(_, reader)| reader)
}

fn open(dir: &Path) -> Result<(std::path::PathBuf, ParquetRecordBatchReader), FormatError> {
    let path = dir.join(crate::POSITIONS_FILE);
    let file = std::fs::File::open(&path).map_err(|e| file_err(&path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| file_err(&path, e))?;
    if let Some(v) = builder.schema().metadata().get("schema_version") {
        let version = v
            .parse::<u32>()
            .map_err(|_| file_err(&path, format!("schema_version `{v}` is not a number")))?;
        crate::check_version(&path, version)?;
    }
    let reader = builder
        .with_batch_size(8192)
        .build()
        .map_err(|e| file_err(&path, e))?;
    Ok((path, reader))
}

/// Calls `each(example_id, sides)` for every example, with every reference
/// side's rows in file (study) order.
pub fn for_each_example_by_side(
    dir: &Path,
    mut each: impl FnMut(&str, Vec<SidePositions>) -> Result<(), FormatError>,
) -> Result<(), FormatError> {
    let (path, reader) = open(dir)?;
    let mut current: Option<(String, Vec<SidePositions>)> = None;
    for batch in reader {
        let batch = batch.map_err(|e| file_err(&path, e))?;
        let columns = Columns::new(&batch).map_err(|e| file_err(&path, e))?;
        let side_column = match batch.column_by_name(col::SIDE) {
            Some(c) => Some(
                c.as_string_opt::<i32>()
                    .ok_or_else(|| file_err(&path, mistyped(col::SIDE)))?,
            ),
            None => None,
        };
        for row in 0..batch.num_rows() {
            let id = columns.example_id.value(row);
            if current.as_ref().is_none_or(|(c, _)| c != id) {
                if let Some((done, rows)) = current.take() {
                    each(&done, rows)?;
                }
                current = Some((id.to_string(), Vec::new()));
            }
            let side = side_column.map_or(crate::sides::BASE_SIDE, |c| c.value(row));
            let record = columns.row(row).map_err(|e| file_err(&path, e))?;
            if let Some((_, sides)) = current.as_mut() {
                match sides.last_mut() {
                    Some(s) if s.side == side => s.positions.push(record),
                    _ => sides.push(SidePositions {
                        side: side.to_string(),
                        positions: vec![record],
                    }),
                }
            }
        }
    }
    if let Some((done, rows)) = current {
        each(&done, rows)?;
    }
    Ok(())
}

type List<'a> = &'a arrow_array::ListArray;

struct Columns<'a> {
    example_id: &'a StringArray,
    u32s: [&'a UInt32Array; 4],
    nullable_u32s: [&'a UInt32Array; 2],
    strings: [&'a StringArray; 4],
    f32s: [&'a Float32Array; 2],
    log_ratio: &'a Float64Array,
    nullable_f64s: [&'a Float64Array; 8],
    top1_agree: &'a BooleanArray,
    full_vocabulary: Option<&'a BooleanArray>,
    chosen_by: Option<&'a StringArray>,
    tops: [[List<'a>; 3]; 2],
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, String> {
    batch
        .column_by_name(name)
        .ok_or_else(|| format!("no column `{name}` (not an aligntds positions file?)"))
}

fn mistyped(name: &str) -> String {
    format!("column `{name}` has an unexpected type")
}

impl<'a> Columns<'a> {
    fn new(batch: &'a RecordBatch) -> Result<Self, String> {
        let u32col = |name: &str| {
            column(batch, name)?
                .as_primitive_opt::<UInt32Type>()
                .ok_or_else(|| mistyped(name))
        };
        let f64col = |name: &str| {
            column(batch, name)?
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| mistyped(name))
        };
        let f32col = |name: &str| {
            column(batch, name)?
                .as_primitive_opt::<Float32Type>()
                .ok_or_else(|| mistyped(name))
        };
        let strcol = |name: &str| {
            column(batch, name)?
                .as_string_opt::<i32>()
                .ok_or_else(|| mistyped(name))
        };
        let boolcol = |name: &str| {
            column(batch, name)?
                .as_boolean_opt()
                .ok_or_else(|| mistyped(name))
        };
        let list = |name: &str| {
            column(batch, name)?
                .as_list_opt::<i32>()
                .ok_or_else(|| mistyped(name))
        };
        // Version 1 files without `text` (the oldest) show the decoded token instead.
        let text = if batch.column_by_name(col::TEXT).is_some() {
            col::TEXT
        } else {
            col::TOKEN
        };
        Ok(Self {
            example_id: strcol(col::EXAMPLE_ID)?,
            u32s: [
                u32col(col::POSITION)?,
                u32col(col::TOKEN_ID)?,
                u32col(col::ALIGNED_RANK)?,
                u32col(col::BASE_RANK)?,
            ],
            nullable_u32s: [
                u32col(col::ALIGNED_TOP1_BASE_RANK)?,
                u32col(col::ORIG_TOP_RANK_AT_K)?,
            ],
            strings: [
                strcol(col::TOKEN)?,
                strcol(col::TOKEN_PIECE)?,
                strcol(text)?,
                strcol(col::CATEGORY)?,
            ],
            f32s: [f32col(col::ALIGNED_LOGPROB)?, f32col(col::BASE_LOGPROB)?],
            log_ratio: f64col(col::LOG_RATIO)?,
            nullable_f64s: [
                f64col(col::KL_ALIGNED_BASE)?,
                f64col(col::KL_BASE_ALIGNED)?,
                f64col(col::JS)?,
                f64col(col::ALIGNED_ENTROPY)?,
                f64col(col::BASE_ENTROPY)?,
                f64col(col::ORIG_KL_AT_K)?,
                f64col(col::ORIG_JACCARD_AT_K)?,
                f64col(col::ORIG_WS_AT_K)?,
            ],
            top1_agree: boolcol(col::TOP1_AGREE)?,
            full_vocabulary: match batch.column_by_name(col::FULL_VOCABULARY) {
                Some(_) => Some(boolcol(col::FULL_VOCABULARY)?),
                None => None,
            },
            chosen_by: match batch.column_by_name(col::CHOSEN_BY) {
                Some(_) => Some(strcol(col::CHOSEN_BY)?),
                None => None,
            },
            tops: [
                [
                    list(col::ALIGNED_TOP_IDS)?,
                    list(col::ALIGNED_TOP_TOKENS)?,
                    list(col::ALIGNED_TOP_LOGPROBS)?,
                ],
                [
                    list(col::BASE_TOP_IDS)?,
                    list(col::BASE_TOP_TOKENS)?,
                    list(col::BASE_TOP_LOGPROBS)?,
                ],
            ],
        })
    }

    fn top(&self, side: usize, row: usize) -> Vec<TopToken> {
        let [ids, texts, logprobs] = self.tops[side];
        let (ids, texts, logprobs) = (ids.value(row), texts.value(row), logprobs.value(row));
        let (ids, texts, logprobs) = (
            ids.as_primitive::<UInt32Type>(),
            texts.as_string::<i32>(),
            logprobs.as_primitive::<Float32Type>(),
        );
        (0..ids.len().min(texts.len()).min(logprobs.len()))
            .map(|i| TopToken {
                id: ids.value(i),
                text: texts.value(i).to_string(),
                logprob: logprobs.value(i),
            })
            .collect()
    }

    fn row(&self, row: usize) -> Result<PositionRecord, String> {
        let opt_f = |i: usize| {
            let a = self.nullable_f64s[i];
            a.is_valid(row).then(|| a.value(row))
        };
        let opt_u = |i: usize| {
            let a = self.nullable_u32s[i];
            a.is_valid(row).then(|| a.value(row))
        };
        let [position, token_id, aligned_rank, base_rank] = self.u32s.map(|a| a.value(row));
        let [token, token_piece, text, category] = self.strings.map(|a| a.value(row));
        let category = Category::parse(category)
            .ok_or_else(|| format!("column `{}`: unknown category `{category}`", col::CATEGORY))?;
        Ok(PositionRecord {
            position,
            token_id,
            token: token.to_string(),
            token_piece: token_piece.to_string(),
            text: text.to_string(),
            aligned_logprob: self.f32s[0].value(row),
            aligned_rank,
            base_logprob: self.f32s[1].value(row),
            base_rank,
            category,
            kl_aligned_base: opt_f(0),
            kl_base_aligned: opt_f(1),
            js: opt_f(2),
            aligned_entropy: opt_f(3),
            base_entropy: opt_f(4),
            log_ratio: self.log_ratio.value(row),
            top1_agree: self.top1_agree.value(row),
            aligned_top1_base_rank: opt_u(0),
            aligned_top: self.top(0, row),
            base_top: self.top(1, row),
            orig_kl_at_k: opt_f(5),
            orig_jaccard_at_k: opt_f(6),
            orig_ws_at_k: opt_f(7),
            orig_top_rank_at_k: opt_u(1),
            full_vocabulary: self.full_vocabulary.is_none_or(|a| a.value(row)),
            chosen_by: self
                .chosen_by
                .filter(|a| a.is_valid(row))
                .map(|a| a.value(row).to_string()),
        })
    }
}
