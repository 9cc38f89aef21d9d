//! The analysis crate's integration tests as one binary (one link on a
//! 2-core machine); `tests/env` holds those that set process environment
//! variables, which would race with the others in one process.

mod common;
mod handover;
mod live;
mod live_sampling;
mod live_score;
mod multi_side;
mod remedies;
mod tds_pair;
