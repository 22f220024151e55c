//! The trend stage (`gema trends-stage`, consumer group `<prefix>-trends`): term records →
//! detectors → trend events (`<prefix>.trends`) and alert candidates (`<prefix>.alerts.raw`).
//! The Kafka loop is the runner's ([`crate::runner`]); this is what the stage does with each
//! record and batch.
//!
//! Three detectors run side by side ([`super::state::Detectors`]): `[trends]` over hashtags and
//! handles and `[keywords]` over keywords and bigrams (emerging-trend alerts), and `[spikes]` over
//! tracked-query volume and negative volume (negative-spike alerts).
//!
//! The state is never behind the committed offsets: batches are held (their offsets not stored)
//! until a snapshot covers them, taken once their outputs are acknowledged, every 5 s under load,
//! as soon as the input is quiet, and on shutdown. The snapshot records the next offset of each
//! input partition it covers; after a crash the stage restores it and skips the records it
//! already holds, so nothing is counted twice or lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::message::{BorrowedMessage, Message};

use crate::alerts::trend::{emerging_trend_alert, query_alert, QueryContext};
use crate::alerts::Alert;
use crate::kafka::progress::{EndProbe, PartitionProgress};
use crate::kafka::{Group, KafkaConfig, Topics};
use crate::metrics::Metrics;
use crate::runner::state::Coverage;
use crate::runner::{BatchPolicy, HandleError, Handler, Io, Reject, Settled, StageError};

use super::record::TermRecord;
use super::state::{DetectorSections, Detectors, StateFiles};
use super::{Observed, Term, TrendEvent};

/// How long the stage must have read all of its input, with nothing new arriving, before event
/// time is moved to the wall clock, so the last buckets of a stream that stopped still close.
/// (Measured from the partitions' ends, not from the last record: a stage still joining its
/// group or restarting from a backlog is not quiet, and must not close buckets early.)
const IDLE_FLUSH: Duration = Duration::from_secs(3);
/// How often the detectors are advanced while no record arrives.
const TICK: Duration = Duration::from_millis(500);
/// How long the broker has to confirm the input's ends before an idle flush.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The trend stage's handler for [`crate::runner::run`].
pub struct TrendStage {
    sections: DetectorSections,
    files: StateFiles,
    topics: Topics,
    metrics: Arc<Metrics>,
    detectors: Detectors,
    /// Recent negative-mention context per tracked query, to explain its spikes.
    contexts: HashMap<String, QueryContext>,
    /// Event-time progress per input partition (the enrich stage's low watermark carried on
    /// each record): the watermark is the oldest of them over the assigned partitions, minus the
    /// allowed lateness, so neither a terms partition nor a raw partition read ahead of the
    /// others makes theirs late (src/kafka/progress.rs).
    progress: PartitionProgress,
    /// Confirms with the broker that the input is quiet, not cut off.
    probe: EndProbe,
    /// What the state covers of the input, and when it was last saved.
    coverage: Coverage,
    received: usize,
    last_advance: tokio::time::Instant,
}

impl TrendStage {
    /// The stage with its detectors restored from their snapshots in `files`.
    pub fn new(
        sections: DetectorSections,
        files: StateFiles,
        topics: Topics,
        kafka: &KafkaConfig,
        metrics: Arc<Metrics>,
    ) -> TrendStage {
        let restored = files.load(&sections);
        TrendStage {
            sections,
            files,
            topics,
            metrics,
            detectors: restored.detectors,
            contexts: restored.contexts,
            coverage: Coverage::restored(restored.covered),
            progress: PartitionProgress::default(),
            probe: EndProbe::new(kafka),
            received: 0,
            last_advance: tokio::time::Instant::now(),
        }
    }

    /// Whether the input is quiet because nothing more is coming, asked of the broker: a broker
    /// that is down, or an enrich stage that is down or stalled with raw mentions left, looks
    /// quiet too, and closing buckets on the wall clock then would make the rest of a replayed
    /// history late. The enrich group's lag is read first and the terms partitions' ends after
    /// it, so what enrich produced before it caught up is in those ends.
    async fn input_finished(&mut self, io: &Io<'_>) -> bool {
        let ends = self.progress.ends(io.consumer);
        // A cheap first question, which fails fast while the broker is down.
        self.probe
            .confirms(&self.topics.terms, ends.clone(), PROBE_TIMEOUT)
            .await
            && self
                .probe
                .upstream_done(
                    self.topics.group(Group::Enrich),
                    self.topics.raw.to_string(),
                )
                .await
            && self
                .probe
                .confirms(&self.topics.terms, ends, PROBE_TIMEOUT)
                .await
    }

