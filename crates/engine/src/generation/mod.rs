//! Generation: options, results and stop rules (`generate`), the batched
//! decoding loop that also serves a single sequence (`batch`), a sequence
//! advanced a few tokens at a time for live views (`stepper`), and drawing
//! tokens from the distribution instead of greedily (`sampling`).

pub(crate) mod batch;
pub(crate) mod generate;
pub(crate) mod sampling;
pub(crate) mod stepper;
