//! Hand-made examples for this crate's unit tests: ranks and divergences from
//! a fixed pseudo-random sequence, shifted more often early in the answer (as
//! the paper found), so every statistic has something to count. (The
//! analysis crate's `synthetic` module makes examples from real distributions
//! through the metrics; this crate holds no metric code.)

use aligntds_formats::examples::ExampleLine;
use aligntds_formats::positions::PositionRecord;
use aligntds_formats::summary::{Category, Thresholds};

/// splitmix64, as in the analysis crate's synthetic runs.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn uniform(state: &mut u64) -> f64 {
    (next(state) >> 11) as f64 / (1u64 << 53) as f64
}

/// A position whose aligned token has `base_rank` under the base side.
pub fn position(t: u32, base_rank: u32, kl: f64) -> PositionRecord {
    let base_logprob = -(base_rank as f32).ln() - 0.2;
    PositionRecord {
        position: t,
        token_id: t,
        token: format!("w{t}"),
        token_piece: format!("w{t}"),
        text: format!("w{t}"),
        aligned_logprob: -0.3,
        aligned_rank: 1,
        base_logprob,
        base_rank,
        category: Category::of(base_rank, Thresholds::default()),
        kl_aligned_base: Some(kl),
        kl_base_aligned: Some(kl * 0.8),
        js: Some(kl * 0.2),
        aligned_entropy: Some(1.0),
        base_entropy: Some(1.5),
        log_ratio: -0.3 - base_logprob as f64,
        top1_agree: base_rank == 1,
        aligned_top1_base_rank: Some(base_rank),
        aligned_top: Vec::new(),
        base_top: Vec::new(),
        orig_kl_at_k: None,
        orig_jaccard_at_k: None,
        orig_ws_at_k: None,
        orig_top_rank_at_k: None,
        full_vocabulary: true,
        chosen_by: None,
    }
}

/// Example `index` with `tokens` positions.
pub fn example(index: usize, tokens: usize) -> crate::record::ExampleResult {
    let mut state = 0xA11C_0000 + index as u64;
    let positions: Vec<PositionRecord> = (0..tokens as u32)
        .map(|t| {
            let drift = 0.6 / (1.0 + t as f64 / 20.0);
            let u = uniform(&mut state);
            let rank = if u > drift {
                1
            } else {
                1 + (uniform(&mut state) * 12.0) as u32
            };
            position(t, rank, uniform(&mut state) * drift * 4.0)
        })
        .collect();
    let count = |c: Category| positions.iter().filter(|p| p.category == c).count() as u32;
    crate::record::ExampleResult {
        example: ExampleLine {
            id: format!("ex-{index:05}"),
            query: format!("query {index}"),
            answer: positions.iter().map(|p| p.text.as_str()).collect(),
            answer_ids: positions.iter().map(|p| p.token_id).collect(),
            source: "dataset".into(),
            stop_reason: "dataset".into(),
            unshifted: count(Category::Unshifted),
            marginal: count(Category::Marginal),
            shifted: count(Category::Shifted),
            ..Default::default()
        },
        positions,
        compared: Vec::new(),
    }
}
