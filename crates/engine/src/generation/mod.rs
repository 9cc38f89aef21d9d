//! Greedy generation: options, results and stop rules (`generate`), the
//! batched decoding loop that also serves a single sequence (`batch`), and a
//! sequence advanced a few tokens at a time for live views (`stepper`).

pub(crate) mod batch;
pub(crate) mod generate;
pub(crate) mod stepper;
