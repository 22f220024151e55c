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
//!
//! Where the state lives (`[trend_stage] state`):
//! - `one`: one state over every terms partition (one false-discovery control per bucket over
//!   all terms), its snapshot a file in `state_dir`: one process.
//! - `per-partition`: a state per terms partition (the terms topic is keyed by term, so each
//!   term's history is in one), each closed on its own partition's watermark and snapshotted to
//!   the compacted `<prefix>.trend-state` topic ([`crate::runner::changelog`]). On every
//!   rebalance the stage drops what it holds and reads the states of the partitions it is
//!   assigned now, as of their committed offsets: any number of processes, each partition's
//!   results the same whichever process holds it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Message};

use crate::alerts::trend::{emerging_trend_alert, query_alert, QueryContext};
use crate::kafka::progress::{EndProbe, PartitionProgress};
use crate::kafka::{Group, KafkaConfig, Topics};
use crate::metrics::Metrics;
use crate::runner::changelog::Changelog;
use crate::runner::state::{Coverage, SNAPSHOT_EVERY};
use crate::runner::{BatchPolicy, HandleError, Handler, Io, Reject, Settled, StageError};

use super::record::TermRecord;
use super::state::{Borrowed, DetectorSections, Detectors, Restored, StateFiles, TrendSnapshot};
use super::{Observed, StateKeeping, Term, TrendEvent};

/// How long the stage must have read all of its input, with nothing new arriving, before event
/// time is moved to the wall clock, so the last buckets of a stream that stopped still close.
/// (Measured from the partitions' ends, not from the last record: a stage still joining its
/// group or restarting from a backlog is not quiet, and must not close buckets early.)
const IDLE_FLUSH: Duration = Duration::from_secs(3);
/// How often, under continuous input, the states per partition are written to the state topic:
/// each write is the whole state, so every 5 s (as the file) the broker took 237 bytes per
/// mention more at 11k mentions/s (`gema bench --rate 40000 --messages 200000`). A handover or a
/// crash then reads again up to this much of the terms topic.
const TOPIC_SNAPSHOT_EVERY: Duration = Duration::from_secs(30);
/// How long the input must have been quiet before the states go to the state topic anyway.
const TOPIC_QUIET: Duration = Duration::from_secs(2);
/// How often the detectors are advanced while no record arrives.
const TICK: Duration = Duration::from_millis(500);
/// How long the broker has to confirm the input's ends before an idle flush.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// When the stage may take a snapshot: at the end of a batch, when no record came for a tick, on
/// shutdown (always).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    Batch,
    Quiet,
    Shutdown,
}

/// The key of the one state of `state = "one"`.
const ALL: i32 = -1;

/// The state of one terms partition (or, with `state = "one"`, of all of them).
struct Shard {
    detectors: Detectors,
    /// Recent negative-mention context per tracked query, to explain its spikes.
    contexts: HashMap<String, QueryContext>,
    /// What the state covers of the input.
    coverage: Coverage,
    /// Records taken in since the last advance.
    received: usize,
}

impl Shard {
    fn of(r: Restored) -> Shard {
        Shard {
            detectors: r.detectors,
            contexts: r.contexts,
            coverage: Coverage::restored(r.covered),
            received: 0,
        }
    }
}

/// Where the state is kept.
enum Keeping {
    /// One state, in a file.
    File(StateFiles),
    /// A state per terms partition, in the state topic; the number of terms partitions.
    Topic(Changelog, usize),
}

/// The trend stage's handler for [`crate::runner::run`].
pub struct TrendStage {
    sections: DetectorSections,
    keeping: Keeping,
    topics: Topics,
    metrics: Arc<Metrics>,
    /// By terms partition ([`ALL`] with `state = "one"`).
    shards: BTreeMap<i32, Shard>,
    /// Event-time progress per input partition (the enrich stage's low watermark carried on
    /// each record). With one state the watermark is the oldest over the assigned partitions,
    /// minus the allowed lateness, so no terms partition read ahead of the others makes theirs
    /// late (src/kafka/progress.rs); a state per partition closes on its own partition's.
    progress: PartitionProgress,
    /// Confirms with the broker that the input is quiet, not cut off.
    probe: EndProbe,
    last_save: Instant,
    /// When the last record was read.
    last_record: Instant,
    last_advance: tokio::time::Instant,
}

