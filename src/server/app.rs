//! The server's shared state, its routes and middleware, and the listener with graceful shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;

use super::auth::{self, Token};
use super::config::ServerConfig;
use super::error::{json_error, ApiError};
use super::sse::Feed;
use super::{api, dashboard};
use crate::metrics::Metrics;
use crate::store::client::Store;
use crate::tracked::TrackedQueryConfig;

/// Counters of the server itself, by response class.
#[derive(Debug, Default)]
pub struct Counters {
    pub ok: AtomicU64,
    pub client_error: AtomicU64,
    pub unauthorized: AtomicU64,
    pub server_error: AtomicU64,
}

impl Counters {
    /// Prometheus text of the server's counters and the feeds' gauges.
    pub fn render(&self, feeds: &[(&str, &Feed)]) -> String {
        let mut out = String::from(
            "# HELP gema_server_requests_total HTTP responses by class.\n\
             # TYPE gema_server_requests_total counter\n",
        );
        for (class, c) in [
            ("2xx_3xx", &self.ok),
            ("4xx", &self.client_error),
            ("401", &self.unauthorized),
            ("5xx", &self.server_error),
        ] {
            out.push_str(&format!(
                "gema_server_requests_total{{class=\"{class}\"}} {}\n",
                c.load(Ordering::Relaxed)
            ));
        }
        out.push_str(
            "# HELP gema_server_feed_clients Live-feed clients connected.\n\
             # TYPE gema_server_feed_clients gauge\n",
        );
        for (name, feed) in feeds {
            out.push_str(&format!(
                "gema_server_feed_clients{{feed=\"{name}\"}} {}\n",
                feed.clients.load(Ordering::Relaxed)
            ));
        }
        out.push_str(
            "# HELP gema_server_feed_events_total Events the live feeds read from Kafka.\n\
             # TYPE gema_server_feed_events_total counter\n",
        );
        for (name, feed) in feeds {
            out.push_str(&format!(
                "gema_server_feed_events_total{{feed=\"{name}\"}} {}\n",
                feed.received.load(Ordering::Relaxed)
            ));
        }
        out
    }
}

/// What every handler shares.
pub struct AppState {
    pub store: Store,
    pub config: ServerConfig,
    /// Tracked queries (name and query text), for the dashboard's pickers.
    pub tracked: Vec<TrackedQueryConfig>,
    /// `None` only with `--insecure-no-auth`.
    pub token: Option<Token>,
    /// Alerts (`/api/feed`).
    pub feed: Arc<Feed>,
    /// Negative mentions of tracked queries (`/api/feed/mentions`).
    pub mention_feed: Arc<Feed>,
    /// Incident versions (`/api/feed/incidents`).
    pub incident_feed: Arc<Feed>,
    /// The counters of the stages running in this process (if any).
    pub metrics: Arc<Metrics>,
    /// The webhook connector's producer (`/api/ingest`); `None`: ingest answers 503.
    pub ingest: Option<Arc<super::ingest::Ingest>>,
    /// The sentiment model `/api/classify` asks (`enrich.sentiment_model`, the fast tier).
    pub classifier: Arc<dyn crate::sentiment::SentimentModel>,
    pub counters: Counters,
    /// The `[[sources]]` connectors of the config and where their state files are, for
    /// `/api/sources` and `/readyz` (whichever process runs them).
    pub sources: Vec<crate::sources::config::SourceConfig>,
    pub state_dir: std::path::PathBuf,
    /// The zone times are shown in (`[display]`): the API's `*_local` fields and the dashboard.
    pub display: crate::display::Display,
    /// Width of a trend bucket (`[trends] bucket_ms`) in seconds: the step of the rising terms'
    /// lines is a whole number of them.
    pub trend_bucket_secs: u32,
}

async fn count(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let s = resp.status();
    let c = if s == StatusCode::UNAUTHORIZED {
        &st.counters.unauthorized
    } else if s.is_server_error() {
        &st.counters.server_error
    } else if s.is_client_error() {
        &st.counters.client_error
    } else {
        &st.counters.ok
    };
    c.fetch_add(1, Ordering::Relaxed);
    resp
}

