//! The report's view of a run: examples.jsonl and positions.parquet read
//! through aligntds-formats, positions.parquet one example at a time, so a
//! large run never sits in memory whole.

use std::path::Path;

use aligntds_formats::positions::{PositionRecord, TopToken};

use crate::ReportError;

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
    /// Each compared side's name and rendered context (empty in a pair run).
    pub side_contexts: Vec<(String, String)>,
}

impl ExampleInfo {
    pub fn tokens(&self) -> u64 {
        self.counts.iter().sum()
    }
}

pub fn read_examples(dir: &Path) -> Result<Vec<ExampleInfo>, ReportError> {
    Ok(aligntds_formats::examples::read(dir)?
        .into_iter()
        .map(|e| ExampleInfo {
            counts: [e.unshifted, e.marginal, e.shifted].map(u64::from),
            side_contexts: e.sides.into_iter().map(|s| (s.name, s.context)).collect(),
            id: e.id,
            query: e.query,
            aligned_context: e.aligned_context,
            base_context: e.base_context,
            source: e.source,
            stop_reason: match e.skip_detail {
                Some(detail) => format!("skipped: {detail}"),
                None => e.stop_reason,
            },
        })
        .collect())
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
    /// Who chose the token in a handover arm (`aligned` or `base`).
    pub chosen_by: Option<String>,
}

impl From<PositionRecord> for TokenRow {
    fn from(p: PositionRecord) -> Self {
        let value = |x: Option<f64>| x.unwrap_or(f64::NAN);
        let top = |list: Vec<TopToken>| {
            list.into_iter()
                .map(|t| (t.id, t.text, t.logprob))
                .collect()
        };
        Self {
            position: p.position,
            token_id: p.token_id,
            token: p.text,
            category: p.category as u8,
            aligned_rank: p.aligned_rank,
            base_rank: p.base_rank,
            aligned_logprob: p.aligned_logprob,
            base_logprob: p.base_logprob,
            kl_aligned_base: value(p.kl_aligned_base),
            kl_base_aligned: value(p.kl_base_aligned),
            js: value(p.js),
            log_ratio: p.log_ratio,
            aligned_entropy: value(p.aligned_entropy),
            base_entropy: value(p.base_entropy),
            top1_agree: p.top1_agree,
            aligned_top: top(p.aligned_top),
            base_top: top(p.base_top),
            chosen_by: p.chosen_by,
        }
    }
}

/// One compared side's rows of an example.
pub type SideRows = (String, Vec<TokenRow>);

/// Calls `each(example_id, base rows, compared sides' rows)` for every
/// example of positions.parquet, in file order.
pub fn for_each_example_sides(
    dir: &Path,
    mut each: impl FnMut(&str, Vec<TokenRow>, Vec<SideRows>) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    let mut failure = None;
    aligntds_formats::positions::for_each_example_by_side(dir, |id, sides| {
        if failure.is_none() {
            let mut base = Vec::new();
            let mut compared = Vec::new();
            for s in sides {
                let rows: Vec<TokenRow> = s.positions.into_iter().map(TokenRow::from).collect();
                if s.side == aligntds_formats::sides::BASE_SIDE {
                    base = rows;
                } else {
                    compared.push((s.side, rows));
                }
            }
            if let Err(e) = each(id, base, compared) {
                failure = Some(e);
            }
        }
        Ok(())
    })?;
    failure.map_or(Ok(()), Err)
}

/// Calls `each(example_id, rows)` for every example of positions.parquet, in file order.
pub fn for_each_example(
    dir: &Path,
    mut each: impl FnMut(&str, Vec<TokenRow>) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    let mut failure = None;
    aligntds_formats::positions::for_each_example(dir, |id, rows| {
        if failure.is_none() {
            if let Err(e) = each(id, rows.into_iter().map(TokenRow::from).collect()) {
                failure = Some(e);
            }
        }
        Ok(())
    })?;
    failure.map_or(Ok(()), Err)
}
