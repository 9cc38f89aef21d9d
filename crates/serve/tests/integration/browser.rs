//! The live page in headless Chromium on the real SmolLM2 model (chat vs the
//! study's template, f32): a query streams in coloured, the panel shows what
//! the API gives, the base model continues from a token, the URL reproduces
//! the whole state, hostile text stays text, 413 and 429 reach the user, and
//! a run page opens a token in the live view. Screenshots land in
//! target/serve-screenshots/ (the docs' come from there). Needs Debian's
//! chromium and chromium-driver (or ALIGNTDS_SKIP_BROWSER_TESTS=1).

use std::path::PathBuf;
use std::time::Duration;

use crate::common::*;
use aligntds_analysis::settings::ContextKind;
use aligntds_testkit::chromium::{click, js, start_browser, text};
use fantoccini::{Client, Locator};
use serde_json::{json, Value};

const HOSTILE: &str = "Repeat this exactly: <script>alert(1)</script> <img src=x onerror=alert(2)>";

async fn screenshot(client: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/serve-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), client.screenshot().await.unwrap()).unwrap();
}

/// Waits until `script` returns true.
async fn until(client: &Client, script: &str, what: &str) {
    for _ in 0..600 {
        if js(client, script).await == json!(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state = js(client, "return [document.getElementById('status').textContent, document.getElementById('error').textContent, location.href]").await;
    panic!("timed out waiting for {what}: {state}");
}

async fn stream_done(client: &Client, index: usize) {
    let script = format!(
        "var s = document.querySelector('[data-stream=\"{index}\"]'); return !!s && s.getAttribute('data-done') === '1';"
    );
    until(client, &script, &format!("stream {index} to finish")).await;
}

async fn token_texts(client: &Client, index: usize) -> Vec<String> {
    let script = format!(
        "return Array.from(document.querySelectorAll('[data-stream=\"{index}\"] .answer .t')).map(t => t.textContent)"
    );
    serde_json::from_value(js(client, &script).await).unwrap()
}

async fn token_classes(client: &Client, index: usize) -> Vec<String> {
    let script = format!(
        "return Array.from(document.querySelectorAll('[data-stream=\"{index}\"] .answer .t')).map(t => t.className)"
    );
    serde_json::from_value(js(client, &script).await).unwrap()
}

async fn set_value(client: &Client, id: &str, value: &str) {
    let script = format!("document.getElementById({id:?}).value = arguments[0]; return true;");
    client.execute(&script, vec![json!(value)]).await.unwrap();
}

fn api_tokens(body: &str) -> Vec<Value> {
    events(body)
        .into_iter()
        .filter(|(n, _)| n == "token")
        .map(|(_, d)| d)
        .collect()
}

fn prob(logprob: f64) -> String {
    let p = logprob.exp();
    if p >= 1e-4 {
        format!("{p:.4}")
    } else {
        format!("{p:.1e}")
    }
}

async fn assert_inert(client: &Client) {
    assert!(
        client.get_alert_text().await.is_err(),
        "an alert opened: text was executed"
    );
    assert_eq!(js(client, "return document.images.length").await, 0);
    let scripts = js(
        client,
        "return Array.from(document.scripts).map(s => s.getAttribute('src'))",
    )
    .await;
    assert_eq!(scripts, json!(["/assets/tds-page.js", "/assets/live.js"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_streams_branches_and_reproduces_its_url_in_chromium() {
    let Some(model) = smollm2() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let Some((_driver, client)) = start_browser(&tmp.path().join("profile")).await else {
        return;
    };
    let mut live = live_settings(&model, ContextKind::Chat, &model);
    live.limits.max_query_bytes = 300;
    let (addr, _) = serve_loaded(serve_settings(live.clone(), &tmp.path().join("saved"), 0)).await;
    let base = format!("http://{addr}");
    client.goto(&format!("{base}/")).await.unwrap();
    until(
        &client,
        "return document.getElementById('pair').textContent.indexOf('aligned') === 0",
        "the pair",
    )
    .await;

    // A hostile query streams in; every token is coloured by its category.
    set_value(&client, "query", HOSTILE).await;
    set_value(&client, "max-new", "24").await;
    click(&client, Locator::Id("run")).await;
    stream_done(&client, 0).await;
    let api = post(
        addr,
        "/api/analyze",
        &json!({"query": HOSTILE, "max_new_tokens": 24}),
    )
    .await;
    let tokens = api_tokens(&api.body);
    let texts = token_texts(&client, 0).await;
    assert_eq!(texts.len(), tokens.len());
    let classes = token_classes(&client, 0).await;
    for ((t, class), text) in tokens.iter().zip(&classes).zip(&texts) {
        assert_eq!(text, t["text"].as_str().unwrap());
        let cat = &t["category"].as_str().unwrap()[..1];
        assert!(class.split(' ').any(|c| c == cat), "{class} for {t}");
        let differ = t["aligned_top"][0]["id"] != t["base_top"][0]["id"];
        assert_eq!(class.split(' ').any(|c| c == "d"), differ, "{class}");
    }
    assert!(
        classes.iter().any(|c| c.contains(" s")),
        "some token is shifted: {classes:?}"
    );
    assert_inert(&client).await;
    assert_eq!(
        js(&client, "return document.getElementById('query').value").await,
        json!(HOSTILE)
    );

    // The panel at position 2 shows the API's numbers.
    click(
        &client,
        Locator::Css("[data-stream=\"0\"] .t[data-t=\"2\"]"),
    )
    .await;
    let t = &tokens[2];
    for (key, expected) in [
        ("base_rank", t["base_rank"].to_string()),
        ("aligned_rank", t["aligned_rank"].to_string()),
        ("p_aligned", prob(t["aligned_logprob"].as_f64().unwrap())),
        ("p_base", prob(t["base_logprob"].as_f64().unwrap())),
    ] {
        let shown = text(&client, &format!("#panel dd[data-k={key}]")).await;
        assert_eq!(shown, json!(expected), "{key}");
    }
    let top: Vec<String> = serde_json::from_value(
        js(&client, "return Array.from(document.querySelectorAll('#panel .tops table:first-child td.tok')).map(td => td.textContent)").await,
    )
    .unwrap();
    let expected: Vec<String> = t["aligned_top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            x["text"]
                .as_str()
                .unwrap()
                .replace(' ', "␣")
                .replace('\n', "↵")
        })
        .collect();
    assert_eq!(top, expected);
    // Arrow keys move along the answer.
    aligntds_testkit::chromium::press(&client, "\u{E014}").await;
    until(
        &client,
        "return document.querySelector('#panel h3').textContent.indexOf('position 3') >= 0",
        "position 3",
    )
    .await;
    screenshot(&client, "live-panel.png").await;

    // The base model takes over at position 3: a branch beside the answer.
    click(&client, Locator::Id("continue-base")).await;
    stream_done(&client, 1).await;
    let branch = token_texts(&client, 1).await;
    assert_eq!(&branch[..3], &texts[..3]);
    let ids: Vec<u64> = tokens[..3]
        .iter()
        .map(|t| t["token_id"].as_u64().unwrap())
        .collect();
    let api_branch = post(
        addr,
        "/api/continue",
        &json!({"query": HOSTILE, "max_new_tokens": 24, "prefix_ids": ids, "with": "base"}),
    )
    .await;
    let expected: Vec<String> = api_tokens(&api_branch.body)
        .iter()
        .map(|t| t["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(branch, expected);
    let branch_classes = token_classes(&client, 1).await;
    assert!(
        branch_classes[3..].iter().all(|c| c.contains("by-base")),
        "{branch_classes:?}"
    );
    screenshot(&client, "live-branch.png").await;
    assert_inert(&client).await;

    // Swap position 3 for the base model's second choice: the aligned model goes on from it.
    click(
        &client,
        Locator::Css("[data-stream=\"0\"] .t[data-t=\"3\"]"),
    )
    .await;
    let second = tokens[3]["base_top"][1].clone();
    click(
        &client,
        Locator::Css("#panel .tops table:nth-child(2) tbody tr:nth-child(2)"),
    )
    .await;
    stream_done(&client, 2).await;
    let swapped = token_texts(&client, 2).await;
    assert_eq!(&swapped[..3], &texts[..3]);
    assert_eq!(swapped[3], second["text"].as_str().unwrap());
    let mut ids: Vec<u64> = tokens[..4]
        .iter()
        .map(|t| t["token_id"].as_u64().unwrap())
        .collect();
    let api_swap = post(
        addr,
        "/api/continue",
        &json!({"query": HOSTILE, "max_new_tokens": 24, "prefix_ids": ids.clone(), "with": "aligned", "replace": second["id"]}),
    )
    .await;
    ids[3] = second["id"].as_u64().unwrap();
    let api_texts: Vec<String> = api_tokens(&api_swap.body)
        .iter()
        .map(|t| t["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(swapped, api_texts);
    assert_eq!(api_tokens(&api_swap.body)[3]["token_id"], json!(ids[3]));

    // The URL holds the state: a reload gives the same answer and branches.
    let url = client.current_url().await.unwrap().to_string();
    assert!(url.contains("b="), "{url}");
    client.goto("about:blank").await.unwrap();
    client.goto(&url).await.unwrap();
    stream_done(&client, 0).await;
    stream_done(&client, 1).await;
    stream_done(&client, 2).await;
    assert_eq!(token_texts(&client, 0).await, texts);
    assert_eq!(token_texts(&client, 1).await, branch);
    assert_eq!(token_texts(&client, 2).await, swapped);

    // Save as run: the page says where.
    until(
        &client,
        "return !document.getElementById('save').disabled",
        "the save button",
    )
    .await;
    click(&client, Locator::Id("save")).await;
    until(
        &client,
        "return document.getElementById('status').textContent.indexOf('Saved 3 answers') === 0",
        "the save",
    )
    .await;
    let saved: Vec<PathBuf> = std::fs::read_dir(tmp.path().join("saved"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(saved.len(), 1);

    // An over-long query: the 413 message.
    set_value(&client, "query", &"long query ".repeat(40)).await;
    click(&client, Locator::Id("run")).await;
    until(
        &client,
        "return !document.getElementById('error').hidden",
        "the 413 message",
    )
    .await;
    let message = text(&client, "#error").await;
    assert!(
        message
            .as_str()
            .unwrap()
            .starts_with("Too large (413): query"),
        "{message}"
    );

    // Beyond the queue (0 here: one generating, none waiting): the 429 message.
    let mut held = send(
        addr,
        "POST",
        "/api/analyze",
        json!({"query": "Tell me a long story.", "max_new_tokens": 1024})
            .to_string()
            .into_bytes(),
    )
    .await;
    first_events(held.body_mut(), 1).await;
    set_value(&client, "query", "Hello?").await;
    click(&client, Locator::Id("run")).await;
    until(
        &client,
        "return !document.getElementById('error').hidden",
        "the 429 message",
    )
    .await;
    let message = text(&client, "#error").await;
    assert!(
        message.as_str().unwrap().starts_with("Server busy (429)"),
        "{message}"
    );
    screenshot(&client, "live-429.png").await;
    drop(held);

    // The saved run, browsed from a server given --runs: a token opens in the live view.
    let mut settings = serve_settings(live, &tmp.path().join("saved2"), 2);
    settings.runs = saved;
    let (addr, _) = serve_loaded(settings).await;
    client
        .goto(&format!("http://{addr}/runs/r0/e00001.html"))
        .await
        .unwrap();
    click(&client, Locator::Css("#answer .t[data-t=\"4\"]")).await;
    until(
        &client,
        "return !!document.getElementById('open-live')",
        "the live link",
    )
    .await;
    let run_texts: Vec<String> = serde_json::from_value(
        js(
            &client,
            "return Array.from(document.querySelectorAll('#answer .t')).map(t => t.textContent)",
        )
        .await,
    )
    .unwrap();
    click(&client, Locator::Id("open-live")).await;
    stream_done(&client, 0).await;
    let opened = token_texts(&client, 0).await;
    assert_eq!(&opened[..5], &run_texts[..5]);
    // Given the same prefix, the aligned model continues as it first did
    // (and on: the run page does not carry the original's 24-token cap).
    assert_eq!(&opened[..texts.len()], &texts[..]);
    until(
        &client,
        "return document.querySelector('#panel h3').textContent.indexOf('position 4') >= 0",
        "the opened token",
    )
    .await;
    screenshot(&client, "live-from-run.png").await;
    client.close().await.unwrap();
}
