//! One record of a study: the aligned side's answer (from the data set or
//! generated), then one paired pass scoring it under both sides.

use aligntds_engine::{Generation, TextModel};
use aligntds_formats::examples::ExampleLine;
use aligntds_formats::positions::{PositionRecord, SidePositions, TopToken};
use aligntds_formats::sides::{SideCounts, BASE_SIDE};
use rayon::prelude::*;

use aligntds_stats::ExampleResult;

use crate::backend::{Rows, Side};
use crate::input::context::render;
use crate::input::dataset::Record;
use crate::metrics::{compare, compare_top_k, Category, PositionMetrics, TopKRow};
use crate::settings::{ResponseSource, RunSettings};
use crate::study::answer::{dataset_answer, generate_answer};

pub use super::run_error::RunError;

/// Refuses a pair whose vocabularies or logits widths differ, naming the first differing token.
pub fn check_compatible(aligned: &Side, base: &Side) -> Result<(), RunError> {
    check_vocabularies(&aligned.text, &base.text)?;
    let (wa, wb) = (aligned.backend.logits_width(), base.backend.logits_width());
    // Full rows are compared element by element; top-k views by token id.
    match (wa, wb) {
        (Some(wa), Some(wb)) if wa != wb => Err(RunError::Incompatible(format!(
            "logits widths differ: aligned {wa}, base {wb} (the vocabularies agree, the lm-heads are padded differently)"
        ))),
        _ => Ok(()),
    }
}

/// Refuses two text sides whose vocabularies differ, naming the first differing token.
pub fn check_vocabularies(aligned: &TextModel, base: &TextModel) -> Result<(), RunError> {
    if let Some(d) = aligned
        .tokenizer
        .first_vocabulary_difference(&base.tokenizer)
    {
        let id = |v: Option<u32>| v.map_or("absent".to_string(), |i| format!("id {i}"));
        return Err(RunError::Incompatible(format!(
            "token {:?} is {} for the aligned model but {} for the base model; TDS needs one shared vocabulary",
            d.token,
            id(d.id),
            id(d.other_id)
        )));
    }
    Ok(())
}

/// Why a record cannot be analyzed, if it cannot: checked before any scoring.
fn unanalyzable(
    answer: &[u32],
    prompts: &[(&str, usize, usize)],
) -> Option<(&'static str, String)> {
    if answer.is_empty() {
        return Some(("empty_answer", "the answer has no tokens".into()));
    }
    for &(side, prompt, limit) in prompts {
        if prompt == 0 {
            return Some((
                "empty_context",
                format!("the {side} context encodes to no tokens"),
            ));
        }
        if prompt + answer.len() > limit {
            return Some((
                "context_overflow",
                format!(
                    "{side} context {prompt} + answer {} tokens exceed the {side} model's context of {limit} tokens",
                    answer.len()
                ),
            ));
        }
    }
    None
}

/// Analyzes one record. A record that cannot be analyzed comes back with
/// `skipped` set (or, with `settings.strict`, as an error).
pub fn analyze_example(
    aligned: &Side,
    base: &Side,
    record: &Record,
    settings: &RunSettings,
) -> Result<ExampleResult, RunError> {
    analyze_example_sides(aligned, &[base], record, settings)
}

