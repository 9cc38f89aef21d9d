//! Prompt formats ("contexts") each side sees before the answer.

use aligntds_engine::template::single_turn;
use aligntds_engine::LanguageModel;

use crate::dataset::Record;

/// The original study's zero-shot template (URIAL's): ends with the opening ``` fence.
pub const ZERO_SHOT: &str = "# Query: \n ```{query}``` \n\n \n# Answer: \n ```";

/// A URIAL-style in-context alignment prefix written for aligntds: a system
/// preamble and three stylistic examples in the zero-shot format.
pub const URIAL_PREFIX: &str = include_str!("../data/urial_prefix.txt");

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContextKind {
    Chat,
    Input,
    Template,
    Plain,
    Urial,
    Custom,
}

impl ContextKind {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "chat" => Self::Chat,
            "input" => Self::Input,
            "template" => Self::Template,
            "plain" => Self::Plain,
            "urial" => Self::Urial,
            "custom" => Self::Custom,
            _ => return None,
        })
    }

    /// Strings where a next turn would begin, for generation under this context.
    pub fn default_stops(self) -> &'static [&'static str] {
        match self {
            Self::Template | Self::Urial => &["# Query", "# User"],
            _ => &[],
        }
    }
}

/// One side's context settings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Context {
    pub kind: ContextKind,
    pub system: Option<String>,
    /// The URIAL prefix (for `urial`).
    pub prefix: Option<String>,
    /// A template containing `{query}` (for `custom`).
    pub template: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("record {id}: the `input` context needs an `input` field in the data set")]
    NoInput { id: String },
    #[error(transparent)]
    Engine(#[from] aligntds_engine::EngineError),
}

impl Context {
    pub fn render(&self, model: &LanguageModel, record: &Record) -> Result<String, ContextError> {
        let query = record.query.as_str();
        Ok(match self.kind {
            ContextKind::Chat => model.render_chat(&single_turn(query, self.system.as_deref()))?,
            ContextKind::Input => record.input.clone().ok_or_else(|| ContextError::NoInput {
                id: record.id.clone(),
            })?,
            ContextKind::Template => ZERO_SHOT.replace("{query}", query),
            ContextKind::Plain => format!("{query}\n"),
            ContextKind::Urial => {
                format!(
                    "{}{}",
                    self.prefix.as_deref().unwrap_or(URIAL_PREFIX),
                    ZERO_SHOT.replace("{query}", query)
                )
            }
            ContextKind::Custom => self
                .template
                .as_deref()
                .unwrap_or("{query}")
                .replace("{query}", query),
        })
    }
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
