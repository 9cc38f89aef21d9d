//! Who may use the server. `aligntds serve` runs on a researcher's machine
//! while they browse the web, so every page they visit can send it requests.
//! Each request passes, in order:
//!
//! 1. Host (only while no token is required): a loopback name
//!    (`localhost`, `127.0.0.1`, `[::1]`, any loopback address) or a name
//!    given with `--allowed-host`, with any port; else 403. This defeats DNS
//!    rebinding, where a foreign name resolves to 127.0.0.1 and the page
//!    reads the answers as if same-origin.
//! 2. Origin: where a request carries one, it must be this server's origin
//!    as the request addressed it (the Host header's name and port, `http`
//!    or `https` for a TLS proxy); `Origin: null` and every other origin is
//!    403. Requests without one (curl, scripts) pass.
//! 3. The token, where one is set (always off loopback): an
//!    `Authorization: Bearer` header, the cookie a token URL set, or
//!    `?token=` on a page load, which sets that cookie and redirects to the
//!    same URL without the token; else 401. A token already defeats
//!    rebinding, so the Host check is off then.
//!
//! POST bodies must be JSON (415 otherwise; see `api::body`): with the
//! Origin check, this leaves a foreign page no request it can send
//! unnoticed.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::responses::error;
use crate::AppState;

/// Who may use the server, part of [`crate::ServeSettings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessSettings {
    /// The address the server listens on. A loopback address checks the Host
    /// header; any other requires a token (generated when none is given).
    pub host: IpAddr,
    /// Host names accepted besides the loopback ones (for a reverse proxy):
    /// `NAME` for any port, `NAME:PORT` for that port only.
    pub allowed_hosts: Vec<String>,
    /// The token every request must carry; optional on loopback.
    pub token: Option<String>,
}

impl Default for AccessSettings {
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            allowed_hosts: Vec::new(),
            token: None,
        }
    }
}

/// A setting that cannot be used, naming it (`token` or `allowed_hosts`).
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct AccessError {
    pub field: &'static str,
    pub message: String,
}

/// The fewest characters a token given by the user may have.
const MIN_TOKEN_CHARS: usize = 16;

impl AccessSettings {
    /// Checks the settings and generates a token where one is required and
    /// none was given (off loopback).
    pub fn resolve(mut self) -> Result<Self, AccessError> {
        if let Some(token) = &self.token {
            let plain = token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'));
            if token.chars().count() < MIN_TOKEN_CHARS || !plain {
                return Err(AccessError {
                    field: "token",
                    message: format!(
                        "a token must be at least {MIN_TOKEN_CHARS} letters, digits, '-', '_', '.' or '~' \
                         (it travels in URLs and headers); leave it out to have one generated, or make one \
                         with `openssl rand -hex 24`"
                    ),
                });
            }
        } else if !self.host.is_loopback() {
            self.token = Some(new_token().map_err(|e| AccessError {
                field: "token",
                message: format!("cannot generate a token ({e}); give one"),
            })?);
        }
        for name in &self.allowed_hosts {
            if parse_host(name).is_none() {
                return Err(AccessError {
                    field: "allowed_hosts",
                    message: format!(
                        "{name:?} is not a host name: give the name as the browser's address bar shows it, \
                         NAME or NAME:PORT, without a scheme or path (e.g. lab.example.org or lab.example.org:443)"
                    ),
                });
            }
        }
        Ok(self)
    }

    /// The address to open: `http://ADDRESS/`, with `?token=` where one is set.
    /// An unspecified bind address (0.0.0.0, ::) is shown as 127.0.0.1.
    pub fn url(&self, bound: std::net::SocketAddr) -> String {
        let ip = if bound.ip().is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            bound.ip()
        };
        let address = std::net::SocketAddr::new(ip, bound.port());
        match &self.token {
            Some(token) => format!("http://{address}/?token={token}"),
            None => format!("http://{address}/"),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let Some((name, port)) = parse_host(host) else {
            return false;
        };
        let loopback = name.eq_ignore_ascii_case("localhost")
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        loopback
            || self.allowed_hosts.iter().any(|allowed| {
                parse_host(allowed).is_some_and(|(n, p)| {
                    n.eq_ignore_ascii_case(name) && (p.is_none() || p == port)
                })
            })
    }
}

