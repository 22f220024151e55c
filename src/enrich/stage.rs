//! The enrich stage (consumer group `<prefix>-enrich`): each raw message is parsed, enriched and
//! produced to `mentions.enriched` (plus its negative-comment alert and, per batch, its terms),
//! or rejected to the dead-letter topic with the reason. The Kafka loop is the runner's
//! ([`crate::runner`]); this is what the stage does with each message and batch.
//!
//! Each message is parsed as it is read; the batch's mentions are enriched when it ends, split
//! over `[enrich] workers` threads (language, sentiment, extraction, the negative-comment rule
//! with its explanation, serialising), then produced in the order they were read, so the stage
//! uses every core while its outputs and offsets keep the order of one reader.
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
use crate::kafka::progress::{producer_header, PartitionProgress};
use crate::kafka::{Group, Topics};
use crate::mention::{EnrichedMention, Escalation, Mention};
use crate::metrics::Metrics;
use crate::runner::{
    dead_letter, BatchPolicy, HandleError, Handler, Io, Origin, Output, Reject, Settled, StageError,
};
use crate::trends::record::{Sources, TermBatch};

use super::cascade::{record, Offer, Pending};
use super::config::workers_or_cores;
use super::config::EnrichConfig;
use super::enricher::terms_of;
use super::Enricher;

/// Most mentions in batches kept waiting for the transformer's verdicts before the oldest batch
/// is finished anyway. Under load each batch waits up to `max_wait_ms`, so this bounds the
/// stage's throughput at about `MAX_WAITING_MENTIONS / max_wait_ms` (80,000/s at 250 ms) while
/// keeping memory bounded (a few tens of MB).
const MAX_WAITING_MENTIONS: usize = 20_000;

/// A batch is split over the workers only when each gets at least this many mentions (a thread
/// costs tens of microseconds; a mention a few).
const MIN_PER_WORKER: usize = 32;

