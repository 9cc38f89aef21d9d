//! Where in the answer (and in which part of the data) alignment acts: the
//! headline statistics over the first 1, 5, 10 and 20 answer positions
//! against the rest (shallow safety alignment sits in the first few tokens),
//! by the value of a record field, each with a bootstrap interval over
//! examples; and the cumulative distribution of the base rank.

use std::collections::BTreeMap;

use aligntds_formats::positions::PositionRecord;
use aligntds_formats::sides::{CdfPoint, Estimate, Group, Groups, PositionSplit, SplitStats};
use aligntds_formats::summary::Category;

use crate::record::ExampleResult;
use crate::record::SideOf;
use crate::resampling::{bootstrap, by_query, Cluster};
use crate::resampling::{RESAMPLES, SEED};

/// Each answer's positions with the query it answers.
fn keyed<'e>(
    examples: &'e [ExampleResult],
    side: &'e SideOf,
) -> impl Iterator<Item = (&'e str, &'e [PositionRecord])> + 'e {
    examples.iter().map(|e| (e.example.query_key(), side(e)))
}

/// The head lengths of [`position_splits`].
pub const HEADS: [u32; 4] = [1, 5, 10, 20];

/// The category shares and the mean KL over the positions `keep` selects
/// of each (query key, positions) answer, each query one cluster (answers
/// with no selected position left out; `examples` counts answers).
pub fn split_stats<'e>(
    answers: impl Iterator<Item = (&'e str, &'e [PositionRecord])>,
    keep: &dyn Fn(&PositionRecord) -> bool,
) -> SplitStats {
    // Per answer: [unshifted, marginal, shifted, positions, kl sum, kl count].
    let sums: Vec<(&str, [f64; 6])> = answers
        .map(|(key, ps)| {
            let mut s = [0.0; 6];
            for p in ps.iter().filter(|p| keep(p)) {
                let c = match p.category {
                    Category::Unshifted => 0,
                    Category::Marginal => 1,
                    Category::Shifted => 2,
                };
                s[c] += 1.0;
                s[3] += 1.0;
                if let Some(kl) = p.kl_aligned_base {
                    s[4] += kl;
                    s[5] += 1.0;
                }
            }
            (key, s)
        })
        .filter(|(_, s)| s[3] > 0.0)
        .collect();
    let answers = sums.len();
    let sums = by_query(sums, |t, m| t.iter_mut().zip(m).for_each(|(t, m)| *t += m));
    let estimate = |num: usize, den: usize| {
        let clusters: Vec<Cluster> = sums.iter().map(|s| Cluster::new(s[num], s[den])).collect();
        let i = bootstrap(&clusters, RESAMPLES, 0.95, SEED);
        Estimate {
            value: i.estimate,
            low: i.low,
            high: i.high,
        }
    };
    SplitStats {
        examples: answers,
        positions: sums.iter().map(|s| s[3] as u64).sum(),
        unshifted: estimate(0, 3),
        marginal: estimate(1, 3),
        shifted: estimate(2, 3),
        kl_aligned_base: estimate(4, 5),
    }
}

/// The first n positions of every answer against the rest, for n in
/// [`HEADS`]; a split whose head or rest holds no position (answers all
/// shorter than n) is left out, as it compares nothing.
pub fn position_splits(examples: &[ExampleResult], side: &SideOf) -> Vec<PositionSplit> {
    HEADS
        .iter()
        .map(|&n| PositionSplit {
            first: n,
            head: split_stats(keyed(examples, side), &|p| p.position < n),
            rest: split_stats(keyed(examples, side), &|p| p.position >= n),
        })
        .filter(|s| s.head.positions > 0 && s.rest.positions > 0)
        .collect()
}

