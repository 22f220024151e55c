//! The Reddit connector: polls subreddits and searches through Reddit's OAuth API as an
//! application (app-only OAuth: `POST /api/v1/access_token` with `grant_type=client_credentials`
//! and HTTP basic auth from `GEMA_REDDIT_CLIENT_ID` / `GEMA_REDDIT_CLIENT_SECRET`) and sends each
//! new post and comment to the raw topic as a mention (`platform: reddit`).
//!
//! - `follow` entries: `r/<name>` reads the subreddit's new posts (`GET /r/<name>/new`) and new
//!   comments (`GET /r/<name>/comments`); anything else is a search query for posts
//!   (`GET /search?q=…&sort=new&type=link`). Reddit's public API has no comment search, so a
//!   query finds posts only; follow the subreddit to get its comments.
//! - A post (`t3`) becomes: `id` its fullname (`t3_…`), `text` its title and self text, `url`
//!   `https://www.reddit.com` + its permalink, `thread_id` itself, `metrics` score (likes) and
//!   comment count (replies). A comment (`t1`) becomes: `id` its fullname, `text` its body,
//!   `parent_id` its parent's fullname, `thread_id` its post (`link_id`), `metrics` its score.
//!   Comments whose body is `[deleted]` or `[removed]` are skipped (a post whose self text is
//!   removed keeps its title).
//! - Per listing (a subreddit's posts, its comments, a search) the newest `created_utc` sent and
//!   the fullnames sent at that second are kept in a state file. Listings are newest first; each
//!   poll reads pages (`after`) until one reaches an item already sent, at most [`MAX_PAGES`] of
//!   100 (the first poll of a listing reads one). The cursor moves only past items Kafka stored,
//!   so a restart neither repeats nor skips.
//! - The token is kept until a minute before it expires; a 401 fetches a new one once, and a
//!   second 401 (or a refused token request) means the client id / secret are refused: the source
//!   stops naming both variables. A 429 waits as `Retry-After` / `X-Ratelimit-Reset` ask; when an
//!   answer says at most 1 request is left in the window (`X-Ratelimit-Remaining`), the round
//!   ends there with a rate limit lasting until `X-Ratelimit-Reset`. A listing cut short by a
//!   rate limit sends nothing and keeps its cursor, so the next poll reads it whole.
//! - Requests carry a user agent of the form Reddit asks for:
//!   `<platform>:gema:<version> (self-hosted)`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, USER_AGENT};
use serde::Deserialize;
use serde_json::Map;

use super::cursor::TimeCursor;
use super::http::{wait_secs, Failure, FailureKind, DEFAULT_RATE_LIMIT_WAIT};
use super::{load_state, save_state, ConnectorError, Outlet, SourceReport};
use crate::kafka::KafkaConfig;
use crate::kafka::Topics;
use crate::mention::{Author, Mention, Metrics};

/// Env var with the Reddit app's client id.
pub const CLIENT_ID_ENV: &str = super::env::REDDIT_CLIENT_ID;
/// Env var with the Reddit app's client secret.
pub const CLIENT_SECRET_ENV: &str = super::env::REDDIT_CLIENT_SECRET;
/// The OAuth API base; with it, tokens come from `https://www.reddit.com/api/v1/access_token`.
pub const DEFAULT_API: &str = "https://oauth.reddit.com";
/// Most pages of 100 items read per listing and poll.
pub const MAX_PAGES: usize = 5;
const PER_PAGE: &str = "100";
/// How long before its expiry a token is replaced.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// Where the token for `api` comes from: Reddit's own endpoint for the public API, else the
/// same host's `/api/v1/access_token`.
pub fn token_url(api: &str) -> String {
    let api = api.trim_end_matches('/');
    if api == DEFAULT_API {
        "https://www.reddit.com/api/v1/access_token".into()
    } else {
        format!("{api}/api/v1/access_token")
    }
}

/// The user agent Reddit's API rules ask for: `<platform>:<app id>:<version> (<contact>)`.
pub fn user_agent() -> String {
    format!(
        "{}:gema:{} (self-hosted)",
        std::env::consts::OS,
        env!("CARGO_PKG_VERSION")
    )
}

#[derive(Debug, Deserialize)]
struct Listing {
    data: ListingData,
}

