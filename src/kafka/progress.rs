//! Event-time progress per input partition, for a stage's low watermark.
//!
//! A stage that reads several partitions must not let one partition read ahead of the others make
//! theirs late: its watermark is the oldest "newest event time" over the partitions it is
//! assigned. An assigned partition not read yet holds the watermark (its backlog may be older than
//! what the others delivered); a partition that has sat at its end for [`IDLE_AFTER`] stops
//! holding it (a quiet partition must not stall trend detection; what arrives on it later is new).
//! A partition whose end moved since (the consumer has fetched more of it, not handed it over yet,
//! as while a stage works through a long batch of another partition's backlog) is not idle.
//! The consumer must report partition ends (`BatchPolicy::partition_eof`), with the end offset
//! from [`fetched_end`].

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};

use super::KafkaConfig;

/// How long a partition sits at its end before it stops holding the watermark back.
pub const IDLE_AFTER: Duration = Duration::from_secs(2);

/// How long a producer that wrote to a partition may stay silent there before its progress no
/// longer holds the partition back (it has stopped, or moved to other partitions). A producer
/// at work writes to every partition of a keyed topic about once a batch.
pub const PRODUCER_GONE_AFTER: Duration = Duration::from_secs(10);

/// The header naming the producer of a record whose payload does not (the raw alerts: their
/// JSON is what the router delivers, so the id travels beside it).
pub const PRODUCER_HEADER: &str = "gema-producer";

/// [`PRODUCER_HEADER`] with `producer`, in decimal.
pub fn producer_header(producer: u64) -> OwnedHeaders {
    OwnedHeaders::new().insert(Header {
        key: PRODUCER_HEADER,
        value: Some(producer.to_string().as_bytes()),
    })
}

/// The producer a record's [`PRODUCER_HEADER`] names, if it has one that reads as an id.
pub fn producer_of<M: Message>(msg: &M) -> Option<u64> {
    let headers = msg.headers()?;
    headers
        .iter()
        .find(|h| h.key == PRODUCER_HEADER)
        .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse().ok())
}

