//! Bearer-token authentication for the API, the live feed and the dashboard.
//!
//! The token comes from `GEMA_API_TOKEN`. A request is let in when it carries
//! `Authorization: Bearer <token>` or the `gema_token` cookie. The dashboard is opened once as
//! `/?token=<token>`: the server checks it, sets the cookie (HttpOnly, SameSite=Strict, path /)
//! and redirects to `/` so the token leaves the address bar and history. The browser's
//! `EventSource` cannot send headers, which is why the cookie exists at all. Comparison is in
//! constant time over SHA-256 digests, so neither the token's bytes nor its length leak through
//! timing.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;

/// Name of the cookie the dashboard authenticates with.
pub const COOKIE_NAME: &str = "gema_token";

/// The expected token, kept only as its digest.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl Token {
    pub fn new(token: &str) -> Token {
        Token {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// Constant-time check of a presented token.
    pub fn matches(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        d.ct_eq(&self.digest).into()
    }
}

/// The token a request presents: the bearer header first, then the cookie.
pub fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, rest) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| rest.trim().to_string());
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v.to_string())
}

/// True when `headers` authenticate the request (always, when auth is off).
pub fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    match &state.token {
        None => true,
        Some(t) => presented(headers).is_some_and(|p| t.matches(&p)),
    }
}

/// Middleware: 401 with a JSON error unless the request is authenticated.
pub async fn require(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if authorized(&state, req.headers()) {
        next.run(req).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_cookie_are_accepted_only_with_the_right_token() {
        let t = Token::new("s3cret");
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches(""));
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert_eq!(presented(&h).as_deref(), Some("s3cret"));
        let mut h = HeaderMap::new();
        h.insert(COOKIE, "a=b; gema_token=xyz".parse().unwrap());
        assert_eq!(presented(&h).as_deref(), Some("xyz"));
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(presented(&h), None);
    }
}