#[derive(Debug, Deserialize)]
struct ListingData {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    children: Vec<Thing>,
}

/// A listing's child: `kind` `t3` (a post) or `t1` (a comment) and its data.
#[derive(Debug, Clone, Deserialize)]
pub struct Thing {
    pub kind: String,
    pub data: Item,
}

/// The fields of a post or comment that a mention needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Item {
    pub id: String,
    /// The fullname, `t3_<id>` or `t1_<id>`.
    pub name: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub selftext: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub author_fullname: Option<String>,
    pub created_utc: f64,
    #[serde(default)]
    pub permalink: Option<String>,
    #[serde(default)]
    pub link_id: Option<String>,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub score: i64,
    #[serde(default)]
    pub num_comments: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Whether a body is what Reddit shows for a deleted or removed one.
fn gone(text: &str) -> bool {
    matches!(text.trim(), "[deleted]" | "[removed]")
}

/// The mention for a post or comment; `None` for a deleted or removed comment, or an item with
/// no text.
pub fn thing_mention(thing: &Thing, now: DateTime<Utc>) -> Option<Mention> {
    let d = &thing.data;
    let (text, parent, thread, replies) = match thing.kind.as_str() {
        "t3" => {
            let title = d.title.as_deref().unwrap_or_default().trim();
            let body = d
                .selftext
                .as_deref()
                .map(str::trim)
                .filter(|b| !b.is_empty() && !gone(b));
            let text = match body {
                Some(b) if !title.is_empty() => format!("{title}\n\n{b}"),
                Some(b) => b.to_string(),
                None => title.to_string(),
            };
            (
                text,
                None,
                Some(d.name.clone()),
                d.num_comments.unwrap_or(0),
            )
        }
        "t1" => {
            let body = d.body.as_deref().map(str::trim).unwrap_or_default();
            if gone(body) {
                return None;
            }
            (body.to_string(), d.parent_id.clone(), d.link_id.clone(), 0)
        }
        _ => return None,
    };
    if text.is_empty() {
        return None;
    }
    let handle = d.author.clone().filter(|a| !a.is_empty())?;
    let created_at = DateTime::from_timestamp(d.created_utc as i64, 0)?;
    Some(Mention {
        id: d.name.clone(),
        platform: "reddit".into(),
        text,
        created_at,
        author: Author {
            id: d
                .author_fullname
                .clone()
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| handle.clone()),
            handle,
            followers: None,
        },
        url: d
            .permalink
            .as_ref()
            .map(|p| format!("https://www.reddit.com{p}")),
        lang: None,
        parent_id: parent,
        thread_id: thread,
        metrics: Some(Metrics {
            likes: d.score.clamp(0, u32::MAX as i64) as u32,
            reposts: 0,
            replies,
        }),
        ingested_at: Some(now),
        extra: Map::new(),
    })
}

/// The subreddit name in a `r/<name>` follow entry (letters, digits, `_`); `None` for a
/// search query.
pub fn subreddit(follow: &str) -> Option<Result<String, String>> {
    let f = follow.trim();
    let name = f.strip_prefix("/r/").or_else(|| f.strip_prefix("r/"))?;
    let name = name.trim_end_matches('/');
    let ok = (2..=21).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    Some(match ok {
        true => Ok(name.to_string()),
        false => Err(format!(
            "{follow:?} is not a subreddit: use r/<name> with 2 to 21 letters, digits or '_'"
        )),
    })
}

/// When an answer says at most one request is left in the window: the wait until it resets
/// (`X-Ratelimit-Reset` seconds).
pub fn nearly_spent(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let remaining = get("x-ratelimit-remaining")?;
    if remaining > 1.0 {
        return None;
    }
    Some(get("x-ratelimit-reset").map_or(DEFAULT_RATE_LIMIT_WAIT, wait_secs))
}

