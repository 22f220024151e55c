//! The Meta webhooks connector: Instagram and Facebook Page notifications that Meta sends to
//! `POST /webhooks/meta` on the source's `listen` address (also `GET /webhooks/meta` for Meta's
//! subscription check and `GET /healthz`).
//!
//! - Heard: Instagram `comments` (a comment on the brand's media, with its text and author) and
//!   `mentions` (the brand @-mentioned in a comment: ids only, so the comment is fetched from the
//!   Graph API, `{api}/{comment_id}?fields=id,text,timestamp,username`, default api
//!   `https://graph.facebook.com/v21.0`), and Facebook Page `feed` changes that add or edit a
//!   comment or a post. Removals, reactions and other feed items are passed over; a change of
//!   any other field cannot be mapped (below).
//! - A change becomes a mention with `platform` `instagram` or `facebook`, `id` the comment's or
//!   post's id, the author's id and username (Facebook: name), the text, `parent_id` what it
//!   answers (a comment's parent, else its media or post), `thread_id` its media or post, `url`
//!   the Facebook object's page (Instagram's webhooks carry no permalink), `created_at` the
//!   comment's own time where given, else the entry's `time`, else the time it arrived.
//! - Credentials, from the environment: `GEMA_META_APP_SECRET` (the app secret Meta signs each
//!   call with: `X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>`, checked in constant
//!   time; a call without a matching signature is refused with 401 and nothing is sent),
//!   `GEMA_META_VERIFY_TOKEN` (the token the subscription check must present, else 403) and,
//!   optionally, `GEMA_META_ACCESS_TOKEN` (a Graph API token to fetch mentioned comments).
//! - Answers: 200 once Kafka stored every mention of the call, so Meta may forget it; 500 when
//!   Kafka did not, or the Graph API failed transiently (5xx, 429, unreachable), so Meta sends
//!   it again (repeats collapse by key). A signed body that is not a notification, and a change
//!   that cannot be mapped (another field, a missing id, a mention without an access token, a
//!   comment the Graph API refuses), goes to the dead-letter topic with the reason and is still
//!   answered 200: Meta would otherwise retry it for hours. A body over [`MAX_BODY_BYTES`] is
//!   refused with 413.
//! - Resuming: nothing to resume; Meta holds and retries what was not answered 200.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use super::config::SourceConfig;
use super::env::token_from_env;
use super::env::SourceEnv;
use super::health::Tracker;
use super::http::{Failure, FailureKind};
use super::{ConnectorError, Outlet};
use crate::kafka::dlq::DeadLetter;
use crate::kafka::{KafkaConfig, Topics};
use crate::mention::{Author, Mention};
use crate::metrics::Metrics;

/// Where Meta calls.
pub const WEBHOOK_PATH: &str = "/webhooks/meta";
/// The largest body taken (Meta batches up to 1000 changes per call, far below this).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Env var with the app secret that signs Meta's calls.
pub const APP_SECRET_ENV: &str = super::env::META_APP_SECRET;
/// Env var with the token Meta's subscription check presents.
pub const VERIFY_TOKEN_ENV: &str = super::env::META_VERIFY_TOKEN;
/// Env var with a Graph API access token, to fetch the comments of Instagram mentions.
pub const ACCESS_TOKEN_ENV: &str = super::env::META_ACCESS_TOKEN;
/// How often the health record is written while calls arrive.
const SAVE_EVERY: Duration = Duration::from_secs(5);

/// The secrets of a Meta app. Never logged.
#[derive(Clone)]
pub struct Secrets {
    /// The app secret: the key of each call's HMAC-SHA256 signature.
    pub app_secret: String,
    /// The verify token set in the app's webhook subscription.
    pub verify_token: String,
    /// A Graph API token allowed to read the Instagram account's mentioned comments.
    pub access_token: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("access_token", &self.access_token.as_ref().map(|_| "set"))
            .finish_non_exhaustive()
    }
}

impl Secrets {
    /// The secrets from [`APP_SECRET_ENV`], [`VERIFY_TOKEN_ENV`] and [`ACCESS_TOKEN_ENV`]; the
    /// error names a required variable that is unset or empty.
    pub fn from_env() -> Result<Secrets, ConnectorError> {
        Secrets::from_lookup(token_from_env)
    }

