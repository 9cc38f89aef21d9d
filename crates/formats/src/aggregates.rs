//! The statistics of a run as summary.json holds them: counts, ratios,
//! percentiles, curves and intervals, and the finer splits (first positions
//! against the rest, the base-rank CDF, groups by a record field). NaN is
//! written as null.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::identity::Thresholds;

/// unshifted (base rank <= unshifted_max), marginal (<= marginal_max), shifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Unshifted,
    Marginal,
    Shifted,
}

impl Category {
    pub const ALL: [Self; 3] = [Self::Unshifted, Self::Marginal, Self::Shifted];

    pub fn of(rank: u32, thresholds: Thresholds) -> Self {
        if rank <= thresholds.unshifted_max {
            Self::Unshifted
        } else if rank <= thresholds.marginal_max {
            Self::Marginal
        } else {
            Self::Shifted
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unshifted => "unshifted",
            Self::Marginal => "marginal",
            Self::Shifted => "shifted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// f64 statistics that are undefined on no data (NaN) are written as JSON null
/// and read back as NaN; a missing field is still an error.
pub(crate) mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// Mean, standard deviation, standard error of the mean, and count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStats {
    #[serde(with = "nan_as_null")]
    pub mean: f64,
    #[serde(with = "nan_as_null")]
    pub std: f64,
    #[serde(with = "nan_as_null")]
    pub se: f64,
    pub count: u64,
}

/// The percentiles llama.cpp's KL-divergence report prints.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    #[serde(with = "nan_as_null")]
    pub max: f64,
    #[serde(rename = "99.9", with = "nan_as_null")]
    pub p99_9: f64,
    #[serde(rename = "99", with = "nan_as_null")]
    pub p99: f64,
    #[serde(rename = "95", with = "nan_as_null")]
    pub p95: f64,
    #[serde(rename = "90", with = "nan_as_null")]
    pub p90: f64,
    #[serde(with = "nan_as_null")]
    pub median: f64,
    #[serde(rename = "10", with = "nan_as_null")]
    pub p10: f64,
    #[serde(rename = "5", with = "nan_as_null")]
    pub p5: f64,
    #[serde(rename = "1", with = "nan_as_null")]
    pub p1: f64,
    #[serde(rename = "0.1", with = "nan_as_null")]
    pub p0_1: f64,
    #[serde(with = "nan_as_null")]
    pub min: f64,
}

impl Percentiles {
    /// (name, percentile) in the order written.
    pub const POINTS: [(&'static str, f64); 11] = [
        ("max", 100.0),
        ("99.9", 99.9),
        ("99", 99.0),
        ("95", 95.0),
        ("90", 90.0),
        ("median", 50.0),
        ("10", 10.0),
        ("5", 5.0),
        ("1", 1.0),
        ("0.1", 0.1),
        ("min", 0.0),
    ];

    /// Builds the set from a function of the percentile (0-100).
    pub fn from_fn(f: impl Fn(f64) -> f64) -> Self {
        let [max, p99_9, p99, p95, p90, median, p10, p5, p1, p0_1, min] =
            Self::POINTS.map(|(_, p)| f(p));
        Self {
            max,
            p99_9,
            p99,
            p95,
            p90,
            median,
            p10,
            p5,
            p1,
            p0_1,
            min,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KlStats {
    #[serde(with = "nan_as_null")]
    pub mean: f64,
    #[serde(with = "nan_as_null")]
    pub se: f64,
    #[serde(with = "nan_as_null")]
    pub std: f64,
    pub count: u64,
    pub percentiles: Percentiles,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CategoryCounts {
    pub unshifted: u64,
    pub marginal: u64,
    pub shifted: u64,
}

impl CategoryCounts {
    pub fn get(&self, c: Category) -> u64 {
        match c {
            Category::Unshifted => self.unshifted,
            Category::Marginal => self.marginal,
            Category::Shifted => self.shifted,
        }
    }

    pub fn total(&self) -> u64 {
        self.unshifted + self.marginal + self.shifted
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CategoryRatios {
    pub unshifted: f64,
    pub marginal: f64,
    pub shifted: f64,
}

impl CategoryRatios {
    pub fn get(&self, c: Category) -> f64 {
        match c {
            Category::Unshifted => self.unshifted,
            Category::Marginal => self.marginal,
            Category::Shifted => self.shifted,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankBin {
    pub bin: String,
    pub count: u64,
}

/// One point of a curve along the answer: by absolute position or by decile
/// of the relative position (exactly one of the two is set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decile: Option<usize>,
    pub count: u64,
    pub kl_aligned_base: MeanStats,
    #[serde(with = "nan_as_null")]
    pub base_rank_median: f64,
    pub base_rank_log2: MeanStats,
    pub base_prob: MeanStats,
    pub shifted_ratio: MeanStats,
}

impl CurvePoint {
    /// The position or decile this point stands for.
    pub fn at(&self) -> usize {
        self.position.or(self.decile).unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShiftedToken {
    pub token_id: u32,
    pub token: String,
    pub shifted: u64,
    pub total: u64,
    pub shifted_ratio: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResponseSources {
    pub dataset: usize,
    pub generate: usize,
}

/// Records that could not be analyzed, by reason (version 2).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Skipped {
    pub examples: usize,
    pub by_reason: BTreeMap<String, usize>,
}

/// How the full-vocabulary quantities (KL, JS, entropies) were computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Divergences {
    /// Over full next-token distributions at every position.
    #[default]
    Exact,
    /// Some positions had only top-k views: there the values are lower bounds
    /// (over the partition {top-k tokens of both sides, the rest}).
    LowerBound,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregates {
    pub examples: usize,
    pub positions: u64,
    pub counts: CategoryCounts,
    pub ratios: CategoryRatios,
    pub kl_aligned_base: KlStats,
    pub kl_base_aligned: KlStats,
    #[serde(with = "nan_as_null")]
    pub same_top1_rate: f64,
    #[serde(with = "nan_as_null")]
    pub mean_base_prob: f64,
    pub base_rank_histogram: Vec<RankBin>,
    pub curve_by_position: Vec<CurvePoint>,
    pub curve_by_decile: Vec<CurvePoint>,
    pub top_shifted_tokens: Vec<ShiftedToken>,
    pub response_sources: ResponseSources,
    pub eos_replacements: usize,
    #[serde(default)]
    pub skipped: Skipped,
    #[serde(default)]
    pub divergences: Divergences,
    /// Intervals of the headline statistics (absent in runs written before them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervals: Option<Intervals>,
    /// The first 1, 5, 10 and 20 answer positions against the rest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub position_splits: Vec<PositionSplit>,
    /// The cumulative distribution of the base rank, at ranks 1 to 10, then
    /// 1-2-5 steps up to the largest rank seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rank_cdf: Vec<CdfPoint>,
    /// By the record field `manifest.group_by` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Groups>,
}

/// Percentile intervals of the headline statistics from a bootstrap over
/// examples: an example's positions are resampled together, never one by one.
/// The seed is fixed, so the same run gives the same intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intervals {
    /// The confidence level, 0.95.
    pub level: f64,
    pub resamples: usize,
    pub seed: u64,
    pub unshifted: Bounds,
    pub marginal: Bounds,
    pub shifted: Bounds,
    /// Of the mean KL (positions where it is known).
    pub kl_aligned_base: Bounds,
    pub kl_base_aligned: Bounds,
    pub same_top1_rate: Bounds,
    pub mean_base_prob: Bounds,
}

/// An interval's ends; null where the statistic is undefined (no positions).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    #[serde(with = "nan_as_null")]
    pub low: f64,
    #[serde(with = "nan_as_null")]
    pub high: f64,
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
