//! API errors: every failure is a JSON body `{"error": "..."}` with the matching status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::store::client::StoreError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter is missing, malformed or out of bounds (400).
    #[error("{0}")]
    BadRequest(String),
    /// No or a wrong bearer token (401).
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// The thing asked for does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request body is over `server.body_limit_bytes` (413).
    #[error("request body too large")]
    TooLarge,
    /// A dependency other than ClickHouse cannot take the request now; send it again (503).
    #[error("{0}")]
    Unavailable(String),
    /// ClickHouse failed; the details go to the log, not to the client (503).
    #[error("storage unavailable")]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Store(_) | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A JSON error response with `status`.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Store(e) = &self {
            tracing::error!(error = %e, "API query failed");
        }
        let mut resp = json_error(self.status(), &self.to_string());
        if matches!(self, ApiError::Unauthorized) {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"gema\""),
            );
        }
        resp
    }
}
