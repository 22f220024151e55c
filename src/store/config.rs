//! `[clickhouse]` (where ClickHouse is) and `[sink]` (how the sink stages write to it).

use serde::Deserialize;

use crate::setting::Invalid;

/// Where ClickHouse is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// HTTP interface URL. Several, separated by commas, are the replicas of a one-shard
    /// cluster (each `http://host:port`): requests go to the one that last accepted a
    /// connection, and to the next when it stops (`store::failover`). Env:
    /// `GEMA_CLICKHOUSE_URL`.
    pub url: String,
    /// Database gema creates and uses. Env: `GEMA_CLICKHOUSE_DATABASE`.
    pub database: String,
    /// User name. Env: `GEMA_CLICKHOUSE_USER`.
    pub user: String,
    /// A cluster of the server's `remote_servers` (one shard, its replicas kept by ZooKeeper or
    /// ClickHouse Keeper): `gema migrate` then creates every database and table `ON CLUSTER`
    /// with `Replicated*MergeTree` engines, so each replica holds every row. Empty: one server.
    /// Env: `GEMA_CLICKHOUSE_CLUSTER`; `gema migrate --cluster NAME`.
    pub cluster: String,
    /// Never set in the file: the password comes only from `GEMA_CLICKHOUSE_PASSWORD`.
    #[serde(skip)]
    pub password: Option<String>,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: "http://127.0.0.1:8123".into(),
            database: "gema".into(),
            user: "default".into(),
            cluster: String::new(),
            password: None,
        }
    }
}

/// The ClickHouse sink stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// An INSERT ends after this many rows.
    pub max_rows: u64,
    /// An INSERT ends after this many uncompressed bytes.
    pub max_bytes: u64,
    /// An INSERT ends at the latest this long after its first row.
    pub period_ms: u64,
    /// The mentions sink recomputes the per-minute query rollups (timeline, share of voice) of
    /// the minutes it wrote to at most this often; offsets are stored after that.
    pub rollup_period_ms: u64,
    /// ...and the per-minute term rollups (top terms over 3 hours or more) at most this often
    /// while mentions keep arriving, and as soon as they stop for a second.
    pub term_rollup_period_ms: u64,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            max_rows: 100_000,
            max_bytes: 64 * 1024 * 1024,
            period_ms: 1000,
            rollup_period_ms: 2000,
            term_rollup_period_ms: 15_000,
        }
    }
}

impl ClickHouseConfig {
    /// Checks every value; the key is relative to `[clickhouse]`.
    pub fn validate(&self) -> Result<(), Invalid> {
        let urls = super::failover::urls(&self.url);
        if urls.is_empty() {
            return Err(Invalid::new("url", &self.url, "name at least one URL"));
        }
        if urls.len() > 1 {
            super::failover::replicas(&urls).map_err(|e| Invalid::new("url", &self.url, &e))?;
        } else if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(Invalid::new(
                "url",
                &self.url,
                "must start with http:// or https://",
            ));
        }
        let db_ok = !self.database.is_empty()
            && self
                .database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !db_ok {
            return Err(Invalid::new(
                "database",
                &self.database,
                "use only ASCII letters, digits and '_'",
            ));
        }
        let cluster_ok = self
            .cluster
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !cluster_ok {
            return Err(Invalid::new(
                "cluster",
                &self.cluster,
                "use only ASCII letters, digits, '_', '-' and '.'",
            ));
        }
        Ok(())
    }

    /// The cluster, when one is set.
    pub fn cluster(&self) -> Option<&str> {
        Some(self.cluster.as_str()).filter(|c| !c.is_empty())
    }
}

impl SinkConfig {
    /// Checks every value; the key is relative to `[sink]`.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.max_rows == 0 {
            return Err(Invalid::new("max_rows", 0, "must be ≥ 1"));
        }
        Ok(())
    }
}
