//! Headless Chromium over WebDriver (Debian's chromium and chromium-driver),
//! shared by the report's and the live page's browser tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

pub struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn start_browser(profile: &Path) -> Option<(Driver, Client)> {
    if std::env::var("ALIGNTDS_SKIP_BROWSER_TESTS").as_deref() == Ok("1") {
        eprintln!("ALIGNTDS_SKIP_BROWSER_TESTS=1: browser test skipped");
        return None;
    }
    let driver = on_path("chromedriver").expect(
        "chromedriver not found: `apt-get install chromium chromium-driver` (or set ALIGNTDS_SKIP_BROWSER_TESTS=1 to opt out)",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver(child);
    let mut options = json!({"args": [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", "--window-size=1400,1000",
        format!("--user-data-dir={}", profile.display()),
    ]});
    if let Some(binary) = on_path("chromium") {
        options["binary"] = json!(binary);
    }
    let caps: serde_json::Map<String, Value> =
        serde_json::from_value(json!({"browserName": "chrome", "goog:chromeOptions": options}))
            .unwrap();
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        match ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return Some((driver, client)),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("chromedriver on port {port} did not start a Chromium session");
}

pub async fn js(client: &Client, script: &str) -> Value {
    client.execute(script, vec![]).await.unwrap()
}

/// Keys typed into whatever has focus (WebDriver key codes for arrows).
pub async fn press(client: &Client, keys: &str) {
    client
        .active_element()
        .await
        .unwrap()
        .send_keys(keys)
        .await
        .unwrap();
}

pub async fn click(client: &Client, locator: Locator<'_>) {
    client.find(locator).await.unwrap().click().await.unwrap();
}

/// textContent of the first element matching `css`.
pub async fn text(client: &Client, css: &str) -> Value {
    let script = format!("return document.querySelector({css:?}).textContent");
    js(client, &script).await
}
