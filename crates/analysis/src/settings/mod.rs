//! Typed settings of a study, built by the CLI or by code, checked before any
//! model loads. Library errors name the settings field ([`Field`]); the CLI
//! maps fields to the flags the user typed.

mod answering;
pub mod sampling;
pub mod study_file;

use std::path::PathBuf;

pub use aligntds_formats::fields::FieldMap;
pub use aligntds_formats::sides::{NamedContext, ALIGNED_SIDE, BASE_SIDE};
pub use aligntds_formats::summary::{
    Context, ContextKind, RecordedSettings, ResponseSource, Thresholds,
};
pub use sampling::SamplingSettings;

/// A settings field, for errors: the library names fields, front ends map
/// them to their own spelling (`--top-k`, a TOML key, a JSON field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Model(SideName),
    /// A side's server URLs (and what the checks found there).
    Server(SideName),
    ServedName(SideName),
    MaxInFlight,
    ChatTemplate(SideName),
    Context(SideName),
    Prefix(SideName),
    Template(SideName),
    Data,
    Query,
    Out,
    Overwrite,
    TopK,
    MaxNewTokens,
    Thresholds,
    Limit,
    Shard,
    CurvePositions,
    Dtype,
    Device,
    Threads,
    MergeInputs,
    MergeOut,
    /// A compared side's name.
    SideLabel(usize),
    GroupBy,
    /// The record field read as the query, answer or id.
    QueryField,
    AnswerField,
    IdField,
    /// A sampling setting by its key (`temperature`, `top_p`,
    /// `top_k_sampling`, `seed`, `samples`; see [`sampling::KEYS`]).
    Sampling(&'static str),
    /// The side whose answers are analyzed.
    AnsweredBy,
    /// A handover arm's policy.
    Handover,
}

/// A side of a study: the answering side, the base side, or the i-th compared side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideName {
    Aligned,
    Base,
    Compare(usize),
}

impl SideName {
    /// `aligned`, `base` or `compared`.
    pub fn as_str(self) -> &'static str {
        match self {
            SideName::Aligned => "aligned",
            SideName::Base => "base",
            SideName::Compare(_) => "compared",
        }
    }

    /// The side's settings prefix: `aligned`, `base` or `compare[i]`.
    pub fn key(self) -> String {
        match self {
            SideName::Compare(i) => format!("compare[{i}]"),
            other => other.as_str().to_string(),
        }
    }
}

impl std::fmt::Display for SideName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.key())
    }
}

impl Field {
    /// The field that sets an engine load setting when `side` loads.
    pub fn of_load_setting(setting: aligntds_engine::LoadSetting, side: SideName) -> Field {
        use aligntds_engine::LoadSetting;
        match setting {
            LoadSetting::Dtype => Field::Dtype,
            LoadSetting::Device => Field::Device,
            LoadSetting::Threads => Field::Threads,
            LoadSetting::ChatTemplate => Field::ChatTemplate(side),
        }
    }

    /// The field's name in [`StudySettings`] (library spelling).
    pub fn name(self) -> String {
        let side = |s: SideName, f: &str| format!("{}.{f}", s.key());
        match self {
            Field::Model(s) => side(s, "model"),
            Field::Server(s) => side(s, "servers"),
            Field::ServedName(s) => side(s, "served_name"),
            Field::MaxInFlight => "servers.max_in_flight".into(),
            Field::ChatTemplate(s) => side(s, "chat_template"),
            Field::Context(s) => side(s, "context"),
            Field::Prefix(s) => side(s, "context.prefix"),
            Field::Template(s) => side(s, "context.template"),
            Field::Data => "data".into(),
            Field::Query => "query".into(),
            Field::Out => "out".into(),
            Field::Overwrite => "overwrite".into(),
            Field::TopK => "top_k".into(),
            Field::MaxNewTokens => "max_new_tokens".into(),
            Field::Thresholds => "thresholds".into(),
            Field::Limit => "limit".into(),
            Field::Shard => "shard".into(),
            Field::CurvePositions => "curve_positions".into(),
            Field::Dtype => "dtype".into(),
            Field::Device => "device".into(),
            Field::Threads => "threads".into(),
            Field::MergeInputs => "inputs".into(),
            Field::MergeOut => "out".into(),
            Field::SideLabel(i) => format!("compare[{i}].name"),
            Field::GroupBy => "group_by".into(),
            Field::QueryField => "fields.query".into(),
            Field::AnswerField => "fields.answer".into(),
            Field::IdField => "fields.id".into(),
            Field::Sampling(key) => key.into(),
            Field::AnsweredBy => "answered_by".into(),
            Field::Handover => "policy".into(),
        }
    }
}

