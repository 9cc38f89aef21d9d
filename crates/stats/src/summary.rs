//! summary.json aggregates: category ratios, KL statistics as llama.cpp
//! reports them, rank histogram, curves along the answer, most shifted tokens.

use std::collections::HashMap;

use aligntds_formats::summary::{
    Aggregates, CategoryCounts, CategoryRatios, CurvePoint, Divergences, KlStats, Percentiles,
    RankBin, ResponseSources, ShiftedToken, Skipped, Summary,
};

use crate::describe::{percentile, Running};
use crate::record::{ExampleResult, SideOf};
use crate::resampling::{RESAMPLES, SEED};
use aligntds_formats::summary::Category;

/// Base-rank histogram bins (inclusive upper bounds), the last open-ended.
pub const RANK_BINS: &[(&str, u32)] = &[
    ("1", 1),
    ("2", 2),
    ("3", 3),
    ("4-5", 5),
    ("6-10", 10),
    ("11-20", 20),
    ("21-50", 50),
    ("51-100", 100),
    ("101-1000", 1000),
    (">1000", u32::MAX),
];

fn kl_stats(values: &mut [f64]) -> KlStats {
    let mut r = Running::default();
    values.iter().for_each(|&v| r.push(v));
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let s = r.stats();
    KlStats {
        mean: s.mean,
        se: s.se,
        std: s.std,
        count: s.count,
        percentiles: Percentiles::from_fn(|p| percentile(values, p)),
    }
}

#[derive(Default)]
struct CurveAccumulator {
    kl: Running,
    log2_rank: Running,
    base_prob: Running,
    shifted: Running,
    ranks: Vec<f64>,
}

impl CurveAccumulator {
    fn push(&mut self, kl: Option<f64>, rank: u32, base_logprob: f32, shifted: bool) {
        if let Some(kl) = kl {
            self.kl.push(kl);
        }
        self.log2_rank.push((rank as f64).log2());
        self.base_prob.push((base_logprob as f64).exp());
        self.shifted.push(if shifted { 1.0 } else { 0.0 });
        self.ranks.push(rank as f64);
    }

    fn count(&self) -> u64 {
        self.ranks.len() as u64
    }

    fn finish(&mut self, at: usize, by_position: bool) -> CurvePoint {
        self.ranks
            .sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        CurvePoint {
            position: by_position.then_some(at),
            decile: (!by_position).then_some(at),
            count: self.count(),
            kl_aligned_base: self.kl.stats(),
            base_rank_median: percentile(&self.ranks, 50.0),
            base_rank_log2: self.log2_rank.stats(),
            base_prob: self.base_prob.stats(),
            shifted_ratio: self.shifted.stats(),
        }
    }
}

/// The headline statistics' 95 % intervals, each a cluster bootstrap over
/// the analyzed examples' queries (see [`crate::resampling`]).
pub fn intervals(examples: &[ExampleResult]) -> aligntds_formats::summary::Intervals {
    intervals_of(examples, &|e| &e.positions)
}

fn intervals_of(examples: &[ExampleResult], side: &SideOf) -> aligntds_formats::summary::Intervals {
    use crate::resampling::{add_clusters, bootstrap, by_query, Cluster};
    // One cluster per query: its answers' sums.
    let per_example: Vec<[Cluster; 7]> = by_query(
        examples
            .iter()
            .filter(|e| !side(e).is_empty())
            .map(|e| (e.example.query_key(), crate::compare::clusters(side(e)))),
        add_clusters,
    );
    let bounds = |s: usize| {
        let clusters: Vec<Cluster> = per_example.iter().map(|c| c[s]).collect();
        let i = bootstrap(&clusters, RESAMPLES, 0.95, SEED);
        aligntds_formats::summary::Bounds {
            low: i.low,
            high: i.high,
        }
    };
    aligntds_formats::summary::Intervals {
        level: 0.95,
        resamples: RESAMPLES,
        seed: SEED,
        // In crate::compare::STATISTICS order.
        unshifted: bounds(0),
        marginal: bounds(1),
        shifted: bounds(2),
        kl_aligned_base: bounds(3),
        kl_base_aligned: bounds(4),
        same_top1_rate: bounds(5),
        mean_base_prob: bounds(6),
    }
}

pub fn aggregates(examples: &[ExampleResult], curve_positions: usize) -> Aggregates {
    aggregates_of(examples, &|e| &e.positions, curve_positions, None)
}

