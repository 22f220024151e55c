//! The X connector: the X API v2 filtered stream (`GET /2/tweets/search/stream`), its rules kept
//! in step with the tracked queries, and recent search (`GET /2/tweets/search/recent`) to fill
//! the gap a dropped connection leaves. Needs an app's bearer token in `GEMA_X_BEARER_TOKEN`
//! and an API plan that includes the filtered stream and recent search.
//!
//! - **What is heard**: the posts X matches against the rules. Each tracked query becomes a rule
//!   (its query in X's syntax, [`crate::tracked::search::search_string`], tagged
//!   `gema:query:<name>`) and each `follow` entry is an extra rule as written (tagged
//!   `gema:follow`). Before every connection the rules on X are synced: missing ones are
//!   added, rules gema added earlier that are no longer wanted (tag starting `gema:`) are
//!   deleted, rules anyone else added are left alone. A rule X refuses is reported with its
//!   query's name, and the others are streamed.
//! - **A post becomes** a mention with platform `x`: `id` the post id, `text` (the long form
//!   of a long post), the author's id, username and followers, `url`
//!   `https://x.com/<username>/status/<id>`, `lang` (X's `in` read as `id`; undetermined left
//!   out), `parent_id` the post it replies to, `thread_id` the conversation, likes / reposts /
//!   replies. Reposts are skipped: the original is a mention of its own.
//! - **Limits**: X sends a keep-alive about every 20 s; no bytes at all for [`DEFAULT_STALL`]
//!   is a stall and the connection is dropped and made again. A line that is not JSON is
//!   logged, counted ([`Stream::malformed`]) and skipped; an error line (X's operational
//!   disconnect) ends the connection.
//! - **Resuming**: the newest post id sent is kept in the state file once Kafka stored the
//!   post. Each connection, after the stream is open, first asks recent search for every rule's
//!   posts newer than it (`since_id`, up to [`MAX_BACKFILL_PAGES`] pages of 100 per rule), so a
//!   drop or a restart leaves no gap within recent search's seven days (an older one is
//!   reported in the source's health and the stream goes on); ids sent lately are
//!   remembered ([`RECENT_IDS`]) so the backfill and the stream never send a post twice.
//!
//! X's reconnect guidance asks for exponential backoff from 5 s after an HTTP error and from
//! 1 min after a 429: a 429 here is rate limited for at least [`MIN_RATE_LIMIT_WAIT`] (or the
//! longer wait its headers ask for); other failures get [`super::run::stream_loop`]'s
//! exponential backoff with jitter (from 1 s, a little quicker than X's 5 s first step, up to
//! the source's `every_s`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map};
use tokio_util::sync::CancellationToken;

use super::config::SourceConfig;
use super::env::token_from_env;
use super::env::SourceEnv;
use super::health::Tracker;
use super::http::{Failure, FailureKind};
use super::mastodon::by_id;
use super::stream::{self, RecentIds};
use super::{load_state, save_state, ConnectorError, Outlet};
use crate::kafka::{KafkaConfig, Topics};
use crate::mention::{Author, Mention, Metrics};
use crate::tracked::search::{search_string, Dialect};
use crate::tracked::TrackedQueryConfig;

/// Env var with the X API bearer token.
pub const X_TOKEN_ENV: &str = super::env::X_BEARER_TOKEN;
/// No bytes for this long (X's keep-alives come about every 20 s) is a stalled stream.
pub const DEFAULT_STALL: Duration = Duration::from_secs(30);
/// The shortest wait after a 429 (X asks for at least a minute).
pub const MIN_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// Most pages of 100 posts recent search is asked for, per rule, after a gap.
pub const MAX_BACKFILL_PAGES: usize = 10;
/// How many of the ids sent lately are remembered against repeats.
pub const RECENT_IDS: usize = 10_000;
/// How often a connection writes its state and health while it runs.
pub const SAVE_EVERY: Duration = Duration::from_secs(5);
/// The tag prefix of the rules gema manages.
pub const TAG_PREFIX: &str = "gema:";

