//! aligntds-analysis: token distribution shift (TDS) between an aligned and a
//! base model, as a library. [`study::Study`] runs a whole study from typed
//! [`settings::StudySettings`]; [`backend`] is the seam to whatever computes
//! the distributions; [`metrics`] work on rows and need no model. What reads
//! finished runs is in aligntds-stats.
//!
//! Folders by concern, dependencies pointing down this list: `settings`
//! (typed settings and study files, a leaf), `input` (data sets, contexts,
//! shared prefixes), `metrics` (per-position metrics over rows), `backend`
//! (the seam: the local engine and vLLM servers), `study` (one record, the run
//! folder, outputs, merge), `live` (the same flow one token at a time).

pub mod backend;
pub mod handover;
mod hashing;
pub mod input;
pub mod live;
pub mod metrics;
pub mod settings;
pub mod study;
pub mod synthetic;

pub use aligntds_formats as formats;
pub use settings::StudySettings;
pub use study::merge::merge;
pub use study::{Outcome, Progress, Study, StudyError};
