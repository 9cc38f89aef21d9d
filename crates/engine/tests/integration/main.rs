//! The engine's integration tests as one binary (one link on a 2-core
//! machine); `tests/env` holds those that set process environment variables,
//! which would race with the others in one process.

mod batched_generation;
mod common;
mod gguf;
mod llamacpp;
mod packed_scoring;
mod parity;
mod prefix_reuse;
mod real_models;
mod sampling;
mod templates;
mod tokenization;