    /// The secrets as `get` gives each variable (see [`Secrets::from_env`]).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Secrets, ConnectorError> {
        let required = |name: &str, what: &str| {
            get(name).ok_or_else(|| {
                ConnectorError::Config(format!(
                    "{name} is not set; set it to {what} (the Meta app's webhook settings)"
                ))
            })
        };
        Ok(Secrets {
            app_secret: required(APP_SECRET_ENV, "the app secret Meta signs each call with")?,
            verify_token: required(
                VERIFY_TOKEN_ENV,
                "the verify token of the webhook subscription",
            )?,
            access_token: get(ACCESS_TOKEN_ENV),
        })
    }
}

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`, compared in
/// constant time.
pub fn signature_matches(secret: &[u8], header: &str, body: &[u8]) -> bool {
    let Some(hex) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What one call did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Mentions Kafka stored.
    pub sent: usize,
    /// Changes (or the whole body) sent to the dead-letter topic.
    pub dead_lettered: usize,
    /// Changes passed over: removals, reactions, items without text.
    pub ignored: usize,
    /// Why a mentioned comment could not be fetched for want of a working
    /// `GEMA_META_ACCESS_TOKEN` (missing, expired, refused): shown in the source's health, since
    /// those mentions go to the dead-letter topic until it is fixed. Not in the answer to Meta.
    #[serde(skip)]
    pub token_problem: Option<String>,
}

/// Why a change did not become a mention.
#[derive(Debug, Clone, PartialEq)]
pub enum Unmapped {
    /// Dead-lettered with a short reason code and the full error.
    Dead { reason: &'static str, error: String },
    /// Meta should send the call again (the Graph API failed transiently).
    Retry(Failure),
}

impl Unmapped {
    fn dead(reason: &'static str, error: impl Into<String>) -> Unmapped {
        Unmapped::Dead {
            reason,
            error: error.into(),
        }
    }
}

#[derive(Deserialize)]
struct Notification {
    object: String,
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    id: Value,
    #[serde(default)]
    time: Option<Value>,
    #[serde(default)]
    changes: Vec<Value>,
}

#[derive(Deserialize)]
struct Change {
    field: String,
    value: Value,
}

#[derive(Deserialize)]
struct IgUser {
    id: String,
    #[serde(default)]
    username: String,
}

#[derive(Deserialize)]
struct IgMedia {
    id: String,
}

#[derive(Deserialize)]
struct IgComment {
    id: String,
    from: IgUser,
    #[serde(default)]
    media: Option<IgMedia>,
    #[serde(default)]
    parent_id: Option<String>,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
struct IgMention {
    media_id: String,
    comment_id: String,
}

#[derive(Deserialize)]
struct GraphComment {
    id: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    username: String,
}

#[derive(Deserialize)]
struct FbUser {
    id: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct FbFeed {
    item: String,
    verb: String,
    #[serde(default)]
    from: Option<FbUser>,
    #[serde(default)]
    post_id: Option<String>,
    #[serde(default)]
    comment_id: Option<String>,
    #[serde(default)]
    parent_id: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    created_time: Option<Value>,
}

/// A time as Meta writes it: Unix seconds (or milliseconds) as a number or a string, or ISO 8601
/// with or without a colon in the offset (`2026-11-27T08:00:00+0000`).
pub fn meta_time(v: &Value) -> Option<DateTime<Utc>> {
    let from_number = |n: i64| {
        if n > 100_000_000_000 {
            DateTime::from_timestamp_millis(n)
        } else {
            DateTime::from_timestamp(n, 0)
        }
    };
    match v {
        Value::Number(n) => n.as_i64().and_then(from_number),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .and_then(from_number)
                .or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc()))
                .or_else(|| {
                    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z")
                        .ok()
                        .map(|t| t.to_utc())
                })
                .or_else(|| {
                    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
                        .ok()
                        .map(|t| t.and_utc())
                })
        }
        _ => None,
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn mention(
    platform: &str,
    id: String,
    text: String,
    created_at: DateTime<Utc>,
    author: Author,
    now: DateTime<Utc>,
) -> Mention {
    Mention {
        id,
        platform: platform.into(),
        text,
        created_at,
        author,
        url: None,
        lang: None,
        parent_id: None,
        thread_id: None,
        metrics: None,
        ingested_at: Some(now),
        extra: Map::new(),
    }
}

/// The mention of an Instagram `comments` change (`None`: a comment without text).
fn instagram_comment(
    value: &Value,
    when: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<Mention>, Unmapped> {
    let c: IgComment = serde_json::from_value(value.clone())
        .map_err(|e| Unmapped::dead("schema", format!("instagram comments change: {e}")))?;
    if c.text.trim().is_empty() {
        return Ok(None);
    }
    let media = c.media.map(|m| m.id);
    let handle = if c.from.username.is_empty() {
        c.from.id.clone()
    } else {
        c.from.username
    };
    let mut m = mention(
        "instagram",
        c.id,
        c.text,
        when,
        Author {
            id: c.from.id,
            handle,
            followers: None,
        },
        now,
    );
    m.parent_id = c.parent_id.or_else(|| media.clone());
    m.thread_id = media;
    Ok(Some(m))
}

/// The mention of a Facebook Page `feed` change that adds or edits a comment or a post (`None`:
/// any other item or verb, or no text).
fn facebook_feed(
    value: &Value,
    when: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<Mention>, Unmapped> {
    let f: FbFeed = serde_json::from_value(value.clone())
        .map_err(|e| Unmapped::dead("schema", format!("facebook feed change: {e}")))?;
    let is_post = matches!(f.item.as_str(), "post" | "status");
    if !(f.item == "comment" || is_post) || !matches!(f.verb.as_str(), "add" | "edited") {
        return Ok(None);
    }
    let text = f.message.unwrap_or_default();
    if text.trim().is_empty() {
        return Ok(None);
    }
    let id = if is_post {
        f.post_id.clone()
    } else {
        f.comment_id.clone()
    };
    let Some(id) = id.filter(|i| !i.is_empty()) else {
        let key = if is_post { "post_id" } else { "comment_id" };
        return Err(Unmapped::dead(
            "schema",
            format!("facebook feed change: a {} without `{key}`", f.item),
        ));
    };
    let Some(from) = f.from else {
        return Err(Unmapped::dead(
            "schema",
            format!(
                "facebook feed change: {} {id} has no `from` (the app may lack the permission \
                 to see who wrote it)",
                f.item
            ),
        ));
    };
    let created_at = f.created_time.as_ref().and_then(meta_time).unwrap_or(when);
    let handle = if from.name.is_empty() {
        from.id.clone()
    } else {
        from.name
    };
    let mut m = mention(
        "facebook",
        id.clone(),
        text,
        created_at,
        Author {
            id: from.id,
            handle,
            followers: None,
        },
        now,
    );
    m.url = Some(format!("https://www.facebook.com/{id}"));
    if !is_post {
        m.parent_id = f.parent_id.or_else(|| f.post_id.clone());
    }
    m.thread_id = f.post_id;
    Ok(Some(m))
}

/// The Meta webhook endpoint's state: where mentions and dead letters go, and the secrets.
pub struct Webhook {
    name: String,
    out: Outlet,
    dlq: String,
    dlq_limit: usize,
    secrets: Secrets,
    graph: String,
    health: Option<(Tracker, Arc<Metrics>)>,
    saved_at: Mutex<Instant>,
}

impl Webhook {
    /// An endpoint named `name` (in dead letters and logs) sending to `topics`, checking calls
    /// with `secrets` and fetching mentioned comments from `graph_api` (e.g.
    /// `https://graph.facebook.com/v21.0`).
    pub async fn new(
        config: &KafkaConfig,
        topics: &Topics,
        name: &str,
        secrets: Secrets,
        graph_api: &str,
    ) -> Result<Webhook, ConnectorError> {
        let out = Outlet::new(config, topics, "Meta webhooks").await?;
        Ok(Webhook {
            name: name.to_string(),
            out,
            dlq: topics.dlq.clone(),
            dlq_limit: crate::kafka::limits::record_limit(config, &[topics.dlq.as_str()]).await,
            secrets,
            graph: graph_api.trim_end_matches('/').to_string(),
            health: None,
            saved_at: Mutex::new(Instant::now()),
        })
    }

    /// The endpoint `source` configures, its secrets from the environment.
    pub async fn open(source: &SourceConfig, env: &SourceEnv) -> Result<Webhook, ConnectorError> {
        let secrets = Secrets::from_env().map_err(|e| match e {
            ConnectorError::Config(m) => {
                ConnectorError::Config(format!("source {}: {m}", source.name))
            }
            other => other,
        })?;
        let hook = Webhook::new(
            &env.kafka,
            &env.kafka.topics(),
            &source.name,
            secrets,
            source.api(),
        )
        .await?;
        Ok(hook)
    }

    /// The same endpoint counting its calls in `tracker` and its dead letters in `metrics`.
    pub fn with_health(mut self, tracker: Tracker, metrics: Arc<Metrics>) -> Webhook {
        self.health = Some((tracker, metrics));
        self
    }

    /// Whether the `X-Hub-Signature-256` value `header` signs `body`.
    pub fn signed(&self, header: &str, body: &[u8]) -> bool {
        signature_matches(self.secrets.app_secret.as_bytes(), header, body)
    }

    /// Maps a signed body's changes, sends the mentions and then the dead letters, and waits
    /// until Kafka stored them all; a failure means the call should be answered 500.
    pub async fn deliver(&self, body: &[u8]) -> Result<Delivery, Failure> {
        let now = Utc::now();
        let mut delivery = Delivery::default();
        let mut mentions = Vec::new();
        // (key, original, reason, error)
        let mut dead: Vec<(String, Vec<u8>, &'static str, String)> = Vec::new();
        match serde_json::from_slice::<Notification>(body) {
            Err(e) => {
                let reason = if e.is_syntax() || e.is_eof() {
                    "invalid_json"
                } else {
                    "schema"
                };
                dead.push((
                    format!("meta:{}:body", self.name),
                    body.to_vec(),
                    reason,
                    format!("body: not a Meta webhook notification: {e}"),
                ));
            }
            Ok(n) => {
                for entry in &n.entry {
                    let when = entry.time.as_ref().and_then(meta_time).unwrap_or(now);
                    for change in &entry.changes {
                        match self.map(&n.object, change, when, now).await {
                            Ok(Some(m)) => mentions.push(m),
                            Ok(None) => delivery.ignored += 1,
                            Err(Unmapped::Retry(f)) => return Err(f),
                            Err(Unmapped::Dead { reason, error }) => {
                                let original = json!({"object": n.object, "entry": [{
                                    "id": entry.id, "time": entry.time, "changes": [change]}]});
                                dead.push((
                                    format!("meta:{}:{}", n.object, text_of(&entry.id)),
                                    serde_json::to_vec(&original).expect("JSON serialises"),
                                    reason,
                                    error,
                                ));
                            }
                        }
                    }
                }
            }
        }
        for m in &mentions {
            self.out.send(m).await?;
            delivery.sent += 1;
        }
        for (key, original, reason, error) in dead {
            if matches!(reason, "no_access_token" | "graph_refused") {
                delivery.token_problem = Some(error.clone());
            }
            tracing::warn!(source = %self.name, reason, "Meta webhook change dead-lettered: {error}");
            let letter = DeadLetter {
                stage: "meta".into(),
                reason: reason.into(),
                error,
                topic: format!("meta:{}", self.name),
                partition: -1,
                offset: -1,
                truncated: None,
            };
            self.out
                .dead_letter(&self.dlq, self.dlq_limit, &key, &original, letter)
                .await?;
            if let Some((_, metrics)) = &self.health {
                metrics.dead_lettered(reason);
            }
            delivery.dead_lettered += 1;
        }
        Ok(delivery)
    }

    /// The mention of one change of a notification about `object`.
    async fn map(
        &self,
        object: &str,
        change: &Value,
        when: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Mention>, Unmapped> {
        let c: Change = serde_json::from_value(change.clone())
            .map_err(|e| Unmapped::dead("schema", format!("{object} change: {e}")))?;
        let m = match (object, c.field.as_str()) {
            ("instagram", "comments") => instagram_comment(&c.value, when, now)?,
            ("instagram", "mentions") => self.instagram_mention(&c.value, when, now).await?,
            ("page", "feed") => facebook_feed(&c.value, when, now)?,
            ("instagram" | "page", field) => {
                return Err(Unmapped::dead(
                    "unsupported_field",
                    format!(
                        "{object} change of field `{field}`: not heard (instagram comments and \
                         mentions, page feed)"
                    ),
                ))
            }
            _ => {
                return Err(Unmapped::dead(
                    "unsupported_object",
                    format!("object `{object}`: not heard (instagram, page)"),
                ))
            }
        };
        match m {
            Some(m) => match m.validate() {
                Ok(()) => Ok(Some(m)),
                Err(e) => Err(Unmapped::Dead {
                    reason: e.reason(),
                    error: format!("{} {}: {e}", m.platform, m.id),
                }),
            },
            None => Ok(None),
        }
    }

    /// The mention of an Instagram `mentions` change: its comment fetched from the Graph API.
    async fn instagram_mention(
        &self,
        value: &Value,
        when: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Mention>, Unmapped> {
        let ids: IgMention = serde_json::from_value(value.clone())
            .map_err(|e| Unmapped::dead("schema", format!("instagram mentions change: {e}")))?;
        let Some(token) = &self.secrets.access_token else {
            return Err(Unmapped::dead(
                "no_access_token",
                format!(
                    "instagram mentions change: comment {} comes as an id only and \
                     {ACCESS_TOKEN_ENV} is not set, so it cannot be fetched from the Graph API",
                    ids.comment_id
                ),
            ));
        };
        let url = format!("{}/{}", self.graph, ids.comment_id);
        let resp = self
            .out
            .http
            .get(&url)
            .query(&[
                ("fields", "id,text,timestamp,username"),
                ("access_token", token),
            ])
            .send()
            .await
            // Without the URL: its query holds the token.
            .map_err(|e| {
                Unmapped::Retry(Failure::transient(format!("{url}: {}", e.without_url())))
            })?;
        let status = resp.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(Unmapped::Retry(
                Failure::from_status(status, resp.headers()).within(&url),
            ));
        }
        let body = resp.bytes().await.map_err(|e| {
            Unmapped::Retry(Failure::transient(format!("{url}: {}", e.without_url())))
        })?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(Unmapped::dead(
                "graph_refused",
                format!(
                    "{url}: HTTP {status}: {} (check that {ACCESS_TOKEN_ENV} is valid and may \
                     read the account's mentions)",
                    text.trim()
                ),
            ));
        }
        let c: GraphComment = serde_json::from_slice(&body)
            .map_err(|e| Unmapped::dead("graph_malformed", format!("{url}: not a comment: {e}")))?;
        if c.text.trim().is_empty() {
            return Ok(None);
        }
        let created_at = c
            .timestamp
            .map(Value::String)
            .as_ref()
            .and_then(meta_time)
            .unwrap_or(when);
        let handle = if c.username.is_empty() {
            return Err(Unmapped::dead(
                "schema",
                format!("{url}: comment {} has no username", c.id),
            ));
        } else {
            c.username
        };
        let mut m = mention(
            "instagram",
            c.id,
            c.text,
            created_at,
            // The Graph API gives the commenter's username only.
            Author {
                id: handle.clone(),
                handle,
                followers: None,
            },
            now,
        );
        m.parent_id = Some(ids.media_id.clone());
        m.thread_id = Some(ids.media_id);
        Ok(Some(m))
    }

    fn record(&self, result: &Result<Delivery, Failure>) {
        let Some((tracker, _)) = &self.health else {
            return;
        };
        match result {
            Ok(d) => {
                tracker.ok();
                tracker.sent(d.sent as u64);
                if let Some(problem) = &d.token_problem {
                    tracker.failed(&Failure::new(FailureKind::Denied, problem.clone()));
                }
            }
            Err(f) => tracker.failed(f),
        }
        let mut saved_at = self.saved_at.lock().unwrap();
        if result.is_err() || saved_at.elapsed() >= SAVE_EVERY {
            tracker.save();
            *saved_at = Instant::now();
        }
    }
}

