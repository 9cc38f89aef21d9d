//! The study as a library, without the binary: a full fixture analysis, a
//! resume after losing work, shard merges and the refusals that keep run
//! folders from mixing results.

use std::path::{Path, PathBuf};

use aligntds_analysis::settings::{ContextKind, Queries, Shard, StudySettings};
use aligntds_analysis::study::folder::RunFolder;
use aligntds_analysis::{merge, Study, StudyError};
use aligntds_formats::summary::Summary;

use crate::common::fixture;

fn data(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The tiny llama3 (aligned, plain context) / mistral (base) pair.
fn settings(queries: &Path, out: &Path) -> StudySettings {
    let mut s = StudySettings::new(
        &fixture("llama3"),
        &fixture("mistral"),
        Queries::File(queries.to_path_buf()),
        out,
    );
    s.aligned.context.kind = ContextKind::Plain;
    s.max_new_tokens = 10;
    s
}

fn run(s: StudySettings) -> Summary {
    let mut events = Vec::new();
    let outcome = Study::prepare(s)
        .unwrap()
        .run(&mut |p| events.push(format!("{p:?}")))
        .unwrap();
    assert!(events.first().unwrap().starts_with("Started"), "{events:?}");
    assert!(events.last().unwrap().starts_with("Writing"), "{events:?}");
    outcome.summary
}

fn six_queries(dir: &Path) -> PathBuf {
    let text: String = (0..6).map(|i| format!("Question number {i}?\n")).collect();
    data(dir, "q.txt", &text)
}

#[test]
fn a_study_runs_resumes_and_merges_to_identical_files() {
    let tmp = tempfile::tempdir().unwrap();
    let queries = six_queries(tmp.path());
    let full = tmp.path().join("full");
    let summary = run(settings(&queries, &full));
    assert_eq!(summary.aggregates.examples, 6);
    assert_eq!(summary.aggregates.positions, 60);
    assert_eq!(Summary::read(&full).unwrap(), summary);
    let reference = std::fs::read(full.join("positions.parquet")).unwrap();

    // Work lost (parts removed, outputs gone): the same settings resume to the same files.
    for part in ["0000001.json", "0000004.json"] {
        std::fs::remove_file(full.join("parts").join(part)).unwrap();
    }
    let mut resumed = 0;
    Study::prepare(settings(&queries, &full))
        .unwrap()
        .run(&mut |p| {
            if let aligntds_analysis::Progress::Started { resumed: r, .. } = p {
                resumed = r;
            }
        })
        .unwrap();
    assert_eq!(resumed, 4);
    assert_eq!(
        std::fs::read(full.join("positions.parquet")).unwrap(),
        reference
    );

    // Shards 0/2 and 1/2 merged equal the whole run.
    let shard = |i: usize, n: usize, name: &str| {
        let mut s = settings(&queries, &tmp.path().join(name));
        s.shard = Some(Shard { index: i, count: n });
        run(s);
        tmp.path().join(name)
    };
    let (s0, s1) = (shard(0, 2, "s0"), shard(1, 2, "s1"));
    let merged = tmp.path().join("merged");
    let m = merge(&[s0.clone(), s1.clone()], &merged, 200).unwrap();
    assert_eq!(
        std::fs::read(merged.join("positions.parquet")).unwrap(),
        reference
    );
    assert_eq!(m.aggregates, summary.aggregates);

    // Incomplete or inconsistent sets are refused.
    let refused = |inputs: &[PathBuf], out: &Path, needle: &str| {
        let e = merge(inputs, out, 200).expect_err("refused").to_string();
        assert!(e.contains(needle), "{needle}: {e}");
    };
    let out = tmp.path().join("m2");
    refused(std::slice::from_ref(&s0), &out, "missing 1/2");
    refused(std::slice::from_ref(&full), &out, "not a shard");
    refused(&[s0.clone(), s0.clone()], &out, "both shard 0/2");
    refused(&[s0.clone(), s1.clone()], &s1, "one of the inputs");
    let t0 = shard(0, 3, "t0");
    refused(&[s0.clone(), t0], &out, "shards of 2");
    // A shard with work missing has not finished.
    std::fs::remove_file(s1.join("parts/0000003.json")).unwrap();
    refused(&[s0.clone(), s1.clone()], &out, "has not finished");
    // A shard of other settings.
    let mut other = settings(&queries, &tmp.path().join("o1"));
    other.top_k = 3;
    other.shard = Some(Shard { index: 1, count: 2 });
    run(other);
    refused(&[s0, tmp.path().join("o1")], &out, "different settings");
    assert!(!out.join("summary.json").exists());
}

/// The study's cancel token, set from another thread, stops the run: no
/// record starts after it and records in flight stop at their next decoding
/// step or scoring chunk. The folder holds the records that finished and
/// resumes to the uninterrupted run's files.
#[test]
fn a_cancelled_study_stops_and_resumes_to_the_same_files() {
    let tmp = tempfile::tempdir().unwrap();
    let queries = six_queries(tmp.path());
    let full = tmp.path().join("full");
    run(settings(&queries, &full));
    let reference = std::fs::read(full.join("positions.parquet")).unwrap();
    let out = tmp.path().join("cut");
    for batch in [1, 3] {
        let _ = std::fs::remove_dir_all(&out);
        let mut s = settings(&queries, &out);
        s.runtime.batch = Some(batch);
        let study = Study::prepare(s.clone()).unwrap();
        let cancel = study.canceller();
        let error = study
            .run(&mut |p| {
                if let aligntds_analysis::Progress::Example { done: 2, .. } = p {
                    let setter = cancel.clone();
                    std::thread::spawn(move || setter.cancel()).join().unwrap();
                }
            })
            .err()
            .expect("cancelled");
        let StudyError::Cancelled { done, total } = error else {
            panic!("batch {batch}: {error}");
        };
        // One at a time, none starts after the second. Several at a time,
        // records that finished before the cancel was seen are kept (on these
        // tiny models all of them may have): the count is not timed here.
        let expected = if batch == 1 { 2..=2 } else { 2..=6 };
        assert!(
            expected.contains(&done) && total == 6,
            "batch {batch}: {done}/{total}"
        );
        assert!(!out.join("summary.json").exists());
        drop(study);
        let mut resumed = 0;
        Study::prepare(s)
            .unwrap()
            .run(&mut |p| {
                if let aligntds_analysis::Progress::Started { resumed: r, .. } = p {
                    resumed = r;
                }
            })
            .unwrap();
        assert_eq!(resumed, done, "batch {batch}");
        assert_eq!(
            std::fs::read(out.join("positions.parquet")).unwrap(),
            reference,
            "batch {batch}"
        );
    }
}

#[test]
fn a_second_study_on_a_held_folder_is_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let queries = six_queries(tmp.path());
    let out = tmp.path().join("run");
    let held = RunFolder::lock(&out).unwrap();
    let mut s = settings(&queries, &out);
    s.aligned.model = "/no/such/model".into(); // refused before any load is tried
    let e = Study::prepare(s).err().expect("refused").to_string();
    assert!(
        e.contains("in use") && e.contains(&std::process::id().to_string()),
        "{e}"
    );
    drop(held);
}

