//! Library errors rendered with the flags the user typed: the libraries name
//! settings fields (`top_k`, `aligned.chat_template`), this maps them.

use aligntds_analysis::settings::{Field, SideName};
use aligntds_analysis::study::Remedy;
use aligntds_analysis::StudyError;

/// Which command's flags a field maps to.
#[derive(Debug, Clone, Copy)]
pub enum Flags<'a> {
    /// analyze and serve, with the compared sides' names in order.
    Analyze(&'a [String]),
    Merge,
    /// inspect and generate: one model, `--server`.
    Model,
}

fn side(s: SideName) -> &'static str {
    match s {
        SideName::Compare(_) => "compare",
        other => other.as_str(),
    }
}

/// `NAME=` for a compared side's NAME=VALUE flags.
fn compared(s: SideName, flags: Flags) -> String {
    match (s, flags) {
        (SideName::Compare(i), Flags::Analyze(names)) => match names.get(i) {
            Some(n) => format!(" {n}="),
            None => format!(" (compared side {})", i + 1),
        },
        _ => String::new(),
    }
}

/// The flag that sets `field`.
pub fn flag(field: Field, flags: Flags) -> String {
    let named = |s: SideName, f: &str| format!("--{}-{f}{}", side(s), compared(s, flags));
    match field {
        Field::Model(SideName::Compare(i)) | Field::SideLabel(i) => {
            format!("--compare{}", compared(SideName::Compare(i), flags))
        }
        Field::GroupBy => "--group-by".into(),
        Field::QueryField => "--query-field".into(),
        Field::AnswerField => "--answer-field".into(),
        Field::IdField => "--id-field".into(),
        Field::Model(s) => match flags {
            Flags::Model => "MODEL".into(),
            _ => format!("--{}", side(s)),
        },
        Field::Server(s) => match flags {
            Flags::Analyze(_) | Flags::Merge => named(s, "server"),
            Flags::Model => "--server".into(),
        },
        Field::ServedName(s) => match flags {
            Flags::Analyze(_) | Flags::Merge => named(s, "served-name"),
            Flags::Model => "--served-name".into(),
        },
        Field::MaxInFlight => "--max-in-flight".into(),
        Field::ChatTemplate(s) => match flags {
            Flags::Model => "--chat-template".into(),
            Flags::Analyze(_) | Flags::Merge => named(s, "chat-template"),
        },
        Field::Context(s) => named(s, "context"),
        Field::Prefix(s) => named(s, "prefix"),
        Field::Template(s) => named(s, "template"),
        Field::Data => "--data".into(),
        Field::Query => "--query".into(),
        Field::Out | Field::MergeOut => "--out".into(),
        Field::Overwrite => "--overwrite".into(),
        Field::TopK => "--top-k".into(),
        Field::MaxNewTokens => "--max-new-tokens".into(),
        Field::Thresholds => "--unshifted-max` and `--marginal-max".into(),
        Field::Limit => "--limit".into(),
        Field::Shard => "--shard".into(),
        Field::CurvePositions => "--curve-positions".into(),
        Field::Dtype => "--dtype".into(),
        Field::Device => "--device".into(),
        Field::Threads => "--threads".into(),
        Field::Sampling(key) => format!("--{}", key.replace('_', "-")),
        Field::AnsweredBy => "--answered-by".into(),
        Field::Handover => "--policy".into(),
        Field::MergeInputs => match flags {
            Flags::Merge => "DIRS".into(),
            Flags::Analyze(_) | Flags::Model => "--shard".into(),
        },
    }
}

/// What to do about an architecture the local engine does not run: a vLLM
/// server runs it (the text side, tokenizer and template, stays local), except
/// from a GGUF file, whose tokenizer and template cannot be read either.
pub fn unsupported_architecture_hint(gguf: bool, server_flag: &str) -> String {
    if gguf {
        format!(
            "A GGUF file of this architecture cannot be read here, for the local engine or for a \
             server (its tokenizer and chat template come from the file); give the model's checkpoint \
             folder or Hub id with {server_flag} URL, a vLLM server running it (docs/remote.md)"
        )
    } else {
        format!(
            "The local engine does not run it, but a vLLM server can: start one with this model and \
             pass {server_flag} URL (tokenizer and chat template still come from this reference; \
             docs/remote.md)"
        )
    }
}

/// A study error as the user should read it: what the library says to do,
/// worded with this command's flags.
pub fn study_error(e: StudyError, flags: Flags) -> anyhow::Error {
    let Some(remedy) = e.remedy() else {
        return anyhow::Error::new(e);
    };
    match remedy {
        Remedy::Setting { field, message } => {
            anyhow::anyhow!("option `{}`: {message}", flag(field, flags))
        }
        Remedy::Server { side, gguf } => {
            let hint = unsupported_architecture_hint(gguf, &flag(Field::Server(side), flags));
            anyhow::anyhow!("{e}. {hint}")
        }
        Remedy::ChatTemplate { side: Some(s) } => anyhow::anyhow!(
            "{e}; pass {} NAME|FILE or another {}",
            flag(Field::ChatTemplate(s), flags),
            flag(Field::Context(s), flags)
        ),
        Remedy::ChatTemplate { side: None } => anyhow::anyhow!(
            "{}; pass --aligned-chat-template / --base-chat-template NAME|FILE or another --aligned-context / --base-context",
            e.engine().map_or_else(|| e.to_string(), |e| e.to_string())
        ),
        Remedy::Overwrite => anyhow::anyhow!("{e} (pass --overwrite to replace it)"),
        Remedy::GenerateAnswers => anyhow::anyhow!(
            "{e} (--response dataset); pass --response auto to generate the missing answers"
        ),
    }
}
