//! The ClickHouse sink stage: `mentions.enriched` → table `mentions` (consumer group
//! `<prefix>-sink-ch`).
//!
//! Rows stream into one INSERT through the crate's inserter until it reaches its row, byte or
//! time limit; only when an INSERT has ended (committed by the server) are the offsets of its rows
//! stored. A crash aborts the open INSERT and the rows are consumed again.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::enrich::dlq::DeadLetter;
use crate::error::StageError;
use crate::kafka::{self, offsets::commit_now, OffsetTracker, Topics};
use crate::mention::EnrichedMention;
use crate::metrics::Metrics;

use super::row::MentionRow;
use super::Store;

/// Runs the sink until `shutdown` is cancelled; then ends the open INSERT, commits and returns.
pub async fn run(
    config: &Config,
    store: &Store,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), StageError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let consumer: StreamConsumer = kafka::consumer(&config.kafka, &topics.group("sink-ch"))
        .map_err(StageError::kafka("create the sink consumer"))?;
    consumer
        .subscribe(&[&topics.enriched])
        .map_err(StageError::kafka("subscribe to the enriched topic"))?;
    let producer =
        kafka::producer(&config.kafka).map_err(StageError::kafka("create a producer"))?;
    let period = Duration::from_millis(config.sink.period_ms);
    let mut inserter = store
        .client
        .inserter::<MentionRow>("mentions")
        .with_max_rows(config.sink.max_rows)
        .with_max_bytes(config.sink.max_bytes)
        .with_period(Some(period));
    let mut tracker = OffsetTracker::new();
    tracing::info!(topic = %topics.enriched, table = "mentions", "Sink stage started");

    loop {
        let wait = inserter
            .time_left()
            .unwrap_or(period)
            .max(Duration::from_millis(1));
        tokio::select! {
            _ = shutdown.cancelled() => break,
            received = tokio::time::timeout(wait, consumer.recv()) => match received {
                Ok(Ok(msg)) => {
                    let payload = msg.payload().unwrap_or(&[]);
                    match serde_json::from_slice::<EnrichedMention>(payload) {
                        Ok(e) => inserter
                            .write(&MentionRow::from(&e))
                            .await
                            .map_err(StageError::clickhouse("write a row"))?,
                        Err(err) => {
                            // Only a foreign producer could write this; keep it, with the reason.
                            let dead = DeadLetter {
                                stage: "sink-ch".into(),
                                reason: "schema".into(),
                                error: format!("invalid enriched mention: {err}"),
                                topic: msg.topic().to_string(),
                                partition: msg.partition(),
                                offset: msg.offset(),
                            };
                            let mut record = FutureRecord::<[u8], [u8]>::to(&topics.dlq)
                                .payload(payload)
                                .headers(dead.headers());
                            if let Some(k) = msg.key() {
                                record = record.key(k);
                            }
                            producer
                                .send(record, Duration::from_secs(30))
                                .await
                                .map_err(|(source, _)| StageError::Kafka { action: "deliver a dead letter", source })?;
                            metrics.dead_lettered("schema");
                        }
                    }
                    tracker.track(msg.topic(), msg.partition(), msg.offset());
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "Kafka consumer error"),
                Err(_) => {}
            }
        }
        let q = inserter
            .commit()
            .await
            .map_err(StageError::clickhouse("insert into mentions"))?;
        if q.rows > 0 {
            metrics.sink_rows.add(q.rows);
            metrics.sink_inserts.inc();
        }
        // Nothing buffered: every tracked row is in a committed INSERT (or in the DLQ).
        if inserter.pending().rows == 0 {
            tracker.store(&consumer);
        }
    }
    let q = inserter
        .end()
        .await
        .map_err(StageError::clickhouse("insert into mentions"))?;
    metrics.sink_rows.add(q.rows);
    tracker.store(&consumer);
    commit_now(&consumer).map_err(StageError::kafka("commit offsets on shutdown"))?;
    tracing::info!("Sink stage stopped after its last INSERT and offset commit");
    Ok(())
}
