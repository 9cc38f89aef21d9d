//! One page per (run, example): the answer as coloured tokens, rendered here
//! and escaped; the per-position details (top-10 lists, divergences) go to a
//! small data script beside it that the page loads through a script tag, so
//! pages stay small and work from file:// where fetch() is blocked.

use std::fmt::Write;

use crate::html::escape;
use crate::run_data::{ExampleInfo, TokenRow};

/// File stem of example `index` (0-based) of a run.
pub fn stem(index: usize) -> String {
    format!("e{:05}", index + 1)
}

/// Where an example page sits relative to the site root.
pub fn page_path(run: usize, index: usize) -> String {
    format!("r{run}/{}.html", stem(index))
}

pub fn data_path(run: usize, index: usize) -> String {
    format!("data/r{run}/{}.js", stem(index))
}

/// Everything about the page's neighbourhood: its run, its place, the same example in other runs.
pub struct PageContext<'a> {
    pub run_names: &'a [String],
    pub run: usize,
    pub index: usize,
    pub total: usize,
    /// For each run, this example's index there (None where the run lacks it).
    pub in_runs: Vec<Option<usize>>,
    pub aligned_context_kind: &'a str,
    pub base_context_kind: &'a str,
}

const CATEGORY: [(&str, &str); 3] = [("u", "unshifted"), ("m", "marginal"), ("s", "shifted")];

fn token_span(i: usize, row: &TokenRow) -> String {
    let mut class = format!("t {}", CATEGORY[row.category.min(2) as usize].0);
    if !row.top1_agree {
        class.push_str(" d");
    }
    if row.token.is_empty() {
        class.push_str(" empty");
    } else if row.token.contains('\n') {
        class.push_str(" nl");
    }
    format!(
        "<span class=\"{class}\" data-t=\"{i}\" tabindex=\"-1\">{}</span>",
        escape(&row.token)
    )
}

pub fn mean_kl(rows: &[TokenRow]) -> f64 {
    if rows.is_empty() {
        return f64::NAN;
    }
    // KL may be missing where a backend gave no divergences; those rows do not count.
    let known: Vec<f64> = rows
        .iter()
        .map(|r| r.kl_aligned_base)
        .filter(|k| k.is_finite())
        .collect();
    if known.is_empty() {
        return f64::NAN;
    }
    known.iter().sum::<f64>() / known.len() as f64
}