/// 413 as JSON for a body over the limit: refused up front when its length is declared, and a
/// chunked one, cut by the body limit layers below, gets the same JSON answer instead of their
/// plain-text one.
async fn body_limit(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > st.config.body_limit_bytes as u64) {
        return json_error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    let resp = next.run(req).await;
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE && !json {
        return json_error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    resp
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

async fn not_found() -> Response {
    ApiError::NotFound("no such endpoint".into()).into_response()
}

async fn method_not_allowed() -> Response {
    json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

/// Every route, with auth on all but `/healthz` and `/readyz`.
pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route("/assets/{file}", get(dashboard::asset))
        .route("/metrics", get(api::metrics))
        .route("/api/trends/top", get(api::trends_top))
        .route("/api/trends/rising", get(api::trends_rising))
        .route("/api/mentions", get(api::mentions))
        .route(
            "/api/mentions/{key}/sentiment",
            post(api::correct_sentiment),
        )
        .route("/api/timeline", get(api::timeline))
        .route("/api/share-of-voice", get(api::share_of_voice))
        .route("/api/queries", get(api::queries))
        .route("/api/display", get(api::display))
        .route("/api/headline", get(api::headline))
        .route("/api/authors/top", get(api::top_authors))
        .route("/api/sources", get(api::sources))
        .route("/api/alerts", get(api::alerts_list))
        .route("/api/alerts/{id}/{action}", post(api::alert_action))
        .route("/api/classify", post(api::classify))
        .route("/api/ingest", post(super::ingest::ingest))
        .route("/api/feed", get(api::feed))
        .route("/api/feed/mentions", get(api::mention_feed))
        .route("/api/feed/incidents", get(api::incident_feed))
        .route("/api/incidents", get(api::incidents_list))
        .route("/api/incidents/{id}", get(api::incident_get))
        .route("/api/incidents/{id}/{action}", post(api::incident_action))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require));
    let limit = state.config.body_limit_bytes;
    let mut app = Router::new()
        .route("/healthz", get(api::health))
        .route("/readyz", get(api::ready))
        // The dashboard checks the token itself: it also accepts `?token=` once.
        .route("/", get(dashboard::index))
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(middleware::from_fn_with_state(state.clone(), body_limit))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn_with_state(state.clone(), count));
    if !state.config.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = state
            .config
            .cors_origins
            .iter()
            .filter_map(|o| o.parse().ok())
            .collect();
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        );
    }
    app.with_state(state)
}

/// Serves `router(state)` on `addr` until `shutdown`; open SSE streams end with it.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(
        ?addr,
        auth = state.token.is_some(),
        "Serving the API and dashboard"
    );
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    fn state() -> Arc<AppState> {
        let client = clickhouse::Client::default();
        Arc::new(AppState {
            store: Store {
                client: client.clone(),
                version: "test".into(),
                database: "test".into(),
                cluster: None,
                writer: client,
            },
            config: ServerConfig::default(),
            tracked: Vec::new(),
            token: None,
            feed: Arc::new(Feed::new(16)),
            mention_feed: Arc::new(Feed::new(16)),
            incident_feed: Arc::new(Feed::new(16)),
            metrics: Arc::new(Metrics::default()),
            ingest: None,
            classifier: Arc::new(crate::sentiment::lexicon::LexiconModel),
            counters: Counters::default(),
            sources: Vec::new(),
            state_dir: std::path::PathBuf::from(".gema/state"),
            display: crate::display::Display::default(),
            trend_bucket_secs: 60,
        })
    }

    /// A chunked body (no Content-Length) over the limit gets the same JSON 413 as one whose
    /// length is declared. In process: over TCP the server answers before the client has sent
    /// everything, and the client may see the reset of the closing connection instead.
    #[tokio::test]
    async fn a_chunked_body_over_the_limit_gets_a_json_413() {
        let limit = ServerConfig::default().body_limit_bytes;
        for path in ["/api/classify", "/api/ingest"] {
            let chunks = (0..limit / 1024 + 4).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024]));
            let req = Request::post(path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from_stream(futures::stream::iter(chunks)))
                .unwrap();
            assert!(req.headers().get(header::CONTENT_LENGTH).is_none());
            let resp = router(state()).oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
            assert!(
                resp.headers()
                    .get(header::CONTENT_TYPE)
                    .is_some_and(|v| v.as_bytes().starts_with(b"application/json")),
                "{path}"
            );
        }
    }
}
