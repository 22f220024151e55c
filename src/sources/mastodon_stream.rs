//! The streaming Mastodon connector: hashtag and public timelines of one instance as they
//! happen, over the streaming API's server-sent events, each new status sent to the raw topic
//! as a mention (`platform: mastodon`, made as the polling connector makes it:
//! [`mastodon::status_mention`]).
//!
//! - **What is heard**: each `follow` entry is one stream: a hashtag (`#tag` or `tag`) is
//!   `GET /api/v1/streaming/hashtag?tag=<tag>`, `public` the federated timeline
//!   (`/api/v1/streaming/public`), `public:local` the instance's own
//!   (`/api/v1/streaming/public/local`). A connection holds one stream per entry at once;
//!   `update` events carry the statuses, `delete`, `status.update` and other events are
//!   ignored, boosts are skipped.
//! - **Credentials**: an access token from `GEMA_MASTODON_TOKEN`, sent as a bearer token when
//!   set. Many instances (mastodon.social among them) refuse anonymous streaming; the refusal
//!   (401) stops the source, naming the variable.
//! - **Limits**: the streaming server sends a `:thump` heartbeat comment every few seconds; no
//!   bytes at all on one stream for [`DEFAULT_STALL`] drops the connection and makes it again.
//!   Event data that is not a status is logged, counted ([`Stream::malformed`]) and skipped.
//!   A drop of any one stream ends the connection (all streams are made again).
//! - **Resuming**: the streaming API cannot resume, so the newest status id sent per instance
//!   and hashtag is kept in the state file (once Kafka stored the status), and each connection,
//!   after its streams are open, first takes a hashtag's statuses newer than that from its
//!   timeline (`GET /api/v1/timelines/tag/:tag` with `since_id`, up to
//!   [`mastodon::MAX_PAGES`] pages, as the polling connector does). Ids sent lately are
//!   remembered, so a status seen by the backfill and the stream, or by two hashtags, is sent
//!   once. Public timelines are not backfilled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::config::SourceConfig;
use super::env::token_from_env;
use super::env::SourceEnv;
use super::health::Tracker;
use super::http::Failure;
use super::mastodon::{self, by_id, status_mention, Status};
use super::poll::MASTODON_TOKEN_ENV;
use super::stream::{self, Body, RecentIds, Sse, SseEvent};
use super::{load_state, save_state, ConnectorError, Outlet};
use crate::kafka::{KafkaConfig, Topics};

/// No bytes on a stream for this long (heartbeats included) is a stalled stream.
pub const DEFAULT_STALL: Duration = Duration::from_secs(60);
/// How many of the status ids sent lately are remembered against repeats.
pub const RECENT_IDS: usize = 10_000;
/// How often a connection writes its state and health while statuses arrive.
pub const SAVE_EVERY: Duration = Duration::from_secs(5);

/// One followed stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Follow {
    /// A hashtag, without `#`, lower case.
    Hashtag(String),
    /// The federated timeline.
    Public,
    /// The instance's local timeline.
    PublicLocal,
}

impl Follow {
    /// The stream a `follow` entry names; a hashtag that cannot be one is a config error naming
    /// the entry.
    pub fn parse(entry: &str) -> Result<Follow, ConnectorError> {
        match entry.trim() {
            "public" => Ok(Follow::Public),
            "public:local" => Ok(Follow::PublicLocal),
            other => {
                let tag = mastodon::bare_tag(other);
                if tag.is_empty() || !tag.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    return Err(ConnectorError::Config(format!(
                        "follow entry {entry:?}: use a hashtag (letters, digits, _), public or \
                         public:local"
                    )));
                }
                Ok(Follow::Hashtag(tag))
            }
        }
    }

    /// Its key in the state file: `<host>#<tag>` (as the polling connector's), `<host>:public`
    /// or `<host>:public:local`.
    fn key(&self, host: &str) -> String {
        match self {
            Follow::Hashtag(tag) => mastodon::tag_key(host, tag),
            Follow::Public => format!("{host}:public"),
            Follow::PublicLocal => format!("{host}:public:local"),
        }
    }

    fn url(&self, instance: &reqwest::Url) -> reqwest::Url {
        let mut url = instance.clone();
        match self {
            Follow::Hashtag(tag) => {
                url.set_path("/api/v1/streaming/hashtag");
                url.query_pairs_mut().clear().append_pair("tag", tag);
            }
            Follow::Public => url.set_path("/api/v1/streaming/public"),
            Follow::PublicLocal => url.set_path("/api/v1/streaming/public/local"),
        }
        url
    }
}

