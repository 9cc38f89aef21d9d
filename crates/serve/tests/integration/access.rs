//! Who may use the server, over loopback with raw requests: on loopback the
//! Host must be a loopback name (or one given as allowed), a request's Origin
//! must be the server's own, POST bodies must say they are JSON, and with a
//! token (always off loopback) every path asks for it by header, by query
//! (then a cookie of this port) or 401. Each refusal and each allowed case
//! a browser, curl or a proxy sends.

use std::net::SocketAddr;

use crate::common::*;
use aligntds_serve::AccessSettings;
use serde_json::json;

const QUERY: &str = r#"{"query": "Hi?", "max_new_tokens": 2}"#;
const JSON: (&str, &str) = ("Content-Type", "application/json");

async fn serve_with(access: AccessSettings) -> (SocketAddr, String) {
    let tmp = tempfile::tempdir().unwrap();
    let mut settings = serve_settings(fixture_settings(), &tmp.path().join("saved"), 4);
    settings.access = access;
    let (addr, state) = serve_loaded(settings).await;
    std::mem::forget(tmp); // the saved runs outlive this helper; the OS cleans /tmp
    let token = state.settings().access.token.clone().unwrap_or_default();
    (addr, token)
}

fn streamed(reply: &Reply) -> bool {
    reply.status == 200 && reply.body.contains("event: done")
}

