//! summary.json aggregates: category ratios, KL statistics as llama.cpp
//! reports them, rank histogram, curves along the answer, most shifted tokens.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::metrics::Category;
use crate::run::ExampleResult;
use crate::stats::{percentile, Running, PERCENTILES};

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

fn kl_stats(values: &mut [f64]) -> Value {
    let mut r = Running::default();
    values.iter().for_each(|&v| r.push(v));
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let s = r.stats();
    let pct: serde_json::Map<String, Value> = PERCENTILES
        .iter()
        .map(|(name, p)| (name.to_string(), json!(percentile(values, *p))))
        .collect();
    json!({"mean": s.mean, "se": s.se, "std": s.std, "count": s.count, "percentiles": pct})
}

#[derive(Default)]
struct CurvePoint {
    kl: Running,
    log2_rank: Running,
    base_prob: Running,
    shifted: Running,
    ranks: Vec<f64>,
}

impl CurvePoint {
    fn push(&mut self, kl: f64, rank: u32, base_logprob: f32, shifted: bool) {
        self.kl.push(kl);
        self.log2_rank.push((rank as f64).log2());
        self.base_prob.push((base_logprob as f64).exp());
        self.shifted.push(if shifted { 1.0 } else { 0.0 });
        self.ranks.push(rank as f64);
    }

    fn finish(&mut self, key: &str, at: usize) -> Value {
        self.ranks
            .sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        json!({
            key: at,
            "count": self.kl.stats().count,
            "kl_aligned_base": self.kl.stats(),
            "base_rank_median": percentile(&self.ranks, 50.0),
            "base_rank_log2": self.log2_rank.stats(),
            "base_prob": self.base_prob.stats(),
            "shifted_ratio": self.shifted.stats(),
        })
    }
}

/// The aggregates of summary.json.
pub fn aggregates(examples: &[ExampleResult], curve_positions: usize) -> Value {
    let mut counts = [0u64; 3];
    let (mut kl_ab, mut kl_ba) = (Vec::new(), Vec::new());
    let mut same_top1 = Running::default();
    let mut base_prob = Running::default();
    let mut histogram = vec![0u64; RANK_BINS.len()];
    let mut by_position: Vec<CurvePoint> = (0..curve_positions)
        .map(|_| CurvePoint::default())
        .collect();
    let mut by_decile: Vec<CurvePoint> = (0..10).map(|_| CurvePoint::default()).collect();
    let mut tokens: HashMap<u32, (u64, u64)> = HashMap::new();
    let mut texts: HashMap<u32, &str> = HashMap::new();
    for e in examples {
        let n = e.positions.len().max(1);
        for p in &e.positions {
            let m = &p.metrics;
            let shifted = m.category == Category::Shifted;
            counts[m.category as usize] += 1;
            kl_ab.push(m.kl_aligned_base);
            kl_ba.push(m.kl_base_aligned);
            same_top1.push(if m.top1_agree { 1.0 } else { 0.0 });
            base_prob.push((m.base_logprob as f64).exp());
            let bin = RANK_BINS
                .iter()
                .position(|(_, hi)| m.base_rank <= *hi)
                .unwrap_or(RANK_BINS.len() - 1);
            histogram[bin] += 1;
            if let Some(point) = by_position.get_mut(p.position as usize) {
                point.push(m.kl_aligned_base, m.base_rank, m.base_logprob, shifted);
            }
            let decile = (p.position as usize * 10 / n).min(9);
            by_decile[decile].push(m.kl_aligned_base, m.base_rank, m.base_logprob, shifted);
            texts.entry(p.token_id).or_insert(p.token.as_str());
            let entry = tokens.entry(p.token_id).or_default();
            entry.1 += 1;
            if shifted {
                entry.0 += 1;
            }
        }
    }
    let total: u64 = counts.iter().sum();
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
    let top_shifted: Vec<Value> = shifted_tokens
        .iter()
        .take(100)
        .map(|(id, (s, n))| json!({"token_id": id, "token": texts.get(id).copied().unwrap_or(""), "shifted": s, "total": n, "shifted_ratio": *s as f64 / *n as f64}))
        .collect();
    let sources = |s: &str| examples.iter().filter(|e| e.source.as_str() == s).count();
    json!({
        "examples": examples.len(),
        "positions": total,
        "counts": {"unshifted": counts[0], "marginal": counts[1], "shifted": counts[2]},
        "ratios": {"unshifted": ratio(counts[0]), "marginal": ratio(counts[1]), "shifted": ratio(counts[2])},
        "kl_aligned_base": kl_stats(&mut kl_ab),
        "kl_base_aligned": kl_stats(&mut kl_ba),
        "same_top1_rate": same_top1.stats().mean,
        "mean_base_prob": base_prob.stats().mean,
        "base_rank_histogram": RANK_BINS.iter().zip(&histogram).map(|((bin, _), c)| json!({"bin": bin, "count": c})).collect::<Vec<_>>(),
        "curve_by_position": by_position.iter_mut().enumerate().filter(|(_, p)| p.kl.stats().count > 0).map(|(i, p)| p.finish("position", i)).collect::<Vec<_>>(),
        "curve_by_decile": by_decile.iter_mut().enumerate().filter(|(_, p)| p.kl.stats().count > 0).map(|(i, p)| p.finish("decile", i)).collect::<Vec<_>>(),
        "top_shifted_tokens": top_shifted,
        "response_sources": {"dataset": sources("dataset"), "generate": sources("generate")},
        "eos_replacements": examples.iter().filter(|e| e.eos_replaced).count(),
    })
}