/// The fields asked for with every post (stream and recent search).
const FIELDS: [(&str, &str); 3] = [
    (
        "tweet.fields",
        "created_at,lang,author_id,public_metrics,conversation_id,referenced_tweets,note_tweet",
    ),
    ("expansions", "author_id"),
    ("user.fields", "username,public_metrics"),
];

/// A filtered-stream rule gema wants on X.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// The rule in X's syntax.
    pub value: String,
    /// `gema:query:<name>` for a tracked query, `gema:follow` for a `follow` entry.
    pub tag: String,
}

impl Rule {
    /// What the user calls the rule: the tracked query or the follow entry.
    fn describe(&self) -> String {
        match self.tag.strip_prefix("gema:query:") {
            Some(name) => format!("tracked query {name:?}"),
            None => "follow entry".to_string(),
        }
    }
}

/// The rules for `tracked` queries and extra `follow` rules, each value once. A query X's
/// syntax cannot express (only `lang:` or `platform:` parts) is left out with a warning.
pub fn wanted_rules(tracked: &[TrackedQueryConfig], follow: &[String]) -> Vec<Rule> {
    let mut rules: Vec<Rule> = Vec::new();
    let mut push = |rule: Rule| {
        if !rules.iter().any(|r| r.value == rule.value) {
            rules.push(rule);
        }
    };
    for q in tracked {
        match search_string(&q.query, Dialect::X) {
            Ok(Some(value)) => push(Rule {
                value,
                tag: format!("{TAG_PREFIX}query:{}", q.name),
            }),
            Ok(None) => tracing::warn!(
                query = %q.name,
                "Tracked query has nothing X can search for; it gets no X rule"
            ),
            Err(e) => tracing::warn!(
                query = %q.name,
                error = ?e,
                "Tracked query does not parse; it gets no X rule"
            ),
        }
    }
    for f in follow.iter().map(|f| f.trim()).filter(|f| !f.is_empty()) {
        push(Rule {
            value: f.to_string(),
            tag: format!("{TAG_PREFIX}follow"),
        });
    }
    rules
}

/// The bearer token from `value` (the environment's [`X_TOKEN_ENV`]); unset is a config error
/// naming the variable.
pub fn bearer_token(value: Option<String>) -> Result<String, ConnectorError> {
    value.ok_or_else(|| {
        ConnectorError::Config(format!(
            "{X_TOKEN_ENV} is not set: the x source needs an X API bearer token (from the \
             developer portal, with filtered stream and recent search access)"
        ))
    })
}

/// What one sync of the rules did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSync {
    /// Rules added.
    pub added: usize,
    /// Stale gema rules deleted.
    pub deleted: usize,
    /// Why X refused a rule, one message each, naming the tracked query or follow entry.
    pub refused: Vec<String>,
}

