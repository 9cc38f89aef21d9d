//! The fixture pair's positions.parquet, value by value, against a golden
//! written by the schema-version-1 code before the study moved into the
//! library (fixtures/golden/pair-positions.jsonl). New columns may appear;
//! every golden column must keep its value (floats within 1e-5 across CPUs:
//! see `same_value`). `ALIGNTDS_BLESS=1` rewrites it.

use crate::common::{aligntds, pair_args, stderr, strs};
use parquet::file::reader::{FileReader, SerializedFileReader};

fn rows(path: &std::path::Path) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| match row.unwrap().to_json_value() {
            serde_json::Value::Object(map) => map,
            other => panic!("row is not an object: {other}"),
        })
        .collect()
}

#[test]
fn fixture_pair_positions_equal_the_golden_written_before_the_refactor() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("q.jsonl");
    std::fs::write(
        &data,
        "{\"id\": \"given\", \"prompt\": \"Hello\", \"output_ids\": [300, 301, 302, 2]}\n\
         {\"id\": \"g1\", \"prompt\": \"Why is the sky blue?\"}\n\
         {\"id\": \"g2\", \"prompt\": \"Name three colours.\"}\n",
    )
    .unwrap();
    let out = tmp.path().join("run");
    let args = pair_args(
        data.to_str().unwrap(),
        &out,
        &["--max-new-tokens", "12", "--top-k", "5"],
    );
    let o = aligntds(&strs(&args));
    assert!(o.status.success(), "{}", stderr(&o));
    let got = rows(&out.join("positions.parquet"));
    let golden_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/golden/pair-positions.jsonl");
    if std::env::var_os("ALIGNTDS_BLESS").is_some() {
        let text: String = got
            .iter()
            .map(|r| serde_json::Value::Object(r.clone()).to_string() + "\n")
            .collect();
        std::fs::write(&golden_path, text).unwrap();
    }
    let golden: Vec<serde_json::Map<String, serde_json::Value>> =
        std::fs::read_to_string(&golden_path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(got.len(), golden.len(), "row count");
    assert!(golden.len() > 20, "the golden covers several examples");
    let mut worst = 0f64;
    for (i, (g, want)) in got.iter().zip(&golden).enumerate() {
        for (column, value) in want {
            let have = g.get(column);
            worst = worst.max(same_value(have, value).unwrap_or_else(|| {
                panic!("row {i}, column `{column}`: {have:?} vs golden {value}")
            }));
        }
    }
    eprintln!("largest float difference from the golden: {worst:.3e}");
}

/// `Some(difference)` when `have` equals `want`: ids, ranks, texts and
/// categories exactly; floats within 1e-5 (relative above 1). The golden was
/// written on one CPU, and the f32 matrix kernels pick different instruction
/// sets on others (seen: 3e-7 on a KL between an Intel and an AMD machine);
/// on the machine that wrote it the values are identical.
fn same_value(have: Option<&serde_json::Value>, want: &serde_json::Value) -> Option<f64> {
    use serde_json::Value;
    match (have?, want) {
        (Value::Number(a), Value::Number(b)) if a.is_f64() || b.is_f64() => {
            let (a, b) = (a.as_f64()?, b.as_f64()?);
            let d = (a - b).abs();
            (d <= 1e-5 * b.abs().max(1.0)).then_some(d)
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .map(|(x, y)| same_value(Some(x), y))
            .try_fold(0f64, |m, d| Some(m.max(d?))),
        (Value::Object(a), Value::Object(b)) if a.len() == b.len() => b
            .iter()
            .map(|(k, y)| same_value(a.get(k), y))
            .try_fold(0f64, |m, d| Some(m.max(d?))),
        (a, b) => (a == b).then_some(0.0),
    }
}
