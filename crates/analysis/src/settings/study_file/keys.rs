//! The study's own settings in a study file, named as analyze's flags.

use serde::{Deserialize, Serialize};

use crate::settings::{FieldMap, ResponseSource, StudySettings, Thresholds};

/// The study's own settings a file may give (named as analyze's flags, with
/// `_`): each one set overrides the default, and a flag given beside the file
/// overrides it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StudyKeys {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unshifted_max: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marginal_max: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseSource>,
    /// Stop strings (analyze's repeatable `--stop`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stops: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    /// auto, f32, bf16, f16 or q.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtype: Option<DtypeKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curve_positions: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_field: Option<String>,
    /// Sampled answers (any of the four turns sampling on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k_sampling: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Answers drawn per query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    /// The side that answers: aligned, base or a compared side's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
}

/// `dtype` as a study file writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DtypeKey {
    Auto,
    F32,
    Bf16,
    F16,
    Q,
    Q8,
}

impl DtypeKey {
    pub fn choice(self) -> aligntds_engine::DTypeChoice {
        use aligntds_engine::{DType, DTypeChoice};
        match self {
            DtypeKey::Auto => DTypeChoice::Auto,
            DtypeKey::F32 => DTypeChoice::Float(DType::F32),
            DtypeKey::Bf16 => DTypeChoice::Float(DType::BF16),
            DtypeKey::F16 => DTypeChoice::Float(DType::F16),
            DtypeKey::Q => DTypeChoice::Quantized,
            DtypeKey::Q8 => DTypeChoice::QuantizedInt8,
        }
    }
}

impl StudyKeys {
    /// The key names, as written in a file (and as analyze's flags with `_`).
    pub const NAMES: &'static [&'static str] = &[
        "top_k",
        "unshifted_max",
        "marginal_max",
        "max_new_tokens",
        "response",
        "stops",
        "limit",
        "batch",
        "dtype",
        "curve_positions",
        "query_field",
        "answer_field",
        "id_field",
        "temperature",
        "top_p",
        "top_k_sampling",
        "seed",
        "samples",
        "answered_by",
    ];

    /// Unsets `key`: a flag given beside the file overrides it.
    pub fn clear(&mut self, key: &str) {
        match key {
            "top_k" => self.top_k = None,
            "unshifted_max" => self.unshifted_max = None,
            "marginal_max" => self.marginal_max = None,
            "max_new_tokens" => self.max_new_tokens = None,
            "response" => self.response = None,
            "stops" => self.stops = None,
            "limit" => self.limit = None,
            "batch" => self.batch = None,
            "dtype" => self.dtype = None,
            "curve_positions" => self.curve_positions = None,
            "query_field" => self.query_field = None,
            "answer_field" => self.answer_field = None,
            "id_field" => self.id_field = None,
            "temperature" => self.temperature = None,
            "top_p" => self.top_p = None,
            "top_k_sampling" => self.top_k_sampling = None,
            "seed" => self.seed = None,
            "samples" => self.samples = None,
            "answered_by" => self.answered_by = None,
            _ => {}
        }
    }

    /// Sets every key the file gives on `settings`, leaving the rest.
    pub fn apply(&self, settings: &mut StudySettings) {
        let s = settings;
        if let Some(v) = self.top_k {
            s.top_k = v;
        }
        s.thresholds = Thresholds {
            unshifted_max: self.unshifted_max.unwrap_or(s.thresholds.unshifted_max),
            marginal_max: self.marginal_max.unwrap_or(s.thresholds.marginal_max),
        };
        if let Some(v) = self.max_new_tokens {
            s.max_new_tokens = v;
        }
        if let Some(v) = self.response {
            s.response = v;
        }
        if let Some(v) = &self.stops {
            s.stops = v.clone();
        }
        if let Some(v) = self.limit {
            s.limit = Some(v);
        }
        if let Some(v) = self.batch {
            s.runtime.batch = Some(v);
        }
        if let Some(v) = self.dtype {
            s.runtime.dtype = v.choice();
        }
        if let Some(v) = self.curve_positions {
            s.curve_positions = v;
        }
        if self.temperature.is_some()
            || self.top_p.is_some()
            || self.top_k_sampling.is_some()
            || self.seed.is_some()
        {
            // Over whatever sampling the flags set (a key a flag gives was cleared).
            let mut sampling = s.sampling.unwrap_or_default();
            sampling.temperature = self.temperature.unwrap_or(sampling.temperature);
            sampling.top_p = self.top_p.unwrap_or(sampling.top_p);
            sampling.top_k = self.top_k_sampling.unwrap_or(sampling.top_k);
            sampling.seed = self.seed.unwrap_or(sampling.seed);
            s.sampling = Some(sampling);
        }
        s.sampling = crate::settings::sampling::with_samples(s.sampling, self.samples);
        if let Some(v) = &self.answered_by {
            s.answered_by = Some(v.clone());
        }
        let fields = FieldMap {
            query: self.query_field.clone().or(s.fields.query.take()),
            answer: self.answer_field.clone().or(s.fields.answer.take()),
            id: self.id_field.clone().or(s.fields.id.take()),
        };
        s.fields = fields;
    }
}
