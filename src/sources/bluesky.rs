//! The Bluesky connector: searches posts newest first (`app.bsky.feed.searchPosts` on the public
//! AppView, `https://public.api.bsky.app`; an access token from `GEMA_BLUESKY_TOKEN` where the
//! service requires one) and sends each new post to the raw topic (`platform: bluesky`).
//!
//! - A post becomes: `id` its `at://` URI, `text` its text, `created_at` its `createdAt`,
//!   `author` its DID and handle, `url` its bsky.app page, `lang` its first language,
//!   `parent_id` / `thread_id` the reply's parent and root, `metrics` likes, reposts, replies.
//! - Per query the newest `sortAt` sent (the earlier of `createdAt` and `indexedAt`, which the
//!   API's `since` filters on) and the last [`RECENT`] URIs sent are kept in a state file; each
//!   poll asks from a minute before that time and skips what it already sent, following the
//!   cursor for up to [`MAX_PAGES`] pages of 100. The first poll of a query takes only its newest
//!   page. The state moves on only after Kafka stored the posts.
//! - A query that fails is reported with the reason; the others are still polled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Map;

use super::http::Failure;
use super::{load_state, save_state, ConnectorError, Outlet, SourceReport};
use crate::kafka::KafkaConfig;
use crate::kafka::Topics;
use crate::mention::{Author, Mention, Metrics};

