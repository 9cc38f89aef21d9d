//! A study error says what to do in settings terms (`StudyError::remedy`):
//! each kind of remedy from the error that calls for it, as a front end sees
//! it, without matching the error's variants.

use std::path::Path;

use aligntds_analysis::settings::{
    ContextKind, Field, Queries, ResponseSource, SideName, StudySettings,
};
use aligntds_analysis::study::Remedy;
use aligntds_analysis::{Study, StudyError};

use crate::common::fixture;

fn settings(dir: &Path, queries: &str) -> StudySettings {
    let data = dir.join("q.jsonl");
    std::fs::write(&data, queries).unwrap();
    let mut s = StudySettings::new(
        &fixture("llama3"),
        &fixture("mistral"),
        Queries::File(data),
        dir.join("out"),
    );
    s.aligned.context.kind = ContextKind::Plain;
    s.max_new_tokens = 4;
    s
}

fn failure(s: StudySettings) -> StudyError {
    match Study::prepare(s) {
        Err(e) => e,
        Ok(study) => study.run(&mut |_| {}).err().expect("the study fails"),
    }
}

/// A copy of the llama3 fixture with `edit` applied to one of its JSON files
/// and `drop` removed.
fn edited_copy(
    dir: &Path,
    name: &str,
    file: &str,
    drop: &str,
    edit: fn(&mut serde_json::Value),
) -> String {
    let copy = dir.join(name);
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(fixture("llama3")).unwrap() {
        let path = entry.unwrap().path();
        let target = copy.join(path.file_name().unwrap());
        if path.file_name().unwrap() == drop {
            continue;
        } else if path.file_name().unwrap() == file {
            let mut v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            edit(&mut v);
            std::fs::write(target, v.to_string()).unwrap();
        } else {
            std::fs::copy(&path, target).unwrap();
        }
    }
    copy.to_string_lossy().into_owned()
}

#[test]
fn each_error_names_its_remedy_in_settings_terms() {
    let tmp = tempfile::tempdir().unwrap();
    let one = "{\"prompt\": \"Hello?\"}\n";

    // A setting out of range: its field, and a message that does not name it.
    let mut s = settings(tmp.path(), one);
    s.top_k = 0;
    let Some(Remedy::Setting { field, message }) = failure(s).remedy() else {
        panic!("a setting remedy");
    };
    assert_eq!(field, Field::TopK);
    assert!(
        message.contains("at least 1") && !message.contains("top_k"),
        "{message}"
    );

    // An engine load setting (an unknown chat template) becomes the side's field.
    let mut s = settings(tmp.path(), one);
    s.base.chat_template = Some("no-such-template".into());
    let Some(Remedy::Setting { field, message }) = failure(s).remedy() else {
        panic!("a setting remedy");
    };
    assert_eq!(field, Field::ChatTemplate(SideName::Base));
    assert!(
        message.contains("no-such-template") && message.contains("loading the base model"),
        "{message}"
    );

    // An architecture the local engine does not run: a server for that side.
    let foreign = edited_copy(tmp.path(), "foreign", "config.json", "", |v| {
        v["model_type"] = "acme".into();
        v["architectures"] = serde_json::json!(["AcmeForCausalLM"]);
    });
    let mut s = settings(tmp.path(), one);
    s.base.model = foreign;
    assert_eq!(
        failure(s).remedy(),
        Some(Remedy::Server {
            side: SideName::Base,
            gguf: false
        })
    );

    // A chat context on a model without a chat template: that side's template.
    let bare = edited_copy(
        tmp.path(),
        "bare",
        "tokenizer_config.json",
        "chat_template.jinja",
        |v| {
            v.as_object_mut().unwrap().remove("chat_template");
        },
    );
    let mut s = settings(tmp.path(), one);
    s.aligned.model = bare;
    s.aligned.context.kind = ContextKind::Chat;
    assert_eq!(
        failure(s).remedy(),
        Some(Remedy::ChatTemplate {
            side: Some(SideName::Aligned)
        })
    );

    // Answers only from the data set, and a record without one.
    let mut s = settings(tmp.path(), one);
    s.response = ResponseSource::Dataset;
    assert_eq!(failure(s).remedy(), Some(Remedy::GenerateAnswers));

    // A finished run, then other settings in its folder.
    let s = settings(tmp.path(), one);
    Study::prepare(s).unwrap().run(&mut |_| {}).unwrap();
    let mut s = settings(tmp.path(), one);
    s.top_k = 7;
    assert_eq!(failure(s).remedy(), Some(Remedy::Overwrite));

    // Errors with nothing to change in the settings have none.
    let mut s = settings(tmp.path(), one);
    s.queries = Queries::File(tmp.path().join("missing.jsonl"));
    assert_eq!(failure(s).remedy(), None);
}
