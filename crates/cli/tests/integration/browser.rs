//! The report in a real browser: headless Chromium over WebDriver opens a
//! report of a tiny fixture run from file:// URLs, clicks and keys through it,
//! and compares what the panel shows with positions.parquet, then opens the same
//! site from a small static file server. Screenshots land
//! in target/report-screenshots/. Needs Debian's chromium and chromium-driver;
//! fails without them unless ALIGNTDS_SKIP_BROWSER_TESTS=1.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aligntds_testkit::chromium::{click, js, press, start_browser, text};
use fantoccini::{Client, Locator};
use serde_json::{json, Value};

const QUERIES: [&str; 3] = [
    "What does <script>alert(1)</script> do?",
    "Render <img src=x onerror=alert(1)> please",
    "Is &amp; the same as </s>?",
];
const ANSWERS: [&str; 3] = [
    "It runs <script>alert(1)</script> as code.\n\nNot here.",
    "  <img src=x onerror=alert(1)> stays text.",
    "No: &amp; is an entity and </s> a tag.",
];

fn succeed(args: &[&str]) {
    let out = crate::common::aligntds(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        crate::common::stderr(&out)
    );
}

/// Two runs over the same queries (so pages can switch runs) and their report.
fn build_site(tmp: &Path) -> PathBuf {
    let data = tmp.join("hostile.jsonl");
    let lines: Vec<String> = QUERIES
        .iter()
        .zip(ANSWERS)
        .enumerate()
        .map(|(i, (q, a))| {
            json!({"id": format!("x{}", i + 1), "prompt": q, "output": a}).to_string()
        })
        .collect();
    std::fs::write(&data, lines.join("\n")).unwrap();
    for (name, context) in [("run-plain", "plain"), ("run-template", "template")] {
        let args = crate::common::pair_args(
            data.to_str().unwrap(),
            &tmp.join(name),
            &["--base-context", context],
        );
        succeed(&crate::common::strs(&args));
    }
    let site = tmp.join("site");
    succeed(&[
        "report",
        tmp.join("run-plain").to_str().unwrap(),
        tmp.join("run-template").to_str().unwrap(),
        "--out",
        site.to_str().unwrap(),
    ]);
    site
}

async fn wait_for_url(client: &Client, end: &str) {
    for _ in 0..100 {
        if client.current_url().await.unwrap().as_str().ends_with(end) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} never became …{end}",
        client.current_url().await.unwrap()
    );
}

async fn screenshot(client: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/report-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

/// Nothing the data held ran or became markup: no dialog, no image, only the site's scripts.
async fn assert_inert(client: &Client) {
    assert!(
        client.get_alert_text().await.is_err(),
        "an alert opened: data was executed"
    );
    assert_eq!(js(client, "return document.images.length").await, 0);
    let scripts = js(
        client,
        "return Array.from(document.scripts).map(s => s.getAttribute('src'))",
    )
    .await;
    for s in scripts.as_array().unwrap() {
        let src = s.as_str().unwrap_or("inline");
        assert!(
            src.ends_with("assets/tds-page.js")
                || src.ends_with("assets/report.js")
                || src.contains("data/r"),
            "unexpected script {src}"
        );
    }
}

async fn heading_starts(client: &Client, prefix: &str) {
    let h = text(client, "#panel h3").await;
    assert!(
        h.as_str().unwrap().starts_with(prefix),
        "{h} should start with {prefix}"
    );
}

/// The panel's view of whitespace: the same markers report.js uses.
fn visible(s: &str) -> String {
    if s.is_empty() {
        return "∅".into();
    }
    s.replace(' ', "␣").replace('\n', "↵").replace('\t', "⇥")
}

/// The decoded answers as the run recorded them (examples.jsonl).
fn run_answers(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("examples.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["answer"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// A minimal static file server for `root` on a free local port (one request per
/// connection), standing in for any static host.
fn serve(root: PathBuf) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let path = path
                .split(['?', '#'])
                .next()
                .unwrap_or("/")
                .trim_start_matches('/');
            let file = root.join(if path.is_empty() { "index.html" } else { path });
            let mut stream = reader.into_inner();
            let (status, body) = match std::fs::read(&file) {
                Ok(body) if !path.contains("..") => ("200 OK", body),
                _ => ("404 Not Found", Vec::new()),
            };
            let kind = match file.extension().and_then(|e| e.to_str()) {
                Some("html") => "text/html; charset=utf-8",
                Some("js") => "text/javascript; charset=utf-8",
                Some("css") => "text/css; charset=utf-8",
                Some("svg") => "image/svg+xml",
                _ => "application/octet-stream",
            };
            let head = format!("HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream
                .write_all(head.as_bytes())
                .and_then(|_| stream.write_all(&body));
        }
    });
    format!("http://127.0.0.1:{port}")
}

