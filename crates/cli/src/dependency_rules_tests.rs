//! What reads finished runs builds without model code: the report and the
//! statistics crate reach none of the engine, its model crates or the async
//! runtime through their normal or build dependencies (dev-dependencies may:
//! tests make synthetic runs with the analysis crate). Checked with `cargo
//! tree` over Cargo.lock, so a new dependency edge fails here, not in review.

use std::process::Command;

const MODEL_CODE: &[&str] = &[
    "aligntds-engine",
    "aligntds-analysis",
    "candle-core",
    "candle-nn",
    "tokenizers",
    "hf-hub",
    "tokio",
];

fn normal_dependencies(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(cargo)
        .current_dir(root)
        .args([
            "tree",
            "--offline",
            "--prefix",
            "none",
            "-e",
            "normal,build",
            "-p",
        ])
        .arg(package)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn readers_of_runs_hold_no_model_code() {
    for package in ["aligntds-report", "aligntds-stats"] {
        let deps = normal_dependencies(package);
        assert!(
            deps.iter().any(|d| d == "aligntds-formats"),
            "cargo tree -p {package} lists its dependencies: {deps:?}"
        );
        let found: Vec<&&str> = MODEL_CODE
            .iter()
            .filter(|m| deps.iter().any(|d| d == *m))
            .collect();
        assert!(
            found.is_empty(),
            "{package} depends on {found:?}; statistics and reports must build from aligntds-formats and aligntds-stats alone"
        );
    }
}
