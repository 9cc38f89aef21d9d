//! The parts of the run files that describe several reference sides and the
//! finer splits of a run's statistics: the sides' settings and identities,
//! their per-side summaries, the stage view, position and group splits, and
//! the base-rank CDF. Pair runs leave the multi-side parts out, so their files
//! read and fingerprint as before.

use serde::{Deserialize, Serialize};

use crate::summary::{
    nan_as_null, Aggregates, Context, ModelIdentity, ServerIdentity, TemplateIdentity,
};

/// The name of the reference side set by `--base` (always the first).
pub const BASE_SIDE: &str = "base";
/// The answering side's name in a stage order.
pub const ALIGNED_SIDE: &str = "aligned";

/// A compared side's context, recorded (and fingerprinted) with the settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedContext {
    pub name: String,
    pub context: Context,
}

/// A compared side's model as fingerprinted (as `base` and `base_weights` are).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparedIdentity {
    pub name: String,
    pub model: ModelIdentity,
    pub weights: String,
    pub chat_template: Option<TemplateIdentity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerIdentity>,
}

/// A compared side's part of one examples.jsonl line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideCounts {
    pub name: String,
    /// The rendered prompt this side saw before the answer.
    pub context: String,
    pub scoring_seconds: f64,
    pub unshifted: u32,
    pub marginal: u32,
    pub shifted: u32,
}

/// One reference side's statistics in summary.json (`sides`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideSummary {
    pub name: String,
    /// The model reference as given.
    pub model: String,
    pub context: Context,
    pub aggregates: Aggregates,
}

/// Where along a stage order (base, then the compared sides, then the aligned
/// side) each answer token first becomes probable: per position, the first
/// stage whose rank of the aligned token is within the bar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stages {
    /// Side names in stage order, `aligned` last.
    pub order: Vec<String>,
    /// Settling as top-1, then within the marginal bar (rank <= 3 by default).
    pub by_bar: Vec<StageBar>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageBar {
    /// The largest rank that counts as settled.
    pub max_rank: u32,
    /// One entry per stage in `order`, then one named `unsettled` for
    /// positions no stage (not even the aligned side) ranks within the bar.
    pub stages: Vec<StageShare>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageShare {
    pub stage: String,
    pub positions: u64,
    #[serde(with = "nan_as_null")]
    pub share: f64,
    /// 95 % bootstrap interval of the share over examples.
    pub interval: Estimate,
    /// The tokens this stage settles most often, most first.
    pub top_tokens: Vec<SettledToken>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettledToken {
    pub token_id: u32,
    pub token: String,
    pub count: u64,
}

/// A statistic with its 95 % interval (null ends where undefined).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    #[serde(with = "nan_as_null")]
    pub value: f64,
    #[serde(with = "nan_as_null")]
    pub low: f64,
    #[serde(with = "nan_as_null")]
    pub high: f64,
}

/// The headline statistics over a subset of positions, with intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitStats {
    pub examples: usize,
    pub positions: u64,
    pub unshifted: Estimate,
    pub marginal: Estimate,
    pub shifted: Estimate,
    /// Mean KL(aligned || base) over the positions where it is known.
    pub kl_aligned_base: Estimate,
}

/// The first `first` answer positions against the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionSplit {
    pub first: u32,
    pub head: SplitStats,
    pub rest: SplitStats,
}

/// One point of the base-rank CDF: the share of positions whose base rank of
/// the aligned token is at most `rank`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CdfPoint {
    pub rank: u32,
    pub share: f64,
}

/// Statistics by the value of one record field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Groups {
    pub field: String,
    /// By value, largest group first; records without the field are `(none)`.
    pub groups: Vec<Group>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub value: String,
    #[serde(flatten)]
    pub stats: SplitStats,
}
