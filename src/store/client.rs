//! Connecting to ClickHouse and adapting to the server's version.

use clickhouse::Client;

use super::config::ClickHouseConfig;

/// A ClickHouse client bound to gema's database, plus what the server supports.
#[derive(Clone)]
pub struct Store {
    pub client: Client,
    /// The server's `version()`, e.g. `18.16.1` or `25.3.2.39`.
    pub version: String,
    pub database: String,
    /// `[clickhouse] cluster`: DDL runs `ON CLUSTER` it, on replicated tables.
    pub cluster: Option<String>,
    /// The client the sinks insert with: on servers that limit the partitions one INSERT may
    /// touch (`max_partitions_per_insert_block`, 100 by default since 19.x; 18.16 has no such
    /// setting), the limit is lifted, so a batch whose mentions span many months (a replayed
    /// archive; anything from 2000 to 2099 is accepted) still inserts instead of failing for
    /// ever.
    pub writer: Client,
}

/// Why ClickHouse could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot reach ClickHouse at {url}: {source} (is it running? `scripts/services.sh up`)"
    )]
    Connect {
        url: String,
        source: clickhouse::error::Error,
    },
    #[error("ClickHouse query failed ({what}): {source}")]
    Query {
        what: String,
        source: clickhouse::error::Error,
    },
    #[error("migration {name} failed: {source}")]
    Migration {
        name: String,
        source: clickhouse::error::Error,
    },
}

/// Row validation (`RowBinaryWithNamesAndTypes`) needs a server of this major version or newer;
/// older servers (e.g. Debian's 18.16) get unvalidated `RowBinary`.
pub const VALIDATION_MIN_MAJOR: u32 = 24;

pub fn server_supports_validation(version: &str) -> bool {
    version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .unwrap_or(0)
        >= VALIDATION_MIN_MAJOR
}

fn base_client(config: &ClickHouseConfig) -> Client {
    let urls = super::failover::urls(&config.url);
    let mut client = if urls.len() > 1 {
        super::failover::FailoverConnector::new(&urls)
            .expect("[clickhouse] url was validated")
            .clickhouse_client()
            .with_url(urls[0])
    } else {
        Client::default().with_url(&config.url)
    }
    .with_user(&config.user);
    if let Some(p) = &config.password {
        client = client.with_password(p);
    }
    client
}

/// Connects, detects the server version and turns the client's schema validation on where the
/// server supports it. The database itself may not exist yet (see [`super::migrate`]).
pub async fn connect(config: &ClickHouseConfig) -> Result<Store, StoreError> {
    let probe = base_client(config).with_validation(false);
    let version: String = probe
        .query("SELECT version()")
        .fetch_one()
        .await
        .map_err(|source| StoreError::Connect {
            url: config.url.clone(),
            source,
        })?;
    let validation = server_supports_validation(&version);
    let partition_limit: u64 = probe
        .query("SELECT count() FROM system.settings WHERE name = 'max_partitions_per_insert_block'")
        .fetch_one()
        .await
        .map_err(|source| StoreError::Query {
            what: "look up max_partitions_per_insert_block".into(),
            source,
        })?;
    tracing::info!(url = %config.url, %version, validation, "Connected to ClickHouse");
    let client = base_client(config)
        .with_database(&config.database)
        .with_validation(validation);
    let writer = if partition_limit > 0 {
        client
            .clone()
            .with_setting("max_partitions_per_insert_block", "0")
    } else {
        client.clone()
    };
    Ok(Store {
        client,
        version,
        database: config.database.clone(),
        cluster: config.cluster().map(str::to_string),
        writer,
    })
}

/// Maps a query's error to [`StoreError::Query`] saying what it was for.
pub(crate) fn query_err(what: &str) -> impl FnOnce(clickhouse::error::Error) -> StoreError + '_ {
    move |source| StoreError::Query {
        what: what.into(),
        source,
    }
}

impl Store {
    /// ` ON CLUSTER <name>` when the store is on a cluster, else nothing: goes after the object
    /// a DDL statement names.
    pub fn on_cluster(&self) -> String {
        self.cluster
            .as_deref()
            .map(|c| format!(" ON CLUSTER {c}"))
            .unwrap_or_default()
    }

    /// Drops this store's database (evaluation runs, the demo, tests), on every replica of its
    /// cluster.
    pub async fn drop_database(&self) -> Result<(), StoreError> {
        self.client
            .clone()
            .with_database("default")
            .query(&format!(
                "DROP DATABASE IF EXISTS {}{}",
                self.database,
                self.on_cluster()
            ))
            .execute()
            .await
            .map_err(|source| StoreError::Query {
                what: format!("drop database {}", self.database),
                source,
            })
    }

    /// Number of distinct mentions stored.
    pub async fn count_mentions(&self) -> Result<u64, StoreError> {
        self.client
            .query("SELECT uniqExact(key) FROM mentions")
            .fetch_one()
            .await
            .map_err(|source| StoreError::Query {
                what: "count mentions".into(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_only_on_modern_servers() {
        assert!(!server_supports_validation("18.16.1"));
        assert!(!server_supports_validation("23.8.1.1"));
        assert!(server_supports_validation("25.3.2.39"));
        assert!(!server_supports_validation("garbage"));
    }
}