fn refused(reply: &Reply, status: u16, words: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    let message = reply.json()["error"].as_str().unwrap().to_string();
    assert!(message.contains(words), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_loopback_only_loopback_names_and_the_servers_own_pages_get_in() {
    let (addr, token) = serve_with(AccessSettings::default()).await;
    assert!(token.is_empty(), "no token on loopback unless asked");
    let port = addr.port();
    let own = format!("127.0.0.1:{port}");
    let origin = format!("http://{own}");

    // Loopback names, any port (an ssh -L forward changes it).
    for host in [
        own.clone(),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        "localhost:9999".into(),
    ] {
        let r = raw(addr, "GET", "/api/info", &[("Host", &host)], "").await;
        assert_eq!(r.status, 200, "{host}: {}", r.body);
    }
    // A rebinding page's name, or none: refused on every path.
    for path in ["/", "/assets/live.js", "/api/info", "/runs/"] {
        let r = raw(addr, "GET", path, &[("Host", "evil.example:8000")], "").await;
        refused(&r, 403, "--allowed-host");
    }
    let r = raw(
        addr,
        "POST",
        "/api/analyze",
        &[("Host", "evil.example"), JSON],
        QUERY,
    )
    .await;
    refused(&r, 403, "evil.example");
    refused(&raw(addr, "GET", "/", &[], "").await, 403, "no host");

    // The page's own POST, curl's (no Origin), and JSON with a charset.
    let host = ("Host", own.as_str());
    let same = ("Origin", origin.as_str());
    assert!(streamed(
        &raw(addr, "POST", "/api/analyze", &[host, JSON, same], QUERY).await
    ));
    assert!(streamed(
        &raw(addr, "POST", "/api/analyze", &[host, JSON], QUERY).await
    ));
    for kind in ["application/json; charset=utf-8", "Application/JSON"] {
        let r = raw(
            addr,
            "POST",
            "/api/analyze",
            &[host, ("Content-Type", kind)],
            QUERY,
        )
        .await;
        assert!(streamed(&r), "{kind}: {}", r.status);
    }

    // What a foreign page can send without asking first: refused by Origin.
    for foreign in [
        "http://evil.example",
        "null",
        &format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        &format!("http://localhost:{port}"),
        &format!("https://127.0.0.1:{port}0"),
    ] {
        for path in ["/api/analyze", "/api/continue", "/api/save"] {
            let r = raw(
                addr,
                "POST",
                path,
                &[host, ("Content-Type", "text/plain"), ("Origin", foreign)],
                QUERY,
            )
            .await;
            refused(&r, 403, "other sites");
        }
        let r = raw(addr, "GET", "/api/info", &[host, ("Origin", foreign)], "").await;
        refused(&r, 403, foreign);
    }

    // Bodies that are not declared JSON: 415, nothing generated or written.
    for kind in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        None,
    ] {
        let mut headers = vec![host];
        headers.extend(kind.map(|k| ("Content-Type", k)));
        for (path, body) in [
            ("/api/analyze", QUERY),
            ("/api/continue", r#"{"query": "Hi?", "with": "base"}"#),
            ("/api/save", r#"{"name": "x", "sessions": [1]}"#),
        ] {
            let r = raw(addr, "POST", path, &headers, body).await;
            refused(&r, 415, "application/json");
            assert_eq!(r.json()["status"], 415);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_name_given_as_allowed_gets_in_and_others_do_not() {
    let (addr, _) = serve_with(AccessSettings {
        allowed_hosts: vec!["lab.example.org".into(), "proxy.example:9000".into()],
        ..Default::default()
    })
    .await;
    // A TLS proxy: the browser's origin is https on the default port.
    let r = raw(
        addr,
        "POST",
        "/api/analyze",
        &[
            ("Host", "lab.example.org"),
            JSON,
            ("Origin", "https://lab.example.org"),
        ],
        QUERY,
    )
    .await;
    assert!(streamed(&r), "{} {}", r.status, r.body);
    let r = raw(addr, "GET", "/", &[("Host", "proxy.example:9000")], "").await;
    assert_eq!(r.status, 200);
    for host in [
        "proxy.example:9001",
        "other.example",
        "lab.example.org.evil.example",
    ] {
        refused(
            &raw(addr, "GET", "/", &[("Host", host)], "").await,
            403,
            host,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_every_path_asks_for_the_generated_token() {
    // The settings say 0.0.0.0 (the test binds loopback): a token is generated.
    let (addr, token) = serve_with(AccessSettings {
        host: "0.0.0.0".parse().unwrap(),
        ..Default::default()
    })
    .await;
    assert_eq!(token.len(), 48);
    let port = addr.port();
    let own = format!("127.0.0.1:{port}");
    let host = ("Host", own.as_str());
    let bearer = format!("Bearer {token}");
    let auth = ("Authorization", bearer.as_str());

    // Without it: 401 everywhere, a page for pages and JSON for the API.
    for path in [
        "/",
        "/assets/live.js",
        "/assets/report.css",
        "/runs/",
        "/nothing",
    ] {
        let r = raw(addr, "GET", path, &[host], "").await;
        assert_eq!(r.status, 401, "{path}");
        assert!(
            r.body.contains("asks for a token") && r.body.contains("?token="),
            "{path}: {}",
            r.body
        );
        assert!(r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert_eq!(r.headers["www-authenticate"], "Bearer realm=\"aligntds\"");
    }
    refused(
        &raw(addr, "GET", "/api/info", &[host], "").await,
        401,
        "Authorization: Bearer",
    );
    refused(
        &raw(addr, "POST", "/api/analyze", &[host, JSON], QUERY).await,
        401,
        "token",
    );

    // By header, with any Host (the token already defeats rebinding).
    for h in [own.as_str(), "evil.example", "203.0.113.9:8000"] {
        let r = raw(addr, "GET", "/api/info", &[("Host", h), auth], "").await;
        assert_eq!(r.status, 200, "{h}: {}", r.body);
    }
    assert!(streamed(
        &raw(addr, "POST", "/api/analyze", &[host, JSON, auth], QUERY).await
    ));
    let lower = format!("bearer {token}");
    assert_eq!(
        raw(
            addr,
            "GET",
            "/api/info",
            &[host, ("Authorization", &lower)],
            ""
        )
        .await
        .status,
        200
    );
    for wrong in [
        format!("Bearer {}", &token[1..]),
        format!("Bearer {token}x"),
        format!("Basic {token}"),
        token.clone(),
    ] {
        let r = raw(
            addr,
            "GET",
            "/api/info",
            &[host, ("Authorization", &wrong)],
            "",
        )
        .await;
        refused(&r, 401, "Authorization");
    }
    // The Origin check still holds with a token.
    let r = raw(
        addr,
        "POST",
        "/api/analyze",
        &[host, JSON, auth, ("Origin", "http://evil.example")],
        QUERY,
    )
    .await;
    refused(&r, 403, "other sites");

    // By query on a page load: a cookie of this port, and the same URL without the token.
    let r = raw(addr, "GET", &format!("/?token={token}&keep=1"), &[host], "").await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.headers["location"], "/?keep=1");
    let set = r.headers["set-cookie"].to_str().unwrap().to_string();
    assert_eq!(
        set,
        format!("aligntds-token-{port}={token}; Path=/; HttpOnly; SameSite=Strict")
    );
    let r = raw(
        addr,
        "GET",
        &format!("/runs/r0/e00001.html?token={token}"),
        &[host],
        "",
    )
    .await;
    assert_eq!(r.headers["location"], "/runs/r0/e00001.html");
    // `//host` stays a path on this server, never a protocol-relative address.
    let r = raw(
        addr,
        "GET",
        &format!("//evil.example/x?token={token}"),
        &[host],
        "",
    )
    .await;
    assert_eq!(r.headers["location"], "/evil.example/x");

    let jar = format!("aligntds-token-{port}={token}");
    let cookie = ("Cookie", jar.as_str());
    for path in ["/", "/assets/live.js", "/api/info"] {
        assert_eq!(
            raw(addr, "GET", path, &[host, cookie], "").await.status,
            200,
            "{path}"
        );
    }
    let mixed = format!("theme=dark; {jar}; other=1");
    assert_eq!(
        raw(addr, "GET", "/", &[host, ("Cookie", &mixed)], "")
            .await
            .status,
        200
    );
    let origin = format!("http://{own}");
    let page_post = [host, JSON, cookie, ("Origin", origin.as_str())];
    assert!(streamed(
        &raw(addr, "POST", "/api/analyze", &page_post, QUERY).await
    ));

    // A wrong token in the query sets nothing; the query is no credential for a POST.
    let r = raw(addr, "GET", "/?token=not-the-token-at-all", &[host], "").await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("not this server"), "{}", r.body);
    assert!(!r.headers.contains_key("set-cookie"));
    let r = raw(
        addr,
        "POST",
        &format!("/api/analyze?token={token}"),
        &[host, JSON],
        QUERY,
    )
    .await;
    refused(&r, 401, "token");

    // Another port's server's cookie, or a stale value, is not this server's.
    let other = format!("aligntds-token-{}={token}", port.wrapping_add(1));
    refused(
        &raw(addr, "GET", "/api/info", &[host, ("Cookie", &other)], "").await,
        401,
        "No token came",
    );
    for stale in [
        format!("aligntds-token-{port}={}", "0".repeat(48)),
        format!("aligntds-token-{port}="),
    ] {
        let r = raw(addr, "GET", "/api/info", &[host, ("Cookie", &stale)], "").await;
        refused(&r, 401, "new one is made at each start");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_loopback_a_given_token_is_asked_for_too() {
    let given = "a-token-given-by-the-user";
    let (addr, token) = serve_with(AccessSettings {
        token: Some(given.into()),
        ..Default::default()
    })
    .await;
    assert_eq!(token, given);
    let own = format!("127.0.0.1:{}", addr.port());
    assert_eq!(
        raw(addr, "GET", "/", &[("Host", &own)], "").await.status,
        401
    );
    let bearer = format!("Bearer {given}");
    let r = raw(
        addr,
        "GET",
        "/api/info",
        &[("Host", "evil.example"), ("Authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["ready"], json!(true));
}
