//! Dead-letter records: the original bytes unchanged, the reason and the source in headers.

use rdkafka::message::{Header, Headers, OwnedHeaders};

pub const H_REASON: &str = "gema.reason";
pub const H_ERROR: &str = "gema.error";
pub const H_STAGE: &str = "gema.stage";
pub const H_TOPIC: &str = "gema.source.topic";
pub const H_PARTITION: &str = "gema.source.partition";
pub const H_OFFSET: &str = "gema.source.offset";

/// Where a rejected message came from and why it was rejected.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeadLetter {
    pub stage: String,
    /// Short fixed code, e.g. `invalid_json`, `schema`, `empty_field`.
    pub reason: String,
    /// The full error message.
    pub error: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl DeadLetter {
    pub fn headers(&self) -> OwnedHeaders {
        let partition = self.partition.to_string();
        let offset = self.offset.to_string();
        [
            (H_STAGE, self.stage.as_str()),
            (H_REASON, self.reason.as_str()),
            (H_ERROR, self.error.as_str()),
            (H_TOPIC, self.topic.as_str()),
            (H_PARTITION, partition.as_str()),
            (H_OFFSET, offset.as_str()),
        ]
        .into_iter()
        .fold(OwnedHeaders::new(), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value),
            })
        })
    }

    /// Reads the headers written by [`DeadLetter::headers`]; `None` if any is missing.
    pub fn from_headers<H: Headers>(headers: &H) -> Option<DeadLetter> {
        let get = |name: &str| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        Some(DeadLetter {
            stage: get(H_STAGE)?,
            reason: get(H_REASON)?,
            error: get(H_ERROR)?,
            topic: get(H_TOPIC)?,
            partition: get(H_PARTITION)?.parse().ok()?,
            offset: get(H_OFFSET)?.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let d = DeadLetter {
            stage: "enrich".into(),
            reason: "invalid_json".into(),
            error: "EOF while parsing".into(),
            topic: "gema.mentions.raw".into(),
            partition: 2,
            offset: 41,
        };
        assert_eq!(DeadLetter::from_headers(&d.headers()), Some(d));
    }
}

/// One record read back from the dead-letter topic.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetterRecord {
    pub dead_letter: Option<DeadLetter>,
    /// The original bytes, lossily decoded for display.
    pub original: String,
    pub partition: i32,
    pub offset: i64,
}

/// Reads every record currently in the dead-letter topic (oldest first per partition), up to
/// `limit`. Joins no consumer group and commits nothing.
pub fn read_dead_letters(
    config: &super::config::KafkaConfig,
    topic: &str,
    limit: usize,
) -> Result<Vec<DeadLetterRecord>, rdkafka::error::KafkaError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    use std::time::{Duration, Instant};

    let consumer: BaseConsumer = super::client::base_config(config)
        .set("group.id", "gema-dlq-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0i64;
    for t in metadata.topics() {
        for p in t.partitions() {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
            if high > low {
                tpl.add_partition_offset(topic, p.id(), Offset::Offset(low))?;
                remaining += high - low;
            }
        }
    }
    let mut out = Vec::new();
    if remaining == 0 {
        return Ok(out);
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while remaining > 0 && out.len() < limit && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                remaining -= 1;
                out.push(DeadLetterRecord {
                    dead_letter: m.headers().and_then(DeadLetter::from_headers),
                    original: String::from_utf8_lossy(m.payload().unwrap_or(&[])).into_owned(),
                    partition: m.partition(),
                    offset: m.offset(),
                });
            }
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    Ok(out)
}
