//! Per-position TDS metrics over two next-token distributions: full
//! log-distributions (exact; sums over the vocabulary in f64) or top-k views
//! (what inference servers return: ranks, categories, log-ratio and top lists
//! stay exact, divergences and entropies become lower bounds).

pub mod row_kernels;

pub use aligntds_formats::summary::{Category, Thresholds};

/// 1 + the number of tokens strictly more probable than `token`: ties share the best rank.
pub fn rank(row: &[f32], token: u32) -> u32 {
    let x = row[token as usize];
    1 + row.iter().filter(|&&y| y > x).count() as u32
}

/// KL(P || Q) from log-probabilities; terms with P = 0 contribute 0, P > 0 with Q = 0 gives infinity.
pub fn kl(log_p: &[f32], log_q: &[f32]) -> f64 {
    log_p
        .iter()
        .zip(log_q)
        .map(|(&lp, &lq)| {
            if lp == f32::NEG_INFINITY {
                0.0
            } else {
                (lp as f64).exp() * (lp as f64 - lq as f64)
            }
        })
        .sum()
}

/// Jensen-Shannon divergence (natural log; at most ln 2).
pub fn js(log_p: &[f32], log_q: &[f32]) -> f64 {
    let mut total = 0.0;
    for (&lp, &lq) in log_p.iter().zip(log_q) {
        let (p, q) = ((lp as f64).exp(), (lq as f64).exp());
        let m = 0.5 * (p + q);
        if m == 0.0 {
            continue;
        }
        let lm = m.ln();
        if p > 0.0 {
            total += 0.5 * p * (lp as f64 - lm);
        }
        if q > 0.0 {
            total += 0.5 * q * (lq as f64 - lm);
        }
    }
    total.max(0.0)
}

/// Shannon entropy (nats).
pub fn entropy(log_p: &[f32]) -> f64 {
    -log_p
        .iter()
        .filter(|&&lp| lp > f32::NEG_INFINITY)
        .map(|&lp| (lp as f64).exp() * lp as f64)
        .sum::<f64>()
}

/// The k most probable token ids, most probable first; ties go to the lower id.
pub fn top_k(row: &[f32], k: usize) -> Vec<u32> {
    crate::metrics::row_kernels::top_k(row, k)
}

/// The original AlignTDS's metrics (src/compute_dist_diff.py, src/demo/generate_html.py):
/// each side keeps its top-30 tokens; p~ is the softmax over those 30 only; lists are cut to 10.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CompatMetrics {
    pub kl_at_k: f64,
    pub jaccard_at_k: f64,
    pub ws_at_k: f64,
    /// 0-based position of the aligned top-1 token in the base top-10, 10 when absent.
    pub top_rank_at_k: u32,
}

pub const COMPAT_KEEP: usize = 30;
pub const COMPAT_K: usize = 10;

/// Top-`COMPAT_KEEP` ids of a row with p~ (softmax over those logits alone), cut to `COMPAT_K`.
fn truncated(row: &[f32]) -> Vec<(u32, f64)> {
    truncated_from(row, &top_k(row, COMPAT_KEEP))
}

/// As [`truncated`], given the row's top ids (at least `COMPAT_KEEP` of them when the row has that many).
fn truncated_from(row: &[f32], top: &[u32]) -> Vec<(u32, f64)> {
    let ids = &top[..top.len().min(COMPAT_KEEP)];
    let max = ids.first().map_or(0.0, |&i| row[i as usize] as f64);
    let norm: f64 = ids
        .iter()
        .map(|&i| (row[i as usize] as f64 - max).exp())
        .sum();
    ids.iter()
        .take(COMPAT_K)
        .map(|&i| (i, (row[i as usize] as f64 - max).exp() / norm))
        .collect()
}