/// One listing to read: its state key, path and query.
struct ListingRef {
    key: String,
    path: String,
    query: Vec<(&'static str, String)>,
}

/// Polls Reddit listings into Kafka.
pub struct Poller {
    out: Outlet,
    api: String,
    token_url: String,
    client_id: String,
    client_secret: String,
    user_agent: String,
    token: Option<(String, Instant)>,
    path: PathBuf,
    /// Listing key (`r/<name>/new`, `r/<name>/comments`, `search:<query>`) → its cursor.
    cursors: BTreeMap<String, TimeCursor>,
}

impl Poller {
    /// Where it stands, for `gema sources`: per listing, the newest item time sent.
    pub fn cursor(&self) -> String {
        super::cursor::describe(self.cursors.iter().map(|(k, c)| (k, c.newest())))
    }

    /// A poller asking `api` (e.g. `https://oauth.reddit.com`, tokens from [`token_url`]) as the
    /// app `client_id` / `client_secret`, sending to `topics.raw`, with its state in `state`.
    pub async fn new(
        config: &KafkaConfig,
        topics: &Topics,
        api: &str,
        client_id: String,
        client_secret: String,
        state: &Path,
    ) -> Result<Poller, ConnectorError> {
        if client_id.trim().is_empty() || client_secret.trim().is_empty() {
            return Err(ConnectorError::Config(format!(
                "the Reddit connector needs an app's client id in {CLIENT_ID_ENV} and its secret \
                 in {CLIENT_SECRET_ENV}"
            )));
        }
        let cursors = load_state(state)?;
        Ok(Poller {
            out: Outlet::new(config, topics, "Reddit connector").await?,
            api: api.trim_end_matches('/').to_string(),
            token_url: token_url(api),
            client_id,
            client_secret,
            user_agent: user_agent(),
            token: None,
            path: state.to_path_buf(),
            cursors,
        })
    }

    /// Polls each followed subreddit or search once and sends its new posts and comments; saves
    /// the state after each. A refused credential or a spent rate-limit window ends the round:
    /// the entries not yet polled get the same failure.
    pub async fn poll(&mut self, follow: &[String]) -> Result<Vec<SourceReport>, ConnectorError> {
        let mut reports = Vec::with_capacity(follow.len());
        let mut ended: Option<Failure> = None;
        for f in follow {
            let mut report = SourceReport::new(f.clone());
            if let Some(end) = &ended {
                report.error = Some(end.clone());
                reports.push(report);
                continue;
            }
            let listings = match subreddit(f) {
                Some(Err(e)) => {
                    report.error = Some(Failure::malformed(e));
                    reports.push(report);
                    continue;
                }
                Some(Ok(name)) => vec![
                    ListingRef {
                        key: format!("r/{name}/new"),
                        path: format!("/r/{name}/new"),
                        query: Vec::new(),
                    },
                    ListingRef {
                        key: format!("r/{name}/comments"),
                        path: format!("/r/{name}/comments"),
                        query: Vec::new(),
                    },
                ],
                None => vec![ListingRef {
                    key: format!("search:{f}"),
                    path: "/search".into(),
                    query: vec![
                        ("q", f.clone()),
                        ("sort", "new".into()),
                        ("type", "link".into()),
                    ],
                }],
            };
            for l in &listings {
                self.poll_listing(l, &mut report).await;
                if report.error.as_ref().is_some_and(Failure::ends_round) {
                    break;
                }
            }
            save_state(&self.path, &self.cursors)?;
            ended = report.error.clone().filter(Failure::ends_round);
            reports.push(report);
        }
        Ok(reports)
    }

    async fn poll_listing(&mut self, l: &ListingRef, report: &mut SourceReport) {
        let known = self.cursors.get(&l.key).cloned();
        let (mut things, limited) = match self.fetch_new(l, known.as_ref()).await {
            Ok(read) => read,
            Err(e) => {
                report.error = Some(e.within(&format!("{}{}", self.api, l.path)));
                return;
            }
        };
        things.sort_by(|a, b| {
            (a.data.created_utc as i64, &a.data.name)
                .cmp(&(b.data.created_utc as i64, &b.data.name))
        });
        let mut cursor = known.unwrap_or_default();
        let now = Utc::now();
        for t in &things {
            let at = t.data.created_utc as i64;
            if !cursor.is_new(at, &t.data.name) {
                continue;
            }
            if let Some(m) = thing_mention(t, now) {
                if let Err(e) = self.out.send(&m).await {
                    report.error = Some(e);
                    break;
                }
                report.sent += 1;
            }
            cursor.record(at, &t.data.name);
        }
        self.cursors.insert(l.key.clone(), cursor);
        if let Some(f) = limited {
            report.error = Some(f.within(&format!("{}{}", self.api, l.path)));
        }
    }