/// How long one call may take (Graph fetches included) before it is answered 408, which Meta
/// retries: Meta gives up on an answer after about 20 s and sends the call again anyway.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The endpoint's routes: `GET` / `POST` [`WEBHOOK_PATH`] and `GET /healthz`.
pub fn router(hook: Arc<Webhook>) -> Router {
    Router::new()
        .route(WEBHOOK_PATH, get(verify).post(receive))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            CALL_TIMEOUT,
        ))
        .with_state(hook)
}

/// Meta's subscription check: the challenge back when the verify token matches.
async fn verify(
    State(hook): State<Arc<Webhook>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let token = q.get("hub.verify_token").map_or("", String::as_str);
    let token_ok: bool = token
        .as_bytes()
        .ct_eq(hook.secrets.verify_token.as_bytes())
        .into();
    match (
        q.get("hub.mode").map(String::as_str),
        q.get("hub.challenge"),
    ) {
        (Some("subscribe"), Some(challenge)) if token_ok => {
            tracing::info!(source = %hook.name, "Meta webhook subscription verified");
            (StatusCode::OK, challenge.clone()).into_response()
        }
        _ => {
            tracing::warn!(source = %hook.name, "Meta webhook subscription check refused");
            (
                StatusCode::FORBIDDEN,
                "hub.mode must be subscribe and hub.verify_token the configured verify token",
            )
                .into_response()
        }
    }
}

