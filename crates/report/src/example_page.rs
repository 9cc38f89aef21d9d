//! One page per (run, example): the answer as coloured tokens, rendered by
//! templates/example.html (auto-escaped); the per-position details (top-10 lists, divergences) go to a
//! small data script beside it that the page loads through a script tag, so
//! pages stay small and work from file:// where fetch() is blocked.

use std::fmt::Write;

use serde::Serialize;

use aligntds_formats::summary::{Category, Thresholds};

use crate::run_data::{ExampleInfo, TokenRow};
use crate::{templates, ReportError};

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
    /// The compared sides' context kinds, in order.
    pub side_context_kinds: &'a [String],
    /// The run's category thresholds (a token the base chose in a handover
    /// arm is coloured by its aligned rank under them).
    pub thresholds: Thresholds,
    /// The run's handover policy, if it is a handover arm.
    pub handover: Option<&'a str>,
}

const CATEGORY: [&str; 3] = ["u", "m", "s"];

/// A token's classes after `t`: its category, then its cues (top-1
/// differs, chosen by the base, empty, newline). A token the base chose in
/// a handover arm has base rank 1 by construction (greedy), so it is
/// coloured by how the aligned model ranks it, as the live page does.
fn token_class(row: &TokenRow, thresholds: Thresholds) -> String {
    let by_base = row.chosen_by.as_deref() == Some("base");
    let category = if by_base {
        Category::of(row.aligned_rank, thresholds) as usize
    } else {
        row.category.min(2) as usize
    };
    let mut class = CATEGORY[category].to_string();
    if !row.top1_agree {
        class.push_str(" d");
    }
    if by_base {
        class.push_str(" by-base");
    }
    if row.token.is_empty() {
        class.push_str(" empty");
    } else if row.token.contains('\n') {
        class.push_str(" nl");
    }
    class
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

#[derive(Serialize)]
struct RunLink<'a> {
    name: &'a str,
    current: bool,
    href: Option<String>,
}

#[derive(Serialize)]
struct ContextView<'a> {
    id: String,
    label: String,
    kind: &'a str,
    chars: usize,
    text: &'a str,
}

#[derive(Serialize)]
struct Span<'a> {
    class: String,
    text: &'a str,
    /// The token's category letter under each reference side (base first);
    /// empty in a pair run.
    cats: String,
}

/// What templates/example.html shows.
#[derive(Serialize)]
struct ExampleView<'a> {
    id: &'a str,
    run_name: &'a str,
    data_src: String,
    prev: Option<String>,
    next: Option<String>,
    number: usize,
    total: usize,
    /// Links to this example in the other runs; empty for a single run.
    runs: Vec<RunLink<'a>>,
    query: &'a str,
    /// Aligned, base, then each compared side's.
    contexts: Vec<ContextView<'a>>,
    tokens: usize,
    source: &'a str,
    stop_reason: &'a str,
    counts: [u64; 3],
    mean_kl: String,
    spans: Vec<Span<'a>>,
    /// The reference sides a token's colour may follow (base first); empty in a pair run.
    sides: Vec<&'a str>,
    /// The handover policy of an arm's page (None: not a handover arm).
    handover: Option<&'a str>,
}