/// Analyzes one record under any number of reference sides: `references[0]`
/// is the base side, the rest the compared sides of
/// `settings.recorded.compare` in order. The answer is chosen (or generated)
/// once and the aligned side scores it once; each reference side scores it
/// in lockstep, so every side's positions equal those of a pair study of the
/// aligned side and that side alone.
pub fn analyze_example_sides(
    aligned: &Side,
    references: &[&Side],
    record: &Record,
    settings: &RunSettings,
) -> Result<ExampleResult, RunError> {
    let recorded = &settings.recorded;
    if settings.cancel.is_cancelled() {
        return Err(RunError::Cancelled);
    }
    if references.len() != 1 + recorded.compare.len() {
        return Err(RunError::Incompatible(format!(
            "{} reference sides for the settings' {} (base and {} compared)",
            references.len(),
            1 + recorded.compare.len(),
            recorded.compare.len()
        )));
    }
    let names: Vec<&str> = std::iter::once(BASE_SIDE)
        .chain(recorded.compare.iter().map(|c| c.name.as_str()))
        .collect();
    let contexts: Vec<&crate::settings::Context> = std::iter::once(&recorded.base_context)
        .chain(recorded.compare.iter().map(|c| &c.context))
        .collect();
    let aligned_context = render(&recorded.aligned_context, &aligned.text, record)?;
    let aligned_prompt = aligned.text.tokenizer.encode(&aligned_context)?;
    let mut reference_contexts = Vec::with_capacity(references.len());
    let mut reference_prompts = Vec::with_capacity(references.len());
    for (side, context) in references.iter().zip(&contexts) {
        let text = render(context, &side.text, record)?;
        reference_prompts.push(side.text.tokenizer.encode(&text)?);
        reference_contexts.push(text);
    }
    // The answering side: the aligned side, or one reference side (`j`).
    let answerer = match &recorded.answered_by {
        None => None,
        Some(name) => Some(names.iter().position(|n| n == name).ok_or_else(|| {
            RunError::Incompatible(format!("no side `{name}` to answer in this study"))
        })?),
    };
    let (answer_side, answer_context, answer_prompt) = match answerer {
        None => (aligned, &recorded.aligned_context, &aligned_prompt),
        Some(j) => (references[j], contexts[j], &reference_prompts[j]),
    };
    let mut generation_seconds = 0.0;
    let mut generation = None;
    let handover = match &recorded.handover {
        Some(label) => Some(handover_answer(
            aligned,
            references[0],
            record,
            settings,
            label,
        )?),
        None => None,
    };
    let (answer_ids, source, stop_reason, eos_replaced) = if let Some((h, seconds)) = &handover {
        generation_seconds = *seconds;
        let ids = h.answer_ids.clone();
        (ids, "handover".to_string(), h.stop_reason.clone(), false)
    } else {
        let from_dataset = match recorded.response {
            ResponseSource::Generate => None,
            _ => dataset_answer(&aligned.text, record)?,
        };
        match (from_dataset, recorded.response) {
            (Some((ids, replaced)), _) => {
                (ids, "dataset".to_string(), "dataset".to_string(), replaced)
            }
            (None, ResponseSource::Dataset) => {
                return Err(RunError::NoAnswer {
                    id: record.id.clone(),
                })
            }
            (None, _) if answer_prompt.is_empty() => {
                (Vec::new(), "generate".into(), String::new(), false)
            }
            (None, _) => {
                let clock = std::time::Instant::now();
                let (ids, reason, out) =
                    generate_answer(answer_side, answer_context, answer_prompt, record, settings)?;
                generation_seconds = clock.elapsed().as_secs_f64();
                generation = Some(out);
                (ids, "generate".to_string(), reason, false)
            }
        }
    };
    let tok = &aligned.text.tokenizer;
    let mut contexts_iter = reference_contexts.into_iter();
    let base_context = contexts_iter.next().unwrap_or_default();
    let mut example = ExampleLine {
        id: record.id.clone(),
        query_id: record.sample.as_ref().map(|(id, _)| id.clone()),
        sample: record.sample.as_ref().map(|(_, k)| *k),
        query: record.query.clone(),
        aligned_context,
        base_context,
        answer: tok.decode(&answer_ids, false)?,
        answer_ids,
        source,
        stop_reason,
        eos_replaced,
        generation_seconds,
        fields: record.fields.clone(),
        sides: names[1..]
            .iter()
            .zip(contexts_iter)
            .map(|(name, context)| SideCounts {
                name: name.to_string(),
                context,
                scoring_seconds: 0.0,
                unshifted: 0,
                marginal: 0,
                shifted: 0,
            })
            .collect(),
        ..Default::default()
    };
    let answer_ids = example.answer_ids.clone();
    let limits: Vec<(&str, usize, usize)> = std::iter::once((
        "aligned",
        aligned_prompt.len(),
        aligned.backend.context_length(),
    ))
    .chain(
        names
            .iter()
            .zip(references)
            .zip(&reference_prompts)
            .map(|((name, side), prompt)| (*name, prompt.len(), side.backend.context_length())),
    )
    .collect();
    if let Some((reason, detail)) = unanalyzable(&answer_ids, &limits) {
        if settings.strict {
            return Err(RunError::Unanalyzable {
                id: record.id.clone(),
                reason,
                detail,
            });
        }
        example.skipped = Some(reason.to_string());
        example.skip_detail = Some(detail);
        return Ok(ExampleResult {
            example,
            positions: Vec::new(),
            compared: Vec::new(),
        });
    }
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
    let reference_tokens: Vec<Vec<u32>> = reference_prompts
        .iter()
        .map(|p| p.iter().chain(&answer_ids).copied().collect())
        .collect();
    let (top_k, thresholds) = (recorded.top_k, recorded.thresholds);
    let mut by_side: Vec<Vec<PositionRecord>> = references
        .iter()
        .map(|_| Vec::with_capacity(answer_ids.len()))
        .collect();
    let scoring = references
        .iter()
        .zip(&reference_tokens)
        .zip(&reference_prompts)
        .map(|((side, tokens), prompt)| (*side, tokens.as_slice(), prompt.len()))
        .collect();
    let (a_seconds, reference_seconds) = score_sides(
        aligned,
        (&a_tokens, aligned_prompt.len()),
        scoring,
        // Only the aligned side's own generation scores its answer.
        generation.as_ref().filter(|_| answerer.is_none()),
        top_k,
        |first, rows_a, rows_refs| {
            // Checked per chunk of positions, so a long answer stops soon.
            if settings.cancel.is_cancelled() {
                return Err(RunError::Cancelled);
            }
            let decode = |ids: &[u32], logprobs: &[f32]| top_tokens(tok, ids, logprobs);
            for (j, (rows_b, positions)) in rows_refs.iter().zip(by_side.iter_mut()).enumerate() {
                let mut metrics =
                    pair_metrics(&rows_a, rows_b, &answer_ids[first..], top_k, thresholds);
                if answerer == Some(j) {
                    // The answering side's own tokens: the aligned side's
                    // rank of them is what is shifted or not.
                    for m in &mut metrics {
                        m.category = Category::of(m.aligned_rank, thresholds);
                    }
                }
                let batch: Vec<PositionRecord> = metrics
                    .into_par_iter()
                    .enumerate()
                    .map(|(i, m)| {
                        let t = first + i;
                        record_of(
                            t,
                            answer_ids[t],
                            [&texts[t], &pieces[t], &shares[t]],
                            decode(&m.aligned_top_ids, &m.aligned_top_logprobs),
                            decode(&m.base_top_ids, &m.base_top_logprobs),
                            m,
                        )
                    })
                    .collect();
                positions.extend(batch);
            }
            Ok(())
        },
    )?;
    let count = |positions: &[PositionRecord], c: Category| {
        positions.iter().filter(|p| p.category == c).count() as u32
    };
    let mut by_side = by_side.into_iter();
    let mut positions = by_side.next().unwrap_or_default();
    if let Some((h, _)) = &handover {
        for (p, by) in positions.iter_mut().zip(&h.chosen_by) {
            p.chosen_by = Some(by.as_str().to_string());
        }
    }
    example.unshifted = count(&positions, Category::Unshifted);
    example.marginal = count(&positions, Category::Marginal);
    example.shifted = count(&positions, Category::Shifted);
    example.aligned_scoring_seconds = a_seconds;
    example.base_scoring_seconds = reference_seconds.first().copied().unwrap_or(0.0);
    let mut compared = Vec::with_capacity(example.sides.len());
    for ((counts, side_positions), seconds) in example
        .sides
        .iter_mut()
        .zip(by_side)
        .zip(reference_seconds.iter().skip(1))
    {
        counts.unshifted = count(&side_positions, Category::Unshifted);
        counts.marginal = count(&side_positions, Category::Marginal);
        counts.shifted = count(&side_positions, Category::Shifted);
        counts.scoring_seconds = *seconds;
        compared.push(SidePositions {
            side: counts.name.clone(),
            positions: side_positions,
        });
    }
    Ok(ExampleResult {
        example,
        positions,
        compared,
    })
}