/// A settings value outside its valid range, named by field.
#[derive(Debug, thiserror::Error)]
#[error("setting `{}`: {message}", field.name())]
pub struct SettingError {
    pub field: Field,
    pub message: String,
}

impl SettingError {
    pub fn new(field: Field, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Where the queries come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Queries {
    /// A data file (JSON, JSONL, Parquet or CSV; see [`crate::input::dataset`]).
    File(PathBuf),
    /// One query.
    Single(String),
}

/// `i/n`: the records whose index modulo n is i.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub fn parse(text: &str) -> Result<Self, SettingError> {
        let parsed = text.split_once('/').and_then(|(i, n)| {
            Some((
                i.trim().parse::<usize>().ok()?,
                n.trim().parse::<usize>().ok()?,
            ))
        });
        match parsed {
            Some((index, count)) if count > 0 && index < count => Ok(Self { index, count }),
            _ => Err(SettingError::new(
                Field::Shard,
                format!("`{text}` is not i/n with 0 <= i < n"),
            )),
        }
    }

    pub fn holds(self, record_index: usize) -> bool {
        record_index % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// One side: the model reference, an optional chat template and its context.
#[derive(Debug, Clone, PartialEq)]
pub struct SideSettings {
    /// A checkpoint folder, a .gguf file or a Hub id (owner/name[@revision]).
    pub model: String,
    /// A shipped template name, a name the model lists, or a Jinja file.
    pub chat_template: Option<String>,
    pub context: Context,
    /// What computes the side's distributions.
    pub backend: BackendSettings,
}

impl SideSettings {
    /// Whether the side runs anywhere but the local engine (then `model`
    /// gives only the tokenizer, chat template and special tokens; its
    /// weights are never read).
    pub fn is_remote(&self) -> bool {
        self.backend != BackendSettings::Local
    }

    /// The side's server addresses (none on the local engine).
    pub fn servers(&self) -> &[String] {
        match &self.backend {
            BackendSettings::Local => &[],
            BackendSettings::Vllm { servers, .. } => servers,
        }
    }
}

/// What computes a side's distributions: a setting, so that code naming a
/// backend's implementation lives in `backend/` alone. How requests to
/// servers are paced ([`ServerOptions`]) is the invocation's, shared by its
/// remote sides.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum BackendSettings {
    /// The local engine on the side's own weights.
    #[default]
    Local,
    /// vLLM servers, replicas of one model.
    Vllm {
        servers: Vec<String>,
        /// The model's name on the servers; needed only when they serve several.
        served_name: Option<String>,
    },
}

impl BackendSettings {
    /// vLLM servers where any are given, else the local engine (as the
    /// CLI's and study files' `servers` lists read). A served name without
    /// servers is kept so that validation can name it.
    pub fn from_servers(servers: Vec<String>, served_name: Option<String>) -> Self {
        if servers.is_empty() && served_name.is_none() {
            BackendSettings::Local
        } else {
            BackendSettings::Vllm {
                servers,
                served_name,
            }
        }
    }
}

/// A reference side after `base`: its name (in positions.parquet's `side`
/// column, examples.jsonl and summary.json) and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparedSide {
    pub name: String,
    pub side: SideSettings,
}

/// How models load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Runtime {
    pub dtype: aligntds_engine::DTypeChoice,
    pub device: DeviceChoice,
    /// Answers the local engine generates together; None: chosen for the
    /// machine and model ([`aligntds_engine::LanguageModel::default_batch`]).
    /// Answers do not depend on it (except where two tokens tie within float
    /// rounding), so it is not part of a run's identity.
    pub batch: Option<usize>,
    /// Run a context prefix shared by many records once per side and
    /// continue its cache (scores equal from-scratch ones within float
    /// rounding, 1e-5; not part of a run's identity either).
    pub reuse_prefixes: bool,
}

