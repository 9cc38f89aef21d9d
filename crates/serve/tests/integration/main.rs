//! The live server's integration tests as one binary (one link on a
//! 2-core machine).

mod access;
mod api;
mod browser;
mod common;
mod load;