    /// The items of `l` newer than `known` (every page back to one that reaches it, at most
    /// [`MAX_PAGES`]; one page on the first poll), and a rate-limit failure when the window is
    /// nearly spent. A window spent before the listing was read whole is an error: nothing of
    /// it is sent.
    async fn fetch_new(
        &mut self,
        l: &ListingRef,
        known: Option<&TimeCursor>,
    ) -> Result<(Vec<Thing>, Option<Failure>), Failure> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = l.query.clone();
            query.push(("limit", PER_PAGE.into()));
            query.push(("raw_json", "1".into()));
            if let Some(a) = &after {
                query.push(("after", a.clone()));
            }
            let (listing, low) = self.get_listing(&l.path, &query).await?;
            let reached = known.is_none_or(|k| {
                listing
                    .data
                    .children
                    .iter()
                    .any(|t| !k.is_new(t.data.created_utc as i64, &t.data.name))
            });
            all.extend(listing.data.children);
            after = listing.data.after.filter(|a| !a.is_empty());
            let done = reached || after.is_none();
            if let Some(wait) = low {
                let f = Failure::new(
                    FailureKind::RateLimited(wait),
                    format!(
                        "Reddit rate limit nearly spent (X-Ratelimit-Remaining ≤ 1); waiting {} s",
                        wait.as_secs()
                    ),
                );
                return match done {
                    true => Ok((all, Some(f))),
                    false => Err(f),
                };
            }
            if done {
                break;
            }
        }
        Ok((all, None))
    }

    /// GETs a listing with the app's token (a new one once after a 401); returns it and the
    /// wait when the rate-limit window is nearly spent.
    async fn get_listing(
        &mut self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(Listing, Option<Duration>), Failure> {
        let mut refreshed = false;
        loop {
            let token = self.token().await?;
            let req = self
                .out
                .http
                .get(format!("{}{path}", self.api))
                .query(query)
                .bearer_auth(&token)
                .header(USER_AGENT, &self.user_agent);
            let resp = req
                .send()
                .await
                .map_err(|e| Failure::transient(format!("fetching: {}", e.without_url())))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            if status == reqwest::StatusCode::UNAUTHORIZED && !refreshed {
                self.token = None;
                refreshed = true;
                continue;
            }
            if status == reqwest::StatusCode::FORBIDDEN {
                // The app's token works (a refused one is 401): this listing is closed to it
                // (a private, quarantined or banned subreddit). That entry fails, not the source.
                return Err(Failure {
                    status: Some(403),
                    ..Failure::transient(format!(
                        "HTTP {status} (a private, quarantined or banned subreddit?)"
                    ))
                });
            }
            if !status.is_success() {
                let f = Failure::from_status(status, &headers);
                return Err(match refreshed && f.is_denied() {
                    true => Failure {
                        message: format!("{} (with a fresh token)", f.message),
                        ..f
                    },
                    false => f,
                });
            }
            let body = resp
                .bytes()
                .await
                .map_err(|e| Failure::transient(format!("reading: {}", e.without_url())))?;
            let listing: Listing = serde_json::from_slice(&body)
                .map_err(|e| Failure::malformed(format!("not a Reddit listing: {e}")))?;
            return Ok((listing, nearly_spent(&headers)));
        }
    }

    /// The app's access token: the cached one until shortly before it expires, else a new one
    /// from the token endpoint.
    async fn token(&mut self) -> Result<String, Failure> {
        if let Some((t, until)) = &self.token {
            if Instant::now() < *until {
                return Ok(t.clone());
            }
        }
        let what = format!("token from {}", self.token_url);
        let req = self
            .out
            .http
            .post(&self.token_url)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .header(USER_AGENT, &self.user_agent)
            .form(&[("grant_type", "client_credentials")]);
        let body = self.out.fetch(req).await.map_err(|e| e.within(&what))?;
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| Failure::malformed(format!("{what}: not a token answer: {e}")))?;
        match (answer.access_token.filter(|t| !t.is_empty()), answer.error) {
            (Some(t), _) => {
                let life = Duration::from_secs(answer.expires_in.unwrap_or(3600));
                self.token = Some((
                    t.clone(),
                    Instant::now() + life.saturating_sub(TOKEN_MARGIN),
                ));
                Ok(t)
            }
            (None, Some(e)) => Err(Failure::new(
                FailureKind::Denied,
                format!("{what}: Reddit refused the app credentials ({e})"),
            )),
            (None, None) => Err(Failure::malformed(format!(
                "{what}: the answer has no access_token"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thing(v: serde_json::Value) -> Thing {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn posts_and_comments_become_valid_mentions_and_removed_ones_are_skipped() {
        let now = Utc::now();
        let post = thing(serde_json::json!({"kind": "t3", "data": {
            "id": "1h2abc", "name": "t3_1h2abc", "title": "NusaPay down?", "selftext": "Saldo hilang",
            "author": "budi", "author_fullname": "t2_budi", "created_utc": 1795766400.0,
            "permalink": "/r/indonesia/comments/1h2abc/nusapay_down/", "subreddit": "indonesia",
            "score": 12, "num_comments": 3, "over_18": false}}));
        let m = thing_mention(&post, now).unwrap();
        assert_eq!(m.id, "t3_1h2abc");
        assert_eq!(m.text, "NusaPay down?\n\nSaldo hilang");
        assert_eq!(
            m.url.as_deref(),
            Some("https://www.reddit.com/r/indonesia/comments/1h2abc/nusapay_down/")
        );
        assert_eq!(
            (m.author.id.as_str(), m.author.handle.as_str()),
            ("t2_budi", "budi")
        );
        assert_eq!(
            (m.metrics.unwrap().likes, m.metrics.unwrap().replies),
            (12, 3)
        );
        assert_eq!(m.created_at.timestamp(), 1795766400);
        Mention::parse(&serde_json::to_vec(&m).unwrap()).unwrap();

        let comment = thing(serde_json::json!({"kind": "t1", "data": {
            "id": "m1", "name": "t1_m1", "body": "same, kecewa", "author": "sari",
            "created_utc": 1795766460.0, "permalink": "/r/indonesia/comments/1h2abc/x/m1/",
            "link_id": "t3_1h2abc", "parent_id": "t3_1h2abc", "score": -2}}));
        let c = thing_mention(&comment, now).unwrap();
        assert_eq!(c.parent_id.as_deref(), Some("t3_1h2abc"));
        assert_eq!(c.thread_id.as_deref(), Some("t3_1h2abc"));
        assert_eq!(c.metrics.unwrap().likes, 0);
        Mention::parse(&serde_json::to_vec(&c).unwrap()).unwrap();

        let mut removed = comment.clone();
        removed.data.body = Some("[removed]".into());
        assert!(thing_mention(&removed, now).is_none());
        let mut title_only = post;
        title_only.data.selftext = Some("[deleted]".into());
        assert_eq!(
            thing_mention(&title_only, now).unwrap().text,
            "NusaPay down?"
        );
    }

    #[test]
    fn follow_entries_token_urls_and_the_nearly_spent_window() {
        assert_eq!(subreddit("r/indonesia"), Some(Ok("indonesia".into())));
        assert_eq!(subreddit("/r/Indonesia/"), Some(Ok("Indonesia".into())));
        assert!(subreddit("r/no spaces").unwrap().is_err());
        assert_eq!(subreddit("nusapay error"), None);
        assert_eq!(
            token_url("https://oauth.reddit.com/"),
            "https://www.reddit.com/api/v1/access_token"
        );
        assert_eq!(
            token_url("http://127.0.0.1:9"),
            "http://127.0.0.1:9/api/v1/access_token"
        );
        assert!(user_agent().contains(":gema:"));
        let h = |remaining: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-ratelimit-remaining", remaining.parse().unwrap());
            h.insert("x-ratelimit-reset", "42".parse().unwrap());
            h
        };
        assert_eq!(nearly_spent(&h("1.0")), Some(Duration::from_secs(42)));
        assert_eq!(nearly_spent(&h("0")), Some(Duration::from_secs(42)));
        assert_eq!(nearly_spent(&h("57.0")), None);
        assert_eq!(nearly_spent(&HeaderMap::new()), None);
    }
}