/// The enrich stage's handler for [`crate::runner::run`].
pub struct EnrichStage {
    enricher: Enricher,
    /// `[enrich]`'s batching: most messages a batch, and how long it waits for more.
    batch_max: usize,
    batch_linger: Duration,
    /// Threads a batch's mentions are enriched on (`[enrich] workers`, 0: one per core).
    workers: usize,
    rule: NegativeCommentConfig,
    topics: Topics,
    metrics: Arc<Metrics>,
    /// Event-time progress of the raw partitions: the low watermark stamped on term records.
    progress: PartitionProgress,
    /// This stage's id on its term records, new at each start and each change of its raw
    /// partitions: the trend stage keeps each producer's watermark apart.
    producer: u64,
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
        let workers = workers_or_cores(config.workers);
        tracing::info!(topic = %topics.raw, model = enricher.model_name(), workers, "Enrich stage ready");
        EnrichStage {
            enricher,
            batch_max: config.batch_max,
            batch_linger: Duration::from_millis(config.batch_linger_ms),
            workers,
            rule,
            topics,
            metrics,
            progress: PartitionProgress::default(),
            producer: rand::random(),
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
        for (mut enriched, pending, from) in std::mem::take(&mut batch.escalated) {
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
            let sent = self.emit(enriched, &mut batch.terms, io.out).await;
            self.dead_letter_if_too_large(sent, &from, io.out).await?;
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
        let records: Vec<_> = batch
            .terms
            .drain(Some(watermark), batch.producer, &batch.sources)
            .collect();
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
        let rendered = render(&self.enricher, &self.rule, enriched);
        self.send(rendered, terms, out).await
    }

    /// Produces what [`render`] made of a mention; adds its terms.
    async fn send(
        &mut self,
        r: Rendered,
        terms: &mut TermBatch,
        out: &mut Output,
    ) -> Result<(), StageError> {
        out.send(
            &self.topics.enriched,
            Some(r.enriched.key.as_bytes()),
            &r.json,
            None,
        )
        .await?;
        self.metrics.enrich_enriched.inc();
        if let Some((key, json)) = &r.alert {
            // Keyed by query, so one router instance sees all of a query's alerts. With several
            // enrich processes the router keeps each one's progress apart (`kafka::progress`).
            out.send(
                &self.topics.alerts_raw,
                Some(key.as_bytes()),
                json,
                Some(producer_header(self.producer)),
            )
            .await?;
            self.metrics.alerts_raised.inc();
        }
        terms.add(&r.enriched, r.terms);
        Ok(())
    }

    /// What became of producing a mention's outputs: one over the topics' limit dead-letters its
    /// input with the reason (as the runner does for an input it is handling) and the stage goes
    /// on; any other error is the stage's.
    async fn dead_letter_if_too_large(
        &self,
        sent: Result<(), StageError>,
        from: &ReadFrom,
        out: &mut Output,
    ) -> Result<(), StageError> {
        let Err(e) = sent else {
            return Ok(());
        };
        let reject = Reject::for_input(e)?;
        let origin = Origin {
            topic: &self.topics.raw,
            partition: from.partition,
            offset: from.offset,
            key: from.key.as_deref(),
            payload: &from.payload,
        };
        let stage = Group::Enrich.suffix();
        dead_letter(origin, stage, reject, &self.topics.dlq, out, &self.metrics).await
    }

    /// Enriches the batch being read (on the workers) and produces its mentions in the order
    /// they were read; escalated ones wait in the batch. A mention whose outputs are over the
    /// topics' limit is dead-lettered with the reason, as the runner does for its input.
    async fn enrich_current(&mut self, io: &mut Io<'_>) -> Result<(), StageError> {
        let mentions = std::mem::take(&mut self.current.mentions);
        let origins = std::mem::take(&mut self.current.read_from);
        let prepared = {
            let prep = Prep {
                enricher: &self.enricher,
                rule: &self.rule,
                metrics: &self.metrics,
            };
            prep.all(mentions, self.workers)
        };
        let mut terms = std::mem::take(&mut self.current.terms);
        for (p, from) in prepared.into_iter().zip(origins) {
            match p {
                Prepared::Escalated(enriched, pending) => {
                    let b = &mut self.current;
                    b.wait_until = b.wait_until.max(Some(pending.deadline()));
                    b.escalated.push((enriched, pending, from));
                }
                Prepared::Ready(r) => {
                    let sent = self.send(r, &mut terms, io.out).await;
                    self.dead_letter_if_too_large(sent, &from, io.out).await?;
                }
            }
        }
        self.current.terms = terms;
        Ok(())
    }
}

/// One batch's term occurrences and the mentions waiting for the transformer tier.
#[derive(Default)]
struct Batch {
    len: usize,
    /// Parsed and not enriched yet, in the order read, and where each was read.
    mentions: Vec<Mention>,
    read_from: Vec<ReadFrom>,
    /// The raw partitions' low watermark (ms) just before the batch's first message was read.
    watermark: Option<i64>,
    /// The producer id its term records carry: the stage's id when the batch began.
    producer: u64,
    /// The raw partitions the watermark speaks for: those assigned when the batch began.
    sources: Sources,
    terms: TermBatch,
    /// Each with where it was read, to dead-letter it if its outputs cannot be produced.
    escalated: Vec<(EnrichedMention, Pending, ReadFrom)>,
    /// When the last escalated mention's wait ends.
    wait_until: Option<Instant>,
}

/// Where a mention was read (its topic is the raw one) and its bytes, for a dead letter.
struct ReadFrom {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// A mention's outputs, made on a worker.
struct Rendered {
    enriched: EnrichedMention,
    json: Vec<u8>,
    /// Its negative-comment alert (key, JSON), if it raises one.
    alert: Option<(String, Vec<u8>)>,
    terms: Vec<String>,
}

/// An enriched mention serialised with its alert and terms.
fn render(
    enricher: &Enricher,
    rule: &NegativeCommentConfig,
    enriched: EnrichedMention,
) -> Rendered {
    let json = serde_json::to_vec(&enriched).expect("an enriched mention serialises");
    let alert = negative_comment(&enriched, rule, || enricher.word_effects(&enriched)).map(|a| {
        let json = serde_json::to_vec(&a).expect("an alert serialises");
        (a.query.unwrap_or_default(), json)
    });
    let terms = terms_of(&enriched);
    Rendered {
        enriched,
        json,
        alert,
        terms,
    }
}

/// What a worker made of a mention.
enum Prepared {
    Ready(Rendered),
    /// Waiting for the transformer's verdict.
    Escalated(EnrichedMention, Pending),
}

/// What the workers share.
struct Prep<'a> {
    enricher: &'a Enricher,
    rule: &'a NegativeCommentConfig,
    metrics: &'a Metrics,
}

impl Prep<'_> {
    /// Enriches one mention, offers it to the transformer tier if there is one, and renders it
    /// unless it waits for the transformer.
    fn one(&self, mention: Mention) -> Prepared {
        let mut enriched = self.enricher.enrich(mention);
        if let Some(cascade) = self.enricher.cascade() {
            // The transformer reads the text as the fast tier did: brand names masked.
            match cascade.offer(&enriched, || self.enricher.scored_text(&enriched)) {
                Offer::Queued(pending) => {
                    self.metrics.cascade_escalated.inc();
                    return Prepared::Escalated(enriched, pending);
                }
                Offer::QueueFull => {
                    self.metrics.cascade_queue_full.inc();
                    record(&mut enriched, Escalation::QueueFull, None);
                }
                Offer::NotNeeded => record(&mut enriched, Escalation::NotNeeded, None),
            }
        }
        Prepared::Ready(render(self.enricher, self.rule, enriched))
    }