pub fn render_page(ctx: &PageContext, info: &ExampleInfo, rows: &[TokenRow]) -> String {
    let name = &ctx.run_names[ctx.run];
    let mut h = String::with_capacity(64 * rows.len() + 4096);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} · {} · aligntds</title><link rel=\"stylesheet\" href=\"../assets/report.css\"></head><body class=\"example\" data-data=\"../{}\">",
        escape(&info.id),
        escape(name),
        data_path(ctx.run, ctx.index)
    );
    let link = |id: &str, rel: &str, target: Option<usize>, label: &str| match target {
        Some(i) => format!(
            "<a id=\"{id}\" rel=\"{rel}\" href=\"{}.html\">{label}</a>",
            stem(i)
        ),
        None => format!("<span class=\"off\">{label}</span>"),
    };
    let _ = write!(
        h,
        "<nav class=\"top\"><a href=\"../index.html#examples\">← index</a> {} <span>example {} of {}</span> {} <span class=\"keys\">keys: <kbd>←</kbd> <kbd>→</kbd> tokens · <kbd>p</kbd> <kbd>n</kbd> examples</span></nav>",
        link("prev", "prev", ctx.index.checked_sub(1), "‹ previous"),
        ctx.index + 1,
        ctx.total,
        link("next", "next", (ctx.index + 1 < ctx.total).then_some(ctx.index + 1), "next ›"),
    );
    if ctx.run_names.len() > 1 {
        h.push_str("<nav class=\"runs\" aria-label=\"runs\">run: ");
        for (k, (run_name, idx)) in ctx.run_names.iter().zip(&ctx.in_runs).enumerate() {
            match idx {
                _ if k == ctx.run => {
                    let _ = write!(
                        h,
                        "<strong aria-current=\"page\">{}</strong>",
                        escape(run_name)
                    );
                }
                Some(i) => {
                    let _ = write!(
                        h,
                        "<a class=\"run-link\" href=\"../{}\">{}</a>",
                        page_path(k, *i),
                        escape(run_name)
                    );
                }
                None => {
                    let _ = write!(
                        h,
                        "<span class=\"off\" title=\"not in this run\">{}</span>",
                        escape(run_name)
                    );
                }
            }
        }
        h.push_str("</nav>");
    }
    let [u, m, s] = info.counts;
    let _ = write!(
        h,
        "<h1>Example <code>{}</code> <small>{}</small></h1><h2>Query</h2><pre class=\"query\">{}</pre>",
        escape(&info.id),
        escape(name),
        escape(&info.query)
    );
    for (id, label, kind, text) in [
        (
            "ctx-aligned",
            "Aligned model's context",
            ctx.aligned_context_kind,
            &info.aligned_context,
        ),
        (
            "ctx-base",
            "Base model's context",
            ctx.base_context_kind,
            &info.base_context,
        ),
    ] {
        let _ = write!(
            h,
            "<details><summary>{label} <small>({}, {} characters)</small></summary><pre id=\"{id}\" class=\"context\">{}</pre></details>",
            escape(kind),
            text.chars().count(),
            escape(text)
        );
    }
    let _ = write!(
        h,
        "<h2>Aligned answer</h2><p class=\"stats\">{} tokens ({}; stop: {}): <b>{u}</b> unshifted, <b>{m}</b> marginal, <b>{s}</b> shifted; mean KL(aligned ‖ base) {:.4}</p>",
        rows.len(),
        escape(&info.source),
        escape(&info.stop_reason),
        mean_kl(rows)
    );
    h.push_str(LEGEND);
    h.push_str(
        "<div class=\"layout\"><div id=\"answer\" class=\"answer\" aria-label=\"answer tokens\">",
    );
    for (i, row) in rows.iter().enumerate() {
        h.push_str(&token_span(i, row));
    }
    h.push_str("</div><aside id=\"panel\" aria-live=\"polite\"><p class=\"hint\">Click a token (or press <kbd>→</kbd>) to see both models' top-10 at that position.</p></aside></div>");
    h.push_str("<noscript><p>Scripts are off: the colours above still show each token's category; the details panel needs JavaScript.</p></noscript><script src=\"../assets/report.js\"></script></body></html>\n");
    h
}

const LEGEND: &str = "<p class=\"legend\"><span class=\"t u\">unshifted</span> base rank 1 · <span class=\"t m\">marginal</span> base rank 2-3 (dashed box) · <span class=\"t s\">shifted</span> base rank &gt; 3 (filled, bold) · <span class=\"t u d\">wavy underline</span> the two models' top-1 tokens differ · <span class=\"t u nl\"></span> newline</p>";

fn push_num(out: &mut String, x: f64, decimals: usize) {
    if x.is_finite() {
        let _ = write!(out, "{x:.decimals$}");
    } else {
        out.push_str("null");
    }
}

fn push_sci(out: &mut String, x: f64) {
    if x.is_finite() {
        let _ = write!(out, "{x:.4e}");
    } else {
        out.push_str("null");
    }
}

