//! The Mastodon connector: polls the public hashtag timelines of an instance
//! (`GET /api/v1/timelines/tag/:hashtag`, anonymous, or with an access token from
//! `GEMA_MASTODON_TOKEN` where the instance requires one) and sends each new status to the raw
//! topic as a mention (`platform: mastodon`).
//!
//! - A status becomes: `id` its `uri` (the same post seen through two instances is one
//!   mention), `text` its content without HTML (a content warning is kept in front), `author`
//!   its account (`acct` with the instance's host when local, followers), `url`, `lang`,
//!   `parent_id` (`in_reply_to_id`) and `metrics` (favourites, boosts, replies). Boosts are
//!   skipped: the boosted post is a mention of its own.
//! - The newest status id per instance and tag is kept in a state file, and each poll asks only
//!   for newer ones (`since_id`, up to [`MAX_PAGES`] pages of 40). The id moves on only after Kafka
//!   stored every new status, so a failed send is retried at the next poll.
//! - An instance or tag that fails is reported with its URL and the reason; the others are still
//!   polled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Map;

use super::http::Failure;
use super::{html_to_text, load_state, save_state, ConnectorError, Outlet, SourceReport};
use crate::kafka::KafkaConfig;
use crate::kafka::Topics;
use crate::mention::{Author, Mention, Metrics};

/// Most pages of 40 statuses fetched per tag and poll (older ones are left behind).
pub const MAX_PAGES: usize = 5;
const PAGE: usize = 40;

/// The fields of a Mastodon `Status` that a mention needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    pub id: String,
    pub uri: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub in_reply_to_id: Option<String>,
    #[serde(default)]
    pub spoiler_text: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub replies_count: u32,
    #[serde(default)]
    pub reblogs_count: u32,
    #[serde(default)]
    pub favourites_count: u32,
    #[serde(default)]
    pub reblog: Option<serde_json::Value>,
    pub account: Account,
}

/// The fields of a Mastodon `Account` that a mention needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    pub id: String,
    pub acct: String,
    #[serde(default)]
    pub followers_count: Option<u64>,
}

/// The mention for `status` read from the instance at `host`; `None` for a boost or a status
/// with no text.
pub fn status_mention(host: &str, status: &Status, now: DateTime<Utc>) -> Option<Mention> {
    if status.reblog.is_some() {
        return None;
    }
    let body = html_to_text(&status.content);
    let warning = html_to_text(&status.spoiler_text);
    let text = match (warning.is_empty(), body.is_empty()) {
        (true, _) => body,
        (false, true) => warning,
        (false, false) => format!("{warning}: {body}"),
    };
    if text.is_empty() {
        return None;
    }
    let acct = if status.account.acct.contains('@') {
        status.account.acct.clone()
    } else {
        format!("{}@{host}", status.account.acct)
    };
    Some(Mention {
        id: status.uri.clone(),
        platform: "mastodon".into(),
        text,
        created_at: status.created_at,
        author: Author {
            id: acct.clone(),
            handle: acct,
            followers: status.account.followers_count,
        },
        url: status.url.clone(),
        lang: status.language.clone(),
        parent_id: status.in_reply_to_id.clone(),
        thread_id: None,
        metrics: Some(Metrics {
            likes: status.favourites_count,
            reposts: status.reblogs_count,
            replies: status.replies_count,
        }),
        ingested_at: Some(now),
        extra: Map::new(),
    })
}

/// Polls hashtag timelines of one instance into Kafka.
pub struct Poller {
    out: Outlet,
    instance: reqwest::Url,
    token: Option<String>,
    state: PathBuf,
    /// `<host>#<tag>` → newest status id sent.
    newest: BTreeMap<String, String>,
}