    /// [`Prep::one`] for each of `mentions`, in their order, split over up to `workers` threads
    /// (this one included) when the batch is large enough.
    fn all(&self, mentions: Vec<Mention>, workers: usize) -> Vec<Prepared> {
        let threads = workers.min(mentions.len() / MIN_PER_WORKER).max(1);
        if threads == 1 {
            return mentions.into_iter().map(|m| self.one(m)).collect();
        }
        let per = mentions.len().div_ceil(threads);
        let mut rest = mentions.into_iter();
        let first: Vec<Mention> = rest.by_ref().take(per).collect();
        std::thread::scope(|scope| {
            let others: Vec<_> = (1..threads)
                .map(|_| rest.by_ref().take(per).collect::<Vec<_>>())
                .map(|c| {
                    scope.spawn(move || c.into_iter().map(|m| self.one(m)).collect::<Vec<_>>())
                })
                .collect();
            let mut out: Vec<Prepared> = first.into_iter().map(|m| self.one(m)).collect();
            for h in others {
                match h.join() {
                    Ok(part) => out.extend(part),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            out
        })
    }
}

impl Batch {
    /// Whether every escalated mention's verdict is in (or its wait is over), without waiting.
    fn is_ready(&mut self) -> bool {
        self.escalated.iter_mut().all(|(_, p, _)| p.is_ready())
    }
}

impl Handler for EnrichStage {
    fn policy(&self) -> BatchPolicy {
        BatchPolicy {
            group: Group::Enrich,
            max: self.batch_max,
            linger: self.batch_linger,
            partition_eof: true,
            pipelined: true,
            partition_state: false,
        }
    }

    async fn handle(
        &mut self,
        msg: &BorrowedMessage<'_>,
        io: &mut Io<'_>,
    ) -> Result<(), HandleError> {
        self.metrics.enrich_received.inc();
        if self.current.len == 0 {
            let (watermark, reassigned) = self.progress.low_watermark_anew(io.consumer);
            if reassigned {
                // A partition newly assigned may be behind what this process vouched for so
                // far: it goes on as a new producer, so the trend stage waits for it anew.
                self.producer = rand::random();
            }
            self.current.watermark = watermark;
            self.current.producer = self.producer;
            self.current.sources = Sources(self.progress.assignment().to_vec());
        }
        self.current.len += 1;
        let payload = msg.payload().unwrap_or(&[]);
        let mention = Mention::parse(payload).map_err(|err| Reject {
            reason: err.reason().into(),
            error: err.to_string(),
        })?;
        // Progress as read (not as emitted: a mention waiting for the transformer is emitted
        // after younger ones of later batches).
        self.progress
            .saw(msg.partition(), mention.created_at.timestamp_millis());
        self.current.mentions.push(mention);
        self.current.read_from.push(ReadFrom {
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key().map(<[u8]>::to_vec),
            payload: payload.to_vec(),
        });
        Ok(())
    }

    async fn end_batch(&mut self, io: &mut Io<'_>) -> Result<Settled, StageError> {
        self.enrich_current(io).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sentiment::lexicon::LexiconModel;

    fn mentions(n: usize) -> Vec<Mention> {
        let texts = [
            "Saldo hilang, transfer gagal @NusaPay #NusaPayDown kecewa banget",
            "Love the new menu at KopiKita #KopiKitaSenja",
            "Worst airline ever, lost my bag again",
            "Heading out, grabbing my usual",
        ];
        (0..n)
            .map(|i| {
                let json = serde_json::json!({
                    "id": i.to_string(), "platform": "x", "text": texts[i % texts.len()],
                    "created_at": "2026-11-26T10:00:00Z",
                    "author": {"id": format!("u{i}"), "handle": format!("user{i}")},
                });
                serde_json::from_value(json).unwrap()
            })
            .collect()
    }

    /// One prepared mention's outputs: its JSON and its alert's (without the wall-clock times
    /// `enriched_at` and `detected_at`), its alert's key and its terms.
    type Out = (
        serde_json::Value,
        Option<(String, serde_json::Value)>,
        Vec<String>,
    );

    fn without_clock(json: &[u8]) -> serde_json::Value {
        let mut v: serde_json::Value = serde_json::from_slice(json).unwrap();
        let obj = v.as_object_mut().unwrap();
        obj.remove("enriched_at");
        obj.remove("detected_at");
        v
    }

    fn outputs(prepared: Vec<Prepared>) -> Vec<Out> {
        prepared
            .into_iter()
            .map(|p| match p {
                Prepared::Ready(r) => (
                    without_clock(&r.json),
                    r.alert.map(|(k, j)| (k, without_clock(&j))),
                    r.terms,
                ),
                Prepared::Escalated(..) => panic!("no cascade here"),
            })
            .collect()
    }

    #[test]
    fn a_batch_split_over_workers_gives_the_outputs_of_one_worker_in_the_order_read() {
        let queries = crate::tracked::QuerySet::compile(&[crate::tracked::TrackedQueryConfig {
            name: "nusapay".into(),
            query: "nusapay OR @nusapay OR #nusapay*".into(),
        }])
        .unwrap();
        let enricher = Enricher::new(Arc::new(LexiconModel)).with_queries(queries);
        let rule = NegativeCommentConfig::default();
        let metrics = Metrics::default();
        let prep = Prep {
            enricher: &enricher,
            rule: &rule,
            metrics: &metrics,
        };
        let one = outputs(prep.all(mentions(1001), 1));
        assert_eq!(one.len(), 1001);
        assert!(
            one.iter().any(|(_, alert, _)| alert.is_some()),
            "some alert"
        );
        for workers in [2, 3, 8] {
            assert_eq!(
                outputs(prep.all(mentions(1001), workers)),
                one,
                "{workers} workers"
            );
        }
        // Too small to split: the same, on this thread.
        assert_eq!(
            outputs(prep.all(mentions(40), 4)),
            one[..40].to_vec(),
            "a small batch"
        );
        let keys: Vec<String> = prep
            .all(mentions(300), 2)
            .into_iter()
            .map(|p| match p {
                Prepared::Ready(r) => r.enriched.key,
                Prepared::Escalated(e, _) => e.key,
            })
            .collect();
        let want: Vec<String> = (0..300).map(|i| format!("x:{i}")).collect();
        assert_eq!(keys, want, "in the order read");
    }
}
