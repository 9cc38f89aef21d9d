//! What every route and the access guard answer with: JSON errors and the
//! headers that keep pages to this server's own text.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Page text comes only from these files and the report; nothing else runs.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Page text comes only from this server, and no other site frames it.
pub(crate) fn add_security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// A JSON error: `{"error": message, "field": field}`.
pub(crate) fn error(status: StatusCode, field: Option<&str>, message: &str) -> Response {
    let body = serde_json::json!({ "error": message, "field": field, "status": status.as_u16() });
    (status, axum::Json(body)).into_response()
}
