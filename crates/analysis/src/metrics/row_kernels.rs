//! The per-position work over two whole log-distributions, fused: one pass
//! for the divergences and entropies (vectorised, f64 lanes), one streaming
//! pass per side for its top-k. `metrics.rs` keeps the plain definitions they
//! are tested against.

use aligntds_engine::math::{exp_f32, ln_f32};

const LANES: usize = 8;

/// KL both ways, Jensen-Shannon and both entropies (nats), from log-probabilities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Divergences {
    pub kl_ab: f64,
    pub kl_ba: f64,
    pub js: f64,
    pub entropy_a: f64,
    pub entropy_b: f64,
}

/// Per-element terms: [KL(a||b), KL(b||a), JS, -H(a), -H(b)] contributions.
/// A side with probability 0 (-inf) contributes nothing of its own terms.
#[inline(always)]
fn terms(la: f32, lb: f32) -> [f32; 5] {
    let (pa, pb) = (exp_f32(la), exp_f32(lb));
    let (fa, fb) = (la > f32::NEG_INFINITY, lb > f32::NEG_INFINITY);
    let lm = ln_f32(0.5 * (pa + pb));
    let pick = |keep: bool, x: f32| if keep { x } else { 0.0 };
    [
        pick(fa, pa * (la - lb)),
        pick(fb, pb * (lb - la)),
        pick(fa, 0.5 * pa * (la - lm)) + pick(fb, 0.5 * pb * (lb - lm)),
        pick(fa, pa * la),
        pick(fb, pb * lb),
    ]
}

aligntds_engine::widest!(
    /// The fused divergence pass, compiled for the widest vectors this CPU has.
    pub fn divergences(a: &[f32], b: &[f32]) -> Divergences = divergences_kernel
);

#[inline(always)]
fn divergences_kernel(a: &[f32], b: &[f32]) -> Divergences {
    let mut acc = [[0f64; LANES]; 5];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (xa, xb) in ca.zip(cb) {
        for i in 0..LANES {
            let t = terms(xa[i], xb[i]);
            for (lane, v) in acc.iter_mut().zip(t) {
                lane[i] += v as f64;
            }
        }
    }
    let mut sums = acc.map(|lanes| lanes.iter().sum::<f64>());
    for (&la, &lb) in ra.iter().zip(rb) {
        for (s, v) in sums.iter_mut().zip(terms(la, lb)) {
            *s += v as f64;
        }
    }
    Divergences {
        kl_ab: sums[0],
        kl_ba: sums[1],
        js: sums[2].max(0.0),
        entropy_a: -sums[3],
        entropy_b: -sums[4],
    }
}

/// The k most probable ids, most probable first, ties to the lower id: one
/// pass that skips every 16-wide block whose maximum cannot enter the list.
pub fn top_k(row: &[f32], k: usize) -> Vec<u32> {
    let k = k.min(row.len());
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
    if k == 0 {
        return Vec::new();
    }
    let mut floor = f32::NEG_INFINITY;
    const BLOCK: usize = 16;
    for (b, block) in row.chunks(BLOCK).enumerate() {
        if best.len() == k {
            let max = block
                .iter()
                .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
            if max <= floor {
                continue;
            }
        }
        for (j, &x) in block.iter().enumerate() {
            if best.len() == k && x <= floor {
                continue;
            }
            let id = (b * BLOCK + j) as u32;
            // Later ids lose ties, so an equal value goes after the ones already held.
            let at = best.partition_point(|&(v, _)| v >= x);
            best.insert(at, (x, id));
            best.truncate(k);
            if best.len() == k {
                floor = best[k - 1].0;
            }
        }
    }
    best.into_iter().map(|(_, id)| id).collect()
}

/// 1 + how many entries of `row` exceed each of `values` (ranks of several tokens in one pass).
pub fn ranks<const N: usize>(row: &[f32], values: [f32; N]) -> [u32; N] {
    let mut counts = [1u32; N];
    for &x in row {
        for (c, &v) in counts.iter_mut().zip(&values) {
            *c += u32::from(x > v);
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics;

    fn log_softmax(logits: &[f32]) -> Vec<f32> {
        let max = logits
            .iter()
            .fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
        let lse = max
            + logits
                .iter()
                .map(|&x| (x as f64 - max).exp())
                .sum::<f64>()
                .ln();
        logits.iter().map(|&x| (x as f64 - lse) as f32).collect()
    }

    fn rows(seed: u64, n: usize) -> (Vec<f32>, Vec<f32>) {
        let mut s = seed;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) * 16.0 - 8.0
        };
        let a: Vec<f32> = (0..n).map(|_| next()).collect();
        let b: Vec<f32> = a.iter().map(|&x| x + 0.7 * next()).collect();
        (log_softmax(&a), log_softmax(&b))
    }

    #[test]
    fn fused_divergences_match_the_definitions() {
        for (seed, n) in [(1, 49_152), (2, 1003), (3, 7)] {
            let (a, b) = rows(seed, n);
            let d = divergences(&a, &b);
            let close = |x: f64, want: f64| (x - want).abs() <= 1e-6 * want.abs().max(1e-3);
            assert!(
                close(d.kl_ab, metrics::kl(&a, &b)),
                "{} {}",
                d.kl_ab,
                metrics::kl(&a, &b)
            );
            assert!(close(d.kl_ba, metrics::kl(&b, &a)));
            assert!(
                close(d.js, metrics::js(&a, &b)),
                "{} {}",
                d.js,
                metrics::js(&a, &b)
            );
            assert!(close(d.entropy_a, metrics::entropy(&a)));
            assert!(close(d.entropy_b, metrics::entropy(&b)));
        }
        // Zero probabilities: P = 0 terms vanish, P > 0 with Q = 0 is infinite.
        let p = [0.5f32.ln(), 0.5f32.ln(), f32::NEG_INFINITY];
        let q = [0.25f32.ln(), 0.25f32.ln(), 0.5f32.ln()];
        let d = divergences(&p, &q);
        assert!((d.kl_ab - 2f64.ln()).abs() < 1e-6);
        assert_eq!(d.kl_ba, f64::INFINITY);
        assert!((d.js - metrics::js(&p, &q)).abs() < 1e-6);
        assert!((d.entropy_a - 2f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn streaming_top_k_matches_a_full_sort_with_ties_to_the_lower_id() {
        let (a, _) = rows(9, 5000);
        let mut tied = a.clone();
        for i in (0..tied.len()).step_by(7) {
            tied[i] = 0.0;
        }
        for row in [&a, &tied] {
            let mut ids: Vec<u32> = (0..row.len() as u32).collect();
            ids.sort_by(|&x, &y| row[y as usize].total_cmp(&row[x as usize]).then(x.cmp(&y)));
            for k in [1, 10, 30] {
                assert_eq!(top_k(row, k), ids[..k].to_vec());
            }
        }
        assert_eq!(top_k(&[1.0, 2.0], 5), vec![1, 0]);
    }

    #[test]
    fn ranks_count_strictly_better_entries() {
        assert_eq!(ranks(&[0.1, 0.5, 0.5, 0.2], [0.5, 0.2, 0.05]), [1, 3, 5]);
    }
}
