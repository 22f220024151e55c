//! The Jetstream connector: the whole Bluesky network's new posts from a Jetstream WebSocket
//! (`{api}/subscribe?wantedCollections=app.bsky.feed.post`; public, no credential; default
//! `wss://jetstream2.us-east.bsky.network`), each post a tracked query matches sent to the raw
//! topic as the Bluesky search connector sends it (`platform: bluesky`, `id` its `at://` URI), so
//! a post found by both is one mention.
//!
//! - Heard: `commit` events that create an `app.bsky.feed.post` whose text matches at least one
//!   `[[tracked]]` query, matched as the enrich stage matches (hashtags from the text and the tag
//!   facets, the language from the post's first `langs` entry, or any language when it has
//!   none). Updates, deletes, `identity` and `account` events, posts without text and posts no
//!   query matches are passed over. A source with no tracked queries does not start.
//! - A post becomes: `id` `at://<did>/app.bsky.feed.post/<rkey>`, `author` id and handle its
//!   DID (Jetstream carries no handles), `url` `https://bsky.app/profile/<did>/post/<rkey>`,
//!   `lang` its first language, `parent_id` / `thread_id` the reply's parent and root URIs,
//!   `created_at` its `createdAt` (the event's `time_us` when that is missing or not a time).
//! - Resuming: the cursor is the `time_us` of the last event processed, matched or not; it moves
//!   only once Kafka stored the event's mention, and is written to the state file every
//!   [`SAVE_EVERY`] and when a connection ends. A reconnection or a restart asks for
//!   `cursor=<time_us + 1>` and skips any event at or before the cursor that the service sends
//!   again: no gap and no repeat. After a crash the events of up to [`SAVE_EVERY`] are read
//!   again, so their mentions may be sent twice (the pipeline collapses them by key). Jetstream
//!   keeps about a day of events; a cursor older than that resumes from its oldest.
//! - Limits: a frame that is not a Jetstream event is skipped and counted ([`Counts`]), logged
//!   with the running count; no frame for [`DEFAULT_STALL`] (see [`Stream::with_stall`]) drops the
//!   connection as a transient failure. A refused upgrade is a failure of its status: 429 rate
//!   limited for its `Retry-After`, 401 / 403 denied (the source stops), the rest transient.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Map;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use super::bluesky::Reply;
use super::config::SourceConfig;
use super::env::SourceEnv;
use super::health::Tracker;
use super::http::Failure;
use super::{load_state, save_state, ConnectorError, Outlet};
use crate::enrich::extract::extract;
use crate::kafka::{KafkaConfig, Topics};
use crate::mention::{Author, Mention, EARLIEST_TIME, LATEST_TIME};
use crate::text::lang::Lang;
use crate::tracked::{Doc, QuerySet};

/// The collection asked for: Bluesky posts.
pub const POST_COLLECTION: &str = "app.bsky.feed.post";
/// How long a connection may stay silent (no frame, not even a ping) before it is dropped.
pub const DEFAULT_STALL: Duration = Duration::from_secs(60);
/// How often the cursor is written to the state file while events flow.
pub const SAVE_EVERY: Duration = Duration::from_secs(5);

/// The state file: where the stream resumes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The `time_us` of the last event processed; none before the first.
    pub time_us: Option<i64>,
}

/// What the stream has read since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Events processed (each moved the cursor).
    pub events: u64,
    /// Posts a tracked query matched, all sent and stored.
    pub sent: u64,
    /// Frames skipped because they are not Jetstream events, or their post cannot be read.
    pub malformed: u64,
    /// Events at or before the cursor that the service sent again, skipped.
    pub repeated: u64,
}

/// What one text frame holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// An event at `time_us`: the mention of a post a tracked query matches, or `None` (another
    /// kind of event or operation, a post without text, a post no query matches).
    Event {
        time_us: i64,
        mention: Option<Box<Mention>>,
    },
    /// Not a Jetstream event, or a post that cannot be read: why.
    Malformed(String),
}