/// Computes the compatibility metrics from two top lists with their p~ (already cut to k).
pub fn compat_from_lists(aligned: &[(u32, f64)], base: &[(u32, f64)]) -> CompatMetrics {
    let find = |list: &[(u32, f64)], id: u32| list.iter().find(|(t, _)| *t == id).map(|(_, p)| *p);
    let mut kl_at_k = 0.0;
    let mut ws = 0.0;
    let mut shared = 0usize;
    for &(id, pb) in base {
        if let Some(pa) = find(aligned, id) {
            kl_at_k += pb * (pb / pa).ln();
            ws += pb * pa;
            shared += 1;
        }
    }
    let union = aligned.len() + base.len() - shared;
    let top_rank_at_k = aligned
        .first()
        .and_then(|(top, _)| base.iter().position(|(t, _)| t == top))
        .unwrap_or(COMPAT_K) as u32;
    CompatMetrics {
        kl_at_k,
        jaccard_at_k: if union == 0 {
            0.0
        } else {
            shared as f64 / union as f64
        },
        ws_at_k: ws,
        top_rank_at_k,
    }
}

pub fn compat(aligned_row: &[f32], base_row: &[f32]) -> CompatMetrics {
    compat_from_lists(&truncated(aligned_row), &truncated(base_row))
}

/// Everything computed for one answer position.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PositionMetrics {
    pub aligned_logprob: f32,
    pub aligned_rank: u32,
    pub base_logprob: f32,
    pub base_rank: u32,
    pub category: Category,
    /// Exact over full distributions, lower bounds from top-k views.
    pub kl_aligned_base: Option<f64>,
    pub kl_base_aligned: Option<f64>,
    pub js: Option<f64>,
    pub aligned_entropy: Option<f64>,
    pub base_entropy: Option<f64>,
    pub log_ratio: f64,
    pub top1_agree: bool,
    /// None when the aligned top-1 is outside the base side's top-k view.
    pub aligned_top1_base_rank: Option<u32>,
    pub aligned_top_ids: Vec<u32>,
    pub aligned_top_logprobs: Vec<f32>,
    pub base_top_ids: Vec<u32>,
    pub base_top_logprobs: Vec<f32>,
    /// None when a side's view holds fewer than the original's 30 tokens.
    pub compat: Option<CompatMetrics>,
    /// Both rows were full distributions (divergences and entropies exact).
    pub full_vocabulary: bool,
}

/// All metrics for the answer token `token` given both sides' log-distributions.
pub fn compare(
    aligned: &[f32],
    base: &[f32],
    token: u32,
    top: usize,
    thresholds: Thresholds,
) -> PositionMetrics {
    // One top list per side serves both the top-k output and the original's top-30 metrics.
    let keep = top.max(1).max(COMPAT_KEEP);
    let aligned_list = top_k(aligned, keep);
    let base_list = top_k(base, keep);
    let n = top.max(1).min(aligned_list.len());
    let (la, lb) = (aligned[token as usize], base[token as usize]);
    let a1 = aligned_list[0];
    let [aligned_rank] = crate::metrics::row_kernels::ranks(aligned, [la]);
    let [base_rank, aligned_top1_base_rank] =
        crate::metrics::row_kernels::ranks(base, [lb, base[a1 as usize]]);
    let d = crate::metrics::row_kernels::divergences(aligned, base);
    let side = |row: &[f32], list: &[u32]| -> (Vec<u32>, Vec<f32>) {
        let ids: Vec<u32> = list[..n.min(top)].to_vec();
        let logprobs = ids.iter().map(|&i| row[i as usize]).collect();
        (ids, logprobs)
    };
    let (aligned_top_ids, aligned_top_logprobs) = side(aligned, &aligned_list);
    let (base_top_ids, base_top_logprobs) = side(base, &base_list);
    PositionMetrics {
        aligned_logprob: la,
        aligned_rank,
        base_logprob: lb,
        base_rank,
        category: Category::of(base_rank, thresholds),
        kl_aligned_base: Some(d.kl_ab),
        kl_base_aligned: Some(d.kl_ba),
        js: Some(d.js),
        aligned_entropy: Some(d.entropy_a),
        base_entropy: Some(d.entropy_b),
        log_ratio: la as f64 - lb as f64,
        top1_agree: a1 == base_list[0],
        aligned_top1_base_rank: Some(aligned_top1_base_rank),
        aligned_top_ids,
        aligned_top_logprobs,
        base_top_ids,
        base_top_logprobs,
        compat: Some(compat_from_lists(
            &truncated_from(aligned, &aligned_list),
            &truncated_from(base, &base_list),
        )),
        full_vocabulary: true,
    }
}

