//! Every finished run folder holds study.toml, and `analyze --study
//! RUN/study.toml --out OTHER` reproduces the run: the same positions, row for
//! row, and the same fingerprint, for a plain run, a multi-side run with a
//! URIAL prefix file and a chat-template file (both copied into the run
//! folder), and a run merged from shards. A data file that changed since is
//! refused unless --allow-changed-data.

use std::path::Path;

use crate::common::*;

fn fingerprint(dir: &Path) -> String {
    manifest(dir)["fingerprint"].as_str().unwrap().to_string()
}

fn succeed(args: &[&str]) {
    let out = aligntds(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
}

/// Runs `analyze --study RUN/study.toml --out OTHER` and checks OTHER equals
/// RUN: positions row for row, and the fingerprint (or, where a chat-template
/// file was copied into the run folder and so has another path, the identity
/// with template files compared by content).
fn reproduces(run: &Path, other: &Path) {
    let study = run.join("study.toml");
    assert!(study.is_file(), "no study.toml in {}", run.display());
    succeed(&[
        "analyze",
        "--study",
        study.to_str().unwrap(),
        "--out",
        other.to_str().unwrap(),
        "--quiet",
    ]);
    let (a, b) = (position_rows(run), position_rows(other));
    assert!(a.len() > 4, "the run scored answers");
    assert_eq!(a, b, "positions differ");
    if !run.join("study").join("chat.chat_template.jinja").exists() {
        assert_eq!(fingerprint(run), fingerprint(other));
        return;
    }
    let (mut x, mut y) = (manifest(run), manifest(other));
    for m in [&mut x, &mut y] {
        let template = &mut m["compare"][0]["chat_template"];
        assert!(template["sha256"].is_string(), "{template}");
        template["name"] = serde_json::Value::Null;
        for key in ["fingerprint", "timings", "data"] {
            m[key] = serde_json::Value::Null;
        }
    }
    assert_eq!(x, y);
}

fn data(dir: &Path) -> String {
    let path = dir.join("q.jsonl");
    std::fs::write(
        &path,
        "{\"id\": \"a\", \"prompt\": \"Hello?\", \"category\": \"x\"}\n\
         {\"id\": \"b\", \"prompt\": \"Why is the sky blue?\", \"category\": \"y\"}\n\
         {\"id\": \"c\", \"prompt\": \"Name three colours.\", \"category\": \"x\"}\n",
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn a_plain_run_is_reproduced_by_its_study_toml_and_a_changed_data_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let run = tmp.path().join("run");
    let extra = [
        "--max-new-tokens",
        "6",
        "--top-k",
        "4",
        "--limit",
        "2",
        "--group-by",
        "category",
    ];
    succeed(&strs(&pair_args(&data, &run, &extra)));
    let text = std::fs::read_to_string(run.join("study.toml")).unwrap();
    for line in [
        "top_k = 4",
        "limit = 2",
        "max_new_tokens = 6",
        "dtype = \"f32\"",
        "group_by = \"category\"",
        "data_sha256 = ",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    reproduces(&run, &tmp.path().join("again"));

    std::fs::write(
        &data,
        "{\"id\": \"a\", \"prompt\": \"Changed?\", \"category\": \"x\"}\n",
    )
    .unwrap();
    let study = run.join("study.toml");
    let refused = aligntds(&[
        "analyze",
        "--study",
        study.to_str().unwrap(),
        "--out",
        tmp.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(2));
    let message = stderr(&refused);
    assert!(
        message.contains("changed since the run") && message.contains("--allow-changed-data"),
        "{message}"
    );
    // A value of the file's that the data refuses is named as the file's key.
    let no_labels = tmp.path().join("no-labels.jsonl");
    std::fs::write(&no_labels, "{\"prompt\": \"Hi?\"}\n").unwrap();
    let refused = aligntds(&[
        "analyze",
        "--study",
        study.to_str().unwrap(),
        "--data",
        no_labels.to_str().unwrap(),
        "--out",
        tmp.path().join("y").to_str().unwrap(),
    ]);
    let message = stderr(&refused);
    assert!(
        message.contains("study.toml: `group_by`") && !message.contains("--group-by"),
        "{message}"
    );
    let out = tmp.path().join("changed");
    succeed(&[
        "analyze",
        "--study",
        study.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--allow-changed-data",
        "--quiet",
    ]);
    // Another --data given beside it is the user's choice: not checked.
    let other = tmp.path().join("other.jsonl");
    std::fs::write(&other, "{\"prompt\": \"Other?\", \"category\": \"z\"}\n").unwrap();
    let out = tmp.path().join("other");
    succeed(&[
        "analyze",
        "--study",
        study.to_str().unwrap(),
        "--data",
        other.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
}

#[test]
fn a_multi_side_run_with_prefix_and_template_files_is_reproduced() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let prefix = tmp.path().join("prefix.txt");
    std::fs::write(
        &prefix,
        "# Query:\nHi\n# Answer:\nHello! How can I help?\n\n",
    )
    .unwrap();
    let template = tmp.path().join("chat.jinja");
    std::fs::write(&template, "{% for m in messages %}<{{ m.role }}> {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<assistant> {% endif %}").unwrap();
    let run = tmp.path().join("run");
    let extra = [
        "--max-new-tokens",
        "5",
        "--base-context",
        "urial",
        "--base-prefix",
        prefix.to_str().unwrap(),
        "--compare",
        &format!("chat={}", fixture("mistral")),
        "--compare-context",
        "chat=chat",
        "--compare-chat-template",
        &format!("chat={}", template.display()),
        "--system",
        "Be brief.",
    ];
    succeed(&strs(&pair_args(&data, &run, &extra)));
    let text = std::fs::read_to_string(run.join("study.toml")).unwrap();
    assert!(
        text.contains("prefix = \"study/base.prefix.txt\""),
        "{text}"
    );
    assert!(
        text.contains("chat_template = \"study/chat.chat_template.jinja\""),
        "{text}"
    );
    assert_eq!(
        std::fs::read(run.join("study/base.prefix.txt")).unwrap(),
        std::fs::read(&prefix).unwrap()
    );
    // The originals may go: the run folder holds what it needs.
    std::fs::remove_file(&prefix).unwrap();
    std::fs::remove_file(&template).unwrap();
    reproduces(&run, &tmp.path().join("again"));
}

#[test]
fn a_merged_run_and_its_shards_hold_a_study_that_reproduces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let shards: Vec<_> = (0..2)
        .map(|i| tmp.path().join(format!("shard{i}")))
        .collect();
    for (i, dir) in shards.iter().enumerate() {
        let shard = format!("{i}/2");
        succeed(&strs(&pair_args(
            &data,
            dir,
            &["--max-new-tokens", "5", "--shard", &shard],
        )));
        let text = std::fs::read_to_string(dir.join("study.toml")).unwrap();
        assert!(text.contains(&format!("--shard {shard}")), "{text}");
    }
    let merged = tmp.path().join("merged");
    succeed(&[
        "merge",
        shards[0].to_str().unwrap(),
        shards[1].to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(merged.join("study.toml")).unwrap();
    assert!(text.contains("Merged from 2 shards"), "{text}");
    let again = tmp.path().join("again");
    let study = merged.join("study.toml");
    succeed(&[
        "analyze",
        "--study",
        study.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
        "--quiet",
    ]);
    let mut a = position_rows(&merged);
    let mut b = position_rows(&again);
    a.sort();
    b.sort();
    assert!(a.len() > 4);
    assert_eq!(a, b);
    assert_eq!(fingerprint(&merged), fingerprint(&again));
}
