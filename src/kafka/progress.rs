//! Event-time progress per input partition, for a stage's low watermark.
//!
//! A stage that reads several partitions must not let one partition read ahead of the others make
//! theirs late: its watermark is the oldest "newest event time" over the partitions it is
//! assigned. An assigned partition not read yet holds the watermark (its backlog may be older than
//! what the others delivered); a partition that has sat at its end for [`IDLE_AFTER`] stops
//! holding it (a quiet partition must not stall trend detection; what arrives on it later is new).
//! The consumer must report partition ends (`stage_clients(.., partition_eof: true)`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::error::KafkaError;

/// How long a partition sits at its end before it stops holding the watermark back.
pub const IDLE_AFTER: Duration = Duration::from_secs(2);

/// Event-time progress (ms since the epoch) of each partition a consumer reads.
#[derive(Debug, Default)]
pub struct PartitionProgress {
    partitions: HashMap<i32, Partition>,
    /// The last watermark handed out; it never goes back.
    last: Option<i64>,
    /// When the last message (of any partition) was read.
    last_message: Option<Instant>,
}

#[derive(Debug, Default)]
struct Partition {
    newest: Option<i64>,
    /// Since when the consumer has been at the partition's end (no message since).
    at_end_since: Option<Instant>,
}

impl PartitionProgress {
    /// A message with event time `ms` was read from `partition`.
    pub fn saw(&mut self, partition: i32, ms: i64) {
        self.saw_at(partition, ms, Instant::now());
    }

    /// [`saw`](Self::saw) at `now`. The first message after the whole input was quiet for
    /// [`IDLE_AFTER`] restarts the idle clock of every partition at its end: they were quiet
    /// because nothing was being written, and get [`IDLE_AFTER`] to show their share of what is
    /// written now before they stop holding the watermark back.
    pub fn saw_at(&mut self, partition: i32, ms: i64, now: Instant) {
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
        let p = self.partitions.entry(partition).or_default();
        p.newest = Some(p.newest.map_or(ms, |n| n.max(ms)));
        p.at_end_since = None;
    }

    /// The consumer reached the end of `partition`.
    pub fn reached_end(&mut self, partition: i32, now: Instant) {
        let p = self.partitions.entry(partition).or_default();
        p.at_end_since.get_or_insert(now);
    }