#[test]
fn an_overwrite_that_dies_leaves_no_stale_results() {
    let tmp = tempfile::tempdir().unwrap();
    // The second record has no answer: with answers from the data set only, it stops the run.
    let queries = data(
        tmp.path(),
        "q.jsonl",
        "{\"prompt\": \"a\", \"output_ids\": [300, 301]}\n{\"prompt\": \"b\"}\n",
    );
    let out = tmp.path().join("run");
    let mut first = settings(&queries, &out);
    first.limit = Some(1);
    run(first);
    assert!(out.join("summary.json").exists());
    let mut second = settings(&queries, &out);
    second.response = aligntds_analysis::settings::ResponseSource::Dataset;
    second.overwrite = true;
    let e = Study::prepare(second)
        .unwrap()
        .run(&mut |_| {})
        .err()
        .expect("fails on record 1");
    assert!(e.to_string().contains("no answer"), "{e}");
    for name in ["summary.json", "positions.parquet", "examples.jsonl"] {
        assert!(!out.join(name).exists(), "stale {name} left behind");
    }
}

#[test]
fn records_over_the_context_are_skipped_and_counted_or_refused_when_strict() {
    let tmp = tempfile::tempdir().unwrap();
    let long: Vec<String> = (0..300).map(|i| (300 + i % 50).to_string()).collect();
    let queries = data(
        tmp.path(),
        "q.jsonl",
        &format!(
            "{{\"id\": \"ok\", \"prompt\": \"a\", \"output_ids\": [300, 301]}}\n\
             {{\"id\": \"long\", \"prompt\": \"b\", \"output_ids\": [{}]}}\n\
             {{\"id\": \"empty\", \"prompt\": \"c\", \"output_ids\": []}}\n\
             {{\"id\": \"ok2\", \"prompt\": \"d\", \"output_ids\": [302]}}\n",
            long.join(",")
        ),
    );
    let out = tmp.path().join("run");
    let summary = run(settings(&queries, &out));
    let a = &summary.aggregates;
    assert_eq!((a.examples, a.positions), (2, 3));
    assert_eq!(a.skipped.examples, 2);
    assert_eq!(a.skipped.by_reason["context_overflow"], 1);
    assert_eq!(a.skipped.by_reason["empty_answer"], 1);
    let lines = aligntds_formats::examples::read(&out).unwrap();
    let long = lines.iter().find(|l| l.id == "long").unwrap();
    assert_eq!(long.skipped.as_deref(), Some("context_overflow"));
    assert!(
        long.skip_detail.as_deref().unwrap().contains("256 tokens"),
        "{:?}",
        long.skip_detail
    );
    let mut strict = settings(&queries, &tmp.path().join("strict"));
    strict.strict = true;
    let e = Study::prepare(strict)
        .unwrap()
        .run(&mut |_| {})
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("record long") && e.to_string().contains("context"),
        "{e}"
    );
}

