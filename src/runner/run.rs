//! The stage loop: consume a batch → handle each message → end the batch → await the outputs'
//! acknowledgements → store the offsets of the settled batches → repeat; commit on shutdown.
//!
//! A batch is *settled* once everything derived from its messages is acknowledged by Kafka or
//! written to the stage's store. Most stages settle each batch as it ends; the enrich stage holds
//! batches whose mentions wait for the transformer, and the sink holds batches whose rows are in
//! an open INSERT. Held batches settle oldest first, so stored offsets never pass a message whose
//! outputs could still be lost. librdkafka commits the stored offsets every second
//! (`auto.commit.interval.ms`) and the runner commits once more on shutdown.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{decide, Decision, Output, StageError};
use crate::kafka::client::{consumer_with_eof, producer, StageConsumer};
use crate::kafka::dlq::DeadLetter;
use crate::kafka::limits::record_limit;
use crate::kafka::offsets::commit_now;
use crate::kafka::progress::fetched_end;
use crate::kafka::KafkaConfig;
use crate::kafka::{Group, OffsetTracker, Topics};
use crate::metrics::Metrics;

/// How a stage reads its input.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    /// The stage's consumer group (and so its input topic).
    pub group: Group,
    /// Most messages in one batch.
    pub max: usize,
    /// How long a batch waits for more messages once it has its first.
    pub linger: Duration,
    /// Report the end of each input partition to [`Handler::partition_end`].
    pub partition_eof: bool,
    /// The stage keeps nothing across batches, so a settled batch's outputs may still be in
    /// flight while the next batch is read and handled: its offsets are stored once they are
    /// acknowledged, at the end of the next batch (or at shutdown). A stage with state to make
    /// durable in [`Handler::settling`] must not set it.
    pub pipelined: bool,
    /// The handler keeps its state per input partition, and another process in the group takes
    /// a partition's state over with the partition (e.g. from [`super::changelog`]). On every
    /// rebalance the runner forgets the batches it holds (their offsets are never stored: the
    /// records come again to whoever is assigned them, from the committed offsets) and calls
    /// [`Handler::reassigned`]. Needs the eager rebalance protocol (librdkafka's default), under
    /// which every rebalance restarts every partition from its committed offset.
    pub partition_state: bool,
}

/// Why one input message cannot be processed. The runner sends it to the dead-letter topic
/// (original bytes, reason and source in headers) and goes on.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    /// A short fixed code (`invalid_json`, `schema`, `output_too_large`): the metric's label.
    pub reason: String,
    /// The whole error, for the person reading the dead letter.
    pub error: String,
}

impl Reject {
    /// What to do with an input whose outputs failed with `e`: dead-letter it as `too_large`
    /// when `e` is one ([`Decision::DeadLetterInput`]); any other error is the stage's.
    pub fn for_input(e: StageError) -> Result<Reject, StageError> {
        match decide(&e) {
            Decision::DeadLetterInput => Ok(Reject {
                reason: "too_large".into(),
                error: e.to_string(),
            }),
            _ => Err(e),
        }
    }
}

/// What handling one message can end in besides success.
#[derive(Debug)]
pub enum HandleError {
    /// This message is bad: dead-letter it.
    Reject(Reject),
    /// Something else failed: [`decide`] says what to do.
    Stage(StageError),
}

impl From<StageError> for HandleError {
    fn from(e: StageError) -> Self {
        HandleError::Stage(e)
    }
}

impl From<Reject> for HandleError {
    fn from(r: Reject) -> Self {
        HandleError::Reject(r)
    }
}

/// How many of the batches not yet settled (oldest first) are settled now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Every batch so far.
    All,
    /// The oldest `n` (0: none).
    Oldest(usize),
}

/// What a handler may use besides its own state: the producer for its outputs, and the
/// consumer (for its assignment).
pub struct Io<'a> {
    pub out: &'a mut Output,
    pub consumer: &'a StageConsumer,
}

/// A stage's own logic; [`run`] owns the Kafka loop around it.
pub trait Handler: Send {
    /// The stage's group, batch size and whether it needs partition ends.
    fn policy(&self) -> BatchPolicy;

    /// Handles one message of the current batch, queueing its outputs on `io.out`.
    fn handle(
        &mut self,
        msg: &BorrowedMessage<'_>,
        io: &mut Io<'_>,
    ) -> impl Future<Output = Result<(), HandleError>> + Send;

    /// The current batch is complete: queue or write what is left of it and say which batches
    /// are settled.
    fn end_batch(
        &mut self,
        io: &mut Io<'_>,
    ) -> impl Future<Output = Result<Settled, StageError>> + Send;