fn url_of(path: &Path) -> String {
    format!("file://{}", path.canonicalize().unwrap().display())
}

#[tokio::test(flavor = "current_thread")]
async fn report_pages_work_in_headless_chromium_from_files() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((_driver, client)) = start_browser(&tmp.path().join("profile")).await else {
        return;
    };
    let site = build_site(tmp.path());

    // Index: figures, a filterable and sortable example table.
    client
        .goto(&url_of(&site.join("index.html")))
        .await
        .unwrap();
    let figures = "return document.querySelectorAll('#figures svg').length";
    // The paper's six kinds (top-shifted per run), the base-rank CDF and the first-tokens split.
    assert_eq!(js(&client, figures).await, 10);
    // Two runs of the same queries: the paired comparison, row by row as `aligntds compare` gives it.
    let paired = "return document.querySelectorAll('#paired tbody tr').length";
    assert_eq!(js(&client, paired).await, 7);
    assert_inert(&client).await;
    assert_eq!(text(&client, "#shown").await, "3 of 3 examples");
    let filter = client.find(Locator::Id("filter")).await.unwrap();
    filter.send_keys("onerror").await.unwrap();
    assert_eq!(text(&client, "#shown").await, "1 of 3 examples");
    filter.clear().await.unwrap();
    js(
        &client,
        "document.getElementById('filter').dispatchEvent(new Event('input'))",
    )
    .await;
    let first_id = "#example-table tbody tr td:nth-child(2)";
    click(&client, Locator::Css("th[data-col='0']")).await;
    assert_eq!(text(&client, first_id).await, "x1");
    click(&client, Locator::Css("th[data-col='0']")).await;
    assert_eq!(text(&client, first_id).await, "x3");
    screenshot(&client, "index.png").await;
    js(
        &client,
        "document.getElementById('examples').scrollIntoView()",
    )
    .await;
    screenshot(&client, "index-examples.png").await;

    // Example page of the first query, opened from the table.
    click(&client, Locator::LinkText("x1")).await;
    wait_for_url(&client, "r0/e00001.html").await;
    assert_eq!(text(&client, "pre.query").await, QUERIES[0]);
    let answers = run_answers(&tmp.path().join("run-plain"));
    let answer = text(&client, "#answer").await;
    assert_eq!(
        answer, answers[0],
        "tokens, whitespace included, add up to the answer"
    );
    assert!(answers[0].contains("<script>alert(1)</script> as code.\n\n"));
    assert_inert(&client).await;

    // Click position 3: the panel shows that position's top-10 lists from positions.parquet.
    let mut expected = None;
    aligntds_report::run_data::for_each_example(&tmp.path().join("run-plain"), |id, rows| {
        if id == "x1" {
            expected = Some(rows);
        }
        Ok(())
    })
    .unwrap();
    let rows = expected.expect("x1 in positions.parquet");
    click(&client, Locator::Css("#answer .t[data-t='3']")).await;
    client
        .wait()
        .for_element(Locator::Css("#panel .tops table"))
        .await
        .unwrap();
    let tables = js(&client, "return Array.from(document.querySelectorAll('#panel .tops table')).map(t => Array.from(t.tBodies[0].rows).map(r => [r.cells[1].textContent, r.cells[2].textContent]))").await;
    for (side, top) in [(0, &rows[3].aligned_top), (1, &rows[3].base_top)] {
        let shown = tables[side].as_array().unwrap();
        assert_eq!(shown.len(), top.len());
        for (cell, (_, token, logprob)) in shown.iter().zip(top) {
            assert_eq!(cell[0].as_str().unwrap(), visible(token));
            let p: f64 = cell[1].as_str().unwrap().parse().unwrap();
            let want = (*logprob as f64).exp();
            assert!((p - want).abs() <= 1e-4 + 0.06 * want, "{p} vs {want}");
        }
    }
    assert_eq!(
        text(&client, "#panel .metrics dd").await,
        rows[3].base_rank.to_string()
    );
    heading_starts(&client, "Position 3 ").await;

    // Right arrow moves to position 4 and records it in the address.
    press(&client, "\u{E014}").await;
    heading_starts(&client, "Position 4 ").await;
    wait_for_url(&client, "#t=4").await;
    screenshot(&client, "example.png").await;

    // Switching runs keeps the position.
    click(&client, Locator::LinkText("run-template")).await;
    wait_for_url(&client, "r1/e00001.html#t=4").await;
    client
        .wait()
        .for_element(Locator::Css("#panel .tops table"))
        .await
        .unwrap();
    heading_starts(&client, "Position 4 ").await;

    // `n` and `p` move between examples; the image payload and entities stay text.
    press(&client, "n").await;
    wait_for_url(&client, "r1/e00002.html").await;
    assert_eq!(text(&client, "pre.query").await, QUERIES[1]);
    let answers = run_answers(&tmp.path().join("run-template"));
    assert_eq!(text(&client, "#answer").await, answers[1]);
    assert_inert(&client).await;
    press(&client, "n").await;
    wait_for_url(&client, "r1/e00003.html").await;
    assert_eq!(text(&client, "pre.query").await, QUERIES[2]);
    assert_inert(&client).await;
    press(&client, "p").await;
    wait_for_url(&client, "r1/e00002.html").await;

    // The same site from a static web server: the panel's data loads there too.
    let host = serve(site.clone());
    client
        .goto(&format!("{host}/r0/e00001.html#t=3"))
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css("#panel .tops table"))
        .await
        .unwrap();
    heading_starts(&client, "Position 3 ").await;
    assert_eq!(
        text(&client, "#panel .metrics dd").await,
        rows[3].base_rank.to_string()
    );
    multi_side_report(&client, tmp.path()).await;
    client.close().await.unwrap();
}