/// A handover arm's answer to `record` (decoded by both sides under the
/// policy `label`) and the seconds it took.
fn handover_answer(
    aligned: &Side,
    base: &Side,
    record: &Record,
    settings: &RunSettings,
    label: &str,
) -> Result<(crate::handover::Handover, f64), RunError> {
    let policy = crate::handover::policy::Policy::parse_arms(label)
        .ok()
        .and_then(|arms| arms.first().copied())
        .ok_or_else(|| RunError::Incompatible(format!("`{label}` is not one handover policy")))?;
    let clock = std::time::Instant::now();
    let h = crate::handover::decode(aligned, base, record, settings, &policy)?;
    Ok((h, clock.elapsed().as_secs_f64()))
}

/// Top tokens with their text, for positions.parquet.
pub(crate) fn top_tokens(
    tok: &aligntds_engine::tokenizer::TextTokenizer,
    ids: &[u32],
    logprobs: &[f32],
) -> Vec<TopToken> {
    ids.iter()
        .zip(logprobs)
        .map(|(&id, &logprob)| TopToken {
            id,
            text: tok.decode(&[id], false).unwrap_or_default(),
            logprob,
        })
        .collect()
}

pub(crate) fn record_of(
    position: usize,
    token_id: u32,
    [token, piece, share]: [&String; 3],
    aligned_top: Vec<TopToken>,
    base_top: Vec<TopToken>,
    m: PositionMetrics,
) -> PositionRecord {
    PositionRecord {
        position: position as u32,
        token_id,
        token: token.clone(),
        token_piece: piece.clone(),
        text: share.clone(),
        aligned_logprob: m.aligned_logprob,
        aligned_rank: m.aligned_rank,
        base_logprob: m.base_logprob,
        base_rank: m.base_rank,
        category: m.category,
        kl_aligned_base: m.kl_aligned_base,
        kl_base_aligned: m.kl_base_aligned,
        js: m.js,
        aligned_entropy: m.aligned_entropy,
        base_entropy: m.base_entropy,
        log_ratio: m.log_ratio,
        top1_agree: m.top1_agree,
        aligned_top1_base_rank: m.aligned_top1_base_rank,
        aligned_top,
        base_top,
        orig_kl_at_k: m.compat.map(|c| c.kl_at_k),
        orig_jaccard_at_k: m.compat.map(|c| c.jaccard_at_k),
        orig_ws_at_k: m.compat.map(|c| c.ws_at_k),
        orig_top_rank_at_k: m.compat.map(|c| c.top_rank_at_k),
        full_vocabulary: m.full_vocabulary,
        chosen_by: None,
    }
}

