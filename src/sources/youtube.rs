//! The YouTube connector: polls comment threads of videos and channels through the YouTube Data
//! API v3 (`GET {api}/commentThreads`, `comments`, `channels`, `playlistItems`; an API key from
//! `GEMA_YOUTUBE_API_KEY`) and sends each new comment and reply to the raw topic as a mention
//! (`platform: youtube`).
//!
//! - `follow` entries are video ids (11 characters) and channel ids (`UC…`, 24 characters),
//!   optionally written `video:<id>` / `channel:<id>`. A video's comment threads are read newest
//!   first (`order=time`, 100 a page). A channel's are read through
//!   `allThreadsRelatedToChannelId`, and its uploads playlist (looked up once and kept in the
//!   state file) is checked each poll: uploads that appear after the channel was first polled are
//!   followed as videos of their own (the [`MAX_NEW_UPLOADS`] newest).
//! - A top-level comment and each of its replies become one mention each: `id` the comment id,
//!   `text` its `textOriginal` (else `textDisplay`), `author` its author's channel id and display
//!   name, `url` `https://www.youtube.com/watch?v=<video>&lc=<comment>`, `parent_id` (replies),
//!   `thread_id` the thread id, `metrics` likes and (top-level) reply count, `created_at` its
//!   `publishedAt`. Replies the thread answer leaves out are fetched with `comments?parentId=`
//!   when the thread's `totalReplyCount` changed since the last poll.
//! - Per video (and per channel's thread list) the newest `publishedAt` sent and the ids sent at
//!   that second are kept in a state file; pages are read until one reaches a thread already seen
//!   (at most [`MAX_PAGES`]; the first poll of a video takes only its newest page). The cursor
//!   moves only past comments Kafka stored, so a restart neither repeats nor skips. Replies posted
//!   later to a thread that no longer comes within those pages are not seen.
//! - Quota: every list call costs 1 unit; the units spent per Pacific day are kept in the state
//!   file, and a call that would pass `quota_per_day` is not made: the source reports a rate limit
//!   lasting until the next reset. So does an answer with the reason `quotaExceeded` or
//!   `dailyLimitExceeded`.
//! - Errors (developers.google.com/youtube/v3/docs/errors): `keyInvalid`, `forbidden`,
//!   `accessNotConfigured` and any other 401 / 403 mean the key is refused (the source stops,
//!   naming `GEMA_YOUTUBE_API_KEY`); `commentsDisabled`, `videoNotFound` and the like fail that
//!   video only; 429 and `rateLimitExceeded` wait as asked; 5xx back off.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Map;

use super::cursor::TimeCursor;
use super::http::{rate_limit_wait, Failure, FailureKind, DEFAULT_RATE_LIMIT_WAIT};
use super::{load_state, save_state, ConnectorError, Outlet, SourceReport};
use crate::kafka::KafkaConfig;
use crate::kafka::Topics;
use crate::mention::{Author, Mention, Metrics};

/// Env var with the YouTube Data API key.
pub const API_KEY_ENV: &str = super::env::YOUTUBE_API_KEY;
/// Quota units per day when `quota_per_day` is not set (the API's default quota).
pub const DEFAULT_QUOTA_PER_DAY: u64 = 10_000;
/// Most pages of 100 comment threads read per video (or channel) and poll.
pub const MAX_PAGES: usize = 5;
/// Most pages of 100 replies read per thread and poll.
pub const MAX_REPLY_PAGES: usize = 2;
/// New uploads of a channel followed as videos, newest first.
pub const MAX_NEW_UPLOADS: usize = 20;
/// Comment ids remembered across all videos and channels, so a comment read both through its
/// channel and its video is sent once.
pub const RECENT: usize = 5_000;

/// Google counts the daily quota in Pacific time. This uses a fixed UTC−8 offset (no time-zone
/// database in the build): during daylight saving time the count restarts an hour after Google
/// resets it, so the connector never believes it has units that Google has not given back.
const PACIFIC_OFFSET_S: i64 = -8 * 3600;

