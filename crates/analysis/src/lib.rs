//! aligntds-analysis: token distribution shift (TDS) between an aligned and a
//! base model, as a library. [`study::Study`] runs a whole study from typed
//! [`settings::StudySettings`]; [`backend`] is the seam to whatever computes
//! the distributions; metrics work on rows and need no model.

pub mod backend;
pub mod context;
pub mod dataset;
mod hashing;
pub mod live;
mod local_batch;
mod local_scoring;
pub mod merge;
pub mod metrics;
pub mod output;
pub mod prefixes;
pub mod row_kernels;
pub mod run;
pub mod run_folder;
pub mod settings;
pub mod study;
pub mod study_file;
pub mod synthetic;
pub mod vllm;

pub use aligntds_formats as formats;
pub use merge::merge;
pub use settings::StudySettings;
pub use study::{Outcome, Progress, Study, StudyError};