#[test]
fn degenerate_settings_are_refused_before_any_model_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let queries = six_queries(tmp.path());
    type Change = Box<dyn Fn(&mut StudySettings)>;
    let cases: Vec<(Change, &str, &str)> = vec![
        (Box::new(|s| s.top_k = 0), "top_k", "at least 1"),
        (Box::new(|s| s.top_k = 5000), "top_k", "1 to 1000"),
        (
            Box::new(|s| s.max_new_tokens = 0),
            "max_new_tokens",
            "at least 1",
        ),
        (Box::new(|s| s.limit = Some(0)), "limit", "at least 1"),
        (
            Box::new(|s| s.thresholds.marginal_max = 0),
            "thresholds",
            "unshifted_max <= marginal_max",
        ),
        (
            Box::new(|s| s.base.context.kind = ContextKind::Custom),
            "base.context.template",
            "{query}",
        ),
        (
            Box::new(|s| s.shard = Some(Shard { index: 7, count: 9 })),
            "shard",
            "none of the 6",
        ),
    ];
    for (change, field, needle) in cases {
        let mut s = settings(&queries, &tmp.path().join("never"));
        s.aligned.model = "/no/such/model".into();
        change(&mut s);
        let e = Study::prepare(s).err().expect("refused").to_string();
        assert!(
            e.contains(&format!("setting `{field}`")) && e.contains(needle),
            "{field}: {e}"
        );
    }
    assert!(!tmp.path().join("never").exists(), "nothing was created");
    // A top-k over the vocabulary is refused once the vocabulary is known.
    let mut s = settings(&queries, &tmp.path().join("big"));
    s.top_k = 900;
    let e = Study::prepare(s).err().expect("refused").to_string();
    assert!(e.contains("exceeds the vocabulary of 586 tokens"), "{e}");
}

