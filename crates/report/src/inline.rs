//! One example's answer as a self-contained HTML fragment for a notebook
//! cell (Jupyter's, VS Code's, GitHub's `_repr_html_` output): every token a
//! span coloured by its category as the report colours it, with both models'
//! ranks and top-10s in its `title` (shown on hover). Notebook front ends
//! strip scripts and often `<style>` blocks from untrusted outputs, so the
//! fragment has neither: inline styles and titles only, every text escaped.

use std::fmt::Write;

use aligntds_formats::examples::ExampleLine;
use aligntds_formats::positions::{PositionRecord, TopToken};
use aligntds_formats::summary::{Category, Thresholds};

/// The report's colours (assets/report.css: `.t`, `.t.m`, `.t.s`).
fn style(category: Category) -> &'static str {
    match category {
        Category::Unshifted => "color:#0b4f8a",
        Category::Marginal => {
            "background:#fbe3b5;color:#5c3600;outline:1.5px dashed #9a5b00;outline-offset:-1.5px"
        }
        Category::Shifted => "background:#c2410c;color:#fff;font-weight:700",
    }
}

/// Escapes text for an element's content or a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn tops(label: &str, tops: &[TopToken]) -> String {
    let list: Vec<String> = tops
        .iter()
        .take(10)
        .map(|t| format!("{:?} {:.2}", t.text, t.logprob))
        .collect();
    format!("{label} top-{}: {}", list.len(), list.join(", "))
}

/// The hover text of one position: ranks, log-probabilities, who chose it, both top-10s.
fn title(p: &PositionRecord, chosen_by: Option<&str>, thresholds: Thresholds) -> String {
    let mut t = format!(
        "position {} · {:?} (id {})\naligned: rank {}, logprob {:.3}\nbase: rank {}, logprob {:.3} → {}",
        p.position,
        p.token,
        p.token_id,
        p.aligned_rank,
        p.aligned_logprob,
        p.base_rank,
        p.base_logprob,
        p.category.as_str()
    );
    if let Some(by) = chosen_by {
        let _ = write!(t, "\nchosen by {by}");
        if by == "base" {
            let under = Category::of(p.aligned_rank, thresholds);
            let _ = write!(t, " (coloured by its aligned rank: {})", under.as_str());
        }
    }
    if let Some(kl) = p.kl_aligned_base {
        let _ = write!(t, "\nKL(aligned ‖ base) {kl:.3}");
    }
    let _ = write!(
        t,
        "\n{}\n{}",
        tops("aligned", &p.aligned_top),
        tops("base", &p.base_top)
    );
    t
}

