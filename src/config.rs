//! Configuration: one TOML file (`gema.toml`, see `gema.example.toml`), every key optional,
//! overridden by `GEMA_*` environment variables and then by command-line flags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::alerts::AlertsConfig;
use crate::server::config::ServerConfig;
use crate::tracked::{QuerySet, TrackedQueryConfig};
use crate::trends::DetectorConfig;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid value {value:?} for {key}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("invalid tracked query: {0}")]
    Query(#[from] crate::tracked::QueryError),
    #[error("[{section}]: {source}")]
    Trends {
        section: &'static str,
        source: crate::trends::ConfigError,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub clickhouse: ClickHouseConfig,
    pub enrich: EnrichConfig,
    pub sink: SinkConfig,
    /// Tracked queries (`[[tracked]]` with `name` and `query`): what the user listens for.
    pub tracked: Vec<TrackedQueryConfig>,
    /// Trend detection over hashtags and @handles (`[trends]`).
    pub trends: DetectorConfig,
    /// Trend detection over keywords and bigrams (`[keywords]`): a large, noisy vocabulary, so
    /// only strong, broad bursts (low sensitivity by default).
    pub keywords: DetectorConfig,
    /// Spike detection over tracked-query volume and negative volume (`[spikes]`).
    pub spikes: DetectorConfig,
    /// Alert rules, routing and webhooks (`[alerts]`).
    pub alerts: AlertsConfig,
    /// Where stages keep local state (trend detector snapshots).
    pub state_dir: PathBuf,
    /// The HTTP API, live feed and dashboard (`[server]`, `gema serve`).
    pub server: ServerConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            kafka: KafkaConfig::default(),
            clickhouse: ClickHouseConfig::default(),
            enrich: EnrichConfig::default(),
            sink: SinkConfig::default(),
            tracked: Vec::new(),
            trends: DetectorConfig::default(),
            keywords: DetectorConfig {
                sensitivity: crate::trends::Sensitivity::Low,
                ..DetectorConfig::default()
            },
            spikes: DetectorConfig::default(),
            alerts: AlertsConfig::default(),
            state_dir: PathBuf::from(".gema/state"),
            server: ServerConfig::default(),
        }
    }
}

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
    /// Extra librdkafka options for every client (e.g. `security.protocol`), passed through as-is.
    pub options: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// The names of gema's topics and consumer groups under this config's prefix.
    pub fn topics(&self) -> crate::kafka::Topics {
        crate::kafka::Topics::new(&self.topic_prefix)
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            topic_prefix: "gema".into(),
            partitions: 3,
            replication_factor: 1,
            options: BTreeMap::new(),
        }
    }
}

/// Where ClickHouse is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// HTTP interface URL. Env: `GEMA_CLICKHOUSE_URL`.
    pub url: String,
    /// Database gema creates and uses. Env: `GEMA_CLICKHOUSE_DATABASE`.
    pub database: String,
    /// User name. Env: `GEMA_CLICKHOUSE_USER`.
    pub user: String,
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
            password: None,
        }
    }
}

/// The enrich stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichConfig {
    /// Sentiment model file made by `gema train` (relative to the working directory); `builtin`
    /// uses the small built-in lexicon instead. Env: `GEMA_SENTIMENT_MODEL`.
    pub sentiment_model: String,
    /// Most messages enriched before their outputs are awaited and offsets stored.
    pub batch_max: usize,
    /// How long a batch waits for more messages once it has one.
    pub batch_linger_ms: u64,
    /// The sentiment cascade: the transformer tier re-scores uncertain mentions that matter
    /// (`[enrich.cascade]`).
    pub cascade: crate::enrich::cascade::CascadeConfig,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        EnrichConfig {
            sentiment_model: crate::sentiment::DEFAULT_MODEL_PATH.into(),
            batch_max: 2000,
            batch_linger_ms: 20,
            cascade: crate::enrich::cascade::CascadeConfig::default(),
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
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            max_rows: 100_000,
            max_bytes: 64 * 1024 * 1024,
            period_ms: 1000,
            rollup_period_ms: 2000,
        }
    }
}