impl TrendStage {
    /// The stage with its detectors restored from their snapshots: with `state = "one"` from
    /// the file in `files`, else from the state topic as partitions are assigned.
    pub fn new(
        sections: DetectorSections,
        keeping: StateKeeping,
        files: StateFiles,
        topics: Topics,
        kafka: &KafkaConfig,
        metrics: Arc<Metrics>,
    ) -> TrendStage {
        let mut progress = PartitionProgress::default();
        let (keeping, shards) = match keeping {
            StateKeeping::One => {
                let restored = files.load(&sections);
                restored.restore_progress(&mut progress);
                (
                    Keeping::File(files),
                    BTreeMap::from([(ALL, Shard::of(restored))]),
                )
            }
            StateKeeping::PerPartition => (
                Keeping::Topic(
                    Changelog::new(kafka, &topics.trend_state),
                    kafka.partitions.max(1) as usize,
                ),
                BTreeMap::new(),
            ),
        };
        TrendStage {
            sections,
            keeping,
            topics,
            metrics,
            shards,
            progress,
            probe: EndProbe::new(kafka),
            last_save: Instant::now(),
            last_record: Instant::now(),
            last_advance: tokio::time::Instant::now(),
        }
    }

    /// The state that holds `partition`'s terms.
    fn key_of(&self, partition: i32) -> i32 {
        match self.keeping {
            Keeping::File(_) => ALL,
            Keeping::Topic(..) => partition,
        }
    }