/// A top-k view of one next-token distribution, as an inference server gives
/// it: the target token's exact log-probability and 1-based rank over the
/// whole vocabulary, and the k most probable tokens, most probable first.
#[derive(Debug, Clone, PartialEq)]
pub struct TopKRow {
    pub target_logprob: f32,
    pub target_rank: u32,
    pub top: Vec<(u32, f32)>,
}

impl TopKRow {
    /// The view of a full row that keeps its `k` best tokens.
    pub fn from_full(row: &[f32], target: u32, k: usize) -> Self {
        let target_logprob = row[target as usize];
        let [target_rank] = crate::metrics::row_kernels::ranks(row, [target_logprob]);
        let top = top_k(row, k.max(1))
            .into_iter()
            .map(|id| (id, row[id as usize]))
            .collect();
        Self {
            target_logprob,
            target_rank,
            top,
        }
    }

    fn logprob_of(&self, id: u32, target: u32) -> Option<f32> {
        if id == target {
            return Some(self.target_logprob);
        }
        self.top.iter().find(|(t, _)| *t == id).map(|(_, lp)| *lp)
    }
}

/// Terms of divergences over a partition of the vocabulary into single known
/// tokens and one cell for the rest. Coarse-graining never increases KL, JS or
/// entropy, so each value is a lower bound of the full-vocabulary one.
fn partition_mass(known: &[f64]) -> f64 {
    (1.0 - known.iter().sum::<f64>()).max(0.0)
}

fn kl_terms(p: &[f64], q: &[f64]) -> f64 {
    let mut total = 0.0;
    for (&pi, &qi) in p.iter().zip(q) {
        // A cell with no mass under p adds nothing; no mass under q (only the
        // rest cell, by rounding) is left out, which keeps the bound a bound.
        if pi > 0.0 && qi > 0.0 {
            total += pi * (pi / qi).ln();
        }
    }
    total.max(0.0)
}

fn js_terms(p: &[f64], q: &[f64]) -> f64 {
    let mut total = 0.0;
    for (&pi, &qi) in p.iter().zip(q) {
        let m = 0.5 * (pi + qi);
        if pi > 0.0 {
            total += 0.5 * pi * (pi / m).ln();
        }
        if qi > 0.0 {
            total += 0.5 * qi * (qi / m).ln();
        }
    }
    total.max(0.0)
}

fn entropy_terms(p: &[f64]) -> f64 {
    -p.iter()
        .filter(|&&x| x > 0.0)
        .map(|&x| x * x.ln())
        .sum::<f64>()
}

/// Entropy lower bound from one side's view: its known tokens and the rest.
fn entropy_bound(view: &TopKRow, target: u32) -> f64 {
    let mut p: Vec<f64> = view.top.iter().map(|(_, lp)| (*lp as f64).exp()).collect();
    if !view.top.iter().any(|(id, _)| *id == target) {
        p.push((view.target_logprob as f64).exp());
    }
    let rest = partition_mass(&p);
    p.push(rest);
    entropy_terms(&p)
}

/// The original's top-30 softmax list from a view that holds at least 30 tokens.
fn truncated_from_view(view: &TopKRow) -> Option<Vec<(u32, f64)>> {
    if view.top.len() < COMPAT_KEEP {
        return None;
    }
    let ids = &view.top[..COMPAT_KEEP];
    let max = ids[0].1 as f64;
    let norm: f64 = ids.iter().map(|(_, lp)| (*lp as f64 - max).exp()).sum();
    Some(
        ids.iter()
            .take(COMPAT_K)
            .map(|(id, lp)| (*id, (*lp as f64 - max).exp() / norm))
            .collect(),
    )
}

