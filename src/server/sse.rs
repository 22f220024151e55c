//! The live alert feed: one Kafka consumer per server reads `<prefix>.alerts` into a bounded
//! in-memory ring and a broadcast channel; every `GET /api/feed` client gets the ring's alerts
//! after its `Last-Event-ID` and then each new alert as a Server-Sent Event.
//!
//! Event ids are the alert's Kafka coordinates, `<partition>-<offset>`. The consumer joins no
//! group and commits nothing: at start it assigns every partition at `high - capacity` (or the
//! low watermark), so after a server restart the ring is filled from Kafka's history and a
//! client that reconnects with an id still in the ring misses nothing. An id no longer in the
//! ring (too old, or unknown) replays the whole ring; clients de-duplicate by alert `id`, which is
//! stable (a grouped thread alert re-sent with a higher count keeps its id).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::sse::Event;
use chrono::{DateTime, Utc};
use futures::Stream;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::alerts::{Alert, Incident};
use crate::kafka::client::base_config;
use crate::kafka::KafkaConfig;
use crate::mention::EnrichedMention;

/// One event as the feed sends it.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    /// `<partition>-<offset>`: the SSE event id.
    pub id: String,
    /// The SSE event name ([`FeedKind::event`]).
    pub event: &'static str,
    /// The alert or mention, as JSON.
    pub data: String,
}

/// What a feed carries, and from which topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedKind {
    /// Alerts from `<prefix>.alerts` (SSE event `alert`, data: the alert).
    Alerts,
    /// Negative mentions of a tracked query from `<prefix>.mentions.enriched` (SSE event
    /// `mention`), before any alert rule has looked at them.
    NegativeMentions,
    /// Incident versions from `<prefix>.incidents` (SSE event `incident`, data: the incident).
    Incidents,
}

/// A negative mention as the feed sends it.
#[derive(Debug, Serialize)]
struct MentionEvent<'a> {
    key: &'a str,
    platform: &'a str,
    created_at: DateTime<Utc>,
    author_handle: &'a str,
    author_followers: u64,
    text: &'a str,
    url: &'a str,
    lang: &'a str,
    sentiment_score: f32,
    sentiment_confidence: f32,
    queries: &'a [String],
}

impl FeedKind {
    /// The SSE event name.
    pub fn event(self) -> &'static str {
        match self {
            FeedKind::Alerts => "alert",
            FeedKind::NegativeMentions => "mention",
            FeedKind::Incidents => "incident",
        }
    }

    /// The event data for one record: `Ok(None)` for a record this feed leaves out, `Err` for
    /// one it cannot read. The JSON is re-serialised so the feed never forwards bytes it did not
    /// understand.
    fn render(self, payload: &[u8]) -> Result<Option<String>, serde_json::Error> {
        Ok(match self {
            FeedKind::Alerts => {
                let alert: Alert = serde_json::from_slice(payload)?;
                Some(serde_json::to_string(&alert)?)
            }
            FeedKind::Incidents => {
                let incident: Incident = serde_json::from_slice(payload)?;
                Some(serde_json::to_string(&incident)?)
            }
            FeedKind::NegativeMentions => {
                let e: EnrichedMention = serde_json::from_slice(payload)?;
                if !e.is_negative() || e.queries.is_empty() {
                    return Ok(None);
                }
                let m = &e.mention;
                Some(serde_json::to_string(&MentionEvent {
                    key: &e.key,
                    platform: &m.platform,
                    created_at: m.created_at,
                    author_handle: &m.author.handle,
                    author_followers: m.author.followers.unwrap_or(0),
                    text: &m.text,
                    url: m.url.as_deref().unwrap_or(""),
                    lang: &e.lang,
                    sentiment_score: e.sentiment.score,
                    sentiment_confidence: e.sentiment.confidence,
                    queries: &e.queries,
                })?)
            }
        })
    }
}

/// An event with its sequence number in this server's ring.
type Sequenced = (u64, Arc<FeedEvent>);

struct Ring {
    capacity: usize,
    /// Sequence number of the next event; orders the ring and the broadcast.
    next_seq: u64,
    events: VecDeque<Sequenced>,
}

/// The ring of recent alerts and the channel that announces new ones.
pub struct Feed {
    ring: Mutex<Ring>,
    tx: broadcast::Sender<Sequenced>,
    /// The consumer has its partitions assigned.
    pub ready: AtomicBool,
    /// Clients connected now.
    pub clients: AtomicU64,
    /// Alerts read from Kafka.
    pub received: AtomicU64,
    /// Cancelled at shutdown: every open stream ends, so graceful shutdown does not wait on them.
    pub closed: CancellationToken,
}

