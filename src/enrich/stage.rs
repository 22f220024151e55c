//! The enrich stage's Kafka loop (consumer group `<prefix>-enrich`).
//!
//! Messages are handled in small batches: every message of a batch is parsed, enriched and
//! produced (to `mentions.enriched` or the DLQ), then the stage awaits every delivery report and
//! only then stores the batch's offsets. A crash anywhere re-delivers the whole unacknowledged
//! batch: at-least-once, and the keyed ClickHouse table collapses the repeats.

use std::collections::VecDeque;
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
use crate::mention::{EnrichedMention, Escalation, Mention};
use crate::metrics::Metrics;
use crate::trends::record::TermBatch;

use super::cascade::{record, Offer, Pending};
use super::dlq::DeadLetter;
use super::enricher::terms_of;
use super::Enricher;

/// Most mentions in batches kept waiting for the transformer's verdicts before the oldest batch
/// is finished anyway. Under load each batch waits up to `max_wait_ms`, so this bounds the
/// stage's throughput at about `MAX_WAITING_MENTIONS / max_wait_ms` (80,000/s at 250 ms) while
/// keeping memory bounded (a few tens of MB).
const MAX_WAITING_MENTIONS: usize = 20_000;

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

    // Batches whose escalated mentions are still with the transformer, oldest first. Their other
    // outputs are already produced; a batch is finished (verdicts, acknowledgements, offsets)
    // once every verdict is in or its wait is over, so the transformer's latency overlaps with
    // reading instead of stalling it. A batch that follows one still waiting waits behind it:
    // offsets are stored in batch order. At most MAX_WAITING_MENTIONS wait; beyond that the
    // oldest batch is finished even if that means waiting for it.
    let mut waiting: VecDeque<(Batch, OffsetTracker)> = VecDeque::new();
    loop {
        let wait_until = waiting
            .front()
            .map(|(b, _)| b.wait_until.unwrap_or_else(Instant::now));
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(wait_until.unwrap_or_else(Instant::now)),
                if wait_until.is_some() => {
                if let Some((b, t)) = waiting.pop_front() {
                    finish(b, t, &ctx, &consumer, &mut progress).await?;
                }
                continue;
            }
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
        let batch_tracker = std::mem::take(&mut tracker);
        if waiting.is_empty() && batch.escalated.is_empty() {
            finish(batch, batch_tracker, &ctx, &consumer, &mut progress).await?;
        } else {
            waiting.push_back((batch, batch_tracker));
        }
        while !waiting.is_empty() {
            // A dozen batches or so (each waits at most max_wait_ms): cheap to add up.
            let held: usize = waiting.iter().map(|(b, _)| b.len).sum();
            let (front, _) = waiting.front_mut().expect("non-empty");
            if !(front.is_ready() || held > MAX_WAITING_MENTIONS) {
                break;
            }
            let (b, t) = waiting.pop_front().expect("non-empty");
            finish(b, t, &ctx, &consumer, &mut progress).await?;
        }
    }
    while let Some((b, t)) = waiting.pop_front() {
        finish(b, t, &ctx, &consumer, &mut progress).await?;
    }
    commit_now(&consumer).map_err(StageError::kafka("commit offsets on shutdown"))?;
    tracing::info!("Enrich stage stopped after committing its offsets");
    Ok(())
}

/// Completes a batch: its escalated mentions get the transformer's verdict (or keep the fast
/// label once their wait is over) and are produced, then the terms, then every delivery is
/// awaited and only then the batch's offsets are stored.
async fn finish(
    mut batch: Batch,
    mut tracker: OffsetTracker,
    ctx: &Ctx<'_>,
    consumer: &crate::kafka::client::StageConsumer,
    progress: &mut PartitionProgress,
) -> Result<(), StageError> {
    let name = ctx.enricher.cascade().map(|c| c.name()).unwrap_or_default();
    for (mut enriched, pending, partition) in std::mem::take(&mut batch.escalated) {
        match pending.verdict().await {
            Some(s) => {
                ctx.metrics.cascade_decided.inc();
                record(&mut enriched, Escalation::Decided, Some((s, name)));
            }
            None => {
                ctx.metrics.cascade_timed_out.inc();
                record(&mut enriched, Escalation::TimedOut, None);
            }
        }
        emit(enriched, partition, ctx, &mut batch, progress).await?;
    }
    // Before every assigned partition is read: the epoch, "no progress vouched for yet".
    let watermark = progress
        .low_watermark(consumer)
        .and_then(chrono::DateTime::from_timestamp_millis)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
    batch
        .flush_terms(ctx.producer, &ctx.topics.terms, Some(watermark))
        .await?;
    batch.acknowledged().await?;
    tracker.store(consumer);
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

/// Delivery reports of one batch's outputs, its term occurrences, and the mentions waiting for
/// the transformer tier (with their raw partition).
#[derive(Default)]
struct Batch {
    len: usize,
    deliveries: Vec<DeliveryFuture>,
    terms: TermBatch,
    escalated: Vec<(EnrichedMention, Pending, i32)>,
    /// When the last escalated mention's wait ends.
    wait_until: Option<Instant>,
}

impl Batch {
    /// Whether every escalated mention's verdict is in (or its wait is over), without waiting.
    fn is_ready(&mut self) -> bool {
        self.escalated.iter_mut().all(|(_, p, _)| p.is_ready())
    }
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
        ..
    } = *ctx;
    metrics.enrich_received.inc();
    let payload = msg.payload().unwrap_or(&[]);
    match Mention::parse(payload) {
        Ok(mention) => {
            let mut enriched = enricher.enrich(mention);
            if let Some(cascade) = enricher.cascade() {
                match cascade.offer(&enriched) {
                    Offer::Queued(pending) => {
                        metrics.cascade_escalated.inc();
                        batch.wait_until = batch.wait_until.max(Some(pending.deadline()));
                        batch.escalated.push((enriched, pending, msg.partition()));
                        batch.len += 1;
                        tracker.track(msg.topic(), msg.partition(), msg.offset());
                        return Ok(());
                    }
                    Offer::QueueFull => {
                        metrics.cascade_queue_full.inc();
                        record(&mut enriched, Escalation::QueueFull, None);
                    }
                    Offer::NotNeeded => record(&mut enriched, Escalation::NotNeeded, None),
                }
            }
            emit(enriched, msg.partition(), ctx, batch, progress).await?;
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

/// Produces an enriched mention, its negative-comment alert if any, and its terms.
async fn emit(
    enriched: EnrichedMention,
    partition: i32,
    ctx: &Ctx<'_>,
    batch: &mut Batch,
    progress: &mut PartitionProgress,
) -> Result<(), StageError> {
    let Ctx {
        enricher,
        topics,
        producer,
        metrics,
        config,
    } = *ctx;
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
    let effects = || enricher.word_effects(&enriched);
    if let Some(alert) = negative_comment(&enriched, &config.alerts.negative_comment, effects) {
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
    progress.saw(partition, enriched.mention.created_at.timestamp_millis());
    batch.terms.add(&enriched, terms_of(&enriched));
    Ok(())
}
