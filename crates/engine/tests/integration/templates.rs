//! Chat templates render byte for byte as transformers' apply_chat_template.

use crate::common::*;
use aligntds_engine::template::{self, ChatMessage, ChatTemplate, TemplateTokens};
use serde_json::Value;

fn messages(v: &Value) -> Vec<ChatMessage> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect()
}

fn check(label: &str, template: &ChatTemplate, tokens: &TemplateTokens, rows: &Value) {
    check_with(
        label,
        template,
        tokens,
        &template::TemplateVars::new(),
        rows,
    )
}

fn check_with(
    label: &str,
    template: &ChatTemplate,
    tokens: &TemplateTokens,
    vars: &template::TemplateVars,
    rows: &Value,
) {
    for row in rows.as_array().unwrap() {
        let agp = row["add_generation_prompt"].as_bool().unwrap();
        let got = template.render_with(&messages(&row["messages"]), agp, tokens, vars);
        match (&row["rendered"], got) {
            (Value::String(expected), Ok(text)) => assert_eq!(&text, expected, "{label}"),
            (Value::Null, Err(e)) => {
                let want = row["error"].as_str().unwrap();
                assert!(
                    e.to_string().contains(want),
                    "{label}: error {e} should contain {want:?}"
                );
            }
            (expected, got) => panic!("{label}: expected {expected:?}, got {got:?}"),
        }
    }
}

#[test]
fn model_templates_match_transformers() {
    let goldens = read_json(&repo_root().join("fixtures/templates.json"));
    for name in FIXTURES {
        let model = load(name);
        let template = model
            .text
            .chat_template
            .as_ref()
            .expect("fixture has a template");
        check(
            name,
            template,
            &model.text.template_tokens(),
            &goldens["fixtures"][*name],
        );
    }
}

#[test]
fn qwen3_thinking_switch_renders_both_ways_as_transformers() {
    let goldens = read_json(&repo_root().join("fixtures/templates.json"));
    let model = load("qwen3");
    let template = model.text.chat_template.as_ref().unwrap();
    let tokens = model.text.template_tokens();
    for on in [true, false] {
        let label = format!("qwen3:enable_thinking={on}");
        let rows = &goldens["fixtures"][label.as_str()];
        let vars = template::TemplateVars::from([("enable_thinking".to_string(), on.into())]);
        check_with(&label, template, &tokens, &vars, rows);
        // Off prefills an empty think block; on (and unset) leaves the model to open one.
        let first = rows[0]["rendered"].as_str().unwrap();
        assert_eq!(
            first.ends_with("<think>\n\n</think>\n\n"),
            !on,
            "{label}: {first:?}"
        );
    }
    // Unset renders as on (the template's default), as transformers does.
    assert_eq!(
        goldens["fixtures"]["qwen3"][0],
        goldens["fixtures"]["qwen3:enable_thinking=true"][0]
    );
}

#[test]
fn gemma2_refuses_a_system_message_by_its_templates_words() {
    let model = load("gemma2");
    let err = model
        .text
        .render_chat(&template::single_turn("Hi", Some("Be brief.")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("System role not supported") && err.contains("gemma2"),
        "{err}"
    );
}

#[test]
fn named_template_from_the_model_list_can_be_chosen() {
    let goldens = read_json(&repo_root().join("fixtures/templates.json"));
    let model = load("llama2");
    let tokenizer_config = read_json(&fixture_dir("llama2").join("tokenizer_config.json"));
    let templates = template::model_templates(&tokenizer_config, None).unwrap();
    assert_eq!(templates.keys().collect::<Vec<_>>(), ["default", "toolish"]);
    let chosen = template::select(Some("toolish"), &templates, "llama2")
        .unwrap()
        .unwrap();
    check(
        "llama2:toolish",
        &chosen,
        &model.text.template_tokens(),
        &goldens["fixtures"]["llama2:toolish"],
    );
}

#[test]
fn builtin_smollm2_template_matches_transformers() {
    let goldens = read_json(&repo_root().join("fixtures/templates.json"));
    let template = ChatTemplate::builtin("smollm2").unwrap();
    check(
        "smollm2",
        &template,
        &TemplateTokens::default(),
        &goldens["fixtures"]["builtin:smollm2"],
    );
}

fn study_tokens() -> TemplateTokens {
    TemplateTokens {
        bos_token: "<s>".into(),
        eos_token: "</s>".into(),
    }
}

#[test]
fn llama2_study_template_reproduces_the_study_format() {
    let goldens = read_json(&repo_root().join("fixtures/templates.json"));
    let template = ChatTemplate::builtin("llama2-study").unwrap();
    check(
        "llama2-study",
        &template,
        &study_tokens(),
        &goldens["fixtures"]["builtin:llama2-study"],
    );
}

#[test]
fn llama2_study_template_reproduces_every_record_of_the_study_data() {
    let path = repo_root().join("../shared/data/just-eval-1000.llama-2-7b-chat.json");
    let Some(path) = require(
        &path,
        "the shared study data set sits beside the repository as ../shared",
    ) else {
        return;
    };
    let records = read_json(&path);
    let template = ChatTemplate::builtin("llama2-study").unwrap();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 1000);
    for r in records {
        let query = r["pure_input"].as_str().unwrap();
        let rendered = template
            .render(&template::single_turn(query, None), true, &study_tokens())
            .unwrap();
        assert_eq!(rendered, r["input"].as_str().unwrap(), "record {}", r["id"]);
    }
}

#[test]
fn a_model_without_a_template_is_reported_not_given_one() {
    let templates = Default::default();
    assert!(template::select(None, &templates, "base")
        .unwrap()
        .is_none());
    let err = template::select(Some("no-such-template"), &templates, "base")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("chat_template")
            && err.contains("no-such-template")
            && err.contains("llama2-study"),
        "{err}"
    );
}

#[test]
fn template_errors_name_the_template_and_line() {
    let t = ChatTemplate {
        name: "mine.jinja".into(),
        source: "{{ raise_exception('roles must alternate') }}".into(),
    };
    let err = t
        .render(&[], true, &TemplateTokens::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mine.jinja") && err.contains("roles must alternate"),
        "{err}"
    );
    let t = ChatTemplate {
        name: "broken.jinja".into(),
        source: "line one\n{% for x in %}".into(),
    };
    let err = t
        .render(&[], true, &TemplateTokens::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("broken.jinja") && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn strftime_now_formats_the_current_date() {
    let t = ChatTemplate {
        name: "date".into(),
        source: "{{ strftime_now('%Y') }}".into(),
    };
    let year = t.render(&[], false, &TemplateTokens::default()).unwrap();
    assert_eq!(year.len(), 4);
    assert!(year.parse::<u32>().unwrap() >= 2024);
}
