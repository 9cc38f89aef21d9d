//! Data as everyday tools write it, end to end on the fixture pair: a
//! byte-order mark, a query under another name (refused naming the file's
//! columns and the flag, then read with --query-field through a nested
//! path), and a study file whose keys give the same run as the flags.

use std::path::Path;

use crate::common::*;

#[test]
fn a_byte_order_mark_and_a_nested_query_field_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mt.json");
    std::fs::write(
        &data,
        "\u{feff}[{\"question_id\": 81, \"turns\": [\"Hello?\", \"More?\"], \"category\": \"chat\"},\n\
          {\"question_id\": 82, \"turns\": [\"Why is the sky blue?\"], \"category\": \"science\"}]",
    )
    .unwrap();
    let data = data.to_string_lossy().into_owned();
    let out = tmp.path().join("refused");
    let refused = aligntds(&strs(&pair_args(&data, &out, &["--max-new-tokens", "4"])));
    assert_eq!(refused.status.code(), Some(2));
    let message = stderr(&refused);
    assert!(
        message.contains("mt.json:record 0")
            && message.contains("question_id, turns, category")
            && message.contains("--query-field"),
        "{message}"
    );

    let out = tmp.path().join("mapped");
    let mapped = [
        "--max-new-tokens",
        "4",
        "--query-field",
        "turns.0",
        "--id-field",
        "question_id",
    ];
    let run = aligntds(&strs(&pair_args(&data, &out, &mapped)));
    assert!(run.status.success(), "{}", stderr(&run));
    let lines = std::fs::read_to_string(out.join("examples.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["id"], "81");
    assert!(
        first["aligned_context"]
            .as_str()
            .unwrap()
            .contains("Hello?"),
        "{first}"
    );
    assert_eq!(
        manifest(&out)["fields"],
        serde_json::json!({"query": "turns.0", "id": "question_id"})
    );
    // Without a mapping the manifest says nothing of fields (earlier runs' fingerprints stay).
    let plain = tmp.path().join("q.jsonl");
    std::fs::write(&plain, "{\"prompt\": \"Hello?\"}\n").unwrap();
    let out = tmp.path().join("plain");
    let run = aligntds(&strs(&pair_args(
        plain.to_str().unwrap(),
        &out,
        &["--max-new-tokens", "4"],
    )));
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(manifest(&out).get("fields").is_none());
}

#[test]
fn a_study_file_with_keys_runs_as_the_same_flags_do() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("q.csv");
    std::fs::write(
        &data,
        "key,question\nk1,Hello?\nk2,Name three colours.\nk3,Why?\n",
    )
    .unwrap();
    let flags = [
        "--max-new-tokens",
        "6",
        "--top-k",
        "4",
        "--limit",
        "2",
        "--marginal-max",
        "5",
        "--query-field",
        "question",
        "--id-field",
        "key",
        "--stop",
        "zzz",
    ];
    let by_flags = tmp.path().join("flags");
    let run = aligntds(&strs(&pair_args(data.to_str().unwrap(), &by_flags, &flags)));
    assert!(run.status.success(), "{}", stderr(&run));

    let study = tmp.path().join("study.toml");
    std::fs::write(
        &study,
        format!(
            "data = \"q.csv\"\nout = \"by-file\"\nmax_new_tokens = 6\ntop_k = 4\nlimit = 2\nmarginal_max = 5\n\
             query_field = \"question\"\nid_field = \"key\"\nstops = [\"zzz\"]\n\
             [aligned]\nmodel = {:?}\ncontext = \"plain\"\n[base]\nmodel = {:?}\n",
            fixture("llama3"),
            fixture("mistral")
        ),
    )
    .unwrap();
    let run = aligntds(&["analyze", "--study", study.to_str().unwrap(), "--quiet"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let by_file = tmp.path().join("by-file");
    assert_eq!(position_rows(&by_file), position_rows(&by_flags));
    assert!(
        position_rows(&by_file).len() > 4,
        "both runs scored answers"
    );
    let (a, b) = (manifest(&by_file), manifest(&by_flags));
    assert_eq!(a["settings"], b["settings"]);
    assert_eq!(
        (a["limit"].clone(), a["fields"].clone()),
        (b["limit"].clone(), b["fields"].clone())
    );
    assert_eq!(a["settings"]["top_k"], 4);

    // A side flag beside it is refused, naming the flag.
    let refused = aligntds(&[
        "analyze",
        "--study",
        study.to_str().unwrap(),
        "--aligned-context",
        "chat",
    ]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("option `--aligned-context`"),
        "{}",
        stderr(&refused)
    );
}

/// A copy of the llama3 fixture named `name`, without the files `skip`, with
/// `edit` applied to the JSON file `file`.
fn fixture_copy(
    dir: &Path,
    name: &str,
    skip: &str,
    file: &str,
    edit: impl Fn(&mut serde_json::Value),
) -> String {
    let copy = dir.join(name);
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(fixture("llama3")).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n != skip) {
            std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
        }
    }
    let path = copy.join(file);
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(&path, value.to_string()).unwrap();
    copy.to_string_lossy().into_owned()
}

