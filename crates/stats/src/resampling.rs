//! Intervals and tests that respect how a study's numbers hang together: the
//! positions of one answer move together, so every statistic is resampled by
//! example (a cluster bootstrap), never by position. A statistic is a ratio
//! of sums over examples, `sum(numerator) / sum(denominator)`: the shifted
//! share is shifted positions over positions, mean KL is summed KL over
//! positions. Seeds are fixed, so an output is reproducible; the number of
//! resamples is part of every result.

/// Resamples behind every interval in summary.json, and their seed.
pub const RESAMPLES: usize = 1000;
pub const SEED: u64 = 0x0a11_9d75;

/// One example's contribution to a ratio-of-sums statistic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cluster {
    pub numerator: f64,
    pub denominator: f64,
}

impl Cluster {
    pub fn new(numerator: f64, denominator: f64) -> Self {
        Self {
            numerator,
            denominator,
        }
    }
}

/// One value per query, in the order queries first appear: the values of
/// the answers that share a key (several sampled answers of one query) added
/// up with `add`. The answers of one query move together, as the positions
/// of one answer do, so the bootstrap resamples queries (a run of one answer
/// per query has one value per key and is unchanged).
pub fn by_query<'k, T>(
    items: impl IntoIterator<Item = (&'k str, T)>,
    add: impl Fn(&mut T, T),
) -> Vec<T> {
    let mut slot: std::collections::HashMap<&'k str, usize> = Default::default();
    let mut out: Vec<T> = Vec::new();
    for (key, value) in items {
        match slot.get(key) {
            Some(&i) => add(&mut out[i], value),
            None => {
                slot.insert(key, out.len());
                out.push(value);
            }
        }
    }
    out
}

/// Adds one query's answers' clusters, statistic by statistic.
pub fn add_clusters<const N: usize>(total: &mut [Cluster; N], more: [Cluster; N]) {
    for (t, m) in total.iter_mut().zip(more) {
        t.numerator += m.numerator;
        t.denominator += m.denominator;
    }
}

/// A statistic with its percentile interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    /// The confidence level, e.g. 0.95.
    pub level: f64,
    pub resamples: usize,
    pub seed: u64,
}

/// SplitMix64: a small, fast, well-mixed generator whose stream is fixed by
/// its seed on every platform.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0), without modulo bias worth measuring at these sizes.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// `sum(numerator) / sum(denominator)`; NaN over nothing.
pub fn ratio(clusters: &[Cluster]) -> f64 {
    let (n, d) = clusters
        .iter()
        .fold((0.0, 0.0), |(n, d), c| (n + c.numerator, d + c.denominator));
    if d == 0.0 {
        f64::NAN
    } else {
        n / d
    }
}

fn interval(estimate: f64, mut draws: Vec<f64>, level: f64, seed: u64) -> Interval {
    draws.retain(|x| x.is_finite());
    draws.sort_by(|a, b| a.total_cmp(b));
    let tail = (1.0 - level) / 2.0 * 100.0;
    Interval {
        estimate,
        low: crate::describe::percentile(&draws, tail),
        high: crate::describe::percentile(&draws, 100.0 - tail),
        level,
        resamples: draws.len(),
        seed,
    }
}

/// The cluster bootstrap of a ratio of sums: `resamples` draws of as many
/// examples as there are, with replacement; the percentile interval at `level`.
pub fn bootstrap(clusters: &[Cluster], resamples: usize, level: f64, seed: u64) -> Interval {
    let mut rng = SplitMix64::new(seed);
    let n = clusters.len();
    let draws = (0..if n == 0 { 0 } else { resamples })
        .map(|_| {
            let (mut num, mut den) = (0.0, 0.0);
            for _ in 0..n {
                let c = clusters[rng.below(n)];
                num += c.numerator;
                den += c.denominator;
            }
            num / den
        })
        .collect();
    interval(ratio(clusters), draws, level, seed)
}