/// Where the local engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    Cuda(usize),
}

impl DeviceChoice {
    /// Parses `cpu`, `cuda` or `cuda:N` (the `--device` flag's values).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => match text.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceChoice::Cuda(n)),
                _ => Err(format!("unknown device `{text}`; use cpu, cuda or cuda:N")),
            },
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            dtype: aligntds_engine::DTypeChoice::Float(aligntds_engine::DType::F32),
            device: DeviceChoice::Cpu,
            batch: None,
            reuse_prefixes: true,
        }
    }
}

/// Everything a study needs. Build it directly or with [`StudySettings::new`]
/// and change fields; [`crate::study::Study::prepare`] checks it.
#[derive(Debug, Clone, PartialEq)]
pub struct StudySettings {
    pub aligned: SideSettings,
    pub base: SideSettings,
    /// More reference sides scoring the same answer, in stage order after
    /// `base` (e.g. an SFT and a DPO checkpoint); empty: a pair study.
    pub compare: Vec<ComparedSide>,
    pub queries: Queries,
    pub out: PathBuf,
    pub response: ResponseSource,
    pub max_new_tokens: usize,
    pub stops: Vec<String>,
    pub top_k: usize,
    pub thresholds: Thresholds,
    pub limit: Option<usize>,
    pub shard: Option<Shard>,
    pub curve_positions: usize,
    /// A record field to split the statistics by (e.g. `category`).
    pub group_by: Option<String>,
    /// The data set's fields read as query, answer and id (default names where unset).
    pub fields: FieldMap,
    /// Replace an earlier run of other settings in `out`.
    pub overwrite: bool,
    /// An unanalyzable record is an error instead of a skip.
    pub strict: bool,
    pub runtime: Runtime,
    /// How remote sides talk to their servers.
    pub server_options: ServerOptions,
    /// Sampled answers; None: greedy.
    pub sampling: Option<SamplingSettings>,
    /// The side that answers (generates): `aligned` (None), `base` or a
    /// compared side's name. Every other side's rank of its tokens sets
    /// their category.
    pub answered_by: Option<String>,
    /// A handover arm: both sides decode each answer, this policy choosing
    /// whose token each is (`aligntds handover`).
    pub handover: Option<crate::handover::policy::Policy>,
}

impl StudySettings {
    /// The study's defaults: aligned side in its chat template, base side in
    /// the zero-shot template, answers from the data set where present.
    pub fn new(aligned: &str, base: &str, queries: Queries, out: impl Into<PathBuf>) -> Self {
        let side = |model: &str, kind| SideSettings {
            model: model.to_string(),
            chat_template: None,
            context: Context::of(kind),
            backend: BackendSettings::Local,
        };
        Self {
            aligned: side(aligned, ContextKind::Chat),
            base: side(base, ContextKind::Template),
            compare: Vec::new(),
            queries,
            out: out.into(),
            response: ResponseSource::Auto,
            max_new_tokens: 512,
            stops: Vec::new(),
            top_k: 10,
            thresholds: Thresholds::default(),
            limit: None,
            shard: None,
            curve_positions: 200,
            group_by: None,
            fields: FieldMap::default(),
            overwrite: false,
            strict: false,
            runtime: Runtime::default(),
            server_options: Default::default(),
            sampling: None,
            answered_by: None,
            handover: None,
        }
    }

    /// Every side with its name: aligned, base, then the compared sides.
    pub fn sides(&self) -> Vec<(SideName, &SideSettings)> {
        [
            (SideName::Aligned, &self.aligned),
            (SideName::Base, &self.base),
        ]
        .into_iter()
        .chain(
            self.compare
                .iter()
                .enumerate()
                .map(|(i, c)| (SideName::Compare(i), &c.side)),
        )
        .collect()
    }