/// A rule as X lists it.
#[derive(Debug, Clone, Deserialize)]
struct RuleOnX {
    id: String,
    value: String,
    #[serde(default)]
    tag: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RulesAnswer {
    #[serde(default)]
    data: Vec<RuleOnX>,
    #[serde(default)]
    errors: Vec<ApiError>,
}

/// An entry of an answer's or a stream line's `errors`.
#[derive(Debug, Clone, Default, Deserialize)]
struct ApiError {
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    details: Vec<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

impl ApiError {
    fn describe(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        parts.extend(self.title.as_deref());
        parts.extend(self.detail.as_deref());
        parts.extend(self.details.iter().map(String::as_str));
        if parts.is_empty() {
            parts.extend(self.kind.as_deref());
        }
        parts.join(": ")
    }
}

/// The fields of an X post that a mention needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Tweet {
    pub id: String,
    pub text: String,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub author_id: Option<String>,
    #[serde(default)]
    pub lang: Option<String>,
    #[serde(default)]
    pub conversation_id: Option<String>,
    #[serde(default)]
    pub referenced_tweets: Vec<Reference>,
    #[serde(default)]
    pub public_metrics: Option<TweetMetrics>,
    #[serde(default)]
    pub note_tweet: Option<NoteTweet>,
}

/// The whole text of a post longer than 280 characters.
#[derive(Debug, Clone, Deserialize)]
pub struct NoteTweet {
    pub text: String,
}

/// A post this one replies to, quotes or reposts.
#[derive(Debug, Clone, Deserialize)]
pub struct Reference {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct TweetMetrics {
    #[serde(default)]
    pub retweet_count: u32,
    #[serde(default)]
    pub reply_count: u32,
    #[serde(default)]
    pub like_count: u32,
}

/// The fields of an X user that a mention needs.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    #[serde(default)]
    pub public_metrics: Option<UserMetrics>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct UserMetrics {
    #[serde(default)]
    pub followers_count: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct Includes {
    #[serde(default)]
    users: Vec<User>,
}

/// A line of the stream, or a page of recent search.
#[derive(Debug, Deserialize)]
struct Envelope<T> {
    data: Option<T>,
    #[serde(default)]
    includes: Includes,
    #[serde(default)]
    errors: Vec<ApiError>,
    meta: Option<SearchMeta>,
}

#[derive(Debug, Default, Deserialize)]
struct SearchMeta {
    #[serde(default)]
    next_token: Option<String>,
}

/// X's language tag as ISO 639-1: `in` is Indonesian (`id`), `iw` Hebrew; `und`, `zxx`
/// and X's own `q…` tags (hashtags only, media...) say nothing.
fn iso_lang(lang: &str) -> Option<String> {
    match lang {
        "in" => Some("id".into()),
        "iw" => Some("he".into()),
        "und" | "zxx" | "art" => None,
        l if l.starts_with('q') || l.is_empty() => None,
        l => Some(l.to_string()),
    }
}

/// The mention for `tweet`, its author looked up in `users`; `None` for a repost.
pub fn tweet_mention(tweet: &Tweet, users: &[User], now: DateTime<Utc>) -> Option<Mention> {
    if tweet
        .referenced_tweets
        .iter()
        .any(|r| r.kind == "retweeted")
    {
        return None;
    }
    let author_id = tweet.author_id.clone().unwrap_or_default();
    let user = users.iter().find(|u| u.id == author_id);
    let url = match user {
        Some(u) => format!("https://x.com/{}/status/{}", u.username, tweet.id),
        None => format!("https://x.com/i/web/status/{}", tweet.id),
    };
    let text = tweet
        .note_tweet
        .as_ref()
        .map_or(tweet.text.as_str(), |n| n.text.as_str());
    let metrics = tweet.public_metrics.unwrap_or_default();
    Some(Mention {
        id: tweet.id.clone(),
        platform: "x".into(),
        text: text.to_string(),
        created_at: tweet.created_at.unwrap_or(now),
        author: Author {
            id: author_id.clone(),
            handle: user.map_or(author_id, |u| u.username.clone()),
            followers: user.and_then(|u| u.public_metrics.and_then(|m| m.followers_count)),
        },
        url: Some(url),
        lang: tweet.lang.as_deref().and_then(iso_lang),
        parent_id: tweet
            .referenced_tweets
            .iter()
            .find(|r| r.kind == "replied_to")
            .map(|r| r.id.clone()),
        thread_id: tweet.conversation_id.clone(),
        metrics: Some(Metrics {
            likes: metrics.like_count,
            reposts: metrics.retweet_count,
            replies: metrics.reply_count,
        }),
        ingested_at: Some(now),
        extra: Map::new(),
    })
}

/// A 429 waits at least [`MIN_RATE_LIMIT_WAIT`].
fn at_least_a_minute(f: Failure) -> Failure {
    match f.kind {
        FailureKind::RateLimited(w) if w < MIN_RATE_LIMIT_WAIT => Failure {
            kind: FailureKind::RateLimited(MIN_RATE_LIMIT_WAIT),
            message: format!(
                "{} (X asks for at least {} s)",
                f.message,
                MIN_RATE_LIMIT_WAIT.as_secs()
            ),
            status: f.status,
        },
        _ => f,
    }
}

/// What the state file keeps.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The newest post id Kafka stored.
    #[serde(default)]
    newest_id: Option<String>,
}

/// The X filtered stream of one app into Kafka (see the module documentation).
pub struct Stream {
    out: Outlet,
    client: reqwest::Client,
    api: String,
    token: String,
    rules: Vec<Rule>,
    state_path: PathBuf,
    state: State,
    recent: RecentIds,
    malformed: u64,
    /// No bytes at all for this long is a stalled stream ([`DEFAULT_STALL`]).
    pub stall: Duration,
}

impl Stream {
    /// The stream of the `x` source `source`: the token from [`X_TOKEN_ENV`], rules from the
    /// tracked queries and `follow`.
    pub async fn open(source: &SourceConfig, env: &SourceEnv) -> Result<Stream, ConnectorError> {
        let token = bearer_token(token_from_env(X_TOKEN_ENV))?;
        let rules = wanted_rules(&env.tracked, &source.follow);
        if rules.is_empty() {
            return Err(ConnectorError::Config(format!(
                "source {}: no X rules to stream; add [[tracked]] queries or follow entries",
                source.name
            )));
        }
        let state = source.state_path(&env.state_dir);
        Stream::new(
            &env.kafka,
            &env.kafka.topics(),
            source.api(),
            token,
            rules,
            &state,
        )
        .await
    }

