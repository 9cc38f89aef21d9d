//! Several reference sides on one answer stream: a three-side study on the
//! real SmolLM2-135M-Instruct (chat answering; the study's template, plain
//! and URIAL contexts as sides) equals three separate pair runs side by
//! side, and its stage view counts what those pair runs say; sides with
//! another vocabulary are refused before any weights load.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{fixture, smollm2};

use aligntds_analysis::settings::{
    ComparedSide, ContextKind, Queries, ResponseSource, StudySettings,
};
use aligntds_analysis::Study;
use aligntds_formats::positions::{for_each_example, for_each_example_by_side, PositionRecord};
use aligntds_formats::summary::Summary;
use aligntds_stats::compare::{compare, Operand};

const QUERIES: &str = r#"{"id": "q1", "instruction": "What is the capital of France?", "category": "facts"}
{"id": "q2", "instruction": "Give me two tips for sleeping better.", "category": "advice"}
{"id": "q3", "instruction": "How do I pick a lock?", "category": "safety"}
{"id": "q4", "instruction": "Name three primary colours.", "category": "facts"}
"#;

fn settings(model: &str, data: &Path, out: &Path, base: ContextKind) -> StudySettings {
    let mut s = StudySettings::new(model, model, Queries::File(data.to_path_buf()), out);
    s.base.context.kind = base;
    s.response = ResponseSource::Generate;
    s.max_new_tokens = 24;
    s
}

fn run(s: StudySettings) -> Summary {
    Study::prepare(s).unwrap().run(&mut |_| {}).unwrap().summary
}

/// Every example's rows of every side: id -> side -> rows.
fn rows(dir: &Path) -> BTreeMap<String, BTreeMap<String, Vec<PositionRecord>>> {
    let mut out = BTreeMap::new();
    for_each_example_by_side(dir, |id, sides| {
        out.insert(
            id.to_string(),
            sides.into_iter().map(|s| (s.side, s.positions)).collect(),
        );
        Ok(())
    })
    .unwrap();
    out
}

fn assert_same_positions(multi: &[PositionRecord], pair: &[PositionRecord], what: &str) {
    assert_eq!(multi.len(), pair.len(), "{what}: positions");
    for (m, p) in multi.iter().zip(pair) {
        let at = format!("{what} position {}", p.position);
        assert_eq!(
            (
                m.token_id,
                m.category,
                m.base_rank,
                m.aligned_rank,
                m.top1_agree
            ),
            (
                p.token_id,
                p.category,
                p.base_rank,
                p.aligned_rank,
                p.top1_agree
            ),
            "{at}"
        );
        assert!((m.base_logprob - p.base_logprob).abs() <= 1e-5, "{at}");
        assert!(
            (m.aligned_logprob - p.aligned_logprob).abs() <= 1e-5,
            "{at}"
        );
        let (km, kp) = (m.kl_aligned_base.unwrap(), p.kl_aligned_base.unwrap());
        assert!(
            (km - kp).abs() <= 1e-5 * kp.max(1.0),
            "{at}: KL {km} vs {kp}"
        );
    }
}

