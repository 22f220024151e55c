//! Configuration: one TOML file (`gema.toml`, see `gema.example.toml`), every key optional,
//! overridden by `GEMA_*` environment variables and then by command-line flags.
//!
//! Each module owns its section's type and its validation (`[kafka]` in `kafka::config`,
//! `[enrich]` in `enrich::config`, ...); this file composes them, applies the environment, and
//! validates once, every error naming the full key ([`Invalid`]).

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::alerts::AlertsConfig;
pub use crate::display::DisplayConfig;
pub use crate::enrich::config::EnrichConfig;
pub use crate::kafka::config::KafkaConfig;
pub use crate::report::DigestConfig;
pub use crate::server::config::ServerConfig;
pub use crate::setting::Invalid;
pub use crate::sources::config::SourceConfig;
pub use crate::store::config::{ClickHouseConfig, SinkConfig};
use crate::tracked::{QuerySet, TrackedQueryConfig};
use crate::trends::{DetectorConfig, StateKeeping, TrendStageConfig};

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
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("invalid tracked query: {0}")]
    Query(#[from] crate::tracked::QueryError),
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
    /// Where the trend stage keeps its state: one process, or per terms partition so that
    /// several processes share the work (`[trend_stage]`).
    pub trend_stage: TrendStageConfig,
    /// Alert rules, routing and webhooks (`[alerts]`).
    pub alerts: AlertsConfig,
    /// Where stages keep local state (trend detector snapshots).
    pub state_dir: PathBuf,
    /// The HTTP API, live feed and dashboard (`[server]`, `gema serve`).
    pub server: ServerConfig,
    /// Platform connectors `gema run` starts (`[[sources]]`; `--no-sources` skips them).
    pub sources: Vec<SourceConfig>,
    /// How times are shown to people: CLI tables, the API's local fields, the dashboard
    /// (`[display]`).
    pub display: DisplayConfig,
    /// The daily email report (`[digest]`; off until `to` is set).
    pub digest: DigestConfig,
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
            trend_stage: TrendStageConfig::default(),
            alerts: AlertsConfig::default(),
            state_dir: PathBuf::from(".gema/state"),
            server: ServerConfig::default(),
            sources: Vec::new(),
            display: DisplayConfig::default(),
            digest: DigestConfig::default(),
        }
    }
}

impl Config {
    /// How times are shown ([`DisplayConfig`]); the zone was checked by [`Config::validate`],
    /// so a config built in code with a bad zone shows UTC rather than failing.
    pub fn display(&self) -> crate::display::Display {
        self.display.display().unwrap_or_default()
    }

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
            self.kafka.partitions = v
                .parse()
                .map_err(|e| Invalid::new("GEMA_KAFKA_PARTITIONS", &v, &format!("{e}")))?;
        }
        if let Some(v) = get("GEMA_CLICKHOUSE_URL") {
            self.clickhouse.url = v;
        }
        if let Some(v) = get("GEMA_CLICKHOUSE_DATABASE") {
            self.clickhouse.database = v;
        }
        if let Some(v) = get("GEMA_CLICKHOUSE_CLUSTER") {
            self.clickhouse.cluster = v;
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
        if let Some(v) = get("GEMA_ENRICH_WORKERS") {
            self.enrich.workers = v
                .parse()
                .map_err(|e| Invalid::new("GEMA_ENRICH_WORKERS", &v, &format!("{e}")))?;
        }
        if let Some(v) = get("GEMA_BERT_MODEL_DIR") {
            self.enrich.cascade.model_dir = v;
        }
        if let Some(v) = get("GEMA_E5_MODEL_DIR") {
            self.enrich.cascade.indonesian_model_dir = v;
        }
        Ok(())
    }

    /// Checks every value once, naming the full key of the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.validate().map_err(|e| e.within("kafka"))?;
        self.clickhouse
            .validate()
            .map_err(|e| e.within("clickhouse"))?;
        self.enrich.validate().map_err(|e| e.within("enrich"))?;
        self.sink.validate().map_err(|e| e.within("sink"))?;
        self.server.validate().map_err(|e| e.within("server"))?;
        self.display.validate().map_err(|e| e.within("display"))?;
        self.digest.validate().map_err(|e| e.within("digest"))?;
        for (section, d) in [
            ("trends", &self.trends),
            ("keywords", &self.keywords),
            ("spikes", &self.spikes),
        ] {
            d.validate().map_err(|e| Invalid::from(e).within(section))?;
        }
        let strategy = self.kafka.options.get("partition.assignment.strategy");
        if self.trend_stage.state == StateKeeping::PerPartition
            && strategy.is_some_and(|s| s.contains("cooperative"))
        {
            return Err(Invalid::new(
                "state",
                "per-partition",
                "needs the eager rebalance protocol: remove kafka.options \"partition.assignment.strategy\" = \"cooperative-sticky\" (each rebalance must restart every terms partition from its committed offset)",
            )
            .within("trend_stage")
            .into());
        }
        for (i, source) in self.sources.iter().enumerate() {
            let key = format!("sources[{i}]");
            source.validate().map_err(|e| e.within(&key))?;
            if self.sources[..i].iter().any(|s| s.name == source.name) {
                return Err(Invalid::new(
                    "name",
                    &source.name,
                    "another source has this name (names pick the state file)",
                )
                .within(&key)
                .into());
            }
            use crate::sources::config::SourceKind;
            let needs_queries = match source.kind {
                SourceKind::Jetstream => true,
                SourceKind::X => source.follow.iter().all(|f| f.trim().is_empty()),
                SourceKind::Rss => source.preset.as_deref() == Some("google-news"),
                _ => false,
            };
            if needs_queries && self.tracked.is_empty() {
                return Err(Invalid::new(
                    "kind",
                    source.kind.name(),
                    "this source follows the tracked queries: add [[tracked]] queries",
                )
                .within(&key)
                .into());
            }
        }
        self.queries()?;
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
    fn sources_need_unique_names_and_tracked_queries_where_they_follow_them() {
        let two = "[[sources]]\nname = \"a\"\nkind = \"hn\"\nfollow = [\"x\"]\n";
        let c: Config = toml::from_str(&format!("{two}{two}")).unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("sources[1].name"), "{err}");
        let jet = "[[sources]]\nname = \"j\"\nkind = \"jetstream\"\n";
        let c: Config = toml::from_str(jet).unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("sources[0].kind") && err.contains("[[tracked]]"),
            "{err}"
        );
        let c: Config = toml::from_str(&format!(
            "[[tracked]]\nname = \"NusaPay\"\nquery = \"nusapay\"\n{jet}"
        ))
        .unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn nested_sections_name_the_full_key() {
        let mut c = Config::default();
        c.enrich.cascade.confidence_below = 1.5;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("enrich.cascade.confidence_below"), "{err}");
        let mut c = Config::default();
        c.server.listen = "nowhere".into();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("server.listen"), "{err}");
        let c: Config = toml::from_str(
            "[digest]\nto = [\"a@example.com\"]\nfrom = \"g@example.com\"\nat = \"8\"\n",
        )
        .unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("digest.at"), "{err}");
        let c: Config = toml::from_str(
            "[[sources]]\nname = \"news\"\nkind = \"rss\"\nfollow = [\"feed.xml\"]\n",
        )
        .unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("sources[0].follow"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<Config>("[kafka]\nbrokerz = \"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("brokerz"), "{err}");
    }
}