impl Config {
    /// Loads `path` (or `gema.toml` in the working directory when it exists), then applies the
    /// `GEMA_*` environment variables, then validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let default_path = Path::new("gema.toml");
        let path = match path {
            Some(p) => Some(p.to_path_buf()),
            None if default_path.exists() => Some(default_path.to_path_buf()),
            None => None,
        };
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse { path, source })?
            }
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        config.validate()?;
        Ok(config)
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("GEMA_KAFKA_BROKERS") {
            self.kafka.brokers = v;
        }
        if let Some(v) = get("GEMA_KAFKA_TOPIC_PREFIX") {
            self.kafka.topic_prefix = v;
        }
        if let Some(v) = get("GEMA_KAFKA_PARTITIONS") {
            self.kafka.partitions = v.parse().map_err(|e| ConfigError::Invalid {
                key: "GEMA_KAFKA_PARTITIONS".into(),
                value: v.clone(),
                reason: format!("{e}"),
            })?;
        }
        if let Some(v) = get("GEMA_CLICKHOUSE_URL") {
            self.clickhouse.url = v;
        }
        if let Some(v) = get("GEMA_CLICKHOUSE_DATABASE") {
            self.clickhouse.database = v;
        }
        if let Some(v) = get("GEMA_CLICKHOUSE_USER") {
            self.clickhouse.user = v;
        }
        if let Some(v) = get("GEMA_CLICKHOUSE_PASSWORD") {
            self.clickhouse.password = Some(v);
        }
        if let Some(v) = get("GEMA_SENTIMENT_MODEL") {
            self.enrich.sentiment_model = v;
        }
        if let Some(v) = get("GEMA_BERT_MODEL_DIR") {
            self.enrich.cascade.model_dir = v;
        }
        Ok(())
    }

    /// Checks every value once, naming the key of the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, value: String, reason: &str| ConfigError::Invalid {
            key: key.into(),
            value,
            reason: reason.into(),
        };
        if self.kafka.brokers.trim().is_empty() {
            return Err(invalid(
                "kafka.brokers",
                self.kafka.brokers.clone(),
                "must not be empty",
            ));
        }
        let prefix_ok = !self.kafka.topic_prefix.is_empty()
            && self
                .kafka
                .topic_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !prefix_ok {
            return Err(invalid(
                "kafka.topic_prefix",
                self.kafka.topic_prefix.clone(),
                "use only ASCII letters, digits, '.', '_' and '-'",
            ));
        }
        if self.kafka.partitions < 1 {
            return Err(invalid(
                "kafka.partitions",
                self.kafka.partitions.to_string(),
                "must be ≥ 1",
            ));
        }
        if !(self.clickhouse.url.starts_with("http://")
            || self.clickhouse.url.starts_with("https://"))
        {
            return Err(invalid(
                "clickhouse.url",
                self.clickhouse.url.clone(),
                "must start with http:// or https://",
            ));
        }
        let db_ok = !self.clickhouse.database.is_empty()
            && self
                .clickhouse
                .database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !db_ok {
            return Err(invalid(
                "clickhouse.database",
                self.clickhouse.database.clone(),
                "use only ASCII letters, digits and '_'",
            ));
        }
        if self.enrich.batch_max == 0 {
            return Err(invalid("enrich.batch_max", "0".into(), "must be ≥ 1"));
        }
        self.enrich
            .cascade
            .validate()
            .map_err(|(key, value, reason)| ConfigError::Invalid { key, value, reason })?;
        if self.enrich.cascade.enabled && self.enrich.sentiment_model == "builtin" {
            return Err(invalid(
                "enrich.cascade.enabled",
                "true".into(),
                "the cascade fuses the transformer with the trained fast model: set \
                 enrich.sentiment_model to a file made by `gema train`",
            ));
        }
        if self.sink.max_rows == 0 {
            return Err(invalid("sink.max_rows", "0".into(), "must be ≥ 1"));
        }
        self.server
            .validate()
            .map_err(|reason| ConfigError::Invalid {
                key: "server".into(),
                value: String::new(),
                reason,
            })?;
        self.queries()?;
        for (section, d) in [
            ("trends", &self.trends),
            ("keywords", &self.keywords),
            ("spikes", &self.spikes),
        ] {
            d.validate()
                .map_err(|source| ConfigError::Trends { section, source })?;
        }
        Ok(())
    }

    /// The tracked queries, compiled (fails with the query's name and the error's position).
    pub fn queries(&self) -> Result<QuerySet, ConfigError> {
        Ok(QuerySet::compile(&self.tracked)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_and_bad_values_name_the_key() {
        let mut c: Config = toml::from_str("[kafka]\nbrokers = \"a:1\"\n").unwrap();
        c.apply_env(|k| (k == "GEMA_KAFKA_BROKERS").then(|| "b:2".to_string()))
            .unwrap();
        assert_eq!(c.kafka.brokers, "b:2");
        c.clickhouse.database = "x; DROP".into();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("clickhouse.database"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<Config>("[kafka]\nbrokerz = \"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("brokerz"), "{err}");
    }
}
