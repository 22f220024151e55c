//! Reading a topic as it is now, from the start of each partition to its end at the time of the
//! call, without joining a consumer group or committing anything: the dead letters a user lists,
//! the states a stage takes up from its changelog.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::client::base_config;
use super::KafkaConfig;

/// Hands each record of `topic`'s `partitions` (every partition when `None`) to `each`, from
/// the partition's first record to its end as it is when the read begins; `each` returns
/// `false` to stop early. `reader` names the consumer (librdkafka's consumer wants a group id;
/// the reader never joins the group). A broker down for a moment (a partition's leader moving)
/// delays the read; it fails with `OperationTimedOut` when it has not reached the ends within
/// `wait`.
pub fn read_to_end(
    config: &KafkaConfig,
    reader: &str,
    topic: &str,
    partitions: Option<&[i32]>,
    wait: Duration,
    mut each: impl FnMut(&BorrowedMessage<'_>) -> bool,
) -> Result<(), KafkaError> {
    let consumer: BaseConsumer = base_config(config)
        .set("group.id", reader)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()?;
    let deadline = Instant::now() + wait;
    // Per partition, the start and the end to read up to. A partition whose leader is moving
    // (or, in a topic just created, not known to every broker yet) answers with an error a
    // moment later gone.
    let ranges = loop {
        match ranges_of(&consumer, topic, partitions) {
            Err(e)
                if (super::lag::transient(&e)
                    || e.rdkafka_error_code()
                        == Some(RDKafkaErrorCode::BrokerTransportFailure))
                    && Instant::now() < deadline =>
            {
                tracing::debug!(%topic, error = %e, "Asking a topic's ends; retrying");
                std::thread::sleep(Duration::from_millis(250));
            }
            other => break other?,
        }
    };
    let mut ends = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for (p, low, high) in ranges {
        tpl.add_partition_offset(topic, p, Offset::Offset(low))?;
        ends.insert(p, high);
    }
    if ends.is_empty() {
        return Ok(());
    }
    consumer.assign(&tpl)?;
    while !ends.is_empty() {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                // Records written since the read began are not part of it.
                let Some(&end) = ends.get(&m.partition()).filter(|end| m.offset() < **end) else {
                    continue;
                };
                if !each(&m) {
                    return Ok(());
                }
                // A compacted topic may lack offsets in between, never its last record (the
                // active segment is not cleaned).
                if m.offset() + 1 >= end {
                    ends.remove(&m.partition());
                }
            }
            Some(Err(e)) => tracing::debug!(%topic, error = %e, "Reading a topic to its end"),
            None => {}
        }
        if !ends.is_empty() && Instant::now() >= deadline {
            return Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::OperationTimedOut,
            ));
        }
    }
    Ok(())
}

/// (partition, low, high) of `partitions` of `topic` (every partition when `None`) that hold
/// records now.
fn ranges_of(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: Option<&[i32]>,
) -> Result<Vec<(i32, i64, i64)>, KafkaError> {
    let timeout = Duration::from_secs(10);
    let partitions: Vec<i32> = match partitions {
        Some(p) => p.to_vec(),
        None => consumer
            .fetch_metadata(Some(topic), timeout)?
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect(),
    };
    let mut out = Vec::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout)?;
        if high > low {
            out.push((p, low, high));
        }
    }
    Ok(out)
}
