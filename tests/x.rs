//! The X connector against a local stand-in for the X API v2 and the real Kafka and ClickHouse.
//! The stand-in speaks the documented wire format:
//! - filtered stream rules (developer.x.com/en/docs/x-api/tweets/filtered-stream/api-reference/
//!   get-tweets-search-stream-rules and post-tweets-search-stream-rules): `{"data":[{"id",
//!   "value","tag"}],"meta":{…}}`, `{"add":[{"value","tag"}]}` / `{"delete":{"ids":[…]}}`
//!   answered with `data`, `meta.summary` and `errors` naming a refused rule's `value`;
//! - the filtered stream (…/filtered-stream/api-reference/get-tweets-search-stream and
//!   …/filtered-stream/integrate/handling-disconnections): newline-delimited JSON posts with
//!   `includes.users` and `matching_rules`, `\r\n` keep-alives, an `errors` line for an
//!   operational disconnect, 429 with `Retry-After`, 401 for a bad token;
//! - recent search (…/tweets/search/api-reference/get-tweets-search-recent): `query`,
//!   `since_id`, `max_results`, newest first, `meta.next_token` paging.
//!
//! Needs `scripts/services.sh up` (the README's test command does it).

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{Stages, TestEnv};
use gema::mention::Mention;
use gema::metrics::Metrics;
use gema::sources::health::Tracker;
use gema::sources::http::FailureKind;
use gema::sources::x::{self, Rule, Stream};
use gema::tracked::TrackedQueryConfig;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// What one connection to the stream does.
enum Conn {
    /// Answers with this status and `Retry-After`.
    Status(u16, Option<&'static str>),
    /// Streams these steps, then ends the answer (a dropped connection).
    Steps(Vec<Step>),
}

enum Step {
    Send(String),
    Sleep(u64),
    /// Sends nothing more, ever.
    Hang,
}

#[derive(Default)]
struct Api {
    /// (id, value, tag) of the rules on X.
    rules: Vec<(String, String, Option<String>)>,
    next_rule: u64,
    /// Posts recent search finds, any order.
    posted: Vec<u64>,
    /// What each stream connection does, in turn; none left: keep-alives only.
    conns: VecDeque<Conn>,
    /// (query, since_id) of each recent search (its first page).
    searches: Vec<(String, String)>,
    /// The Authorization header of every request.
    auth: Vec<String>,
    /// The query string of each stream connection.
    stream_queries: Vec<String>,
}

type Shared = Arc<Mutex<Api>>;

fn tweet(id: u64) -> Value {
    json!({
        "id": id.to_string(),
        "text": format!("NusaPay refund gagal lagi, saldo hilang ({id})"),
        "created_at": "2026-11-27T08:00:00.000Z", "author_id": "42", "lang": "in",
        "conversation_id": id.to_string(), "edit_history_tweet_ids": [id.to_string()],
        "public_metrics": {"retweet_count": 1, "reply_count": 2, "like_count": 3, "quote_count": 0}
    })
}

fn user() -> Value {
    json!({"id": "42", "name": "Budi", "username": "budi_s", "public_metrics": {"followers_count": 120}})
}

/// A stream line carrying post `id`.
fn line(id: u64) -> Step {
    let v = json!({
        "data": tweet(id), "includes": {"users": [user()]},
        "matching_rules": [{"id": "1", "tag": "gema:query:brand"}]
    });
    Step::Send(format!("{v}\r\n"))
}

fn keep_alive() -> Step {
    Step::Send("\r\n".into())
}

fn record_auth(api: &Shared, headers: &HeaderMap) {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    api.lock().unwrap().auth.push(auth);
}

async fn get_rules(State(api): State<Shared>, headers: HeaderMap) -> Response {
    record_auth(&api, &headers);
    let api = api.lock().unwrap();
    let data: Vec<Value> = api
        .rules
        .iter()
        .map(|(id, value, tag)| match tag {
            Some(t) => json!({"id": id, "value": value, "tag": t}),
            None => json!({"id": id, "value": value}),
        })
        .collect();
    let meta = json!({"sent": "2026-11-27T08:00:00.000Z", "result_count": data.len()});
    if data.is_empty() {
        axum::Json(json!({ "meta": meta })).into_response()
    } else {
        axum::Json(json!({"data": data, "meta": meta})).into_response()
    }
}

async fn post_rules(State(api): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    record_auth(&api, &headers);
    let body: Value = serde_json::from_slice(&body).unwrap();
    let mut api = api.lock().unwrap();
    if let Some(add) = body.get("add") {
        let (mut data, mut errors) = (Vec::new(), Vec::new());
        for r in add.as_array().unwrap() {
            let value = r["value"].as_str().unwrap().to_string();
            if value.starts_with("lang:") {
                errors.push(json!({
                    "value": value, "title": "UnprocessableEntity",
                    "details": ["Rules must contain a non-negation term (at position 1)"],
                    "type": "https://api.twitter.com/2/problems/invalid-rules"
                }));
                continue;
            }
            api.next_rule += 1;
            let id = format!("17000000000000000{:02}", api.next_rule);
            let tag = r["tag"].as_str().map(String::from);
            data.push(json!({"id": id, "value": value, "tag": tag}));
            api.rules.push((id, value, tag));
        }
        let summary = json!({"created": data.len(), "not_created": errors.len(),
                             "valid": data.len(), "invalid": errors.len()});
        let mut answer =
            json!({"data": data, "meta": {"sent": "2026-11-27T08:00:00.000Z", "summary": summary}});
        if !errors.is_empty() {
            answer["errors"] = Value::Array(errors);
        }
        return (StatusCode::CREATED, axum::Json(answer)).into_response();
    }
    let ids: Vec<String> = body["delete"]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    api.rules.retain(|(id, _, _)| !ids.contains(id));
    axum::Json(json!({"meta": {"sent": "2026-11-27T08:00:00.000Z",
        "summary": {"deleted": ids.len(), "not_deleted": 0}}}))
    .into_response()
}

async fn search(
    State(api): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    record_auth(&api, &headers);
    let mut api = api.lock().unwrap();
    let since: u64 = q["since_id"].parse().unwrap();
    if since < 100 {
        let detail = format!("Invalid 'since_id':'{since}'. 'since_id' must be a tweet id created after 2026-11-20T00:00Z");
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"errors": [{"parameters": {"since_id": [since.to_string()]}, "message": detail}],
                              "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
                              "type": "https://api.twitter.com/2/problems/invalid-request"})),
        )
            .into_response();
    }
    assert_eq!(q["max_results"], "100");
    assert!(q["tweet.fields"].contains("referenced_tweets"), "{q:?}");
    if !q.contains_key("next_token") {
        api.searches.push((q["query"].clone(), since.to_string()));
    }
    let mut ids: Vec<u64> = api.posted.iter().copied().filter(|&i| i > since).collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    // Pages of two (X may send fewer than max_results), to page with next_token.
    let from: usize = q.get("next_token").map_or(0, |t| t.parse().unwrap());
    let page: Vec<Value> = ids.iter().skip(from).take(2).map(|&i| tweet(i)).collect();
    let mut meta = json!({"result_count": page.len()});
    if from + 2 < ids.len() {
        meta["next_token"] = json!((from + 2).to_string());
    }
    if page.is_empty() {
        return axum::Json(json!({ "meta": meta })).into_response();
    }
    axum::Json(json!({"data": page, "includes": {"users": [user()]}, "meta": meta})).into_response()
}