/// Most pages of 100 posts fetched per query and poll.
pub const MAX_PAGES: usize = 5;
/// URIs remembered per query, to skip posts seen in the overlap of two polls.
pub const RECENT: usize = 2_000;
const PER_PAGE: usize = 100;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostView {
    pub uri: String,
    pub author: ProfileView,
    pub record: PostRecord,
    #[serde(default)]
    pub indexed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub reply_count: u32,
    #[serde(default)]
    pub repost_count: u32,
    #[serde(default)]
    pub like_count: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileView {
    pub did: String,
    pub handle: String,
    #[serde(default)]
    pub followers_count: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostRecord {
    #[serde(default)]
    pub text: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub langs: Vec<String>,
    #[serde(default)]
    pub reply: Option<Reply>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Reply {
    pub parent: StrongRef,
    pub root: StrongRef,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StrongRef {
    pub uri: String,
}

#[derive(Debug, Deserialize)]
struct SearchAnswer {
    posts: Vec<PostView>,
    #[serde(default)]
    cursor: Option<String>,
}

impl PostView {
    /// The time the API's `since` filters on: the earlier of `createdAt` and `indexedAt`.
    pub fn sort_at(&self) -> DateTime<Utc> {
        self.indexed_at
            .map_or(self.record.created_at, |i| i.min(self.record.created_at))
    }
}

/// The mention for `post`; `None` for a post with no text (an image alone).
pub fn post_mention(post: &PostView, now: DateTime<Utc>) -> Option<Mention> {
    if post.record.text.trim().is_empty() {
        return None;
    }
    let rkey = post.uri.rsplit('/').next().unwrap_or_default();
    Some(Mention {
        id: post.uri.clone(),
        platform: "bluesky".into(),
        text: post.record.text.clone(),
        created_at: post.record.created_at,
        author: Author {
            id: post.author.did.clone(),
            handle: post.author.handle.clone(),
            followers: post.author.followers_count,
        },
        url: Some(format!(
            "https://bsky.app/profile/{}/post/{rkey}",
            post.author.handle
        )),
        lang: post.record.langs.first().cloned(),
        parent_id: post.record.reply.as_ref().map(|r| r.parent.uri.clone()),
        thread_id: post.record.reply.as_ref().map(|r| r.root.uri.clone()),
        metrics: Some(Metrics {
            likes: post.like_count,
            reposts: post.repost_count,
            replies: post.reply_count,
        }),
        ingested_at: Some(now),
        extra: Map::new(),
    })
}

/// Where a query's polling stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryState {
    /// The newest `sortAt` sent.
    pub since: Option<DateTime<Utc>>,
    /// The last URIs sent, oldest first.
    pub recent: Vec<String>,
}

/// Polls Bluesky search into Kafka.
pub struct Poller {
    out: Outlet,
    endpoint: String,
    token: Option<String>,
    state: PathBuf,
    queries: BTreeMap<String, QueryState>,
}

impl Poller {
    /// Where it stands, for `gema sources`: per query, the newest time sent.
    pub fn cursor(&self) -> String {
        super::cursor::describe(self.queries.iter().map(|(q, st)| (q, st.since)))
    }

    /// A poller asking `api` (e.g. `https://public.api.bsky.app`) and sending to `topics.raw`,
    /// with its state in `state` and an optional access token.
    pub async fn new(
        config: &KafkaConfig,
        topics: &Topics,
        api: &str,
        token: Option<String>,
        state: &Path,
    ) -> Result<Poller, ConnectorError> {
        let queries = load_state(state)?;
        Ok(Poller {
            out: Outlet::new(config, topics, "Bluesky connector").await?,
            endpoint: format!(
                "{}/xrpc/app.bsky.feed.searchPosts",
                api.trim_end_matches('/')
            ),
            token,
            state: state.to_path_buf(),
            queries,
        })
    }

    /// Searches each query's new posts and sends them; saves the state after each query.
    pub async fn poll(&mut self, queries: &[String]) -> Result<Vec<SourceReport>, ConnectorError> {
        let mut reports = Vec::with_capacity(queries.len());
        for q in queries {
            let mut report = SourceReport::new(q.clone());
            let mut st = self.queries.get(q).cloned().unwrap_or_default();
            match self.fetch_new(q, st.since).await {
                Ok(mut posts) => {
                    posts.sort_by_key(|p| p.sort_at());
                    let now = Utc::now();
                    for p in &posts {
                        if st.recent.contains(&p.uri) {
                            continue;
                        }
                        if let Some(m) = post_mention(p, now) {
                            if let Err(e) = self.out.send(&m).await {
                                report.error = Some(e);
                                break;
                            }
                            report.sent += 1;
                        }
                        st.since = st.since.max(Some(p.sort_at()));
                        st.recent.push(p.uri.clone());
                    }
                    let excess = st.recent.len().saturating_sub(RECENT);
                    st.recent.drain(..excess);
                    self.queries.insert(q.clone(), st);
                    save_state(&self.state, &self.queries)?;
                }
                Err(e) => report.error = Some(e.within(&format!("{}?q={q}", self.endpoint))),
            }
            reports.push(report);
        }
        Ok(reports)
    }

    async fn fetch_new(
        &self,
        q: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<PostView>, Failure> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut params = vec![
                ("q", q.to_string()),
                ("sort", "latest".to_string()),
                ("limit", PER_PAGE.to_string()),
            ];
            if let Some(s) = since {
                let from = s - Duration::minutes(1);
                params.push((
                    "since",
                    from.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                ));
            }
            if let Some(c) = &cursor {
                params.push(("cursor", c.clone()));
            }
            let mut req = self.out.http.get(&self.endpoint).query(&params);
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            let answer: SearchAnswer = self.out.fetch_json(req, "searchPosts").await?;
            let full = answer.posts.len() >= PER_PAGE;
            all.extend(answer.posts);
            cursor = answer.cursor;
            if since.is_none() || !full || cursor.is_none() {
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
    fn a_post_becomes_a_valid_mention() {
        let post: PostView = serde_json::from_value(serde_json::json!({
            "uri": "at://did:plc:abc/app.bsky.feed.post/3l5ee0000145dd", "cid": "bafy",
            "author": {"did": "did:plc:abc", "handle": "rina.bsky.social", "displayName": "Rina"},
            "record": {"$type": "app.bsky.feed.post", "text": "NusaPay error lagi 😡",
                "createdAt": "2026-11-27T08:00:00.000Z", "langs": ["id"],
                "reply": {"parent": {"uri": "at://p", "cid": "c"}, "root": {"uri": "at://r", "cid": "c"}}},
            "replyCount": 1, "repostCount": 2, "likeCount": 3, "indexedAt": "2026-11-27T08:00:01.000Z"
        }))
        .unwrap();
        let m = post_mention(&post, Utc::now()).unwrap();
        assert_eq!(
            m.url.as_deref(),
            Some("https://bsky.app/profile/rina.bsky.social/post/3l5ee0000145dd")
        );
        assert_eq!(
            (m.parent_id.as_deref(), m.thread_id.as_deref()),
            (Some("at://p"), Some("at://r"))
        );
        assert_eq!(m.lang.as_deref(), Some("id"));
        assert_eq!(m.metrics.unwrap().likes, 3);
        assert_eq!(post.sort_at(), post.record.created_at);
        Mention::parse(&serde_json::to_vec(&m).unwrap()).unwrap();
    }
}