/// The aggregates of one reference side (`side` picks its positions of each
/// example), split by the record field `group_by` where one is named.
pub fn aggregates_of(
    examples: &[ExampleResult],
    side: &SideOf,
    curve_positions: usize,
    group_by: Option<&str>,
) -> Aggregates {
    let mut counts = CategoryCounts::default();
    let (mut kl_ab, mut kl_ba) = (Vec::new(), Vec::new());
    let mut same_top1 = Running::default();
    let mut base_prob = Running::default();
    let mut histogram = vec![0u64; RANK_BINS.len()];
    let mut by_position: Vec<CurveAccumulator> = (0..curve_positions)
        .map(|_| CurveAccumulator::default())
        .collect();
    let mut by_decile: Vec<CurveAccumulator> =
        (0..10).map(|_| CurveAccumulator::default()).collect();
    let mut tokens: HashMap<u32, (u64, u64)> = HashMap::new();
    let mut texts: HashMap<u32, &str> = HashMap::new();
    let mut divergences = Divergences::Exact;
    let mut skipped = Skipped::default();
    for e in examples {
        if let Some(reason) = &e.example.skipped {
            skipped.examples += 1;
            *skipped.by_reason.entry(reason.clone()).or_default() += 1;
        }
        let positions = side(e);
        let n = positions.len().max(1);
        for p in positions {
            let shifted = p.category == Category::Shifted;
            match p.category {
                Category::Unshifted => counts.unshifted += 1,
                Category::Marginal => counts.marginal += 1,
                Category::Shifted => counts.shifted += 1,
            }
            if !p.full_vocabulary {
                divergences = Divergences::LowerBound;
            }
            kl_ab.extend(p.kl_aligned_base);
            kl_ba.extend(p.kl_base_aligned);
            same_top1.push(if p.top1_agree { 1.0 } else { 0.0 });
            base_prob.push((p.base_logprob as f64).exp());
            let bin = RANK_BINS
                .iter()
                .position(|(_, hi)| p.base_rank <= *hi)
                .unwrap_or(RANK_BINS.len() - 1);
            histogram[bin] += 1;
            if let Some(point) = by_position.get_mut(p.position as usize) {
                point.push(p.kl_aligned_base, p.base_rank, p.base_logprob, shifted);
            }
            let decile = (p.position as usize * 10 / n).min(9);
            by_decile[decile].push(p.kl_aligned_base, p.base_rank, p.base_logprob, shifted);
            texts.entry(p.token_id).or_insert(p.token.as_str());
            let entry = tokens.entry(p.token_id).or_default();
            entry.1 += 1;
            if shifted {
                entry.0 += 1;
            }
        }
    }
    let total = counts.total();
    let ratio = |c: u64| {
        if total == 0 {
            0.0
        } else {
            c as f64 / total as f64
        }
    };
    let mut shifted_tokens: Vec<(u32, (u64, u64))> =
        tokens.into_iter().filter(|(_, (s, _))| *s > 0).collect();
    shifted_tokens.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
    let top_shifted_tokens = shifted_tokens
        .iter()
        .take(100)
        .map(|(id, (s, n))| ShiftedToken {
            token_id: *id,
            token: texts.get(id).copied().unwrap_or("").to_string(),
            shifted: *s,
            total: *n,
            shifted_ratio: *s as f64 / *n as f64,
        })
        .collect();
    let analyzed = |s: &str| {
        examples
            .iter()
            .filter(|e| e.example.skipped.is_none() && e.example.source == s)
            .count()
    };
    let curve = |points: &mut [CurveAccumulator], by_position: bool| -> Vec<CurvePoint> {
        points
            .iter_mut()
            .enumerate()
            .filter(|(_, p)| p.count() > 0)
            .map(|(i, p)| p.finish(i, by_position))
            .collect()
    };
    Aggregates {
        examples: examples.len() - skipped.examples,
        positions: total,
        counts,
        ratios: CategoryRatios {
            unshifted: ratio(counts.unshifted),
            marginal: ratio(counts.marginal),
            shifted: ratio(counts.shifted),
        },
        kl_aligned_base: kl_stats(&mut kl_ab),
        kl_base_aligned: kl_stats(&mut kl_ba),
        same_top1_rate: same_top1.stats().mean,
        mean_base_prob: base_prob.stats().mean,
        base_rank_histogram: RANK_BINS
            .iter()
            .zip(&histogram)
            .map(|((bin, _), c)| RankBin {
                bin: bin.to_string(),
                count: *c,
            })
            .collect(),
        curve_by_position: curve(&mut by_position, true),
        curve_by_decile: curve(&mut by_decile, false),
        top_shifted_tokens,
        response_sources: ResponseSources {
            dataset: analyzed("dataset"),
            generate: analyzed("generate"),
        },
        intervals: Some(intervals_of(examples, side)),
        position_splits: crate::splits::position_splits(examples, side),
        rank_cdf: crate::splits::rank_cdf(examples, side),
        groups: group_by.map(|field| crate::splits::groups(examples, side, field)),
        eos_replacements: examples.iter().filter(|e| e.example.eos_replaced).count(),
        skipped,
        divergences,
    }
}

