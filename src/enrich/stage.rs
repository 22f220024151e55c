//! The enrich stage's Kafka loop (consumer group `<prefix>-enrich`).
//!
//! Messages are handled in small batches: every message of a batch is parsed, enriched and
//! produced (to `mentions.enriched` or the DLQ), then the stage awaits every delivery report and
//! only then stores the batch's offsets. A crash anywhere re-delivers the whole unacknowledged
//! batch: at-least-once, and the keyed ClickHouse table collapses the repeats.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::alerts::rules::negative_comment;
use crate::config::Config;
use crate::error::StageError;
use crate::kafka::{self, offsets::commit_now, progress::PartitionProgress, OffsetTracker, Topics};
use crate::mention::Mention;
use crate::metrics::Metrics;
use crate::trends::record::TermBatch;

use super::dlq::DeadLetter;
use super::enricher::terms_of;
use super::Enricher;

/// Runs the enrich stage until `shutdown` is cancelled; then finishes the current batch, commits
/// and returns.
pub async fn run(
    config: &Config,
    enricher: Enricher,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), StageError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let (consumer, producer) =
        kafka::stage_clients(&config.kafka, &topics.group("enrich"), &topics.raw, true)?;
    let linger = Duration::from_millis(config.enrich.batch_linger_ms);
    let mut tracker = OffsetTracker::new();
    // Event-time progress of the raw partitions: the low watermark stamped on term records.
    let mut progress = PartitionProgress::default();
    tracing::info!(topic = %topics.raw, model = enricher.model_name(), "Enrich stage started");
    let ctx = Ctx {
        enricher: &enricher,
        topics: &topics,
        producer: &producer,
        metrics: &metrics,
        config,
    };

    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = consumer.recv() => m,
        };
        let mut batch = Batch::default();
        match first {
            Ok(m) => handle(&m, &ctx, &mut batch, &mut tracker, &mut progress).await?,
            Err(e) => progress.consumer_error(e),
        }
        let deadline = Instant::now() + linger;
        while batch.len < config.enrich.batch_max {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(m)) => handle(&m, &ctx, &mut batch, &mut tracker, &mut progress).await?,
                Ok(Err(e)) => progress.consumer_error(e),
                Err(_) => break,
            }
        }
        // Before every assigned partition is read: the epoch, "no progress vouched for yet".
        let watermark = progress
            .low_watermark(&consumer)
            .and_then(chrono::DateTime::from_timestamp_millis)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
        batch
            .flush_terms(&producer, &topics.terms, Some(watermark))
            .await?;
        batch.acknowledged().await?;
        tracker.store(&consumer);
    }
    commit_now(&consumer).map_err(StageError::kafka("commit offsets on shutdown"))?;
    tracing::info!("Enrich stage stopped after committing its offsets");
    Ok(())
}

/// What every message of the stage needs.
struct Ctx<'a> {
    enricher: &'a Enricher,
    topics: &'a Topics,
    producer: &'a FutureProducer,
    metrics: &'a Metrics,
    config: &'a Config,
}

/// Delivery reports of one batch's outputs, and its term occurrences.
#[derive(Default)]
struct Batch {
    len: usize,
    deliveries: Vec<DeliveryFuture>,
    terms: TermBatch,
}

impl Batch {
    /// Produces the batch's term records (one per term), stamped with the low watermark.
    async fn flush_terms(
        &mut self,
        producer: &FutureProducer,
        topic: &str,
        watermark: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), StageError> {
        let records: Vec<_> = self.terms.drain(watermark).collect();
        for r in records {
            let json = serde_json::to_vec(&r).expect("a term record serialises");
            self.send(producer, topic, Some(r.term.as_bytes()), &json, None)
                .await?;
        }
        Ok(())
    }

    /// Waits until every record of the batch is acknowledged by Kafka.
    async fn acknowledged(&mut self) -> Result<(), StageError> {
        crate::kafka::delivery::acknowledged(self.deliveries.drain(..), "deliver a record").await
    }

    /// Queues a record, waiting for earlier deliveries while the producer queue is full.
    async fn send(
        &mut self,
        producer: &FutureProducer,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<(), StageError> {
        loop {
            let mut record = FutureRecord::<[u8], [u8]>::to(topic).payload(payload);
            if let Some(k) = key {
                record = record.key(k);
            }
            if let Some(h) = headers.clone() {
                record = record.headers(h);
            }
            match producer.send_result(record) {
                Ok(d) => {
                    self.deliveries.push(d);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.acknowledged().await?;
                    if self.deliveries.is_empty() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                Err((e, _)) => {
                    return Err(StageError::Kafka {
                        action: "queue a record",
                        source: e,
                    })
                }
            }
        }
    }
}

async fn handle(
    msg: &BorrowedMessage<'_>,
    ctx: &Ctx<'_>,
    batch: &mut Batch,
    tracker: &mut OffsetTracker,
    progress: &mut PartitionProgress,
) -> Result<(), StageError> {
    let Ctx {
        enricher,
        topics,
        producer,
        metrics,
        config,
    } = *ctx;
    metrics.enrich_received.inc();
    let payload = msg.payload().unwrap_or(&[]);
    match Mention::parse(payload) {
        Ok(mention) => {
            let enriched = enricher.enrich(mention);
            let json = serde_json::to_vec(&enriched).expect("an enriched mention serialises");
            batch
                .send(
                    producer,
                    &topics.enriched,
                    Some(enriched.key.as_bytes()),
                    &json,
                    None,
                )
                .await?;
            metrics.enrich_enriched.inc();
            if let Some(alert) = negative_comment(&enriched, &config.alerts.negative_comment) {
                // Keyed by query, so one router instance sees all of a query's alerts.
                let key = alert.query.clone().unwrap_or_default();
                let json = serde_json::to_vec(&alert).expect("an alert serialises");
                batch
                    .send(
                        producer,
                        &topics.alerts_raw,
                        Some(key.as_bytes()),
                        &json,
                        None,
                    )
                    .await?;
                metrics.alerts_raised.inc();
            }
            progress.saw(
                msg.partition(),
                enriched.mention.created_at.timestamp_millis(),
            );
            batch.terms.add(&enriched, terms_of(&enriched));
        }
        Err(err) => {
            let dead = DeadLetter {
                stage: "enrich".into(),
                reason: err.reason().into(),
                error: err.to_string(),
                topic: msg.topic().to_string(),
                partition: msg.partition(),
                offset: msg.offset(),
            };
            batch
                .send(
                    producer,
                    &topics.dlq,
                    msg.key(),
                    payload,
                    Some(dead.headers()),
                )
                .await?;
            metrics.dead_lettered(err.reason());
        }
    }
    batch.len += 1;
    tracker.track(msg.topic(), msg.partition(), msg.offset());
    Ok(())
}
