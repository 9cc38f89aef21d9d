//! `analyze` with sampled answers: one seed gives one study whatever the
//! batch size, on a rerun and after a resume; another seed another study;
//! the manifest and study.toml record the sampling (and a greedy run's
//! identity stays as it was), so `--study RUN/study.toml` reproduces a
//! sampled run and a folder refuses to resume under another seed.

use std::path::Path;

use crate::common::{aligntds, answers, pair_args, stderr, strs};

const SAMPLED: &[&str] = &["--temperature", "1.0", "--top-p", "0.95", "--seed", "3"];

fn analyze(data: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut all = vec!["--max-new-tokens", "12"];
    all.extend_from_slice(extra);
    aligntds(&strs(&pair_args(data, out, &all)))
}

fn run(data: &str, out: &Path, extra: &[&str]) -> Vec<u8> {
    let o = analyze(data, out, extra);
    assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
    std::fs::read(out.join("positions.parquet")).unwrap()
}

#[test]
fn one_seed_gives_one_study_in_any_batch_and_after_a_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let queries: String = (0..8).map(|i| format!("Question number {i}?\n")).collect();
    let data = tmp.path().join("q.txt");
    std::fs::write(&data, queries).unwrap();
    let data = data.to_str().unwrap();
    let reference = run(data, &tmp.path().join("full"), SAMPLED);
    for batch in ["1", "4", "32"] {
        let mut extra = SAMPLED.to_vec();
        extra.extend(["--batch", batch]);
        let got = run(data, &tmp.path().join(format!("batch{batch}")), &extra);
        assert!(
            got == reference,
            "--batch {batch} changed the sampled study"
        );
    }
    // Records analyzed again after some parts are lost: the same answers.
    let cut = tmp.path().join("cut");
    run(data, &cut, SAMPLED);
    for part in ["0000001.json", "0000004.json", "0000006.json"] {
        std::fs::remove_file(cut.join("parts").join(part)).unwrap();
    }
    std::fs::remove_file(cut.join("positions.parquet")).unwrap();
    assert!(run(data, &cut, SAMPLED) == reference, "resumed");

    // Another seed: other answers; greedy: others again.
    let full = answers(&tmp.path().join("full"));
    let mut other = SAMPLED.to_vec();
    other[5] = "4";
    run(data, &tmp.path().join("seed4"), &other);
    let seed4 = answers(&tmp.path().join("seed4"));
    let differ = full.iter().zip(&seed4).filter(|(a, b)| a != b).count();
    assert!(
        differ >= 7,
        "{differ} of 8 answers differ under another seed"
    );
    run(data, &tmp.path().join("greedy"), &[]);
    assert_ne!(answers(&tmp.path().join("greedy")), full);

    // The folder refuses to resume under another seed.
    let refused = analyze(data, &tmp.path().join("full"), &other);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("other settings"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn the_sampling_is_recorded_and_study_toml_reproduces_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("q.txt");
    std::fs::write(&data, "Name a colour.\nName a fruit.\nName a city.\n").unwrap();
    let data = data.to_str().unwrap();
    let sampled = tmp.path().join("sampled");
    let reference = run(
        data,
        &sampled,
        &[
            "--temperature",
            "0.8",
            "--top-k-sampling",
            "20",
            "--seed",
            "11",
        ],
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sampled.join("summary.json")).unwrap())
            .unwrap();
    let recorded = &summary["manifest"]["settings"]["sampling"];
    assert_eq!(recorded["seed"], 11);
    assert_eq!(recorded["top_k"], 20);
    assert!((recorded["temperature"].as_f64().unwrap() - 0.8).abs() < 1e-6);
    let study = std::fs::read_to_string(sampled.join("study.toml")).unwrap();
    for key in ["temperature = 0.8", "top_k_sampling = 20", "seed = 11"] {
        assert!(study.contains(key), "{key} in {study}");
    }
    let again = tmp.path().join("again");
    let o = aligntds(&[
        "analyze",
        "--study",
        sampled.join("study.toml").to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read(again.join("positions.parquet")).unwrap() == reference);
    // A greedy run records no sampling at all (its identity is as before).
    let greedy = tmp.path().join("greedy");
    run(data, &greedy, &[]);
    let text = std::fs::read_to_string(greedy.join("summary.json")).unwrap();
    assert!(!text.contains("\"sampling\""));
    // Values that cannot sample are refused naming the flag.
    let o = analyze(data, &tmp.path().join("bad"), &["--top-p", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--top-p"), "{}", stderr(&o));
}

#[test]
fn quantized_sampled_answers_do_not_depend_on_the_batch() {
    // The same in `--dtype q` (the weights kept in their 4-bit blocks), whose
    // batched kernels differ from one sequence's.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("q.txt");
    let queries: String = (0..6).map(|i| format!("Question number {i}?\n")).collect();
    std::fs::write(&data, queries).unwrap();
    let model = crate::common::fixture("llama3.q4_0.gguf");
    let run = |name: &str, extra: &[&str]| {
        let out = tmp.path().join(name);
        let mut args = vec![
            "analyze",
            "--aligned",
            &model,
            "--base",
            &model,
            "--aligned-context",
            "plain",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
            "--dtype",
            "q",
            "--max-new-tokens",
            "12",
        ];
        args.extend_from_slice(extra);
        if !extra.contains(&"--seed") {
            args.extend_from_slice(SAMPLED);
        }
        let o = aligntds(&args);
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
        (
            std::fs::read(out.join("positions.parquet")).unwrap(),
            answers(&out),
        )
    };
    let (reference, drawn) = run("default", &[]);
    for batch in ["1", "4", "32"] {
        let (got, _) = run(&format!("batch{batch}"), &["--batch", batch]);
        assert!(
            got == reference,
            "--batch {batch} changed the quantized sampled study"
        );
    }
    let (_, other) = run("other-seed", &["--temperature", "1.0", "--seed", "9"]);
    assert!(drawn.iter().zip(&other).filter(|(a, b)| a != b).count() >= 5);
}
