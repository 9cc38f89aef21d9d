//! Which record fields of a data set hold the query, the answer and the id,
//! when they are not the default names: part of a run's identity (only when
//! set, so runs made before keep their fingerprints).

use serde::{Deserialize, Serialize};

/// Field names or dotted paths into nested JSON (`turns.0`,
/// `conversation.0.content`); None: the default names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMap {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl FieldMap {
    /// No field named: the defaults.
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }

    /// Some(self) when any field is named (what the run identity records).
    pub fn recorded(&self) -> Option<Self> {
        (!self.is_default()).then(|| self.clone())
    }
}
