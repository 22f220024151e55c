//! The YouTube connector against a local stand-in for the YouTube Data API v3 and the real Kafka
//! and ClickHouse. The stand-in speaks the documented wire format:
//! `commentThreads.list` (developers.google.com/youtube/v3/docs/commentThreads/list: `videoId` or
//! `allThreadsRelatedToChannelId`, `order=time`, `pageToken` / `nextPageToken`, threads with
//! `snippet.topLevelComment`, `snippet.totalReplyCount` and some `replies.comments`),
//! `comments.list` with `parentId` (/docs/comments/list), `channels.list` `contentDetails`
//! (/docs/channels/list) and `playlistItems.list` (/docs/playlistItems/list), and error answers
//! `{"error":{"code":403,"errors":[{"reason":"quotaExceeded"}]}}` with the reasons of
//! developers.google.com/youtube/v3/docs/errors. It serves at most 20 threads a page, so paging
//! is exercised.
//! Needs `scripts/services.sh up`.

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{Stages, TestEnv};
use gema::mention::Mention;
use gema::sources::http::FailureKind;
use gema::sources::youtube::{until_reset, Poller};
use gema::sources::SourceReport;
use serde_json::{json, Value};

const KEY: &str = "test-key";
const CHANNEL: &str = "UCnusapayOfficial0000000";
const PAGE: usize = 20;
/// 2026-11-27T08:00:00Z.
const T0: i64 = 1_795_766_400;

fn time(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn comment(id: &str, video: &str, at: i64, parent: Option<&str>) -> Value {
    let text = if id.ends_with("empty") {
        String::new()
    } else {
        format!("NusaPay transfer gagal lagi, saldo hilang ({id})")
    };
    let mut snippet = json!({
        "channelId": CHANNEL, "videoId": video, "textDisplay": text, "textOriginal": text,
        "authorDisplayName": format!("@u-{id}"), "authorProfileImageUrl": "https://yt3.example/a.jpg",
        "authorChannelUrl": "http://www.youtube.com/@u", "authorChannelId": {"value": format!("UC-{id}")},
        "canRate": true, "viewerRating": "none", "likeCount": 2,
        "publishedAt": time(at), "updatedAt": time(at)
    });
    if let Some(p) = parent {
        snippet["parentId"] = json!(p);
    }
    json!({"kind": "youtube#comment", "etag": "e", "id": id, "snippet": snippet})
}

/// One video's threads and replies, as the stand-in keeps them.
#[derive(Default)]
struct Video {
    /// Thread ids, oldest first.
    threads: Vec<(String, i64)>,
}

#[derive(Default)]
struct Api {
    videos: HashMap<String, Video>,
    /// Every reply per thread id, oldest first.
    replies: HashMap<String, Vec<Value>>,
    /// The channel's uploads, oldest first.
    uploads: Vec<(String, i64)>,
    /// Answers served instead of the next commentThreads answers: status, body, Retry-After.
    faults: VecDeque<(StatusCode, String, Option<&'static str>)>,
    /// Every call: resource and query.
    calls: Vec<(String, HashMap<String, String>)>,
}

impl Api {
    fn add_thread(&mut self, video: &str, id: &str, at: i64) {
        let v = self.videos.entry(video.to_string()).or_default();
        v.threads.push((id.to_string(), at));
        self.replies.entry(id.to_string()).or_default();
    }

    fn add_reply(&mut self, thread: &str, id: &str, at: i64) {
        let video = self
            .videos
            .iter()
            .find(|(_, v)| v.threads.iter().any(|(t, _)| t == thread))
            .map(|(k, _)| k.clone())
            .unwrap();
        let r = comment(id, &video, at, Some(thread));
        self.replies.get_mut(thread).unwrap().push(r);
    }

    /// The thread resource: its top-level comment and its first five replies.
    fn thread(&self, video: &str, id: &str, at: i64) -> Value {
        let replies = &self.replies[id];
        let mut t = json!({
            "kind": "youtube#commentThread", "etag": "e", "id": id,
            "snippet": {"channelId": CHANNEL, "videoId": video, "canReply": true, "isPublic": true,
                "totalReplyCount": replies.len(), "topLevelComment": comment(id, video, at, None)}
        });
        if !replies.is_empty() {
            t["replies"] = json!({"comments": replies.iter().take(5).collect::<Vec<_>>()});
        }
        t
    }

    fn calls_of(&self, resource: &str) -> usize {
        self.calls.iter().filter(|(r, _)| r == resource).count()
    }
}

type Shared = Arc<Mutex<Api>>;

fn page(items: Vec<Value>, offset: usize, kind: &str) -> Value {
    let total = items.len();
    let slice: Vec<Value> = items.into_iter().skip(offset).take(PAGE).collect();
    let mut answer = json!({"kind": kind, "etag": "e", "pageInfo": {"totalResults": total, "resultsPerPage": PAGE}, "items": slice});
    if offset + PAGE < total {
        answer["nextPageToken"] = json!((offset + PAGE).to_string());
    }
    answer
}

fn record(api: &mut Api, resource: &str, q: &HashMap<String, String>) -> Option<Response> {
    api.calls.push((resource.to_string(), q.clone()));
    if q.get("key").map(String::as_str) != Some(KEY) {
        let body = json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
            "errors": [{"message": "API key not valid.", "domain": "global", "reason": "badRequest"}]}});
        return Some((StatusCode::BAD_REQUEST, body.to_string()).into_response());
    }
    None
}