    /// What one record's analysis needs.
    pub fn run_settings(&self) -> RunSettings {
        RunSettings {
            recorded: RecordedSettings {
                aligned_context: self.aligned.context.clone(),
                base_context: self.base.context.clone(),
                response: self.response,
                max_new_tokens: self.max_new_tokens,
                stops: self.stops.clone(),
                top_k: self.top_k,
                thresholds: self.thresholds,
                compare: self
                    .compare
                    .iter()
                    .map(|c| NamedContext {
                        name: c.name.clone(),
                        context: c.side.context.clone(),
                    })
                    .collect(),
                sampling: self.sampling,
                answered_by: self.answered_by.clone().filter(|s| s != ALIGNED_SIDE),
                handover: self.handover.map(|p| p.label()),
            },
            strict: self.strict,
            cancel: Default::default(),
        }
    }

    /// Refuses degenerate values, naming the field and the valid range.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.top_k == 0 {
            return Err(SettingError::new(
                Field::TopK,
                "must be at least 1 (the top tokens kept per side and position)",
            ));
        }
        if self.top_k > MAX_TOP_K {
            return Err(SettingError::new(
                Field::TopK,
                format!(
                    "{} is too many: keep 1 to {MAX_TOP_K} tokens per side and position",
                    self.top_k
                ),
            ));
        }
        if matches!(
            self.response,
            ResponseSource::Auto | ResponseSource::Generate
        ) && self.max_new_tokens == 0
        {
            return Err(SettingError::new(
                Field::MaxNewTokens,
                "must be at least 1 when answers may be generated (or take answers from the data set only)",
            ));
        }
        let t = self.thresholds;
        if t.unshifted_max == 0 || t.marginal_max < t.unshifted_max {
            return Err(SettingError::new(
                Field::Thresholds,
                format!(
                    "need 1 <= unshifted_max <= marginal_max, got {} and {}",
                    t.unshifted_max, t.marginal_max
                ),
            ));
        }
        if self.limit == Some(0) {
            return Err(SettingError::new(
                Field::Limit,
                "must be at least 1 (or none: every record)",
            ));
        }
        if self.curve_positions == 0 {
            return Err(SettingError::new(
                Field::CurvePositions,
                "must be at least 1",
            ));
        }
        check_sides(&self.aligned, &self.base)?;
        check_compared(&self.compare)?;
        sampling::check(self.sampling.as_ref())?;
        answering::check(self)?;
        if self
            .group_by
            .as_deref()
            .is_some_and(|f| f.trim().is_empty())
        {
            return Err(SettingError::new(Field::GroupBy, "names no field"));
        }
        for (field, path) in [
            (Field::QueryField, &self.fields.query),
            (Field::AnswerField, &self.fields.answer),
            (Field::IdField, &self.fields.id),
        ] {
            if let Some(path) = path {
                if path.split('.').any(|part| part.trim().is_empty()) {
                    return Err(SettingError::new(
                        field,
                        format!("`{path}` is not a field name or dotted path (e.g. question, turns.0, conversation.0.content)"),
                    ));
                }
            }
        }
        if self.server_options.max_in_flight == 0 {
            return Err(SettingError::new(
                Field::MaxInFlight,
                "must be at least 1 request per server",
            ));
        }
        if let Queries::Single(q) = &self.queries {
            if q.trim().is_empty() {
                return Err(SettingError::new(Field::Query, "the query is empty"));
            }
        }
        Ok(())
    }
}

/// Checks both sides' own settings: a `custom` context has its `{query}`, a
/// served name comes with servers, every server URL is an http:// URL.
pub(crate) fn check_sides(aligned: &SideSettings, base: &SideSettings) -> Result<(), SettingError> {
    check_side_list(&[(SideName::Aligned, aligned), (SideName::Base, base)])
}

/// Names that cannot name a compared side: the two fixed sides and the stage
/// view's `unsettled`.
const RESERVED_NAMES: &[&str] = &[ALIGNED_SIDE, BASE_SIDE, "unsettled"];