impl Feed {
    pub fn new(capacity: usize) -> Feed {
        let (tx, _) = broadcast::channel(1024);
        Feed {
            ring: Mutex::new(Ring {
                capacity: capacity.max(1),
                next_seq: 0,
                events: VecDeque::new(),
            }),
            tx,
            ready: AtomicBool::new(false),
            clients: AtomicU64::new(0),
            received: AtomicU64::new(0),
            closed: CancellationToken::new(),
        }
    }

    /// Adds an event to the ring (dropping the oldest when full) and announces it.
    pub fn push(&self, event: FeedEvent) {
        let mut ring = self.ring.lock().unwrap();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        let event = Arc::new(event);
        if ring.events.len() == ring.capacity {
            ring.events.pop_front();
        }
        ring.events.push_back((seq, event.clone()));
        self.received.fetch_add(1, Ordering::Relaxed);
        // Sent under the lock so that a subscriber's snapshot and its receiver never overlap or
        // leave a gap. No receivers is not an error.
        let _ = self.tx.send((seq, event));
    }

    /// Events after the one with `last_id` (all of them when it is absent or unknown), plus a
    /// receiver for everything pushed later.
    fn subscribe(&self, last_id: Option<&str>) -> (Vec<Sequenced>, broadcast::Receiver<Sequenced>) {
        let ring = self.ring.lock().unwrap();
        let rx = self.tx.subscribe();
        (after(&ring, last_id), rx)
    }

    fn after_seq(&self, seq: Option<u64>) -> Vec<Sequenced> {
        let ring = self.ring.lock().unwrap();
        ring.events
            .iter()
            .filter(|(s, _)| seq.is_none_or(|l| *s > l))
            .cloned()
            .collect()
    }

