//! Helpers shared by the analysis crate's integration tests.

use std::path::PathBuf;

/// A tiny random-weight fixture checkpoint folder.
#[allow(dead_code)]
pub fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// The real SmolLM2-135M-Instruct GGUF fetched by scripts/fetch-models.sh;
/// None (skip) only when ALIGNTDS_ALLOW_MISSING=1 outside CI, else missing fails.
#[allow(dead_code)]
pub fn smollm2() -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.exists() {
        let allow = std::env::var("ALIGNTDS_ALLOW_MISSING").is_ok_and(|v| v == "1")
            && std::env::var("CI").map_or(true, |v| v != "true");
        assert!(
            allow,
            "{} is missing: run bash scripts/fetch-models.sh",
            path.display()
        );
        return None;
    }
    Some(path.to_string_lossy().into_owned())
}
