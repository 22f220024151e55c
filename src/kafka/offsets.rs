//! Tracking the offsets a stage may store once the outputs of a batch are acknowledged.

use std::collections::HashMap;

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;

/// The highest processed offset per (topic, partition) since the last [`OffsetTracker::store`].
#[derive(Debug, Default)]
pub struct OffsetTracker {
    pending: HashMap<(String, i32), i64>,
}

impl OffsetTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that the message at `offset` was processed (its outputs are in flight).
    pub fn track(&mut self, topic: &str, partition: i32, offset: i64) {
        match self.pending.get_mut(&(topic.to_string(), partition)) {
            Some(o) => *o = (*o).max(offset),
            None => {
                self.pending.insert((topic.to_string(), partition), offset);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Forgets everything tracked: the outputs failed and the messages will be redelivered.
    pub fn discard(&mut self) {
        self.pending.clear();
    }

    /// Stores the tracked offsets in the consumer (committed by the next auto-commit or
    /// [`commit_now`]). Call only after every output of those messages is acknowledged.
    ///
    /// A partition revoked in between cannot be stored; its new owner processes those messages
    /// again, which at-least-once delivery allows.
    pub fn store<X: ConsumerContext, C: Consumer<X>>(&mut self, consumer: &C) {
        for ((topic, partition), offset) in self.pending.drain() {
            // rd_kafka_offset_store stores offset + 1: the next message to read.
            if let Err(e) = consumer.store_offset(&topic, partition, offset) {
                tracing::debug!(%topic, partition, offset, error = %e, "Offset not stored (partition revoked?)");
            }
        }
    }
}

/// Commits the stored offsets synchronously (on shutdown).
pub fn commit_now<X: ConsumerContext, C: Consumer<X>>(consumer: &C) -> KafkaResult<()> {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        // Nothing stored since the last commit.
        Err(rdkafka::error::KafkaError::ConsumerCommit(
            rdkafka::types::RDKafkaErrorCode::NoOffset,
        )) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_highest_offset_per_partition() {
        let mut t = OffsetTracker::new();
        t.track("a", 0, 5);
        t.track("a", 0, 3);
        t.track("a", 1, 1);
        assert_eq!(t.pending[&("a".to_string(), 0)], 5);
        assert_eq!(t.pending.len(), 2);
        t.discard();
        assert!(t.is_empty());
    }
}
