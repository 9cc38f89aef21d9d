//! Test support shared by aligntds's crates, as a dev-dependency: where the
//! repository's inputs are, the rule for inputs a test needs but setup
//! fetches, and the headless Chromium driver of the report's and the live
//! page's browser tests. No test reaches into another crate's tests folder.

use std::path::{Path, PathBuf};

pub mod chromium;

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// A tiny random-weight fixture (`fixtures/NAME`, from scripts/make_fixtures.py).
pub fn fixture_dir(name: &str) -> PathBuf {
    repo_root().join("fixtures").join(name)
}

/// [`fixture_dir`] as the text a model reference takes.
pub fn fixture(name: &str) -> String {
    fixture_dir(name).to_string_lossy().into_owned()
}

/// A prepared input that must exist: a missing one fails the test, unless
/// ALIGNTDS_ALLOW_MISSING=1 outside CI says to skip (then None). CI never
/// skips: `CI=true` makes every missing input a failure.
pub fn require(path: &Path, how_to_get: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path.to_path_buf());
    }
    let allow = std::env::var("ALIGNTDS_ALLOW_MISSING").is_ok_and(|v| v == "1")
        && std::env::var("CI").map_or(true, |v| v != "true");
    if allow {
        eprintln!("skipping: {} is missing ({how_to_get})", path.display());
        return None;
    }
    panic!(
        "{} is missing: {how_to_get} (set ALIGNTDS_ALLOW_MISSING=1 to skip locally)",
        path.display()
    );
}

/// A real model file in `models/` (scripts/fetch-models.sh), by [`require`]'s rule.
pub fn real_model(file: &str) -> Option<String> {
    require(
        &repo_root().join("models").join(file),
        "run bash scripts/fetch-models.sh",
    )
    .map(|p| p.to_string_lossy().into_owned())
}

/// The real SmolLM2-135M-Instruct GGUF, by [`require`]'s rule.
pub fn smollm2() -> Option<String> {
    real_model("SmolLM2-135M-Instruct.Q4_1.gguf")
}
