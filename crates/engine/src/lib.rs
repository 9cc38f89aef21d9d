//! aligntds-engine: loads language models (Hugging Face checkpoints or Hub ids),
//! tokenizes and renders chat templates as transformers does, and computes
//! exact teacher-forced next-token log-distributions in one forward pass.

pub mod batch;
pub mod bench;
mod cancel;
mod checkpoint;
pub mod config;
pub mod error;
pub mod fastmath;
pub mod generate;
pub mod gguf;
mod gguf_config;
mod gguf_model;
mod gguf_tokenizer;
mod hub;
pub mod model;
pub mod models;
pub mod options;
pub mod prefix;
pub mod rope;
pub mod score;
pub mod simd;
pub mod source;
pub mod stepper;
pub mod template;
pub mod text_model;
pub mod tokenizer;

pub use batch::{BatchGenerator, Finished, Request};
pub use cancel::Cancel;
pub use candle_core::{DType, Device};
pub use config::Architecture;
pub use error::{EngineError, Result};
pub use generate::{GenerateOptions, Generation, StopReason};
pub use model::LanguageModel;
pub use options::{parse_device, parse_dtype, DTypeChoice, LoadOptions};
pub use prefix::PrefixCache;
pub use score::{log_softmax_in_place, LogProbRows};
pub use stepper::Stepper;
pub use template::{ChatMessage, ChatTemplate};
pub use text_model::TextModel;

/// Sizes the global thread pool used by the engine's per-row work.
pub fn set_threads(threads: usize) -> Result<()> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| EngineError::option("threads", e.to_string()))
}
