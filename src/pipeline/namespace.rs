//! A run's own topics, database and state directory: created and dropped in one place, for the
//! demo, `gema eval-trends`, `gema bench` and the integration tests.

use std::path::PathBuf;

use chrono::Utc;

use crate::config::Config;
use crate::kafka::topics::{delete, delete_topics, list_prefixed};

use super::PipelineError;

/// A copy of the config pointed at names of its own (topic prefix, database, state directory).
pub struct Namespace {
    pub config: Config,
    state: PathBuf,
}

impl Namespace {
    /// Names no other run uses: topics `<kind>-<id>.*`, database `<kind>_<id>` (`-` in `kind`
    /// becomes `_`), state in a new directory under the system's temporary directory.
    pub fn fresh(config: &Config, kind: &str) -> std::io::Result<Namespace> {
        let id = format!(
            "{:x}",
            std::process::id() as u64 ^ Utc::now().timestamp_micros() as u64
        );
        let mut config = config.clone();
        config.kafka.topic_prefix = format!("{kind}-{id}");
        config.clickhouse.database = format!("{}_{id}", kind.replace('-', "_"));
        let state = std::env::temp_dir().join(format!("gema-{kind}-{id}"));
        std::fs::create_dir_all(&state)?;
        config.state_dir = state.clone();
        Ok(Namespace { config, state })
    }

    /// A namespace that each run starts afresh under fixed names (the demo's): topics
    /// `<prefix_base>-<time>.*` after every earlier `<prefix_base>-*` topic is deleted, the
    /// database `database` dropped, the state directory `state` emptied.
    pub async fn recreated(
        config: &Config,
        prefix_base: &str,
        database: &str,
        state: PathBuf,
    ) -> Result<Namespace, PipelineError> {
        let mut ns = config.clone();
        ns.kafka.topic_prefix = format!("{prefix_base}-{}", Utc::now().format("%Y%m%d%H%M%S"));
        ns.clickhouse.database = database.into();
        ns.state_dir = state.clone();
        let _ = std::fs::remove_dir_all(&state);
        let old = list_prefixed(&config.kafka, &format!("{prefix_base}-")).map_err(|source| {
            crate::kafka::topics::TopicError::Request {
                brokers: config.kafka.brokers.clone(),
                source,
            }
        })?;
        if !old.is_empty() {
            delete(&config.kafka, &old).await?;
        }
        crate::store::connect(&ns.clickhouse)
            .await?
            .drop_database()
            .await?;
        Ok(Namespace { config: ns, state })
    }

    /// Deletes the topics, the database and the state directory (best effort: what is already
    /// gone is fine).
    pub async fn cleanup(&self) {
        let _ = delete_topics(&self.config.kafka, &self.config.kafka.topics()).await;
        if let Ok(store) = crate::store::connect(&self.config.clickhouse).await {
            let _ = store.drop_database().await;
        }
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
