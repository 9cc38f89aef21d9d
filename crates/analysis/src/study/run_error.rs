//! Why one record's analysis failed.

use crate::backend::BackendError;
use crate::input::context::ContextError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Engine(#[from] aligntds_engine::EngineError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("the aligned and base models cannot be compared: {0}")]
    Incompatible(String),
    #[error("record {id}: {message}")]
    Record { id: String, message: String },
    /// The run's cancel token was set while this record was analyzed.
    #[error("cancelled")]
    Cancelled,
    #[error("record {id}: answers come only from the data set, but the record has no answer (output or output_ids)")]
    NoAnswer { id: String },
    /// A record that cannot be analyzed (an error only under `strict`).
    #[error("record {id} cannot be analyzed ({reason}): {detail}")]
    Unanalyzable {
        id: String,
        reason: &'static str,
        detail: String,
    },
}