async fn comment_threads(
    State(api): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut api = api.lock().unwrap();
    if let Some(r) = record(&mut api, "commentThreads", &q) {
        return r;
    }
    if let Some((status, body, retry)) = api.faults.pop_front() {
        let mut resp = (status, body).into_response();
        if let Some(r) = retry {
            resp.headers_mut().insert("retry-after", r.parse().unwrap());
        }
        return resp;
    }
    assert_eq!(
        (
            q["part"].as_str(),
            q["order"].as_str(),
            q["textFormat"].as_str()
        ),
        ("snippet,replies", "time", "plainText")
    );
    let videos: Vec<String> = match (q.get("videoId"), q.get("allThreadsRelatedToChannelId")) {
        (Some(v), None) => vec![v.clone()],
        (None, Some(c)) if c == CHANNEL => api.uploads.iter().map(|(v, _)| v.clone()).collect(),
        _ => return (StatusCode::BAD_REQUEST, "{}").into_response(),
    };
    let mut threads: Vec<(i64, Value)> = Vec::new();
    for v in &videos {
        let Some(video) = api.videos.get(v) else {
            let body = json!({"error": {"code": 404, "message": "The video identified by the videoId parameter could not be found.",
                "errors": [{"message": "not found", "domain": "youtube.commentThread", "reason": "videoNotFound"}]}});
            return (StatusCode::NOT_FOUND, body.to_string()).into_response();
        };
        for (id, at) in &video.threads {
            threads.push((*at, api.thread(v, id, *at)));
        }
    }
    // Newest first (order=time).
    threads.sort_by_key(|t| std::cmp::Reverse(t.0));
    let offset = q.get("pageToken").map_or(0, |t| t.parse().unwrap());
    let items = threads.into_iter().map(|(_, t)| t).collect();
    axum::Json(page(items, offset, "youtube#commentThreadListResponse")).into_response()
}

async fn comments(State(api): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut api = api.lock().unwrap();
    if let Some(r) = record(&mut api, "comments", &q) {
        return r;
    }
    let replies = api.replies[&q["parentId"]].clone();
    let offset = q.get("pageToken").map_or(0, |t| t.parse().unwrap());
    axum::Json(page(replies, offset, "youtube#commentListResponse")).into_response()
}

