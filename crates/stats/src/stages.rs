//! The stage view of a study whose reference sides are stages of one
//! alignment pipeline (base, then e.g. SFT and DPO checkpoints, the aligned
//! model last): per answer position, the first stage at which the aligned
//! token is within a rank bar (top-1, or within the marginal bar), summarized
//! as the share of positions each stage settles, with a bootstrap interval
//! over examples, and the tokens each stage settles most often.

use std::collections::HashMap;

use aligntds_formats::sides::{Estimate, SettledToken, StageBar, StageShare, Stages, ALIGNED_SIDE};
use aligntds_formats::summary::Thresholds;

use crate::record::ExampleResult;
use crate::resampling::{bootstrap, Cluster};
use crate::resampling::{RESAMPLES, SEED};

/// The name of the positions no stage settles.
pub const UNSETTLED: &str = "unsettled";
/// Tokens listed per stage.
const TOP_TOKENS: usize = 20;

/// The first stage (index into base, the compared sides, then the aligned
/// side) whose rank of the answer token is at most `max_rank`; `stages` (one
/// past the last) where none is.
pub fn settling_stage(ranks: &[u32], max_rank: u32) -> usize {
    ranks
        .iter()
        .position(|&r| r <= max_rank)
        .unwrap_or(ranks.len())
}

/// The stage view over every analyzed example (None for a pair study: with
/// one reference side the view is the category split itself).
pub fn stages(examples: &[ExampleResult], thresholds: Thresholds) -> Option<Stages> {
    let first = examples.iter().find(|e| !e.positions.is_empty())?;
    if first.compared.is_empty() {
        return None;
    }
    let order: Vec<String> = first
        .sides()
        .iter()
        .map(|(name, _)| name.to_string())
        .chain(std::iter::once(ALIGNED_SIDE.to_string()))
        .collect();
    let bars = [thresholds.unshifted_max, thresholds.marginal_max];
    let mut by_bar = Vec::new();
    for (b, &max_rank) in bars.iter().enumerate() {
        if b == 1 && max_rank == bars[0] {
            break;
        }
        let outcomes = order.len() + 1;
        // Per example, positions settled by each stage (and unsettled).
        let mut per_example: Vec<(&str, Vec<f64>)> = Vec::new();
        let mut tokens: Vec<HashMap<u32, (u64, &str)>> = vec![HashMap::new(); outcomes];
        for e in examples.iter().filter(|e| !e.positions.is_empty()) {
            let sides = e.sides();
            let mut counts = vec![0.0; outcomes];
            for (t, p) in e.positions.iter().enumerate() {
                let ranks: Vec<u32> = sides
                    .iter()
                    .map(|(_, ps)| ps.get(t).map_or(u32::MAX, |q| q.base_rank))
                    .chain(std::iter::once(p.aligned_rank))
                    .collect();
                let stage = settling_stage(&ranks, max_rank);
                counts[stage] += 1.0;
                let entry = tokens[stage].entry(p.token_id).or_insert((0, &p.token));
                entry.0 += 1;
            }
            per_example.push((e.example.query_key(), counts));
        }
        // One cluster per query: its answers' counts added.
        let per_example = crate::resampling::by_query(per_example, |t, m| {
            t.iter_mut().zip(m).for_each(|(t, m)| *t += m)
        });
        let total: f64 = per_example.iter().map(|c| c.iter().sum::<f64>()).sum();
        let stages = (0..outcomes)
            .map(|s| {
                let clusters: Vec<Cluster> = per_example
                    .iter()
                    .map(|c| Cluster::new(c[s], c.iter().sum()))
                    .collect();
                let i = bootstrap(&clusters, RESAMPLES, 0.95, SEED);
                let mut top: Vec<(u32, (u64, &str))> =
                    tokens[s].iter().map(|(id, v)| (*id, *v)).collect();
                top.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
                let positions: f64 = per_example.iter().map(|c| c[s]).sum();
                StageShare {
                    stage: order.get(s).map_or(UNSETTLED, |n| n.as_str()).to_string(),
                    positions: positions as u64,
                    share: positions / total,
                    interval: Estimate {
                        value: i.estimate,
                        low: i.low,
                        high: i.high,
                    },
                    top_tokens: top
                        .into_iter()
                        .take(TOP_TOKENS)
                        .map(|(token_id, (count, token))| SettledToken {
                            token_id,
                            token: token.to_string(),
                            count,
                        })
                        .collect(),
                }
            })
            .collect();
        by_bar.push(StageBar { max_rank, stages });
    }
    Some(Stages { order, by_bar })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aligntds_formats::positions::SidePositions;

    #[test]
    fn each_position_goes_to_the_first_stage_within_the_bar() {
        assert_eq!(settling_stage(&[4, 1, 1], 1), 1);
        assert_eq!(settling_stage(&[4, 3, 1], 3), 1);
        assert_eq!(
            settling_stage(&[1, 9, 1], 1),
            0,
            "base settles what it ranks first"
        );
        assert_eq!(
            settling_stage(&[4, 5, 2], 1),
            3,
            "unsettled: past the last stage"
        );
        // Three positions under base, sft and the aligned side:
        //   t0: base 1            -> base settles (top-1 and rank <= 3)
        //   t1: base 2, sft 1     -> sft (top-1); base (rank <= 3)
        //   t2: base 7, sft 5, aligned 1 -> aligned for both bars
        let mut e = crate::testing::example(0, 3);
        for (p, (b, a)) in e.positions.iter_mut().zip([(1, 1), (2, 1), (7, 1)]) {
            p.base_rank = b;
            p.aligned_rank = a;
        }
        let mut sft = e.positions.clone();
        for (p, r) in sft.iter_mut().zip([1, 1, 5]) {
            p.base_rank = r;
        }
        e.compared = vec![SidePositions {
            side: "sft".into(),
            positions: sft,
        }];
        let view = stages(&[e], Thresholds::default()).unwrap();
        assert_eq!(view.order, ["base", "sft", "aligned"]);
        let shares = |bar: usize| -> Vec<(String, u64)> {
            view.by_bar[bar]
                .stages
                .iter()
                .map(|s| (s.stage.clone(), s.positions))
                .collect()
        };
        let named = |v: [(&str, u64); 4]| -> Vec<(String, u64)> {
            v.iter().map(|(n, c)| (n.to_string(), *c)).collect()
        };
        assert_eq!(view.by_bar[0].max_rank, 1);
        assert_eq!(
            shares(0),
            named([("base", 1), ("sft", 1), ("aligned", 1), ("unsettled", 0)])
        );
        assert_eq!(view.by_bar[1].max_rank, 3);
        assert_eq!(
            shares(1),
            named([("base", 2), ("sft", 0), ("aligned", 1), ("unsettled", 0)])
        );
        assert!((view.by_bar[0].stages[1].share - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(view.by_bar[0].stages[1].top_tokens.len(), 1);
    }
}