#[derive(Deserialize)]
struct Event {
    did: String,
    time_us: i64,
    kind: String,
    #[serde(default)]
    commit: Option<Commit>,
}

#[derive(Deserialize)]
struct Commit {
    operation: String,
    collection: String,
    rkey: String,
    #[serde(default)]
    record: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Post {
    #[serde(default)]
    text: String,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    langs: Vec<String>,
    #[serde(default)]
    reply: Option<Reply>,
    #[serde(default)]
    facets: Vec<Facet>,
}

#[derive(Deserialize)]
struct Facet {
    #[serde(default)]
    features: Vec<Feature>,
}

#[derive(Deserialize)]
struct Feature {
    #[serde(rename = "$type", default)]
    kind: String,
    #[serde(default)]
    tag: Option<String>,
}

/// The latest `time_us` an event may carry at `now`: an hour ahead (clocks differ a little;
/// an event much later than that is not a real one).
fn far_future(now: DateTime<Utc>) -> i64 {
    (now + chrono::Duration::hours(1)).timestamp_micros()
}

/// Reads one text frame: the event's `time_us`, and the mention of a newly created post that
/// at least one of `queries` matches (`now` is its `ingested_at`).
pub fn read_frame(text: &str, queries: &QuerySet, now: DateTime<Utc>) -> Frame {
    let event: Event = match serde_json::from_str(text) {
        Ok(e) => e,
        Err(e) => return Frame::Malformed(format!("not a Jetstream event: {e}")),
    };
    let skip = Frame::Event {
        time_us: event.time_us,
        mention: None,
    };
    let commit = match (event.kind.as_str(), event.commit) {
        ("commit", Some(c)) => c,
        ("commit", None) => {
            return Frame::Malformed(format!(
                "commit event at time_us {} has no `commit`",
                event.time_us
            ))
        }
        _ => return skip,
    };
    if commit.operation != "create" || commit.collection != POST_COLLECTION {
        return skip;
    }
    let post: Post = match commit.record.map(serde_json::from_value) {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            return Frame::Malformed(format!(
                "post {} of {}: not a post record: {e}",
                commit.rkey, event.did
            ))
        }
        None => {
            return Frame::Malformed(format!(
                "post {} of {}: created without a record",
                commit.rkey, event.did
            ))
        }
    };
    if post.text.trim().is_empty() || !matches(queries, &event.did, &post) {
        return skip;
    }
    let (did, rkey) = (&event.did, &commit.rkey);
    let created_at = post
        .created_at
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| (EARLIEST_TIME..LATEST_TIME).contains(&t.timestamp()))
        .or_else(|| DateTime::from_timestamp_micros(event.time_us));
    let Some(created_at) = created_at else {
        return Frame::Malformed(format!(
            "post {rkey} of {did}: neither createdAt nor time_us {} is a time",
            event.time_us
        ));
    };
    let mention = Mention {
        id: format!("at://{did}/{POST_COLLECTION}/{rkey}"),
        platform: "bluesky".into(),
        text: post.text,
        created_at,
        author: Author {
            id: did.clone(),
            handle: did.clone(),
            followers: None,
        },
        url: Some(format!("https://bsky.app/profile/{did}/post/{rkey}")),
        lang: post.langs.first().cloned(),
        parent_id: post.reply.as_ref().map(|r| r.parent.uri.clone()),
        thread_id: post.reply.as_ref().map(|r| r.root.uri.clone()),
        metrics: None,
        ingested_at: Some(now),
        extra: Map::new(),
    };
    if let Err(e) = mention.validate() {
        return Frame::Malformed(format!("post {rkey} of {did}: {e}"));
    }
    Frame::Event {
        time_us: event.time_us,
        mention: Some(Box::new(mention)),
    }
}

