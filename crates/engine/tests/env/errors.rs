//! Bad input gives an error that names the file, field or option at fault.

use std::path::{Path, PathBuf};

use crate::common::*;
use aligntds_engine::{LanguageModel, LoadOptions};
use serde_json::Value;

fn copy_fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    std::fs::create_dir(&dir).unwrap();
    for entry in std::fs::read_dir(fixture_dir(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    (tmp, dir)
}

fn load_err(dir: &Path) -> String {
    match LanguageModel::load(dir.to_str().unwrap(), &LoadOptions::default()) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let path = dir.join("config.json");
    let mut v = read_json(&path);
    edit(&mut v);
    std::fs::write(path, serde_json::to_string(&v).unwrap()).unwrap();
}

#[test]
fn missing_weights_file_is_named() {
    let (_tmp, dir) = copy_fixture("llama3");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("model.safetensors") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn missing_shard_is_named() {
    let (_tmp, dir) = copy_fixture("llama2");
    std::fs::remove_file(dir.join("model-00002-of-00004.safetensors")).unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("model-00002-of-00004.safetensors") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn truncated_weights_file_is_named() {
    let (_tmp, dir) = copy_fixture("qwen2");
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_err(&dir);
    assert!(
        err.contains("model.safetensors") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn unsupported_architecture_lists_the_supported_ones() {
    let (_tmp, dir) = copy_fixture("llama3");
    edit_config(&dir, |c| c["model_type"] = "gpt_neox".into());
    let err = load_err(&dir);
    assert!(
        err.contains("config.json") && err.contains("gpt_neox"),
        "{err}"
    );
    for arch in ["llama", "mistral", "qwen2"] {
        assert!(err.contains(arch), "{err} should list {arch}");
    }
}

#[test]
fn unsupported_rope_type_names_the_field() {
    let (_tmp, dir) = copy_fixture("llama2");
    edit_config(&dir, |c| {
        c["rope_scaling"] = serde_json::json!({"rope_type": "yarn", "factor": 4.0})
    });
    let err = load_err(&dir);
    assert!(
        err.contains("config.json")
            && err.contains("rope_scaling.rope_type")
            && err.contains("yarn"),
        "{err}"
    );
}

#[test]
fn missing_config_field_is_named() {
    let (_tmp, dir) = copy_fixture("mistral");
    edit_config(&dir, |c| {
        c.as_object_mut().unwrap().remove("hidden_size");
    });
    let err = load_err(&dir);
    assert!(
        err.contains("config.json") && err.contains("hidden_size"),
        "{err}"
    );
}

#[test]
fn tokenizer_larger_than_the_embedding_is_rejected() {
    let (_tmp, dir) = copy_fixture("llama3");
    edit_config(&dir, |c| c["vocab_size"] = 100.into());
    let err = load_err(&dir);
    assert!(
        err.contains("tokenizer.json") && err.contains("vocab_size") && err.contains("100"),
        "{err}"
    );
}

#[test]
fn weights_that_do_not_match_the_config_are_reported() {
    let (_tmp, dir) = copy_fixture("llama3");
    edit_config(&dir, |c| c["intermediate_size"] = 96.into());
    let err = load_err(&dir);
    assert!(
        err.contains("model.safetensors") && err.contains("config.json"),
        "{err}"
    );
}

#[test]
fn sequence_longer_than_the_context_is_an_error() {
    let model = load("llama3");
    let tokens = vec![5u32; 300];
    let err = model.score(&tokens, 1, |_| Ok(())).unwrap_err().to_string();
    assert!(
        err.contains("300") && err.contains("256 tokens") && !err.contains("config.json"),
        "{err}"
    );
}

#[test]
fn out_of_vocabulary_token_ids_are_an_error() {
    let model = load("llama3");
    let err = model
        .score(&[1, 5, 99_999], 1, |_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("99999"), "{err}");
}

#[test]
fn unknown_template_name_names_the_option() {
    let options = LoadOptions {
        chat_template: Some("no-such-template".into()),
        ..LoadOptions::default()
    };
    let dir = fixture_dir("qwen2");
    let err = LanguageModel::load(dir.to_str().unwrap(), &options)
        .err()
        .expect("error")
        .to_string();
    assert!(
        // The library names its setting; front ends map it to their flags.
        err.contains("setting `chat_template`") && err.contains("no-such-template"),
        "{err}"
    );
}

#[test]
fn nonexistent_reference_that_is_not_a_hub_id_is_explained() {
    let err = LanguageModel::load("/no/such/dir", &LoadOptions::default())
        .err()
        .expect("error")
        .to_string();
    assert!(
        err.contains("/no/such/dir")
            && err.contains("no such file or folder")
            && !err.contains("Hub"),
        "{err}"
    );
}

#[test]
fn path_like_references_that_do_not_exist_are_never_hub_lookups() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("models")).unwrap();
    let in_existing = dir.path().join("models/typo");
    for reference in [
        "models/typo.gguf".to_string(),
        "weights.safetensors".into(),
        "./checkpoint".into(),
        "../elsewhere/model".into(),
        in_existing.display().to_string(),
    ] {
        let err = aligntds_engine::TextModel::load_text_only(&reference, None)
            .err()
            .expect("error")
            .to_string();
        assert!(
            err.contains("no such file or folder")
                && !err.contains("Hub")
                && !err.contains("config.json"),
            "{reference}: {err}"
        );
    }
    // An existing folder and a GGUF file are what they are.
    let kind = |path: std::path::PathBuf| {
        aligntds_engine::TextModel::load_text_only(path.to_str().unwrap(), None)
            .unwrap()
            .source
            .kind
    };
    assert_eq!(kind(fixture_dir("llama3").with_extension("gguf")), "gguf");
    assert_eq!(kind(fixture_dir("llama3")), "checkpoint");
}

#[test]
fn offline_hub_id_without_cache_says_how_to_use_a_local_directory() {
    let home = tempfile::tempdir().unwrap();
    // Offline mode and an empty cache: resolution must fail fast with guidance.
    let err = with_env(
        &[
            ("HF_HOME", home.path().to_str().unwrap()),
            ("HF_HUB_OFFLINE", "1"),
        ],
        || {
            LanguageModel::load(
                "HuggingFaceTB/SmolLM2-135M-Instruct",
                &LoadOptions::default(),
            )
            .err()
            .expect("error")
            .to_string()
        },
    );
    assert!(
        err.contains("HuggingFaceTB/SmolLM2-135M-Instruct") && err.contains("local directory"),
        "{err}"
    );
}

#[test]
fn hub_cache_layout_is_used_offline() {
    // A checkpoint laid out as the Hugging Face cache does (refs/main -> snapshots/<commit>/...)
    // resolves offline without any network.
    let home = tempfile::tempdir().unwrap();
    let repo = home.path().join("hub/models--acme--tiny-llama");
    let snapshot = repo.join("snapshots/0123456789abcdef");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123456789abcdef").unwrap();
    for entry in std::fs::read_dir(fixture_dir("llama3")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), snapshot.join(entry.file_name())).unwrap();
    }
    let text = with_env(
        &[
            ("HF_HOME", home.path().to_str().unwrap()),
            ("HF_HUB_OFFLINE", "1"),
        ],
        || aligntds_engine::TextModel::load("acme/tiny-llama", None),
    )
    .unwrap();
    let source = &text.source;
    assert_eq!(source.commit.as_deref(), Some("0123456789abcdef"));
    for file in ["config.json", "model.safetensors", "chat_template.jinja"] {
        assert!(
            source.files.contains(&snapshot.join(file)),
            "{file} not among {:?}",
            source.files
        );
    }
    assert!(source.files.iter().all(|f| f.starts_with(&snapshot)));
}

fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce() -> T) -> T {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
    f()
}
