//! The ClickHouse sink stages: a Kafka topic → a table, one consumer group per table
//! (`<prefix>-sink-ch` for mentions, `<prefix>-sink-trends`, `<prefix>-sink-alerts`).
//!
//! Rows stream into one INSERT through the crate's inserter until it reaches its row, byte or
//! time limit; only when an INSERT has ended (committed by the server) are the offsets of its rows
//! stored. A crash aborts the open INSERT and the rows are consumed again.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::enrich::dlq::DeadLetter;
use crate::error::StageError;
use crate::kafka::{self, offsets::commit_now, OffsetTracker, Topics};
use crate::mention::EnrichedMention;
use crate::metrics::Metrics;

use super::row::{AlertRow, MentionRow, TrendRow};
use super::{rollup, Store};

/// One table fed from one topic.
pub trait SinkTable {
    type Row: clickhouse::RowOwned + clickhouse::RowWrite + serde::Serialize + Send + Sync;
    /// The table name.
    const TABLE: &'static str;
    /// The consumer group suffix (`<prefix>-<GROUP>`).
    const GROUP: &'static str;
    fn topic(topics: &Topics) -> &str;
    /// The row for one message, or why it is not one.
    fn parse(payload: &[u8]) -> Result<Self::Row, String>;
    /// The rollup minute a row falls in, for tables with rollups (see [`super::rollup`]).
    fn minute(_row: &Self::Row) -> Option<u32> {
        None
    }
}

/// Enriched mentions → `mentions`.
pub struct Mentions;
impl SinkTable for Mentions {
    type Row = MentionRow;
    const TABLE: &'static str = "mentions";
    const GROUP: &'static str = "sink-ch";
    fn topic(topics: &Topics) -> &str {
        &topics.enriched
    }
    fn parse(payload: &[u8]) -> Result<MentionRow, String> {
        serde_json::from_slice::<EnrichedMention>(payload)
            .map(|e| MentionRow::from(&e))
            .map_err(|e| format!("invalid enriched mention: {e}"))
    }
    fn minute(row: &MentionRow) -> Option<u32> {
        Some(rollup::minute_of(row.created_at))
    }
}

/// Trend events → `trends`.
pub struct Trends;
impl SinkTable for Trends {
    type Row = TrendRow;
    const TABLE: &'static str = "trends";
    const GROUP: &'static str = "sink-trends";
    fn topic(topics: &Topics) -> &str {
        &topics.trends
    }
    fn parse(payload: &[u8]) -> Result<TrendRow, String> {
        TrendRow::from_json(payload)
    }
}

/// Delivered alerts → `alerts`.
pub struct Alerts;
impl SinkTable for Alerts {
    type Row = AlertRow;
    const TABLE: &'static str = "alerts";
    const GROUP: &'static str = "sink-alerts";
    fn topic(topics: &Topics) -> &str {
        &topics.alerts
    }
    fn parse(payload: &[u8]) -> Result<AlertRow, String> {
        serde_json::from_slice::<crate::alerts::Alert>(payload)
            .map(|a| AlertRow::from(&a))
            .map_err(|e| format!("invalid alert: {e}"))
    }
}

/// Runs the sink of table `T` until `shutdown` is cancelled; then ends the open INSERT, commits
/// and returns.
pub async fn run<T: SinkTable>(
    config: &Config,
    store: &Store,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), StageError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let topic = T::topic(&topics).to_string();
    let (consumer, producer) =
        kafka::stage_clients(&config.kafka, &topics.group(T::GROUP), &topic, false)?;
    let period = Duration::from_millis(config.sink.period_ms);
    let mut inserter = store
        .client
        .inserter::<T::Row>(T::TABLE)
        .with_max_rows(config.sink.max_rows)
        .with_max_bytes(config.sink.max_bytes)
        .with_period(Some(period));
    let mut tracker = OffsetTracker::new();
    // Rollup minutes written since the last recomputation, and when that was.
    let rollup_period = Duration::from_millis(config.sink.rollup_period_ms);
    let mut dirty = BTreeSet::new();
    let mut last_rollup = Instant::now();
    tracing::info!(%topic, table = T::TABLE, "Sink stage started");

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
                    match T::parse(payload) {
                        Ok(row) => {
                            dirty.extend(T::minute(&row));
                            inserter
                                .write(&row)
                                .await
                                .map_err(StageError::clickhouse("write a row"))?
                        }
                        Err(error) => {
                            // Only a foreign producer could write this; keep it, with the reason.
                            let dead = DeadLetter {
                                stage: T::GROUP.into(),
                                reason: "schema".into(),
                                error,
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
            .map_err(StageError::clickhouse("insert rows"))?;
        if q.rows > 0 {
            metrics.sink_rows.add(q.rows);
            metrics.sink_inserts.inc();
        }
        // Nothing buffered: every tracked row is in a committed INSERT (or in the DLQ). Their
        // offsets are stored once the rollups of their minutes are recomputed too.
        if inserter.pending().rows == 0 {
            if !dirty.is_empty() && last_rollup.elapsed() >= rollup_period {
                refresh_rollups(store, &mut dirty).await?;
                last_rollup = Instant::now();
            }
            if dirty.is_empty() {
                tracker.store(&consumer);
            }
        }
    }
    let q = inserter
        .end()
        .await
        .map_err(StageError::clickhouse("insert rows"))?;
    metrics.sink_rows.add(q.rows);
    refresh_rollups(store, &mut dirty).await?;
    tracker.store(&consumer);
    commit_now(&consumer).map_err(StageError::kafka("commit offsets on shutdown"))?;
    tracing::info!(
        table = T::TABLE,
        "Sink stage stopped after its last INSERT and offset commit"
    );
    Ok(())
}

/// Recomputes the rollups of the `dirty` minutes and empties the set.
async fn refresh_rollups(store: &Store, dirty: &mut BTreeSet<u32>) -> Result<(), StageError> {
    rollup::refresh(store, dirty).await?;
    dirty.clear();
    Ok(())
}
