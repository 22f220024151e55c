//! `gema serve`: the HTTP API, the live alert feed (SSE) and the dashboard, in one axum server.
//!
//! - [`config`]: `[server]` settings and limits.
//! - [`auth`]: bearer token / cookie check (constant time).
//! - [`params`]: query-string validation; [`error`]: JSON errors.
//! - [`api`]: the handlers; [`ingest`]: the webhook connector; [`sse`]: the live feed; [`dashboard`]: the embedded web page.
//! - [`app`]: state, routes, middleware and the listener.
//! - [`start`](mod@start): everything `gema serve` runs, started in one call (the binary and the tests).

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod ingest;
pub mod params;
pub mod sse;
pub mod start;

pub use app::{router, serve, AppState, Counters};
pub use start::{start, RunningServer, ServeError, ServeOptions};