/// Whether at least one query matches `post`, as the enrich stage would match its mention.
fn matches(queries: &QuerySet, did: &str, post: &Post) -> bool {
    let extracted = extract(&post.text);
    let mut hashtags = extracted.hashtags;
    let facet_tags = post
        .facets
        .iter()
        .flat_map(|f| &f.features)
        .filter(|f| f.kind == "app.bsky.richtext.facet#tag")
        .filter_map(|f| f.tag.as_deref())
        .map(|t| t.trim_start_matches('#').to_lowercase());
    for tag in facet_tags {
        if !tag.is_empty() && !hashtags.contains(&tag) {
            hashtags.push(tag);
        }
    }
    let matched = |lang: &str| {
        !queries
            .match_indices(&Doc {
                text: &post.text,
                hashtags: &hashtags,
                handles: &extracted.handles,
                author_handle: did,
                lang,
                platform: "bluesky",
            })
            .is_empty()
    };
    match post.langs.first() {
        Some(hint) => matched(Lang::from_hint(hint).as_str()),
        // The enrich stage detects the language later; keep the post if any language matches.
        None => [Lang::En, Lang::Id, Lang::Other]
            .iter()
            .any(|l| matched(l.as_str())),
    }
}

/// A Jetstream subscription sending matched posts into Kafka (see the module documentation).
pub struct Stream {
    out: Outlet,
    endpoint: String,
    queries: QuerySet,
    state: PathBuf,
    cursor: Option<i64>,
    stall: Duration,
    counts: Counts,
}

impl Stream {
    /// A stream from `api` (e.g. `wss://jetstream2.us-east.bsky.network`) keeping the posts
    /// `queries` match, sending to `topics.raw`, resuming from the cursor in `state`.
    pub async fn new(
        config: &KafkaConfig,
        topics: &Topics,
        api: &str,
        queries: QuerySet,
        state: &Path,
    ) -> Result<Stream, ConnectorError> {
        if queries.is_empty() {
            return Err(ConnectorError::Config(
                "no tracked queries to keep Jetstream posts by; add [[tracked]] queries \
                 (Jetstream carries the whole network's posts)"
                    .into(),
            ));
        }
        let cursor: Cursor = load_state(state)?;
        Ok(Stream {
            out: Outlet::new(config, topics, "Jetstream connector").await?,
            endpoint: format!(
                "{}/subscribe?wantedCollections={POST_COLLECTION}",
                api.trim_end_matches('/')
            ),
            queries,
            state: state.to_path_buf(),
            cursor: cursor.time_us,
            stall: DEFAULT_STALL,
            counts: Counts::default(),
        })
    }

    /// The stream `source` configures, filtered by the tracked queries of `env`.
    pub async fn open(source: &SourceConfig, env: &SourceEnv) -> Result<Stream, ConnectorError> {
        let queries = QuerySet::compile(&env.tracked).map_err(|e| {
            ConnectorError::Config(format!("jetstream source {}: {e}", source.name))
        })?;
        let topics = env.kafka.topics();
        let state = source.state_path(&env.state_dir);
        Stream::new(&env.kafka, &topics, source.api(), queries, &state)
            .await
            .map_err(|e| match e {
                ConnectorError::Config(m) => {
                    ConnectorError::Config(format!("source {}: {m}", source.name))
                }
                other => other,
            })
    }

    /// The same stream dropping a connection after `stall` without a frame (default
    /// [`DEFAULT_STALL`]).
    pub fn with_stall(mut self, stall: Duration) -> Stream {
        self.stall = stall;
        self
    }

    /// The `time_us` of the last event processed.
    pub fn cursor(&self) -> Option<i64> {
        self.cursor
    }

    /// What the stream has read so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The URL the next connection asks for: from just after the cursor, if any.
    pub fn url(&self) -> String {
        match self.cursor {
            Some(c) => format!("{}&cursor={}", self.endpoint, c.saturating_add(1)),
            None => self.endpoint.clone(),
        }
    }

