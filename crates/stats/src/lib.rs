//! aligntds-stats: everything that reads finished runs, with no model code.
//! The part-file [`record`], the summary's aggregates ([`summary`]), where in
//! the answer and in which groups shifts fall ([`splits`]), which stage of
//! training settles a token ([`stages`]), bootstrap intervals
//! ([`resampling`]), paired comparisons of runs ([`compare`]), and the
//! terminal rendering and number formatting of all of them. It depends on
//! aligntds-formats alone, so the report, `summarize`, `compare` and a Python
//! reader build without the engine.

pub mod compare;
pub mod describe;
pub mod format;
pub mod record;
pub mod resampling;
pub mod splits;
pub mod stages;
pub mod summary;
#[cfg(test)]
mod testing;

pub use record::{ExampleResult, SideOf};