/// Whose answers a run analyzed and how they were drawn, when that is not
/// the aligned side's greedy answer (the headline's meaning changes).
fn answers_text(settings: &aligntds_formats::summary::RecordedSettings) -> String {
    let mut out = String::new();
    if let Some(side) = &settings.answered_by {
        out.push_str(&if side == aligntds_formats::sides::BASE_SIDE {
            "answers by the base side: each position's category is the aligned side's rank of its token\n".to_string()
        } else {
            format!("answers by the {side} side: its positions' category is the aligned side's rank of its token, the other sides' their own rank\n")
        });
    }
    if let Some(s) = &settings.sampling {
        out.push_str(&format!("answers sampled: {}\n", sampling_words(s)));
    }
    out
}

/// How answers were drawn, in words (the report says it too).
pub fn sampling_words(s: &aligntds_formats::summary::SamplingSettings) -> String {
    format!(
        "temperature {}, top-p {}, top-k {}, seed {}{}",
        s.temperature,
        s.top_p,
        if s.top_k == 0 {
            "none".to_string()
        } else {
            s.top_k.to_string()
        },
        s.seed,
        if s.samples > 1 {
            format!(", {} per query (intervals resample queries)", s.samples)
        } else {
            String::new()
        }
    )
}

/// A readable terminal summary.
pub fn render_text(summary: &Summary) -> String {
    let a = &summary.aggregates;
    let pct = |c: Category| a.ratios.get(c) * 100.0;
    let mut out = answers_text(&summary.manifest.identity.settings);
    out += &format!(
        "{} examples, {} positions\n  unshifted {:.1} %  marginal {:.1} %  shifted {:.1} %   (counts {} / {} / {})\n",
        a.examples,
        a.positions,
        pct(Category::Unshifted),
        pct(Category::Marginal),
        pct(Category::Shifted),
        a.counts.unshifted,
        a.counts.marginal,
        a.counts.shifted
    );
    let bound = if a.divergences == Divergences::LowerBound {
        " (lower bounds: top-k views)"
    } else {
        ""
    };
    for (key, k) in [
        ("kl_aligned_base", &a.kl_aligned_base),
        ("kl_base_aligned", &a.kl_base_aligned),
    ] {
        out.push_str(&format!(
            "  {key}: mean {:.4} +- {:.4}, median {:.4}, 99 % {:.4}, max {:.4}{bound}\n",
            k.mean, k.se, k.percentiles.median, k.percentiles.p99, k.percentiles.max
        ));
    }
    out.push_str(&format!(
        "  same top-1: {:.1} %, mean base probability of the aligned token: {:.3}\n",
        a.same_top1_rate * 100.0,
        a.mean_base_prob
    ));
    if let Some(i) = &a.intervals {
        let pct = |b: &aligntds_formats::summary::Bounds| {
            format!("[{:.1}, {:.1}] %", b.low * 100.0, b.high * 100.0)
        };
        let samples = summary
            .manifest
            .identity
            .settings
            .sampling
            .map_or(1, |s| s.samples);
        out.push_str(&format!(
            "  {:.0} % intervals (bootstrap over {}, {} resamples): unshifted {}, marginal {}, shifted {}, mean KL(aligned || base) [{:.4}, {:.4}]\n",
            i.level * 100.0,
            if samples > 1 { "queries" } else { "examples" },
            i.resamples,
            pct(&i.unshifted),
            pct(&i.marginal),
            pct(&i.shifted),
            i.kl_aligned_base.low,
            i.kl_aligned_base.high
        ));
    }
    out.push_str(&format!(
        "  answers: {} from the data set, {} generated by the {} side ({} end-of-turn markers replaced by eos)\n",
        a.response_sources.dataset,
        a.response_sources.generate,
        summary
            .manifest
            .identity
            .settings
            .answered_by
            .as_deref()
            .unwrap_or(aligntds_formats::sides::ALIGNED_SIDE),
        a.eos_replacements
    ));
    if a.skipped.examples > 0 {
        let reasons: Vec<String> = a
            .skipped
            .by_reason
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        out.push_str(&format!(
            "  skipped {} records: {} (see examples.jsonl)\n",
            a.skipped.examples,
            reasons.join(", ")
        ));
    }
    let top: Vec<String> = a
        .top_shifted_tokens
        .iter()
        .take(12)
        .map(|t| format!("{:?} {}/{}", t.token, t.shifted, t.total))
        .collect();
    if !top.is_empty() {
        out.push_str(&format!("  most shifted tokens: {}\n", top.join(", ")));
    }
    out.push_str(&crate::splits::render_text(summary));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three sampled answers to each of two queries, two positions each:
    /// query `a`'s all shifted, query `b`'s all unshifted.
    fn sampled(same_query: bool) -> Vec<ExampleResult> {
        let mut out = Vec::new();
        for (query, rank) in [("a", 10), ("b", 1)] {
            for k in 0..3 {
                let mut e = crate::testing::example(0, 0);
                e.positions = (0..2)
                    .map(|t| crate::testing::position(t, rank, 0.1))
                    .collect();
                e.example.id = format!("{query}#{k}");
                if same_query {
                    e.example.query_id = Some(query.into());
                    e.example.sample = Some(k);
                }
                out.push(e);
            }
        }
        out
    }

    #[test]
    fn sampled_answers_are_resampled_by_query() {
        // Over queries: a draw of 2 takes `a` twice, once or never (1/4, 1/2,
        // 1/4): shifted share 1, 1/2 or 0, so the 95 % interval is [0, 1].
        let by_query = intervals(&sampled(true));
        assert_eq!((by_query.shifted.low, by_query.shifted.high), (0.0, 1.0));
        // Over the 6 answers as if independent: all 6 from one query has
        // probability 2/64 < 5 %, so the interval is the narrower [1/6, 5/6].
        let by_answer = intervals(&sampled(false));
        assert!(
            (by_answer.shifted.low - 1.0 / 6.0).abs() < 1e-12,
            "{by_answer:?}"
        );
        assert!(
            (by_answer.shifted.high - 5.0 / 6.0).abs() < 1e-12,
            "{by_answer:?}"
        );
        // The position splits (first position against the rest) cluster alike.
        let splits = crate::splits::position_splits(&sampled(true), &|e| &e.positions);
        let head = &splits[0].head;
        assert_eq!((head.examples, head.positions), (6, 6));
        assert_eq!((head.shifted.low, head.shifted.high), (0.0, 1.0));
        // And the stages: with a compared side ranking as the base does,
        // query `a`'s positions settle at the aligned side, `b`'s at the base.
        let staged: Vec<ExampleResult> = sampled(true)
            .into_iter()
            .map(|mut e| {
                e.compared = vec![aligntds_formats::positions::SidePositions {
                    side: "sft".into(),
                    positions: e.positions.clone(),
                }];
                e
            })
            .collect();
        let stages = crate::stages::stages(&staged, Default::default()).unwrap();
        let aligned = stages.by_bar[0]
            .stages
            .iter()
            .find(|s| s.stage == "aligned")
            .unwrap();
        assert_eq!(aligned.share, 0.5);
        assert_eq!((aligned.interval.low, aligned.interval.high), (0.0, 1.0));
    }

    #[test]
    fn intervals_resample_whole_examples_around_the_run_statistics() {
        let examples: Vec<ExampleResult> = (0..24)
            .map(|i| crate::testing::example(i, 20 + 7 * (i % 5)))
            .collect();
        let a = aggregates(&examples, 50);
        let i = a.intervals.clone().unwrap();
        assert_eq!((i.level, i.resamples, i.seed), (0.95, RESAMPLES, SEED));
        for (b, estimate) in [
            (i.unshifted, a.ratios.unshifted),
            (i.marginal, a.ratios.marginal),
            (i.shifted, a.ratios.shifted),
            (i.kl_aligned_base, a.kl_aligned_base.mean),
            (i.kl_base_aligned, a.kl_base_aligned.mean),
            (i.same_top1_rate, a.same_top1_rate),
            (i.mean_base_prob, a.mean_base_prob),
        ] {
            assert!(
                b.low < estimate && estimate < b.high,
                "{b:?} around {estimate}"
            );
            // An interval over 24 examples of a few dozen positions is no wider
            // than a few tens of per cent of the statistic.
            assert!(
                b.high - b.low < estimate.max(0.05),
                "{b:?} around {estimate}"
            );
        }
        // The same run gives the same intervals.
        assert_eq!(aggregates(&examples, 50).intervals, Some(i.clone()));
        // One example repeated: every draw is that example, so the width is zero.
        let same: Vec<ExampleResult> = (0..6).map(|_| examples[0].clone()).collect();
        let s = aggregates(&same, 50);
        let si = s.intervals.unwrap();
        assert_eq!(
            (si.shifted.low, si.shifted.high),
            (s.ratios.shifted, s.ratios.shifted)
        );
        // A run written before intervals existed reads without them.
        let golden =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/v1-run");
        let mut summary = Summary::read(&golden).unwrap();
        assert!(summary.aggregates.intervals.is_none());
        assert!(!render_text(&summary).contains("intervals"));
        summary.aggregates = a;
        let text = render_text(&summary);
        assert!(
            text.contains("95 % intervals (bootstrap over examples, 1000 resamples): unshifted ["),
            "{text}"
        );
    }
}