/// The page's data script: `aligntds.receive({...})` with, per position,
/// [token id, aligned rank, aligned logprob, base rank, base logprob,
///  KL(a||b), KL(b||a), JS, log-ratio, aligned entropy, base entropy,
///  aligned top ids, aligned top logprobs, base top ids, base top logprobs],
/// and the texts of all ids in one dictionary.
pub fn render_data(rows: &[TokenRow]) -> String {
    let mut dict: std::collections::BTreeMap<u32, &str> = Default::default();
    let mut pos = String::with_capacity(rows.len() * 256);
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            pos.push(',');
        }
        let _ = write!(pos, "[{},{},", r.token_id, r.aligned_rank);
        push_num(&mut pos, r.aligned_logprob as f64, 4);
        let _ = write!(pos, ",{},", r.base_rank);
        push_num(&mut pos, r.base_logprob as f64, 4);
        for x in [
            r.kl_aligned_base,
            r.kl_base_aligned,
            r.js,
            r.log_ratio,
            r.aligned_entropy,
            r.base_entropy,
        ] {
            pos.push(',');
            push_sci(&mut pos, x);
        }
        for top in [&r.aligned_top, &r.base_top] {
            pos.push_str(",[");
            for (j, (id, text, _)) in top.iter().enumerate() {
                let _ = write!(pos, "{}{id}", if j > 0 { "," } else { "" });
                dict.insert(*id, text);
            }
            pos.push_str("],[");
            for (j, (_, _, lp)) in top.iter().enumerate() {
                if j > 0 {
                    pos.push(',');
                }
                push_num(&mut pos, *lp as f64, 4);
            }
            pos.push(']');
        }
        pos.push(']');
    }
    let dict_json: String = dict
        .iter()
        .map(|(id, text)| {
            format!(
                "\"{id}\":{}",
                serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    format!("aligntds.receive({{\"v\":1,\"dict\":{{{dict_json}}},\"pos\":[{pos}]}});\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(token: &str, category: u8, top1_agree: bool) -> TokenRow {
        TokenRow {
            position: 0,
            token_id: 7,
            token: token.into(),
            category,
            aligned_rank: 1,
            base_rank: 1,
            aligned_logprob: -0.5,
            base_logprob: -1.25,
            kl_aligned_base: 0.125,
            kl_base_aligned: 0.25,
            js: 0.0625,
            log_ratio: 0.75,
            aligned_entropy: 1.0,
            base_entropy: 2.0,
            top1_agree,
            aligned_top: vec![(7, token.into(), -0.5), (9, "</script>".into(), -1.0)],
            base_top: vec![(9, "</script>".into(), -0.25), (7, token.into(), -1.25)],
        }
    }

    #[test]
    fn tokens_are_escaped_and_carry_their_category_and_cues() {
        for (token, escaped) in [
            ("<script>", "&lt;script&gt;"),
            ("</s>", "&lt;/s&gt;"),
            (
                "<img src=x onerror=alert(1)>",
                "&lt;img src=x onerror=alert(1)&gt;",
            ),
            ("&amp;", "&amp;amp;"),
        ] {
            let html = token_span(3, &row(token, 2, false));
            assert_eq!(
                html,
                format!("<span class=\"t s d\" data-t=\"3\" tabindex=\"-1\">{escaped}</span>")
            );
        }
        assert!(token_span(0, &row("\n\n", 0, true)).contains("class=\"t u nl\""));
        assert!(token_span(0, &row("", 1, true)).contains("class=\"t m empty\""));
    }

    #[test]
    fn data_scripts_hold_the_positions_as_json() {
        let js = render_data(&[row("<script>", 2, false)]);
        let json = js
            .strip_prefix("aligntds.receive(")
            .and_then(|s| s.strip_suffix(");\n"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["dict"]["9"], "</script>");
        assert_eq!(v["dict"]["7"], "<script>");
        // [id, aligned rank, aligned lp, base rank, base lp, KL ab, KL ba, JS, log-ratio, H a, H b, ...]
        let p = &v["pos"][0];
        assert_eq!(p[0], 7);
        assert_eq!(p[2].as_f64(), Some(-0.5));
        assert_eq!(p[4].as_f64(), Some(-1.25));
        assert_eq!(p[5].as_f64(), Some(0.125));
        assert_eq!(p[13], serde_json::json!([9, 7]));
        assert_eq!(p[14], serde_json::json!([-0.25, -1.25]));
    }

    #[test]
    fn pages_link_neighbours_and_other_runs() {
        let names = vec!["a <run>".to_string(), "b".to_string(), "c".to_string()];
        let ctx = PageContext {
            run_names: &names,
            run: 0,
            index: 0,
            total: 2,
            in_runs: vec![Some(0), Some(5), None],
            aligned_context_kind: "chat",
            base_context_kind: "template",
        };
        let info = ExampleInfo {
            id: "x&y".into(),
            query: "<img src=x onerror=alert(1)>".into(),
            aligned_context: "</s><script>".into(),
            base_context: "&amp;".into(),
            source: "dataset".into(),
            stop_reason: "dataset".into(),
            counts: [0, 0, 1],
        };
        let page = render_page(&ctx, &info, &[row("hi", 2, true)]);
        assert!(page.contains("<span class=\"off\">‹ previous</span>"));
        assert!(page.contains("<a id=\"next\" rel=\"next\" href=\"e00002.html\">"));
        assert!(page.contains("href=\"../r1/e00006.html\">b</a>"));
        assert!(page.contains("title=\"not in this run\">c</span>"));
        assert!(page.contains("a &lt;run&gt;"));
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(page.contains("&lt;/s&gt;&lt;script&gt;"));
        assert!(page.contains("&amp;amp;"));
        assert!(page.contains("data-data=\"../data/r0/e00001.js\""));
        // The only tags named script are the page's own.
        assert_eq!(page.matches("<script").count(), 1);
        assert!(!page.contains("<img"));
    }
}