/// The paired cluster bootstrap of `ratio(a) - ratio(b)`, where `a[i]` and
/// `b[i]` are the same example under two runs or sides: each draw takes the
/// same examples for both.
pub fn paired_bootstrap(
    a: &[Cluster],
    b: &[Cluster],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Interval {
    assert_eq!(a.len(), b.len(), "paired statistics need the same examples");
    let mut rng = SplitMix64::new(seed);
    let n = a.len();
    let draws = (0..if n == 0 { 0 } else { resamples })
        .map(|_| {
            let mut sums = [0.0f64; 4];
            for _ in 0..n {
                let i = rng.below(n);
                sums[0] += a[i].numerator;
                sums[1] += a[i].denominator;
                sums[2] += b[i].numerator;
                sums[3] += b[i].denominator;
            }
            sums[0] / sums[1] - sums[2] / sums[3]
        })
        .collect();
    interval(ratio(a) - ratio(b), draws, level, seed)
}

/// The paired permutation test of `ratio(a) - ratio(b)`: under the null
/// hypothesis the two labels of each example are exchangeable, so each
/// example's pair is swapped or not. The p-value is the share of labellings
/// whose |difference| reaches the observed one: exact over all 2^n labellings
/// where that is at most `permutations`, else from `permutations` random ones
/// (counting the observed labelling, so never 0). Returns (p, labellings used).
pub fn paired_permutation(
    a: &[Cluster],
    b: &[Cluster],
    permutations: usize,
    seed: u64,
) -> (f64, usize) {
    assert_eq!(a.len(), b.len(), "paired statistics need the same examples");
    let n = a.len();
    let observed = (ratio(a) - ratio(b)).abs();
    // A tolerance for ties that differ only by summation order.
    let reaches = |d: f64| d.abs() >= observed - 1e-12 * observed.max(1.0);
    let difference = |swapped: &dyn Fn(usize) -> bool| {
        let mut sums = [0.0f64; 4];
        for i in 0..n {
            let (x, y) = if swapped(i) {
                (b[i], a[i])
            } else {
                (a[i], b[i])
            };
            sums[0] += x.numerator;
            sums[1] += x.denominator;
            sums[2] += y.numerator;
            sums[3] += y.denominator;
        }
        sums[0] / sums[1] - sums[2] / sums[3]
    };
    if n < 63 && (1u64 << n) <= permutations as u64 {
        let total = 1u64 << n;
        let hits = (0..total)
            .filter(|mask| reaches(difference(&|i| mask >> i & 1 == 1)))
            .count();
        return (hits as f64 / total as f64, total as usize);
    }
    let mut rng = SplitMix64::new(seed);
    let mut hits = 1; // the observed labelling
    for _ in 0..permutations {
        let flips: Vec<bool> = (0..n).map(|_| rng.next_u64() & 1 == 1).collect();
        if reaches(difference(&|i| flips[i])) {
            hits += 1;
        }
    }
    (hits as f64 / (permutations + 1) as f64, permutations + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clusters(pairs: &[(f64, f64)]) -> Vec<Cluster> {
        pairs.iter().map(|&(n, d)| Cluster::new(n, d)).collect()
    }

    #[test]
    fn examples_that_agree_give_a_zero_width_interval() {
        let c = clusters(&[(1.0, 4.0), (2.0, 8.0), (3.0, 12.0)]);
        let i = bootstrap(&c, 500, 0.95, 7);
        assert_eq!(
            (i.estimate, i.low, i.high, i.resamples),
            (0.25, 0.25, 0.25, 500)
        );
    }

    #[test]
    fn two_examples_resample_to_their_three_possible_ratios_in_binomial_shares() {
        // Draws of two from {1/1, 0/1}: ratio 1 (1/4), 1/2 (1/2), 0 (1/4).
        let c = clusters(&[(1.0, 1.0), (0.0, 1.0)]);
        let mut rng = SplitMix64::new(1);
        let mut counts = [0usize; 3];
        let trials = 40_000;
        for _ in 0..trials {
            let hits = (0..2).filter(|_| rng.below(2) == 0).count();
            counts[hits] += 1;
        }
        for (got, want) in counts.iter().zip([0.25, 0.5, 0.25]) {
            assert!(
                (*got as f64 / trials as f64 - want).abs() < 0.01,
                "{counts:?}"
            );
        }
        let i = bootstrap(&c, 4000, 0.95, 3);
        assert_eq!((i.estimate, i.low, i.high), (0.5, 0.0, 1.0));
        // A 40 % interval (30th to 70th percentile) lies inside the middle half, all 1/2.
        let i = bootstrap(&c, 4000, 0.4, 3);
        assert_eq!((i.low, i.high), (0.5, 0.5));
    }

    #[test]
    fn examples_weigh_by_their_positions() {
        // A ratio of sums, not a mean of ratios: (9 + 0) / (10 + 90) = 0.09.
        let c = clusters(&[(9.0, 10.0), (0.0, 90.0)]);
        assert_eq!(ratio(&c), 0.09);
        let i = bootstrap(&c, 2000, 0.95, 11);
        assert!(
            i.low >= 0.0 && i.high <= 0.9 && i.low < 0.09 && i.high > 0.09,
            "{i:?}"
        );
    }

    #[test]
    fn a_run_compared_with_itself_differs_by_zero_with_p_one() {
        let c = clusters(&[(3.0, 10.0), (1.0, 7.0), (0.0, 4.0), (5.0, 9.0)]);
        let i = paired_bootstrap(&c, &c, 1000, 0.95, 5);
        assert_eq!((i.estimate, i.low, i.high), (0.0, 0.0, 0.0));
        assert_eq!(paired_permutation(&c, &c, 10_000, 5), (1.0, 16));
    }

    #[test]
    fn the_exact_permutation_p_value_matches_the_hand_count() {
        // a = 3/3, 2/3, 1/3 shifted, b = 0 everywhere: observed difference 6/9.
        // Swapping a set S gives (sum outside S - sum in S) / 9 over the eight
        // sets: 6, 0, 2, 4, -4, -2, 0, -6, so |d| >= 6 twice: p = 2/8.
        let a = clusters(&[(3.0, 3.0), (2.0, 3.0), (1.0, 3.0)]);
        let b = clusters(&[(0.0, 3.0), (0.0, 3.0), (0.0, 3.0)]);
        assert_eq!(paired_permutation(&a, &b, 1000, 1), (0.25, 8));
        // Random labellings approach it (the observed one counted: never 0).
        let (p, used) = paired_permutation(&a, &b, 4, 1);
        assert_eq!(used, 5);
        assert!(p > 0.0);
        let (p, _) = paired_permutation(
            &clusters(&[(3.0, 3.0); 20]),
            &clusters(&[(0.0, 3.0); 20]),
            20_000,
            9,
        );
        // Only the two extreme labellings of 2^20 reach it: p = 1/20001 here.
        assert!((p - 1.0 / 20_001.0).abs() < 1e-9, "{p}");
    }

    #[test]
    fn a_clear_paired_difference_excludes_zero() {
        let a: Vec<Cluster> = (0..40)
            .map(|i| Cluster::new(5.0 + (i % 3) as f64, 20.0))
            .collect();
        let b: Vec<Cluster> = (0..40)
            .map(|i| Cluster::new(2.0 + (i % 2) as f64, 20.0))
            .collect();
        let i = paired_bootstrap(&a, &b, 2000, 0.95, 2);
        assert!(i.low > 0.0 && i.high > i.low, "{i:?}");
        assert!((i.estimate - (ratio(&a) - ratio(&b))).abs() < 1e-12);
        let (p, _) = paired_permutation(&a, &b, 2000, 2);
        assert!(p < 0.001, "{p}");
    }
}