pub fn render_page(
    ctx: &PageContext,
    info: &ExampleInfo,
    rows: &[TokenRow],
    compared: &[crate::run_data::SideRows],
) -> Result<String, ReportError> {
    let href = |i: usize| format!("{}.html", stem(i));
    let runs = if ctx.run_names.len() > 1 {
        ctx.run_names
            .iter()
            .zip(&ctx.in_runs)
            .enumerate()
            .map(|(k, (name, index))| RunLink {
                name,
                current: k == ctx.run,
                href: index.map(|i| format!("../{}", page_path(k, i))),
            })
            .collect()
    } else {
        Vec::new()
    };
    let view = ExampleView {
        id: &info.id,
        run_name: &ctx.run_names[ctx.run],
        data_src: format!("../{}", data_path(ctx.run, ctx.index)),
        prev: ctx.index.checked_sub(1).map(href),
        next: (ctx.index + 1 < ctx.total).then(|| href(ctx.index + 1)),
        number: ctx.index + 1,
        total: ctx.total,
        runs,
        query: &info.query,
        contexts: [
            ContextView {
                id: "ctx-aligned".into(),
                label: "Aligned model's context".into(),
                kind: ctx.aligned_context_kind,
                chars: info.aligned_context.chars().count(),
                text: &info.aligned_context,
            },
            ContextView {
                id: "ctx-base".into(),
                label: "Base model's context".into(),
                kind: ctx.base_context_kind,
                chars: info.base_context.chars().count(),
                text: &info.base_context,
            },
        ]
        .into_iter()
        .chain(
            info.side_contexts
                .iter()
                .enumerate()
                .map(|(i, (name, text))| ContextView {
                    id: format!("ctx-side-{}", i + 1),
                    label: format!("Compared side {name}'s context"),
                    kind: ctx.side_context_kinds.get(i).map_or("", |k| k.as_str()),
                    chars: text.chars().count(),
                    text,
                }),
        )
        .collect(),
        tokens: rows.len(),
        source: &info.source,
        stop_reason: &info.stop_reason,
        counts: info.counts,
        mean_kl: format!("{:.4}", mean_kl(rows)),
        spans: rows
            .iter()
            .enumerate()
            .map(|(t, row)| Span {
                class: token_class(row, ctx.thresholds),
                text: &row.token,
                cats: if compared.is_empty() {
                    String::new()
                } else {
                    std::iter::once(row)
                        .chain(compared.iter().filter_map(|(_, r)| r.get(t)))
                        .map(|r| CATEGORY[r.category.min(2) as usize])
                        .collect()
                },
            })
            .collect(),
        sides: if compared.is_empty() {
            Vec::new()
        } else {
            std::iter::once(aligntds_formats::sides::BASE_SIDE)
                .chain(compared.iter().map(|(n, _)| n.as_str()))
                .collect()
        },
        handover: ctx.handover,
    };
    templates::render("example.html", &view)
}

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
/// and the texts of all ids in one dictionary; with compared sides, `sides`:
/// per side its name and per position [rank, logprob, KL(aligned || side)].
pub fn render_data(rows: &[TokenRow], compared: &[crate::run_data::SideRows]) -> String {
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
    let mut sides = String::new();
    for (i, (name, side_rows)) in compared.iter().enumerate() {
        let _ = write!(
            sides,
            "{}{{\"name\":{},\"pos\":[",
            if i > 0 { "," } else { "" },
            serde_json::to_string(name).unwrap_or_else(|_| "\"\"".into())
        );
        for (j, r) in side_rows.iter().enumerate() {
            let _ = write!(sides, "{}[{},", if j > 0 { "," } else { "" }, r.base_rank);
            push_num(&mut sides, r.base_logprob as f64, 4);
            sides.push(',');
            push_sci(&mut sides, r.kl_aligned_base);
            sides.push(']');
        }
        sides.push_str("]}");
    }
    format!("aligntds.receive({{\"v\":1,\"dict\":{{{dict_json}}},\"pos\":[{pos}],\"sides\":[{sides}]}});\n")
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
            chosen_by: None,
        }
    }

    fn page_context(names: &[String]) -> PageContext<'_> {
        PageContext {
            run_names: names,
            run: 0,
            index: 0,
            total: 2,
            in_runs: vec![Some(0), Some(5), None],
            aligned_context_kind: "chat",
            base_context_kind: "template",
            side_context_kinds: &[],
            thresholds: Thresholds::default(),
            handover: None,
        }
    }

    fn example_info() -> ExampleInfo {
        ExampleInfo {
            id: "x&y".into(),
            query: "<img src=x onerror=alert(1)>".into(),
            aligned_context: "</s><script>".into(),
            base_context: "&amp;".into(),
            source: "dataset".into(),
            stop_reason: "dataset".into(),
            counts: [0, 0, 1],
            side_contexts: Vec::new(),
        }
    }

    /// The markup inside the page's answer element.
    fn answer_markup(rows: &[TokenRow]) -> String {
        let names = vec!["run".to_string()];
        let page = render_page(&page_context(&names), &example_info(), rows, &[]).unwrap();
        let (_, rest) = page.split_once("aria-label=\"answer tokens\">").unwrap();
        rest.split_once("</div>").unwrap().0.to_string()
    }

    #[test]
    fn tokens_are_escaped_and_carry_their_category_and_cues() {
        for (token, escaped) in [
            ("<script>", "&lt;script&gt;"),
            ("</s>", "&lt;&#x2f;s&gt;"),
            (
                "<img src=x onerror=alert(1)>",
                "&lt;img src=x onerror=alert(1)&gt;",
            ),
            ("&amp;", "&amp;amp;"),
            ("\" onmouseover=\"x", "&quot; onmouseover=&quot;x"),
        ] {
            let html = answer_markup(&[row("a", 0, true), row(token, 2, false)]);
            assert_eq!(
                html,
                format!("<span class=\"t u\" data-t=\"0\" tabindex=\"-1\">a</span><span class=\"t s d\" data-t=\"1\" tabindex=\"-1\">{escaped}</span>")
            );
        }
        assert!(answer_markup(&[row("\n\n", 0, true)]).contains("class=\"t u nl\""));
        assert!(answer_markup(&[row("", 1, true)]).contains("class=\"t m empty\""));
    }

    #[test]
    fn tokens_the_base_chose_take_the_aligned_category_and_a_mark() {
        let mut by_base = row("b", 0, true);
        by_base.chosen_by = Some("base".into());
        by_base.aligned_rank = 5;
        let mut by_aligned = row("a", 2, true);
        by_aligned.chosen_by = Some("aligned".into());
        let t = Thresholds::default();
        assert_eq!(token_class(&by_base, t), "s by-base");
        by_base.aligned_rank = 2;
        assert_eq!(token_class(&by_base, t), "m by-base");
        assert_eq!(token_class(&by_aligned, t), "s");
        let wide = Thresholds {
            unshifted_max: 2,
            marginal_max: 9,
        };
        assert_eq!(token_class(&by_base, wide), "u by-base");
    }

    #[test]
    fn data_scripts_hold_the_positions_as_json() {
        let js = render_data(&[row("<script>", 2, false)], &[]);
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
    fn compared_sides_give_each_token_its_category_under_every_side() {
        let names = vec!["run".to_string()];
        let base = [row("a", 0, true), row("b", 2, false)];
        let mut plain = base.clone();
        plain[0].category = 1;
        plain[0].base_rank = 3;
        plain[1].category = 0;
        let compared = vec![("plain <b>".to_string(), plain.to_vec())];
        let page = render_page(&page_context(&names), &example_info(), &base, &compared).unwrap();
        assert!(page.contains("<select id=\"colour-by\"><option value=\"0\">base</option><option value=\"1\">plain &lt;b&gt;</option></select>"), "{page}");
        assert!(page.contains("data-t=\"0\" data-cats=\"um\""), "{page}");
        assert!(page.contains("data-t=\"1\" data-cats=\"su\""), "{page}");
        let js = render_data(&base, &compared);
        let json = js
            .trim_start_matches("aligntds.receive(")
            .trim_end()
            .trim_end_matches(");");
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["sides"][0]["name"], "plain <b>");
        assert_eq!(
            v["sides"][0]["pos"][0],
            serde_json::json!([3, -1.25, 0.125])
        );
        // A pair run's page has no selector and no per-side letters.
        let pair = render_page(&page_context(&names), &example_info(), &base, &[]).unwrap();
        assert!(!pair.contains("colour-by") && !pair.contains("data-cats"));
    }

    #[test]
    fn pages_link_neighbours_and_other_runs() {
        let names = vec!["a <run>".to_string(), "b".to_string(), "c".to_string()];
        let page = render_page(
            &page_context(&names),
            &example_info(),
            &[row("hi", 2, true)],
            &[],
        )
        .unwrap();
        assert!(page.contains("<span class=\"off\">‹ previous</span>"));
        assert!(page.contains("<a id=\"next\" rel=\"next\" href=\"e00002.html\">"));
        // minijinja escapes `/` too (`&#x2f;`); browsers read it back as `/`.
        assert!(page.contains("href=\"..&#x2f;r1&#x2f;e00006.html\">b</a>"));
        assert!(page.contains("title=\"not in this run\">c</span>"));
        assert!(page.contains("<strong aria-current=\"page\">a &lt;run&gt;</strong>"));
        assert!(page.contains("<pre class=\"query\">&lt;img src=x onerror=alert(1)&gt;</pre>"));
        assert!(page.contains("&lt;&#x2f;s&gt;&lt;script&gt;"));
        assert!(page.contains(">&amp;amp;</pre>"));
        assert!(page.contains("<code>x&amp;y</code>"));
        assert!(page.contains("data-data=\"..&#x2f;data&#x2f;r0&#x2f;e00001.js\""));
        // The only tags named script are the page's own.
        assert_eq!(page.matches("<script").count(), 2);
        assert!(!page.contains("<img"));
    }

    #[test]
    fn a_single_run_has_no_run_links_and_an_empty_answer_still_renders() {
        let names = vec!["only".to_string()];
        let page = render_page(&page_context(&names), &example_info(), &[], &[]).unwrap();
        assert!(!page.contains("class=\"runs\""));
        assert!(page.contains("aria-label=\"answer tokens\"></div>"));
        assert!(page.contains("0 tokens (dataset; stop: dataset)"));
    }
}
