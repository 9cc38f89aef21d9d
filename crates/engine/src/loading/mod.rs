//! Where a model comes from and how its files become a model: references
//! (`source`: a folder, a GGUF file or a Hub id), the Hub cache (`hub`), a
//! checkpoint's files (`checkpoint`), GGUF files (`gguf` reads them,
//! `gguf_config` maps their metadata through the architecture registry,
//! `gguf_model` loads weights, `gguf_tokenizer` rebuilds the tokenizer) and
//! the load options (`options`).

pub(crate) mod checkpoint;
pub(crate) mod gguf;
pub(crate) mod gguf_config;
pub(crate) mod gguf_model;
pub(crate) mod gguf_tokenizer;
pub(crate) mod hub;
pub(crate) mod options;
pub(crate) mod source;
