//! A run's identity, flattened into summary.json's manifest: the models,
//! templates, contexts and settings of a run, everything the fingerprint
//! covers. Settings added later are absent when unset, so earlier runs keep
//! their fingerprints.

use serde::{Deserialize, Serialize};

/// Everything that changes results, fingerprinted: two runs with equal
/// identities give equal outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunIdentity {
    pub tool: String,
    pub aligned: ModelIdentity,
    pub base: ModelIdentity,
    pub aligned_weights: String,
    pub base_weights: String,
    pub device: String,
    pub aligned_chat_template: Option<TemplateIdentity>,
    pub base_chat_template: Option<TemplateIdentity>,
    pub settings: RecordedSettings,
    /// The data file as given (None for a single query).
    pub data: Option<String>,
    pub data_sha256: Option<String>,
    pub query: Option<String>,
    pub limit: Option<usize>,
    /// What served a remote side (None: the local engine). Server URLs are
    /// not part of it, so a run resumes on other replicas of the same model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aligned_server: Option<ServerIdentity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_server: Option<ServerIdentity>,
    /// The reference sides after `base`, in study order (absent in pair runs,
    /// so pair runs keep their fingerprints).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compare: Vec<ComparedIdentity>,
    /// The record fields read as query, answer and id, where not the
    /// default names (absent otherwise, so earlier runs keep their fingerprints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<crate::fields::FieldMap>,
}

/// A side computed by vLLM servers: the served model and what its results depend on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerIdentity {
    /// The model's name on the servers (/v1/models `id`).
    pub served_model: String,
    pub max_model_len: usize,
    /// Log-probabilities requested per position (the top-k views' k).
    pub logprobs: usize,
}

/// A model as fingerprinted: the reference, what kind of source it resolved
/// to, and the files (with sha256) or Hub commit that pin its contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelIdentity {
    pub reference: String,
    /// `checkpoint`, `gguf` or `hub` (absent in version 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The Hub commit a Hub id resolved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub files: Vec<FileIdentity>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIdentity {
    pub file: Option<String>,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateIdentity {
    pub name: String,
    pub sha256: String,
}

/// The result-changing settings as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedSettings {
    pub aligned_context: Context,
    pub base_context: Context,
    pub response: ResponseSource,
    pub max_new_tokens: usize,
    pub stops: Vec<String>,
    pub top_k: usize,
    pub thresholds: Thresholds,
    /// The compared sides' contexts, in study order (absent in pair runs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compare: Vec<NamedContext>,
    /// How generated answers were drawn; absent for greedy answers (so a
    /// greedy run's identity, and its fingerprint, are what they were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<SamplingSettings>,
    /// The side whose answers these are, when not the aligned side's
    /// (`base` or a compared side's name): absent for the aligned side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    /// A handover arm's policy (`first:5`): the answers were decoded by
    /// both sides, the policy choosing whose token each is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<String>,
}

/// Sampled answers: the temperature, the top-p and top-k cuts (top-k 0: no
/// cut), the seed every record's stream derives from (with the record's
/// id and the sample's index) and the answers drawn per query.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SamplingSettings {
    pub temperature: f32,
    pub top_p: f32,
    pub top_k: usize,
    pub seed: u64,
    /// Answers per query; recorded only when above 1 (so a run of one
    /// answer per query keeps the identity it had before the key existed).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub samples: usize,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

impl Default for SamplingSettings {
    /// The model's own distribution, uncut, seed 0.
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            seed: 0,
            samples: 1,
        }
    }
}

/// The prompt format a side sees before the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    pub const ALL: [Self; 6] = [
        Self::Chat,
        Self::Input,
        Self::Template,
        Self::Plain,
        Self::Urial,
        Self::Custom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Input => "input",
            Self::Template => "template",
            Self::Plain => "plain",
            Self::Urial => "urial",
            Self::Custom => "custom",
        }
    }
}

/// One side's context settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub kind: ContextKind,
    pub system: Option<String>,
    /// The URIAL prefix text (for `urial`; None: the shipped one).
    pub prefix: Option<String>,
    /// A template containing `{query}` (for `custom`).
    pub template: Option<String>,
    /// `enable_thinking` passed to a `chat` context's template (Qwen3's
    /// switch); None: not passed, the template's default. Absent from files
    /// written without it, so their fingerprints are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_thinking: Option<bool>,
}

impl Context {
    pub fn of(kind: ContextKind) -> Self {
        Self {
            kind,
            system: None,
            prefix: None,
            template: None,
            enable_thinking: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponseSource {
    /// The data set's answer where the record has one, else generate.
    Auto,
    Dataset,
    Generate,
}

/// Rank thresholds of the categories (the paper's: 1 and 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    pub unshifted_max: u32,
    pub marginal_max: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            unshifted_max: 1,
            marginal_max: 3,
        }
    }
}

/// A compared side's context, recorded (and fingerprinted) with the settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedContext {
    pub name: String,
    pub context: Context,
}

/// A compared side's model as fingerprinted (as `base` and `base_weights` are).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparedIdentity {
    pub name: String,
    pub model: ModelIdentity,
    pub weights: String,
    pub chat_template: Option<TemplateIdentity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerIdentity>,
}
