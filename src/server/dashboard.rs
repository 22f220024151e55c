//! The dashboard: one HTML page, its script and stylesheet, and the vendored uPlot chart library
//! (MIT, `assets/uPlot.LICENSE`), all embedded in the binary so it works offline.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::auth::{authorized, COOKIE_NAME};
use super::error::ApiError;
use super::AppState;

const INDEX_HTML: &str = include_str!("assets/index.html");

/// Embedded assets: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/dashboard.js"),
    ),
    (
        "incidents.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/incidents.js"),
    ),
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/dashboard.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/uPlot.min.css"),
    ),
    (
        "uPlot.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("assets/uPlot.LICENSE"),
    ),
];

/// Scripts only from this server: no inline script, no CDN.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

#[derive(serde::Deserialize)]
pub struct IndexQuery {
    token: Option<String>,
}

/// `GET /`: the dashboard. `/?token=<token>` checks the token, sets the `gema_token` cookie
/// (HttpOnly, SameSite=Strict, Secure when `X-Forwarded-Proto: https`) and redirects to `/`;
/// afterwards the cookie authenticates the page, its API calls and the live feed.
pub async fn index(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<IndexQuery>, QueryRejection>,
) -> Response {
    if let (Ok(Query(IndexQuery { token: Some(t) })), Some(expected)) = (query, &st.token) {
        if !expected.matches(&t) {
            return ApiError::Unauthorized.into_response();
        }
        let mut resp = Redirect::to("/").into_response();
        // Behind a TLS-terminating proxy the cookie is marked Secure.
        let secure = headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
        // The token is checked to be cookie-safe at start-up (see `gema serve`).
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{COOKIE_NAME}={t}; HttpOnly; SameSite=Strict; Path=/{}",
            if secure { "; Secure" } else { "" }
        )) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
        return resp;
    }
    if !authorized(&st, &headers) {
        return ApiError::Unauthorized.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        INDEX_HTML,
    )
        .into_response()
}

/// `GET /assets/{file}`: one of the embedded files.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, ctype, bytes)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, *ctype),
                (header::CACHE_CONTROL, "private, max-age=300"),
            ],
            *bytes,
        )
            .into_response(),
        None => ApiError::NotFound("no such asset".into()).into_response(),
    }
}
