//! Throughput features that must not change a study: `analyze --batch` (the
//! real SmolLM2-135M-Instruct pair, chat template vs zero-shot template, gives
//! the same study whether answers are generated one at a time or together) and
//! shared-prefix reuse (Gemma 3 270M under the URIAL prefix gives the study of
//! `--no-prefix-reuse`, which runs every sequence from its first token).

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{aligntds, real_model, stderr};
use aligntds_formats::positions::PositionRecord;

/// `analyze` of the model against itself (its two contexts), weights kept
/// quantized, up to 24 new tokens.
fn analyze(model: &str, data: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec![
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
        "24",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let run = aligntds(&args);
    assert!(run.status.success(), "{extra:?}: {}", stderr(&run));
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
    analyze(&model, &data, &single, &["--batch", "1"]);
    analyze(&model, &data, &batched, &["--batch", "3"]);
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

#[test]
fn a_reused_urial_prefix_gives_the_from_scratch_study() {
    let Some(model) = real_model("gemma-3-270m-q4_k_m.gguf") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("q.txt");
    std::fs::write(
        &data,
        "What is the capital of France?\nWrite a haiku about autumn.\nHow do I boil an egg?\nName a famous painter.\n",
    )
    .unwrap();
    let (scratch, reused) = (tmp.path().join("scratch"), tmp.path().join("reused"));
    let urial = ["--aligned-context", "urial"];
    analyze(
        &model,
        &data,
        &scratch,
        &[&urial[..], &["--no-prefix-reuse"]].concat(),
    );
    analyze(&model, &data, &reused, &urial);
    let (scratch, reused) = (study(&scratch), study(&reused));
    assert_eq!(scratch.len(), 4);
    let mut worst = [0f64; 3];
    for (id, (answer, stop, rows)) in &scratch {
        let (r_answer, r_stop, r_rows) = &reused[id];
        assert_eq!(
            (answer, stop),
            (r_answer, r_stop),
            "{id}: the answer changed"
        );
        assert_eq!(rows.len(), r_rows.len(), "{id}");
        for (a, b) in rows.iter().zip(r_rows) {
            assert_eq!(
                (a.token_id, a.aligned_rank, a.base_rank, a.category),
                (b.token_id, b.aligned_rank, b.base_rank, b.category),
                "{id} position {}",
                a.position
            );
            for (w, (x, y)) in worst.iter_mut().zip([
                (a.aligned_logprob as f64, b.aligned_logprob as f64),
                (a.base_logprob as f64, b.base_logprob as f64),
                (
                    a.kl_aligned_base.unwrap_or(0.0),
                    b.kl_aligned_base.unwrap_or(0.0),
                ),
            ]) {
                // f32 rounding of the attention's other blocking: relative to the value.
                *w = w.max((x - y).abs() / x.abs().max(1.0));
            }
        }
    }
    eprintln!(
        "URIAL prefix reused: log-probabilities within {:.2e} (aligned) and {:.2e} (base), KL within {:.2e} of from scratch (relative, at least 1)",
        worst[0], worst[1], worst[2]
    );
    // The scores within 1e-5; KL sums 262,144 terms of them.
    assert!(
        worst[0] <= 1e-5 && worst[1] <= 1e-5 && worst[2] <= 1e-4,
        "{worst:?}"
    );
}