/// A copy of the llama3 fixture whose config names another architecture.
fn mamba_checkpoint(dir: &Path) -> String {
    fixture_copy(dir, "mamba", "", "config.json", |v| {
        v["model_type"] = "mamba".into();
        v["architectures"] = serde_json::json!(["MambaForCausalLM"]);
    })
}

/// The llama3 fixture's GGUF twin with `general.architecture` set to `mamba`.
fn mamba_gguf(dir: &Path) -> String {
    let mut bytes = std::fs::read(fixture("llama3.gguf")).unwrap();
    let key = b"general.architecture";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    // type (u32 8: string), length (u64 5), then the value "llama".
    let value = at + 4 + 8;
    assert_eq!(&bytes[value..value + 5], b"llama");
    bytes[value..value + 5].copy_from_slice(b"mamba");
    let path = dir.join("mamba.gguf");
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn an_architecture_the_engine_does_not_run_points_to_a_vllm_server() {
    let tmp = tempfile::tempdir().unwrap();
    let (checkpoint, gguf) = (mamba_checkpoint(tmp.path()), mamba_gguf(tmp.path()));
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "analyze".into(),
                "--aligned".into(),
                checkpoint.clone(),
                "--base".into(),
                fixture("mistral"),
                "--query".into(),
                "Hi?".into(),
            ],
            "--aligned-server",
        ),
        (
            vec![
                "analyze".into(),
                "--aligned".into(),
                fixture("mistral"),
                "--base".into(),
                fixture("mistral"),
                "--compare".into(),
                format!("ssm={checkpoint}"),
                "--query".into(),
                "Hi?".into(),
            ],
            "--compare-server ssm=",
        ),
        (vec!["inspect".into(), checkpoint.clone()], "--server"),
        (
            vec![
                "generate".into(),
                checkpoint.clone(),
                "--prompt".into(),
                "Hi".into(),
            ],
            "--server",
        ),
    ];
    for (mut args, flag) in cases {
        if args[0] == "analyze" {
            args.extend([
                "--out".into(),
                tmp.path().join("out").to_string_lossy().into_owned(),
            ]);
        }
        let out = aligntds(&strs(&args));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let message = stderr(&out);
        assert!(
            message.contains("unsupported architecture `mamba`")
                && message.contains("a vLLM server can")
                && message.contains(&format!("{flag} URL"))
                && message.contains("docs/remote.md"),
            "{args:?}: {message}"
        );
    }
    // A GGUF of an unknown architecture cannot be read either way.
    let out = aligntds(&["inspect", &gguf]);
    assert_eq!(out.status.code(), Some(2));
    let message = stderr(&out);
    assert!(
        message.contains("mamba")
            && message.contains("cannot be read here")
            && message.contains("checkpoint folder or Hub id"),
        "{message}"
    );
}

/// A copy of the llama3 fixture without any chat template (a base model).
fn templateless(dir: &Path) -> String {
    fixture_copy(
        dir,
        "no-template",
        "chat_template.jinja",
        "tokenizer_config.json",
        |v| {
            v.as_object_mut().unwrap().remove("chat_template");
        },
    )
}

#[test]
fn a_chat_context_on_a_model_without_a_template_names_the_sides_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let base_model = templateless(tmp.path());
    let out = tmp.path().join("out");
    let out = out.to_str().unwrap();
    let cases: [(Vec<String>, &[&str]); 2] = [
        (
            strs_owned(&["--aligned", &base_model, "--base", &fixture("mistral")]),
            &[
                "no chat template",
                "--aligned-chat-template NAME|FILE",
                "--aligned-context",
            ],
        ),
        (
            strs_owned(&[
                "--aligned",
                &fixture("llama3"),
                "--base",
                &fixture("mistral"),
                "--compare",
                &format!("raw={base_model}"),
                "--compare-context",
                "raw=chat",
            ]),
            &[
                "no chat template",
                "--compare-chat-template raw= NAME|FILE",
                "--compare-context raw=",
            ],
        ),
    ];
    for (sides, needles) in cases {
        let mut args = vec!["analyze".to_string()];
        args.extend(sides);
        args.extend(strs_owned(&["--query", "Hi?", "--out", out]));
        let result = aligntds(&strs(&args));
        assert_eq!(result.status.code(), Some(2), "{args:?}");
        let message = stderr(&result);
        for needle in needles {
            assert!(message.contains(needle), "{needle} missing: {message}");
        }
    }
}

fn strs_owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}