async fn stream(
    State(api): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    record_auth(&api, &headers);
    let conn = {
        let mut api = api.lock().unwrap();
        api.stream_queries
            .push(format!("{}|{}", q["tweet.fields"], q["expansions"]));
        api.conns.pop_front()
    };
    let steps = match conn {
        Some(Conn::Status(code, retry)) => {
            let mut r = (
                StatusCode::from_u16(code).unwrap(),
                axum::Json(json!({"title": "refused", "detail": "stand-in", "status": code})),
            )
                .into_response();
            if let Some(s) = retry {
                r.headers_mut().insert("retry-after", s.parse().unwrap());
            }
            return r;
        }
        Some(Conn::Steps(steps)) => steps,
        None => vec![Step::Hang],
    };
    let body = async_stream::stream! {
        for step in steps {
            match step {
                Step::Send(s) => yield Ok::<Bytes, std::convert::Infallible>(Bytes::from(s)),
                Step::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Step::Hang => std::future::pending::<()>().await,
            }
        }
    };
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(body))
        .unwrap()
}

async fn stand_in(api: Shared) -> String {
    let app = axum::Router::new()
        .route(
            "/2/tweets/search/stream/rules",
            get(get_rules).post(post_rules),
        )
        .route("/2/tweets/search/stream", get(stream))
        .route("/2/tweets/search/recent", get(search))
        .with_state(api);
    common::serve_locally(app).await
}

fn tracked(name: &str, query: &str) -> TrackedQueryConfig {
    TrackedQueryConfig {
        name: name.into(),
        query: query.into(),
    }
}

fn rules() -> Vec<Rule> {
    x::wanted_rules(&[tracked("brand", "NusaPay refund")], &[])
}

async fn new_stream(
    env: &TestEnv,
    base: &str,
    rules: Vec<Rule>,
    state: &std::path::Path,
) -> Stream {
    let mut s = Stream::new(
        &env.config.kafka,
        &env.topics,
        base,
        "b3arer".into(),
        rules,
        state,
    )
    .await
    .unwrap();
    s.stall = Duration::from_millis(700);
    s
}