/// Reasons of an error answer that mean the day's quota is spent.
const QUOTA_REASONS: &[&str] = &["quotaExceeded", "dailyLimitExceeded"];
/// Reasons that concern one video or channel only.
const ITEM_REASONS: &[&str] = &[
    "commentsDisabled",
    "videoNotFound",
    "channelNotFound",
    "playlistNotFound",
    "commentThreadNotFound",
    "commentNotFound",
    "notFound",
];
/// Reasons asking to slow down (not the daily quota).
const SLOW_DOWN_REASONS: &[&str] = &["rateLimitExceeded", "userRateLimitExceeded"];

/// A `follow` entry: a channel or a video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Channel(String),
    Video(String),
}

impl Target {
    /// The channel id (`UC` and 22 more characters) or video id (11 characters) in `follow`,
    /// optionally written `channel:<id>` / `video:<id>`.
    pub fn parse(follow: &str) -> Result<Target, String> {
        let f = follow.trim();
        let id_chars = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        let channel = |s: &str| s.len() == 24 && s.starts_with("UC") && id_chars(s);
        let video = |s: &str| s.len() == 11 && id_chars(s);
        let explain = "use a channel id (UC followed by 22 letters, digits, '-' or '_') or an \
                       11-character video id, optionally as channel:<id> or video:<id>";
        if let Some(id) = f.strip_prefix("channel:") {
            return match channel(id) {
                true => Ok(Target::Channel(id.into())),
                false => Err(format!("{follow:?} is not a YouTube channel id; {explain}")),
            };
        }
        if let Some(id) = f.strip_prefix("video:") {
            return match video(id) {
                true => Ok(Target::Video(id.into())),
                false => Err(format!("{follow:?} is not a YouTube video id; {explain}")),
            };
        }
        if channel(f) {
            Ok(Target::Channel(f.into()))
        } else if video(f) {
            Ok(Target::Video(f.into()))
        } else {
            Err(format!(
                "{follow:?} is neither a YouTube channel nor a video id; {explain}"
            ))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThreadList {
    #[serde(default)]
    next_page_token: Option<String>,
    #[serde(default)]
    items: Vec<CommentThread>,
}

/// The fields of a `commentThread` resource that mentions need.
#[derive(Debug, Clone, Deserialize)]
pub struct CommentThread {
    pub id: String,
    pub snippet: ThreadSnippet,
    #[serde(default)]
    pub replies: Option<Replies>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadSnippet {
    #[serde(default)]
    pub video_id: Option<String>,
    pub top_level_comment: Comment,
    #[serde(default)]
    pub total_reply_count: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Replies {
    #[serde(default)]
    pub comments: Vec<Comment>,
}

/// The fields of a `comment` resource that a mention needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Comment {
    pub id: String,
    pub snippet: CommentSnippet,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentSnippet {
    #[serde(default)]
    pub author_display_name: Option<String>,
    #[serde(default)]
    pub author_channel_id: Option<ChannelRef>,
    #[serde(default)]
    pub text_display: Option<String>,
    #[serde(default)]
    pub text_original: Option<String>,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub like_count: u32,
    pub published_at: DateTime<Utc>,
    #[serde(default)]
    pub video_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChannelRef {
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommentList {
    #[serde(default)]
    next_page_token: Option<String>,
    #[serde(default)]
    items: Vec<Comment>,
}

#[derive(Debug, Deserialize)]
struct ChannelList {
    #[serde(default)]
    items: Vec<Channel>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Channel {
    content_details: ChannelDetails,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChannelDetails {
    related_playlists: RelatedPlaylists,
}

#[derive(Debug, Deserialize)]
struct RelatedPlaylists {
    uploads: String,
}

#[derive(Debug, Deserialize)]
struct PlaylistItemList {
    #[serde(default)]
    items: Vec<PlaylistItem>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlaylistItem {
    content_details: PlaylistItemDetails,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlaylistItemDetails {
    video_id: String,
    #[serde(default)]
    video_published_at: Option<DateTime<Utc>>,
}

/// An error answer: `{"error":{"code":403,"message":…,"errors":[{"reason":…}]}}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorInfo,
}

#[derive(Debug, Deserialize)]
struct ErrorInfo {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    reason: String,
}

/// The mention for `comment` in the thread `thread` of `video`; `None` for a comment with no
/// text or author. `replies` is the thread's reply count (0 for a reply).
pub fn comment_mention(
    comment: &Comment,
    thread: &str,
    video: Option<&str>,
    replies: u32,
    now: DateTime<Utc>,
) -> Option<Mention> {
    let s = &comment.snippet;
    let text = s
        .text_original
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .or(s.text_display.as_deref())?
        .trim()
        .to_string();
    if text.is_empty() {
        return None;
    }
    let name = s.author_display_name.clone().filter(|n| !n.is_empty());
    let author_id = s
        .author_channel_id
        .as_ref()
        .map(|c| c.value.clone())
        .filter(|v| !v.is_empty())
        .or_else(|| name.clone())?;
    let video = s.video_id.as_deref().or(video);
    Some(Mention {
        id: comment.id.clone(),
        platform: "youtube".into(),
        text,
        created_at: s.published_at,
        author: Author {
            handle: name.unwrap_or_else(|| author_id.clone()),
            id: author_id,
            followers: None,
        },
        url: video.map(|v| format!("https://www.youtube.com/watch?v={v}&lc={}", comment.id)),
        lang: None,
        parent_id: s.parent_id.clone(),
        thread_id: Some(thread.to_string()),
        metrics: Some(Metrics {
            likes: s.like_count,
            reposts: 0,
            replies,
        }),
        ingested_at: Some(now),
        extra: Map::new(),
    })
}

/// Where one list of comment threads (a video's, or a channel's) stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadsState {
    pub cursor: TimeCursor,
    /// `totalReplyCount` of the threads last read whose answer left replies out.
    #[serde(default)]
    pub reply_counts: BTreeMap<String, u32>,
}

/// Where a followed channel stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelState {
    /// Its uploads playlist id.
    #[serde(default)]
    pub uploads: Option<String>,
    /// The video ids in the uploads playlist at the last look; `None` before the first.
    #[serde(default)]
    pub known_uploads: Option<Vec<String>>,
    /// Uploads that appeared since the channel was first polled, newest first.
    #[serde(default)]
    pub new_videos: Vec<String>,
    /// Its `allThreadsRelatedToChannelId` list; `None` before the first poll.
    #[serde(default)]
    pub threads: Option<ThreadsState>,
}

/// What the YouTube connector keeps in its state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The Pacific day `units` were spent on.
    #[serde(default)]
    pub quota_day: Option<NaiveDate>,
    /// Quota units spent that day.
    #[serde(default)]
    pub units: u64,
    #[serde(default)]
    pub videos: BTreeMap<String, ThreadsState>,
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelState>,
    /// The last [`RECENT`] comment ids sent, oldest first.
    #[serde(default)]
    pub recent: VecDeque<String>,
}

/// The Pacific day (UTC−8, see [`PACIFIC_OFFSET_S`]) of `now`.
pub fn quota_day(now: DateTime<Utc>) -> NaiveDate {
    (now + chrono::Duration::seconds(PACIFIC_OFFSET_S)).date_naive()
}

/// The time from `now` until the quota resets (the next midnight, Pacific time).
pub fn until_reset(now: DateTime<Utc>) -> Duration {
    let next_day = quota_day(now).succ_opt().expect("a day after today");
    let reset = next_day.and_time(chrono::NaiveTime::MIN).and_utc()
        - chrono::Duration::seconds(PACIFIC_OFFSET_S);
    (reset - now).to_std().unwrap_or_default()
}

/// Keeps the failure that matters most for the report: one that ends the round over any other.
fn note(report: &mut SourceReport, f: Failure) {
    match &report.error {
        Some(old) if old.ends_round() || !f.ends_round() => {}
        _ => report.error = Some(f),
    }
}

/// A comment ready to send: its time, id and mention (`None`: nothing to send, but the cursor
/// passes it).
type Pending = (i64, String, Option<Mention>);

/// Which comment threads to list.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Video(&'a str),
    Channel(&'a str),
}

/// Polls YouTube comment threads into Kafka.
pub struct Poller {
    out: Outlet,
    api: String,
    key: String,
    quota_per_day: u64,
    path: PathBuf,
    state: State,
}

impl Poller {
    /// Where it stands, for `gema sources`: what it follows and the quota spent today.
    pub fn cursor(&self) -> String {
        format!(
            "{} videos, {} channels; {} of {} quota units today",
            self.state.videos.len(),
            self.state.channels.len(),
            self.state.units,
            self.quota_per_day
        )
    }

    /// A poller asking `api` (e.g. `https://www.googleapis.com/youtube/v3`) with the API `key`,
    /// spending at most `quota_per_day` units per Pacific day, sending to `topics.raw`, with its
    /// state in `state`.
    pub async fn new(
        config: &KafkaConfig,
        topics: &Topics,
        api: &str,
        key: String,
        quota_per_day: u64,
        state: &Path,
    ) -> Result<Poller, ConnectorError> {
        if key.trim().is_empty() {
            return Err(ConnectorError::Config(format!(
                "the YouTube connector needs an API key in {API_KEY_ENV}"
            )));
        }
        let loaded = load_state(state)?;
        Ok(Poller {
            out: Outlet::new(config, topics, "YouTube connector").await?,
            api: api.trim_end_matches('/').to_string(),
            key,
            quota_per_day,
            path: state.to_path_buf(),
            state: loaded,
        })
    }

    /// Quota units spent today (Pacific time), as the state file counts them.
    pub fn units_spent(&self) -> u64 {
        match self.state.quota_day {
            Some(d) if d == quota_day(Utc::now()) => self.state.units,
            _ => 0,
        }
    }

    /// Polls each followed video and channel once and sends their new comments; saves the state
    /// after each. A refused key or a spent quota ends the round: the items not yet polled get
    /// the same failure.
    pub async fn poll(&mut self, follow: &[String]) -> Result<Vec<SourceReport>, ConnectorError> {
        let mut reports = Vec::with_capacity(follow.len());
        let mut ended: Option<Failure> = None;
        let mut targets = Vec::new();
        for f in follow {
            let mut report = SourceReport::new(f.clone());
            match (Target::parse(f), &ended) {
                (Err(e), _) => report.error = Some(Failure::malformed(e)),
                (Ok(_), Some(end)) => report.error = Some(end.clone()),
                (Ok(t), None) => {
                    match &t {
                        Target::Video(v) => self.poll_video(v, &mut report).await,
                        Target::Channel(c) => self.poll_channel(c, &mut report).await,
                    }
                    self.save()?;
                    ended = report.error.clone().filter(Failure::ends_round);
                    targets.push(t);
                }
            }
            reports.push(report);
        }
        if ended.is_none() {
            self.forget_unfollowed(&targets);
            self.save()?;
        }
        Ok(reports)
    }

    /// Drops the state of videos and channels no longer followed (a round that ended early did
    /// not see them all, so it keeps everything).
    fn forget_unfollowed(&mut self, targets: &[Target]) {
        let channels: BTreeSet<&str> = targets
            .iter()
            .filter_map(|t| match t {
                Target::Channel(c) => Some(c.as_str()),
                Target::Video(_) => None,
            })
            .collect();
        self.state
            .channels
            .retain(|c, _| channels.contains(c.as_str()));
        let mut videos: BTreeSet<String> = targets
            .iter()
            .filter_map(|t| match t {
                Target::Video(v) => Some(v.clone()),
                Target::Channel(_) => None,
            })
            .collect();
        for c in self.state.channels.values() {
            videos.extend(c.new_videos.iter().cloned());
        }
        self.state.videos.retain(|v, _| videos.contains(v));
    }

    async fn poll_video(&mut self, video: &str, report: &mut SourceReport) {
        let known = self.state.videos.get(video).cloned();
        match self
            .fetch_threads(Scope::Video(video), known.as_ref())
            .await
        {
            Ok((pending, reply_counts)) => {
                let mut st = known.unwrap_or_default();
                // The reply counts move on only when every reply was stored: a count that
                // already matched would never fetch the unsent ones again.
                if self.send_new(pending, &mut st.cursor, report).await {
                    st.reply_counts = reply_counts;
                }
                self.state.videos.insert(video.to_string(), st);
            }
            Err(e) => note(report, e.within(&format!("video {video}"))),
        }
    }

    async fn poll_channel(&mut self, channel: &str, report: &mut SourceReport) {
        let mut ch = self
            .state
            .channels
            .get(channel)
            .cloned()
            .unwrap_or_default();
        if let Err(e) = self.check_uploads(channel, &mut ch).await {
            note(report, e.within(&format!("channel {channel} uploads")));
        }
        self.state.channels.insert(channel.to_string(), ch.clone());
        if report.error.as_ref().is_some_and(Failure::ends_round) {
            return;
        }
        let known = ch.threads.clone();
        match self
            .fetch_threads(Scope::Channel(channel), known.as_ref())
            .await
        {
            Ok((pending, reply_counts)) => {
                let mut st = known.unwrap_or_default();
                if self.send_new(pending, &mut st.cursor, report).await {
                    st.reply_counts = reply_counts;
                }
                if let Some(c) = self.state.channels.get_mut(channel) {
                    c.threads = Some(st);
                }
            }
            Err(e) => note(report, e.within(&format!("channel {channel}"))),
        }
        for video in &ch.new_videos {
            if report.error.as_ref().is_some_and(Failure::ends_round) {
                return;
            }
            self.poll_video(video, report).await;
        }
    }

    /// Looks up the channel's uploads playlist (once) and follows the uploads that appeared
    /// since the last look.
    async fn check_uploads(&mut self, channel: &str, ch: &mut ChannelState) -> Result<(), Failure> {
        let playlist = match &ch.uploads {
            Some(p) => p.clone(),
            None => {
                let list: ChannelList = self
                    .call(
                        "channels",
                        &[("part", "contentDetails".into()), ("id", channel.into())],
                    )
                    .await?;
                let Some(found) = list.items.into_iter().next() else {
                    return Err(Failure::transient("no such channel (channelNotFound)"));
                };
                let p = found.content_details.related_playlists.uploads;
                ch.uploads = Some(p.clone());
                p
            }
        };
        let list: PlaylistItemList = self
            .call(
                "playlistItems",
                &[
                    ("part", "contentDetails".into()),
                    ("playlistId", playlist),
                    ("maxResults", "50".into()),
                ],
            )
            .await?;
        let mut items: Vec<PlaylistItemDetails> =
            list.items.into_iter().map(|i| i.content_details).collect();
        // Newest first (the playlist's own order where times are missing).
        items.sort_by_key(|i| std::cmp::Reverse(i.video_published_at));
        let ids: Vec<String> = items.into_iter().map(|i| i.video_id).collect();
        if let Some(known) = &ch.known_uploads {
            let fresh: Vec<String> = ids
                .iter()
                .filter(|v| !known.contains(v) && !ch.new_videos.contains(v))
                .cloned()
                .collect();
            ch.new_videos.splice(0..0, fresh);
            ch.new_videos.truncate(MAX_NEW_UPLOADS);
        }
        ch.known_uploads = Some(ids);
        Ok(())
    }

    /// The comments of the threads in `scope` that `known` has not passed (all pages up to one
    /// that reaches a thread already seen, at most [`MAX_PAGES`]; the first poll reads one), and
    /// the reply counts to remember.
    async fn fetch_threads(
        &mut self,
        scope: Scope<'_>,
        known: Option<&ThreadsState>,
    ) -> Result<(Vec<Pending>, BTreeMap<String, u32>), Failure> {
        let now = Utc::now();
        let mut pending = Vec::new();
        let mut reply_counts = BTreeMap::new();
        let mut page_token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut params = vec![
                ("part", "snippet,replies".to_string()),
                ("order", "time".into()),
                ("maxResults", "100".into()),
                ("textFormat", "plainText".into()),
            ];
            params.push(match scope {
                Scope::Video(v) => ("videoId", v.to_string()),
                Scope::Channel(c) => ("allThreadsRelatedToChannelId", c.to_string()),
            });
            if let Some(t) = &page_token {
                params.push(("pageToken", t.clone()));
            }
            let page: ThreadList = self.call("commentThreads", &params).await?;
            let mut reached = known.is_none();
            for thread in page.items {
                let s = &thread.snippet;
                let top = &s.top_level_comment;
                let at = top.snippet.published_at.timestamp();
                let is_new = |at: i64, id: &str| known.is_none_or(|k| k.cursor.is_new(at, id));
                if !is_new(at, &top.id) {
                    reached = true;
                }
                let video = s.video_id.as_deref();
                let mut push = |c: &Comment, replies: u32| {
                    let at = c.snippet.published_at.timestamp();
                    if is_new(at, &c.id) {
                        let m = comment_mention(c, &thread.id, video, replies, now);
                        pending.push((at, c.id.clone(), m));
                    }
                };
                push(top, s.total_reply_count);
                let included = thread.replies.as_ref().map_or(&[][..], |r| &r.comments);
                for r in included {
                    push(r, 0);
                }
                if s.total_reply_count as usize > included.len() {
                    reply_counts.insert(thread.id.clone(), s.total_reply_count);
                    let before = known.and_then(|k| k.reply_counts.get(&thread.id));
                    if before != Some(&s.total_reply_count) {
                        for r in self.fetch_replies(&thread.id).await? {
                            push(&r, 0);
                        }
                    }
                }
            }
            page_token = page.next_page_token;
            if reached || page_token.is_none() {
                break;
            }
        }
        Ok((pending, reply_counts))
    }

    /// The replies to the thread `parent` (at most [`MAX_REPLY_PAGES`] pages of 100).
    async fn fetch_replies(&mut self, parent: &str) -> Result<Vec<Comment>, Failure> {
        let mut all = Vec::new();
        let mut page_token: Option<String> = None;
        for _ in 0..MAX_REPLY_PAGES {
            let mut params = vec![
                ("part", "snippet".to_string()),
                ("parentId", parent.to_string()),
                ("maxResults", "100".into()),
                ("textFormat", "plainText".into()),
            ];
            if let Some(t) = &page_token {
                params.push(("pageToken", t.clone()));
            }
            let page: CommentList = self.call("comments", &params).await?;
            all.extend(page.items);
            page_token = page.next_page_token;
            if page_token.is_none() {
                break;
            }
        }
        Ok(all)
    }

    /// Sends `pending` oldest first, moving `cursor` past each comment Kafka stored; stops at
    /// the first that Kafka did not store.
    async fn send_new(
        &mut self,
        mut pending: Vec<Pending>,
        cursor: &mut TimeCursor,
        report: &mut SourceReport,
    ) -> bool {
        pending.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        pending.dedup_by(|a, b| a.1 == b.1);
        for (at, id, mention) in pending {
            if !cursor.is_new(at, &id) {
                continue;
            }
            if let Some(m) = mention.filter(|_| !self.state.recent.contains(&id)) {
                if let Err(e) = self.out.send(&m).await {
                    note(report, e);
                    return false;
                }
                report.sent += 1;
                self.state.recent.push_back(id.clone());
                if self.state.recent.len() > RECENT {
                    self.state.recent.pop_front();
                }
            }
            cursor.record(at, &id);
        }
        true
    }

    /// One list call of `resource`: counts its quota unit first (refusing it when the day's
    /// quota would be passed), then sorts an error answer by its reason.
    async fn call<T: DeserializeOwned>(
        &mut self,
        resource: &str,
        params: &[(&str, String)],
    ) -> Result<T, Failure> {
        let now = Utc::now();
        let today = quota_day(now);
        if self.state.quota_day != Some(today) {
            self.state.quota_day = Some(today);
            self.state.units = 0;
        }
        if self.state.units + 1 > self.quota_per_day {
            return Err(self.quota_spent(now, "spent"));
        }
        self.state.units += 1;
        let req = self
            .out
            .http
            .get(format!("{}/{resource}", self.api))
            .query(params)
            .query(&[("key", &self.key)]);
        // Without the URL: it carries the key.
        let fail = |e: reqwest::Error| e.without_url().to_string();
        let resp = req
            .send()
            .await
            .map_err(|e| Failure::transient(format!("{resource}: fetching: {}", fail(e))))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Failure::transient(format!("{resource}: reading: {}", fail(e))))?;
        if !status.is_success() {
            return Err(self.error_answer(status, &headers, &body).within(resource));
        }
        serde_json::from_slice(&body)
            .map_err(|e| Failure::malformed(format!("not a YouTube {resource} list answer: {e}")))
    }

    /// The failure for a spent quota: a rate limit until the next reset.
    fn quota_spent(&mut self, now: DateTime<Utc>, why: &str) -> Failure {
        self.state.units = self.state.units.max(self.quota_per_day);
        let wait = until_reset(now);
        Failure::new(
            FailureKind::RateLimited(wait),
            format!(
                "YouTube quota {why} ({} of {} units today); waiting {} s until midnight Pacific time",
                self.state.units,
                self.quota_per_day,
                wait.as_secs()
            ),
        )
    }

    /// The failure for an error answer, by the reasons in its body.
    fn error_answer(
        &mut self,
        status: reqwest::StatusCode,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Failure {
        // Google answers a bad key as 400 `badRequest` "API key not valid" with the detail
        // `API_KEY_INVALID` (older answers: reason `keyInvalid`).
        let key_refused = {
            let text = String::from_utf8_lossy(body);
            ["API_KEY_INVALID", "API key not valid", "API key expired"]
                .iter()
                .any(|t| text.contains(t))
        };
        let (message, reasons) = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(b) => (
                b.error.message,
                b.error.errors.into_iter().map(|e| e.reason).collect(),
            ),
            Err(_) => (String::new(), Vec::new()),
        };
        let has = |set: &[&str]| reasons.iter().any(|r| set.contains(&r.as_str()));
        let detail = match (reasons.is_empty(), message.is_empty()) {
            (true, true) => String::new(),
            (true, false) => format!(": {message}"),
            (false, _) => format!(" ({}: {message})", reasons.join(", ")),
        };
        if has(QUOTA_REASONS) {
            return self.quota_spent(Utc::now(), &format!("exceeded{detail}"));
        }
        let code = status.as_u16();
        let kind = if key_refused || has(&["keyInvalid", "keyExpired", "accessNotConfigured"]) {
            FailureKind::Denied
        } else if has(ITEM_REASONS) || has(&["forbidden"]) {
            // `forbidden`: this video's or channel's comments are closed to the key.
            FailureKind::Transient
        } else if code == 429 || has(SLOW_DOWN_REASONS) {
            FailureKind::RateLimited(
                rate_limit_wait(headers, Utc::now()).unwrap_or(DEFAULT_RATE_LIMIT_WAIT),
            )
        } else if matches!(code, 401 | 403) {
            FailureKind::Denied
        } else {
            FailureKind::Transient
        };
        Failure {
            status: Some(code),
            ..Failure::new(kind, format!("HTTP {status}{detail}"))
        }
    }

    fn save(&self) -> Result<(), ConnectorError> {
        save_state(&self.path, &self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_entries_are_channels_or_videos() {
        let ch = "UC_x5XG1OV2P6uZZ5FSM9Ttw";
        assert_eq!(Target::parse(ch), Ok(Target::Channel(ch.into())));
        assert_eq!(
            Target::parse(&format!("channel:{ch}")),
            Ok(Target::Channel(ch.into()))
        );
        assert_eq!(
            Target::parse("dQw4w9WgXcQ"),
            Ok(Target::Video("dQw4w9WgXcQ".into()))
        );
        assert_eq!(
            Target::parse("video:dQw4w9WgXcQ"),
            Ok(Target::Video("dQw4w9WgXcQ".into()))
        );
        for bad in [
            "nusapay",
            "video:UC_x5XG1OV2P6uZZ5FSM9Ttw",
            "channel:dQw4w9WgXcQ",
            "https://youtu.be/dQw4w9WgXcQ",
            "dQw4w9WgXc!",
        ] {
            let e = Target::parse(bad).unwrap_err();
            assert!(e.contains(bad) && e.contains("video id"), "{e}");
        }
    }

    #[test]
    fn the_quota_day_turns_at_midnight_pacific_standard_time() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // 07:59 UTC is 23:59 the day before at UTC−8.
        assert_eq!(
            quota_day(t("2026-12-07T07:59:00Z")),
            NaiveDate::from_ymd_opt(2026, 12, 6).unwrap()
        );
        assert_eq!(
            quota_day(t("2026-12-07T08:00:00Z")),
            NaiveDate::from_ymd_opt(2026, 12, 7).unwrap()
        );
        assert_eq!(
            until_reset(t("2026-12-07T07:59:00Z")),
            Duration::from_secs(60)
        );
        assert_eq!(
            until_reset(t("2026-12-07T08:00:00Z")),
            Duration::from_secs(24 * 3600)
        );
    }

    #[test]
    fn comments_and_replies_become_valid_mentions() {
        let thread: CommentThread = serde_json::from_value(serde_json::json!({
            "kind": "youtube#commentThread", "id": "UgxThread1",
            "snippet": {"channelId": "UCa", "videoId": "dQw4w9WgXcQ", "totalReplyCount": 3,
                "canReply": true, "isPublic": true,
                "topLevelComment": {"kind": "youtube#comment", "id": "UgxThread1",
                    "snippet": {"videoId": "dQw4w9WgXcQ", "textDisplay": "NusaPay error lagi",
                        "textOriginal": "NusaPay error lagi!", "authorDisplayName": "@budi",
                        "authorChannelId": {"value": "UCbudi"}, "likeCount": 4,
                        "publishedAt": "2026-11-27T08:00:00Z", "updatedAt": "2026-11-27T08:00:00Z"}}},
            "replies": {"comments": [{"kind": "youtube#comment", "id": "UgxThread1.r1",
                "snippet": {"textDisplay": "sama", "authorDisplayName": "@sari",
                    "authorChannelId": {"value": "UCsari"}, "parentId": "UgxThread1",
                    "likeCount": 1, "publishedAt": "2026-11-27T09:00:00Z"}}]}
        }))
        .unwrap();
        let now = Utc::now();
        let s = &thread.snippet;
        let m = comment_mention(
            &s.top_level_comment,
            &thread.id,
            Some("dQw4w9WgXcQ"),
            3,
            now,
        )
        .unwrap();
        assert_eq!(m.text, "NusaPay error lagi!");
        assert_eq!(
            (m.author.id.as_str(), m.author.handle.as_str()),
            ("UCbudi", "@budi")
        );
        assert_eq!(
            m.url.as_deref(),
            Some("https://www.youtube.com/watch?v=dQw4w9WgXcQ&lc=UgxThread1")
        );
        assert_eq!(
            (m.metrics.unwrap().likes, m.metrics.unwrap().replies),
            (4, 3)
        );
        assert_eq!(m.parent_id, None);
        Mention::parse(&serde_json::to_vec(&m).unwrap()).unwrap();
        let reply = &thread.replies.as_ref().unwrap().comments[0];
        let r = comment_mention(reply, &thread.id, s.video_id.as_deref(), 0, now).unwrap();
        assert_eq!(r.text, "sama");
        assert_eq!(r.parent_id.as_deref(), Some("UgxThread1"));
        assert_eq!(r.thread_id.as_deref(), Some("UgxThread1"));
        assert_eq!(
            r.url.as_deref(),
            Some("https://www.youtube.com/watch?v=dQw4w9WgXcQ&lc=UgxThread1.r1")
        );
        Mention::parse(&serde_json::to_vec(&r).unwrap()).unwrap();
        let mut empty = reply.clone();
        empty.snippet.text_display = Some("  ".into());
        assert!(comment_mention(&empty, "t", None, 0, now).is_none());
    }
}