/// All metrics for the answer token `token` from two top-k views (either may
/// come from a full row through [`TopKRow::from_full`]).
pub fn compare_top_k(
    aligned: &TopKRow,
    base: &TopKRow,
    token: u32,
    top: usize,
    thresholds: Thresholds,
) -> PositionMetrics {
    let (la, lb) = (aligned.target_logprob, base.target_logprob);
    let a1 = aligned.top.first().map_or(token, |(id, _)| *id);
    let b1 = base.top.first().map_or(token, |(id, _)| *id);
    // Every token more probable than one in the k best is itself among them.
    let aligned_top1_base_rank = if a1 == token {
        Some(base.target_rank)
    } else {
        base.top
            .iter()
            .find(|(id, _)| *id == a1)
            .map(|(_, lp)| 1 + base.top.iter().filter(|(_, x)| x > lp).count() as u32)
    };
    // Cells: the target, every token both views know, and the rest.
    let mut known: Vec<u32> = vec![token];
    for (id, _) in &aligned.top {
        if *id != token && base.top.iter().any(|(b, _)| b == id) {
            known.push(*id);
        }
    }
    let masses = |view: &TopKRow| -> Vec<f64> {
        let mut p: Vec<f64> = known
            .iter()
            .map(|&id| (view.logprob_of(id, token).unwrap_or(f32::NEG_INFINITY) as f64).exp())
            .collect();
        let rest = partition_mass(&p);
        p.push(rest);
        p
    };
    let (pa, pb) = (masses(aligned), masses(base));
    let side = |view: &TopKRow| -> (Vec<u32>, Vec<f32>) {
        view.top
            .iter()
            .take(top.max(1))
            .map(|(id, lp)| (*id, *lp))
            .unzip()
    };
    let (aligned_top_ids, aligned_top_logprobs) = side(aligned);
    let (base_top_ids, base_top_logprobs) = side(base);
    PositionMetrics {
        aligned_logprob: la,
        aligned_rank: aligned.target_rank,
        base_logprob: lb,
        base_rank: base.target_rank,
        category: Category::of(base.target_rank, thresholds),
        kl_aligned_base: Some(kl_terms(&pa, &pb)),
        kl_base_aligned: Some(kl_terms(&pb, &pa)),
        js: Some(js_terms(&pa, &pb)),
        aligned_entropy: Some(entropy_bound(aligned, token)),
        base_entropy: Some(entropy_bound(base, token)),
        log_ratio: la as f64 - lb as f64,
        top1_agree: a1 == b1,
        aligned_top1_base_rank,
        aligned_top_ids,
        aligned_top_logprobs,
        base_top_ids,
        base_top_logprobs,
        compat: truncated_from_view(aligned)
            .zip(truncated_from_view(base))
            .map(|(a, b)| compat_from_lists(&a, &b)),
        full_vocabulary: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(p: &[f64]) -> Vec<f32> {
        p.iter()
            .map(|&x| {
                if x == 0.0 {
                    f32::NEG_INFINITY
                } else {
                    x.ln() as f32
                }
            })
            .collect()
    }

    #[test]
    fn ranks_count_strictly_better_tokens_and_ties_share() {
        let row = log(&[0.4, 0.2, 0.2, 0.1, 0.1]);
        assert_eq!(rank(&row, 0), 1);
        assert_eq!(rank(&row, 1), 2);
        assert_eq!(rank(&row, 2), 2);
        assert_eq!(rank(&row, 3), 4);
        let th = Thresholds::default();
        assert_eq!(Category::of(1, th), Category::Unshifted);
        assert_eq!(Category::of(3, th), Category::Marginal);
        assert_eq!(Category::of(4, th), Category::Shifted);
    }

    #[test]
    fn kl_and_js_match_hand_computed_values() {
        let p = log(&[0.5, 0.5]);
        let q = log(&[0.25, 0.75]);
        // KL(p||q) = 0.5 ln 2 + 0.5 ln(2/3)
        let want = 0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln();
        assert!((kl(&p, &q) - want).abs() < 1e-7);
        assert!(kl(&p, &p).abs() < 1e-12, "identical distributions give 0");
        assert!(js(&p, &p).abs() < 1e-12);
        // disjoint supports: JS = ln 2 exactly, KL infinite
        let a = log(&[1.0, 0.0]);
        let b = log(&[0.0, 1.0]);
        assert!((js(&a, &b) - 2f64.ln()).abs() < 1e-12);
        assert!(kl(&a, &b).is_infinite());
        // zero probability in P contributes nothing
        assert!((kl(&a, &p) - 2f64.ln()).abs() < 1e-7);
        // JS by hand: m = (0.375, 0.625)
        let m = [0.375f64, 0.625];
        let hand = 0.5 * (0.5 * (0.5f64 / m[0]).ln() + 0.5 * (0.5 / m[1]).ln())
            + 0.5 * (0.25 * (0.25f64 / m[0]).ln() + 0.75 * (0.75 / m[1]).ln());
        assert!((js(&p, &q) - hand).abs() < 1e-7);
        assert!(kl(&q, &p) >= 0.0 && js(&p, &q) <= 2f64.ln());
        assert!((entropy(&p) - 2f64.ln()).abs() < 1e-7);
    }

    #[test]
    fn top_k_orders_by_probability_then_id() {
        let row = log(&[0.1, 0.3, 0.3, 0.2, 0.1]);
        assert_eq!(top_k(&row, 3), vec![1, 2, 3]);
        assert_eq!(top_k(&row, 10), vec![1, 2, 3, 0, 4]);
    }

    #[test]
    fn compatibility_metrics_follow_the_original_formulas() {
        // Hand-made top-10 lists with p~ values.
        let aligned: Vec<(u32, f64)> = vec![(7, 0.5), (3, 0.2), (9, 0.1)];
        let base: Vec<(u32, f64)> = vec![(3, 0.4), (7, 0.3), (1, 0.2)];
        let m = compat_from_lists(&aligned, &base);
        // shared {3, 7}; union {7, 3, 9, 1}
        assert!((m.jaccard_at_k - 0.5).abs() < 1e-12);
        let kl = 0.4 * (0.4f64 / 0.2).ln() + 0.3 * (0.3f64 / 0.5).ln();
        assert!((m.kl_at_k - kl).abs() < 1e-12);
        assert!((m.ws_at_k - (0.4 * 0.2 + 0.3 * 0.5)).abs() < 1e-12);
        assert_eq!(
            m.top_rank_at_k, 1,
            "aligned top-1 (7) is second in the base list"
        );
        let absent = compat_from_lists(&[(42, 1.0)], &base);
        assert_eq!(absent.top_rank_at_k, 10);
        assert_eq!(absent.jaccard_at_k, 0.0);
    }

    #[test]
    fn truncated_softmax_renormalises_over_the_top_30_only() {
        // 40 tokens: p~ of the best must be its probability renormalised over the 30 best.
        let probs: Vec<f64> = (0..40).map(|i| 1.0 / (i as f64 + 1.0)).collect();
        let total: f64 = probs.iter().sum();
        let row = log(&probs.iter().map(|p| p / total).collect::<Vec<_>>());
        let list = truncated(&row);
        assert_eq!(list.len(), 10);
        let top30: f64 = probs[..30].iter().sum();
        assert!((list[0].1 - probs[0] / top30).abs() < 1e-6);
        assert_eq!(list[0].0, 0);
    }

    #[test]
    fn compare_combines_everything() {
        let aligned = log(&[0.7, 0.2, 0.1]);
        let base = log(&[0.2, 0.5, 0.3]);
        let m = compare(&aligned, &base, 0, 2, Thresholds::default());
        assert_eq!(m.base_rank, 3);
        assert_eq!(m.category, Category::Marginal);
        assert_eq!(m.aligned_rank, 1);
        assert!(!m.top1_agree);
        assert_eq!(m.aligned_top1_base_rank, Some(3));
        assert_eq!(m.aligned_top_ids, vec![0, 1]);
        assert_eq!(m.base_top_ids, vec![1, 2]);
        assert!((m.log_ratio - (0.7f64 / 0.2).ln()).abs() < 1e-6);
        assert!(m.kl_aligned_base.unwrap() > 0.0 && m.kl_base_aligned.unwrap() > 0.0);
        assert!(m.full_vocabulary);
    }

    /// A reproducible pair of peaked distributions over `n` tokens.
    fn pair(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let mut x = seed;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 11) as f64 / (1u64 << 53) as f64) * 6.0
        };
        let mut a: Vec<f64> = (0..n).map(|i| next() - i as f64 * 0.05).collect();
        let mut b: Vec<f64> = a.iter().map(|v| v + next() - 3.0).collect();
        for row in [&mut a, &mut b] {
            let max = row.iter().cloned().fold(f64::MIN, f64::max);
            let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            row.iter_mut().for_each(|v| *v -= lse);
        }
        let f = |r: &[f64]| r.iter().map(|&v| v as f32).collect();
        (f(&a), f(&b))
    }

    #[test]
    fn top_k_views_keep_ranks_exact_and_bound_the_divergences() {
        let th = Thresholds::default();
        for seed in 0..20u64 {
            let (a, b) = pair(200, seed);
            let token = (seed * 37 % 200) as u32;
            let full = compare(&a, &b, token, 10, th);
            for k in [5, 20, 40] {
                let view = compare_top_k(
                    &TopKRow::from_full(&a, token, k),
                    &TopKRow::from_full(&b, token, k),
                    token,
                    k.min(10),
                    th,
                );
                // Exact whatever k is.
                assert_eq!(view.base_rank, rank(&b, token));
                assert_eq!(view.aligned_rank, rank(&a, token));
                assert_eq!(view.category, full.category);
                assert_eq!(view.log_ratio, full.log_ratio);
                assert_eq!(view.top1_agree, full.top1_agree);
                assert_eq!(view.aligned_top_ids[..5], full.aligned_top_ids[..5]);
                assert_eq!(view.base_top_logprobs[..5], full.base_top_logprobs[..5]);
                if let Some(r) = view.aligned_top1_base_rank {
                    assert_eq!(Some(r), full.aligned_top1_base_rank);
                } else {
                    assert!(full.aligned_top1_base_rank.unwrap() > k as u32);
                }
                // Bounds, never above the exact value.
                let below = |bound: Option<f64>, exact: Option<f64>| {
                    let (bound, exact) = (bound.unwrap(), exact.unwrap());
                    assert!(
                        bound >= 0.0 && bound <= exact + 1e-6,
                        "seed {seed} k {k}: {bound} > {exact}"
                    );
                };
                below(view.kl_aligned_base, full.kl_aligned_base);
                below(view.kl_base_aligned, full.kl_base_aligned);
                below(view.js, full.js);
                below(view.aligned_entropy, full.aligned_entropy);
                below(view.base_entropy, full.base_entropy);
                assert!(!view.full_vocabulary);
                // The original's top-30 metrics need 30 tokens per side.
                assert_eq!(view.compat.is_some(), k >= COMPAT_KEEP);
                if k >= COMPAT_KEEP {
                    let (v, f) = (view.compat.unwrap(), full.compat.unwrap());
                    assert!(
                        (v.kl_at_k - f.kl_at_k).abs() < 1e-9 && v.top_rank_at_k == f.top_rank_at_k
                    );
                }
            }
            // A view of the whole vocabulary is the full computation.
            let whole = compare_top_k(
                &TopKRow::from_full(&a, token, 200),
                &TopKRow::from_full(&b, token, 200),
                token,
                10,
                th,
            );
            for (v, f) in [
                (whole.kl_aligned_base, full.kl_aligned_base),
                (whole.kl_base_aligned, full.kl_base_aligned),
                (whole.js, full.js),
                (whole.base_entropy, full.base_entropy),
            ] {
                let (v, f) = (v.unwrap(), f.unwrap());
                assert!((v - f).abs() <= 1e-5 * f.max(1e-3), "{v} vs {f}");
            }
        }
    }
}
