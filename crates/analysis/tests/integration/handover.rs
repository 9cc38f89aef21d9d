//! Handover decoding against independent computations: the pure arms are
//! analyze's answers (the aligned side's, and the base side's with
//! `answered_by = base`), `first:N` is the live pair's "continue with base
//! from N", and the `shifted`, `uncertain` and `kl` arms hand over exactly
//! where analyze's teacher-forced scoring of their answers says they should.

use aligntds_analysis::handover::{decode, Handover, Policy};
use aligntds_analysis::input::dataset::Record;
use aligntds_analysis::live::{Chooser, LivePair, LiveRequest};
use aligntds_analysis::settings::{ResponseSource, SamplingSettings, StudySettings};
use aligntds_analysis::study::record::analyze_example;
use aligntds_formats::positions::PositionRecord;

use crate::live::{live_settings, side, study_settings, QUERY};

const NEW_TOKENS: usize = 24;

struct Pair {
    study: StudySettings,
    a: aligntds_analysis::backend::Side,
    b: aligntds_analysis::backend::Side,
}

impl Pair {
    /// The llama3 fixture (plain context) against the mistral one (template).
    fn new() -> Self {
        Self::of(study_settings(NEW_TOKENS))
    }

    /// The llama3 fixture on both sides (plain context against the
    /// template): the sides agree often, so every rule hands over both ways.
    fn one_model() -> Self {
        let mut study = study_settings(NEW_TOKENS);
        study.base.model = study.aligned.model.clone();
        Self::of(study)
    }

    fn of(study: StudySettings) -> Self {
        let (a, _) = side(&study.aligned);
        let (b, _) = side(&study.base);
        Self { study, a, b }
    }

    fn arm(&self, policy: Policy) -> Handover {
        decode(
            &self.a,
            &self.b,
            &record(None),
            &self.study.run_settings(),
            &policy,
        )
        .unwrap()
    }

    /// analyze's answer under the study's settings, `answered_by` a side.
    fn analyzed(&self, answered_by: Option<&str>) -> Vec<u32> {
        let mut run = self.study.run_settings();
        run.recorded.answered_by = answered_by.map(str::to_string);
        analyze_example(&self.a, &self.b, &record(None), &run)
            .unwrap()
            .example
            .answer_ids
    }

    /// analyze's teacher-forced scoring of a given answer.
    fn scored(&self, ids: &[u32]) -> Vec<PositionRecord> {
        let mut run = self.study.run_settings();
        run.recorded.response = ResponseSource::Dataset;
        analyze_example(&self.a, &self.b, &record(Some(ids.to_vec())), &run)
            .unwrap()
            .positions
    }
}

fn record(answer: Option<Vec<u32>>) -> Record {
    Record {
        output_ids: answer,
        ..Record::query("0", QUERY)
    }
}

fn base_top1(p: &PositionRecord) -> f64 {
    (p.base_top[0].logprob as f64).exp()
}

/// A threshold halfway between two neighbouring values near the middle, so
/// that no value sits on it (rounding cannot flip a decision).
fn between(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let i = values.len() / 2;
    (values[i - 1] + values[i]) / 2.0
}