/// The post ids in the raw topic, in order, and the mentions.
fn sent(env: &TestEnv) -> (Vec<u64>, Vec<Mention>) {
    let records = env.read_topic(&env.topics.raw);
    let mentions: Vec<Mention> = records
        .iter()
        .map(|(_, payload)| Mention::parse(payload).unwrap())
        .collect();
    let mut ids: Vec<u64> = mentions.iter().map(|m| m.id.parse().unwrap()).collect();
    ids.sort_unstable();
    (ids, mentions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_follow_the_tracked_queries_and_leave_foreign_rules_alone() {
    let env = TestEnv::new("x-rules");
    let api: Shared = Arc::default();
    {
        let mut a = api.lock().unwrap();
        a.rules = vec![
            ("1".into(), "kopi lang:id".into(), Some("marketing".into())),
            (
                "2".into(),
                "nusapay promo".into(),
                Some("gema:query:old".into()),
            ),
            ("3".into(), "from:nusapay".into(), None),
            // Wanted, but under a tag of another query: re-added under its own.
            (
                "4".into(),
                "@nusapay_cs".into(),
                Some("gema:query:cs".into()),
            ),
        ];
    }
    let base = stand_in(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let wanted = x::wanted_rules(
        &[
            tracked("brand", "NusaPay (refund OR \"top up\")"),
            tracked("only-lang", "lang:id"),
        ],
        &["@nusapay_cs".into(), "from:nusapay".into()],
    );
    let s = new_stream(&env, &base, wanted, &dir.path().join("x.json")).await;

    let sync = s.sync_rules().await.unwrap();
    assert_eq!((sync.added, sync.deleted), (2, 2), "{sync:?}");
    assert_eq!(sync.refused.len(), 1, "{sync:?}");
    let refused = &sync.refused[0];
    assert!(
        refused.contains("\"only-lang\"")
            && refused.contains("lang:id")
            && refused.contains("non-negation term"),
        "{refused}"
    );
    let mut on_x: Vec<(String, Option<String>)> = api
        .lock()
        .unwrap()
        .rules
        .iter()
        .map(|(_, v, t)| (v.clone(), t.clone()))
        .collect();
    on_x.sort();
    assert_eq!(
        on_x,
        [
            ("@nusapay_cs".into(), Some("gema:follow".into())),
            ("from:nusapay".into(), None),
            ("kopi lang:id".into(), Some("marketing".into())),
            (
                "nusapay (refund OR \"top up\")".into(),
                Some("gema:query:brand".into())
            ),
        ]
    );
    // In step: nothing changes but the refused rule is tried (and reported) again.
    let again = s.sync_rules().await.unwrap();
    assert_eq!((again.added, again.deleted, again.refused.len()), (0, 0, 1));
    assert!(api
        .lock()
        .unwrap()
        .auth
        .iter()
        .all(|a| a == "Bearer b3arer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_posts_become_mentions_once_across_drops_backfills_and_a_restart() {
    let env = TestEnv::new("x-stream");
    let store = env.store().await;
    let api: Shared = Arc::default();
    {
        let mut a = api.lock().unwrap();
        a.posted = vec![101, 102];
        a.conns = VecDeque::from([
            // Keep-alives for longer than the stall timeout, a malformed line, then a drop.
            Conn::Steps(vec![
                keep_alive(),
                line(101),
                Step::Sleep(400),
                keep_alive(),
                Step::Sleep(400),
                keep_alive(),
                Step::Send("{\"data\": {\"id\": \"9\", trunc\r\n".into()),
                Step::Sleep(400),
                line(102),
            ]),
            // After the drop: 103..105 posted meanwhile (found by backfill), 105 also streamed.
            Conn::Steps(vec![line(105), keep_alive(), line(106)]),
            // Stalls: keep-alives stop.
            Conn::Steps(vec![keep_alive(), Step::Hang]),
        ]);
    }
    let base = stand_in(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("source-x.json");
    let tracker = Tracker::open("x", "x", &state, Arc::new(Metrics::default()));
    let shutdown = CancellationToken::new();
    let mut s = new_stream(&env, &base, rules(), &state).await;

    let f = s.session(&tracker, &shutdown).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::Transient, "{f}");
    assert!(f.message.contains("ended the stream"), "{f}");
    assert_eq!(s.malformed(), 1);
    assert_eq!(s.newest_id(), Some("102"));
    // No backfill on the first connection: nothing was sent before.
    assert!(api.lock().unwrap().searches.is_empty());

    api.lock().unwrap().posted.extend([103, 104, 105]);
    let f = s.session(&tracker, &shutdown).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::Transient, "{f}");
    assert_eq!(
        api.lock().unwrap().searches,
        [("nusapay refund".to_string(), "102".to_string())]
    );
    let f = s.session(&tracker, &shutdown).await.unwrap_err();
    assert!(f.message.contains("stalled"), "{f}");
    assert_eq!(s.newest_id(), Some("106"));
    assert_eq!(tracker.get().sent, 6);

    // A restart from the state file: 107 was posted while it was down; X then disconnects.
    drop(s);
    {
        let mut a = api.lock().unwrap();
        a.posted.extend([106, 107]);
        a.conns.push_back(Conn::Steps(vec![
            line(107),
            line(108),
            Step::Send(
                "{\"errors\":[{\"title\":\"operational-disconnect\",\"disconnect_type\":\"UpstreamOperationalDisconnect\",\
                 \"detail\":\"This stream has been disconnected upstream for operational reasons.\",\
                 \"type\":\"https://api.twitter.com/2/problems/operational-disconnect\"}]}\r\n"
                    .into(),
            ),
            Step::Hang,
        ]));
    }
    let mut s = new_stream(&env, &base, rules(), &state).await;
    assert_eq!(s.newest_id(), Some("106"));
    let f = s.session(&tracker, &shutdown).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::Transient, "{f}");
    assert!(f.message.contains("operational"), "{f}");
    assert_eq!(
        api.lock().unwrap().searches.last().unwrap(),
        &("nusapay refund".to_string(), "106".to_string())
    );

    let (ids, mentions) = sent(&env);
    assert_eq!(ids, (101..=108).collect::<Vec<_>>(), "each post once");
    let m = mentions.iter().find(|m| m.id == "104").unwrap();
    assert_eq!(m.platform, "x");
    assert_eq!(m.author.handle, "budi_s");
    assert_eq!(m.author.followers, Some(120));
    assert_eq!(m.url.as_deref(), Some("https://x.com/budi_s/status/104"));
    assert_eq!(m.lang.as_deref(), Some("id"));
    assert_eq!(m.thread_id.as_deref(), Some("104"));
    assert_eq!(m.metrics.unwrap().likes, 3);
    {
        let a = api.lock().unwrap();
        assert!(a.auth.iter().all(|h| h == "Bearer b3arer"), "{:?}", a.auth);
        assert!(
            a.stream_queries
                .iter()
                .all(|q| q.contains("conversation_id") && q.ends_with("|author_id")),
            "{:?}",
            a.stream_queries
        );
    }

    // Through enrich and the sink.
    let stages = Stages::start(&env, &store);
    env.wait_drained(Duration::from_secs(60)).await;
    stages.stop().await;
    let (n, negative): (u64, u64) = store
        .client
        .query("SELECT count(), countIf(sentiment = 'negative') FROM mentions FINAL WHERE platform = 'x'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(n, 8);
    assert_eq!(negative, n, "every post is a complaint");
    env.cleanup(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_sort_into_rate_limits_retries_and_a_stop() {
    let env = TestEnv::new("x-refused");
    let api: Shared = Arc::default();
    api.lock().unwrap().conns = VecDeque::from([
        Conn::Status(429, Some("120")),
        Conn::Status(429, Some("5")),
        Conn::Status(503, None),
        Conn::Status(401, None),
    ]);
    let base = stand_in(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("source-x.json");
    let tracker = Tracker::open("x", "x", &state, Arc::new(Metrics::default()));
    let shutdown = CancellationToken::new();
    let mut s = new_stream(&env, &base, rules(), &state).await;

    let f = s.session(&tracker, &shutdown).await.unwrap_err();
    assert_eq!(f.rate_limit(), Some(Duration::from_secs(120)), "{f}");
    assert!(f.message.contains("429"), "{f}");
    // X asks for at least a minute after a 429.
    let f = s.session(&tracker, &shutdown).await.unwrap_err();
    assert_eq!(f.rate_limit(), Some(Duration::from_secs(60)), "{f}");
    let f = s.session(&tracker, &shutdown).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::Transient, "{f}");
    assert!(f.message.contains("503"), "{f}");
    let f = s.session(&tracker, &shutdown).await.unwrap_err();
    assert!(f.is_denied(), "{f}");
    assert!(
        f.message.contains("X filtered stream") && f.message.contains("401"),
        "{f}"
    );

    // A cursor older than recent search reaches: the gap is reported and the stream runs;
    // shutdown ends the connection with Ok.
    drop(s);
    std::fs::write(&state, r#"{"newest_id": "7"}"#).unwrap();
    let mut s = new_stream(&env, &base, rules(), &state).await;
    s.stall = Duration::from_secs(30);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.cancel();
    });
    assert_eq!(s.session(&tracker, &shutdown).await, Ok(()));
    let e = tracker.get().last_error.unwrap();
    assert!(
        e.contains("400") && e.contains("since 7") && e.contains("\"brand\""),
        "{e}"
    );
    assert_eq!(api.lock().unwrap().stream_queries.len(), 5);
}
