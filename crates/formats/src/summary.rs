//! summary.json: the run's manifest (what was compared, with which settings)
//! and its aggregates. Written by aligntds-analysis, read by `summarize`,
//! `merge` and the report through these types only.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{check_version, file_err, from_json_text, read_text, write_atomic, FormatError};

pub use crate::aggregates::*;
pub use crate::identity::*;

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
