//! Per-position TDS metrics over two full next-token log-distributions.
//! Sums over the vocabulary accumulate in f64.

/// unshifted (base rank <= unshifted_max), marginal (<= marginal_max), shifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Unshifted,
    Marginal,
    Shifted,
}

impl Category {
    pub fn of(rank: u32, thresholds: Thresholds) -> Self {
        if rank <= thresholds.unshifted_max {
            Self::Unshifted
        } else if rank <= thresholds.marginal_max {
            Self::Marginal
        } else {
            Self::Shifted
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unshifted => "unshifted",
            Self::Marginal => "marginal",
            Self::Shifted => "shifted",
        }
    }
}

/// Rank thresholds of the categories (the paper's: 1 and 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Thresholds {
    pub unshifted_max: u32,
    pub marginal_max: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            unshifted_max: 1,
            marginal_max: 3,
        }
    }
}

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
    crate::row_kernels::top_k(row, k)
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
    pub kl_aligned_base: f64,
    pub kl_base_aligned: f64,
    pub js: f64,
    pub aligned_entropy: f64,
    pub base_entropy: f64,
    pub log_ratio: f64,
    pub top1_agree: bool,
    pub aligned_top1_base_rank: u32,
    pub aligned_top_ids: Vec<u32>,
    pub aligned_top_logprobs: Vec<f32>,
    pub base_top_ids: Vec<u32>,
    pub base_top_logprobs: Vec<f32>,
    pub compat: CompatMetrics,
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
    let [aligned_rank] = crate::row_kernels::ranks(aligned, [la]);
    let [base_rank, aligned_top1_base_rank] =
        crate::row_kernels::ranks(base, [lb, base[a1 as usize]]);
    let d = crate::row_kernels::divergences(aligned, base);
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
        kl_aligned_base: d.kl_ab,
        kl_base_aligned: d.kl_ba,
        js: d.js,
        aligned_entropy: d.entropy_a,
        base_entropy: d.entropy_b,
        log_ratio: la as f64 - lb as f64,
        top1_agree: a1 == base_list[0],
        aligned_top1_base_rank,
        aligned_top_ids,
        aligned_top_logprobs,
        base_top_ids,
        base_top_logprobs,
        compat: compat_from_lists(
            &truncated_from(aligned, &aligned_list),
            &truncated_from(base, &base_list),
        ),
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
        assert_eq!(m.aligned_top1_base_rank, 3);
        assert_eq!(m.aligned_top_ids, vec![0, 1]);
        assert_eq!(m.base_top_ids, vec![1, 2]);
        assert!((m.log_ratio - (0.7f64 / 0.2).ln()).abs() < 1e-6);
        assert!(m.kl_aligned_base > 0.0 && m.kl_base_aligned > 0.0);
    }
}
