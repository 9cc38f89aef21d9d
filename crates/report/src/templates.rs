//! Every page and chart is a minijinja template with HTML auto-escaping: data
//! (tokens, queries, contexts, run and model names) reaches markup only
//! through `{{ }}`, which escapes it, so no code path can forget to.
//! Numbers are formatted in Rust (the views hold them as strings) and the
//! templates hold the markup.

use std::sync::OnceLock;

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use serde::Serialize;

use crate::ReportError;

const TEMPLATES: &[(&str, &str)] = &[
    ("example.html", include_str!("../templates/example.html")),
    ("index.html", include_str!("../templates/index.html")),
    ("chart.svg", include_str!("../templates/chart.svg")),
];

fn environment() -> Result<&'static Environment<'static>, ReportError> {
    static ENV: OnceLock<Result<Environment<'static>, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // HTML escaping for the SVG charts too: they are inlined in index.html.
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        // A view that lacks a field is a bug to report, not an empty string on a page.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let mut syntax = minijinja::syntax::SyntaxConfig::builder();
        syntax.trim_blocks(true).lstrip_blocks(true);
        env.set_syntax(syntax.build().map_err(|e| e.to_string())?);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(env)
    })
    .as_ref()
    .map_err(|e| ReportError::Template(e.clone()))
}

/// Renders template `name` with `view` as its context.
pub(crate) fn render(name: &str, view: &impl Serialize) -> Result<String, ReportError> {
    let env = environment()?;
    let template = env
        .get_template(name)
        .map_err(|e| ReportError::Template(format!("{name}: {e}")))?;
    template
        .render(Value::from(Serde(view)))
        .map_err(|e| ReportError::Template(format!("{name}: {e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct View {
        text: &'static str,
    }

    #[test]
    fn every_template_compiles_and_escapes_what_it_is_given() {
        let env = environment().unwrap();
        for (name, _) in TEMPLATES {
            env.get_template(name).unwrap();
        }
        let html = env
            .render_str(
                "<p>{{ text }}</p>",
                Value::from(Serde(View {
                    text: "<b onclick='x'>&",
                })),
            )
            .unwrap();
        assert_eq!(html, "<p>&lt;b onclick=&#x27;x&#x27;&gt;&amp;</p>");
    }

    #[test]
    fn a_missing_field_is_an_error_not_an_empty_string() {
        let err = render("example.html", &View { text: "x" }).unwrap_err();
        assert!(err.to_string().contains("example.html"), "{err}");
    }
}
