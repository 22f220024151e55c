//! The Hacker News connector: searches stories and comments by date through the public HN
//! Search API (`GET /api/v1/search_by_date` on hn.algolia.com, no key) and sends each new hit to
//! the raw topic as a mention (`platform: hn`).
//!
//! - A hit becomes: `id` its `objectID`, `text` a story's title (and text) or a comment's text
//!   without HTML, `author` its author, `url` its Hacker News page, `parent_id` / `thread_id` its
//!   parent and story, `metrics` its points (likes) and comment count (replies).
//! - Per query, the newest `created_at_i` sent and the ids sent at that second are kept in a
//!   state file; each poll asks for hits from that second on (`numericFilters`), up to
//!   [`MAX_PAGES`] pages of 100, and skips the ids it already sent. The first poll of a query takes
//!   only its newest page. The state moves on only after Kafka stored the hits.
//! - A query that fails is reported with its URL and the reason; the others are still polled.

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

/// Most pages of 100 hits fetched per query and poll.
pub const MAX_PAGES: u32 = 5;
const PER_PAGE: u32 = 100;

/// The fields of an HN Search hit that a mention needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Hit {
    #[serde(rename = "objectID")]
    pub object_id: String,
    pub created_at: DateTime<Utc>,
    pub created_at_i: i64,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub story_text: Option<String>,
    #[serde(default)]
    pub comment_text: Option<String>,
    #[serde(default)]
    pub points: Option<u32>,
    #[serde(default)]
    pub num_comments: Option<u32>,
    #[serde(default)]
    pub story_id: Option<i64>,
    #[serde(default)]
    pub parent_id: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct Page {
    hits: Vec<Hit>,
    #[serde(rename = "nbPages", default)]
    pages: u32,
}

/// The mention for `hit`; `None` for a hit with no text or author (deleted items).
pub fn hit_mention(hit: &Hit, now: DateTime<Utc>) -> Option<Mention> {
    let author = hit.author.clone().filter(|a| !a.is_empty())?;
    let text = match (&hit.comment_text, &hit.title) {
        (Some(c), _) => html_to_text(c),
        (None, Some(t)) => match hit.story_text.as_deref().map(html_to_text) {
            Some(body) if !body.is_empty() => format!("{t}. {body}"),
            _ => t.clone(),
        },
        (None, None) => String::new(),
    };
    if text.trim().is_empty() {
        return None;
    }
    Some(Mention {
        id: hit.object_id.clone(),
        platform: "hn".into(),
        text,
        created_at: hit.created_at,
        author: Author {
            id: author.clone(),
            handle: author,
            followers: None,
        },
        url: Some(format!(
            "https://news.ycombinator.com/item?id={}",
            hit.object_id
        )),
        lang: None,
        parent_id: hit.parent_id.map(|p| p.to_string()),
        thread_id: hit.story_id.map(|s| s.to_string()),
        metrics: Some(Metrics {
            likes: hit.points.unwrap_or(0),
            reposts: 0,
            replies: hit.num_comments.unwrap_or(0),
        }),
        ingested_at: Some(now),
        extra: Map::new(),
    })
}

/// Where a query's polling stands: the newest `created_at_i` sent and the ids sent at that
/// second (the state file's format is unchanged).
pub type QueryState = super::cursor::TimeCursor;

/// Polls HN Search into Kafka.
pub struct Poller {
    out: Outlet,
    /// The search endpoint (`https://hn.algolia.com/api/v1/search_by_date`).
    endpoint: String,
    state: PathBuf,
    queries: BTreeMap<String, QueryState>,
}

impl Poller {
    /// Where it stands, for `gema sources`: per query, the newest second sent.
    pub fn cursor(&self) -> String {
        super::cursor::describe(self.queries.iter().map(|(q, st)| (q, st.newest())))
    }

    /// A poller asking `api` (e.g. `https://hn.algolia.com`) and sending to `topics.raw`, with
    /// its state in `state`.
    pub async fn new(
        config: &KafkaConfig,
        topics: &Topics,
        api: &str,
        state: &Path,
    ) -> Result<Poller, ConnectorError> {
        let queries = load_state(state)?;
        Ok(Poller {
            out: Outlet::new(config, topics, "HN connector").await?,
            endpoint: format!("{}/api/v1/search_by_date", api.trim_end_matches('/')),
            state: state.to_path_buf(),
            queries,
        })
    }

