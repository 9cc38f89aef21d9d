//! `analyze --answered-by SIDE`: the named side answers and every side
//! scores its answer. One model under two contexts answered by the base
//! side is the pair run with the contexts swapped, column for column
//! (symmetric metrics equal, directed ones exchanged); a compared side
//! answering has its positions categorised by the aligned side's rank.

use std::path::Path;

use aligntds_formats::positions::{PositionRecord, SidePositions};
use aligntds_formats::summary::{Category, Thresholds};

use crate::common::{aligntds, fixture, manifest, one_model_run, stderr, stdout};

/// The llama3 fixture on both sides: aligned in `aligned_ctx`, base in
/// `base_ctx`.
fn run(data: &Path, out: &Path, aligned_ctx: &str, base_ctx: &str, extra: &[&str]) -> String {
    let o = one_model_run("analyze", (aligned_ctx, base_ctx), data, out, 12, extra);
    assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
    // The summary, which --quiet leaves on stdout.
    stdout(&o)
}

fn sides(dir: &Path) -> Vec<(String, Vec<SidePositions>)> {
    let mut out = Vec::new();
    aligntds_formats::positions::for_each_example_by_side(dir, |id, s| {
        out.push((id.to_string(), s));
        Ok(())
    })
    .unwrap();
    out
}

fn base_rows(dir: &Path) -> Vec<PositionRecord> {
    sides(dir)
        .into_iter()
        .flat_map(|(_, s)| s.into_iter().next().unwrap().positions)
        .collect()
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
        "{what}: {a} vs {b}"
    );
}

fn opt(a: Option<f64>, b: Option<f64>, what: &str) {
    match (a, b) {
        (Some(a), Some(b)) => close(a, b, what),
        _ => assert_eq!(a.is_some(), b.is_some(), "{what}"),
    }
}

/// `x` (answered by the base side) against `y` (the same sides' contexts
/// swapped, answered by the aligned side): the aligned columns of one are
/// the base columns of the other.
fn assert_swapped(x: &[PositionRecord], y: &[PositionRecord]) {
    assert_eq!(x.len(), y.len());
    assert!(!x.is_empty());
    for (p, q) in x.iter().zip(y) {
        let at = format!("position {} token {}", p.position, p.token_id);
        assert_eq!(
            (p.position, p.token_id, &p.text),
            (q.position, q.token_id, &q.text)
        );
        assert_eq!(
            (p.aligned_rank, p.base_rank),
            (q.base_rank, q.aligned_rank),
            "{at}"
        );
        assert_eq!(p.category, q.category, "{at}");
        assert_eq!(p.top1_agree, q.top1_agree, "{at}");
        close(p.aligned_logprob as f64, q.base_logprob as f64, &at);
        close(p.base_logprob as f64, q.aligned_logprob as f64, &at);
        close(p.log_ratio, -q.log_ratio, &at);
        opt(p.kl_aligned_base, q.kl_base_aligned, &at);
        opt(p.kl_base_aligned, q.kl_aligned_base, &at);
        opt(p.js, q.js, &at);
        opt(p.aligned_entropy, q.base_entropy, &at);
        opt(p.base_entropy, q.aligned_entropy, &at);
        let ids = |t: &[aligntds_formats::positions::TopToken]| -> Vec<u32> {
            t.iter().map(|t| t.id).collect()
        };
        assert_eq!(ids(&p.aligned_top), ids(&q.base_top), "{at}");
        assert_eq!(ids(&p.base_top), ids(&q.aligned_top), "{at}");
    }
}

#[test]
fn answered_by_base_is_the_pair_with_its_contexts_swapped() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("q.txt");
    let queries: String = (0..5).map(|i| format!("Describe thing {i}.\n")).collect();
    std::fs::write(&data, queries).unwrap();
    for (name, sampling) in [
        ("greedy", &[][..]),
        ("sampled", &["--temperature", "0.9", "--seed", "2"][..]),
    ] {
        let by_base = tmp.path().join(format!("{name}-by-base"));
        let mut extra = vec!["--answered-by", "base"];
        extra.extend_from_slice(sampling);
        let text = run(&data, &by_base, "plain", "template", &extra);
        assert!(text.contains("answers by the base side"), "{text}");
        let swapped = tmp.path().join(format!("{name}-swapped"));
        run(&data, &swapped, "template", "plain", sampling);

        let x = aligntds_formats::examples::read(&by_base).unwrap();
        let y = aligntds_formats::examples::read(&swapped).unwrap();
        for (a, b) in x.iter().zip(&y) {
            assert_eq!(a.answer_ids, b.answer_ids, "{name} {}", a.id);
            assert_eq!(
                (a.aligned_context.as_str(), a.base_context.as_str()),
                (b.base_context.as_str(), b.aligned_context.as_str())
            );
            assert_eq!(
                (a.unshifted, a.marginal, a.shifted),
                (b.unshifted, b.marginal, b.shifted)
            );
        }
        let rows = base_rows(&by_base);
        assert_swapped(&rows, &base_rows(&swapped));
        // The category is the aligned side's rank of the base side's tokens.
        let t = Thresholds::default();
        assert!(rows
            .iter()
            .all(|p| p.category == Category::of(p.aligned_rank, t)));
        assert!(
            rows.iter().any(|p| p.category != Category::Unshifted),
            "{name}: a case that tells"
        );
        assert_eq!(manifest(&by_base)["settings"]["answered_by"], "base");
        assert!(manifest(&swapped)["settings"].get("answered_by").is_none());
        let study = std::fs::read_to_string(by_base.join("study.toml")).unwrap();
        assert!(study.contains("answered_by = \"base\""), "{study}");
    }
}

#[test]
fn a_compared_side_answers_and_an_unknown_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("q.txt");
    std::fs::write(&data, "Why is the sky blue?\nName three rivers.\n").unwrap();
    let model = fixture("llama3");
    let compared = format!("qa={model}");
    let out = tmp.path().join("by-qa");
    run(
        &data,
        &out,
        "plain",
        "template",
        &[
            "--compare",
            &compared,
            "--compare-context",
            "qa=custom",
            "--compare-template",
            "qa=Q: {query}\nA:",
            "--answered-by",
            "qa",
        ],
    );
    let t = Thresholds::default();
    let mut answer_rows = 0;
    for (id, sides) in sides(&out) {
        let (base, qa) = (&sides[0], &sides[1]);
        assert_eq!((base.side.as_str(), qa.side.as_str()), ("base", "qa"));
        // The answering side ranks its own greedy tokens first; its
        // category is the aligned side's rank; the base side's its own.
        for p in &qa.positions {
            assert_eq!(p.base_rank, 1, "{id} position {}", p.position);
            assert_eq!(p.category, Category::of(p.aligned_rank, t));
        }
        for p in &base.positions {
            assert_eq!(p.category, Category::of(p.base_rank, t));
        }
        answer_rows += qa.positions.len();
    }
    assert!(answer_rows > 0);

    let o = aligntds(&[
        "analyze",
        "--aligned",
        &model,
        "--base",
        &model,
        "--query",
        "Hi?",
        "--out",
        tmp.path().join("bad").to_str().unwrap(),
        "--answered-by",
        "sft",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("--answered-by") && err.contains("aligned, base"),
        "{err}"
    );
}
