//! One TDS analysis: for each record, the aligned side's answer (from the data
//! set or generated), then one paired pass scoring it under both sides.

use aligntds_engine::score::{score_pair, Side};
use aligntds_engine::{GenerateOptions, LanguageModel, StopReason};
use rayon::prelude::*;

use crate::context::{Context, ContextError};
use crate::dataset::Record;
use crate::metrics::{compare, Category, PositionMetrics, Thresholds};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Engine(#[from] aligntds_engine::EngineError),
    #[error("the aligned and base models cannot be compared: {0}")]
    Incompatible(String),
    #[error("record {id}: {message}")]
    Record { id: String, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponseSource {
    /// The data set's answer where the record has one, else generate.
    Auto,
    Dataset,
    Generate,
}

impl ResponseSource {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "auto" => Self::Auto,
            "dataset" => Self::Dataset,
            "generate" => Self::Generate,
            _ => return None,
        })
    }
}

/// Settings that change results (all of them go into the manifest).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSettings {
    pub aligned_context: Context,
    pub base_context: Context,
    pub response: ResponseSource,
    pub max_new_tokens: usize,
    pub stops: Vec<String>,
    pub top_k: usize,
    pub thresholds: Thresholds,
}

/// One scored answer position.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PositionRow {
    pub position: u32,
    pub token_id: u32,
    /// The decoded text of this one token (lossy inside a multi-byte character).
    pub token: String,
    /// The vocabulary entry.
    pub token_piece: String,
    /// This token's share of the decoded answer: in position order the shares
    /// concatenate to `answer` exactly (leading spaces and newlines included).
    #[serde(default)]
    pub text: String,
    pub metrics: PositionMetrics,
    /// Decoded texts of `metrics.aligned_top_ids` and `metrics.base_top_ids`.
    pub aligned_top_tokens: Vec<String>,
    pub base_top_tokens: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExampleResult {
    pub id: String,
    pub query: String,
    pub aligned_context: String,
    pub base_context: String,
    pub answer: String,
    pub answer_ids: Vec<u32>,
    /// `dataset` or `generate`.
    pub source: String,
    pub stop_reason: String,
    /// A trailing end-of-turn marker that the aligned tokenizer does not know was replaced by its eos.
    pub eos_replaced: bool,
    /// Seconds the aligned side spent generating the answer (0 for data set answers).
    #[serde(default)]
    pub generation_seconds: f64,
    /// Seconds each side spent scoring (forward pass and log-softmax).
    #[serde(default)]
    pub aligned_scoring_seconds: f64,
    #[serde(default)]
    pub base_scoring_seconds: f64,
    pub unshifted: u32,
    pub marginal: u32,
    pub shifted: u32,
    /// Not in examples.jsonl (the positions are in the Parquet file), but kept in journal parts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub positions: Vec<PositionRow>,
}

/// End-of-turn markers that data sets write as text.
const END_MARKERS: &[&str] = &[
    "</s>",
    "<|im_end|>",
    "<|endoftext|>",
    "<eos>",
    "<end_of_turn>",
    "<|eot_id|>",
    "<|end|>",
];

/// Refuses a pair whose tokenizers or logits widths differ, naming the first differing token.
pub fn check_compatible(aligned: &LanguageModel, base: &LanguageModel) -> Result<(), RunError> {
    let (wa, wb) = (aligned.decoder.logits_width(), base.decoder.logits_width());
    if wa != wb {
        return Err(RunError::Incompatible(format!(
            "logits widths differ: aligned {wa}, base {wb}"
        )));
    }
    let (va, vb) = (
        aligned.tokenizer.inner().get_vocab(true),
        base.tokenizer.inner().get_vocab(true),
    );
    let mut tokens: Vec<(&String, &u32)> = va.iter().collect();
    tokens.sort_by_key(|(_, id)| **id);
    for (token, id) in tokens {
        if vb.get(token) != Some(id) {
            return Err(RunError::Incompatible(format!(
                "token {token:?} is id {id} for the aligned model but {:?} for the base model; TDS needs one shared vocabulary",
                vb.get(token)
            )));
        }
    }
    if va.len() != vb.len() {
        return Err(RunError::Incompatible(format!(
            "vocabulary sizes differ: aligned {}, base {}",
            va.len(),
            vb.len()
        )));
    }
    Ok(())
}