    /// Searches each query's new hits and sends them; saves the state after each query.
    pub async fn poll(&mut self, queries: &[String]) -> Result<Vec<SourceReport>, ConnectorError> {
        let mut reports = Vec::with_capacity(queries.len());
        for q in queries {
            let mut report = SourceReport::new(q.clone());
            let known = self.queries.get(q).cloned();
            match self.fetch_new(q, known.as_ref()).await {
                Ok(mut hits) => {
                    hits.sort_by(|a, b| {
                        (a.created_at_i, &a.object_id).cmp(&(b.created_at_i, &b.object_id))
                    });
                    let mut st = known.unwrap_or_default();
                    let now = Utc::now();
                    for h in &hits {
                        if !st.is_new(h.created_at_i, &h.object_id) {
                            continue;
                        }
                        if let Some(m) = hit_mention(h, now) {
                            if let Err(e) = self.out.send(&m).await {
                                report.error = Some(e);
                                break;
                            }
                            report.sent += 1;
                        }
                        st.record(h.created_at_i, &h.object_id);
                    }
                    self.queries.insert(q.clone(), st);
                    save_state(&self.state, &self.queries)?;
                }
                Err(e) => report.error = Some(e.within(&format!("{}?query={q}", self.endpoint))),
            }
            reports.push(report);
        }
        Ok(reports)
    }

    async fn fetch_new(
        &self,
        query: &str,
        known: Option<&QueryState>,
    ) -> Result<Vec<Hit>, Failure> {
        let mut all = Vec::new();
        for page in 0..MAX_PAGES {
            let mut params = vec![
                ("query", query.to_string()),
                ("tags", "(story,comment)".to_string()),
                ("hitsPerPage", PER_PAGE.to_string()),
                ("page", page.to_string()),
            ];
            if let Some(k) = known {
                params.push(("numericFilters", format!("created_at_i>={}", k.since)));
            }
            let p: Page = self
                .out
                .fetch_json(
                    self.out.http.get(&self.endpoint).query(&params),
                    "HN Search",
                )
                .await?;
            all.extend(p.hits);
            if known.is_none() || page + 1 >= p.pages {
                break;
            }
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stories_and_comments_become_valid_mentions() {
        let hit = |v: serde_json::Value| -> Hit { serde_json::from_value(v).unwrap() };
        let story = hit(serde_json::json!({
            "objectID": "42002668", "created_at": "2026-11-27T08:00:00Z", "created_at_i": 1795766400,
            "author": "tom", "title": "NusaPay lost my balance", "story_text": "<p>Support &amp; nobody answers</p>",
            "points": 12, "num_comments": 3, "story_id": 42002668, "_tags": ["story"]
        }));
        let m = hit_mention(&story, Utc::now()).unwrap();
        assert_eq!(m.text, "NusaPay lost my balance. Support & nobody answers");
        assert_eq!(
            m.url.as_deref(),
            Some("https://news.ycombinator.com/item?id=42002668")
        );
        assert_eq!(
            (m.metrics.unwrap().likes, m.metrics.unwrap().replies),
            (12, 3)
        );
        Mention::parse(&serde_json::to_vec(&m).unwrap()).unwrap();
        let comment = hit(serde_json::json!({
            "objectID": "42002690", "created_at": "2026-11-27T08:01:00Z", "created_at_i": 1795766460,
            "author": "sari", "comment_text": "Same here, <i>kecewa</i>", "parent_id": 42002668,
            "story_id": 42002668
        }));
        let m = hit_mention(&comment, Utc::now()).unwrap();
        assert_eq!(m.text, "Same here, kecewa");
        assert_eq!(m.parent_id.as_deref(), Some("42002668"));
        let deleted = hit(serde_json::json!({
            "objectID": "1", "created_at": "2026-11-27T08:01:00Z", "created_at_i": 1795766460
        }));
        assert!(hit_mention(&deleted, Utc::now()).is_none());
    }
}
