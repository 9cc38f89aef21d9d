//! A live pair's sampled answers: the tokens `analyze` draws for a record
//! with the id `live` under the same seed (the engine's batched generation,
//! one stream per record), the same on a rerun and different under another
//! seed; a branch that keeps a sampled answer's prefix and lets the aligned
//! side continue draws the rest as the answer did.

use aligntds_analysis::input::dataset::Record;
use aligntds_analysis::live::{LiveError, LivePair, LiveRequest};
use aligntds_analysis::settings::{ResponseSource, SamplingSettings};
use aligntds_analysis::study::record::analyze_example;

use crate::live::{live_settings, side, study_settings, QUERY};

fn request(seed: u64) -> LiveRequest {
    LiveRequest {
        query: QUERY.into(),
        max_new_tokens: Some(16),
        temperature: Some(1.0),
        top_p: Some(0.9),
        seed: Some(seed),
        ..Default::default()
    }
}

#[test]
fn a_sampled_live_answer_is_analyzes_for_the_same_seed() {
    let mut study = study_settings(16);
    study.response = ResponseSource::Generate;
    let pair = LivePair::load(live_settings(&study)).unwrap();
    let answer = |r: &LiveRequest| pair.stream(r, &|| false, &mut |_| {}).unwrap();
    let live = answer(&request(21));
    study.sampling = Some(SamplingSettings {
        temperature: 1.0,
        top_p: 0.9,
        top_k: 0,
        seed: 21,
        samples: 1,
    });
    let (a, _) = side(&study.aligned);
    let (b, _) = side(&study.base);
    let record = Record::query("live", QUERY);
    let reference = analyze_example(&a, &b, &record, &study.run_settings()).unwrap();
    assert_eq!(live.result.example.answer_ids, reference.example.answer_ids);
    assert_eq!(
        answer(&request(21)).result.example.answer_ids,
        reference.example.answer_ids
    );
    assert_ne!(
        answer(&request(22)).result.example.answer_ids,
        reference.example.answer_ids
    );
    let greedy = answer(&LiveRequest {
        query: QUERY.into(),
        max_new_tokens: Some(16),
        ..Default::default()
    });
    assert_ne!(
        greedy.result.example.answer_ids,
        reference.example.answer_ids
    );
    // Keep the first 5 tokens and let the aligned side go on: the same draws.
    let ids = &live.result.example.answer_ids;
    let branch = answer(&LiveRequest {
        prefix_ids: ids[..5].to_vec(),
        with: Some(aligntds_analysis::live::Chooser::Aligned),
        max_new_tokens: Some(ids.len() - 5),
        ..request(21)
    });
    assert_eq!(&branch.result.example.answer_ids, ids);
}

#[test]
fn values_that_cannot_sample_name_the_field() {
    let pair = LivePair::load(live_settings(&study_settings(8))).unwrap();
    for (r, field) in [
        (
            LiveRequest {
                temperature: Some(0.0),
                ..request(1)
            },
            "temperature",
        ),
        (
            LiveRequest {
                top_p: Some(1.5),
                ..request(1)
            },
            "top_p",
        ),
        (
            LiveRequest {
                top_k_sampling: Some(0),
                ..request(1)
            },
            "top_k_sampling",
        ),
    ] {
        match pair.check(&r) {
            Err(LiveError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {:?}", other.err()),
        }
    }
}
