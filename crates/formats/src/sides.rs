//! The parts of the run files that describe several reference sides and the
//! finer splits of a run's statistics: the sides' settings and identities,
//! their per-side summaries, the stage view, position and group splits, and
//! the base-rank CDF. Pair runs leave the multi-side parts out, so their files
//! read and fingerprint as before.

use serde::{Deserialize, Serialize};

use crate::aggregates::{nan_as_null, Aggregates};
pub use crate::aggregates::{CdfPoint, Estimate, Group, Groups, PositionSplit, SplitStats};
use crate::identity::Context;
pub use crate::identity::{ComparedIdentity, NamedContext};

/// The name of the reference side set by `--base` (always the first).
pub const BASE_SIDE: &str = "base";
/// The answering side's name in a stage order.
pub const ALIGNED_SIDE: &str = "aligned";

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