async fn channels(State(api): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut api = api.lock().unwrap();
    if let Some(r) = record(&mut api, "channels", &q) {
        return r;
    }
    assert_eq!(
        (q["part"].as_str(), q["id"].as_str()),
        ("contentDetails", CHANNEL)
    );
    axum::Json(json!({"kind": "youtube#channelListResponse", "items": [{"kind": "youtube#channel", "id": CHANNEL,
        "contentDetails": {"relatedPlaylists": {"likes": "", "uploads": "UUnusapayOfficial0000000"}}}]}))
    .into_response()
}

async fn playlist_items(
    State(api): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut api = api.lock().unwrap();
    if let Some(r) = record(&mut api, "playlistItems", &q) {
        return r;
    }
    assert_eq!(q["playlistId"], "UUnusapayOfficial0000000");
    let items: Vec<Value> = api
        .uploads
        .iter()
        .rev()
        .map(|(v, at)| {
            json!({"kind": "youtube#playlistItem", "id": format!("pl-{v}"),
            "contentDetails": {"videoId": v, "videoPublishedAt": time(*at)}})
        })
        .collect();
    axum::Json(json!({"kind": "youtube#playlistItemListResponse", "items": items})).into_response()
}

async fn stand_in(api: Shared) -> String {
    let app = axum::Router::new()
        .route("/youtube/v3/commentThreads", get(comment_threads))
        .route("/youtube/v3/comments", get(comments))
        .route("/youtube/v3/channels", get(channels))
        .route("/youtube/v3/playlistItems", get(playlist_items))
        .with_state(api);
    format!("{}/youtube/v3", common::serve_locally(app).await)
}

fn sent(reports: &[SourceReport]) -> usize {
    reports.iter().map(|r| r.sent).sum()
}

fn no_errors(reports: &[SourceReport]) {
    assert!(reports.iter().all(|r| r.error.is_none()), "{reports:?}");
}

