//! A given answer scored by the live pair (`LivePair::score`, what
//! `aligntds.Pair.score` runs) against `analyze` scoring the same answer from
//! a data set: the same tokens (one tokenization of a data set's answer), and
//! within the live view's tolerance at every position.

use aligntds_analysis::input::dataset::Record;
use aligntds_analysis::live::{LiveError, LivePair, LiveRequest};
use aligntds_analysis::settings::ResponseSource;
use aligntds_analysis::study::record::analyze_example;

use crate::live::{assert_close, live_settings, side, study_settings, QUERY};

const ANSWER: &str = "Blue, green and grey.\nThe sea also turns silver at dawn.";

#[test]
fn a_scored_answer_equals_analyze_on_the_same_answer() {
    let mut study = study_settings(8);
    study.response = ResponseSource::Dataset;
    let pair = LivePair::load(live_settings(&study)).unwrap();
    let request = LiveRequest {
        query: QUERY.into(),
        ..Default::default()
    };
    let mut streamed = 0;
    let outcome = pair
        .score(&request, ANSWER, &|| false, &mut |_| streamed += 1)
        .unwrap();
    let (a, _) = side(&study.aligned);
    let (b, _) = side(&study.base);
    let record = Record {
        output: Some(ANSWER.into()),
        ..Record::query("0", QUERY)
    };
    let reference = analyze_example(&a, &b, &record, &study.run_settings()).unwrap();
    // Longer than max_new_tokens: a given answer is scored whole.
    assert!(
        reference.positions.len() > 8,
        "{}",
        reference.positions.len()
    );
    let got = &outcome.result.example;
    assert_eq!(got.answer_ids, reference.example.answer_ids);
    assert_eq!(got.answer, reference.example.answer);
    assert_eq!(
        (got.source.as_str(), outcome.stop_reason.as_str()),
        ("dataset", "dataset")
    );
    assert_eq!(
        (got.unshifted, got.marginal, got.shifted),
        (
            reference.example.unshifted,
            reference.example.marginal,
            reference.example.shifted
        )
    );
    assert_eq!(streamed, reference.positions.len());
    assert!(outcome.chosen_by.iter().all(|c| *c == "prefix"));
    assert_close(&outcome.result.positions, &reference.positions, "scored");
}

#[test]
fn a_scored_answer_is_given_whole_and_not_empty() {
    let pair = LivePair::load(live_settings(&study_settings(8))).unwrap();
    let request = LiveRequest {
        query: QUERY.into(),
        ..Default::default()
    };
    let field = |r: Result<_, LiveError>| match r {
        Err(LiveError::Invalid { field, .. }) => field,
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("accepted"),
    };
    assert_eq!(
        field(pair.score(&request, "", &|| false, &mut |_| {})),
        "answer"
    );
    let with_prefix = LiveRequest {
        prefix_ids: vec![1],
        ..request
    };
    assert_eq!(
        field(pair.score(&with_prefix, "Blue.", &|| false, &mut |_| {})),
        "prefix_ids"
    );
}