    /// Closes what the watermark lets close (and, after a quiet spell, what the wall clock
    /// does) and produces the trend events and their alerts.
    async fn advance(&mut self, io: &mut Io<'_>) -> Result<(), StageError> {
        self.last_advance = tokio::time::Instant::now();
        let now = Utc::now();
        let oldest = self.progress.low_watermark(io.consumer);
        let (mut terms, mut queries) = self.detectors.advance_until(&self.sections, oldest);
        if std::mem::take(&mut self.received) == 0
            && self.detectors.has_open()
            && self.progress.caught_up_for(io.consumer, IDLE_FLUSH)
            && self.input_finished(io).await
        {
            let (t, q) = self.detectors.idle_flush(now);
            terms.extend(t);
            queries.extend(q);
        }
        for e in terms.iter().chain(queries.iter()) {
            self.metrics.trend_events.inc();
            let json = serde_json::to_vec(e).expect("a trend event serialises");
            io.out
                .send(&self.topics.trends, Some(e.term.as_bytes()), &json, None)
                .await?;
        }
        // One emerging-trend alert per closed bucket of the term detectors.
        let mut by_bucket: Vec<Vec<TrendEvent>> = Vec::new();
        for e in terms {
            match by_bucket
                .iter_mut()
                .find(|b| b[0].bucket_start == e.bucket_start)
            {
                Some(b) => b.push(e),
                None => by_bucket.push(vec![e]),
            }
        }
        let mut alerts: Vec<Alert> = by_bucket
            .iter()
            .filter_map(|b| emerging_trend_alert(b, now))
            .collect();
        alerts.extend(
            queries
                .iter()
                .filter_map(|e| query_alert(e, &self.contexts, now)),
        );
        for a in &alerts {
            self.metrics.alerts_raised.inc();
            let key = a
                .query
                .clone()
                .or_else(|| a.term.clone())
                .unwrap_or_default();
            let json = serde_json::to_vec(a).expect("an alert serialises");
            io.out
                .send(&self.topics.alerts_raw, Some(key.as_bytes()), &json, None)
                .await?;
        }
        Ok(())
    }
}

impl Handler for TrendStage {
    fn policy(&self) -> BatchPolicy {
        BatchPolicy {
            group: Group::Trends,
            max: 5000,
            linger: Duration::from_millis(20),
            partition_eof: true,
            pipelined: false,
        }
    }

    async fn handle(
        &mut self,
        msg: &BorrowedMessage<'_>,
        _io: &mut Io<'_>,
    ) -> Result<(), HandleError> {
        if !self.coverage.take(msg.partition(), msg.offset()) {
            // Already in the restored state: the stage crashed after its snapshot and before
            // its offsets were committed.
            return Ok(());
        }
        self.received += 1;
        let record =
            serde_json::from_slice::<TermRecord>(msg.payload().unwrap_or(&[])).map_err(|e| {
                Reject {
                    reason: "schema".into(),
                    error: format!("invalid term record: {e}"),
                }
            })?;
        // The producer's low watermark; a record without one (an older producer) vouches only
        // for its own newest occurrence.
        let vouched = record.watermark.map(|w| w.timestamp_millis()).or_else(|| {
            record
                .occurrences
                .iter()
                .map(|o| o.event_time.timestamp_millis())
                .max()
        });
        if let Some(p) = vouched {
            self.progress
                .saw_from(msg.partition(), record.producer.unwrap_or(0), p);
        }
        let detector = self.detectors.pick(&record.term);
        let negative = match Term::parse(&record.term) {
            Term::QueryNegative(q) => Some(q.to_string()),
            _ => None,
        };
        for (occ, raw) in record.occurrences().zip(&record.occurrences) {
            self.metrics.trend_occurrences.inc();
            match detector.observe(&occ) {
                Observed::Counted => {}
                Observed::Repeat => continue,
                Observed::Late {
                    bucket_start,
                    watermark,
                } => {
                    tracing::debug!(term = %occ.term, event_time = %occ.event_time, %bucket_start, %watermark, partition = msg.partition(), offset = msg.offset(), "Late occurrence");
                    self.metrics.trend_late.inc();
                }
            }
            // What a negative mention was about, to explain a spike (once per mention).
            if let (Some(q), Some(c)) = (&negative, &raw.context) {
                let bucket_ms = self.sections.spikes.bucket_ms as i64;
                let ms = raw.event_time.timestamp_millis();
                self.contexts.entry(q.clone()).or_default().add(
                    ms - ms.rem_euclid(bucket_ms),
                    &c.terms,
                    &c.sample,
                );
            }
        }
        Ok(())
    }

    async fn end_batch(&mut self, io: &mut Io<'_>) -> Result<Settled, StageError> {
        self.advance(io).await?;
        // Held until a snapshot covers them; under continuous input, one every few seconds.
        Ok(self.coverage.settle_when(false))
    }

    fn next_wake(&mut self) -> Option<tokio::time::Instant> {
        Some(self.last_advance + TICK)
    }

    async fn wake(&mut self, io: &mut Io<'_>) -> Result<Settled, StageError> {
        self.advance(io).await?;
        // The input is quiet: settle what is held now.
        Ok(Settled::All)
    }

    async fn drain(&mut self, _io: &mut Io<'_>) -> Result<(), StageError> {
        // The runner settles everything next, which saves the state.
        Ok(())
    }

    fn partition_end(&mut self, partition: i32, end: Option<i64>) {
        self.progress.reached_end(partition, end, Instant::now());
    }

    fn settling(&mut self) -> Result<(), StageError> {
        let (detectors, contexts, files) = (&self.detectors, &self.contexts, &self.files);
        self.coverage
            .save("the trend state", &files.dir, |covered| {
                files.save(detectors, contexts, covered)
            })
    }
}