/// The end (high watermark) of `topic`'s `partition` as of the consumer's last fetch from it:
/// librdkafka's cached value, no request to the broker. `None` before the first fetch.
pub fn fetched_end<X: ConsumerContext, C: Consumer<X>>(
    consumer: &C,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let topic = CString::new(topic).ok()?;
    let (mut low, mut high) = (-1_i64, -1_i64);
    // SAFETY: the client pointer is valid while `consumer` lives; librdkafka only reads the
    // NUL-terminated topic name and writes the two offsets.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

/// The partitions `consumer` is assigned now, with their [`fetched_end`].
fn assigned<X: ConsumerContext, C: Consumer<X>>(consumer: &C) -> Vec<(i32, Option<i64>)> {
    consumer
        .assignment()
        .map(|l| {
            l.elements()
                .iter()
                .map(|e| {
                    (
                        e.partition(),
                        fetched_end(consumer, e.topic(), e.partition()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Asks the broker itself for partitions' ends: a consumer that has sat at the end of its
/// partitions for a while may instead be cut off from a broker that is down (it sees no new
/// records either), and must not take that for a quiet input.
pub struct EndProbe {
    config: KafkaConfig,
    client: Option<Arc<BaseConsumer>>,
}

impl EndProbe {
    pub fn new(config: &KafkaConfig) -> EndProbe {
        EndProbe {
            config: config.clone(),
            client: None,
        }
    }

    /// Whether the broker answers within `timeout` for every partition of `topic` in `ends`, and
    /// none has grown past the end offset given (`None`: any end will do).
    pub async fn confirms(
        &mut self,
        topic: &str,
        ends: Vec<(i32, Option<i64>)>,
        timeout: Duration,
    ) -> bool {
        if self.client.is_none() {
            match super::client::base_config(&self.config).create::<BaseConsumer>() {
                Ok(c) => self.client = Some(Arc::new(c)),
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot create a client to ask for partition ends");
                    return false;
                }
            }
        }
        let client = self.client.clone().expect("created above");
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || {
            ends.iter().all(|(p, end)| {
                match client.fetch_watermarks(&topic, *p, timeout) {
                    Ok((_, high)) => end.is_none_or(|e| high <= e),
                    Err(e) => {
                        tracing::debug!(%topic, partition = p, error = %e, "Partition end not confirmed");
                        false
                    }
                }
            })
        })
        .await
        .unwrap_or(false)
    }

    /// Whether consumer `group` has committed everything in `topic` (the stage upstream has
    /// finished what there is), as the broker answers now.
    pub async fn upstream_done(&self, group: String, topic: String) -> bool {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || super::lag::group_lag(&config, &group, &topic))
            .await
            .map(|lag| match lag {
                Ok(lag) => lag == 0,
                Err(e) => {
                    tracing::debug!(%e, "Upstream lag not known");
                    false
                }
            })
            .unwrap_or(false)
    }
}

/// Event-time progress (ms since the epoch) of each partition a consumer reads.
#[derive(Debug, Default)]
pub struct PartitionProgress {
    partitions: HashMap<i32, Partition>,
    /// The last watermark handed out; it never goes back.
    last: Option<i64>,
    /// When the last message (of any partition) was read.
    last_message: Option<Instant>,
    /// The partitions assigned at the last [`low_watermark_anew`](Self::low_watermark_anew).
    assignment: Option<Vec<i32>>,
}

#[derive(Debug, Default)]
struct Partition {
    /// Per producer writing to the partition (0: records that do not say), its newest event
    /// time and when it was last heard from here. Only records that name no sources.
    producers: Vec<(u64, i64, Instant)>,
    /// Per source (a partition of the producers' own input, e.g. a raw partition the enrich
    /// stage reads), the newest event time any producer vouched for it in records read here.
    /// A source moves between producers as their group rebalances; it holds the partition back
    /// until whichever producer reads it now vouches for more, however long that takes.
    sources: BTreeMap<i32, i64>,
    /// Since when the consumer has been at the partition's end (no message since).
    at_end_since: Option<Instant>,
    /// The end offset it was at then (`None`: unknown).
    end: Option<i64>,
}

impl Partition {
    /// The partition's progress: the oldest newest event time of the producers heard from here
    /// within [`PRODUCER_GONE_AFTER`] (several enrich processes write to each partition of the
    /// terms and raw alerts topics; the slower one's records must not be late because the
    /// faster one's came first), else the last one heard from. Records that name no producer
    /// (0: the trend stage's spike alerts, records of earlier versions) count only while no
    /// producer that names itself is active: a spike's time is a bucket's, behind the mentions.
    fn newest(&self, now: Instant) -> Option<i64> {
        let sources = self.sources.values().min().copied();
        match (sources, self.newest_of_producers(now)) {
            (Some(s), Some(p)) => Some(s.min(p)),
            (s, p) => s.or(p),
        }
    }

    /// [`newest`](Self::newest) over the producers that name no sources.
    fn newest_of_producers(&self, now: Instant) -> Option<i64> {
        let active = |named: bool| {
            self.producers
                .iter()
                .filter(|(id, _, seen)| {
                    (*id != 0) == named
                        && now.saturating_duration_since(*seen) < PRODUCER_GONE_AFTER
                })
                .map(|(_, newest, _)| *newest)
                .min()
        };
        active(true).or_else(|| active(false)).or_else(|| {
            self.producers
                .iter()
                .max_by_key(|(_, _, seen)| *seen)
                .map(|(_, newest, _)| *newest)
        })
    }

    /// At its end for `quiet`, and nothing fetched since that the consumer has not handed over
    /// (`end_now`: the partition's [`fetched_end`] now).
    fn quiet_for(&self, quiet: Duration, end_now: Option<i64>, now: Instant) -> bool {
        let grown = matches!((self.end, end_now), (Some(then), Some(e)) if e > then);
        !grown
            && self
                .at_end_since
                .is_some_and(|since| now.duration_since(since) >= quiet)
    }
}

impl PartitionProgress {
    /// A message with event time `ms` was read from `partition`.
    pub fn saw(&mut self, partition: i32, ms: i64) {
        self.saw_at(partition, 0, ms, Instant::now());
    }

    /// A message from `producer` (an id each producer picks for itself) vouching for event time
    /// `ms` was read from `partition`.
    pub fn saw_from(&mut self, partition: i32, producer: u64, ms: i64) {
        self.saw_at(partition, producer, ms, Instant::now());
    }

    /// [`saw_from`](Self::saw_from) at `now`. The first message after the whole input was quiet for
    /// [`IDLE_AFTER`] restarts the idle clock of every partition at its end: they were quiet
    /// because nothing was being written, and get [`IDLE_AFTER`] to show their share of what is
    /// written now before they stop holding the watermark back.
    pub fn saw_at(&mut self, partition: i32, producer: u64, ms: i64, now: Instant) {
        self.heard(now);
        let p = self.partitions.entry(partition).or_default();
        match p.producers.iter_mut().find(|(id, _, _)| *id == producer) {
            Some((_, newest, seen)) => {
                *newest = (*newest).max(ms);
                *seen = now;
            }
            None => {
                // Producers long gone are forgotten as new ones come (an enrich process picks a
                // new id at each start and each change of its partitions).
                p.producers.retain(|(_, _, seen)| {
                    now.saturating_duration_since(*seen) < PRODUCER_GONE_AFTER * 6
                });
                p.producers.push((producer, ms, now));
            }
        }
        p.at_end_since = None;
    }

    /// A message was read `now`. The first after the whole input was quiet for [`IDLE_AFTER`]
    /// restarts the idle clock of every partition at its end.
    fn heard(&mut self, now: Instant) {
        let was_quiet = self
            .last_message
            .is_none_or(|last| now.duration_since(last) >= IDLE_AFTER);
        if was_quiet {
            for p in self.partitions.values_mut() {
                if let Some(since) = p.at_end_since.as_mut() {
                    *since = now;
                }
            }
        }
        self.last_message = Some(now);
    }

    /// A message vouching for event time `ms` on behalf of each of `sources` (the producer's
    /// input partitions it had read that far when it wrote the message) was read from
    /// `partition`. Each source keeps the most any producer vouched for it: a producer that
    /// takes a source over from another begins behind it, and what it writes until it has caught
    /// up was written by the other already.
    pub fn saw_sources(&mut self, partition: i32, sources: &[i32], ms: i64) {
        self.saw_sources_at(partition, sources, ms, Instant::now());
    }

    /// [`saw_sources`](Self::saw_sources) at `now`.
    pub fn saw_sources_at(&mut self, partition: i32, sources: &[i32], ms: i64, now: Instant) {
        self.heard(now);
        let p = self.partitions.entry(partition).or_default();
        for &source in sources {
            let v = p.sources.entry(source).or_insert(ms);
            *v = (*v).max(ms);
        }
        p.at_end_since = None;
    }

    /// What producers vouched for each source of `partition`: (source, newest event time).
    pub fn sources_of(&self, partition: i32) -> Vec<(i32, i64)> {
        self.partitions
            .get(&partition)
            .map(|p| p.sources.iter().map(|(s, ms)| (*s, *ms)).collect())
            .unwrap_or_default()
    }

    /// Takes up what a snapshot recorded of `partition`'s sources.
    pub fn restore_sources(&mut self, partition: i32, sources: &[(i32, i64)]) {
        let p = self.partitions.entry(partition).or_default();
        for &(source, ms) in sources {
            let v = p.sources.entry(source).or_insert(ms);
            *v = (*v).max(ms);
        }
    }

    /// The consumer reached the end of `partition`, at offset `end` (its [`fetched_end`]).
    pub fn reached_end(&mut self, partition: i32, end: Option<i64>, now: Instant) {
        let p = self.partitions.entry(partition).or_default();
        if p.at_end_since.is_none() {
            p.at_end_since = Some(now);
            p.end = end;
        } else if p.end.is_some_and(|then| end.is_some_and(|e| e > then)) {
            // The end moved and the consumer reached it again without a message in between
            // (records it skips, such as those a restored state already holds).
            p.end = end;
        }
    }

    /// Whether the consumer has been at the end of every partition it is assigned (at least one)
    /// for `quiet`: it has read all there is, and nothing new came for that long. A consumer
    /// still joining its group, or one with a backlog, is never quiet.
    pub fn caught_up_for<X: ConsumerContext, C: Consumer<X>>(
        &self,
        consumer: &C,
        quiet: Duration,
    ) -> bool {
        self.caught_up_of(&assigned(consumer), quiet, Instant::now())
    }

    /// [`caught_up_for`](Self::caught_up_for) over `assigned` (partition, [`fetched_end`]) at
    /// `now`.
    pub fn caught_up_of(
        &self,
        assigned: &[(i32, Option<i64>)],
        quiet: Duration,
        now: Instant,
    ) -> bool {
        !assigned.is_empty()
            && assigned.iter().all(|(p, end)| {
                self.partitions
                    .get(p)
                    .is_some_and(|s| s.quiet_for(quiet, *end, now))
            })
    }

    /// The partitions `consumer` is assigned now, each with the end offset at which it was last
    /// found at its end (`None`: not known), for [`EndProbe::confirms`].
    pub fn ends<X: ConsumerContext, C: Consumer<X>>(
        &self,
        consumer: &C,
    ) -> Vec<(i32, Option<i64>)> {
        assigned(consumer)
            .into_iter()
            .map(|(p, _)| (p, self.partitions.get(&p).and_then(|s| s.end)))
            .collect()
    }

    /// What `partition`'s producers vouch for: the oldest newest event time over those heard
    /// from lately (`None`: nothing read from it yet). A stage with state per partition closes
    /// that partition's buckets on it.
    pub fn watermark_of(&self, partition: i32) -> Option<i64> {
        self.partitions
            .get(&partition)
            .and_then(|s| s.newest(Instant::now()))
    }

    /// What `partition`'s producers heard from within [`PRODUCER_GONE_AFTER`] vouched for so
    /// far: (producer, newest event time), for a snapshot of state that covers the records read.
    pub fn producers_of(&self, partition: i32) -> Vec<(u64, i64)> {
        let now = Instant::now();
        self.partitions
            .get(&partition)
            .map(|p| {
                p.producers
                    .iter()
                    .filter(|(_, _, seen)| {
                        now.saturating_duration_since(*seen) < PRODUCER_GONE_AFTER
                    })
                    .map(|(id, ms, _)| (*id, *ms))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Takes up what a snapshot recorded of `partition`'s producers, as heard from `now`: a
    /// process that takes a partition over waits for the producers its previous owner was
    /// waiting for (each for [`PRODUCER_GONE_AFTER`] at most), so a slower producer's records
    /// are not late because a faster one's were read first after the handover.
    pub fn restore_producers(&mut self, partition: i32, producers: &[(u64, i64)], now: Instant) {
        let p = self.partitions.entry(partition).or_default();
        for &(id, ms) in producers {
            match p.producers.iter_mut().find(|(known, _, _)| *known == id) {
                Some((_, newest, _)) => *newest = (*newest).max(ms),
                None => p.producers.push((id, ms, now)),
            }
        }
    }

    /// The partitions assigned at the last [`low_watermark_anew`](Self::low_watermark_anew),
    /// in order.
    pub fn assignment(&self) -> &[i32] {
        self.assignment.as_deref().unwrap_or_default()
    }

    /// The low watermark over the partitions `consumer` is assigned now (`None`: no progress).
    pub fn low_watermark<X: ConsumerContext, C: Consumer<X>>(
        &mut self,
        consumer: &C,
    ) -> Option<i64> {
        self.low_watermark_of(&assigned(consumer), Instant::now())
    }

    /// [`low_watermark`](Self::low_watermark), started again when the assignment changed since
    /// the last call (then also `true`): a watermark handed to others as a promise (no older
    /// event time follows) cannot be kept across a partition newly assigned that is behind it.
    pub fn low_watermark_anew<X: ConsumerContext, C: Consumer<X>>(
        &mut self,
        consumer: &C,
    ) -> (Option<i64>, bool) {
        let assigned = assigned(consumer);
        let mut now: Vec<i32> = assigned.iter().map(|(p, _)| *p).collect();
        now.sort_unstable();
        let changed = self.assignment.as_ref() != Some(&now);
        if changed {
            self.last = None;
            self.assignment = Some(now);
        }
        (self.low_watermark_of(&assigned, Instant::now()), changed)
    }

    /// The minimum newest event time over `assigned` (partition, [`fetched_end`]), leaving out
    /// partitions idle at their end for [`IDLE_AFTER`]; held where it was while an assigned
    /// partition has not been read yet.
    pub fn low_watermark_of(
        &mut self,
        assigned: &[(i32, Option<i64>)],
        now: Instant,
    ) -> Option<i64> {
        let mut low: Option<i64> = None;
        for (p, end) in assigned {
            let state = self.partitions.get(p);
            if state.is_some_and(|s| s.quiet_for(IDLE_AFTER, *end, now)) {
                continue;
            }
            match state.and_then(|s| s.newest(now)) {
                Some(t) => low = Some(low.map_or(t, |l| l.min(t))),
                None => return self.last,
            }
        }
        if let Some(l) = low {
            self.last = Some(self.last.map_or(l, |last| last.max(l)));
        }
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `partitions` assigned, their fetched ends unknown.
    fn at(partitions: &[i32]) -> Vec<(i32, Option<i64>)> {
        partitions.iter().map(|&p| (p, None)).collect()
    }

    #[test]
    fn a_partition_two_producers_write_to_waits_for_the_slower_until_it_is_gone() {
        let now = Instant::now();
        let mut p = PartitionProgress::default();
        // Producer 1 is ahead; producer 2's records, older, still come.
        p.saw_at(0, 1, 500, now);
        p.saw_at(0, 2, 100, now);
        p.saw_at(0, 1, 600, now);
        assert_eq!(p.low_watermark_of(&at(&[0]), now), Some(100));
        p.saw_at(0, 2, 300, now);
        assert_eq!(p.low_watermark_of(&at(&[0]), now), Some(300));
        // Producer 2 stops (its process left the group): after a while it no longer holds the
        // partition back.
        let later = now + PRODUCER_GONE_AFTER;
        p.saw_at(0, 1, 900, later);
        assert_eq!(p.low_watermark_of(&at(&[0]), later), Some(900));
        // Records that name no producer count as one producer, as before.
        let mut q = PartitionProgress::default();
        q.saw(0, 500);
        q.saw(0, 100);
        assert_eq!(q.low_watermark_of(&at(&[0]), Instant::now()), Some(500));
    }

    #[test]
    fn the_producer_header_reads_back() {
        use rdkafka::message::{OwnedMessage, Timestamp};
        let msg = |headers| {
            OwnedMessage::new(
                None,
                None,
                "t".into(),
                Timestamp::NotAvailable,
                0,
                0,
                headers,
            )
        };
        assert_eq!(
            producer_of(&msg(Some(producer_header(u64::MAX)))),
            Some(u64::MAX)
        );
        assert_eq!(producer_of(&msg(None)), None);
        let other = OwnedHeaders::new().insert(Header {
            key: PRODUCER_HEADER,
            value: Some("not an id"),
        });
        assert_eq!(producer_of(&msg(Some(other))), None);
    }

    #[test]
    fn a_source_holds_the_partition_back_until_its_new_reader_catches_up() {
        let now = Instant::now();
        let mut p = PartitionProgress::default();
        // One enrich process reads raw partitions 0..2; partition 2 is behind.
        p.saw_sources_at(0, &[0, 1, 2], 100, now);
        assert_eq!(p.low_watermark_of(&at(&[0]), now), Some(100));
        // It loses raw partition 2 to a second process that is slow to start, and races ahead
        // on 0 and 1. However long the second one takes, partition 2 holds the watermark.
        let later = now + PRODUCER_GONE_AFTER * 10;
        p.saw_sources_at(0, &[0, 1], 900, later);
        assert_eq!(p.low_watermark_of(&at(&[0]), later), Some(100));
        assert_eq!(p.watermark_of(0), Some(100));
        // The second process begins behind what the first vouched for (what it writes up to
        // there was written already): the source keeps the most vouched.
        p.saw_sources_at(0, &[2], 50, later);
        assert_eq!(p.low_watermark_of(&at(&[0]), later), Some(100));
        p.saw_sources_at(0, &[2], 700, later);
        assert_eq!(p.low_watermark_of(&at(&[0]), later), Some(700));
        // A snapshot carries the sources to the next owner of the terms partition.
        let mut q = PartitionProgress::default();
        q.restore_sources(0, &p.sources_of(0));
        assert_eq!(q.watermark_of(0), Some(700));
        q.saw_sources_at(0, &[0, 1, 2], 800, later);
        assert_eq!(q.watermark_of(0), Some(800));
    }

    #[test]
    fn records_that_name_no_producer_count_only_without_named_ones() {
        let now = Instant::now();
        let mut p = PartitionProgress::default();
        // Two enrich processes' alerts and the trend stage's spike alert (older: a bucket's
        // time) on one partition of the raw alerts.
        p.saw_at(0, 7, 900, now);
        p.saw_at(0, 8, 700, now);
        p.saw_at(0, 0, 400, now);
        assert_eq!(p.low_watermark_of(&at(&[0]), now), Some(700));
        // Both processes gone: the unnamed records hold the partition.
        let later = now + PRODUCER_GONE_AFTER;
        p.saw_at(0, 0, 800, later);
        assert_eq!(p.low_watermark_of(&at(&[0]), later), Some(800));
    }

    #[test]
    fn watermark_waits_for_every_assigned_partition() {
        let now = Instant::now();
        let mut p = PartitionProgress::default();
        p.saw(0, 30);
        // Partition 1 is assigned but not read yet: its backlog may be older.
        assert_eq!(p.low_watermark_of(&at(&[0, 1]), now), None);
        p.saw(1, 10);
        assert_eq!(p.low_watermark_of(&at(&[0, 1]), now), Some(10));
        p.saw(1, 40);
        assert_eq!(p.low_watermark_of(&at(&[0, 1]), now), Some(30));
        // A partition no longer assigned does not count.
        assert_eq!(p.low_watermark_of(&at(&[1]), now), Some(40));
    }

    #[test]
    fn caught_up_only_at_the_end_of_every_assigned_partition() {
        let now = Instant::now();
        let mut p = PartitionProgress::default();
        // Nothing assigned yet (still joining the group): never caught up.
        assert!(!p.caught_up_of(&at(&[]), IDLE_AFTER, now + IDLE_AFTER));
        p.saw_at(0, 0, 10, now);
        p.reached_end(0, None, now);
        assert!(!p.caught_up_of(&at(&[0, 1]), IDLE_AFTER, now + IDLE_AFTER));
        p.reached_end(1, None, now);
        assert!(!p.caught_up_of(&at(&[0, 1]), IDLE_AFTER, now));
        assert!(p.caught_up_of(&at(&[0, 1]), IDLE_AFTER, now + IDLE_AFTER));
        // A new message means a backlog again.
        p.saw_at(1, 0, 20, now + IDLE_AFTER);
        assert!(!p.caught_up_of(&at(&[0, 1]), IDLE_AFTER, now + IDLE_AFTER * 2));
    }

    #[test]
    fn an_idle_partition_stops_holding_the_watermark_back() {
        let now = Instant::now();
        let later = now + IDLE_AFTER;
        let mut p = PartitionProgress::default();
        p.saw(0, 30);
        p.saw(1, 10);
        p.reached_end(1, None, now);
        // Just reached its end: more may be on its way.
        assert_eq!(p.low_watermark_of(&at(&[0, 1]), now), Some(10));
        // Quiet for IDLE_AFTER: left out.
        assert_eq!(p.low_watermark_of(&at(&[0, 1]), later), Some(30));
        // A new message on it counts again, but the watermark never goes back.
        p.saw(1, 20);
        assert_eq!(p.low_watermark_of(&at(&[0, 1]), later), Some(30));
        // A partition empty from the start holds it only until it has been idle long enough.
        let mut q = PartitionProgress::default();
        q.saw_at(0, 0, 5, now);
        q.reached_end(2, None, now);
        assert_eq!(q.low_watermark_of(&at(&[0, 2]), now), None);
        assert_eq!(q.low_watermark_of(&at(&[0, 2]), later), Some(5));
    }

    #[test]
    fn after_a_quiet_input_every_partition_gets_time_to_catch_up() {
        // All partitions sat at their end long before the first message (a replay starting
        // later): the first message on partition 0 must not leave 1 and 2 out at once.
        let start = Instant::now();
        let first = start + IDLE_AFTER * 3;
        let mut p = PartitionProgress::default();
        for part in 0..3 {
            p.reached_end(part, None, start);
        }
        p.saw_at(0, 0, 600, first);
        assert_eq!(p.low_watermark_of(&at(&[0, 1, 2]), first), None);
        p.saw_at(1, 0, 100, first);
        p.saw_at(2, 0, 300, first);
        assert_eq!(p.low_watermark_of(&at(&[0, 1, 2]), first), Some(100));
        // Partition 1 goes quiet while the others keep delivering: left out after IDLE_AFTER.
        p.reached_end(1, None, first);
        p.saw_at(0, 0, 650, first + IDLE_AFTER / 2);
        p.saw_at(0, 0, 700, first + IDLE_AFTER);
        p.saw_at(2, 0, 700, first + IDLE_AFTER);
        assert_eq!(
            p.low_watermark_of(&at(&[0, 1, 2]), first + IDLE_AFTER),
            Some(700)
        );
    }

    #[test]
    fn a_partition_with_fetched_records_not_handed_over_is_not_idle() {
        // Partition 1 reached its end at offset 40, then the consumer fetched more of it while
        // the stage worked through partition 0's backlog for longer than IDLE_AFTER.
        let now = Instant::now();
        let later = now + IDLE_AFTER * 2;
        let mut p = PartitionProgress::default();
        p.saw_at(0, 0, 30, now);
        p.saw_at(1, 0, 10, now);
        p.reached_end(1, Some(40), now);
        for step in 1..=4 {
            p.saw_at(0, 0, 100 * step, now + IDLE_AFTER / 2 * step as u32);
        }
        assert_eq!(
            p.low_watermark_of(&[(0, None), (1, Some(55))], later),
            Some(10)
        );
        assert!(!p.caught_up_of(&[(1, Some(55))], IDLE_AFTER, later));
        // Nothing new on it: idle, left out.
        assert_eq!(
            p.low_watermark_of(&[(0, None), (1, Some(40))], later),
            Some(400)
        );
        // Skipped records (no message handed to the stage) end in a new end: idle from there.
        let mut q = PartitionProgress::default();
        q.reached_end(0, Some(40), now);
        q.reached_end(0, Some(55), now);
        assert!(q.caught_up_of(&[(0, Some(55))], IDLE_AFTER, later));
    }
}