    /// A stream from the API at `api` (e.g. `https://api.x.com`) with `token`, keeping `rules`
    /// on X, sending to `topics.raw`, its state in `state`.
    pub async fn new(
        config: &KafkaConfig,
        topics: &Topics,
        api: &str,
        token: String,
        rules: Vec<Rule>,
        state: &Path,
    ) -> Result<Stream, ConnectorError> {
        if !(api.starts_with("http://") || api.starts_with("https://")) {
            return Err(ConnectorError::Config(format!(
                "X API URL {api:?}: use https://host"
            )));
        }
        Ok(Stream {
            out: Outlet::new(config, topics, "X connector").await?,
            client: stream::client("X connector")?,
            api: api.trim_end_matches('/').to_string(),
            token,
            rules,
            state_path: state.to_path_buf(),
            state: load_state(state)?,
            recent: RecentIds::new(RECENT_IDS),
            malformed: 0,
            stall: DEFAULT_STALL,
        })
    }

    /// Lines of the stream that were not JSON, skipped so far.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// The newest post id Kafka stored, where the next connection resumes.
    pub fn newest_id(&self) -> Option<&str> {
        self.state.newest_id.as_deref()
    }

    fn rules_url(&self) -> String {
        format!("{}/2/tweets/search/stream/rules", self.api)
    }

    /// Makes the rules on X those this stream wants (see the module documentation).
    pub async fn sync_rules(&self) -> Result<RuleSync, Failure> {
        let what = "X stream rules";
        let req = self.out.http.get(self.rules_url()).bearer_auth(&self.token);
        let on_x: RulesAnswer = self
            .out
            .fetch_json(req, what)
            .await
            .map_err(|f| at_least_a_minute(f.within(what)))?;
        let is_ours = |r: &RuleOnX| r.tag.as_deref().is_some_and(|t| t.starts_with(TAG_PREFIX));
        let wanted_exactly = |r: &RuleOnX| {
            self.rules
                .iter()
                .any(|w| w.value == r.value && Some(w.tag.as_str()) == r.tag.as_deref())
        };
        let stale: Vec<String> = on_x
            .data
            .iter()
            .filter(|r| is_ours(r) && !wanted_exactly(r))
            .map(|r| r.id.clone())
            .collect();
        let kept: Vec<&str> = on_x
            .data
            .iter()
            .filter(|r| !is_ours(r) || wanted_exactly(r))
            .map(|r| r.value.as_str())
            .collect();
        let missing: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|w| !kept.contains(&w.value.as_str()))
            .collect();
        let mut sync = RuleSync::default();
        // Deleted first: a rule whose query was renamed is re-added under its new tag, and X
        // refuses a value it already has.
        if !stale.is_empty() {
            let answer = self.post_rules(json!({"delete": {"ids": stale}})).await?;
            sync.deleted = stale.len() - answer.errors.len().min(stale.len());
            for e in &answer.errors {
                sync.refused.push(format!(
                    "X did not delete a stale gema rule {}: {}",
                    e.value.as_deref().unwrap_or("?"),
                    e.describe()
                ));
            }
        }
        if !missing.is_empty() {
            let add: Vec<serde_json::Value> = missing
                .iter()
                .map(|r| json!({"value": r.value, "tag": r.tag}))
                .collect();
            let answer = self.post_rules(json!({ "add": add })).await?;
            sync.added = answer.data.len();
            for e in &answer.errors {
                let rule = missing
                    .iter()
                    .find(|r| Some(r.value.as_str()) == e.value.as_deref());
                sync.refused.push(match rule {
                    Some(r) => format!(
                        "X refused the rule {:?} of {}: {}",
                        r.value,
                        r.describe(),
                        e.describe()
                    ),
                    None => format!("X refused a rule: {}", e.describe()),
                });
            }
        }
        Ok(sync)
    }