/// Each compared side has a unique, plain name (letters, digits, `-`, `_`,
/// `.`) and valid own settings.
fn check_compared(compare: &[ComparedSide]) -> Result<(), SettingError> {
    for (i, c) in compare.iter().enumerate() {
        let plain = !c.name.is_empty()
            && c.name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'));
        if !plain {
            return Err(SettingError::new(
                Field::SideLabel(i),
                format!(
                    "`{}` is not a side name: use letters, digits, `-`, `_` or `.` (e.g. sft, dpo-v2)",
                    c.name
                ),
            ));
        }
        if RESERVED_NAMES.contains(&c.name.as_str()) {
            return Err(SettingError::new(
                Field::SideLabel(i),
                format!("`{}` is reserved; name the side otherwise", c.name),
            ));
        }
        if compare[..i].iter().any(|o| o.name == c.name) {
            return Err(SettingError::new(
                Field::SideLabel(i),
                format!("two compared sides are named `{}`", c.name),
            ));
        }
    }
    let list: Vec<(SideName, &SideSettings)> = compare
        .iter()
        .enumerate()
        .map(|(i, c)| (SideName::Compare(i), &c.side))
        .collect();
    check_side_list(&list)
}

fn check_side_list(sides: &[(SideName, &SideSettings)]) -> Result<(), SettingError> {
    for &(name, side) in sides {
        let c = &side.context;
        if c.kind == ContextKind::Custom
            && !c.template.as_deref().is_some_and(|t| t.contains("{query}"))
        {
            return Err(SettingError::new(
                Field::Template(name),
                "the `custom` context needs a template containing {query}",
            ));
        }
        if let BackendSettings::Vllm {
            servers,
            served_name: Some(_),
        } = &side.backend
        {
            if servers.is_empty() {
                return Err(SettingError::new(
                    Field::ServedName(name),
                    "names a model on the side's servers, but the side has none (give its server URLs)",
                ));
            }
        }
        for url in side.servers() {
            normalize_url(url).map_err(|m| SettingError::new(Field::Server(name), m))?;
        }
    }
    Ok(())
}

/// More top tokens than this per side and position make positions.parquet
/// huge for no reader's benefit (the original kept 30).
pub const MAX_TOP_K: usize = 1000;

/// What one record's analysis needs: the settings that change its results
/// (recorded in the manifest and fingerprinted) and how to treat a record
/// that cannot be analyzed.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    pub recorded: RecordedSettings,
    /// An unanalyzable record is an error instead of a skip (not fingerprinted).
    pub strict: bool,
    /// Once set, a record stops at its next decoding step or scoring chunk
    /// with [`crate::study::record::RunError::Cancelled`] (not fingerprinted).
    pub cancel: aligntds_engine::Cancel,
}

/// How a side talks to its servers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerOptions {
    /// Requests in flight per server (vLLM batches what is in flight).
    pub max_in_flight: usize,
    /// The longest one request may take (a long generation on a busy server).
    pub request_timeout: std::time::Duration,
    /// How long a request keeps being retried while no server of the side answers.
    pub retry_window: std::time::Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_in_flight: 32,
            request_timeout: std::time::Duration::from_secs(600),
            retry_window: std::time::Duration::from_secs(300),
        }
    }
}

/// A server address as given, normalised to `http://host:port[/prefix]`
/// (a trailing `/` or `/v1` dropped).
pub fn normalize_url(url: &str) -> Result<String, String> {
    let given = url.trim();
    if given.starts_with("https://") {
        return Err(format!(
            "`{url}`: https is not supported; reach the vLLM server over http (on the cluster network or through an SSH tunnel)"
        ));
    }
    let Some(rest) = given.strip_prefix("http://") else {
        return Err(format!(
            "`{url}` is not an http:// URL (e.g. http://gpu-node-1:8000)"
        ));
    };
    // The OpenAI-style base URL people copy ends in /v1; our paths add it.
    let rest = rest.trim_end_matches('/');
    let rest = rest.strip_suffix("/v1").unwrap_or(rest);
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("`{url}` names no host"));
    }
    let normalized = format!("http://{rest}");
    normalized
        .parse::<hyper::Uri>()
        .map_err(|e| format!("`{url}` is not a valid URL: {e}"))?;
    Ok(normalized)
}
