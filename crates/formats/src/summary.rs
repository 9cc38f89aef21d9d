//! summary.json: the run's manifest (what was compared, with which settings)
//! and its aggregates. Written by aligntds-analysis, read by `summarize`,
//! `merge` and the report through these types only.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{check_version, file_err, from_json_text, read_text, write_atomic, FormatError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub schema_version: u32,
    pub manifest: Manifest,
    /// The base side's statistics (the only reference side of a pair run).
    pub aggregates: Aggregates,
    /// Every reference side in study order, `base` first (whose aggregates
    /// equal `aggregates`); absent in pair runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sides: Vec<crate::sides::SideSummary>,
    /// The stage view over base, the compared sides and the aligned side;
    /// absent in pair runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<crate::sides::Stages>,
}

impl Summary {
    /// Reads `dir/summary.json`, naming the file and the field on any problem.
    pub fn read(dir: &Path) -> Result<Self, FormatError> {
        let path = dir.join(crate::SUMMARY_FILE);
        let text = read_text(&path, "is this a finished `aligntds analyze` run?")?;
        let version: VersionOnly = from_json_text(&path, &text, None)?;
        check_version(&path, version.schema_version)?;
        from_json_text(&path, &text, None)
    }

    pub fn write(&self, dir: &Path) -> Result<(), FormatError> {
        let path = dir.join(crate::SUMMARY_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|e| file_err(&path, e))?;
        write_atomic(&path, text.as_bytes())
    }
}

#[derive(Deserialize)]
pub(crate) struct VersionOnly {
    pub schema_version: u32,
}

/// Everything that changes results, fingerprinted: two runs with equal
/// identities give equal outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunIdentity {
    pub tool: String,
    pub aligned: ModelIdentity,
    pub base: ModelIdentity,
    pub aligned_weights: String,
    pub base_weights: String,
    pub device: String,
    pub aligned_chat_template: Option<TemplateIdentity>,
    pub base_chat_template: Option<TemplateIdentity>,
    pub settings: RecordedSettings,
    /// The data file as given (None for a single query).
    pub data: Option<String>,
    pub data_sha256: Option<String>,
    pub query: Option<String>,
    pub limit: Option<usize>,
    /// What served a remote side (None: the local engine). Server URLs are
    /// not part of it, so a run resumes on other replicas of the same model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aligned_server: Option<ServerIdentity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_server: Option<ServerIdentity>,
    /// The reference sides after `base`, in study order (absent in pair runs,
    /// so pair runs keep their fingerprints).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compare: Vec<crate::sides::ComparedIdentity>,
    /// The record fields read as query, answer and id, where not the
    /// default names (absent otherwise, so earlier runs keep their fingerprints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<crate::fields::FieldMap>,
}

/// A side computed by vLLM servers: the served model and what its results depend on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerIdentity {
    /// The model's name on the servers (/v1/models `id`).
    pub served_model: String,
    pub max_model_len: usize,
    /// Log-probabilities requested per position (the top-k views' k).
    pub logprobs: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(flatten)]
    pub identity: RunIdentity,
    /// `i/n` for a shard of a larger run.
    #[serde(default)]
    pub shard: Option<String>,
    pub fingerprint: String,
    #[serde(default)]
    pub timings: Option<Timings>,
    /// The shard folders a merged run came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_from: Option<Vec<String>>,
    /// The servers this invocation used, per side (not fingerprinted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<ServerUse>,
    /// The record field the aggregates' `groups` split by (not fingerprinted:
    /// it changes no position's values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
}

/// One server of a remote side and what it did in the last invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerUse {
    /// `aligned`, `base` or a compared side's name.
    pub side: String,
    pub url: String,
    pub requests: u64,
    pub failed_requests: u64,
    /// Prompt tokens scored plus tokens generated.
    pub tokens: u64,
}

/// A model as fingerprinted: the reference, what kind of source it resolved
/// to, and the files (with sha256) or Hub commit that pin its contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelIdentity {
    pub reference: String,
    /// `checkpoint`, `gguf` or `hub` (absent in version 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The Hub commit a Hub id resolved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub files: Vec<FileIdentity>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIdentity {
    pub file: Option<String>,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateIdentity {
    pub name: String,
    pub sha256: String,
}