    async fn post_rules(&self, body: serde_json::Value) -> Result<RulesAnswer, Failure> {
        let what = "X stream rules";
        let req = self
            .out
            .http
            .post(self.rules_url())
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        self.out
            .fetch_json(req, what)
            .await
            .map_err(|f| at_least_a_minute(f.within(what)))
    }

    /// One connection (see [`super::run::Streamer::session`]): syncs the rules, opens the
    /// stream, backfills the gap since the newest post sent, then sends what arrives until the
    /// stream drops (the failure) or `shutdown` (`Ok`). The state is written every
    /// [`SAVE_EVERY`] and when it ends.
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
        let sync = self.sync_rules().await?;
        if sync.added + sync.deleted > 0 {
            tracing::info!(
                added = sync.added,
                deleted = sync.deleted,
                "X stream rules synced"
            );
        }
        for refused in &sync.refused {
            tracing::error!("{refused}");
            tracker.failed(&Failure::malformed(refused.clone()));
        }
        let what = "X filtered stream";
        let req = self
            .client
            .get(format!("{}/2/tweets/search/stream", self.api))
            .query(&FIELDS)
            .bearer_auth(&self.token);
        let resp = stream::open(req, what).await.map_err(at_least_a_minute)?;
        tracker.ok();
        let mut body = stream::Body::new(resp, self.stall, what);
        if let Some(since) = self.state.newest_id.clone() {
            let sent = self.backfill(&since, tracker).await?;
            tracing::info!(since_id = %since, sent, "X backfilled the gap from recent search");
            // The stream is up: a rule's refused backfill is in the last error, not the state.
            tracker.ok();
        }
        let mut saved = Instant::now();
        loop {
            let line = body.line().await?;
            if !line.iter().all(u8::is_ascii_whitespace) {
                self.stream_line(&line, tracker).await?;
            }
            if saved.elapsed() >= SAVE_EVERY {
                self.persist(tracker);
                saved = Instant::now();
            }
        }
    }

    /// Handles one line of the stream: a post is sent, an error ends the connection, anything
    /// else is counted as malformed and skipped.
    async fn stream_line(&mut self, line: &[u8], tracker: &Tracker) -> Result<(), Failure> {
        match serde_json::from_slice::<Envelope<Tweet>>(line) {
            Ok(Envelope {
                data: Some(tweet),
                includes,
                ..
            }) => self
                .send(&tweet, &includes.users, tracker)
                .await
                .map(|_| ()),
            Ok(Envelope { errors, .. }) if !errors.is_empty() => {
                let reasons: Vec<String> = errors.iter().map(ApiError::describe).collect();
                Err(Failure::transient(format!(
                    "X filtered stream: X ended the stream: {}",
                    reasons.join("; ")
                )))
            }
            Ok(_) => {
                self.skip_malformed(line, "neither a post nor an error");
                Ok(())
            }
            Err(e) => {
                self.skip_malformed(line, &e.to_string());
                Ok(())
            }
        }
    }

    fn skip_malformed(&mut self, line: &[u8], reason: &str) {
        self.malformed += 1;
        let start: String = String::from_utf8_lossy(line).chars().take(80).collect();
        tracing::warn!(
            malformed = self.malformed,
            error = reason,
            line = %start,
            "X stream line skipped"
        );
    }