/// 24 random bytes as 48 hex digits, as Jupyter's tokens.
fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `name[:port]` or `[v6]:port` -> (name, port); None when malformed (a
/// scheme, a path, user info, an empty name or a port that is no number).
fn parse_host(host: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')?;
        let rest = &host[end + 1..];
        let port = match rest {
            "" => None,
            _ => Some(rest.strip_prefix(':')?),
        };
        (&host[..=end], port)
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    let name_ok = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => {
            !v6.is_empty()
                && v6
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'))
        }
        None => {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    name_ok.then_some((name, port))
}

/// The Host a request was sent to: the header, or the URI's authority.
fn request_host(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
}

/// Whether `origin` (`scheme://host[:port]`) is the origin of a request
/// addressed to `host`: same name and port, the port defaulting by scheme.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host.and_then(parse_host) else {
        return false;
    };
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    let Some((name, port)) = parse_host(rest) else {
        return false;
    };
    name.eq_ignore_ascii_case(host.0) && port.unwrap_or(default) == host.1.unwrap_or(default)
}

/// The cookie a token URL sets: cookies ignore ports, so the name carries
/// the port, and two servers on one machine keep theirs apart.
fn cookie_name(host: Option<&str>) -> String {
    let port = host.and_then(parse_host).and_then(|(_, p)| p).unwrap_or(80);
    format!("aligntds-token-{port}")
}

/// Compares in time independent of where the strings differ.
fn token_eq(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            (n == name).then_some(v)
        })
}

/// The query's `token` value and the query without it.
fn split_token(query: &str) -> (Option<&str>, String) {
    let mut token = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("token", value)) => token = Some(value),
            _ if pair == "token" => token = Some(""),
            _ => rest.push(pair),
        }
    }
    (token, rest.join("&"))
}

fn forbidden(message: &str) -> Response {
    error(StatusCode::FORBIDDEN, None, message)
}

/// The middleware: refuses what the settings do not allow, else runs the route.
pub(crate) async fn guard(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let access = &state.settings.access;
    let host = request_host(&request);
    if access.token.is_none() && !host.as_deref().is_some_and(|h| access.host_allowed(h)) {
        return forbidden(&format!(
            "this server answers only requests addressed to localhost, 127.0.0.1 or [::1] (this one was \
             addressed to {}); behind a reverse proxy, start it with --allowed-host NAME",
            host.as_deref().map_or("no host".into(), |h| format!("{h:?}"))
        ));
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !same_origin(origin, host.as_deref()) {
            return forbidden(&format!(
                "requests from other sites are refused: this one came from {origin:?}, not from this server's \
                 own pages; scripts can call the API without an Origin header"
            ));
        }
    }
    let Some(token) = &access.token else {
        return next.run(request).await;
    };
    let cookie_name = cookie_name(host.as_deref());
    if let Some(authorization) = request.headers().get(header::AUTHORIZATION) {
        let given = authorization.to_str().unwrap_or("");
        let bearer = given
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        return match bearer {
            Some(t) if token_eq(t, token) => next.run(request).await,
            _ => unauthorized(
                &request,
                "The Authorization header does not carry this server's token (Authorization: Bearer TOKEN)",
            ),
        };
    }
    let page_load = matches!(*request.method(), Method::GET | Method::HEAD);
    let (query_token, rest) = split_token(request.uri().query().unwrap_or(""));
    if let (true, Some(given)) = (page_load, query_token) {
        if !token_eq(given, token) {
            return unauthorized(&request, "The token in this address is not this server's");
        }
        // `//host` would be a protocol-relative address: keep the redirect on this server.
        let path = format!("/{}", request.uri().path().trim_start_matches('/'));
        let location = if rest.is_empty() {
            path
        } else {
            format!("{path}?{rest}")
        };
        return redirect_with_cookie(&location, &cookie_name, token);
    }
    match cookie(request.headers(), &cookie_name) {
        Some(c) if token_eq(c, token) => next.run(request).await,
        Some(_) => unauthorized(
            &request,
            "The token this browser holds is not this server's (without --token, a new one is made at each start)",
        ),
        None => unauthorized(&request, "No token came with this request"),
    }
}