    /// Takes up the states of `partitions` from the state topic (cold where there is none).
    async fn take_up(&mut self, partitions: &[i32]) -> Result<(), StageError> {
        let Keeping::Topic(changelog, shares) = &mut self.keeping else {
            return Ok(());
        };
        let shares = *shares;
        let mut read = changelog.read(partitions).await?;
        for &p in partitions {
            let restored = read
                .remove(&p)
                .map(|bytes| {
                    serde_json::from_slice::<TrendSnapshot>(&bytes)
                        .map_err(|e| e.to_string())
                        .and_then(|snap| Restored::of(&self.sections, snap, true))
                })
                .transpose();
            let restored = match restored {
                Ok(Some(r)) => {
                    tracing::info!(partition = p, terms = r.detectors.tracked_terms(), covered = ?r.covered, "Took up a terms partition's trend state");
                    r
                }
                Ok(None) => Restored::cold(&self.sections),
                Err(e) => {
                    tracing::warn!(partition = p, error = %e, "Cannot restore a terms partition's trend state; it starts cold");
                    Restored::cold(&self.sections)
                }
            };
            restored.restore_progress(&mut self.progress);
            let restored = Restored {
                detectors: restored.detectors.share_of(shares),
                ..restored
            };
            self.shards.insert(p, Shard::of(restored));
        }
        Ok(())
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

    /// Closes what the watermarks let close (and, after a quiet spell, what the wall clock
    /// does) and produces the trend events and their alerts.
    async fn advance(&mut self, io: &mut Io<'_>) -> Result<(), StageError> {
        self.last_advance = tokio::time::Instant::now();
        let now = Utc::now();
        let received: usize = self
            .shards
            .values_mut()
            .map(|s| std::mem::take(&mut s.received))
            .sum();
        let flush = received == 0
            && self.shards.values().any(|s| s.detectors.has_open())
            && self.progress.caught_up_for(io.consumer, IDLE_FLUSH)
            && self.input_finished(io).await;
        let low = match self.keeping {
            Keeping::File(_) => self.progress.low_watermark(io.consumer),
            Keeping::Topic(..) => None,
        };
        let mut events = Vec::new();
        let mut alerts = Vec::new();
        for (&key, shard) in &mut self.shards {
            let watermark = if key == ALL {
                low
            } else {
                self.progress.watermark_of(key)
            };
            let (mut terms, mut queries) = shard.detectors.advance_until(&self.sections, watermark);
            if flush && shard.detectors.has_open() {
                // What the flush closed is the state's now: saved with the next snapshot, so a
                // restart or the next owner does not close those buckets again.
                shard.coverage.changed();
                let (t, q) = shard.detectors.idle_flush(now);
                terms.extend(t);
                queries.extend(q);
            }
            // One emerging-trend alert per closed bucket of the term detectors (of this
            // state: with a state per partition, of this partition's terms).
            let mut by_bucket: Vec<Vec<TrendEvent>> = Vec::new();
            for e in &terms {
                match by_bucket
                    .iter_mut()
                    .find(|b| b[0].bucket_start == e.bucket_start)
                {
                    Some(b) => b.push(e.clone()),
                    None => by_bucket.push(vec![e.clone()]),
                }
            }
            alerts.extend(
                by_bucket
                    .iter()
                    .filter_map(|b| emerging_trend_alert(b, now)),
            );
            alerts.extend(
                queries
                    .iter()
                    .filter_map(|e| query_alert(e, &shard.contexts, now)),
            );
            events.extend(terms);
            events.extend(queries);
        }
        for e in &events {
            self.metrics.trend_events.inc();
            let json = serde_json::to_vec(e).expect("a trend event serialises");
            io.out
                .send(&self.topics.trends, Some(e.term.as_bytes()), &json, None)
                .await?;
        }
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

    /// Settles everything when a snapshot is due `at` this moment, else holds. With a
    /// state per partition, the snapshots of the partitions that changed are queued here, so
    /// the runner awaits them with the other outputs before it stores the offsets they cover.
    async fn checkpoint(&mut self, io: &mut Io<'_>, at: Moment) -> Result<Settled, StageError> {
        let quiet = at != Moment::Batch;
        // A state in the topic waits for the input to be quiet a while (bursty input leaves
        // gaps of a tick between batches).
        let (every, quiet) = match self.keeping {
            Keeping::File(_) => (SNAPSHOT_EVERY, quiet),
            Keeping::Topic(..) => (
                TOPIC_SNAPSHOT_EVERY,
                at == Moment::Shutdown || (quiet && self.last_record.elapsed() >= TOPIC_QUIET),
            ),
        };
        if !quiet && self.last_save.elapsed() < every {
            return Ok(Settled::Oldest(0));
        }
        self.last_save = Instant::now();
        let Keeping::Topic(changelog, _) = &mut self.keeping else {
            // The file is written in `settling`, once the outputs are acknowledged.
            return Ok(Settled::All);
        };
        let progress = &self.progress;
        for (&p, shard) in &mut self.shards {
            let mut bytes = None;
            let (detectors, contexts) = (&shard.detectors, &shard.contexts);
            shard.coverage.save(
                "the trend state",
                std::path::Path::new(changelog.topic()),
                |covered| {
                    bytes = Some(Borrowed::of(detectors, contexts, covered, progress).bytes());
                    Ok(())
                },
            )?;
            if let Some(bytes) = bytes {
                changelog.write(io.out, p, &bytes).await?;
            }
        }
        Ok(Settled::All)
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
            partition_state: matches!(self.keeping, Keeping::Topic(..)),
        }
    }

    async fn handle(
        &mut self,
        msg: &BorrowedMessage<'_>,
        _io: &mut Io<'_>,
    ) -> Result<(), HandleError> {
        let key = self.key_of(msg.partition());
        if !self.shards.contains_key(&key) {
            self.take_up(&[key]).await?;
        }
        self.last_record = Instant::now();
        let shard = self.shards.get_mut(&key).expect("taken up above");
        if !shard.coverage.take(msg.partition(), msg.offset()) {
            // Already in the restored state: the stage crashed after its snapshot and before
            // its offsets were committed.
            return Ok(());
        }
        shard.received += 1;
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
        match (vouched, &record.sources) {
            (Some(ms), Some(sources)) => {
                self.progress.saw_sources(msg.partition(), &sources.0, ms);
            }
            (Some(ms), None) => {
                self.progress
                    .saw_from(msg.partition(), record.producer.unwrap_or(0), ms);
            }
            (None, _) => {}
        }
        let detector = shard.detectors.pick(&record.term);
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
                shard.contexts.entry(q.clone()).or_default().add(
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
        self.checkpoint(io, Moment::Batch).await
    }

    fn next_wake(&mut self) -> Option<tokio::time::Instant> {
        Some(self.last_advance + TICK)
    }

    async fn wake(&mut self, io: &mut Io<'_>) -> Result<Settled, StageError> {
        self.advance(io).await?;
        // The input is quiet: settle what is held now.
        self.checkpoint(io, Moment::Quiet).await
    }

    async fn drain(&mut self, io: &mut Io<'_>) -> Result<(), StageError> {
        // The runner settles everything next (with one state, that saves it).
        self.checkpoint(io, Moment::Shutdown).await.map(|_| ())
    }

    async fn reassigned(&mut self, io: &mut Io<'_>) -> Result<(), StageError> {
        // Every partition restarts from its committed offset, which its state in the topic
        // covers; what was read since is read again.
        self.shards.clear();
        self.progress = PartitionProgress::default();
        let assigned: Vec<i32> = io
            .consumer
            .assignment()
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .filter(|e| e.topic() == self.topics.terms)
                    .map(|e| e.partition())
                    .collect()
            })
            .unwrap_or_default();
        tracing::info!(partitions = ?assigned, "Terms partitions assigned");
        self.take_up(&assigned).await
    }

    fn partition_end(&mut self, partition: i32, end: Option<i64>) {
        self.progress.reached_end(partition, end, Instant::now());
    }

    fn settling(&mut self) -> Result<(), StageError> {
        let (Keeping::File(files), Some(shard)) = (&self.keeping, self.shards.get_mut(&ALL)) else {
            return Ok(());
        };
        let (detectors, contexts, progress) = (&shard.detectors, &shard.contexts, &self.progress);
        shard
            .coverage
            .save("the trend state", &files.dir, |covered| {
                files.save(Borrowed::of(detectors, contexts, covered, progress))
            })
    }
}
