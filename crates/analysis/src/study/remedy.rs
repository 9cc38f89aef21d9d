//! What a user can do about a study error, in settings terms ([`Field`],
//! [`SideName`]): front ends word it with their own names (the CLI's flags, a
//! Python keyword) instead of matching error variants several layers deep.

use aligntds_engine::Remedy as EngineRemedy;

use super::folder::FolderError;
use super::record::RunError;
use super::StudyError;
use crate::settings::{Field, SideName};

/// What to do about a [`StudyError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remedy {
    /// Change this setting: `message` says what is wrong with it, without
    /// naming it (the front end names it its own way).
    Setting { field: Field, message: String },
    /// The side's architecture is not run by the local engine. A server can
    /// run it, given the checkpoint folder or Hub id; not from a GGUF file
    /// (`gguf`), whose tokenizer and template cannot be read either.
    Server { side: SideName, gguf: bool },
    /// A chat context on a model without a chat template: choose one for the
    /// side (where known), or another context.
    ChatTemplate { side: Option<SideName> },
    /// The output folder holds a run of other settings: overwrite it, or
    /// choose another folder.
    Overwrite,
    /// A record has no answer and answers come only from the data set:
    /// generate the missing ones instead.
    GenerateAnswers,
}

impl StudyError {
    /// What the user can do about this error, if anything is known.
    pub fn remedy(&self) -> Option<Remedy> {
        match self {
            StudyError::Setting(s) => Some(Remedy::Setting {
                field: s.field,
                message: s.message.clone(),
            }),
            StudyError::Load {
                side,
                reference,
                source,
            } => Some(match source.remedy()? {
                EngineRemedy::ChangeSetting(setting) => Remedy::Setting {
                    field: Field::of_load_setting(setting, *side),
                    message: format!(
                        "{} (loading the {side} model `{reference}`)",
                        source.setting().map_or("", |(_, m)| m)
                    ),
                },
                EngineRemedy::RunOnServer { gguf } => Remedy::Server { side: *side, gguf },
                EngineRemedy::ChooseChatTemplate => Remedy::ChatTemplate { side: Some(*side) },
            }),
            StudyError::Folder(FolderError::Fingerprint { .. }) => Some(Remedy::Overwrite),
            StudyError::Run(RunError::NoAnswer { .. }) => Some(Remedy::GenerateAnswers),
            StudyError::Run(_) => match self.engine()?.remedy()? {
                EngineRemedy::ChooseChatTemplate => Some(Remedy::ChatTemplate { side: None }),
                _ => None,
            },
            _ => None,
        }
    }
}