fn redirect_with_cookie(location: &str, name: &str, token: &str) -> Response {
    let cookie = format!("{name}={token}; Path=/; HttpOnly; SameSite=Strict");
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    for (key, value) in [(header::LOCATION, location), (header::SET_COOKIE, &cookie)] {
        match HeaderValue::from_str(value) {
            Ok(v) => {
                headers.insert(key, v);
            }
            Err(_) => return error(StatusCode::BAD_REQUEST, None, "malformed address"),
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

const HOW_TO_GET_IN: &str = "Open the address that aligntds serve printed when it started (it ends in \
?token=...), or send the header Authorization: Bearer TOKEN. The token is the one given with --token \
(or ALIGNTDS_TOKEN), else the one the server generated and printed.";

/// 401: JSON for the API, a page that says how to get in for everything else.
fn unauthorized(request: &Request, why: &str) -> Response {
    let mut response = if request.uri().path().starts_with("/api/") {
        error(
            StatusCode::UNAUTHORIZED,
            None,
            &format!("{why}. {HOW_TO_GET_IN}"),
        )
    } else {
        let page = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>aligntds: token required</title>\
             </head><body style=\"font-family: sans-serif; max-width: 40em; margin: 3em auto\">\
             <h1>This aligntds server asks for a token</h1><p>{why}.</p><p>{HOW_TO_GET_IN}</p></body></html>"
        );
        let mut r = (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            page,
        )
            .into_response();
        crate::responses::add_security_headers(r.headers_mut());
        r
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"aligntds\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_with_and_without_ports() {
        assert_eq!(
            parse_host("localhost:8000"),
            Some(("localhost", Some(8000)))
        );
        assert_eq!(parse_host("[::1]:80"), Some(("[::1]", Some(80))));
        assert_eq!(parse_host("[::1]"), Some(("[::1]", None)));
        assert_eq!(
            parse_host("lab.example.org"),
            Some(("lab.example.org", None))
        );
        for bad in [
            "", ":80", "a:b", "http://x", "x/y", "u@x", "[::1]x", "x:99999", "a:b:80", "[]:80",
        ] {
            assert_eq!(parse_host(bad), None, "{bad}");
        }
    }

    #[test]
    fn origins_match_by_name_and_port_with_the_scheme_default() {
        assert!(same_origin("http://127.0.0.1:8000", Some("127.0.0.1:8000")));
        assert!(same_origin("http://LOCALHOST:8000", Some("localhost:8000")));
        assert!(same_origin("http://lab", Some("lab:80")));
        assert!(same_origin("https://lab", Some("lab")));
        assert!(!same_origin(
            "http://127.0.0.1:8001",
            Some("127.0.0.1:8000")
        ));
        assert!(!same_origin(
            "http://localhost:8000",
            Some("127.0.0.1:8000")
        ));
        assert!(!same_origin("null", Some("127.0.0.1:8000")));
        assert!(!same_origin("file://", Some("127.0.0.1:8000")));
        assert!(!same_origin("http://127.0.0.1:8000", None));
    }

    #[test]
    fn the_token_is_cut_from_the_query_and_the_rest_kept() {
        assert_eq!(split_token("token=abc"), (Some("abc"), String::new()));
        assert_eq!(
            split_token("a=1&token=abc&b=2"),
            (Some("abc"), "a=1&b=2".to_string())
        );
        assert_eq!(split_token("tokens=1"), (None, "tokens=1".to_string()));
    }

    #[test]
    fn off_loopback_a_token_is_generated_and_a_weak_one_refused() {
        let public = AccessSettings {
            host: "0.0.0.0".parse().unwrap(),
            ..Default::default()
        };
        let a = public.clone().resolve().unwrap().token.unwrap();
        let b = public.clone().resolve().unwrap().token.unwrap();
        assert_eq!(a.len(), 48);
        assert_ne!(a, b);
        assert!(AccessSettings::default().resolve().unwrap().token.is_none());
        for weak in ["short", "has space in it, long enough", "ünïcödé-ünïcödé-ü"] {
            let e = AccessSettings {
                token: Some(weak.into()),
                ..public.clone()
            }
            .resolve()
            .unwrap_err();
            assert_eq!(e.field, "token");
        }
        let e = AccessSettings {
            allowed_hosts: vec!["https://lab.example.org/".into()],
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert_eq!(e.field, "allowed_hosts");
    }

    #[test]
    fn loopback_names_and_allowed_hosts_pass_the_host_check() {
        let access = AccessSettings {
            allowed_hosts: vec!["lab.example.org".into(), "proxy:9000".into()],
            ..Default::default()
        };
        for ok in [
            "localhost:8000",
            "127.0.0.1:8000",
            "[::1]:8000",
            "127.0.0.2:1",
            "LocalHost",
            "lab.example.org:443",
            "proxy:9000",
        ] {
            assert!(access.host_allowed(ok), "{ok}");
        }
        for refused in [
            "evil.example:8000",
            "localhost.evil.example:8000",
            "10.0.0.1:8000",
            "proxy:9001",
            "",
        ] {
            assert!(!access.host_allowed(refused), "{refused}");
        }
    }
}