/// The statistics by the value of the record field `field` (`(none)` for
/// records without it), the largest group first; a group of skipped records
/// only (no positions) is left out.
pub fn groups(examples: &[ExampleResult], side: &SideOf, field: &str) -> Groups {
    let mut by_value: BTreeMap<&str, Vec<&ExampleResult>> = BTreeMap::new();
    for e in examples {
        let value = e.example.fields.get(field).map_or(NO_VALUE, |v| v.as_str());
        by_value.entry(value).or_default().push(e);
    }
    let mut groups: Vec<Group> = by_value
        .into_iter()
        .map(|(value, members)| Group {
            value: value.to_string(),
            stats: split_stats(
                members
                    .into_iter()
                    .map(|e| (e.example.query_key(), side(e))),
                &|_| true,
            ),
        })
        .filter(|g| g.stats.positions > 0)
        .collect();
    groups.sort_by(|a, b| {
        b.stats
            .positions
            .cmp(&a.stats.positions)
            .then_with(|| a.value.cmp(&b.value))
    });
    Groups {
        field: field.to_string(),
        groups,
    }
}

/// The group of records that lack the field.
pub const NO_VALUE: &str = "(none)";

/// The ranks the CDF is given at: 1 to 10, then 20, 50, 100, 200, 500, ...
/// up to the first that reaches `max`.
pub fn cdf_ranks(max: u32) -> Vec<u32> {
    let mut ranks: Vec<u32> = (1..=10).collect();
    let mut step: u64 = 10;
    while u64::from(*ranks.last().unwrap_or(&1)) < u64::from(max) {
        for m in [2, 5, 10] {
            let r = step * m;
            if r > u64::from(u32::MAX) {
                return ranks;
            }
            ranks.push(r as u32);
            if r >= u64::from(max) {
                return ranks;
            }
        }
        step *= 10;
    }
    ranks
}

/// The share of positions whose base rank is at most each rank of
/// [`cdf_ranks`] (up to the largest rank seen).
pub fn rank_cdf(examples: &[ExampleResult], side: &SideOf) -> Vec<CdfPoint> {
    let mut ranks: Vec<u32> = examples
        .iter()
        .flat_map(|e| side(e).iter().map(|p| p.base_rank))
        .collect();
    if ranks.is_empty() {
        return Vec::new();
    }
    ranks.sort_unstable();
    let total = ranks.len() as f64;
    let max = ranks[ranks.len() - 1];
    cdf_ranks(max)
        .into_iter()
        .map(|rank| CdfPoint {
            rank,
            share: ranks.partition_point(|&r| r <= rank) as f64 / total,
        })
        .collect()
}

fn percent(e: &Estimate) -> String {
    crate::format::percent_with_interval(e).unwrap_or_else(|| "-".into())
}

