//! A stage's state per input partition kept in a compacted topic (its changelog), so that
//! whichever process is assigned a partition next continues from it, on this machine or another.
//!
//! The topic has one partition; its records, by key:
//! - `p<P>/<gen>/<i>`: piece `i` of a snapshot of input partition `P`, generation `gen` (a random
//!   number each write: two writers never share one);
//! - `p<P>`: the head, `{"gen":…,"pieces":…,"bytes":…}`, queued after its pieces;
//! - after a head, empty values (tombstones) for the pieces of the generation it replaces, so
//!   compaction removes them.
//!
//! One producer keeps the order of its records in a partition, so a reader that stops anywhere
//! sees a head only after all of its pieces, and the pieces of the head in force are never
//! removed before a newer head. The stage queues the records with its other outputs; the runner
//! awaits them all before it stores the offsets the snapshot covers.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::Message;
use serde::{Deserialize, Serialize};

use super::{Output, StageError};
use crate::kafka::read::read_to_end;
use crate::kafka::KafkaConfig;

/// How long reading the changelog to its end may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Room left in each piece for its key and the record's overhead.
const RECORD_OVERHEAD: usize = 512;

#[derive(Debug, Serialize, Deserialize)]
struct Head {
    gen: u64,
    pieces: usize,
    bytes: usize,
}

/// The changelog of one stage: where it is, and per partition the generation last written or
/// read (whose pieces the next write removes) with its number of pieces.
pub struct Changelog {
    kafka: KafkaConfig,
    topic: String,
    current: HashMap<i32, (u64, usize)>,
}

fn head_key(partition: i32) -> String {
    format!("p{partition}")
}

fn piece_key(partition: i32, gen: u64, i: usize) -> String {
    format!("p{partition}/{gen}/{i}")
}

impl Changelog {
    pub fn new(kafka: &KafkaConfig, topic: &str) -> Changelog {
        Changelog {
            kafka: kafka.clone(),
            topic: topic.to_string(),
            current: HashMap::new(),
        }
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Queues `snapshot` as the state of input `partition` on `out`, in pieces that fit the
    /// record limit, then its head, then the removal of the generation it replaces.
    pub async fn write(
        &mut self,
        out: &mut Output,
        partition: i32,
        snapshot: &[u8],
    ) -> Result<(), StageError> {
        let gen: u64 = rand::random();
        let size = out.limit().saturating_sub(RECORD_OVERHEAD).max(1024);
        let pieces: Vec<&[u8]> = snapshot.chunks(size).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let key = piece_key(partition, gen, i);
            out.send(&self.topic, Some(key.as_bytes()), piece, None)
                .await?;
        }
        let head = serde_json::to_vec(&Head {
            gen,
            pieces: pieces.len(),
            bytes: snapshot.len(),
        })
        .expect("a head serialises");
        out.send(
            &self.topic,
            Some(head_key(partition).as_bytes()),
            &head,
            None,
        )
        .await?;
        if let Some((old, n)) = self.current.insert(partition, (gen, pieces.len())) {
            for i in 0..n {
                out.tombstone(&self.topic, piece_key(partition, old, i).as_bytes())
                    .await?;
            }
        }
        Ok(())
    }

    /// The latest snapshot of each of `partitions` that has one, read from the start of the
    /// topic to its end as it is now. A partition whose head names pieces that are not there
    /// (the topic was altered by hand) is reported and left out: it starts cold.
    pub async fn read(&mut self, partitions: &[i32]) -> Result<HashMap<i32, Vec<u8>>, StageError> {
        if partitions.is_empty() {
            return Ok(HashMap::new());
        }
        let (kafka, topic, wanted) = (self.kafka.clone(), self.topic.clone(), partitions.to_vec());
        let latest = tokio::task::spawn_blocking(move || read_latest(&kafka, &topic, &wanted))
            .await
            .map_err(|_| StageError::Kafka {
                action: "read the state topic",
                source: KafkaError::Canceled,
            })?
            .map_err(|source| StageError::Kafka {
                action: "read the state topic",
                source,
            })?;
        let mut out = HashMap::new();
        for &p in partitions {
            let Some(head) = latest.get(&head_key(p)) else {
                self.current.remove(&p);
                continue;
            };
            let head: Head = match serde_json::from_slice(head) {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(topic = %self.topic, partition = p, error = %e, "Unreadable state head; the partition starts cold");
                    continue;
                }
            };
            let mut bytes = Vec::with_capacity(head.bytes);
            let whole = (0..head.pieces).all(|i| match latest.get(&piece_key(p, head.gen, i)) {
                Some(piece) => {
                    bytes.extend_from_slice(piece);
                    true
                }
                None => false,
            });
            if !whole || bytes.len() != head.bytes {
                tracing::warn!(topic = %self.topic, partition = p, gen = head.gen, "A state's pieces are missing; the partition starts cold");
                continue;
            }
            self.current.insert(p, (head.gen, head.pieces));
            out.insert(p, bytes);
        }
        Ok(out)
    }
}

/// The latest value of every key of `partitions`' records (heads and pieces), from the whole
/// topic as it is now; a tombstone removes its key.
fn read_latest(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: &[i32],
) -> Result<HashMap<String, Vec<u8>>, KafkaError> {
    let prefixes: Vec<(String, String)> = partitions
        .iter()
        .map(|p| (head_key(*p), format!("{}/", head_key(*p))))
        .collect();
    let mut latest = HashMap::new();
    read_to_end(
        kafka,
        &format!("{topic}-reader"),
        topic,
        Some(&[0]),
        READ_TIMEOUT,
        |m| {
            let key = String::from_utf8_lossy(m.key().unwrap_or(&[])).into_owned();
            let ours = prefixes
                .iter()
                .any(|(head, pieces)| key == *head || key.starts_with(pieces.as_str()));
            if ours {
                match m.payload() {
                    Some(v) => {
                        latest.insert(key, v.to_vec());
                    }
                    None => {
                        latest.remove(&key);
                    }
                }
            }
            true
        },
    )?;
    Ok(latest)
}