/// A notification: checked, mapped, stored, answered.
async fn receive(State(hook): State<Arc<Webhook>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(signature) = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
    else {
        return (
            StatusCode::UNAUTHORIZED,
            "X-Hub-Signature-256 is missing; nothing was taken",
        )
            .into_response();
    };
    if !hook.signed(signature, &body) {
        tracing::warn!(source = %hook.name, bytes = body.len(), "Meta webhook call with a bad signature refused");
        return (
            StatusCode::UNAUTHORIZED,
            "X-Hub-Signature-256 does not sign this body with the app secret; nothing was taken",
        )
            .into_response();
    }
    let result = hook.deliver(&body).await;
    hook.record(&result);
    match result {
        Ok(d) => (StatusCode::OK, Json(d)).into_response(),
        Err(f) => {
            tracing::warn!(source = %hook.name, error = %f, "Meta webhook call not stored; Meta will send it again");
            let kind = if f.kind == FailureKind::Kafka {
                "Kafka did not store it"
            } else {
                "try again"
            };
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{kind}: {}", f.message),
            )
                .into_response()
        }
    }
}

/// Serves `hook` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    hook: Arc<Webhook>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(hook))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Runs the `meta` source `source` until `shutdown`: opens the endpoint and listens on its
/// `listen` address.
pub async fn listen(
    source: &SourceConfig,
    env: &SourceEnv,
    tracker: &Tracker,
    shutdown: &CancellationToken,
) -> Result<(), ConnectorError> {
    let name = source.name.as_str();
    let addr: SocketAddr = source
        .listen
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|e| {
            ConnectorError::Config(format!(
                "source {name}: listen {:?}: {e}; use host:port",
                source.listen.as_deref().unwrap_or_default()
            ))
        })?;
    let hook = Webhook::open(source, env)
        .await?
        .with_health(tracker.clone(), env.metrics.clone());
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        ConnectorError::Config(format!("source {name}: cannot listen on {addr}: {e}"))
    })?;
    tracing::info!(source = name, %addr, path = WEBHOOK_PATH, "Meta webhooks listening");
    tracker.ok();
    tracker.cursor(format!("listening on {addr}"));
    tracker.save();
    serve(listener, Arc::new(hook), shutdown.clone())
        .await
        .map_err(|e| ConnectorError::Config(format!("source {name}: serving on {addr}: {e}")))?;
    tracker.save();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_against_the_body() {
        // echo -n '{"a":1}' | openssl dgst -sha256 -hmac s3cret
        let body = br#"{"a":1}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(signature_matches(b"s3cret", &format!("sha256={hex}"), body));
        assert!(!signature_matches(b"other", &format!("sha256={hex}"), body));
        assert!(!signature_matches(
            b"s3cret",
            &format!("sha256={hex}"),
            b"{\"a\":2}"
        ));
        assert!(!signature_matches(b"s3cret", &format!("sha1={hex}"), body));
        assert!(!signature_matches(b"s3cret", "sha256=zz", body));
        assert!(!signature_matches(
            b"s3cret",
            &format!("sha256={}", &hex[1..]),
            body
        ));
    }

    #[test]
    fn a_missing_secret_is_named() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let e = Secrets::from_lookup(env(&[(VERIFY_TOKEN_ENV, "v")])).unwrap_err();
        assert!(e.to_string().contains(APP_SECRET_ENV), "{e}");
        let e = Secrets::from_lookup(env(&[(APP_SECRET_ENV, "s")])).unwrap_err();
        assert!(e.to_string().contains(VERIFY_TOKEN_ENV), "{e}");
        let s = Secrets::from_lookup(env(&[
            (APP_SECRET_ENV, "topsecret-app"),
            (VERIFY_TOKEN_ENV, "topsecret-verify"),
            (ACCESS_TOKEN_ENV, "topsecret-graph"),
        ]))
        .unwrap();
        assert_eq!(s.access_token.as_deref(), Some("topsecret-graph"));
        assert!(!format!("{s:?}").contains("topsecret"), "{s:?}");
        let s =
            Secrets::from_lookup(env(&[(APP_SECRET_ENV, "a"), (VERIFY_TOKEN_ENV, "v")])).unwrap();
        assert_eq!((s.app_secret.as_str(), s.access_token), ("a", None));
    }

    #[test]
    fn meta_times_in_each_form() {
        let t = DateTime::parse_from_rfc3339("2026-11-27T08:00:00Z")
            .unwrap()
            .to_utc();
        for v in [
            json!(1_795_766_400),
            json!(1_795_766_400_000i64),
            json!("1795766400"),
            json!("2026-11-27T08:00:00+0000"),
            json!("2026-11-27T08:00:00Z"),
        ] {
            assert_eq!(meta_time(&v), Some(t), "{v}");
        }
        assert_eq!(meta_time(&json!("yesterday")), None);
    }

    #[test]
    fn comments_and_feed_changes_become_mentions() {
        let now = Utc::now();
        let when = DateTime::from_timestamp(1_795_766_400, 0).unwrap();
        let ig = instagram_comment(
            &json!({"from": {"id": "17841", "username": "rina"}, "media": {"id": "m1",
                "media_product_type": "FEED"}, "id": "c1", "parent_id": "c0", "text": "NusaPay lemot"}),
            when,
            now,
        )
        .unwrap()
        .unwrap();
        assert_eq!((ig.id.as_str(), ig.platform.as_str()), ("c1", "instagram"));
        assert_eq!(
            (ig.author.id.as_str(), ig.author.handle.as_str()),
            ("17841", "rina")
        );
        assert_eq!(
            (
                ig.parent_id.as_deref(),
                ig.thread_id.as_deref(),
                ig.created_at
            ),
            (Some("c0"), Some("m1"), when)
        );
        let fb = facebook_feed(
            &json!({"from": {"id": "u9", "name": "Budi"}, "item": "comment", "verb": "add",
                "post_id": "p_1", "comment_id": "p_1c", "parent_id": "p_1",
                "message": "kapan refund?", "created_time": 1_795_766_460}),
            when,
            now,
        )
        .unwrap()
        .unwrap();
        assert_eq!((fb.id.as_str(), fb.platform.as_str()), ("p_1c", "facebook"));
        assert_eq!(fb.url.as_deref(), Some("https://www.facebook.com/p_1c"));
        assert_eq!(fb.created_at.timestamp(), 1_795_766_460);
        assert_eq!(
            (fb.parent_id.as_deref(), fb.thread_id.as_deref()),
            (Some("p_1"), Some("p_1"))
        );
        let removed = json!({"from": {"id": "u9"}, "item": "comment", "verb": "remove",
            "comment_id": "x", "post_id": "p", "message": "t"});
        assert_eq!(facebook_feed(&removed, when, now), Ok(None));
        let reaction =
            json!({"item": "reaction", "verb": "add", "post_id": "p", "reaction_type": "like"});
        assert_eq!(facebook_feed(&reaction, when, now), Ok(None));
        let anonymous = json!({"item": "post", "verb": "add", "post_id": "p", "message": "hi"});
        assert!(matches!(
            facebook_feed(&anonymous, when, now),
            Err(Unmapped::Dead {
                reason: "schema",
                ..
            })
        ));
        assert!(matches!(
            instagram_comment(&json!({"id": "c"}), when, now),
            Err(Unmapped::Dead {
                reason: "schema",
                ..
            })
        ));
    }
}
