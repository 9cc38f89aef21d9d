//! aligntds-analysis: token distribution shift (TDS) between an aligned and a
//! base model. Metrics work on log-probability rows and need no model.

pub mod context;
pub mod dataset;
pub mod journal;
pub mod metrics;
pub mod output;
pub mod row_kernels;
pub mod run;
pub mod stats;
pub mod summary;
pub mod synthetic;
