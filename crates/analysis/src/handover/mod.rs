//! Handover decoding, the causal test of superficial alignment: at every
//! step both sides see the same prefix and give their distribution; a
//! policy picks whose token is taken, and both continue from it. The
//! `aligned` policy is the aligned side's own answer, `base` the base
//! side's; the policies between say how few aligned tokens it takes to get
//! the aligned answer (Fei et al.'s nudging, Qi et al.'s first tokens).
//!
//! [`decode`] decodes one record under one policy; a study with
//! `handover` set scores that answer teacher-forced like any other (each
//! position's `chosen_by` says who chose it); [`run`] runs one such study per
//! arm and writes the curve (handover.json); [`merge`] joins the shards of
//! a sharded one.

pub mod arms;
mod decode;
pub mod merge;
pub mod policy;

pub use arms::{arms, run, run_with};
pub use decode::{decode, Handover};
pub use merge::{is_handover, merge};
pub use policy::Policy;
