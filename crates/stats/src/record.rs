//! The part-file record: one finished example (its examples.jsonl line and
//! the positions of every reference side), as written to a run's `parts/`
//! and read back by everything that summarizes a run.

use aligntds_formats::examples::ExampleLine;
use aligntds_formats::positions::{PositionRecord, SidePositions};
use aligntds_formats::sides::BASE_SIDE;

/// Which reference side's positions of an example a statistic is over.
pub type SideOf<'s> = dyn Fn(&ExampleResult) -> &[PositionRecord] + Sync + 's;

/// A finished record: its examples.jsonl line and its positions.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExampleResult {
    #[serde(flatten)]
    pub example: ExampleLine,
    /// The base side's positions.
    #[serde(default)]
    pub positions: Vec<PositionRecord>,
    /// Each compared side's positions, in study order (empty in a pair study).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compared: Vec<SidePositions>,
}

impl ExampleResult {
    /// Every reference side's positions in study order, `base` first.
    pub fn sides(&self) -> Vec<(&str, &[PositionRecord])> {
        std::iter::once((BASE_SIDE, self.positions.as_slice()))
            .chain(
                self.compared
                    .iter()
                    .map(|s| (s.side.as_str(), s.positions.as_slice())),
            )
            .collect()
    }
}
