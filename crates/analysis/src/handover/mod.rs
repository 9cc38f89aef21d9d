//! Handover decoding, the causal test of superficial alignment: at every
//! step both sides see the same prefix and give their distribution; a
//! policy picks whose token is taken, and both continue from it. The
//! `aligned` policy is the aligned side's own answer, `base` the base
//! side's; the policies between say how few aligned tokens it takes to get
//! the aligned answer (Fei et al.'s nudging, Qi et al.'s first tokens).
//!
//! This module decodes one record under one policy ([`decode`]); the
//! resulting answer is then scored teacher-forced like any other.

mod decode;
mod policy;

pub use decode::{decode, Handover};
pub use policy::Policy;