impl Poller {
    /// A poller for `instance` (e.g. `https://mastodon.social`) sending to `topics.raw`, with its
    /// state in `state` and an optional access token.
    pub async fn new(
        config: &KafkaConfig,
        topics: &Topics,
        instance: &str,
        token: Option<String>,
        state: &Path,
    ) -> Result<Poller, ConnectorError> {
        let instance = reqwest::Url::parse(instance)
            .ok()
            .filter(|u| u.host_str().is_some() && matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                ConnectorError::Config(format!("instance URL {instance:?}: use https://host"))
            })?;
        let newest = load_state(state)?;
        Ok(Poller {
            out: Outlet::new(config, topics, "Mastodon connector").await?,
            instance,
            token,
            state: state.to_path_buf(),
            newest,
        })
    }

    fn host(&self) -> String {
        self.instance.host_str().unwrap_or_default().to_string()
    }

    /// The timeline URL of `tag` (see [`tag_url`]).
    pub fn tag_url(&self, tag: &str) -> String {
        tag_url(&self.instance, tag)
    }

    /// Where it stands, for `gema sources`: the newest status id per instance and tag.
    pub fn cursor(&self) -> String {
        self.newest
            .iter()
            .map(|(k, id)| format!("{k} > {id}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Fetches each tag's new statuses and sends them; saves the state after each tag.
    pub async fn poll(&mut self, tags: &[String]) -> Result<Vec<SourceReport>, ConnectorError> {
        let mut reports = Vec::with_capacity(tags.len());
        for tag in tags {
            let url = self.tag_url(tag);
            let key = tag_key(&self.host(), tag);
            let mut report = SourceReport::new(url.clone());
            let since = self.newest.get(&key).map(String::as_str);
            match fetch_new(&self.out, &url, self.token.as_deref(), since).await {
                Ok(mut statuses) => {
                    // Oldest first, so the newest id only moves past what Kafka stored.
                    statuses.sort_by(|a, b| by_id(&a.id, &b.id));
                    let now = Utc::now();
                    let host = self.host();
                    for s in &statuses {
                        if let Some(m) = status_mention(&host, s, now) {
                            if let Err(e) = self.out.send(&m).await {
                                report.error = Some(e);
                                break;
                            }
                            report.sent += 1;
                        }
                        self.newest.insert(key.clone(), s.id.clone());
                    }
                    self.save()?;
                }
                Err(e) => report.error = Some(e.within(&url)),
            }
            reports.push(report);
        }
        Ok(reports)
    }

    fn save(&self) -> Result<(), ConnectorError> {
        save_state(&self.state, &self.newest)
    }
}

/// The timeline URL of `tag` on `instance` (`#` optional; hashtags are case-insensitive on
/// Mastodon).
pub fn tag_url(instance: &reqwest::Url, tag: &str) -> String {
    let mut url = instance.clone();
    url.set_path(&format!("/api/v1/timelines/tag/{}", bare_tag(tag)));
    url.to_string()
}

/// `tag` as Mastodon names it: without `#`, lower case.
pub fn bare_tag(tag: &str) -> String {
    tag.trim().trim_start_matches('#').to_lowercase()
}

/// The key of `tag` on the instance at `host` in a state file: `<host>#<tag>`.
pub fn tag_key(host: &str, tag: &str) -> String {
    format!("{host}#{}", bare_tag(tag))
}

/// The statuses of the timeline at `url` newer than `since`, newest first (every page up to
/// [`MAX_PAGES`]); without `since`, only the newest page. `token`, when given, is sent as a
/// bearer token.
pub async fn fetch_new(
    out: &Outlet,
    url: &str,
    token: Option<&str>,
    since: Option<&str>,
) -> Result<Vec<Status>, Failure> {
    let mut all: Vec<Status> = Vec::new();
    let mut max_id: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut req = out.http.get(url).query(&[("limit", PAGE.to_string())]);
        if let Some(s) = since {
            req = req.query(&[("since_id", s)]);
        }
        if let Some(m) = &max_id {
            req = req.query(&[("max_id", m)]);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let page: Vec<Status> = out.fetch_json(req, "list of Mastodon statuses").await?;
        let full = page.len() >= PAGE;
        max_id = page.iter().map(|s| s.id.clone()).min_by(|a, b| by_id(a, b));
        all.extend(page);
        if !full || since.is_none() {
            break;
        }
    }
    Ok(all)
}

/// Mastodon ids are decimal strings that grow with time: compare by length, then text (as
/// numbers, however long). X's tweet ids compare the same way.
pub fn by_id(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: serde_json::Value) -> Status {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_status_becomes_a_valid_mention_and_boosts_are_skipped() {
        let s = status(serde_json::json!({
            "id": "113500000000000001", "uri": "https://mastodon.social/users/budi/statuses/1",
            "created_at": "2026-11-27T08:00:00.000Z", "in_reply_to_id": null,
            "spoiler_text": "", "content": "<p>NusaPay <a href=\"x\">#down</a> lagi, saldo hilang</p>",
            "url": "https://mastodon.social/@budi/1", "language": "id",
            "replies_count": 2, "reblogs_count": 5, "favourites_count": 7, "reblog": null,
            "account": {"id": "1", "username": "budi", "acct": "budi", "followers_count": 120}
        }));
        let m = status_mention("mastodon.social", &s, Utc::now()).unwrap();
        assert_eq!(m.id, "https://mastodon.social/users/budi/statuses/1");
        assert_eq!(m.text, "NusaPay #down lagi, saldo hilang");
        assert_eq!(m.author.handle, "budi@mastodon.social");
        assert_eq!(m.author.followers, Some(120));
        assert_eq!(m.metrics.unwrap().reposts, 5);
        assert_eq!(m.lang.as_deref(), Some("id"));
        Mention::parse(&serde_json::to_vec(&m).unwrap()).unwrap();

        let mut boost = s.clone();
        boost.reblog = Some(serde_json::json!({"id": "9"}));
        assert!(status_mention("mastodon.social", &boost, Utc::now()).is_none());
        let mut warned = s;
        warned.spoiler_text = "kesel".into();
        warned.account.acct = "sari@other.example".into();
        let m = status_mention("mastodon.social", &warned, Utc::now()).unwrap();
        assert!(m.text.starts_with("kesel: NusaPay"), "{}", m.text);
        assert_eq!(m.author.handle, "sari@other.example");
    }

    #[test]
    fn ids_compare_as_numbers() {
        assert_eq!(by_id("99", "100"), std::cmp::Ordering::Less);
        assert_eq!(by_id("101", "100"), std::cmp::Ordering::Greater);
    }
}