/// The aligned answer's token ids from the data set: `output_ids`, else the
/// text tokenized on its own without BOS (special tokens parsed).
fn dataset_answer(
    aligned: &LanguageModel,
    record: &Record,
) -> Result<Option<(Vec<u32>, bool)>, RunError> {
    if let Some(ids) = &record.output_ids {
        return Ok(Some((ids.clone(), false)));
    }
    let Some(text) = &record.output else {
        return Ok(None);
    };
    let tok = &aligned.tokenizer;
    let trimmed = text.trim_end();
    let marker = END_MARKERS
        .iter()
        .find(|m| trimmed.ends_with(*m) && tok.token_to_id(m).is_none());
    let (text, replaced) = match marker {
        Some(m) => (&trimmed[..trimmed.len() - m.len()], true),
        None => (text.as_str(), false),
    };
    let mut ids = tok.encode_plain(text)?;
    if replaced {
        let eos = aligned.eos_token_ids.first().copied().ok_or_else(|| RunError::Record {
            id: record.id.clone(),
            message: "the answer ends with an end-of-turn marker but the aligned model has no eos token".into(),
        })?;
        ids.push(eos);
    }
    Ok(Some((ids, replaced)))
}

/// Drops a closing ``` fence (and the whitespace around it) at the end of a
/// generated answer, as whole tokens: a token that also holds text before the
/// fence is kept.
fn trim_closing_fence(aligned: &LanguageModel, ids: &mut Vec<u32>) -> Result<(), RunError> {
    let text = aligned.tokenizer.decode(ids, false)?;
    let body = text.trim_end();
    if !body.ends_with("```") {
        return Ok(());
    }
    let keep = body[..body.len() - 3].trim_end().len();
    while ids.len() > 1
        && aligned
            .tokenizer
            .decode(&ids[..ids.len() - 1], false)?
            .len()
            >= keep
    {
        ids.pop();
    }
    Ok(())
}

fn generate_answer(
    aligned: &LanguageModel,
    prompt: &[u32],
    settings: &RunSettings,
) -> Result<(Vec<u32>, String), RunError> {
    let mut stops = settings.stops.clone();
    stops.extend(
        settings
            .aligned_context
            .kind
            .default_stops()
            .iter()
            .map(|s| s.to_string()),
    );
    let options = GenerateOptions {
        max_new_tokens: settings.max_new_tokens,
        stop_strings: stops,
        eos_token_ids: Vec::new(),
    };
    let out = aligned.generate(prompt, &options)?;
    let mut ids = out.tokens;
    let reason = match out.stop_reason {
        StopReason::Eos => "eos".to_string(),
        StopReason::StopString(s) => {
            trim_closing_fence(aligned, &mut ids)?;
            format!("stop string {s:?}")
        }
        StopReason::MaxNewTokens => "max_new_tokens".to_string(),
        StopReason::ContextFull => "context_full".to_string(),
    };
    Ok((ids, reason))
}

