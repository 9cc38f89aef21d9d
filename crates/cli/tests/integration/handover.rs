//! `aligntds handover`: one ordinary run folder per arm and the curve. The
//! `aligned` arm is analyze's answer, the `base` arm analyze's with
//! `--answered-by base`; every arm's folder reads like any run (summarize,
//! compare), its positions say who chose each token, and a rerun resumes.

use std::path::Path;

use crate::common::{aligntds, answers, one_model_run, stderr, stdout};

fn study(out: &Path, data: &Path, command: &str, extra: &[&str]) -> std::process::Output {
    one_model_run(command, ("plain", "template"), data, out, 14, extra)
}

#[test]
fn handover_arms_are_runs_and_the_pure_ones_are_analyzes_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("q.txt");
    std::fs::write(
        &data,
        "Why is the sky blue?\nName three rivers.\nHow do bees fly?\n",
    )
    .unwrap();
    let out = tmp.path().join("h");
    let policies = [
        "--policy", "base", "--policy", "first:3", "--policy", "shifted",
    ];
    let o = study(&out, &data, "handover", &policies);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(
        table.contains("first:3") && table.contains("shifted"),
        "{table}"
    );

    let analyzed = tmp.path().join("analyzed");
    assert!(study(&analyzed, &data, "analyze", &[]).status.success());
    let by_base = tmp.path().join("by-base");
    assert!(
        study(&by_base, &data, "analyze", &["--answered-by", "base"])
            .status
            .success()
    );
    let arm = |name: &str| out.join("arms").join(name);
    assert_eq!(answers(&arm("aligned")), answers(&analyzed));
    assert_eq!(answers(&arm("base")), answers(&by_base));

    // The curve: the aligned arm agrees with itself; first:3 takes 3 aligned
    // tokens per answer and agrees with the aligned answer on them at least.
    let file = aligntds_formats::handover::HandoverFile::read(&out).unwrap();
    let names: Vec<&str> = file.arms.iter().map(|a| a.policy.as_str()).collect();
    assert_eq!(names, ["aligned", "base", "first:3", "shifted"]);
    let (aligned, base, first) = (&file.arms[0], &file.arms[1], &file.arms[2]);
    assert_eq!(
        (aligned.aligned_share.value, aligned.agreement.value),
        (1.0, 1.0)
    );
    assert_eq!(base.aligned_share.value, 0.0);
    for e in &first.per_example {
        assert!(
            (e.aligned_share - 3.0 / e.length as f64).abs() < 1e-12,
            "{e:?}"
        );
        assert!(e.first_difference.is_none_or(|d| d >= 3), "{e:?}");
        assert!(e.handovers <= 1);
    }
    // Its positions say who chose each token; analyze's have no such column.
    let mut chosen = Vec::new();
    aligntds_formats::positions::for_each_example(&arm("first-3"), |_, rows| {
        chosen.extend(rows.into_iter().map(|p| p.chosen_by.unwrap()));
        Ok(())
    })
    .unwrap();
    assert_eq!(&chosen[..4], ["aligned", "aligned", "aligned", "base"]);
    let mut none = true;
    aligntds_formats::positions::for_each_example(&analyzed, |_, rows| {
        none &= rows.iter().all(|p| p.chosen_by.is_none());
        Ok(())
    })
    .unwrap();
    assert!(none);
    let m = crate::common::manifest(&arm("first-3"));
    assert_eq!(m["settings"]["handover"], "first:3");
    let toml = std::fs::read_to_string(arm("first-3").join("study.toml")).unwrap();
    assert!(toml.contains("`first:3` arm of a handover study"), "{toml}");

    report_draws_the_curve_and_who_chose(&out, &file);

    // Arms are runs: summarize and compare read them.
    let o = aligntds(&["summarize", arm("shifted").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = aligntds(&[
        "compare",
        arm("aligned").to_str().unwrap(),
        arm("shifted").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    // A rerun resumes every arm to the same curve.
    let before = std::fs::read(out.join("handover.json")).unwrap();
    assert!(study(&out, &data, "handover", &policies).status.success());
    assert_eq!(std::fs::read(out.join("handover.json")).unwrap(), before);

    // A policy that is not one is refused, naming the flag.
    let o = study(
        &tmp.path().join("bad"),
        &data,
        "handover",
        &["--policy", "nudge:0.4"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--policy"), "{}", stderr(&o));
}

/// The classes of an example page's answer tokens, in order.
fn span_classes(page: &str) -> Vec<String> {
    let (_, answer) = page.split_once("aria-label=\"answer tokens\">").unwrap();
    let answer = answer.split_once("</div>").unwrap().0;
    answer
        .split("<span class=\"t ")
        .skip(1)
        .map(|s| s.split_once('"').unwrap().0.to_string())
        .collect()
}

/// `aligntds report` of a handover folder: the curve as a table and two
/// charts with one point per arm, every arm's pages, and on them the tokens
/// the base chose marked and coloured by the aligned rank.
fn report_draws_the_curve_and_who_chose(
    out: &Path,
    file: &aligntds_formats::handover::HandoverFile,
) {
    use aligntds_formats::summary::{Category, Thresholds};
    let site = out.parent().unwrap().join("site");
    let o = aligntds(&[
        "report",
        out.to_str().unwrap(),
        "--out",
        site.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    let name = out.file_name().unwrap().to_str().unwrap();
    assert!(
        index.contains(&format!("<h2>Handover {name}</h2>")),
        "{index}"
    );
    for arm in &file.arms {
        let row = format!(
            "<tr><th>{}</th><td>{}</td><td>{:.1} [",
            arm.policy,
            arm.examples,
            arm.aligned_share.value * 100.0
        );
        assert!(index.contains(&row), "{row} not in the index");
        // Every arm is a run of the report, named after the folder and policy.
        assert!(index.contains(&format!("<h2>{name} · {}</h2>", arm.policy)));
        assert!(index.contains(&format!(
            "decoded by handover between the aligned and base sides (policy <code>{}</code>)",
            arm.policy
        )));
    }
    for stem in ["handover-agreement", "handover-logprob"] {
        let svg =
            std::fs::read_to_string(site.join("figures").join(format!("{stem}.svg"))).unwrap();
        assert_eq!(svg.matches("<circle ").count(), file.arms.len(), "{svg}");
        for arm in &file.arms {
            assert!(
                svg.contains(&format!(
                    "<title>{}: aligned tokens (%) {:.3}",
                    arm.policy,
                    arm.aligned_share.value * 100.0
                )),
                "{svg}"
            );
        }
    }
    let md = std::fs::read_to_string(site.join("report.md")).unwrap();
    assert!(
        md.contains("figures/handover-agreement.svg") && md.contains("| first:3 |"),
        "{md}"
    );

    // The first:3 arm (the report's third run): the first three tokens the
    // aligned side chose keep the base-rank colour; the rest, chosen by the
    // base, are marked and coloured by the aligned rank.
    let arm_dir = out.join("arms").join("first-3");
    let mut examples = Vec::new();
    aligntds_formats::positions::for_each_example(&arm_dir, |_, rows| {
        examples.push(rows);
        Ok(())
    })
    .unwrap();
    let mut base_chosen = 0;
    for (i, rows) in examples.iter().enumerate() {
        let page = std::fs::read_to_string(site.join(format!("r2/e{:05}.html", i + 1))).unwrap();
        assert!(page.contains("Handover answer <small>(policy <code>first:3</code>)"));
        assert!(page.contains("dotted line above</span> the base model chose"));
        let classes = span_classes(&page);
        assert_eq!(classes.len(), rows.len());
        for (class, p) in classes.iter().zip(rows) {
            let by_base = p.chosen_by.as_deref() == Some("base");
            let category = if by_base {
                Category::of(p.aligned_rank, Thresholds::default())
            } else {
                p.category
            };
            let letter = &category.as_str()[..1];
            assert!(
                class.starts_with(letter),
                "{class} at {} ({p:?})",
                p.position
            );
            assert_eq!(class.contains("by-base"), by_base, "{class}");
            base_chosen += usize::from(by_base);
        }
    }
    assert!(base_chosen > 0);
    // A page of an analyze run says nothing of handover.
    let page = std::fs::read_to_string(site.join("r0/e00001.html")).unwrap();
    assert!(page.contains("policy <code>aligned</code>") && !page.contains("by-base\" data-t"));
}

/// Shards of a handover study merge arm by arm, and the curve is drawn anew
/// over all queries: the same handover.json as the unsharded study's.
#[test]
fn sharded_handover_merges_to_the_whole_curve() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("q.txt");
    std::fs::write(
        &data,
        "Why is the sky blue?\nName three rivers.\nHow do bees fly?\nWhat is rust?\nSay hi.\n",
    )
    .unwrap();
    let policies = ["--policy", "base", "--policy", "first:2"];
    let whole = tmp.path().join("whole");
    let o = study(&whole, &data, "handover", &policies);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut shards = Vec::new();
    for shard in ["0/2", "1/2"] {
        let dir = tmp.path().join(format!("shard-{}", &shard[..1]));
        let mut args = policies.to_vec();
        args.extend(["--shard", shard]);
        let o = study(&dir, &data, "handover", &args);
        assert!(o.status.success(), "{}", stderr(&o));
        shards.push(dir.to_str().unwrap().to_string());
    }
    let shard_file = aligntds_formats::handover::HandoverFile::read(Path::new(&shards[0])).unwrap();
    assert_eq!(shard_file.arms[0].examples, 3);

    // A handover shard does not merge with an analyze shard.
    let analyzed = tmp.path().join("analyzed");
    let o = study(&analyzed, &data, "analyze", &["--shard", "1/2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = aligntds(&[
        "merge",
        &shards[0],
        analyzed.to_str().unwrap(),
        "--out",
        tmp.path().join("mixed").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not a finished `aligntds handover` shard"),
        "{}",
        stderr(&o)
    );

    let merged = tmp.path().join("merged");
    let o = aligntds(&[
        "merge",
        &shards[0],
        &shards[1],
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("first:2"), "{}", stdout(&o));
    assert_eq!(
        std::fs::read_to_string(merged.join("handover.json")).unwrap(),
        std::fs::read_to_string(whole.join("handover.json")).unwrap()
    );
    for arm in ["aligned", "base", "first-2"] {
        let rows = |dir: &Path| {
            let mut all = Vec::new();
            aligntds_formats::positions::for_each_example(
                &dir.join("arms").join(arm),
                |id, rows| {
                    all.push((id.to_string(), rows));
                    Ok(())
                },
            )
            .unwrap();
            all
        };
        assert_eq!(rows(&merged), rows(&whole), "arm {arm}");
    }
}

/// In the quantized precision (`--dtype q` on the 4-bit llama3 fixture) the
/// pure arms are analyze's answers too: the aligned side's, and the base
/// side's with `--answered-by base`.
#[test]
fn quantized_pure_arms_are_analyzes_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("q.txt");
    std::fs::write(&data, "Why is the sky blue?\nName three rivers.\nSay hi.\n").unwrap();
    let model = crate::common::fixture("llama3.q4_0.gguf");
    let run = |command: &str, out: &Path, extra: &[&str]| {
        let mut args = vec![
            command,
            "--aligned",
            &model,
            "--base",
            &model,
            "--aligned-context",
            "plain",
            "--base-context",
            "template",
            "--dtype",
            "q",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
            "--max-new-tokens",
            "12",
            "--response",
            "generate",
        ];
        args.extend_from_slice(extra);
        let o = aligntds(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    let out = tmp.path().join("h");
    run("handover", &out, &["--policy", "base"]);
    let analyzed = tmp.path().join("analyzed");
    run("analyze", &analyzed, &[]);
    let by_base = tmp.path().join("by-base");
    run("analyze", &by_base, &["--answered-by", "base"]);
    assert_eq!(answers(&out.join("arms/aligned")), answers(&analyzed));
    assert_eq!(answers(&out.join("arms/base")), answers(&by_base));
    assert_ne!(
        answers(&analyzed),
        answers(&by_base),
        "the contexts differ, so do the answers"
    );
    let m = crate::common::manifest(&out.join("arms/base"));
    assert_eq!(
        (&m["aligned_weights"], &m["base_weights"]),
        (&"q".into(), &"q".into())
    );
}
