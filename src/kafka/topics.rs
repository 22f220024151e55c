//! Topic and consumer-group names, and creating the topics.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use super::config::KafkaConfig;

/// The names of gema's topics and consumer groups, all derived from `kafka.topic_prefix`.
#[derive(Debug, Clone)]
pub struct Topics {
    pub prefix: String,
    /// Mentions as connectors produced them (key `<platform>:<id>`).
    pub raw: String,
    /// Mentions with language, sentiment and entities.
    pub enriched: String,
    /// Messages no stage could process: the original bytes plus the reason in headers.
    pub dlq: String,
    /// Term occurrences from the enrich stage, keyed by term, for the trend stage.
    pub terms: String,
    /// Trend events from the trend stage.
    pub trends: String,
    /// Alert candidates (rules, trend stage), keyed by query or term, for the router.
    pub alerts_raw: String,
    /// Alerts the router delivered.
    pub alerts: String,
    /// Incident versions from the router (key: incident id).
    pub incidents: String,
    /// The trend stage's state per terms partition with `[trend_stage] state = "per-partition"`
    /// (compacted, one partition: [`crate::runner::changelog`]).
    pub trend_state: String,
}

impl Topics {
    pub fn new(prefix: &str) -> Topics {
        Topics {
            prefix: prefix.to_string(),
            raw: format!("{prefix}.mentions.raw"),
            enriched: format!("{prefix}.mentions.enriched"),
            dlq: format!("{prefix}.mentions.dlq"),
            terms: format!("{prefix}.terms"),
            trends: format!("{prefix}.trends"),
            alerts_raw: format!("{prefix}.alerts.raw"),
            alerts: format!("{prefix}.alerts"),
            incidents: format!("{prefix}.incidents"),
            trend_state: format!("{prefix}.trend-state"),
        }
    }

    pub fn all(&self) -> [&str; 9] {
        [
            &self.raw,
            &self.enriched,
            &self.dlq,
            &self.terms,
            &self.trends,
            &self.alerts_raw,
            &self.alerts,
            &self.incidents,
            &self.trend_state,
        ]
    }

    /// The consumer group's full name, e.g. `gema-enrich`.
    pub fn group(&self, group: Group) -> String {
        format!("{}-{}", self.prefix, group.suffix())
    }

    /// The topic `group` consumes.
    pub fn input(&self, group: Group) -> &str {
        match group {
            Group::Enrich => &self.raw,
            Group::SinkMentions => &self.enriched,
            Group::SinkTrends => &self.trends,
            Group::SinkAlerts => &self.alerts,
            Group::SinkIncidents => &self.incidents,
            Group::Trends => &self.terms,
            Group::Router => &self.alerts_raw,
        }
    }
}

/// The consumer group of each stage: one source of truth for their names (`<prefix>-<suffix>`)
/// and input topics ([`Topics::group`], [`Topics::input`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// The enrich stage, on `mentions.raw`.
    Enrich,
    /// The mentions sink, on `mentions.enriched`.
    SinkMentions,
    /// The trends sink, on `trends`.
    SinkTrends,
    /// The alerts sink, on `alerts`.
    SinkAlerts,
    /// The incidents sink, on `incidents`.
    SinkIncidents,
    /// The trend stage, on `terms`.
    Trends,
    /// The alert router, on `alerts.raw`.
    Router,
}

impl Group {
    /// Every stage's group, in data-flow order.
    pub const ALL: [Group; 7] = [
        Group::Enrich,
        Group::SinkMentions,
        Group::Trends,
        Group::Router,
        Group::SinkTrends,
        Group::SinkAlerts,
        Group::SinkIncidents,
    ];

    /// The name after the prefix; also the stage name in logs and dead-letter headers.
    pub fn suffix(self) -> &'static str {
        match self {
            Group::Enrich => "enrich",
            Group::SinkMentions => "sink-ch",
            Group::SinkTrends => "sink-trends",
            Group::SinkAlerts => "sink-alerts",
            Group::SinkIncidents => "sink-incidents",
            Group::Trends => "trends",
            Group::Router => "router",
        }
    }
}