/// A fake Hugging Face cache holding the llama3 fixture as `acme/tiny@main`.
fn fake_hub(root: &Path, commit: &str) {
    let repo = root.join("hub/models--acme--tiny");
    let snapshot = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    for entry in std::fs::read_dir(fixture("llama3")).unwrap().flatten() {
        std::fs::copy(entry.path(), snapshot.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_changed_hub_snapshot_refuses_to_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    fake_hub(&hf, "1111111111111111111111111111111111111111");
    // Process-wide, but this is the only test that reads the Hub cache.
    std::env::set_var("HF_HOME", &hf);
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let queries = six_queries(tmp.path());
    let out = tmp.path().join("run");
    let hub_settings = || {
        let mut s = settings(&queries, &out);
        s.aligned.model = "acme/tiny".into();
        s.limit = Some(2);
        s
    };
    let summary = run(hub_settings());
    let aligned = &summary.manifest.identity.aligned;
    assert_eq!(aligned.kind.as_deref(), Some("hub"));
    assert_eq!(
        aligned.commit.as_deref(),
        Some("1111111111111111111111111111111111111111")
    );
    // The run's study.toml pins the Hub id to that commit, and loads it.
    let study = aligntds_analysis::settings::study_file::load(&out.join("study.toml")).unwrap();
    assert_eq!(
        study.aligned.model,
        "acme/tiny@1111111111111111111111111111111111111111"
    );
    let mut again = study.settings();
    again.out = tmp.path().join("again");
    let pinned = run(again);
    assert_eq!(pinned.manifest.identity.aligned.commit, aligned.commit);
    // The same snapshot resumes.
    run(hub_settings());
    // The model re-pushed: refs/main now names another commit.
    fake_hub(&hf, "2222222222222222222222222222222222222222");
    let e = Study::prepare(hub_settings())
        .unwrap()
        .run(&mut |_| {})
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("other settings"), "{e}");
}

#[test]
fn version_1_runs_still_read() {
    let v1 = PathBuf::from(fixture("golden/v1-run"));
    let summary = Summary::read(&v1).unwrap();
    assert_eq!(summary.schema_version, 1);
    assert_eq!(summary.aggregates.positions, 12);
    assert_eq!(summary.aggregates.skipped.examples, 0);
    let lines = aligntds_formats::examples::read(&v1).unwrap();
    assert_eq!(lines.len(), 2);
    let mut rows = 0;
    aligntds_formats::positions::for_each_example(&v1, |_, r| {
        assert!(r
            .iter()
            .all(|p| p.full_vocabulary && p.kl_aligned_base.is_some()));
        rows += r.len();
        Ok(())
    })
    .unwrap();
    assert_eq!(rows, 12);
    let text = aligntds_stats::summary::render_text(&summary);
    assert!(text.starts_with("2 examples, 12 positions"), "{text}");
    // Its identity, read and written by today's types (field mapping, compared
    // sides, servers: all absent when unset), still hashes to the fingerprint
    // the version-1 code wrote, so runs made before resume.
    let identity = serde_json::to_value(&summary.manifest.identity).unwrap();
    assert!(identity.get("fields").is_none());
    assert_eq!(
        aligntds_analysis::study::folder::fingerprint(&identity),
        summary.manifest.fingerprint
    );
}

/// A copy of the tiny llama3 checkpoint whose weights file is garbage, so
/// anything that reads the weights fails.
fn weightless(dir: &Path) -> String {
    let copy = dir.join("llama3-no-weights");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(fixture("llama3")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "safetensors") {
            continue;
        }
        std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(copy.join("model.safetensors"), b"not weights").unwrap();
    copy.to_string_lossy().into_owned()
}

#[test]
fn templates_and_contexts_fail_on_the_first_record_before_any_weights_load() {
    let tmp = tempfile::tempdir().unwrap();
    let queries = six_queries(tmp.path());
    let model = weightless(tmp.path());
    let attempt = |configure: &dyn Fn(&mut StudySettings)| {
        let mut s = settings(&queries, &tmp.path().join("out"));
        s.aligned.model = model.clone();
        configure(&mut s);
        match Study::prepare(s) {
            Ok(_) => panic!("a weightless model cannot be prepared"),
            Err(e) => e.to_string(),
        }
    };
    // With nothing else wrong, the missing weights are what fails: the text side loaded.
    let err = attempt(&|_| {});
    assert!(err.contains("not a valid safetensors file"), "{err}");

    // A template that does not compile.
    let broken = data(
        tmp.path(),
        "broken.jinja",
        "{% for m in messages %}{{ m.content }}",
    );
    let err = attempt(&|s| {
        s.aligned.context.kind = ContextKind::Chat;
        s.aligned.chat_template = Some(broken.to_string_lossy().into_owned());
    });
    assert!(
        err.contains("broken.jinja") && !err.contains("not a valid safetensors"),
        "{err}"
    );

    // A template that compiles but refuses the first record when rendered.
    let refusing = data(
        tmp.path(),
        "refusing.jinja",
        "{% if messages[0].role == 'system' %}{{ raise_exception('this template has no system role') }}{% endif %}{{ messages[0].content }}",
    );
    let err = attempt(&|s| {
        s.aligned.context.kind = ContextKind::Chat;
        s.aligned.context.system = Some("Be brief.".into());
        s.aligned.chat_template = Some(refusing.to_string_lossy().into_owned());
    });
    assert!(
        err.contains("this template has no system role")
            && !err.contains("not a valid safetensors"),
        "{err}"
    );

    // The `input` context on records without an `input` field.
    let err = attempt(&|s| s.aligned.context.kind = ContextKind::Input);
    assert!(
        err.contains("`input`") && !err.contains("not a valid safetensors"),
        "{err}"
    );
}

/// The study's outputs do not depend on how many answers are generated
/// together: positions.parquet of a batched run is byte for byte that of a
/// one-at-a-time run (the tiny pair has no near-ties in these answers).
#[test]
fn batched_generation_gives_the_one_at_a_time_study() {
    let tmp = tempfile::tempdir().unwrap();
    let queries = six_queries(tmp.path());
    let with_batch = |batch: Option<usize>, name: &str| {
        let out = tmp.path().join(name);
        let mut s = settings(&queries, &out);
        s.runtime.batch = batch;
        run(s);
        let lines = aligntds_formats::examples::read(&out).unwrap();
        let answers: Vec<Vec<u32>> = lines.into_iter().map(|l| l.answer_ids).collect();
        (
            std::fs::read(out.join("positions.parquet")).unwrap(),
            answers,
        )
    };
    let (single, single_answers) = with_batch(Some(1), "single");
    for (batch, name) in [(Some(4), "four"), (None, "default")] {
        let (batched, answers) = with_batch(batch, name);
        assert_eq!(answers, single_answers, "{name}");
        assert!(batched == single, "{name}: positions.parquet differs");
    }
}
