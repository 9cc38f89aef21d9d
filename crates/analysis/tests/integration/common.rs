//! Helpers shared by the analysis crate's integration tests.

#[allow(unused_imports)]
pub use aligntds_testkit::{fixture, smollm2};
