//! Consumer-group lag: how many messages a stage has not yet committed.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::config::KafkaConfig;

/// Errors a fresh or busy broker returns for a while (group coordinator still loading or moving,
/// a partition's leader moving or not known yet).
pub(super) fn transient(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode::*;
    matches!(
        e.rdkafka_error_code(),
        Some(
            NotCoordinator
                | CoordinatorLoadInProgress
                | CoordinatorNotAvailable
                | LeaderNotAvailable
                | NotLeaderForPartition
                | RequestTimedOut
                | OperationTimedOut
        )
    )
}

/// Runs `f`, retrying transient coordinator errors for up to 30 s.
fn with_retry<T>(mut f: impl FnMut() -> Result<T, KafkaError>) -> Result<T, KafkaError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match f() {
            Err(e) if transient(&e) && std::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "Transient Kafka error; retrying");
                std::thread::sleep(Duration::from_millis(250));
            }
            other => return other,
        }
    }
}

/// A client that reads and writes `group`'s committed offsets without joining the group.
fn group_client(config: &KafkaConfig, group: &str) -> Result<BaseConsumer, KafkaError> {
    super::client::base_config(config)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
}

/// Messages in `topic` not yet committed by `group` (all of them when it never committed).
pub fn group_lag(config: &KafkaConfig, group: &str, topic: &str) -> Result<i64, KafkaError> {
    with_retry(|| group_lag_once(config, group, topic))
}

fn group_lag_once(config: &KafkaConfig, group: &str, topic: &str) -> Result<i64, KafkaError> {
    let consumer = group_client(config, group)?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition(topic, *p);
    }
    let committed = consumer.committed_offsets(tpl, timeout)?;
    let mut lag = 0;
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout)?;
        let done = match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => low,
        };
        lag += (high - done).max(0);
    }
    Ok(lag)
}

/// Number of messages currently in `topic` (sum of high − low watermarks). A topic created a
/// moment ago may have no leader yet: that is retried as the other lookups here are.
pub fn topic_size(config: &KafkaConfig, topic: &str) -> Result<i64, KafkaError> {
    with_retry(|| topic_size_once(config, topic))
}

fn topic_size_once(config: &KafkaConfig, topic: &str) -> Result<i64, KafkaError> {
    let consumer: BaseConsumer = super::client::base_config(config).create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut n = 0;
    for t in metadata.topics() {
        for p in t.partitions() {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
            n += high - low;
        }
    }
    Ok(n)
}

/// Moves `group`'s committed offsets on `topic` back to the start of every partition, so the
/// stage re-processes everything still retained (e.g. after a model change). The group must have
/// no running members.
pub fn rewind_group(config: &KafkaConfig, group: &str, topic: &str) -> Result<(), KafkaError> {
    with_retry(|| rewind_group_once(config, group, topic))
}

fn rewind_group_once(config: &KafkaConfig, group: &str, topic: &str) -> Result<(), KafkaError> {
    let consumer = group_client(config, group)?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            let (low, _) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
            tpl.add_partition_offset(topic, p.id(), Offset::Offset(low))?;
        }
    }
    consumer.commit(&tpl, rdkafka::consumer::CommitMode::Sync)
}