    /// When the handler wants [`wake`](Self::wake) called without input (a timer), if ever.
    fn next_wake(&mut self) -> Option<Instant> {
        None
    }

    /// The time from [`next_wake`](Self::next_wake) has come.
    fn wake(
        &mut self,
        _io: &mut Io<'_>,
    ) -> impl Future<Output = Result<Settled, StageError>> + Send {
        async { Ok(Settled::Oldest(0)) }
    }

    /// Shutdown: settle everything held (its outputs are awaited and its offsets stored and
    /// committed after this).
    fn drain(&mut self, io: &mut Io<'_>) -> impl Future<Output = Result<(), StageError>> + Send;

    /// The partitions were revoked or assigned (only with `partition_state`): drop the state of
    /// every partition and take up that of the partitions assigned now (`io.consumer`), as
    /// of their committed offsets.
    fn reassigned(
        &mut self,
        _io: &mut Io<'_>,
    ) -> impl Future<Output = Result<(), StageError>> + Send {
        async { Ok(()) }
    }

    /// The consumer reached the end of `partition`, at offset `end` (as last fetched; only with
    /// `partition_eof`).
    fn partition_end(&mut self, _partition: i32, _end: Option<i64>) {}

    /// The outputs of the batches now settling are acknowledged and their offsets are about to
    /// be stored: a stateful stage makes the state that covers them durable here (an error
    /// leaves the offsets unstored and restarts the stage).
    fn settling(&mut self) -> Result<(), StageError> {
        Ok(())
    }
}

/// Runs `handler`'s stage until `shutdown` is cancelled; then drains it, stores the last
/// offsets, commits and returns.
pub async fn run<H: Handler>(
    kafka: &KafkaConfig,
    topics: &Topics,
    mut handler: H,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(), StageError> {
    let policy = handler.policy();
    let input = topics.input(policy.group);
    let consumer = consumer_with_eof(kafka, &topics.group(policy.group), policy.partition_eof)
        .map_err(StageError::kafka("create a stage consumer"))?;
    consumer
        .subscribe(&[input])
        .map_err(StageError::kafka("subscribe to a stage's input topic"))?;
    let limit = record_limit(kafka, &topics.all()).await;
    let mut out = Output::new(
        producer(kafka).map_err(StageError::kafka("create a producer"))?,
        limit,
    );
    let mut held: VecDeque<OffsetTracker> = VecDeque::new();
    // `pipelined`: the settled batch whose outputs are still in flight, with the count of
    // records queued up to its end.
    let mut in_flight: Option<(OffsetTracker, u64)> = None;
    let stage = policy.group.suffix();
    tracing::info!(stage, topic = input, "Stage started");
    let mut rebalances = 0;
    // After a rebalance, with `partition_state`: see [`reassign`].
    macro_rules! reassign {
        ($tracker:ident) => {
            reassign(
                &policy,
                &mut rebalances,
                &mut held,
                &mut $tracker,
                &mut out,
                &consumer,
                &mut handler,
            )
            .await?
        };
    }

    loop {
        let mut tracker = OffsetTracker::new();
        reassign!(tracker);
        let wake = handler.next_wake();
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {
                land(&mut in_flight, &mut out, &consumer).await?;
                let mut io = Io { out: &mut out, consumer: &consumer };
                let settled = handler.wake(&mut io).await?;
                settle(settled, &mut held, &mut out, &consumer, &mut handler).await?;
                continue;
            }
            m = consumer.recv() => m,
        };
        let mut n = 0;
        let mut next = Some(first);
        let deadline = Instant::now() + policy.linger;
        while let Some(received) = next.take() {
            reassign!(tracker);
            match received {
                Ok(msg) => {
                    n += 1;
                    let mut io = Io {
                        out: &mut out,
                        consumer: &consumer,
                    };
                    let outcome = handler.handle(&msg, &mut io).await;
                    let reject = match outcome {
                        Ok(()) => None,
                        Err(HandleError::Reject(r)) => Some(r),
                        Err(HandleError::Stage(e)) => Some(Reject::for_input(e)?),
                    };
                    if let Some(r) = reject {
                        dead_letter(Origin::of(&msg), stage, r, &topics.dlq, &mut out, metrics)
                            .await?;
                    }
                    tracker.track(msg.topic(), msg.partition(), msg.offset());
                }
                Err(KafkaError::PartitionEOF(p)) => {
                    handler.partition_end(p, fetched_end(&consumer, input, p))
                }
                Err(e) => tracing::warn!(stage, error = %e, "Kafka consumer error"),
            }
            if n < policy.max {
                next = tokio::time::timeout_at(deadline, consumer.recv())
                    .await
                    .ok();
            }
        }
        // The last wait may have ended in a rebalance.
        reassign!(tracker);
        // Pushed even when empty (a batch of partition ends): handlers count batches too.
        held.push_back(tracker);
        let mut io = Io {
            out: &mut out,
            consumer: &consumer,
        };
        let settled = handler.end_batch(&mut io).await?;
        // A pipelined stage's previous batch has had this batch's time to be acknowledged.
        land(&mut in_flight, &mut out, &consumer).await?;
        if policy.pipelined && settled == Settled::All && held.len() == 1 {
            let current = held.pop_back().expect("one batch held");
            in_flight = Some((current, out.queued()));
        } else {
            settle(settled, &mut held, &mut out, &consumer, &mut handler).await?;
        }
    }
    land(&mut in_flight, &mut out, &consumer).await?;
    let mut io = Io {
        out: &mut out,
        consumer: &consumer,
    };
    handler.drain(&mut io).await?;
    settle(Settled::All, &mut held, &mut out, &consumer, &mut handler).await?;
    commit_now(&consumer).map_err(StageError::kafka("commit offsets on shutdown"))?;
    tracing::info!(stage, "Stage stopped after committing its offsets");
    Ok(())
}

/// With `partition_state`, after a rebalance: forgets the batches held and the one being read,
/// and lets the handler take up the partitions it has now.
async fn reassign<H: Handler>(
    policy: &BatchPolicy,
    seen: &mut u64,
    held: &mut VecDeque<OffsetTracker>,
    tracker: &mut OffsetTracker,
    out: &mut Output,
    consumer: &StageConsumer,
    handler: &mut H,
) -> Result<(), StageError> {
    let now = consumer.context().rebalances();
    if !policy.partition_state || now == *seen {
        return Ok(());
    }
    *seen = now;
    held.clear();
    tracker.discard();
    let mut io = Io { out, consumer };
    handler.reassigned(&mut io).await
}

/// A `pipelined` stage's batch still in flight: awaits its outputs (not later ones) and stores
/// its offsets.
async fn land(
    in_flight: &mut Option<(OffsetTracker, u64)>,
    out: &mut Output,
    consumer: &StageConsumer,
) -> Result<(), StageError> {
    if let Some((mut batch, through)) = in_flight.take() {
        out.acknowledged_through(through).await?;
        batch.store(consumer);
    }
    Ok(())
}

/// Awaits the queued outputs and stores the offsets of the batches `settled` names. With batches
/// still held and none settled, nothing is awaited: their outputs are awaited when they settle.
async fn settle<H: Handler>(
    settled: Settled,
    held: &mut VecDeque<OffsetTracker>,
    out: &mut Output,
    consumer: &StageConsumer,
    handler: &mut H,
) -> Result<(), StageError> {
    let n = match settled {
        Settled::All => held.len(),
        Settled::Oldest(n) => n.min(held.len()),
    };
    if n == 0 && !held.is_empty() {
        return Ok(());
    }
    out.acknowledged().await?;
    if n > 0 {
        handler.settling()?;
        for mut t in held.drain(..n) {
            t.store(consumer);
        }
    }
    Ok(())
}

/// An input message as a dead letter keeps it: where it was read and its key and bytes.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

impl<'a> Origin<'a> {
    pub fn of(msg: &'a BorrowedMessage<'_>) -> Origin<'a> {
        Origin {
            topic: msg.topic(),
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key(),
            payload: msg.payload().unwrap_or(&[]),
        }
    }
}

/// Sends the input message `origin` to the dead-letter topic: the original key and bytes, the
/// reason in headers. (A handler that produces a message's outputs after [`Handler::handle`]
/// returned dead-letters it with this when they cannot be produced.)
pub async fn dead_letter(
    origin: Origin<'_>,
    stage: &str,
    reject: Reject,
    dlq: &str,
    out: &mut Output,
    metrics: &Metrics,
) -> Result<(), StageError> {
    let mut dead = DeadLetter {
        stage: stage.into(),
        reason: reject.reason,
        error: reject.error,
        topic: origin.topic.to_string(),
        partition: origin.partition,
        offset: origin.offset,
        truncated: None,
    };
    // An original too large for the dead-letter topic is cut to fit, with its length and hash.
    let payload = dead.fit(origin.key, origin.payload, out.limit());
    out.send(dlq, origin.key, payload, Some(dead.headers()))
        .await?;
    metrics.dead_lettered(&dead.reason);
    Ok(())
}
