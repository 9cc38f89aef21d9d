//! Helpers shared by the binary's test crates.
#![allow(dead_code)] // each test crate uses its own subset

use std::path::PathBuf;
use std::process::{Command, Output};

pub fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name);
    p.canonicalize().unwrap().to_string_lossy().into_owned()
}

pub fn aligntds(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aligntds"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `analyze` on the tiny llama3 (aligned, plain context) / mistral (base) pair.
pub fn pair_args(data: &str, out: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "analyze",
        "--aligned",
        &fixture("llama3"),
        "--base",
        &fixture("mistral"),
        "--aligned-context",
        "plain",
        "--data",
        data,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([
        "--out".to_string(),
        out.to_string_lossy().into_owned(),
        "--quiet".to_string(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A real model file in `models/` (scripts/fetch-models.sh); missing fails the
/// test unless ALIGNTDS_ALLOW_MISSING=1 outside CI says to skip (None).
pub fn real_model(file: &str) -> Option<String> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(file);
    if p.exists() {
        return Some(p.to_string_lossy().into_owned());
    }
    if std::env::var("ALIGNTDS_ALLOW_MISSING").is_ok_and(|v| v == "1")
        && std::env::var("CI").map_or(true, |v| v != "true")
    {
        return None;
    }
    panic!(
        "{} is missing: run `bash scripts/fetch-models.sh`",
        p.display()
    );
}
