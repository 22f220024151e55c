//! The RSS / Atom connector (news): polls feeds over HTTP and sends each new item to the raw
//! topic as a mention (`platform: rss`). Parsing is `feed-rs` (RSS 0.9–2.0, Atom, JSON Feed).
//!
//! - An item becomes: `id` its guid / Atom id (prefixed with the feed's host unless it is already
//!   a URL or URN), `text` its title and summary with HTML removed, `created_at` its published
//!   (else updated) time, else the time it was first seen, `author` the feed (id: host, handle:
//!   the feed's title), `url` its first link, `lang` the feed's language.
//! - Items already sent are remembered in a state file (the newest [`MAX_SEEN`] ids), so a poll
//!   sends only new ones and a restart does not resend. An id is remembered only after Kafka
//!   stored its mention: a failed send is retried at the next poll.
//! - A feed that cannot be fetched or parsed is reported with its URL and the reason; the
//!   others are still polled, and the next poll tries it again.
//! - Polls are conditional GETs: the feed's `ETag` and `Last-Modified` are kept in the state
//!   file and sent back (`If-None-Match`, `If-Modified-Since`), so an unchanged feed answers
//!   `304 Not Modified` with no body.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use feed_rs::model::{Entry, Feed};
use serde_json::Map;

use super::http::Failure;
use super::{cut, html_to_text, load_state, save_state, ConnectorError, Outlet};
use crate::kafka::KafkaConfig;
use crate::kafka::Topics;
use crate::mention::{Author, Mention, MAX_TEXT_BYTES};

/// Most item ids remembered in the state file.
pub const MAX_SEEN: usize = 50_000;
/// Longest mention text taken from an item, in bytes (long articles are cut at a char boundary).
const MAX_ITEM_TEXT: usize = 4_000;
const _: () = assert!(
    MAX_ITEM_TEXT <= MAX_TEXT_BYTES,
    "an item's text must pass mention validation"
);

/// What one poll did with one feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedReport {
    pub url: String,
    /// Items in the feed.
    pub items: usize,
    /// New items sent to Kafka.
    pub sent: usize,
    /// Why the feed, or some of its items, could not be taken.
    pub error: Option<Failure>,
    /// The feed answered 304 Not Modified (nothing new since the last poll).
    pub unchanged: bool,
}

/// A feed's validators from its last answer, sent back on the next poll.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Validators {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

/// The state file: ids already sent (oldest first) and each feed's validators. A file written
/// before validators were kept (a bare list of ids) still loads.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum StateFile {
    Full {
        seen: Vec<String>,
        #[serde(default)]
        validators: BTreeMap<String, Validators>,
    },
    Ids(Vec<String>),
}

impl Default for StateFile {
    fn default() -> Self {
        StateFile::Ids(Vec::new())
    }
}

/// Ids already sent, oldest first, and each feed's validators, persisted as JSON.
#[derive(Debug, Default)]
pub struct Seen {
    order: VecDeque<String>,
    set: HashSet<String>,
    /// Feed URL → its last validators.
    pub validators: BTreeMap<String, Validators>,
}