    /// One connection: connects, sends the matched posts until the connection drops or stalls
    /// (the failure) or `shutdown` (`Ok`); the cursor is saved when it ends.
    pub async fn session(
        &mut self,
        tracker: &Tracker,
        shutdown: &CancellationToken,
    ) -> Result<(), Failure> {
        let url = self.url();
        let connect = tokio::time::timeout(self.stall, tokio_tungstenite::connect_async(&url));
        let mut ws = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            connected = connect => match connected {
                Ok(Ok((ws, _))) => ws,
                Ok(Err(e)) => return Err(handshake_failure(e).within(&url)),
                Err(_) => {
                    return Err(Failure::transient(format!(
                        "{url}: no answer to the WebSocket handshake within {} s",
                        self.stall.as_secs_f32()
                    )))
                }
            },
        };
        tracing::info!(url = %url, "Jetstream connected");
        tracker.ok();
        tracker.cursor(self.describe());
        let mut saved_at = Instant::now();
        let result = loop {
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                    break Ok(());
                }
                next = tokio::time::timeout(self.stall, ws.next()) => next,
            };
            let message = match next {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => break Err(Failure::transient(format!("{url}: {e}"))),
                Ok(None) => break Err(Failure::transient(format!("{url}: the connection closed"))),
                Err(_) => {
                    break Err(Failure::transient(format!(
                        "{url}: no frame for {} s",
                        self.stall.as_secs_f32()
                    )))
                }
            };
            match message {
                Message::Text(text) => {
                    if let Err(f) = self.take(text.as_str(), tracker).await {
                        break Err(f);
                    }
                }
                Message::Binary(b) => self.malformed(&format!(
                    "a binary frame of {} bytes (compressed events are not asked for)",
                    b.len()
                )),
                Message::Close(frame) => {
                    let why =
                        frame.map_or(String::new(), |f| format!(" ({} {})", f.code, f.reason));
                    break Err(Failure::transient(format!(
                        "{url}: the service closed the stream{why}"
                    )));
                }
                // tungstenite answers pings itself on the next read.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
            if saved_at.elapsed() >= SAVE_EVERY {
                self.save(tracker);
                saved_at = Instant::now();
            }
        };
        self.save(tracker);
        result
    }

    /// Processes one text frame: sends its mention, if any, then moves the cursor.
    async fn take(&mut self, text: &str, tracker: &Tracker) -> Result<(), Failure> {
        match read_frame(text, &self.queries, Utc::now()) {
            Frame::Malformed(reason) => self.malformed(&reason),
            Frame::Event { time_us, .. } if self.cursor.is_some_and(|c| time_us <= c) => {
                self.counts.repeated += 1;
            }
            // An event stamped far ahead of now would freeze the cursor there: every later
            // event would look repeated. It is counted as malformed and the cursor stays.
            Frame::Event { time_us, .. } if time_us > far_future(Utc::now()) => {
                self.malformed(&format!(
                    "time_us {time_us} is more than an hour ahead of now"
                ));
            }
            Frame::Event { time_us, mention } => {
                if let Some(m) = mention {
                    self.out.send(&m).await?;
                    self.counts.sent += 1;
                    tracker.sent(1);
                }
                self.counts.events += 1;
                self.cursor = Some(time_us);
            }
        }
        Ok(())
    }

    fn malformed(&mut self, reason: &str) {
        self.counts.malformed += 1;
        let count = self.counts.malformed;
        // The first and then ever fewer: a service sending garbage must not flood the log.
        if count.is_power_of_two() {
            tracing::warn!(
                endpoint = %self.endpoint,
                malformed = count,
                "Skipping a Jetstream frame: {reason}"
            );
        } else {
            tracing::debug!(endpoint = %self.endpoint, "Skipping a Jetstream frame: {reason}");
        }
    }

    fn describe(&self) -> String {
        match self.cursor.and_then(DateTime::from_timestamp_micros) {
            Some(t) => format!(
                "time_us {} ({})",
                self.cursor.unwrap_or_default(),
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            None => "live (no cursor yet)".into(),
        }
    }

    /// Writes the cursor (every event before it is in Kafka) and the health record.
    fn save(&self, tracker: &Tracker) {
        let cursor = Cursor {
            time_us: self.cursor,
        };
        if let Err(e) = save_state(&self.state, &cursor) {
            tracing::warn!(error = %e, "Cannot write the Jetstream cursor; a restart may read events again");
        }
        tracker.cursor(self.describe());
        tracker.save();
    }
}