/// Metrics for a chunk of positions from whatever rows the two backends gave.
fn pair_metrics(
    a: &Rows<'_>,
    b: &Rows<'_>,
    tokens: &[u32],
    top_k: usize,
    thresholds: crate::metrics::Thresholds,
) -> Vec<PositionMetrics> {
    let view = |rows: &Rows<'_>, i: usize, token: u32| -> TopKRow {
        match rows {
            Rows::Full { width, data } => TopKRow::from_full(
                &data[i * width..(i + 1) * width],
                token,
                top_k.max(crate::metrics::COMPAT_KEEP),
            ),
            Rows::TopK(rows) => rows[i].clone(),
        }
    };
    (0..a.len())
        .into_par_iter()
        .map(|i| match (a, b) {
            (
                Rows::Full {
                    width: wa,
                    data: da,
                },
                Rows::Full {
                    width: wb,
                    data: db,
                },
            ) => compare(
                &da[i * wa..(i + 1) * wa],
                &db[i * wb..(i + 1) * wb],
                tokens[i],
                top_k,
                thresholds,
            ),
            _ => compare_top_k(
                &view(a, i, tokens[i]),
                &view(b, i, tokens[i]),
                tokens[i],
                top_k,
                thresholds,
            ),
        })
        .collect()
}