impl Seen {
    /// Reads the state file; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<Seen, ConnectorError> {
        let (ids, validators) = match load_state::<StateFile>(path)? {
            StateFile::Full { seen, validators } => (seen, validators),
            StateFile::Ids(ids) => (ids, BTreeMap::new()),
        };
        let mut seen = Seen {
            validators,
            ..Seen::default()
        };
        for id in ids {
            seen.insert(id);
        }
        Ok(seen)
    }

    /// Writes the state file, oldest id first.
    pub fn save(&self, path: &Path) -> Result<(), ConnectorError> {
        save_state(
            path,
            &StateFile::Full {
                seen: self.order.iter().cloned().collect(),
                validators: self.validators.clone(),
            },
        )
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    /// Remembers `id`, forgetting the oldest beyond [`MAX_SEEN`].
    pub fn insert(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            while self.order.len() > MAX_SEEN {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// The mention for one item of the feed at `feed_url`; `None` for an item with no text.
pub fn entry_mention(
    feed_url: &str,
    feed: &Feed,
    entry: &Entry,
    now: DateTime<Utc>,
) -> Option<Mention> {
    let host = reqwest::Url::parse(feed_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| feed_url.to_string());
    let title = entry.title.as_ref().map(|t| html_to_text(&t.content));
    let summary = entry
        .summary
        .as_ref()
        .map(|t| html_to_text(&t.content))
        .or_else(|| {
            entry
                .content
                .as_ref()
                .and_then(|c| c.body.as_deref())
                .map(html_to_text)
        });
    let text = match (title, summary) {
        (Some(t), Some(s)) if !s.is_empty() && !s.starts_with(&t) => format!("{t}. {s}"),
        (Some(t), _) if !t.is_empty() => t,
        (_, Some(s)) => s,
        _ => String::new(),
    };
    let text = cut(text.trim(), MAX_ITEM_TEXT).to_string();
    if text.is_empty() {
        return None;
    }
    let id = if ["http://", "https://", "urn:", "tag:"]
        .iter()
        .any(|p| entry.id.starts_with(p))
    {
        entry.id.clone()
    } else {
        format!("{host}/{}", entry.id)
    };
    let handle = feed
        .title
        .as_ref()
        .map(|t| html_to_text(&t.content))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| host.clone());
    Some(Mention {
        id,
        platform: "rss".into(),
        text,
        created_at: entry.published.or(entry.updated).unwrap_or(now),
        author: Author {
            id: host,
            handle,
            followers: None,
        },
        url: entry.links.first().map(|l| l.href.clone()),
        lang: feed.language.clone(),
        parent_id: None,
        thread_id: None,
        metrics: None,
        ingested_at: Some(now),
        extra: Map::new(),
    })
}

/// Polls feeds into Kafka, remembering what it sent.
pub struct Poller {
    out: Outlet,
    state: PathBuf,
    seen: Seen,
}

impl Poller {
    /// A poller sending to `topics.raw` (created when missing), with its state in `state`.
    pub async fn new(
        config: &KafkaConfig,
        topics: &Topics,
        state: &Path,
    ) -> Result<Poller, ConnectorError> {
        let seen = Seen::load(state)?;
        Ok(Poller {
            out: Outlet::new(config, topics, "RSS connector").await?,
            state: state.to_path_buf(),
            seen,
        })
    }

    /// Where it stands, for `gema sources`.
    pub fn cursor(&self) -> String {
        format!(
            "{} items sent, {} feeds with validators",
            self.seen.len(),
            self.seen.validators.len()
        )
    }

    /// Fetches every feed once and sends its new items; saves the state after each feed.
    pub async fn poll(&mut self, urls: &[String]) -> Result<Vec<FeedReport>, ConnectorError> {
        let mut reports = Vec::with_capacity(urls.len());
        for url in urls {
            let mut report = FeedReport {
                url: url.clone(),
                items: 0,
                sent: 0,
                error: None,
                unchanged: false,
            };
            match self.fetch(url).await {
                Ok(None) => report.unchanged = true,
                Ok(Some((feed, validators))) => {
                    report.items = feed.entries.len();
                    let now = Utc::now();
                    for entry in &feed.entries {
                        let Some(m) = entry_mention(url, &feed, entry, now) else {
                            continue;
                        };
                        if self.seen.contains(&m.id) {
                            continue;
                        }
                        if let Err(e) = self.out.send(&m).await {
                            report.error = Some(e);
                            break;
                        }
                        self.seen.insert(m.id);
                        report.sent += 1;
                    }
                    // The validators move on only when every new item is stored: a 304 must
                    // not hide an item whose send failed.
                    if report.error.is_none() {
                        if validators == Validators::default() {
                            self.seen.validators.remove(url);
                        } else {
                            self.seen.validators.insert(url.clone(), validators);
                        }
                    }
                    self.seen.save(&self.state)?;
                }
                Err(e) => report.error = Some(e.within(url)),
            }
            reports.push(report);
        }
        Ok(reports)
    }

    /// The feed at `url` with its answer's validators, or `None` when it answered 304 to the
    /// validators of the last poll.
    async fn fetch(&self, url: &str) -> Result<Option<(Feed, Validators)>, Failure> {
        let mut req = self.out.http.get(url);
        if let Some(v) = self.seen.validators.get(url) {
            if let Some(etag) = &v.etag {
                req = req.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &v.last_modified {
                req = req.header(reqwest::header::IF_MODIFIED_SINCE, lm);
            }
        }
        let answer = self.out.request(req).await?;
        if answer.status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        let feed = feed_rs::parser::parse(&answer.body[..])
            .map_err(|e| Failure::malformed(format!("not an RSS, Atom or JSON feed: {e}")))?;
        let validators = Validators {
            etag: answer.header("etag").map(str::to_string),
            last_modified: answer.header("last-modified").map(str::to_string),
        };
        Ok(Some((feed, validators)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSS: &str = r#"<?xml version="1.0"?>
<rss version="2.0"><channel><title>Berita &amp; Bisnis</title><link>https://news.example/</link>
<language>id</language>
<item><title>NusaPay gangguan lagi, saldo pengguna hilang</title>
<link>https://news.example/a/1</link><guid isPermaLink="false">1001</guid>
<description>&lt;p&gt;Pengguna &lt;b&gt;kecewa&lt;/b&gt; dengan layanan.&lt;/p&gt;</description>
<pubDate>Fri, 27 Nov 2026 08:00:00 GMT</pubDate></item>
<item><title></title><guid>1002</guid></item>
</channel></rss>"#;

    #[test]
    fn an_rss_item_becomes_a_valid_mention() {
        let feed = feed_rs::parser::parse(RSS.as_bytes()).unwrap();
        let now = Utc::now();
        let url = "https://news.example/rss";
        let m = entry_mention(url, &feed, &feed.entries[0], now).unwrap();
        assert_eq!(m.id, "news.example/1001");
        assert_eq!(m.platform, "rss");
        assert_eq!(
            m.text,
            "NusaPay gangguan lagi, saldo pengguna hilang. Pengguna kecewa dengan layanan."
        );
        assert_eq!(m.created_at.to_rfc3339(), "2026-11-27T08:00:00+00:00");
        assert_eq!(
            (m.author.id.as_str(), m.author.handle.as_str()),
            ("news.example", "Berita & Bisnis")
        );
        assert_eq!(m.url.as_deref(), Some("https://news.example/a/1"));
        assert_eq!(m.lang.as_deref(), Some("id"));
        // It passes the same validation as every connector's mentions.
        Mention::parse(&serde_json::to_vec(&m).unwrap()).unwrap();
        // An item without text is skipped.
        assert!(entry_mention(url, &feed, &feed.entries[1], now).is_none());
    }

    #[test]
    fn html_is_removed_and_entities_decoded() {
        assert_eq!(
            html_to_text("<p>A &amp; B&nbsp;<br/>c&#39;s</p>"),
            "A & B c's"
        );
        assert_eq!(cut("héllo", 2), "h");
    }

    #[test]
    fn seen_ids_persist_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/seen.json");
        let mut seen = Seen::load(&path).unwrap();
        for i in 0..MAX_SEEN + 10 {
            seen.insert(format!("id{i}"));
        }
        seen.save(&path).unwrap();
        let back = Seen::load(&path).unwrap();
        assert!(!back.contains("id0"), "the oldest are forgotten");
        assert!(back.contains(&format!("id{}", MAX_SEEN + 9)));
        assert_eq!(back.order.len(), MAX_SEEN);
        std::fs::write(&path, "not json").unwrap();
        let err = Seen::load(&path).unwrap_err().to_string();
        assert!(err.contains("seen.json"), "{err}");
    }
}
