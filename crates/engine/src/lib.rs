//! aligntds-engine: loads language models (Hugging Face checkpoints, GGUF
//! files or Hub ids), tokenizes and renders chat templates as transformers
//! does, and computes exact teacher-forced next-token log-distributions in one
//! forward pass, and greedy generations.
//!
//! The public boundary is what this file exports: models and text models
//! ([`LanguageModel`], [`TextModel`]), their options and errors, generation
//! (single, batched, stepped), scoring results, and the modules `config`,
//! `tokenizer`, `template`, `bench` and `math`. Everything else (the folders
//! `models/` with the architectures and the decoder, `kernels/`, `loading/`,
//! `generation/`) is private to the crate.

pub mod bench;
mod cancel;
pub mod config;
mod error;
mod generation;
mod kernels;
mod loading;
mod model;
mod models;
mod prefix;
mod score;
pub mod template;
mod text_model;
pub mod tokenizer;

pub use cancel::Cancel;
pub use candle_core::{DType, Device};
pub use config::Architecture;
pub use error::{EngineError, LoadSetting, Remedy, Result};
pub use generation::batch::{BatchGenerator, Finished, Request};
pub use generation::generate::{find_stop, GenerateOptions, Generation, StopReason};
pub use generation::sampling::Sampling;
pub use generation::stepper::Stepper;
pub use loading::options::{parse_device, parse_dtype, DTypeChoice, LoadOptions};
pub use model::LanguageModel;
pub use prefix::{shared_prefix_len, PrefixCache};
pub use score::{
    argmax, log_softmax_in_place, pair_chunk_rows, LogProbRows, PreparedScoring, ScoreRequest,
    ScoredHidden, PACKED_PASS_TOKENS,
};
pub use template::{ChatMessage, ChatTemplate};
pub use text_model::{ResolvedSource, TextModel};

/// Vectorised row math that the analysis's metrics reuse: the engine's exp
/// and ln, and the CPU checks behind [`widest!`], which compiles a kernel for
/// the widest vectors this CPU has.
pub mod math {
    pub use crate::kernels::fastmath::{exp_f32, ln_f32};
    pub use crate::kernels::quantized_int8::{path as int8_path, Path as Int8Path};
    pub use crate::kernels::simd::{has_avx2, has_avx512, has_avx512_bf16, level, Level};
}

/// Sizes the global thread pool used by the engine's per-row work.
pub fn set_threads(threads: usize) -> Result<()> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| EngineError::option(crate::LoadSetting::Threads, e.to_string()))
}
