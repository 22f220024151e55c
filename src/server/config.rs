//! `[server]`: where `gema serve` listens and the limits it enforces on every request.

use serde::Deserialize;

use crate::setting::Invalid;

/// The HTTP server (`gema serve`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on. Loopback by default: put a TLS proxy in front to expose it.
    pub listen: String,
    /// Most rows one API response returns (`limit` above it is a 400).
    pub max_page_size: u64,
    /// Widest time range (`until - since`) one query may cover, in days.
    pub max_range_days: u64,
    /// Largest request body accepted, in bytes (bigger bodies get 413).
    pub body_limit_bytes: usize,
    /// Origins allowed by CORS; empty (the default) sends no CORS headers at all.
    pub cors_origins: Vec<String>,
    /// Recent alerts kept in memory so a reconnecting live-feed client can resume.
    pub feed_ring_capacity: usize,
    /// ClickHouse stops an API query after this many seconds (`max_execution_time`); the client
    /// gets a 503.
    pub query_timeout_s: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            max_page_size: 500,
            max_range_days: 90,
            body_limit_bytes: 16 * 1024,
            cors_origins: Vec::new(),
            feed_ring_capacity: 1000,
            query_timeout_s: 30,
        }
    }
}

impl ServerConfig {
    /// Checks the values once at start-up; the error names the key.
    /// Checks every value; the key is relative to `[server]`.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(Invalid::new(
                "listen",
                &self.listen,
                "expected an address such as 127.0.0.1:8080",
            ));
        }
        for (key, value) in [
            ("max_page_size", self.max_page_size),
            ("max_range_days", self.max_range_days),
            ("feed_ring_capacity", self.feed_ring_capacity as u64),
            ("query_timeout_s", self.query_timeout_s),
            ("body_limit_bytes", self.body_limit_bytes as u64),
        ] {
            if value == 0 {
                return Err(Invalid::new(key, 0, "must be ≥ 1"));
            }
        }
        Ok(())
    }
}