/// The failure for a WebSocket connection that could not be opened: an HTTP answer instead of
/// the upgrade is a failure of its status (see [`Failure::from_status`]).
fn handshake_failure(e: tungstenite::Error) -> Failure {
    match e {
        tungstenite::Error::Http(resp) => {
            let mut f = Failure::from_status(resp.status(), resp.headers());
            if let Some(body) = resp.body().as_deref().filter(|b| !b.is_empty()) {
                let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
                f.message.push_str(&format!(": {}", text.trim()));
            }
            f
        }
        other => Failure::transient(format!("connecting: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::http::FailureKind;
    use crate::tracked::TrackedQueryConfig;
    use serde_json::json;

    fn queries() -> QuerySet {
        QuerySet::compile(&[
            TrackedQueryConfig {
                name: "nusapay".into(),
                query: "nusapay OR #nusapaydown".into(),
            },
            TrackedQueryConfig {
                name: "kopi-id".into(),
                query: "kopikita lang:id".into(),
            },
        ])
        .unwrap()
    }

    fn event(time_us: i64, record: serde_json::Value) -> String {
        json!({"did": "did:plc:abc", "time_us": time_us, "kind": "commit",
            "commit": {"rev": "r", "operation": "create", "collection": POST_COLLECTION,
                "rkey": "3kx", "record": record, "cid": "bafy"}})
        .to_string()
    }

    fn mention(frame: Frame) -> Option<Mention> {
        match frame {
            Frame::Event { mention, .. } => mention.map(|m| *m),
            Frame::Malformed(r) => panic!("malformed: {r}"),
        }
    }

    #[test]
    fn a_matching_post_becomes_a_bluesky_mention() {
        let now = Utc::now();
        let record = json!({"$type": POST_COLLECTION, "text": "NusaPay gagal lagi",
            "createdAt": "2026-11-27T08:00:00.000Z", "langs": ["id"],
            "reply": {"parent": {"uri": "at://p", "cid": "c"}, "root": {"uri": "at://r", "cid": "c"}}});
        let m = mention(read_frame(
            &event(1_800_000_000_000_000, record),
            &queries(),
            now,
        ))
        .expect("matched");
        assert_eq!(m.id, "at://did:plc:abc/app.bsky.feed.post/3kx");
        assert_eq!(m.key(), "bluesky:at://did:plc:abc/app.bsky.feed.post/3kx");
        assert_eq!(
            (m.author.id.as_str(), m.author.handle.as_str()),
            ("did:plc:abc", "did:plc:abc")
        );
        assert_eq!(
            m.url.as_deref(),
            Some("https://bsky.app/profile/did:plc:abc/post/3kx")
        );
        assert_eq!(
            (
                m.parent_id.as_deref(),
                m.thread_id.as_deref(),
                m.lang.as_deref()
            ),
            (Some("at://p"), Some("at://r"), Some("id"))
        );
        assert_eq!(m.created_at.to_rfc3339(), "2026-11-27T08:00:00+00:00");
        Mention::parse(&serde_json::to_vec(&m).unwrap()).unwrap();
    }

    #[test]
    fn tags_facets_and_languages_decide_as_the_enrich_stage_would() {
        let q = queries();
        let now = Utc::now();
        let at = 1_800_000_000_000_000;
        let read = |record: serde_json::Value| mention(read_frame(&event(at, record), &q, now));
        // A tag facet whose text is not a #hashtag in the text still counts.
        let tagged = read(json!({"text": "down again", "createdAt": "bad date",
            "facets": [{"index": {"byteStart": 0, "byteEnd": 4},
                "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "NusaPayDown"}]}]}))
        .expect("the tag facet matches");
        // createdAt is not a time: the event's time_us is.
        assert_eq!(tagged.created_at.timestamp_micros(), at);
        // lang:id follows the first language; without any, any language may match.
        assert!(read(json!({"text": "kopikita enak", "langs": ["en"]})).is_none());
        assert!(read(json!({"text": "kopikita enak", "langs": ["id", "en"]})).is_some());
        assert!(read(json!({"text": "kopikita enak"})).is_some());
        assert!(read(json!({"text": "nothing here", "langs": ["id"]})).is_none());
        assert!(read(json!({"text": "  ", "langs": ["id"]})).is_none());
    }

    #[test]
    fn other_events_are_skipped_and_garbage_is_malformed() {
        let q = queries();
        let now = Utc::now();
        let skip = |text: String, at: i64| {
            assert_eq!(
                read_frame(&text, &q, now),
                Frame::Event {
                    time_us: at,
                    mention: None
                },
                "{text}"
            )
        };
        skip(
            json!({"did": "did:plc:a", "time_us": 7, "kind": "identity",
                "identity": {"did": "did:plc:a", "handle": "a.bsky.social", "seq": 1, "time": "t"}})
            .to_string(),
            7,
        );
        skip(
            json!({"did": "did:plc:a", "time_us": 8, "kind": "account",
                "account": {"active": true, "did": "did:plc:a", "seq": 2, "time": "t"}})
            .to_string(),
            8,
        );
        skip(
            json!({"did": "did:plc:a", "time_us": 9, "kind": "commit",
                "commit": {"rev": "r", "operation": "delete", "collection": POST_COLLECTION, "rkey": "k"}})
            .to_string(),
            9,
        );
        for bad in [
            "{not json".to_string(),
            json!({"kind": "commit"}).to_string(),
            json!({"did": "d", "time_us": 1, "kind": "commit"}).to_string(),
            event(10, json!({"text": 42})),
        ] {
            assert!(
                matches!(read_frame(&bad, &q, now), Frame::Malformed(_)),
                "{bad}"
            );
        }
        // A matched post whose only time is out of range is refused, not sent.
        let Frame::Malformed(reason) = read_frame(&event(5, json!({"text": "nusapay"})), &q, now)
        else {
            panic!("accepted a post dated 1970")
        };
        assert!(reason.contains("created_at"), "{reason}");
    }

    #[tokio::test]
    async fn wss_connects_through_rustls() {
        // A server that hangs up during the TLS handshake: the TLS client was built (rustls has
        // its crypto provider) and the failure is an error, not a panic.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { drop(listener.accept().await.unwrap()) });
        let url = format!("wss://127.0.0.1:{port}/subscribe");
        let err = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap_err();
        let f = handshake_failure(err);
        assert_eq!(f.kind, FailureKind::Transient, "{f}");
    }

    #[test]
    fn a_refused_upgrade_is_a_failure_of_its_status() {
        let refused = |status: u16, retry_after: Option<&str>| {
            let mut resp = tungstenite::http::Response::builder().status(status);
            if let Some(r) = retry_after {
                resp = resp.header("retry-after", r);
            }
            handshake_failure(tungstenite::Error::Http(Box::new(
                resp.body(Some(b"slow down".to_vec())).unwrap(),
            )))
        };
        let f = refused(429, Some("7"));
        assert_eq!(f.kind, FailureKind::RateLimited(Duration::from_secs(7)));
        assert!(f.message.contains("slow down"), "{f}");
        assert!(refused(403, None).is_denied());
        assert!(refused(401, None).is_denied());
        assert_eq!(refused(502, None).kind, FailureKind::Transient);
    }
}