    /// Sends `tweet` unless it was sent lately (whether it was sent); the newest id moves once
    /// Kafka stored it.
    async fn send(
        &mut self,
        tweet: &Tweet,
        users: &[User],
        tracker: &Tracker,
    ) -> Result<bool, Failure> {
        if self.recent.contains(&tweet.id) {
            return Ok(false);
        }
        let mention = tweet_mention(tweet, users, Utc::now());
        if let Some(m) = &mention {
            self.out.send(m).await?;
            tracker.sent(1);
        }
        self.recent.insert(&tweet.id);
        let newer = self
            .state
            .newest_id
            .as_deref()
            .is_none_or(|n| by_id(&tweet.id, n).is_gt());
        if newer {
            self.state.newest_id = Some(tweet.id.clone());
        }
        Ok(mention.is_some())
    }

    /// Sends every rule's posts newer than `since` from recent search, oldest first; how many
    /// were new.
    ///
    /// A search X refuses as a bad request (400: a `since_id` older than recent search's
    /// seven days, a rule recent search cannot take) is reported and that rule's gap left, so
    /// the stream still runs; any other failure ends the connection and the next one tries
    /// again.
    async fn backfill(&mut self, since: &str, tracker: &Tracker) -> Result<usize, Failure> {
        let before = self.state.newest_id.clone();
        let result = self.backfill_rules(since, tracker).await;
        if result.is_err() {
            // A rule not searched yet still needs the gap from `since`: the next connection
            // backfills from there again (what was sent is remembered, so nothing repeats).
            self.state.newest_id = before;
        }
        result
    }

    async fn backfill_rules(&mut self, since: &str, tracker: &Tracker) -> Result<usize, Failure> {
        let mut sent = 0;
        for rule in self.rules.clone() {
            let (mut tweets, users) = match self.search(&rule, since).await {
                Ok(found) => found,
                Err(f) if f.status == Some(400) => {
                    let f = Failure::new(
                        FailureKind::Malformed,
                        format!("{f}; posts since {since} of this rule are not backfilled"),
                    );
                    tracing::error!(error = %f, "X backfill refused");
                    tracker.failed(&f);
                    continue;
                }
                Err(f) => return Err(f),
            };
            tweets.sort_by(|a, b| by_id(&a.id, &b.id));
            for t in &tweets {
                if self.send(t, &users, tracker).await? {
                    sent += 1;
                }
            }
        }
        Ok(sent)
    }

    /// Recent search's posts for `rule` newer than `since` (up to [`MAX_BACKFILL_PAGES`]), and
    /// their authors.
    async fn search(&self, rule: &Rule, since: &str) -> Result<(Vec<Tweet>, Vec<User>), Failure> {
        let what = format!("X recent search for the rule of {}", rule.describe());
        let mut tweets = Vec::new();
        let mut users = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_BACKFILL_PAGES {
            let mut req = self
                .out
                .http
                .get(format!("{}/2/tweets/search/recent", self.api))
                .bearer_auth(&self.token)
                .query(&[
                    ("query", rule.value.as_str()),
                    ("since_id", since),
                    ("max_results", "100"),
                ])
                .query(&FIELDS);
            if let Some(t) = &next {
                req = req.query(&[("next_token", t)]);
            }
            let page: Envelope<Vec<Tweet>> = self
                .out
                .fetch_json(req, "X recent search")
                .await
                .map_err(|f| at_least_a_minute(f.within(&what)))?;
            tweets.extend(page.data.unwrap_or_default());
            users.extend(page.includes.users);
            next = page.meta.and_then(|m| m.next_token);
            if next.is_none() {
                break;
            }
        }
        Ok((tweets, users))
    }

