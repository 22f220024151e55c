//! `[kafka]`: where Kafka is and how gema names its topics and groups.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::setting::Invalid;

/// Where Kafka is and how gema names its topics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated. Env: `GEMA_KAFKA_BROKERS`.
    pub brokers: String,
    /// Prefix of every topic and consumer group (`<prefix>.mentions.raw`, `<prefix>-enrich`).
    /// Env: `GEMA_KAFKA_TOPIC_PREFIX`.
    pub topic_prefix: String,
    /// Partitions of the topics gema creates. Env: `GEMA_KAFKA_PARTITIONS`.
    pub partitions: i32,
    /// Replication factor of the topics gema creates (1 for a single broker).
    pub replication_factor: i32,
    /// `min.insync.replicas` of the topics gema creates: with the producers' `acks=all`, a write
    /// succeeds only once this many replicas have it (0: the broker's default). With a
    /// replication factor of 3, 2 keeps every acknowledged record through the loss of a broker.
    pub min_insync_replicas: i32,
    /// Extra librdkafka options for every client (e.g. `security.protocol`), passed through as-is.
    pub options: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// The names of gema's topics and consumer groups under this config's prefix.
    pub fn topics(&self) -> super::Topics {
        super::Topics::new(&self.topic_prefix)
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            topic_prefix: "gema".into(),
            partitions: 3,
            replication_factor: 1,
            min_insync_replicas: 0,
            options: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// Checks every value; the key is relative to `[kafka]`.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.brokers.trim().is_empty() {
            return Err(Invalid::new("brokers", &self.brokers, "must not be empty"));
        }
        let prefix_ok = !self.topic_prefix.is_empty()
            && self
                .topic_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !prefix_ok {
            return Err(Invalid::new(
                "topic_prefix",
                &self.topic_prefix,
                "use only ASCII letters, digits, '.', '_' and '-'",
            ));
        }
        if self.partitions < 1 {
            return Err(Invalid::new("partitions", self.partitions, "must be ≥ 1"));
        }
        if self.replication_factor < 1 {
            return Err(Invalid::new(
                "replication_factor",
                self.replication_factor,
                "must be ≥ 1",
            ));
        }
        if !(0..=self.replication_factor).contains(&self.min_insync_replicas) {
            return Err(Invalid::new(
                "min_insync_replicas",
                self.min_insync_replicas,
                &format!(
                    "must be between 0 (the broker's default) and the replication factor ({})",
                    self.replication_factor
                ),
            ));
        }
        Ok(())
    }
}
