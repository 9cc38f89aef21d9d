//! One record decoded under one policy, step by step on both sides.

use crate::backend::{push_both, BackendError, Session, Side, View};
use crate::input::context::{default_stops, render};
use crate::input::dataset::Record;
use crate::live::settings::Chooser;
use crate::settings::RunSettings;
use crate::study::run_error::RunError;

use super::policy::{Policy, Step};

/// A handover answer: its tokens, who chose each, and why it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Handover {
    pub answer_ids: Vec<u32>,
    pub chosen_by: Vec<Chooser>,
    /// `eos` (the chosen token ends the turn for the side that chose it),
    /// `stop string "..."`, `max_new_tokens` or `context_full`.
    pub stop_reason: String,
}

/// Decodes `record` under `policy`: at step t both sides give their
/// distribution after the same prefix; each side's choice is its greedy
/// token, or draw t of the record's stream (the one `analyze` draws from, so
/// the `aligned` arm is analyze's answer and the `base` arm analyze's with
/// `answered_by = base`); the policy picks one and both sides take it.
/// A side's stop strings (the study's and its context's) apply once it has
/// chosen a token, so the pure arms stop as analyze's answers do.
pub fn decode(
    aligned: &Side,
    base: &Side,
    record: &Record,
    settings: &RunSettings,
    policy: &Policy,
) -> Result<Handover, RunError> {
    let recorded = &settings.recorded;
    let prompt = |side: &Side, context| -> Result<Vec<u32>, RunError> {
        let text = render(context, &side.text, record)?;
        Ok(side.text.tokenizer.encode(&text)?)
    };
    let (a_prompt, b_prompt) = (
        prompt(aligned, &recorded.aligned_context)?,
        prompt(base, &recorded.base_context)?,
    );
    let sampling = recorded.sampling.as_ref().map(|s| {
        crate::settings::sampling::for_record(s, record.query_id(), record.sample_index())
    });
    let (top_k, max_new) = (recorded.top_k, recorded.max_new_tokens);
    let mut a = aligned
        .backend
        .session(&a_prompt, max_new, top_k, &aligned.text.eos_token_ids)?;
    let mut b = base
        .backend
        .session(&b_prompt, max_new, top_k, &base.text.eos_token_ids)?;
    let stops_of = |kind| -> Vec<String> {
        recorded
            .stops
            .iter()
            .cloned()
            .chain(default_stops(kind).iter().map(|s| s.to_string()))
            .collect()
    };
    let (a_stops, b_stops) = (
        stops_of(recorded.aligned_context.kind),
        stops_of(recorded.base_context.kind),
    );
    let tok = &aligned.text.tokenizer;
    let mut answer = Vec::new();
    let mut chosen = Vec::new();
    // A side's context stops apply once it has chosen a token; the list
    // grows at most twice per answer.
    let mut stops: Vec<String> = Vec::new();
    let (mut a_chose, mut b_chose) = (false, false);
    let stop_reason = loop {
        if settings.cancel.is_cancelled() {
            return Err(RunError::Cancelled);
        }
        let t = answer.len();
        let from_aligned = a.choose(sampling.as_ref(), t)?;
        let from_base = b.choose(sampling.as_ref(), t)?;
        let aligned_takes = policy.aligned_takes(
            t,
            recorded.thresholds.marginal_max,
            &mut Views {
                a: a.as_mut(),
                b: b.as_mut(),
                aligned_token: from_aligned,
                base_token: from_base,
            },
        )?;
        let by = if aligned_takes {
            Chooser::Aligned
        } else {
            Chooser::Base
        };
        let (token, side) = match by {
            Chooser::Aligned => (from_aligned, aligned),
            Chooser::Base => (from_base, base),
        };
        answer.push(token);
        chosen.push(by);
        if side.text.eos_token_ids.contains(&token) {
            break "eos".to_string();
        }
        let first_choice = match by {
            Chooser::Aligned => !std::mem::replace(&mut a_chose, true),
            Chooser::Base => !std::mem::replace(&mut b_chose, true),
        };
        if first_choice {
            stops = [(a_chose, &a_stops), (b_chose, &b_stops)]
                .into_iter()
                .filter(|(chose, _)| *chose)
                .flat_map(|(_, own)| own.iter().cloned())
                .collect();
        }
        if let Some((keep, stop)) = aligntds_engine::find_stop(tok, &answer, &stops)? {
            // As analyze does: the stop's token goes, then a closing fence.
            answer.truncate(keep);
            if !answer.is_empty() {
                crate::study::answer::trim_closing_fence(tok, &mut answer)?;
            }
            chosen.truncate(answer.len());
            break format!("stop string {stop:?}");
        }
        if answer.len() >= max_new {
            break "max_new_tokens".to_string();
        }
        if !a.fits_one() || !b.fits_one() {
            break "context_full".to_string();
        }
        push_both(a.as_mut(), b.as_mut(), token)?;
    };
    Ok(Handover {
        answer_ids: answer,
        chosen_by: chosen,
        stop_reason,
    })
}

/// One step's distributions, for the policy's questions.
struct Views<'s, 'm> {
    a: &'s mut (dyn Session<'m> + 'm),
    b: &'s mut (dyn Session<'m> + 'm),
    aligned_token: u32,
    base_token: u32,
}

impl Step for Views<'_, '_> {
    type Error = BackendError;

    fn base_top1_prob(&mut self) -> Result<f64, BackendError> {
        Ok(match self.b.view(self.base_token)? {
            View::Full(row) => row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64,
            View::TopK(row) => row.top.first().map_or(f32::NEG_INFINITY, |&(_, lp)| lp) as f64,
        }
        .exp())
    }

    fn base_rank_of_aligned(&mut self) -> Result<u32, BackendError> {
        Ok(match self.b.view(self.aligned_token)? {
            View::Full(row) => crate::metrics::rank(row, self.aligned_token),
            View::TopK(row) => row.target_rank,
        })
    }

    fn kl_aligned_base(&mut self) -> Result<f64, BackendError> {
        let a: Vec<f32> = match self.a.view(self.aligned_token)? {
            View::Full(row) => row.to_vec(),
            View::TopK(_) => return Err(full_rows_needed()),
        };
        match self.b.view(self.aligned_token)? {
            View::Full(b) => Ok(crate::metrics::kl(&a, b)),
            View::TopK(_) => Err(full_rows_needed()),
        }
    }
}

fn full_rows_needed() -> BackendError {
    BackendError::Remote {
        backend: "a side on servers".into(),
        message: "the kl policy needs both sides' whole distributions, which a side on servers does not give".into(),
    }
}