fn letters_of(rows: &[aligntds_report::run_data::TokenRow]) -> Vec<&'static str> {
    rows.iter()
        .map(|r| ["u", "m", "s"][r.category as usize])
        .collect()
}

/// A run with a compared side: its sides table and stage view show what summary.json holds.
async fn multi_side_report(client: &Client, tmp: &Path) {
    let run = tmp.join("run-sides");
    // The aligned model itself as the compared side, on answers it generates:
    // it ranks every token first, where the base side does not.
    let compared = format!("self={}", crate::common::fixture("llama3"));
    let args = crate::common::pair_args(
        tmp.join("hostile.jsonl").to_str().unwrap(),
        &run,
        &[
            "--compare",
            &compared,
            "--compare-context",
            "self=plain",
            "--response",
            "generate",
            "--max-new-tokens",
            "8",
        ],
    );
    succeed(&crate::common::strs(&args));
    let site = tmp.join("site-sides");
    succeed(&[
        "report",
        run.to_str().unwrap(),
        "--out",
        site.to_str().unwrap(),
    ]);
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    client
        .goto(&url_of(&site.join("index.html")))
        .await
        .unwrap();
    assert_inert(client).await;
    let column = |table: &str, n: usize| {
        format!("return [...document.querySelectorAll('#{table} tbody tr > :nth-child({n})')].map(c => c.textContent)")
    };
    assert_eq!(
        js(client, &column("sides-r0", 1)).await,
        json!(["base", "self"])
    );
    let shifted: Vec<String> = summary["sides"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{:.1} %",
                s["aggregates"]["ratios"]["shifted"].as_f64().unwrap() * 100.0
            )
        })
        .collect();
    let shown = js(client, &column("sides-r0", 5)).await;
    for (cell, want) in shown.as_array().unwrap().iter().zip(&shifted) {
        assert!(
            cell.as_str().unwrap().starts_with(want.as_str()),
            "{cell} vs {want}"
        );
    }
    assert_eq!(
        js(client, &column("stages-r0", 1)).await,
        json!(["base", "self", "aligned", "unsettled"])
    );
    let settled: Vec<String> = summary["stages"]["by_bar"][0]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{:.1} %", s["share"].as_f64().unwrap() * 100.0))
        .collect();
    let shown = js(client, &column("stages-r0", 2)).await;
    for (cell, want) in shown.as_array().unwrap().iter().zip(&settled) {
        assert!(
            cell.as_str().unwrap().starts_with(want.as_str()),
            "{cell} vs {want}"
        );
    }
    screenshot(client, "multi-side-index.png").await;

    // The example page: colour by a compared side, and every side's rank in the panel.
    let mut rows = None;
    aligntds_report::run_data::for_each_example_sides(&run, |id, base, compared| {
        if id == "x1" {
            rows = Some((base, compared));
        }
        Ok(())
    })
    .unwrap();
    let (base, compared) = rows.unwrap();
    let own = &compared[0].1;
    assert!(own.iter().all(|r| r.category == 0));
    assert_ne!(
        letters_of(&base),
        letters_of(own),
        "the sides colour differently"
    );
    client
        .goto(&url_of(&site.join("r0/e00001.html")))
        .await
        .unwrap();
    assert_inert(client).await;
    // The compared side's own context, as examples.jsonl recorded it.
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(run.join("examples.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        text(client, "#ctx-side-1").await,
        line["sides"][0]["context"]
    );
    assert_eq!(
        js(
            client,
            "return document.getElementById('ctx-side-1').dataset.kind"
        )
        .await,
        "plain"
    );
    let letters = |rows: &[aligntds_report::run_data::TokenRow]| json!(letters_of(rows));
    let shown = "return [...document.querySelectorAll('#answer .t')].map(s => ['u','m','s'].find(c => s.classList.contains(c)))";
    assert_eq!(js(client, shown).await, letters(&base));
    js(
        client,
        "const s = document.getElementById('colour-by'); s.value = '1'; s.dispatchEvent(new Event('change'))",
    )
    .await;
    assert_eq!(js(client, shown).await, letters(own));
    let t = own.len() - 1;
    click(client, Locator::Css(&format!("#answer .t[data-t='{t}']"))).await;
    client
        .wait()
        .for_element(Locator::Css("#panel table.sides"))
        .await
        .unwrap();
    let ranks = "return [...document.querySelectorAll('#panel table.sides tr')].slice(1).map(r => [r.children[0].textContent, r.children[1].textContent])";
    assert_eq!(
        js(client, ranks).await,
        json!([
            ["base", base[t].base_rank.to_string()],
            ["self", own[t].base_rank.to_string()]
        ])
    );
    screenshot(client, "multi-side-example.png").await;
}