/// The multi-side, stage, position-split and group parts of the terminal
/// summary (empty where the run has none of them).
pub fn render_text(summary: &aligntds_formats::summary::Summary) -> String {
    let mut out = String::new();
    let a = &summary.aggregates;
    if let Some(split) = a.position_splits.iter().find(|s| s.first == 5) {
        out.push_str(&format!(
            "  shifted in the first {} tokens {} vs the rest {}\n",
            split.first,
            percent(&split.head.shifted),
            percent(&split.rest.shifted)
        ));
    }
    if let Some(g) = &a.groups {
        out.push_str(&format!("  by {}:\n", g.field));
        for group in g.groups.iter().take(20) {
            out.push_str(&format!(
                "    {:<24} {:>3} examples  shifted {}\n",
                group.value,
                group.stats.examples,
                percent(&group.stats.shifted)
            ));
        }
    }
    if !summary.sides.is_empty() {
        out.push_str(
            "  reference sides (unshifted / marginal / shifted, mean KL(aligned || side)):\n",
        );
        for side in &summary.sides {
            let s = &side.aggregates;
            let shifted = s.intervals.as_ref().map_or(String::new(), |i| {
                format!(
                    " [{:.1}, {:.1}]",
                    i.shifted.low * 100.0,
                    i.shifted.high * 100.0
                )
            });
            out.push_str(&format!(
                "    {:<12} {:>5.1} / {:>5.1} / {:>5.1} %{shifted}  KL {:.4}  ({}, {} context)\n",
                side.name,
                s.ratios.unshifted * 100.0,
                s.ratios.marginal * 100.0,
                s.ratios.shifted * 100.0,
                s.kl_aligned_base.mean,
                side.model,
                side.context.kind.as_str()
            ));
        }
    }
    if let Some(stages) = &summary.stages {
        for bar in &stages.by_bar {
            let shares: Vec<String> = bar
                .stages
                .iter()
                .map(|s| format!("{} {:.1} %", s.stage, s.share * 100.0))
                .collect();
            let what = if bar.max_rank == 1 {
                "top-1".to_string()
            } else {
                format!("rank <= {}", bar.max_rank)
            };
            out.push_str(&format!("  settles ({what}): {}\n", shares.join(", ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::position;

    #[test]
    fn the_cdf_steps_1_to_10_then_1_2_5() {
        assert_eq!(cdf_ranks(1), (1..=10).collect::<Vec<_>>());
        assert_eq!(
            cdf_ranks(180)[10..],
            [20, 50, 100, 200],
            "stops at the first rank reaching the largest seen"
        );
        assert_eq!(*cdf_ranks(u32::MAX).last().unwrap(), 2_000_000_000);
        let mut e = crate::testing::example(0, 1);
        e.positions = [1, 1, 2, 7, 40]
            .iter()
            .map(|&r| position(0, r, 0.0))
            .collect();
        let cdf = rank_cdf(&[e], &|e| &e.positions);
        let at = |rank| cdf.iter().find(|p| p.rank == rank).unwrap().share;
        // Counted by hand: 2 of 5 at rank 1, 3 by 2, 4 by 7..20, all by 50.
        assert_eq!(
            (at(1), at(2), at(6), at(7), at(20), at(50)),
            (0.4, 0.6, 0.6, 0.8, 0.8, 1.0)
        );
        assert_eq!(cdf.last().unwrap().rank, 50);
    }

    #[test]
    fn splits_and_groups_count_by_hand() {
        // Example a: ranks 5, 1, 1, 2 at positions 0..4; example b: 1, 9, 1.
        let mut a = crate::testing::example(0, 1);
        a.positions = [(5, 1.0), (1, 0.0), (1, 0.0), (2, 0.5)]
            .iter()
            .enumerate()
            .map(|(t, &(r, kl))| position(t as u32, r, kl))
            .collect();
        a.example.fields.insert("category".into(), "safety".into());
        let mut b = crate::testing::example(1, 1);
        b.positions = [(1, 0.0), (9, 2.0), (1, 0.0)]
            .iter()
            .enumerate()
            .map(|(t, &(r, kl))| position(t as u32, r, kl))
            .collect();
        let examples = vec![a, b];
        let splits = position_splits(&examples, &|e| &e.positions);
        let first = &splits[0];
        assert_eq!(first.first, 1);
        // Heads: a's rank 5 (shifted) and b's rank 1: half shifted.
        assert_eq!((first.head.positions, first.head.examples), (2, 2));
        assert_eq!(first.head.shifted.value, 0.5);
        assert_eq!(first.head.kl_aligned_base.value, 0.5);
        // Rest: 1, 1, 2 and 9, 1: one shifted of five, one marginal.
        assert_eq!(first.rest.positions, 5);
        assert_eq!(
            (first.rest.shifted.value, first.rest.marginal.value),
            (0.2, 0.2)
        );
        assert!(first.rest.shifted.low <= 0.2 && 0.2 <= first.rest.shifted.high);
        // Every answer is shorter than 5: the longer heads compare nothing and are left out.
        assert_eq!(splits.len(), 1);
        let g = groups(&examples, &|e| &e.positions, "category");
        assert_eq!(g.groups.len(), 2);
        assert_eq!(
            (g.groups[0].value.as_str(), g.groups[0].stats.positions),
            ("safety", 4)
        );
        assert_eq!(g.groups[0].stats.shifted.value, 0.25);
        assert_eq!(
            (g.groups[1].value.as_str(), g.groups[1].stats.positions),
            (NO_VALUE, 3)
        );
        assert!((g.groups[1].stats.shifted.value - 1.0 / 3.0).abs() < 1e-12);
    }
}