/// Why topics could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("cannot create Kafka admin client for {brokers}: {source}")]
    Client {
        brokers: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("cannot reach Kafka at {brokers} to create topics: {source}")]
    Request {
        brokers: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("cannot create topic {topic}: {code}")]
    Create {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// How long topic creation is retried while the cluster is in flux.
const CREATE_RETRY_FOR: Duration = Duration::from_secs(30);

impl TopicError {
    /// A failure of a cluster in flux (a broker lost mid-request, the controller moving), which
    /// a retry a moment later gets past.
    fn in_flux(&self) -> bool {
        use RDKafkaErrorCode::*;
        let code = match self {
            TopicError::Client { .. } => return false,
            TopicError::Request { source, .. } => source.rdkafka_error_code(),
            TopicError::Create { code, .. } => Some(*code),
        };
        matches!(
            code,
            Some(
                BrokerTransportFailure
                    | NotController
                    | LeaderNotAvailable
                    | NotLeaderForPartition
                    | RequestTimedOut
            )
        )
    }
}

fn admin(config: &KafkaConfig) -> Result<AdminClient<DefaultClientContext>, TopicError> {
    super::client::base_config(config)
        .create()
        .map_err(|source| TopicError::Client {
            brokers: config.brokers.clone(),
            source,
        })
}

/// Creates gema's topics when they do not exist yet (existing ones are left as they are).
pub async fn ensure_topics(config: &KafkaConfig, topics: &Topics) -> Result<(), TopicError> {
    let admin = admin(config)?;
    let min_insync = config.min_insync_replicas.to_string();
    let new: Vec<NewTopic> = topics
        .all()
        .iter()
        .map(|t| {
            // A changelog: one partition (every key is read back at once), compacted, in
            // segments small enough for compaction to reach (the active one is never cleaned).
            let changelog = *t == topics.trend_state;
            let topic = NewTopic::new(
                t,
                if changelog { 1 } else { config.partitions },
                TopicReplication::Fixed(config.replication_factor),
            );
            let topic = if changelog {
                topic
                    .set("cleanup.policy", "compact")
                    .set("segment.bytes", "16777216")
                    .set("segment.ms", "600000")
                    .set("min.cleanable.dirty.ratio", "0.2")
            } else {
                topic
            };
            if config.min_insync_replicas > 0 {
                topic.set("min.insync.replicas", &min_insync)
            } else {
                topic
            }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    // A cluster in flux (a broker that dies while it answers, a controller that moves) fails a
    // request it would take a moment later: a process started then must not exit for it.
    let deadline = std::time::Instant::now() + CREATE_RETRY_FOR;
    loop {
        let outcome = match admin.create_topics(&new, &opts).await {
            Err(source) => Err(TopicError::Request {
                brokers: config.brokers.clone(),
                source,
            }),
            Ok(results) => results
                .into_iter()
                .find_map(|r| match r {
                    Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => None,
                    Err((topic, code)) => Some(Err(TopicError::Create { topic, code })),
                })
                .unwrap_or(Ok(())),
        };
        match outcome {
            Err(e) if e.in_flux() && std::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "Kafka did not create the topics; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => break other?,
        }
    }
    // A topic just created may be missing from a broker's metadata for a moment; a consumer that
    // subscribes then logs "Unknown topic or partition". Wait (up to 10 s) until every partition
    // of every topic has a leader.
    let (config, names) = (
        config.clone(),
        topics
            .all()
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>(),
    );
    let _ =
        tokio::task::spawn_blocking(move || wait_visible(&config, &names, Duration::from_secs(10)))
            .await;
    Ok(())
}

/// Whether every partition of every named topic has a leader in the metadata, polled until
/// `timeout`.
fn wait_visible(config: &KafkaConfig, names: &[String], timeout: Duration) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let Ok(consumer) = super::client::base_config(config).create::<BaseConsumer>() else {
        return false;
    };
    let until = std::time::Instant::now() + timeout;
    loop {
        let ready = consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .map(|m| {
                names.iter().all(|n| {
                    m.topics().iter().any(|t| {
                        t.name() == n
                            && t.error().is_none()
                            && !t.partitions().is_empty()
                            && t.partitions().iter().all(|p| p.leader() >= 0)
                    })
                })
            })
            .unwrap_or(false);
        if ready || std::time::Instant::now() >= until {
            return ready;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Deletes gema's topics for this prefix (used to clean up after an evaluation run).
pub async fn delete_topics(config: &KafkaConfig, topics: &Topics) -> Result<(), TopicError> {
    let names: Vec<String> = topics.all().iter().map(|s| s.to_string()).collect();
    delete(config, &names).await
}

/// Names of the existing topics that start with `prefix`.
pub fn list_prefixed(
    config: &KafkaConfig,
    prefix: &str,
) -> Result<Vec<String>, rdkafka::error::KafkaError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = super::client::base_config(config).create()?;
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(10))?;
    Ok(metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect())
}

/// Deletes the named topics.
pub async fn delete(config: &KafkaConfig, names: &[String]) -> Result<(), TopicError> {
    let admin = admin(config)?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    admin
        .delete_topics(&refs, &opts)
        .await
        .map_err(|source| TopicError::Request {
            brokers: config.brokers.clone(),
            source,
        })?;
    Ok(())
}
