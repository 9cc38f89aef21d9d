//! Prompt formats ("contexts") each side sees before the answer.

use aligntds_engine::template::single_turn;
use aligntds_engine::TextModel;

use crate::input::dataset::Record;

/// The original study's zero-shot template (URIAL's): ends with the opening ``` fence.
pub const ZERO_SHOT: &str = "# Query: \n ```{query}``` \n\n \n# Answer: \n ```";

/// A URIAL-style in-context alignment prefix written for aligntds: a system
/// preamble and three stylistic examples in the zero-shot format.
pub const URIAL_PREFIX: &str = include_str!("../../data/urial_prefix.txt");

pub use aligntds_formats::summary::{Context, ContextKind};

/// Strings where a next turn would begin, for generation under this context.
pub fn default_stops(kind: ContextKind) -> &'static [&'static str] {
    match kind {
        ContextKind::Template | ContextKind::Urial => &["# Query", "# User"],
        _ => &[],
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("record {id}: the `input` context needs an `input` field in the data set")]
    NoInput { id: String },
    #[error(transparent)]
    Engine(#[from] aligntds_engine::EngineError),
}

/// The prompt one side sees before the answer to `record`.
pub fn render(
    context: &Context,
    model: &TextModel,
    record: &Record,
) -> Result<String, ContextError> {
    let query = record.query.as_str();
    Ok(match context.kind {
        ContextKind::Chat => model.render_chat_with(
            &single_turn(query, context.system.as_deref()),
            &template_vars(context),
        )?,
        ContextKind::Input => record.input.clone().ok_or_else(|| ContextError::NoInput {
            id: record.id.clone(),
        })?,
        ContextKind::Template => ZERO_SHOT.replace("{query}", query),
        ContextKind::Plain => format!("{query}\n"),
        ContextKind::Urial => {
            format!(
                "{}{}",
                context.prefix.as_deref().unwrap_or(URIAL_PREFIX),
                ZERO_SHOT.replace("{query}", query)
            )
        }
        ContextKind::Custom => context
            .template
            .as_deref()
            .unwrap_or("{query}")
            .replace("{query}", query),
    })
}

/// The variables a `chat` context passes its template beyond the messages.
pub fn template_vars(context: &Context) -> aligntds_engine::template::TemplateVars {
    let mut vars = aligntds_engine::template::TemplateVars::new();
    if let Some(on) = context.enable_thinking {
        vars.insert("enable_thinking".into(), on.into());
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_shot_template_is_the_studys() {
        let expected = "# Query: \n ```What is 2+2?``` \n\n \n# Answer: \n ```";
        assert_eq!(ZERO_SHOT.replace("{query}", "What is 2+2?"), expected);
        assert!(URIAL_PREFIX.contains("# Query:") && URIAL_PREFIX.ends_with('\n'));
        assert_eq!(
            URIAL_PREFIX.matches("\n# Answer: \n ```\n").count(),
            3,
            "three examples"
        );
    }
}
