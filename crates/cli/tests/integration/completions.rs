//! Shell completions and man pages, as a user installs them: each shell's
//! script names the commands and flags (bash's parses with `bash -n`), and
//! the man pages carry every command's help.

use crate::common::*;

#[test]
fn completion_scripts_name_every_command_and_flag() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = aligntds(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for word in [
            "analyze",
            "serve",
            "query-field",
            "allowed-host",
            "compare-served-name",
        ] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let bash = dir.path().join("aligntds.bash");
    std::fs::write(&bash, stdout(&aligntds(&["completions", "bash"]))).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&bash)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    let bad = aligntds(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("bash"), "{}", stderr(&bad));
}

#[test]
fn man_pages_carry_every_commands_help() {
    let page = stdout(&aligntds(&["man"]));
    assert!(
        page.starts_with(".ie") && page.contains(".TH aligntds 1"),
        "{}",
        &page[..page.len().min(200)]
    );
    let dir = tempfile::tempdir().unwrap();
    let out = aligntds(&["man", "--out", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    for command in ["analyze", "serve", "merge", "report", "completions"] {
        let path = dir.path().join(format!("aligntds-{command}.1"));
        assert!(path.is_file(), "{} missing", path.display());
    }
    let analyze = std::fs::read_to_string(dir.path().join("aligntds-analyze.1")).unwrap();
    // roff escapes hyphens in options as \-.
    assert!(
        analyze.contains("query\\-field") && analyze.contains("dotted path"),
        "no --query-field help"
    );
    let serve = std::fs::read_to_string(dir.path().join("aligntds-serve.1")).unwrap();
    assert!(serve.contains("allowed\\-host") && serve.contains("reverse proxy"));
}
