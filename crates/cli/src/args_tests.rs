//! The command line as users expect of a clap tool: every command, flag and
//! positional argument says what it is for.

use clap::CommandFactory;

use super::Cli;

/// `command path: argument` for every argument without help text.
fn missing_help(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
    let path = format!("{path} {}", command.get_name()).trim().to_string();
    if command.get_about().is_none() && path != "aligntds" {
        missing.push(format!("{path}: no about"));
    }
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(id, "help" | "version") {
            continue;
        }
        let help = arg.get_help().or(arg.get_long_help());
        if help.is_none_or(|h| h.to_string().trim().is_empty()) {
            missing.push(format!(
                "{path}: {}",
                arg.get_long().map_or(id.to_string(), |l| format!("--{l}"))
            ));
        }
    }
    for sub in command.get_subcommands() {
        if sub.get_name() != "help" {
            missing_help(sub, &path, missing);
        }
    }
}

#[test]
fn every_command_flag_and_argument_has_help() {
    let mut missing = Vec::new();
    missing_help(&Cli::command(), "", &mut missing);
    assert!(missing.is_empty(), "without help:\n{}", missing.join("\n"));
}

#[test]
fn the_command_line_definition_is_consistent() {
    Cli::command().debug_assert();
}