/// Every mention on the raw topic, checked valid, keyed `youtube:<id>`.
fn raw_mentions(env: &TestEnv) -> Vec<Mention> {
    env.read_topic(&env.topics.raw)
        .into_iter()
        .map(|(key, payload)| {
            let m = Mention::parse(&payload).expect("a valid mention");
            assert_eq!(String::from_utf8(key).unwrap(), m.key());
            m
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_and_replies_of_videos_and_channels_arrive_once_across_restarts() {
    let env = TestEnv::new("youtube");
    let store = env.store().await;
    let api: Shared = Arc::default();
    let video = "vidNusaPay1";
    {
        let mut a = api.lock().unwrap();
        for i in 1..=15 {
            a.add_thread(video, &format!("Ug-a{i:02}"), T0 + i * 60);
        }
        // Two replies, both in the thread answer; seven, five of them in it; one empty comment.
        a.add_reply("Ug-a03", "Ug-a03.r1", T0 + 970);
        a.add_reply("Ug-a03", "Ug-a03.r2", T0 + 971);
        for r in 1..=7 {
            a.add_reply("Ug-a05", &format!("Ug-a05.r{r}"), T0 + 980 + r);
        }
        a.add_thread(video, "Ug-a16-empty", T0 + 16 * 60);
        // The channel's one upload so far has a thread of its own.
        a.uploads.push(("vidChanOld1".into(), T0 - 86_400));
        a.add_thread("vidChanOld1", "Ug-c01", T0 + 30);
    }
    let base = stand_in(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("youtube.json");
    let open = || {
        Poller::new(
            &env.config.kafka,
            &env.topics,
            &base,
            KEY.into(),
            10_000,
            &state,
        )
    };
    let mut poller = open().await.unwrap();
    let follow = vec![format!("video:{video}"), CHANNEL.to_string()];

    // 15 threads, 2 + 7 replies (the empty comment skipped), and the channel's thread.
    let r = poller.poll(&follow).await.unwrap();
    no_errors(&r);
    assert_eq!((r[0].sent, r[1].sent), (24, 1), "{r:?}");
    assert_eq!(
        api.lock().unwrap().calls_of("comments"),
        1,
        "only Ug-a05 has left-out replies"
    );
    // Nothing new: nothing sent, and the left-out replies are not asked for again.
    let r = poller.poll(&follow).await.unwrap();
    no_errors(&r);
    assert_eq!(sent(&r), 0, "{r:?}");
    assert_eq!(api.lock().unwrap().calls_of("comments"), 1);

    // 25 new threads (two pages; two at the second of the newest comment sent), a new reply to
    // an old thread, and a new upload whose comments come both through the channel and the video.
    {
        let mut a = api.lock().unwrap();
        a.add_thread(video, "Ug-b00", T0 + 987);
        a.add_thread(video, "Ug-b01", T0 + 987);
        for i in 2..25 {
            a.add_thread(video, &format!("Ug-b{i:02}"), T0 + 5000 + i * 60);
        }
        a.add_reply("Ug-a05", "Ug-a05.r8", T0 + 9000);
        a.uploads.push(("vidChanNew1".into(), T0 + 8000));
        a.add_thread("vidChanNew1", "Ug-n01", T0 + 8100);
        a.add_thread("vidChanNew1", "Ug-n02", T0 + 8200);
        a.add_reply("Ug-n02", "Ug-n02.r1", T0 + 8300);
    }
    // A restart keeps its place.
    drop(poller);
    let mut poller = open().await.unwrap();
    let r = poller.poll(&follow).await.unwrap();
    no_errors(&r);
    assert_eq!((r[0].sent, r[1].sent), (26, 3), "{r:?}");
    let r = poller.poll(&follow).await.unwrap();
    no_errors(&r);
    assert_eq!(sent(&r), 0, "{r:?}");
    let calls = api.lock().unwrap().calls.clone();
    assert!(
        calls.iter().any(|(r, q)| r == "commentThreads"
            && q.get("videoId").map(String::as_str) == Some("vidChanNew1")),
        "the new upload is followed as a video"
    );
    assert_eq!(
        calls.iter().filter(|(r, _)| r == "channels").count(),
        1,
        "the uploads playlist is looked up once and kept"
    );
    assert!(calls.iter().all(|(_, q)| q["key"] == KEY));

    let mentions = raw_mentions(&env);
    assert_eq!(mentions.len(), 54);
    let mut ids: Vec<&str> = mentions.iter().map(|m| m.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 54, "each comment once");
    let reply = mentions.iter().find(|m| m.id == "Ug-a05.r8").unwrap();
    assert_eq!(reply.parent_id.as_deref(), Some("Ug-a05"));
    assert_eq!(reply.thread_id.as_deref(), Some("Ug-a05"));
    assert_eq!(
        reply.url.as_deref(),
        Some("https://www.youtube.com/watch?v=vidNusaPay1&lc=Ug-a05.r8")
    );
    let top = mentions.iter().find(|m| m.id == "Ug-a05").unwrap();
    assert_eq!(top.metrics.unwrap().replies, 7);
    assert_eq!(top.author.id, "UC-Ug-a05");
    assert_eq!(top.created_at.timestamp(), T0 + 5 * 60);

    // Through enrich and the sink.
    let stages = Stages::start(&env, &store);
    env.wait_drained(Duration::from_secs(60)).await;
    stages.stop().await;
    let (n, negative): (u64, u64) = store
        .client
        .query("SELECT count(), countIf(sentiment = 'negative') FROM mentions FINAL WHERE platform = 'youtube'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(n, 54);
    assert_eq!(negative, n, "every comment is a complaint");
    env.cleanup(&store).await;
}

fn api_error(code: u16, reason: &str) -> (StatusCode, String, Option<&'static str>) {
    let body = json!({"error": {"code": code, "message": format!("{reason} happened"),
        "errors": [{"message": "m", "domain": "youtube.quota", "reason": reason}]}});
    (StatusCode::from_u16(code).unwrap(), body.to_string(), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_sorted_by_reason_and_nothing_is_lost() {
    let env = TestEnv::new("youtube-faults");
    let api: Shared = Arc::default();
    let (v1, v2) = ("vidNusaPay1", "vidNoComms1");
    {
        let mut a = api.lock().unwrap();
        for i in 1..=3 {
            a.add_thread(v1, &format!("Ug-f{i:02}"), T0 + i);
        }
        a.videos.entry(v2.into()).or_default();
    }
    let base = stand_in(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("youtube.json");
    let mut poller = Poller::new(
        &env.config.kafka,
        &env.topics,
        &base,
        KEY.into(),
        10_000,
        &state,
    )
    .await
    .unwrap();
    let follow = vec![v1.to_string()];
    let fault = |f: (StatusCode, String, Option<&'static str>)| {
        api.lock().unwrap().faults.push_back(f);
    };

    // 429 with Retry-After: the wait asked for, nothing lost.
    fault((StatusCode::TOO_MANY_REQUESTS, "{}".into(), Some("7")));
    let r = poller.poll(&follow).await.unwrap();
    assert_eq!(
        r[0].error.as_ref().unwrap().rate_limit(),
        Some(Duration::from_secs(7)),
        "{r:?}"
    );
    assert_eq!(r[0].sent, 0);
    let r = poller.poll(&follow).await.unwrap();
    no_errors(&r);
    assert_eq!(r[0].sent, 3);

    // A 5xx is transient; the next poll recovers.
    api.lock().unwrap().add_thread(v1, "Ug-f04", T0 + 4);
    fault((
        StatusCode::SERVICE_UNAVAILABLE,
        "backend error".into(),
        None,
    ));
    let r = poller.poll(&follow).await.unwrap();
    assert_eq!(
        r[0].error.as_ref().unwrap().kind,
        FailureKind::Transient,
        "{r:?}"
    );
    assert!(
        r[0].error.as_ref().unwrap().message.contains("503"),
        "{r:?}"
    );
    assert_eq!(poller.poll(&follow).await.unwrap()[0].sent, 1);

    // Malformed JSON: nothing sent, the cursor stays.
    api.lock().unwrap().add_thread(v1, "Ug-f05", T0 + 5);
    let cursor = || {
        let s: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        s["videos"].clone()
    };
    let before = cursor();
    fault((StatusCode::OK, "{\"items\": [{\"id\": ".into(), None));
    let r = poller.poll(&follow).await.unwrap();
    assert_eq!(
        r[0].error.as_ref().unwrap().kind,
        FailureKind::Malformed,
        "{r:?}"
    );
    assert_eq!(r[0].sent, 0);
    assert_eq!(cursor(), before);
    assert_eq!(poller.poll(&follow).await.unwrap()[0].sent, 1);

    // Comments disabled on one video fail that video only.
    let both = vec![v2.to_string(), v1.to_string()];
    api.lock().unwrap().add_thread(v1, "Ug-f06", T0 + 6);
    fault(api_error(403, "commentsDisabled"));
    let r = poller.poll(&both).await.unwrap();
    let e = r[0].error.as_ref().unwrap();
    assert_eq!(e.kind, FailureKind::Transient, "{r:?}");
    assert!(
        e.message.contains("commentsDisabled") && e.message.contains(v2),
        "{e}"
    );
    assert_eq!((r[1].sent, &r[1].error), (1, &None), "{r:?}");

    // A refused key stops the source: keyInvalid (400), accessNotConfigured (403), a plain
    // 401 are Denied.
    for f in [
        api_error(400, "keyInvalid"),
        api_error(403, "accessNotConfigured"),
        (StatusCode::UNAUTHORIZED, "".into(), None),
    ] {
        fault(f);
        let r = poller.poll(&follow).await.unwrap();
        assert!(r[0].error.as_ref().unwrap().is_denied(), "{r:?}");
    }
    // `forbidden` closes one video's comments to the key: that video fails, the source goes on.
    fault(api_error(403, "forbidden"));
    let r = poller.poll(&follow).await.unwrap();
    assert_eq!(
        r[0].error.as_ref().unwrap().kind,
        FailureKind::Transient,
        "{r:?}"
    );
    // A key Google does not know: 400 `badRequest` "API key not valid" (how the API answers
    // today) stops the source too.
    let wrong = dir.path().join("wrong-key.json");
    let mut refused = Poller::new(
        &env.config.kafka,
        &env.topics,
        &base,
        "not-the-key".into(),
        10_000,
        &wrong,
    )
    .await
    .unwrap();
    let r = refused.poll(&follow).await.unwrap();
    let e = r[0].error.as_ref().unwrap();
    assert!(
        e.is_denied() && e.message.contains("API key not valid"),
        "{e}"
    );
    assert!(
        !e.message.contains("not-the-key"),
        "the key stays out of messages: {e}"
    );

    // quotaExceeded is a rate limit until midnight Pacific time, not a refused key, and it ends
    // the round: the next video is not asked for.
    fault(api_error(403, "quotaExceeded"));
    let calls = api.lock().unwrap().calls.len();
    let r = poller
        .poll(&[v1.to_string(), v2.to_string()])
        .await
        .unwrap();
    let reset = until_reset(chrono::Utc::now());
    for report in &r {
        let e = report.error.as_ref().unwrap();
        assert!(!e.is_denied(), "{e}");
        let wait = e.rate_limit().expect("rate limited");
        assert!(
            reset.abs_diff(wait) < Duration::from_secs(60),
            "{wait:?} vs {reset:?}"
        );
    }
    assert_eq!(api.lock().unwrap().calls.len(), calls + 1);
    // The quota stays spent for the day, across a restart: no call is made.
    drop(poller);
    let mut poller = Poller::new(
        &env.config.kafka,
        &env.topics,
        &base,
        KEY.into(),
        10_000,
        &state,
    )
    .await
    .unwrap();
    let r = poller.poll(&follow).await.unwrap();
    assert!(r[0].error.as_ref().unwrap().rate_limit().is_some(), "{r:?}");
    assert_eq!(api.lock().unwrap().calls.len(), calls + 1);

    // Quota accounting: with 3 units a day, three list calls are made, then none.
    let (e1, e2) = ("vidEmpty001", "vidEmpty002");
    {
        let mut a = api.lock().unwrap();
        a.videos.entry(e1.into()).or_default();
        a.videos.entry(e2.into()).or_default();
    }
    let empties = vec![e1.to_string(), e2.to_string()];
    let counted = dir.path().join("counted.json");
    let mut poller = Poller::new(
        &env.config.kafka,
        &env.topics,
        &base,
        KEY.into(),
        3,
        &counted,
    )
    .await
    .unwrap();
    let calls = api.lock().unwrap().calls.len();
    no_errors(&poller.poll(&empties).await.unwrap());
    assert_eq!(poller.units_spent(), 2);
    let r = poller.poll(&empties).await.unwrap();
    assert!(r[0].error.is_none(), "{r:?}");
    let e = r[1].error.as_ref().unwrap();
    let wait = e.rate_limit().expect("quota spent");
    assert!(e.message.contains("3 of 3 units"), "{e}");
    assert!(until_reset(chrono::Utc::now()).abs_diff(wait) < Duration::from_secs(60));
    assert_eq!(api.lock().unwrap().calls.len(), calls + 3);
    let r = poller.poll(&empties).await.unwrap();
    assert!(
        r.iter()
            .all(|r| r.error.as_ref().unwrap().rate_limit().is_some()),
        "{r:?}"
    );
    assert_eq!(api.lock().unwrap().calls.len(), calls + 3);

    // Each comment reached Kafka once.
    let mentions = raw_mentions(&env);
    let mut ids: Vec<&str> = mentions.iter().map(|m| m.id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["Ug-f01", "Ug-f02", "Ug-f03", "Ug-f04", "Ug-f05", "Ug-f06"]
    );
}