/// The streams of one instance into Kafka (see the module documentation).
pub struct Stream {
    out: Outlet,
    client: reqwest::Client,
    instance: reqwest::Url,
    token: Option<String>,
    follows: Vec<Follow>,
    state_path: PathBuf,
    /// State-file key → newest status id Kafka stored.
    newest: BTreeMap<String, String>,
    recent: RecentIds,
    malformed: u64,
    /// No bytes on a stream for this long is a stall ([`DEFAULT_STALL`]).
    pub stall: Duration,
}

impl Stream {
    /// The stream of the `mastodon-stream` source `source` (token from
    /// [`MASTODON_TOKEN_ENV`]).
    pub async fn open(source: &SourceConfig, env: &SourceEnv) -> Result<Stream, ConnectorError> {
        let state = source.state_path(&env.state_dir);
        Stream::new(
            &env.kafka,
            &env.kafka.topics(),
            source.api(),
            token_from_env(MASTODON_TOKEN_ENV),
            &source.follow,
            &state,
        )
        .await
    }

    /// Streams of `follow` entries on `instance` (e.g. `https://mastodon.social`), sending to
    /// `topics.raw`, with an optional access token and its state in `state`.
    pub async fn new(
        config: &KafkaConfig,
        topics: &Topics,
        instance: &str,
        token: Option<String>,
        follow: &[String],
        state: &Path,
    ) -> Result<Stream, ConnectorError> {
        let url = reqwest::Url::parse(instance)
            .ok()
            .filter(|u| u.host_str().is_some() && matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                ConnectorError::Config(format!("instance URL {instance:?}: use https://host"))
            })?;
        let mut follows: Vec<Follow> = Vec::new();
        for entry in follow.iter().filter(|f| !f.trim().is_empty()) {
            let f = Follow::parse(entry)?;
            if !follows.contains(&f) {
                follows.push(f);
            }
        }
        if follows.is_empty() {
            return Err(ConnectorError::Config(
                "mastodon-stream follows nothing: name hashtags, public or public:local".into(),
            ));
        }
        Ok(Stream {
            out: Outlet::new(config, topics, "Mastodon streaming connector").await?,
            client: stream::client("Mastodon streaming connector")?,
            instance: url,
            token,
            follows,
            state_path: state.to_path_buf(),
            newest: load_state(state)?,
            recent: RecentIds::new(RECENT_IDS),
            malformed: 0,
            stall: DEFAULT_STALL,
        })
    }

    /// Event data that was not a status, skipped so far.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    fn host(&self) -> String {
        self.instance.host_str().unwrap_or_default().to_string()
    }

    /// One connection (see [`super::run::Streamer::session`]): opens every stream, backfills
    /// each hashtag since its newest status sent, then sends what arrives until a stream drops
    /// (the failure) or `shutdown` (`Ok`). The state is written every [`SAVE_EVERY`] while
    /// statuses arrive, and when it ends.
    pub async fn session(
        &mut self,
        tracker: &Tracker,
        shutdown: &CancellationToken,
    ) -> Result<(), Failure> {
        let result = tokio::select! {
            _ = shutdown.cancelled() => Ok(()),
            r = self.connection(tracker) => r,
        };
        self.persist(tracker);
        result
    }

    async fn connection(&mut self, tracker: &Tracker) -> Result<(), Failure> {
        let mut bodies = Vec::with_capacity(self.follows.len());
        for f in &self.follows {
            let url = f.url(&self.instance);
            let what = url.to_string();
            let mut req = self
                .client
                .get(url)
                .header(reqwest::header::ACCEPT, "text/event-stream");
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            let resp = stream::open(req, &what).await?;
            bodies.push(Body::new(resp, self.stall, &what));
        }
        tracker.ok();
        for f in self.follows.clone() {
            if let Follow::Hashtag(tag) = &f {
                self.backfill(tag, &f.key(&self.host()), tracker).await?;
            }
        }
        let streams = bodies.into_iter().enumerate().map(|(i, body)| {
            let events = futures::stream::unfold(Some((body, Sse::default())), |open| async {
                let (mut body, mut sse) = open?;
                loop {
                    match body.line().await {
                        Err(f) => return Some((Err(f), None)),
                        Ok(line) => {
                            if let Some(ev) = sse.line(&String::from_utf8_lossy(&line)) {
                                return Some((Ok(ev), Some((body, sse))));
                            }
                        }
                    }
                }
            });
            Box::pin(events.map(move |ev| (i, ev)))
        });
        let mut events = futures::stream::select_all(streams);
        let mut saved = Instant::now();
        loop {
            let (i, event) = events
                .next()
                .await
                .unwrap_or((0, Err(Failure::transient("every stream ended"))));
            let key = self.follows[i].key(&self.host());
            self.event(&key, event?, tracker).await?;
            if saved.elapsed() >= SAVE_EVERY {
                self.persist(tracker);
                saved = Instant::now();
            }
        }
    }

    /// Sends the status of an `update` event; other events are ignored.
    async fn event(&mut self, key: &str, ev: SseEvent, tracker: &Tracker) -> Result<(), Failure> {
        if ev.event != "update" {
            return Ok(());
        }
        match serde_json::from_str::<Status>(&ev.data) {
            Ok(status) => self.send(key, &status, tracker).await,
            Err(e) => {
                self.malformed += 1;
                let start: String = ev.data.chars().take(80).collect();
                tracing::warn!(
                    stream = key,
                    malformed = self.malformed,
                    error = %e,
                    data = %start,
                    "Mastodon update event skipped: not a status"
                );
                Ok(())
            }
        }
    }

    /// Sends the statuses of `tag` newer than the newest sent for `key`, oldest first (nothing
    /// when none was sent yet: the stream starts the tag).
    async fn backfill(&mut self, tag: &str, key: &str, tracker: &Tracker) -> Result<(), Failure> {
        let Some(since) = self.newest.get(key).cloned() else {
            return Ok(());
        };
        let url = mastodon::tag_url(&self.instance, tag);
        let mut statuses =
            mastodon::fetch_new(&self.out, &url, self.token.as_deref(), Some(&since))
                .await
                .map_err(|f| f.within(&url))?;
        statuses.sort_by(|a, b| by_id(&a.id, &b.id));
        for s in &statuses {
            self.send(key, s, tracker).await?;
        }
        if !statuses.is_empty() {
            tracing::info!(tag, since_id = %since, statuses = statuses.len(), "Mastodon tag backfilled from its timeline");
        }
        Ok(())
    }

    /// Sends `status` unless it was sent lately; the newest id of `key` moves once Kafka stored
    /// it.
    async fn send(&mut self, key: &str, status: &Status, tracker: &Tracker) -> Result<(), Failure> {
        if self.recent.contains(&status.id) {
            return Ok(());
        }
        if let Some(m) = status_mention(&self.host(), status, Utc::now()) {
            self.out.send(&m).await?;
            tracker.sent(1);
        }
        self.recent.insert(&status.id);
        let newer = self
            .newest
            .get(key)
            .is_none_or(|n| by_id(&status.id, n).is_gt());
        if newer {
            self.newest.insert(key.to_string(), status.id.clone());
        }
        Ok(())
    }

    /// Writes the state file and the health (a state file that cannot be written is logged;
    /// the next save tries again).
    fn persist(&self, tracker: &Tracker) {
        if !self.newest.is_empty() {
            let cursor: Vec<String> = self
                .newest
                .iter()
                .map(|(k, id)| format!("{k} {id}"))
                .collect();
            tracker.cursor(format!("newest: {}", cursor.join(", ")));
        }
        if let Err(e) = save_state(&self.state_path, &self.newest) {
            tracing::error!(error = %e, "Cannot write the Mastodon stream's state");
        }
        tracker.save();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_entries_name_their_streams() {
        let inst = reqwest::Url::parse("https://social.example").unwrap();
        let url = |e: &str| Follow::parse(e).unwrap().url(&inst).to_string();
        assert_eq!(
            url("#NusaPay"),
            "https://social.example/api/v1/streaming/hashtag?tag=nusapay"
        );
        assert_eq!(
            url("public"),
            "https://social.example/api/v1/streaming/public"
        );
        assert_eq!(
            url("public:local"),
            "https://social.example/api/v1/streaming/public/local"
        );
        assert_eq!(
            Follow::parse("nusapay").unwrap().key("social.example"),
            "social.example#nusapay"
        );
        let e = Follow::parse("#nusa pay").unwrap_err().to_string();
        assert!(e.contains("\"#nusa pay\""), "{e}");
    }
}
