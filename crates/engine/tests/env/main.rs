//! Tests that set process environment variables (`HF_HOME`,
//! `HF_HUB_OFFLINE`): a binary of their own, so no other test reads them
//! half-set.

#[path = "../integration/common.rs"]
mod common;
mod errors;