/// Analyzes one record.
pub fn analyze_example(
    aligned: &LanguageModel,
    base: &LanguageModel,
    record: &Record,
    settings: &RunSettings,
) -> Result<ExampleResult, RunError> {
    let aligned_context = settings.aligned_context.render(aligned, record)?;
    let base_context = settings.base_context.render(base, record)?;
    let aligned_prompt = aligned.tokenizer.encode(&aligned_context)?;
    let base_prompt = base.tokenizer.encode(&base_context)?;
    let mut generation_seconds = 0.0;
    let from_dataset = match settings.response {
        ResponseSource::Generate => None,
        _ => dataset_answer(aligned, record)?,
    };
    let (answer_ids, source, stop_reason, eos_replaced) = match (from_dataset, settings.response) {
        (Some((ids, replaced)), _) => (ids, "dataset".to_string(), "dataset".to_string(), replaced),
        (None, ResponseSource::Dataset) => {
            return Err(RunError::Record {
                id: record.id.clone(),
                message: "--response dataset, but the record has no answer (output or output_ids)"
                    .into(),
            })
        }
        (None, _) => {
            let clock = std::time::Instant::now();
            let (ids, reason) = generate_answer(aligned, &aligned_prompt, settings)?;
            generation_seconds = clock.elapsed().as_secs_f64();
            (ids, "generate".to_string(), reason, false)
        }
    };
    let tok = &aligned.tokenizer;
    let texts = answer_ids
        .iter()
        .map(|&id| tok.decode(&[id], false))
        .collect::<Result<Vec<_>, _>>()?;
    let shares = tok.pieces(&answer_ids)?;
    let pieces: Vec<String> = answer_ids
        .iter()
        .map(|&id| tok.inner().id_to_token(id).unwrap_or_default())
        .collect();
    let a_tokens: Vec<u32> = aligned_prompt.iter().chain(&answer_ids).copied().collect();
    let b_tokens: Vec<u32> = base_prompt.iter().chain(&answer_ids).copied().collect();
    let mut positions: Vec<PositionRow> = Vec::with_capacity(answer_ids.len());
    let (top_k, thresholds) = (settings.top_k, settings.thresholds);
    let timings = score_pair(
        Side {
            decoder: &aligned.decoder,
            tokens: &a_tokens,
            answer_start: aligned_prompt.len(),
        },
        Side {
            decoder: &base.decoder,
            tokens: &b_tokens,
            answer_start: base_prompt.len(),
        },
        None,
        |first, rows_a, rows_b| {
            let batch: Vec<PositionRow> = (0..rows_a.len())
                .into_par_iter()
                .map(|i| {
                    let t = first + i;
                    let metrics = compare(
                        rows_a.row(i),
                        rows_b.row(i),
                        answer_ids[t],
                        top_k,
                        thresholds,
                    );
                    let decode = |ids: &[u32]| {
                        ids.iter()
                            .map(|&id| tok.decode(&[id], false).unwrap_or_default())
                            .collect()
                    };
                    PositionRow {
                        position: t as u32,
                        token_id: answer_ids[t],
                        token: texts[t].clone(),
                        token_piece: pieces[t].clone(),
                        text: shares[t].clone(),
                        aligned_top_tokens: decode(&metrics.aligned_top_ids),
                        base_top_tokens: decode(&metrics.base_top_ids),
                        metrics,
                    }
                })
                .collect();
            positions.extend(batch);
            Ok(())
        },
    )?;
    let count = |c: Category| positions.iter().filter(|p| p.metrics.category == c).count() as u32;
    Ok(ExampleResult {
        id: record.id.clone(),
        query: record.query.clone(),
        answer: tok.decode(&answer_ids, false)?,
        unshifted: count(Category::Unshifted),
        marginal: count(Category::Marginal),
        shifted: count(Category::Shifted),
        aligned_context,
        base_context,
        answer_ids,
        source,
        stop_reason,
        eos_replaced,
        generation_seconds,
        aligned_scoring_seconds: timings.a_seconds,
        base_scoring_seconds: timings.b_seconds,
        positions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> LanguageModel {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures")
            .join(name);
        LanguageModel::load(dir.to_str().unwrap(), &Default::default()).unwrap()
    }

    #[test]
    fn a_closing_fence_before_the_stop_is_trimmed_as_whole_tokens() {
        let model = fixture("qwen2");
        let mut ids = model
            .tokenizer
            .encode_plain("Paris is the capital.\n```\n\n")
            .unwrap();
        trim_closing_fence(&model, &mut ids).unwrap();
        let trimmed = model.tokenizer.decode(&ids, false).unwrap();
        assert!(
            trimmed.starts_with("Paris is the capital.") && !trimmed.contains('`'),
            "{trimmed:?}"
        );
        assert!(trimmed.trim_end() == "Paris is the capital.", "{trimmed:?}");
        // Code inside the answer stays: only a fence at the very end goes.
        let text = "Use `x`:\n```python\nprint(1)\n```\nDone.";
        let mut ids = model.tokenizer.encode_plain(text).unwrap();
        trim_closing_fence(&model, &mut ids).unwrap();
        assert_eq!(model.tokenizer.decode(&ids, false).unwrap(), text);
    }
}
