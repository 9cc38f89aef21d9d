//! The binary's end-to-end tests as one test binary (one link on a 2-core
//! machine): each module runs `aligntds` as a user would.

mod answered_by;
mod architectures;
mod batched_study;
mod browser;
mod cli;
mod common;
mod compare;
mod completions;
mod data_files;
mod golden_run;
mod handover;
mod multi_side;
mod run_folders;
mod run_study;
mod sampled_study;
mod samples;
mod sampling;
mod serve;
mod vllm;
