//! A stage's producer: records queued to Kafka and their delivery reports, awaited before the
//! offsets of the inputs they came from are stored.

use std::collections::VecDeque;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

use super::StageError;
use crate::kafka::limits::record_bytes;

/// The records a stage has queued and not yet seen acknowledged.
pub struct Output {
    producer: FutureProducer,
    /// Queued records not yet awaited, oldest first.
    deliveries: VecDeque<DeliveryFuture>,
    /// Records awaited so far (with `deliveries`: every record queued).
    awaited: u64,
    /// The largest record the topics accept (key, value and headers).
    limit: usize,
}

impl Output {
    /// Output through `producer` of records up to `limit` bytes
    /// ([`crate::kafka::limits::record_limit`]).
    pub fn new(producer: FutureProducer, limit: usize) -> Output {
        Output {
            producer,
            deliveries: VecDeque::new(),
            awaited: 0,
            limit,
        }
    }

    /// The largest record the topics accept (key, value and headers).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Queues a record. While the producer's queue is full it waits for earlier deliveries
    /// (backpressure instead of an error); a record over the limit, or one the producer refuses,
    /// is an error that [`super::decide`] classifies (the input is dead-lettered).
    pub async fn send(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<(), StageError> {
        let bytes = record_bytes(key, payload, headers.as_ref());
        if bytes > self.limit {
            return Err(StageError::TooLarge {
                topic: topic.into(),
                bytes,
                limit: self.limit,
            });
        }
        self.queue(topic, key, Some(payload), headers).await
    }

    /// Queues a record with `key` and no value: a tombstone, which removes the key from a
    /// compacted topic.
    pub async fn tombstone(&mut self, topic: &str, key: &[u8]) -> Result<(), StageError> {
        self.queue(topic, Some(key), None, None).await
    }

    /// Queues a record; while the producer's queue is full, waits for earlier deliveries.
    async fn queue(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
    ) -> Result<(), StageError> {
        loop {
            let mut record = FutureRecord::<[u8], [u8]>::to(topic);
            if let Some(p) = payload {
                record = record.payload(p);
            }
            if let Some(k) = key {
                record = record.key(k);
            }
            if let Some(h) = headers.clone() {
                record = record.headers(h);
            }
            match self.producer.send_result(record) {
                Ok(d) => {
                    self.deliveries.push_back(d);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.acknowledged().await?;
                    if self.deliveries.is_empty() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                Err((source, _)) => {
                    return Err(StageError::Kafka {
                        action: "queue a record",
                        source,
                    })
                }
            }
        }
    }

    /// Waits until every record queued so far is acknowledged by Kafka; the first failure is the
    /// error.
    pub async fn acknowledged(&mut self) -> Result<(), StageError> {
        self.acknowledged_through(self.queued()).await
    }

    /// How many records have been queued since the output was made: a mark for
    /// [`acknowledged_through`](Self::acknowledged_through).
    pub fn queued(&self) -> u64 {
        self.awaited + self.deliveries.len() as u64
    }

    /// Waits until the first `mark` records queued ([`queued`](Self::queued) at some point) are
    /// acknowledged, leaving later ones in flight; the first failure is the error.
    pub async fn acknowledged_through(&mut self, mark: u64) -> Result<(), StageError> {
        while self.awaited < mark {
            let Some(d) = self.deliveries.pop_front() else {
                break;
            };
            self.awaited += 1;
            let source = match d.await {
                Ok(Ok(_)) => continue,
                Ok(Err((source, _))) => source,
                Err(_) => KafkaError::Canceled,
            };
            return Err(StageError::Kafka {
                action: "deliver a record",
                source,
            });
        }
        Ok(())
    }
}