/// A readable terminal summary of summary.json.
pub fn render_text(summary: &Value) -> String {
    let a = &summary["aggregates"];
    let pct = |k: &str| a["ratios"][k].as_f64().unwrap_or(0.0) * 100.0;
    let mut out = format!(
        "{} examples, {} positions\n  unshifted {:.1} %  marginal {:.1} %  shifted {:.1} %   (counts {} / {} / {})\n",
        a["examples"], a["positions"], pct("unshifted"), pct("marginal"), pct("shifted"),
        a["counts"]["unshifted"], a["counts"]["marginal"], a["counts"]["shifted"]
    );
    for key in ["kl_aligned_base", "kl_base_aligned"] {
        let k = &a[key];
        out.push_str(&format!(
            "  {key}: mean {:.4} +- {:.4}, median {:.4}, 99 % {:.4}, max {:.4}\n",
            k["mean"].as_f64().unwrap_or(f64::NAN),
            k["se"].as_f64().unwrap_or(f64::NAN),
            k["percentiles"]["median"].as_f64().unwrap_or(f64::NAN),
            k["percentiles"]["99"].as_f64().unwrap_or(f64::NAN),
            k["percentiles"]["max"].as_f64().unwrap_or(f64::NAN)
        ));
    }
    out.push_str(&format!(
        "  same top-1: {:.1} %, mean base probability of the aligned token: {:.3}\n",
        a["same_top1_rate"].as_f64().unwrap_or(0.0) * 100.0,
        a["mean_base_prob"].as_f64().unwrap_or(0.0)
    ));
    out.push_str(&format!(
        "  answers: {} from the data set, {} generated by the aligned side ({} end-of-turn markers replaced by eos)\n",
        a["response_sources"]["dataset"], a["response_sources"]["generate"], a["eos_replacements"]
    ));
    let top: Vec<String> = a["top_shifted_tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .take(12)
        .map(|t| {
            format!(
                "{:?} {}/{}",
                t["token"].as_str().unwrap_or(""),
                t["shifted"],
                t["total"]
            )
        })
        .collect();
    if !top.is_empty() {
        out.push_str(&format!("  most shifted tokens: {}\n", top.join(", ")));
    }
    out
}