/// The result-changing settings as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedSettings {
    pub aligned_context: Context,
    pub base_context: Context,
    pub response: ResponseSource,
    pub max_new_tokens: usize,
    pub stops: Vec<String>,
    pub top_k: usize,
    pub thresholds: Thresholds,
    /// The compared sides' contexts, in study order (absent in pair runs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compare: Vec<crate::sides::NamedContext>,
}

/// The prompt format a side sees before the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContextKind {
    Chat,
    Input,
    Template,
    Plain,
    Urial,
    Custom,
}

impl ContextKind {
    pub const ALL: [Self; 6] = [
        Self::Chat,
        Self::Input,
        Self::Template,
        Self::Plain,
        Self::Urial,
        Self::Custom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Input => "input",
            Self::Template => "template",
            Self::Plain => "plain",
            Self::Urial => "urial",
            Self::Custom => "custom",
        }
    }
}

/// One side's context settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub kind: ContextKind,
    pub system: Option<String>,
    /// The URIAL prefix text (for `urial`; None: the shipped one).
    pub prefix: Option<String>,
    /// A template containing `{query}` (for `custom`).
    pub template: Option<String>,
    /// `enable_thinking` passed to a `chat` context's template (Qwen3's
    /// switch); None: not passed, the template's default. Absent from files
    /// written without it, so their fingerprints are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_thinking: Option<bool>,
}

impl Context {
    pub fn of(kind: ContextKind) -> Self {
        Self {
            kind,
            system: None,
            prefix: None,
            template: None,
            enable_thinking: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponseSource {
    /// The data set's answer where the record has one, else generate.
    Auto,
    Dataset,
    Generate,
}

/// Rank thresholds of the categories (the paper's: 1 and 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    pub unshifted_max: u32,
    pub marginal_max: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            unshifted_max: 1,
            marginal_max: 3,
        }
    }
}

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub load_seconds: f64,
    pub analysis_seconds_this_invocation: f64,
    pub total_seconds_this_invocation: f64,
    pub examples_resumed: usize,
    pub aligned: SideTimings,
    pub base: SideTimings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideTimings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_tokens: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_tokens_per_second: Option<f64>,
    pub scoring_seconds: f64,
    pub scored_tokens: usize,
    pub scoring_tokens_per_second: f64,
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
    pub position_splits: Vec<crate::sides::PositionSplit>,
    /// The cumulative distribution of the base rank, at ranks 1 to 10, then
    /// 1-2-5 steps up to the largest rank seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rank_cdf: Vec<crate::sides::CdfPoint>,
    /// By the record field `manifest.group_by` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<crate::sides::Groups>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_mistyped_field_names_the_file_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::SUMMARY_FILE);
        std::fs::write(
            &path,
            r#"{"schema_version": 2, "manifest": {}, "aggregates": {}}"#,
        )
        .unwrap();
        let e = Summary::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("summary.json") && e.contains("manifest"), "{e}");
        std::fs::write(&path, r#"{"schema_version": 9}"#).unwrap();
        let e = Summary::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("schema_version") && e.contains('9'), "{e}");
        std::fs::write(&path, "{\"schema_version\": \"two\"}").unwrap();
        let e = Summary::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("schema_version") && e.contains("string"), "{e}");
    }

    #[test]
    fn undefined_statistics_round_trip_as_null() {
        let s = MeanStats {
            mean: f64::NAN,
            std: 0.0,
            se: f64::NAN,
            count: 0,
        };
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(text, r#"{"mean":null,"std":0.0,"se":null,"count":0}"#);
        let back: MeanStats = serde_json::from_str(&text).unwrap();
        assert!(back.mean.is_nan() && back.std == 0.0);
        assert!(serde_json::from_str::<MeanStats>(r#"{"std":0.0,"se":1,"count":0}"#).is_err());
    }
}
