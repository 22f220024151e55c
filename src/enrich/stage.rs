//! The enrich stage (consumer group `<prefix>-enrich`): each raw message is parsed, enriched and
//! produced to `mentions.enriched` (plus its negative-comment alert and, per batch, its terms),
//! or rejected to the dead-letter topic with the reason. The Kafka loop is the runner's
//! ([`crate::runner`]); this is what the stage does with each message and batch.
//!
//! Mentions the sentiment cascade escalates wait for the transformer while the stage reads on:
//! their batch is held (its other outputs already produced) until every verdict is in or its wait
//! is over, and held batches settle oldest first, so the transformer's latency overlaps with
//! reading instead of stalling it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{BorrowedMessage, Message};
use tokio::time::Instant;

use crate::alerts::rules::{negative_comment, NegativeCommentConfig};
use crate::kafka::progress::PartitionProgress;
use crate::kafka::{Group, Topics};
use crate::mention::{EnrichedMention, Escalation, Mention};
use crate::metrics::Metrics;
use crate::runner::{BatchPolicy, HandleError, Handler, Io, Output, Reject, Settled, StageError};
use crate::trends::record::TermBatch;

use super::cascade::{record, Offer, Pending};
use super::config::EnrichConfig;
use super::enricher::terms_of;
use super::Enricher;

/// Most mentions in batches kept waiting for the transformer's verdicts before the oldest batch
/// is finished anyway. Under load each batch waits up to `max_wait_ms`, so this bounds the
/// stage's throughput at about `MAX_WAITING_MENTIONS / max_wait_ms` (80,000/s at 250 ms) while
/// keeping memory bounded (a few tens of MB).
const MAX_WAITING_MENTIONS: usize = 20_000;

/// The enrich stage's handler for [`crate::runner::run`].
pub struct EnrichStage {
    enricher: Enricher,
    /// `[enrich]`'s batching: most messages a batch, and how long it waits for more.
    batch_max: usize,
    batch_linger: Duration,
    rule: NegativeCommentConfig,
    topics: Topics,
    metrics: Arc<Metrics>,
    /// Event-time progress of the raw partitions: the low watermark stamped on term records.
    progress: PartitionProgress,
    /// The batch being read.
    current: Batch,
    /// Batches read and not finished yet, oldest first (each settles when it is finished).
    waiting: VecDeque<Batch>,
}

impl EnrichStage {
    pub fn new(
        enricher: Enricher,
        config: &EnrichConfig,
        rule: NegativeCommentConfig,
        topics: Topics,
        metrics: Arc<Metrics>,
    ) -> EnrichStage {
        tracing::info!(topic = %topics.raw, model = enricher.model_name(), "Enrich stage ready");
        EnrichStage {
            enricher,
            batch_max: config.batch_max,
            batch_linger: Duration::from_millis(config.batch_linger_ms),
            rule,
            topics,
            metrics,
            progress: PartitionProgress::default(),
            current: Batch::default(),
            waiting: VecDeque::new(),
        }
    }

    /// Finishes the oldest waiting batch: its escalated mentions get the transformer's verdict
    /// (or keep the fast label once their wait is over) and are produced, then its terms.
    async fn finish_oldest(&mut self, io: &mut Io<'_>) -> Result<(), StageError> {
        let Some(mut batch) = self.waiting.pop_front() else {
            return Ok(());
        };
        for (mut enriched, pending) in std::mem::take(&mut batch.escalated) {
            let route = pending.route();
            match pending.verdict().await {
                Some(s) => {
                    self.metrics.cascade_decided.inc();
                    let name = self
                        .enricher
                        .cascade()
                        .map(|c| c.head_name(route).to_string())
                        .unwrap_or_default();
                    record(&mut enriched, Escalation::Decided, Some((s, &name)));
                }
                None => {
                    self.metrics.cascade_timed_out.inc();
                    record(&mut enriched, Escalation::TimedOut, None);
                }
            }
            self.emit(enriched, &mut batch.terms, io.out).await?;
        }
        // The raw partitions' low watermark from before the batch's first message was read:
        // every occurrence of this batch and of the batches after it is at least that old
        // (lateness aside). The watermark after reading it would not be: a record of this batch
        // read after one of its siblings on another terms partition would be late. Before every
        // assigned partition is read: the epoch, "no progress vouched for yet".
        let watermark = batch
            .watermark
            .and_then(chrono::DateTime::from_timestamp_millis)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
        let records: Vec<_> = batch.terms.drain(Some(watermark)).collect();
        for r in records {
            let term = r.term.clone();
            // A term record over the topic's limit is split into smaller ones; a single
            // occurrence that still does not fit (only with a topic limit below a mention's
            // size) is left out with a warning rather than stalling the stage.
            for json in r.into_json_parts(io.out.limit().saturating_sub(term.len())) {
                match io
                    .out
                    .send(&self.topics.terms, Some(term.as_bytes()), &json, None)
                    .await
                {
                    Err(StageError::TooLarge { bytes, limit, .. }) => {
                        self.metrics.terms_too_large.inc();
                        tracing::warn!(%term, bytes, limit, "Term occurrence too large for the terms topic; left out");
                    }
                    other => other?,
                }
            }
        }
        Ok(())
    }