#[test]
fn the_pure_arms_are_analyzes_answers_and_first_n_is_the_live_branch() {
    let pair = Pair::new();
    let aligned = pair.arm(Policy::Aligned);
    assert_eq!(aligned.answer_ids, pair.analyzed(None));
    assert!(aligned.chosen_by.iter().all(|c| *c == Chooser::Aligned));
    let base = pair.arm(Policy::Base);
    assert_eq!(base.answer_ids, pair.analyzed(Some("base")));
    assert!(base.chosen_by.iter().all(|c| *c == Chooser::Base));
    assert_ne!(aligned.answer_ids, base.answer_ids);

    // first:5 = keep the aligned answer's first 5 tokens, continue with base.
    let first = pair.arm(Policy::First(5));
    let live = LivePair::load(live_settings(&pair.study)).unwrap();
    let branch = live
        .stream(
            &LiveRequest {
                query: QUERY.into(),
                prefix_ids: aligned.answer_ids[..5].to_vec(),
                with: Some(Chooser::Base),
                max_new_tokens: Some(NEW_TOKENS - 5),
                ..Default::default()
            },
            &|| false,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(first.answer_ids, branch.result.example.answer_ids);
    assert_eq!(first.chosen_by[..5], [Chooser::Aligned; 5]);
    assert!(first.chosen_by[5..].iter().all(|c| *c == Chooser::Base));
}

#[test]
fn the_rule_arms_hand_over_where_teacher_forced_scoring_says() {
    let pair = Pair::one_model();
    let thresholds = pair.study.thresholds;
    // shifted: aligned tokens are beyond the marginal bar for the base side,
    // the base side's are its top-1.
    let shifted = pair.arm(Policy::Shifted);
    let scored = pair.scored(&shifted.answer_ids);
    assert_eq!(scored.len(), shifted.chosen_by.len());
    for (p, by) in scored.iter().zip(&shifted.chosen_by) {
        match by {
            Chooser::Aligned => assert!(p.base_rank > thresholds.marginal_max, "{p:?}"),
            Chooser::Base => assert_eq!(p.base_rank, 1, "{p:?}"),
        }
    }
    assert!(
        shifted.chosen_by.contains(&Chooser::Aligned) && shifted.chosen_by.contains(&Chooser::Base)
    );

    // uncertain:G and kl:T with thresholds inside the values seen, so both
    // sides choose: the choice at each position is the rule applied to the
    // teacher-forced values there.
    let base_answer = pair.scored(&pair.arm(Policy::Base).answer_ids);
    let g = between(base_answer.iter().map(base_top1).collect());
    let uncertain = pair.arm(Policy::Uncertain(g));
    for (p, by) in pair
        .scored(&uncertain.answer_ids)
        .iter()
        .zip(&uncertain.chosen_by)
    {
        let expected = if base_top1(p) < g {
            Chooser::Aligned
        } else {
            Chooser::Base
        };
        assert_eq!(
            *by,
            expected,
            "top-1 {} against {g} at {}",
            base_top1(p),
            p.position
        );
    }
    assert!(
        uncertain.chosen_by.contains(&Chooser::Aligned)
            && uncertain.chosen_by.contains(&Chooser::Base)
    );
    let t = between(
        base_answer
            .iter()
            .map(|p| p.kl_aligned_base.unwrap())
            .collect(),
    );
    let kl = pair.arm(Policy::Kl(t));
    for (p, by) in pair.scored(&kl.answer_ids).iter().zip(&kl.chosen_by) {
        let expected = if p.kl_aligned_base.unwrap() > t {
            Chooser::Aligned
        } else {
            Chooser::Base
        };
        assert_eq!(
            *by, expected,
            "KL {:?} against {t} at {}",
            p.kl_aligned_base, p.position
        );
    }
    assert!(kl.chosen_by.contains(&Chooser::Aligned) && kl.chosen_by.contains(&Chooser::Base));
}

#[test]
fn sampled_arms_are_reproducible_and_the_aligned_one_is_analyzes() {
    let mut pair = Pair::new();
    pair.study.sampling = Some(SamplingSettings {
        temperature: 1.0,
        seed: 4,
        ..Default::default()
    });
    let aligned = pair.arm(Policy::Aligned);
    assert_eq!(aligned.answer_ids, pair.analyzed(None));
    assert_eq!(pair.arm(Policy::Aligned), aligned);
    let uncertain = pair.arm(Policy::Uncertain(0.2));
    assert_eq!(pair.arm(Policy::Uncertain(0.2)), uncertain);
    pair.study.sampling.as_mut().unwrap().seed = 5;
    assert_ne!(pair.arm(Policy::Aligned).answer_ids, aligned.answer_ids);
}
