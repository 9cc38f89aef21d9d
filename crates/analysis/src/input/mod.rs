//! What a study reads and renders before any model runs: data sets and their
//! field mapping ([`dataset`]), each side's prompt ([`context`]), and context
//! prefixes shared by many records ([`prefixes`]).

pub mod context;
pub mod dataset;
pub mod prefixes;