    /// Records a partition end; logs any other consumer error.
    pub fn consumer_error(&mut self, e: KafkaError) {
        match e {
            KafkaError::PartitionEOF(p) => self.reached_end(p, Instant::now()),
            e => tracing::warn!(error = %e, "Kafka consumer error"),
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
        let assigned: Vec<i32> = consumer
            .assignment()
            .map(|l| l.elements().iter().map(|e| e.partition()).collect())
            .unwrap_or_default();
        self.caught_up_of(&assigned, quiet, Instant::now())
    }

    /// [`caught_up_for`](Self::caught_up_for) over `assigned` at `now`.
    pub fn caught_up_of(&self, assigned: &[i32], quiet: Duration, now: Instant) -> bool {
        !assigned.is_empty()
            && assigned.iter().all(|p| {
                self.partitions
                    .get(p)
                    .and_then(|s| s.at_end_since)
                    .is_some_and(|since| now.duration_since(since) >= quiet)
            })
    }

    /// The low watermark over the partitions `consumer` is assigned now (`None`: no progress).
    pub fn low_watermark<X: ConsumerContext, C: Consumer<X>>(
        &mut self,
        consumer: &C,
    ) -> Option<i64> {
        let assigned: Vec<i32> = consumer
            .assignment()
            .map(|l| l.elements().iter().map(|e| e.partition()).collect())
            .unwrap_or_default();
        self.low_watermark_of(&assigned, Instant::now())
    }

    /// The minimum newest event time over `assigned`, leaving out partitions idle at their end
    /// for [`IDLE_AFTER`]; held where it was while an assigned partition has not been read yet.
    pub fn low_watermark_of(&mut self, assigned: &[i32], now: Instant) -> Option<i64> {
        let mut low: Option<i64> = None;
        for p in assigned {
            let state = self.partitions.get(p);
            let idle = state
                .and_then(|s| s.at_end_since)
                .is_some_and(|since| now.duration_since(since) >= IDLE_AFTER);
            if idle {
                continue;
            }
            match state.and_then(|s| s.newest) {
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

    #[test]
    fn watermark_waits_for_every_assigned_partition() {
        let now = Instant::now();
        let mut p = PartitionProgress::default();
        p.saw(0, 30);
        // Partition 1 is assigned but not read yet: its backlog may be older.
        assert_eq!(p.low_watermark_of(&[0, 1], now), None);
        p.saw(1, 10);
        assert_eq!(p.low_watermark_of(&[0, 1], now), Some(10));
        p.saw(1, 40);
        assert_eq!(p.low_watermark_of(&[0, 1], now), Some(30));
        // A partition no longer assigned does not count.
        assert_eq!(p.low_watermark_of(&[1], now), Some(40));
    }

    #[test]
    fn caught_up_only_at_the_end_of_every_assigned_partition() {
        let now = Instant::now();
        let mut p = PartitionProgress::default();
        // Nothing assigned yet (still joining the group): never caught up.
        assert!(!p.caught_up_of(&[], IDLE_AFTER, now + IDLE_AFTER));
        p.saw_at(0, 10, now);
        p.reached_end(0, now);
        assert!(!p.caught_up_of(&[0, 1], IDLE_AFTER, now + IDLE_AFTER));
        p.reached_end(1, now);
        assert!(!p.caught_up_of(&[0, 1], IDLE_AFTER, now));
        assert!(p.caught_up_of(&[0, 1], IDLE_AFTER, now + IDLE_AFTER));
        // A new message means a backlog again.
        p.saw_at(1, 20, now + IDLE_AFTER);
        assert!(!p.caught_up_of(&[0, 1], IDLE_AFTER, now + IDLE_AFTER * 2));
    }

    #[test]
    fn an_idle_partition_stops_holding_the_watermark_back() {
        let now = Instant::now();
        let later = now + IDLE_AFTER;
        let mut p = PartitionProgress::default();
        p.saw(0, 30);
        p.saw(1, 10);
        p.reached_end(1, now);
        // Just reached its end: more may be on its way.
        assert_eq!(p.low_watermark_of(&[0, 1], now), Some(10));
        // Quiet for IDLE_AFTER: left out.
        assert_eq!(p.low_watermark_of(&[0, 1], later), Some(30));
        // A new message on it counts again, but the watermark never goes back.
        p.saw(1, 20);
        assert_eq!(p.low_watermark_of(&[0, 1], later), Some(30));
        // A partition empty from the start holds it only until it has been idle long enough.
        let mut q = PartitionProgress::default();
        q.saw_at(0, 5, now);
        q.reached_end(2, now);
        assert_eq!(q.low_watermark_of(&[0, 2], now), None);
        assert_eq!(q.low_watermark_of(&[0, 2], later), Some(5));
    }

    #[test]
    fn after_a_quiet_input_every_partition_gets_time_to_catch_up() {
        // All partitions sat at their end long before the first message (a replay starting
        // later): the first message on partition 0 must not leave 1 and 2 out at once.
        let start = Instant::now();
        let first = start + IDLE_AFTER * 3;
        let mut p = PartitionProgress::default();
        for part in 0..3 {
            p.reached_end(part, start);
        }
        p.saw_at(0, 600, first);
        assert_eq!(p.low_watermark_of(&[0, 1, 2], first), None);
        p.saw_at(1, 100, first);
        p.saw_at(2, 300, first);
        assert_eq!(p.low_watermark_of(&[0, 1, 2], first), Some(100));
        // Partition 1 goes quiet while the others keep delivering: left out after IDLE_AFTER.
        p.reached_end(1, first);
        p.saw_at(0, 650, first + IDLE_AFTER / 2);
        p.saw_at(0, 700, first + IDLE_AFTER);
        p.saw_at(2, 700, first + IDLE_AFTER);
        assert_eq!(
            p.low_watermark_of(&[0, 1, 2], first + IDLE_AFTER),
            Some(700)
        );
    }
}