/// Scores the same answer under the aligned side and every reference side
/// in lockstep, a chunk of positions at a time; returns each side's seconds
/// (forward pass and rows), the references' in their order. An answer side
/// `a` generated is scored from its generation where the backend kept what
/// that computed.
fn score_sides(
    a: &Side,
    (a_tokens, a_start): (&[u32], usize),
    references: Vec<(&Side, &[u32], usize)>,
    a_generation: Option<&Generation>,
    top_k: usize,
    mut sink: impl FnMut(usize, Rows<'_>, Vec<Rows<'_>>) -> Result<(), RunError>,
) -> Result<(f64, Vec<f64>), RunError> {
    let mut a_seconds = 0.0;
    let mut seconds = vec![0.0; references.len()];
    let clock = std::time::Instant::now();
    let from_generation = match a_generation {
        Some(g) => a.backend.prepare_generated(a_tokens, a_start, g)?,
        None => None,
    };
    let mut scored_a = match from_generation {
        Some(scored) => scored,
        None => a.backend.prepare(a_tokens, a_start, top_k)?,
    };
    a_seconds += clock.elapsed().as_secs_f64();
    let mut scored = Vec::with_capacity(references.len());
    let mut chunk = a.backend.chunk_rows();
    for ((side, tokens, start), s) in references.iter().zip(seconds.iter_mut()) {
        let clock = std::time::Instant::now();
        scored.push(side.backend.prepare(tokens, *start, top_k)?);
        *s += clock.elapsed().as_secs_f64();
        chunk = chunk.min(side.backend.chunk_rows());
    }
    let answer = scored_a.answer_len();
    let chunk = chunk.max(1);
    let mut i = 0;
    while i < answer {
        let n = chunk.min(answer - i);
        let clock = std::time::Instant::now();
        let rows_a = scored_a.rows(i, n)?;
        a_seconds += clock.elapsed().as_secs_f64();
        let mut rows = Vec::with_capacity(scored.len());
        for (s, secs) in scored.iter_mut().zip(seconds.iter_mut()) {
            let clock = std::time::Instant::now();
            rows.push(s.rows(i, n)?);
            *secs += clock.elapsed().as_secs_f64();
        }
        sink(i, rows_a, rows)?;
        i += n;
    }
    Ok((a_seconds, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::answer::trim_closing_fence;

    fn fixture(name: &str) -> aligntds_engine::LanguageModel {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures")
            .join(name);
        aligntds_engine::LanguageModel::load(dir.to_str().unwrap(), &Default::default()).unwrap()
    }

    #[test]
    fn a_closing_fence_before_the_stop_is_trimmed_as_whole_tokens() {
        let model = fixture("qwen2");
        let tok = &model.text.tokenizer;
        let mut ids = tok.encode_plain("Paris is the capital.\n```\n\n").unwrap();
        trim_closing_fence(tok, &mut ids).unwrap();
        let trimmed = tok.decode(&ids, false).unwrap();
        assert!(
            trimmed.starts_with("Paris is the capital.") && !trimmed.contains('`'),
            "{trimmed:?}"
        );
        assert!(trimmed.trim_end() == "Paris is the capital.", "{trimmed:?}");
        // Code inside the answer stays: only a fence at the very end goes.
        let text = "Use `x`:\n```python\nprint(1)\n```\nDone.";
        let mut ids = tok.encode_plain(text).unwrap();
        trim_closing_fence(tok, &mut ids).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
    }

    #[test]
    fn unanalyzable_records_are_named_with_their_numbers() {
        assert_eq!(
            unanalyzable(&[], &[("aligned", 3, 10), ("base", 3, 10)])
                .unwrap()
                .0,
            "empty_answer"
        );
        let (reason, detail) =
            unanalyzable(&[1; 8], &[("aligned", 3, 10), ("base", 2, 10)]).unwrap();
        assert_eq!(reason, "context_overflow");
        assert!(
            detail.contains("aligned context 3 + answer 8") && detail.contains("10"),
            "{detail}"
        );
        assert!(unanalyzable(&[1; 7], &[("aligned", 3, 10), ("base", 3, 10)]).is_none());
    }
}