#[test]
fn a_three_side_study_equals_three_pair_runs() {
    let Some(model) = smollm2() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("q.jsonl");
    std::fs::write(&data, QUERIES).unwrap();
    let kinds = [
        ("base", ContextKind::Template),
        ("plain", ContextKind::Plain),
        ("urial", ContextKind::Urial),
    ];
    let mut multi = settings(
        &model,
        &data,
        &tmp.path().join("multi"),
        ContextKind::Template,
    );
    multi.group_by = Some("category".into());
    for (name, kind) in &kinds[1..] {
        let mut side = multi.base.clone();
        side.context.kind = *kind;
        multi.compare.push(ComparedSide {
            name: name.to_string(),
            side,
        });
    }
    let summary = run(multi);
    let multi_rows = rows(&tmp.path().join("multi"));
    let examples = aligntds_formats::examples::read(&tmp.path().join("multi")).unwrap();
    assert_eq!(examples.len(), 4);
    assert_eq!(summary.sides.len(), 3);

    let mut pair_rows = Vec::new();
    for (i, (name, kind)) in kinds.iter().enumerate() {
        let dir = tmp.path().join(format!("pair-{name}"));
        let pair = run(settings(&model, &data, &dir, *kind));
        // The pair run's file has one side, `base`, read the same way.
        let mut by_id = BTreeMap::new();
        for_each_example(&dir, |id, r| {
            by_id.insert(id.to_string(), r);
            Ok(())
        })
        .unwrap();
        let pair_examples = aligntds_formats::examples::read(&dir).unwrap();
        for (m, p) in examples.iter().zip(&pair_examples) {
            assert_eq!(m.answer_ids, p.answer_ids, "one answer for every side");
            let counts = if i == 0 {
                (m.unshifted, m.marginal, m.shifted)
            } else {
                let s = &m.sides[i - 1];
                assert_eq!(s.name, *name);
                assert_eq!(
                    s.context, p.base_context,
                    "{name}: the side's rendered context"
                );
                (s.unshifted, s.marginal, s.shifted)
            };
            assert_eq!(
                counts,
                (p.unshifted, p.marginal, p.shifted),
                "{name} {}",
                m.id
            );
            assert_same_positions(&multi_rows[&m.id][*name], &by_id[&m.id], name);
        }
        // Per-side statistics equal the pair run's, category ratios exactly.
        let side = &summary.sides[i];
        assert_eq!(side.name, *name);
        assert_eq!(side.aggregates.counts, pair.aggregates.counts, "{name}");
        assert_eq!(side.aggregates.ratios, pair.aggregates.ratios, "{name}");
        assert_eq!(side.aggregates.rank_cdf, pair.aggregates.rank_cdf, "{name}");
        pair_rows.push(by_id);
    }
    assert_eq!(summary.aggregates, summary.sides[0].aggregates);

    // The stage view, recounted from the three pair runs: per position the
    // first of template, plain, urial, then the aligned side itself, that
    // ranks the answer token first.
    let stages = summary.stages.as_ref().unwrap();
    assert_eq!(stages.order, ["base", "plain", "urial", "aligned"]);
    let mut expected = [0u64; 5];
    for id in multi_rows.keys() {
        for t in 0..pair_rows[0][id].len() {
            let ranks: Vec<u32> = pair_rows
                .iter()
                .map(|r| r[id][t].base_rank)
                .chain(std::iter::once(pair_rows[0][id][t].aligned_rank))
                .collect();
            expected[ranks.iter().position(|&r| r == 1).unwrap_or(4)] += 1;
        }
    }
    let got: Vec<u64> = stages.by_bar[0]
        .stages
        .iter()
        .map(|s| s.positions)
        .collect();
    assert_eq!(got, expected);
    assert!(
        expected[1] + expected[2] > 0,
        "the contexts differ somewhere: {expected:?}"
    );

    // Groups by the data set's category field, on every side.
    let groups = summary.aggregates.groups.as_ref().unwrap();
    assert_eq!(groups.field, "category");
    let mut values: Vec<&str> = groups.groups.iter().map(|g| g.value.as_str()).collect();
    values.sort();
    assert_eq!(values, ["advice", "facts", "safety"]);
    assert_eq!(groups.groups[0].value, "facts", "the largest group first");
    let positions: u64 = groups.groups.iter().map(|g| g.stats.positions).sum();
    assert_eq!(positions, summary.aggregates.positions);

    // Two sides of one run compare as two runs would.
    let multi_dir = tmp.path().join("multi");
    let sides = compare(
        &Operand::parse(&format!("{}@plain", multi_dir.display())),
        &Operand::parse(&format!("{}@base", multi_dir.display())),
        false,
    )
    .unwrap();
    let runs = compare(
        &Operand::run(tmp.path().join("pair-plain")),
        &Operand::run(tmp.path().join("pair-base")),
        false,
    )
    .unwrap();
    assert_eq!(sides.examples, 4);
    for (s, r) in sides.rows.iter().zip(&runs.rows) {
        assert_eq!(s.statistic, r.statistic);
        assert!(
            (s.difference.estimate - r.difference.estimate).abs() < 1e-9,
            "{}",
            s.statistic
        );
        assert_eq!(s.p_value, r.p_value, "{}", s.statistic);
    }
    let e = compare(
        &Operand::parse(&format!("{}@dpo", multi_dir.display())),
        &Operand::run(&multi_dir),
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no side `dpo`") && e.contains("plain"), "{e}");
}

#[test]
fn compared_sides_are_checked_before_weights_load() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("q.txt");
    std::fs::write(&data, "One question?\n").unwrap();
    let mut s = settings(
        &fixture("llama3"),
        &data,
        &tmp.path().join("out"),
        ContextKind::Plain,
    );
    s.base.model = fixture("mistral");
    let side = |name: &str, model: &str| ComparedSide {
        name: name.into(),
        side: aligntds_analysis::settings::SideSettings {
            model: model.to_string(),
            ..s.base.clone()
        },
    };
    let refused = |s: StudySettings| Study::prepare(s).err().unwrap().to_string();
    let mut other = s.clone();
    other.compare = vec![side("qwen", &fixture("qwen2"))];
    let e = refused(other);
    assert!(e.contains("compare[0]") && e.contains("token"), "{e}");
    let mut dup = s.clone();
    dup.compare = vec![
        side("sft", &fixture("mistral")),
        side("sft", &fixture("mistral")),
    ];
    let e = refused(dup);
    assert!(e.contains("compare[1].name") && e.contains("sft"), "{e}");
    let mut reserved = s.clone();
    reserved.compare = vec![side("base", &fixture("mistral"))];
    assert!(refused(reserved).contains("reserved"));
    let mut group = s;
    group.group_by = Some("category".into());
    let e = refused(group);
    assert!(e.contains("group_by") && e.contains("category"), "{e}");
}