    /// The SSE stream for one client: the backlog after `last_id`, then live events. A client
    /// too slow for the broadcast channel is caught up from the ring.
    pub fn stream(
        self: Arc<Self>,
        last_id: Option<String>,
    ) -> impl Stream<Item = Result<Event, Infallible>> {
        async_stream::stream! {
            let _guard = ClientGuard::new(self.clone());
            let (backlog, mut rx) = self.subscribe(last_id.as_deref());
            let mut last_seq = None;
            for (seq, e) in backlog {
                last_seq = Some(seq);
                yield Ok(to_sse(&e));
            }
            loop {
                let next = tokio::select! {
                    r = rx.recv() => r,
                    _ = self.closed.cancelled() => break,
                };
                match next {
                    Ok((seq, e)) => {
                        if last_seq.is_some_and(|l| seq <= l) {
                            continue;
                        }
                        last_seq = Some(seq);
                        yield Ok(to_sse(&e));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        for (seq, e) in self.after_seq(last_seq) {
                            last_seq = Some(seq);
                            yield Ok(to_sse(&e));
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    }
}

fn after(ring: &Ring, last_id: Option<&str>) -> Vec<Sequenced> {
    let start = last_id
        .and_then(|id| ring.events.iter().position(|(_, e)| e.id == id))
        .map_or(0, |i| i + 1);
    ring.events.iter().skip(start).cloned().collect()
}

fn to_sse(e: &FeedEvent) -> Event {
    Event::default().id(&e.id).event(e.event).data(&e.data)
}

/// Counts a connected client for as long as its stream lives.
struct ClientGuard(Arc<Feed>);

impl ClientGuard {
    fn new(feed: Arc<Feed>) -> ClientGuard {
        feed.clients.fetch_add(1, Ordering::Relaxed);
        ClientGuard(feed)
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The assignment that starts every partition of `topic` at most `capacity` records before its
/// end. Blocking (metadata and watermark requests).
fn start_positions(
    kafka: &KafkaConfig,
    topic: &str,
    capacity: usize,
) -> Result<TopicPartitionList, String> {
    let probe: BaseConsumer = base_config(kafka)
        .create()
        .map_err(|e| format!("creating a Kafka client: {e}"))?;
    let timeout = Duration::from_secs(5);
    let md = probe
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("metadata of {topic}: {e}"))?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(format!(
            "topic {topic} does not exist yet (run `gema migrate`)"
        ));
    }
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = probe
            .fetch_watermarks(topic, p, timeout)
            .map_err(|e| format!("watermarks of {topic}/{p}: {e}"))?;
        let start = (high - capacity as i64).max(low);
        tpl.add_partition_offset(topic, p, Offset::Offset(start))
            .map_err(|e| e.to_string())?;
    }
    Ok(tpl)
}

/// Reads `topic` into `feed` (keeping what `kind` keeps) until `shutdown`; retries with backoff
/// while Kafka or the topic is missing.
pub async fn run_consumer(
    kafka: KafkaConfig,
    kind: FeedKind,
    topic: String,
    capacity: usize,
    feed: Arc<Feed>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let (k, t) = (kafka.clone(), topic.clone());
        let tpl = tokio::task::spawn_blocking(move || start_positions(&k, &t, capacity)).await;
        let tpl = match tpl {
            Ok(Ok(tpl)) => tpl,
            Ok(Err(e)) => {
                tracing::warn!(topic = %topic, error = %e, "Live feed cannot start yet");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
            Err(_) => return,
        };
        let consumer: StreamConsumer = match base_config(&kafka)
            .set(
                "group.id",
                format!("{}-serve-feed-{}", kafka.topic_prefix, kind.event()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "100")
            .create()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "Live feed consumer cannot be created");
                return;
            }
        };
        if let Err(e) = consumer.assign(&tpl) {
            tracing::error!(error = %e, "Live feed cannot assign partitions");
            return;
        }
        feed.ready.store(true, Ordering::Relaxed);
        tracing::info!(topic = %topic, event = kind.event(), "Live feed reading");
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = consumer.recv() => m,
            };
            match msg {
                Ok(m) => {
                    let payload = m.payload().unwrap_or(&[]);
                    match kind.render(payload) {
                        Ok(Some(data)) => feed.push(FeedEvent {
                            id: format!("{}-{}", m.partition(), m.offset()),
                            event: kind.event(),
                            data,
                        }),
                        Ok(None) => {}
                        Err(e) => tracing::warn!(
                            topic = %topic,
                            partition = m.partition(),
                            offset = m.offset(),
                            error = %e,
                            "Skipping a record the live feed cannot read"
                        ),
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Live feed read failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn ev(id: &str) -> FeedEvent {
        FeedEvent {
            id: id.into(),
            event: "alert",
            data: "{}".into(),
        }
    }

    #[test]
    fn ring_is_bounded_and_resumes_after_an_id() {
        let feed = Feed::new(3);
        for i in 0..5 {
            feed.push(ev(&format!("0-{i}")));
        }
        let (backlog, _) = feed.subscribe(Some("0-2"));
        let ids: Vec<&str> = backlog.iter().map(|(_, e)| e.id.as_str()).collect();
        assert_eq!(ids, vec!["0-3", "0-4"]);
        let (backlog, _) = feed.subscribe(Some("0-0"));
        assert_eq!(
            backlog.len(),
            3,
            "an id out of the ring replays the whole ring"
        );
    }

    #[tokio::test]
    async fn a_client_behind_the_broadcast_channel_catches_up_from_the_ring() {
        let feed = Arc::new(Feed::new(5000));
        feed.push(ev("0-0"));
        let mut s = Box::pin(feed.clone().stream(None));
        assert!(
            s.next().await.is_some(),
            "backlog: 0-0; the stream is now subscribed"
        );
        // More than the channel holds (1024) arrive before the client reads again.
        for i in 1..=3000 {
            feed.push(ev(&format!("0-{i}")));
        }
        let mut n = 0;
        while n < 3000 {
            let _event = tokio::time::timeout(Duration::from_secs(5), s.next())
                .await
                .expect("every event arrives")
                .unwrap()
                .unwrap();
            n += 1;
        }
        let extra = tokio::time::timeout(Duration::from_millis(100), s.next()).await;
        assert!(extra.is_err(), "nothing is sent twice");
    }

    #[tokio::test]
    async fn stream_sends_backlog_then_live_events() {
        let feed = Arc::new(Feed::new(10));
        feed.push(ev("0-1"));
        feed.push(ev("0-2"));
        let mut s = Box::pin(feed.clone().stream(Some("0-1".into())));
        assert!(s.next().await.is_some());
        feed.push(ev("0-3"));
        assert!(s.next().await.is_some());
        assert_eq!(feed.clients.load(Ordering::Relaxed), 1);
        drop(s);
        assert_eq!(feed.clients.load(Ordering::Relaxed), 0);
    }
}
