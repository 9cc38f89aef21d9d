//! handover.json: the intervention-budget curve of `aligntds handover`, one
//! entry per arm (each arm's run folder is `arms/FOLDER`), with each
//! example's figures.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::sides::Estimate;
use crate::{check_version, from_json_text, read_text, write_atomic, FormatError};

pub const HANDOVER_FILE: &str = "handover.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoverFile {
    pub schema_version: u32,
    /// The arms in the order they ran, `aligned` first.
    pub arms: Vec<Arm>,
}

/// One arm: its policy, folder, and its examples' figures with their means
/// (95 % intervals from a bootstrap over queries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    /// The policy as written (`first:5`).
    pub policy: String,
    /// The arm's run folder under `arms/` (`first-5`).
    pub folder: String,
    pub examples: usize,
    pub aligned_share: Estimate,
    pub handovers: Estimate,
    pub agreement: Estimate,
    pub aligned_mean_logprob: Estimate,
    pub base_mean_logprob: Estimate,
    pub length: Estimate,
    pub per_example: Vec<ArmExample>,
}

/// One example's figures in one arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmExample {
    pub id: String,
    /// The share of the answer's tokens the aligned side chose.
    pub aligned_share: f64,
    /// How often the choosing side changed along the answer.
    pub handovers: u32,
    /// 1 - the token edit distance to the `aligned` arm's answer over the
    /// longer one's length (1: the same answer).
    pub agreement: f64,
    /// The first position where the answer and the `aligned` arm's part
    /// (None: the same answer).
    pub first_difference: Option<u32>,
    /// The mean log-probability of the answer's tokens under each side.
    pub aligned_mean_logprob: f64,
    pub base_mean_logprob: f64,
    pub length: u32,
    pub stop_reason: String,
}

impl HandoverFile {
    pub fn read(dir: &Path) -> Result<Self, FormatError> {
        let path = dir.join(HANDOVER_FILE);
        let text = read_text(&path, "is this a finished `aligntds handover` run?")?;
        let version: crate::summary::VersionOnly = from_json_text(&path, &text, None)?;
        check_version(&path, version.schema_version)?;
        from_json_text(&path, &text, None)
    }

    pub fn write(&self, dir: &Path) -> Result<(), FormatError> {
        let path = dir.join(HANDOVER_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|e| crate::file_err(&path, e))?;
        write_atomic(&path, text.as_bytes())
    }
}