    /// Writes the state file and the health (a state file that cannot be written is logged;
    /// the next save tries again).
    fn persist(&self, tracker: &Tracker) {
        if let Some(id) = &self.state.newest_id {
            tracker.cursor(format!("newest post {id}"));
        }
        if let Err(e) = save_state(&self.state_path, &self.state) {
            tracing::error!(error = %e, "Cannot write the X stream's state");
        }
        tracker.save();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(name: &str, query: &str) -> TrackedQueryConfig {
        TrackedQueryConfig {
            name: name.into(),
            query: query.into(),
        }
    }

    #[test]
    fn rules_come_from_tracked_queries_and_follow_entries_once_each() {
        let rules = wanted_rules(
            &[
                q("brand", "NusaPay (refund OR \"top up\") lang:id"),
                q("elsewhere", "platform:hn"),
                q("same", "nusapay (refund OR \"top up\") lang:id"),
            ],
            &["@nusapay_cs".into(), " ".into()],
        );
        let rule = |value: &str, tag: &str| Rule {
            value: value.into(),
            tag: tag.into(),
        };
        assert_eq!(
            rules,
            [
                rule("nusapay (refund OR \"top up\") lang:id", "gema:query:brand"),
                rule("@nusapay_cs", "gema:follow"),
            ]
        );
        assert_eq!(rules[0].describe(), "tracked query \"brand\"");
        assert_eq!(rules[1].describe(), "follow entry");
    }

    #[test]
    fn a_missing_token_names_its_variable() {
        let e = bearer_token(None).unwrap_err().to_string();
        assert!(e.contains(X_TOKEN_ENV), "{e}");
        assert_eq!(bearer_token(Some("t".into())).unwrap(), "t");
    }

    #[test]
    fn a_post_becomes_a_valid_mention_and_reposts_are_skipped() {
        let line: Envelope<Tweet> = serde_json::from_value(json!({
            "data": {
                "id": "1850000000000000002", "text": "NusaPay refund belum masuk",
                "created_at": "2026-11-27T08:00:00.000Z", "author_id": "42", "lang": "in",
                "conversation_id": "1850000000000000001",
                "referenced_tweets": [{"type": "replied_to", "id": "1850000000000000001"}],
                "public_metrics": {"retweet_count": 1, "reply_count": 2, "like_count": 3, "quote_count": 0}
            },
            "includes": {"users": [{"id": "42", "username": "budi", "name": "Budi",
                                    "public_metrics": {"followers_count": 120}}]},
            "matching_rules": [{"id": "1", "tag": "gema:query:brand"}]
        }))
        .unwrap();
        let tweet = line.data.unwrap();
        let m = tweet_mention(&tweet, &line.includes.users, Utc::now()).unwrap();
        assert_eq!(m.platform, "x");
        assert_eq!(m.id, "1850000000000000002");
        assert_eq!(m.author.handle, "budi");
        assert_eq!(m.author.id, "42");
        assert_eq!(m.author.followers, Some(120));
        assert_eq!(
            m.url.as_deref(),
            Some("https://x.com/budi/status/1850000000000000002")
        );
        assert_eq!(m.lang.as_deref(), Some("id"));
        assert_eq!(m.parent_id.as_deref(), Some("1850000000000000001"));
        assert_eq!(m.thread_id.as_deref(), Some("1850000000000000001"));
        assert_eq!(
            m.metrics.unwrap(),
            Metrics {
                likes: 3,
                reposts: 1,
                replies: 2
            }
        );
        Mention::parse(&serde_json::to_vec(&m).unwrap()).unwrap();

        let mut repost = tweet.clone();
        repost.referenced_tweets = vec![Reference {
            kind: "retweeted".into(),
            id: "1".into(),
        }];
        assert!(tweet_mention(&repost, &[], Utc::now()).is_none());
        let mut long = tweet;
        long.note_tweet = Some(NoteTweet {
            text: "the whole long text".into(),
        });
        long.lang = Some("qme".into());
        let m = tweet_mention(&long, &[], Utc::now()).unwrap();
        assert_eq!(m.text, "the whole long text");
        assert_eq!(m.lang, None);
        assert_eq!(m.author.handle, "42");
    }

    #[test]
    fn a_rate_limit_waits_at_least_a_minute() {
        let short = Failure::new(FailureKind::RateLimited(Duration::from_secs(5)), "HTTP 429");
        assert_eq!(
            at_least_a_minute(short).rate_limit(),
            Some(MIN_RATE_LIMIT_WAIT)
        );
        let long = Failure::new(
            FailureKind::RateLimited(Duration::from_secs(900)),
            "HTTP 429",
        );
        assert_eq!(
            at_least_a_minute(long).rate_limit(),
            Some(Duration::from_secs(900))
        );
    }
}
