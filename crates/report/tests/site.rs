//! The site built from a synthetic run of the size the issue asks for
//! (1,000 examples of 500 tokens): every page exists, pages stay small, and a
//! spot-checked page and its data match the generator's numbers.

use aligntds_analysis::synthetic;
use aligntds_report::{build, Run};

/// The script tags of every page: the helpers shared with the live page
/// (tds-page.js), then the report's own (report.js).
const OWN_SCRIPTS: usize = 2;

fn data_json(path: &std::path::Path) -> serde_json::Value {
    let js = std::fs::read_to_string(path).unwrap();
    let json = js
        .strip_prefix("aligntds.receive(")
        .and_then(|s| s.strip_suffix(");\n"))
        .expect("data script shape");
    serde_json::from_str(json).unwrap()
}

#[test]
fn a_thousand_example_run_gives_a_complete_site_of_small_pages() {
    const EXAMPLES: usize = 1000;
    const TOKENS: usize = 500;
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("synthetic-run");
    std::fs::create_dir(&run_dir).unwrap();
    synthetic::write_synthetic_run(&run_dir, EXAMPLES, TOKENS).unwrap();
    let site = tmp.path().join("site");
    let stats = build(&[Run::load(&run_dir).unwrap()], &site).unwrap();
    assert_eq!(stats.example_pages, EXAMPLES);

    let pages: Vec<_> = std::fs::read_dir(site.join("r0")).unwrap().collect();
    let data: Vec<_> = std::fs::read_dir(site.join("data/r0")).unwrap().collect();
    assert_eq!((pages.len(), data.len()), (EXAMPLES, EXAMPLES));
    let largest = |dir: &str| {
        std::fs::read_dir(site.join(dir))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .max()
            .unwrap()
    };
    eprintln!(
        "largest page {} bytes, largest data file {} bytes, {} bytes in all",
        largest("r0"),
        largest("data/r0"),
        stats.bytes
    );
    // A page is its tokens' markup; its details load separately.
    assert!(largest("r0") < 60_000, "page {} bytes", largest("r0"));
    assert!(
        largest("data/r0") < 250_000,
        "data {} bytes",
        largest("data/r0")
    );
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    assert!(index.len() < 1_500_000, "index {} bytes", index.len());
    assert_eq!(index.matches("<tr data-text=").count(), EXAMPLES);

    // Spot check example 537 against the generator itself.
    let expected = synthetic::example(537, TOKENS, 10);
    let page = std::fs::read_to_string(site.join("r0/e00538.html")).unwrap();
    assert!(page.contains(&format!("<code>{}</code>", expected.example.id)));
    let answer = page.split("id=\"answer\"").nth(1).unwrap();
    assert_eq!(answer.matches("class=\"t ").count(), TOKENS);
    let shifted_spans = answer.matches("class=\"t s").count();
    assert_eq!(shifted_spans as u32, expected.example.shifted);
    assert!(page.contains("href=\"e00537.html\"") && page.contains("href=\"e00539.html\""));
    let v = data_json(&site.join("data/r0/e00538.js"));
    for t in [0, 1, 123, TOKENS - 1] {
        let p = &v["pos"][t];
        let m = &expected.positions[t];
        let kl = m.kl_aligned_base.unwrap();
        assert_eq!(p[0], m.token_id);
        assert_eq!(p[3], m.base_rank);
        assert!((p[5].as_f64().unwrap() - kl).abs() <= 1e-4 * kl.max(1e-3));
        let ids: Vec<u32> = serde_json::from_value(p[13].clone()).unwrap();
        assert_eq!(ids, m.base_top.iter().map(|t| t.id).collect::<Vec<_>>());
        let lps: Vec<f32> = serde_json::from_value(p[14].clone()).unwrap();
        for (got, want) in lps.iter().zip(&m.base_top) {
            assert!(
                (got - want.logprob).abs() <= 5e-5,
                "{got} vs {}",
                want.logprob
            );
        }
        for top in &m.aligned_top {
            assert_eq!(v["dict"][top.id.to_string()], top.text.as_str());
        }
    }
    // The vocabulary's hostile tokens arrive escaped in pages and verbatim in data.
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;")
            || !expected.example.answer.contains("<img")
    );
    // Its only scripts: the shared helpers, then the report's own.
    assert!(!page.contains("<img") && page.matches("<script").count() == OWN_SCRIPTS);
}

#[test]
fn a_version_1_run_still_builds_a_report() {
    let v1 = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/v1-run");
    let run = aligntds_report::Run::load(&v1).unwrap();
    assert_eq!(run.summary.schema_version, 1);
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    let stats = aligntds_report::build(&[run], &site).unwrap();
    assert_eq!(stats.example_pages, 2);
    let page = std::fs::read_to_string(site.join("r0/e00001.html")).unwrap();
    assert!(page.matches("class=\"t ").count() > 0);
}

/// Every page and figure of a site whose run name, model references, data
/// name, queries, contexts and tokens are all hostile markup: the markup
/// arrives as text everywhere, and the only script tags are the site's own.
#[test]
fn hostile_text_is_escaped_on_every_page_and_figure() {
    const HOSTILE: &str = "<img src=x onerror=alert(1)>";
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join(HOSTILE);
    std::fs::create_dir(&run_dir).unwrap();
    synthetic::write_synthetic_run(&run_dir, 8, 40).unwrap();
    let summary_path = run_dir.join("summary.json");
    let mut summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    let manifest = &mut summary["manifest"];
    for field in ["tool", "aligned_weights", "base_weights", "data"] {
        manifest[field] = HOSTILE.into();
    }
    manifest["aligned"]["reference"] = format!("{HOSTILE}\"'").into();
    manifest["base"]["reference"] = "</script><script>alert(2)</script>".into();
    std::fs::write(&summary_path, summary.to_string()).unwrap();

    let site = tmp.path().join("site");
    let stats = build(&[Run::load(&run_dir).unwrap()], &site).unwrap();
    assert_eq!(stats.example_pages, 8);
    let mut checked = 0;
    let mut pending = vec![site.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if !matches!(ext, "html" | "svg") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(!text.contains("<img"), "{}", path.display());
            assert!(!text.contains("alert(2)</script>"), "{}", path.display());
            let own_scripts = if ext == "html" { OWN_SCRIPTS } else { 0 };
            assert_eq!(
                text.matches("<script").count(),
                own_scripts,
                "{}",
                path.display()
            );
            assert!(!text.contains("\"'"), "{}", path.display());
            checked += 1;
        }
    }
    // index.html, 8 example pages, and the figure files.
    assert!(checked >= 1 + 8 + 5, "{checked} files checked");
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    let escaped = "&lt;img src=x onerror=alert(1)&gt;";
    // The run's name heads its card; the model, data and tool lines show the text.
    assert!(index.contains(&format!("<h2>{escaped}</h2>")), "run name");
    assert!(index.contains(&format!("<dd>{escaped}</dd>")), "data name");
    assert!(index.contains(&format!("{escaped}&quot;&#x27; ({escaped}; context")));
    assert!(index.contains("&lt;&#x2f;script&gt;&lt;script&gt;alert(2)"));
    let page = std::fs::read_to_string(site.join("r0/e00003.html")).unwrap();
    assert!(page.contains(&format!(
        "<pre class=\"query\">Synthetic query 2: {escaped}</pre>"
    )));
    assert!(
        page.contains(&format!("<small>{escaped}</small>")),
        "run name in the heading"
    );
}
