//! `analyze --batch`: the real SmolLM2-135M-Instruct pair (chat template vs
//! zero-shot template, weights kept quantized) gives the same study whether
//! answers are generated one at a time or together.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use aligntds_formats::positions::PositionRecord;
use common::{aligntds, real_model, stderr};

fn analyze(model: &str, data: &Path, out: &Path, batch: &str) {
    let args = [
        "analyze",
        "--aligned",
        model,
        "--base",
        model,
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--dtype",
        "q",
        "--max-new-tokens",
        "40",
        "--batch",
        batch,
        "--quiet",
    ];
    let run = aligntds(&args);
    assert!(run.status.success(), "--batch {batch}: {}", stderr(&run));
}

fn study(dir: &Path) -> BTreeMap<String, (Vec<u32>, String, Vec<PositionRecord>)> {
    let mut positions = BTreeMap::new();
    aligntds_formats::positions::for_each_example(dir, |id, rows| {
        positions.insert(id.to_string(), rows);
        Ok(())
    })
    .unwrap();
    aligntds_formats::examples::read(dir)
        .unwrap()
        .into_iter()
        .map(|e| {
            let rows = positions.remove(&e.id).unwrap_or_default();
            (e.id, (e.answer_ids, e.stop_reason, rows))
        })
        .collect()
}

#[test]
fn a_batched_study_equals_the_one_at_a_time_study() {
    let Some(model) = real_model("SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("q.txt");
    // More queries than the batch, of different lengths, so answers join and leave.
    std::fs::write(
        &data,
        "What is the capital of France?\nGive me three tips for staying healthy.\n\
         Write a haiku about autumn.\nWhat is 12 times 7?\nExplain photosynthesis to a child.\n\
         Name a famous painter.\nHow do I boil an egg?\n",
    )
    .unwrap();
    let (single, batched) = (tmp.path().join("single"), tmp.path().join("batched"));
    analyze(&model, &data, &single, "1");
    analyze(&model, &data, &batched, "3");
    let (single, batched) = (study(&single), study(&batched));
    assert_eq!(single.len(), 7);
    let mut same = 0;
    for (id, (answer, stop, rows)) in &single {
        let (b_answer, b_stop, b_rows) = &batched[id];
        if answer != b_answer {
            // Only a near-tie may part them; the engine's tests bound those.
            eprintln!("{id}: answers part (a near-tie)");
            continue;
        }
        assert_eq!(stop, b_stop, "{id}");
        assert!(rows == b_rows, "{id}: positions differ for the same answer");
        same += 1;
    }
    eprintln!(
        "{same} of {} answers identical batched and one at a time",
        single.len()
    );
    assert!(same >= 6, "only {same} of 7 answers identical");
}