/// The answer of `example` as coloured token spans with a header line of
/// its counts. `chosen_by` (one per position, from a live pair) colours a
/// token the base side chose by its aligned rank, as the live page does:
/// its base rank is 1 by construction.
pub fn example_html(
    example: &ExampleLine,
    positions: &[PositionRecord],
    chosen_by: Option<&[&str]>,
    thresholds: Thresholds,
) -> String {
    let mut html = String::from(
        "<div class=\"aligntds-example\" style=\"font-family:system-ui,sans-serif;line-height:1.6\">",
    );
    let _ = write!(
        html,
        "<div style=\"color:#5b636d;font-size:.9em\">{} · {} tokens ({}; stop: {}): \
         <b>{}</b> unshifted, <b>{}</b> marginal, <b>{}</b> shifted</div>",
        escape(&example.id),
        positions.len(),
        escape(&example.source),
        escape(&example.stop_reason),
        example.unshifted,
        example.marginal,
        example.shifted
    );
    let _ = write!(
        html,
        "<div style=\"margin:.3em 0\"><b>query</b> {}</div>",
        escape(&example.query)
    );
    html.push_str(
        "<div style=\"white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,monospace\">",
    );
    for (i, p) in positions.iter().enumerate() {
        let by = chosen_by.and_then(|c| c.get(i).copied());
        let category = match by {
            Some("base") => Category::of(p.aligned_rank, thresholds),
            _ => p.category,
        };
        let mut css = style(category).to_string();
        if by == Some("base") {
            // Base-chosen tokens read apart from the aligned side's, as on the live page.
            css.push_str(";border-bottom:2px dotted #5b636d");
        }
        let text = if p.text.is_empty() { "∅" } else { &p.text };
        let _ = write!(
            html,
            "<span style=\"{css}\" title=\"{}\">{}</span>",
            escape(&title(p, by, thresholds)),
            escape(text)
        );
    }
    html.push_str("</div><div style=\"color:#5b636d;font-size:.8em\">blue: unshifted (base rank 1) · dashed: marginal (2-3) · filled: shifted (&gt; 3)");
    if chosen_by.is_some_and(|c| c.contains(&"base")) {
        html.push_str(
            " · dotted underline: chosen by the base model, coloured by its aligned rank",
        );
    }
    html.push_str(" · hover a token for both top-10s</div></div>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(i: u32, text: &str, base_rank: u32, aligned_rank: u32) -> PositionRecord {
        PositionRecord {
            position: i,
            token_id: 100 + i,
            token: text.into(),
            token_piece: text.into(),
            text: text.into(),
            aligned_logprob: -0.5,
            aligned_rank,
            base_logprob: -1.5,
            base_rank,
            category: Category::of(base_rank, Thresholds::default()),
            kl_aligned_base: Some(0.25),
            kl_base_aligned: None,
            js: None,
            aligned_entropy: None,
            base_entropy: None,
            log_ratio: 1.0,
            top1_agree: base_rank == 1,
            aligned_top1_base_rank: None,
            aligned_top: vec![TopToken {
                id: 1,
                text: "<b>".into(),
                logprob: -0.1,
            }],
            base_top: Vec::new(),
            orig_kl_at_k: None,
            orig_jaccard_at_k: None,
            orig_ws_at_k: None,
            orig_top_rank_at_k: None,
            full_vocabulary: true,
            chosen_by: None,
        }
    }

    fn spans(html: &str) -> Vec<&str> {
        html.split("<span ").skip(1).collect()
    }

    #[test]
    fn tokens_are_coloured_by_category_escaped_and_script_free() {
        let example = ExampleLine {
            id: "q<1>".into(),
            query: "say <script>alert(1)</script>".into(),
            ..Default::default()
        };
        let rows = [
            position(0, "Sure", 1, 1),
            position(1, " <i>", 2, 1),
            position(2, "!\"'&", 9, 1),
        ];
        let html = example_html(&example, &rows, None, Thresholds::default());
        assert!(!html.contains("<script"), "{html}");
        // The user's markup (a token `<i>`, a top-10 entry `<b>`) only as text.
        assert!(!html.contains("<i>") && !html.contains("\"<b>"), "{html}");
        assert!(html.contains("q&lt;1&gt;"));
        let s = spans(&html);
        assert_eq!(s.len(), 3);
        assert!(s[0].starts_with("style=\"color:#0b4f8a\""), "{}", s[0]);
        assert!(s[1].contains("dashed"), "{}", s[1]);
        assert!(s[1].ends_with("\"> &lt;i&gt;</span>"), "{}", s[1]);
        assert!(s[2].contains("background:#c2410c"));
        assert!(s[2].contains(">!&quot;&#39;&amp;</span>"), "{}", s[2]);
        // The hover text: ranks and the (escaped) top list.
        assert!(s[2].contains("base: rank 9"), "{}", s[2]);
        assert!(
            s[2].contains("aligned top-1: &quot;&lt;b&gt;&quot; -0.10"),
            "{}",
            s[2]
        );
    }

    #[test]
    fn a_token_the_base_chose_is_coloured_by_its_aligned_rank() {
        // Base rank 1 (the base chose it); the aligned side ranks it 7: shifted.
        let rows = [position(0, "Hi", 1, 1), position(1, " there", 1, 7)];
        let html = example_html(
            &ExampleLine::default(),
            &rows,
            Some(&["aligned", "base"]),
            Thresholds::default(),
        );
        let s = spans(&html);
        assert!(s[0].starts_with("style=\"color:#0b4f8a\""), "{}", s[0]);
        assert!(
            s[1].contains("background:#c2410c") && s[1].contains("dotted"),
            "{}",
            s[1]
        );
        assert!(s[1].contains("chosen by base (coloured by its aligned rank: shifted)"));
    }
}
