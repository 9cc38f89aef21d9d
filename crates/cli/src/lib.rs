//! The `aligntds` command line as a library: [`main`] parses arguments, runs
//! one command, prints any error once with its context and returns the exit
//! code (2 on failure). The binary (main.rs) and the Python package's
//! `aligntds` console script both call it.

mod analyze;
mod args;
mod commands;
mod errors;
mod handover;
mod runtime;
mod serve;

use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches};

/// Runs the command line `args` (the program name first, as `std::env::args_os`
/// gives it); returns the process's exit code: 0, or 2 on failure (clap's
/// own code for a usage error, 0 for `--help` and `--version`).
pub fn main<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = match args::Cli::command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let mut cli = match args::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    args::note_given(&mut cli.command, &matches);
    let filter = std::env::var("ALIGNTDS_LOG").unwrap_or_else(|_| cli.log_level.clone());
    let env_filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A second call in one process (the Python package's) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr)
        .try_init();
    match commands::run(cli.command) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}

#[cfg(test)]
#[path = "dependency_rules_tests.rs"]
mod dependency_rules_tests;
#[cfg(test)]
#[path = "source_cycles_tests.rs"]
mod source_cycles_tests;
