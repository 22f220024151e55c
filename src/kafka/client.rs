//! Producer and consumer construction with gema's delivery guarantees.

use rdkafka::config::ClientConfig;
use std::sync::atomic::{AtomicU64, Ordering};

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use super::config::KafkaConfig;

/// Client settings shared by every client: brokers plus the user's pass-through options.
pub fn base_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers);
    for (k, v) in &config.options {
        c.set(k, v);
    }
    c
}

/// An idempotent producer: retries never duplicate or reorder records within a partition.
pub fn producer(config: &KafkaConfig) -> Result<FutureProducer, KafkaError> {
    let mut c = base_config(config);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", "60000");
    // User options win over gema's defaults.
    for (k, v) in &config.options {
        c.set(k, v);
    }
    c.create()
}

/// A consumer in `group` for at-least-once processing: offsets are committed only after the
/// stage stores them with [`super::OffsetTracker`], i.e. after its outputs are acknowledged.
pub fn consumer(config: &KafkaConfig, group: &str) -> Result<StageConsumer, KafkaError> {
    consumer_with_eof(config, group, false)
}

/// The context of gema's consumers: librdkafka hands every error event both to the context and
/// to `recv()`; a partition end is not an error (the stages that ask for them track them), so
/// only the others are logged here. It also counts rebalances, so that a stage with state per
/// input partition learns that its partitions changed (see [`crate::runner::BatchPolicy`]).
#[derive(Default)]
pub struct StageContext {
    rebalances: AtomicU64,
}

impl StageContext {
    /// How many times partitions were assigned or revoked so far. Rebalance callbacks run
    /// inside the consumer's `recv()`, so the count changes only while a stage waits for input.
    pub fn rebalances(&self) -> u64 {
        self.rebalances.load(Ordering::SeqCst)
    }
}

impl ClientContext for StageContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
            tracing::error!("librdkafka: {error}: {reason}");
        }
    }
}

impl ConsumerContext for StageContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if !matches!(rebalance, Rebalance::Error(_)) {
            self.rebalances.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A stage's consumer.
pub type StageConsumer = StreamConsumer<StageContext>;

/// [`consumer`], optionally reporting the end of each partition (`KafkaError::PartitionEOF`).
pub fn consumer_with_eof(
    config: &KafkaConfig,
    group: &str,
    partition_eof: bool,
) -> Result<StageConsumer, KafkaError> {
    let mut c = base_config(config);
    c.set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set(
            "enable.partition.eof",
            if partition_eof { "true" } else { "false" },
        )
        // Alerts must not wait for a full fetch window on a quiet topic.
        .set("fetch.wait.max.ms", "100")
        // Prefetch at most 16 MB per stage (librdkafka's default is 64 MB): a process runs up to
        // six stage consumers, and after an outage each would fill its queue from the backlog.
        .set("queued.max.messages.kbytes", "16384");
    for (k, v) in &config.options {
        c.set(k, v);
    }
    c.create_with_context(StageContext::default())
}