    /// Finishes waiting batches, oldest first, while the oldest is ready (or too much waits).
    async fn finish_ready(&mut self, io: &mut Io<'_>) -> Result<Settled, StageError> {
        let mut finished = 0;
        while !self.waiting.is_empty() {
            // A dozen batches or so (each waits at most max_wait_ms): cheap to add up.
            let held: usize = self.waiting.iter().map(|b| b.len).sum();
            let front = self.waiting.front_mut().expect("non-empty");
            if !(front.is_ready() || held > MAX_WAITING_MENTIONS) {
                break;
            }
            self.finish_oldest(io).await?;
            finished += 1;
        }
        Ok(Settled::Oldest(finished))
    }

    /// Produces an enriched mention and its negative-comment alert if any; adds its terms.
    async fn emit(
        &mut self,
        enriched: EnrichedMention,
        terms: &mut TermBatch,
        out: &mut Output,
    ) -> Result<(), StageError> {
        let json = serde_json::to_vec(&enriched).expect("an enriched mention serialises");
        out.send(
            &self.topics.enriched,
            Some(enriched.key.as_bytes()),
            &json,
            None,
        )
        .await?;
        self.metrics.enrich_enriched.inc();
        let effects = || self.enricher.word_effects(&enriched);
        if let Some(alert) = negative_comment(&enriched, &self.rule, effects) {
            // Keyed by query, so one router instance sees all of a query's alerts.
            let key = alert.query.clone().unwrap_or_default();
            let json = serde_json::to_vec(&alert).expect("an alert serialises");
            out.send(&self.topics.alerts_raw, Some(key.as_bytes()), &json, None)
                .await?;
            self.metrics.alerts_raised.inc();
        }
        terms.add(&enriched, terms_of(&enriched));
        Ok(())
    }
}

/// One batch's term occurrences and the mentions waiting for the transformer tier.
#[derive(Default)]
struct Batch {
    len: usize,
    /// The raw partitions' low watermark (ms) just before the batch's first message was read.
    watermark: Option<i64>,
    terms: TermBatch,
    escalated: Vec<(EnrichedMention, Pending)>,
    /// When the last escalated mention's wait ends.
    wait_until: Option<Instant>,
}

impl Batch {
    /// Whether every escalated mention's verdict is in (or its wait is over), without waiting.
    fn is_ready(&mut self) -> bool {
        self.escalated.iter_mut().all(|(_, p)| p.is_ready())
    }
}

impl Handler for EnrichStage {
    fn policy(&self) -> BatchPolicy {
        BatchPolicy {
            group: Group::Enrich,
            max: self.batch_max,
            linger: self.batch_linger,
            partition_eof: true,
        }
    }

    async fn handle(
        &mut self,
        msg: &BorrowedMessage<'_>,
        io: &mut Io<'_>,
    ) -> Result<(), HandleError> {
        self.metrics.enrich_received.inc();
        if self.current.len == 0 {
            self.current.watermark = self.progress.low_watermark(io.consumer);
        }
        self.current.len += 1;
        let mention = Mention::parse(msg.payload().unwrap_or(&[])).map_err(|err| Reject {
            reason: err.reason().into(),
            error: err.to_string(),
        })?;
        // Progress as read (not as emitted: a mention waiting for the transformer is emitted
        // after younger ones of later batches).
        self.progress
            .saw(msg.partition(), mention.created_at.timestamp_millis());
        let mut enriched = self.enricher.enrich(mention);
        if let Some(cascade) = self.enricher.cascade() {
            // The transformer reads the text as the fast tier did: brand names masked.
            match cascade.offer(&enriched, || self.enricher.scored_text(&enriched)) {
                Offer::Queued(pending) => {
                    self.metrics.cascade_escalated.inc();
                    let b = &mut self.current;
                    b.wait_until = b.wait_until.max(Some(pending.deadline()));
                    b.escalated.push((enriched, pending));
                    return Ok(());
                }
                Offer::QueueFull => {
                    self.metrics.cascade_queue_full.inc();
                    record(&mut enriched, Escalation::QueueFull, None);
                }
                Offer::NotNeeded => record(&mut enriched, Escalation::NotNeeded, None),
            }
        }
        let mut terms = std::mem::take(&mut self.current.terms);
        let sent = self.emit(enriched, &mut terms, io.out).await;
        self.current.terms = terms;
        Ok(sent?)
    }

    async fn end_batch(&mut self, io: &mut Io<'_>) -> Result<Settled, StageError> {
        let batch = std::mem::take(&mut self.current);
        self.waiting.push_back(batch);
        self.finish_ready(io).await
    }

    fn next_wake(&mut self) -> Option<Instant> {
        self.waiting
            .front()
            .map(|b| b.wait_until.unwrap_or_else(Instant::now))
    }

    async fn wake(&mut self, io: &mut Io<'_>) -> Result<Settled, StageError> {
        // The oldest batch's wait is over: finish it whatever its verdicts, then any ready
        // behind it.
        self.finish_oldest(io).await?;
        match self.finish_ready(io).await? {
            Settled::Oldest(n) => Ok(Settled::Oldest(n + 1)),
            Settled::All => Ok(Settled::All),
        }
    }

    async fn drain(&mut self, io: &mut Io<'_>) -> Result<(), StageError> {
        while !self.waiting.is_empty() {
            self.finish_oldest(io).await?;
        }
        Ok(())
    }

    fn partition_end(&mut self, partition: i32, end: Option<i64>) {
        self.progress
            .reached_end(partition, end, std::time::Instant::now());
    }
}