/// A handover arm's page: the tokens the base chose carry the mark the live
/// page uses, and the panel says who chose the clicked token.
#[tokio::test(flavor = "current_thread")]
async fn handover_pages_say_who_chose_each_token() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((_driver, client)) = start_browser(&tmp.path().join("profile")).await else {
        return;
    };
    let data = tmp.path().join("q.txt");
    std::fs::write(&data, "Why is the sky blue?\n").unwrap();
    let out = tmp.path().join("h");
    let o = crate::common::one_model_run(
        "handover",
        ("plain", "template"),
        &data,
        &out,
        8,
        &["--policy", "first:2"],
    );
    assert!(o.status.success(), "{}", crate::common::stderr(&o));
    let site = tmp.path().join("site");
    succeed(&[
        "report",
        out.to_str().unwrap(),
        "--out",
        site.to_str().unwrap(),
    ]);
    // Runs: the aligned arm, then first:2.
    client
        .goto(&url_of(&site.join("r1/e00001.html")))
        .await
        .unwrap();
    let chosen = "return Array.from(document.querySelectorAll('#answer .t')).map(t => t.classList.contains('by-base'))";
    let by_base = js(&client, chosen).await;
    let expected: Vec<bool> = (0..8).map(|t| t >= 2).collect();
    assert_eq!(by_base, json!(expected));
    let border = "return getComputedStyle(document.querySelector('#answer .t[data-t=\"3\"]')).borderTopStyle";
    assert_eq!(js(&client, border).await, "dotted");
    let panel_says = "return Array.from(document.querySelectorAll('#panel dt')).filter(d => d.textContent === 'chosen by').map(d => d.nextElementSibling.textContent)";
    for (t, who) in [(1, "aligned"), (3, "base (coloured by its aligned rank)")] {
        click(&client, Locator::Css(&format!("#answer .t[data-t='{t}']"))).await;
        client
            .wait()
            .for_element(Locator::Css("#panel .tops table"))
            .await
            .unwrap();
        assert_eq!(js(&client, panel_says).await, json!([who]), "position {t}");
    }
    screenshot(&client, "handover-example.png").await;
    assert_inert(&client).await;
}
