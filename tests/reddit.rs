//! The Reddit connector against a local stand-in for Reddit's OAuth API and the real Kafka and
//! ClickHouse. The stand-in speaks the documented wire format: the app-only token request
//! (`POST /api/v1/access_token`, HTTP basic auth, `grant_type=client_credentials`, answering
//! `{"access_token","token_type","expires_in","scope"}`; github.com/reddit-archive/reddit/wiki/OAuth2
//! "Application Only OAuth"), listings `GET /r/{subreddit}/new`, `/r/{subreddit}/comments` and
//! `/search` (www.reddit.com/dev/api: `{"kind":"Listing","data":{"after","before","children":
//! [{"kind":"t3"|"t1","data":{…}}]}}`, newest first, paged with `after`) and the rate-limit
//! headers `X-Ratelimit-Used`, `X-Ratelimit-Remaining`, `X-Ratelimit-Reset`
//! (support.reddithelp.com "Data API Wiki"). It serves at most 25 items a page, so paging is
//! exercised.
//! Needs `scripts/services.sh up`.

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::{Stages, TestEnv};
use gema::mention::Mention;
use gema::sources::http::FailureKind;
use gema::sources::reddit::Poller;
use gema::sources::SourceReport;
use serde_json::{json, Value};

/// `test-id:test-secret`, base64.
const BASIC: &str = "Basic dGVzdC1pZDp0ZXN0LXNlY3JldA==";
const PAGE: usize = 25;
/// 2026-11-27T08:00:00Z.
const T0: i64 = 1_795_766_400;

#[derive(Default)]
struct Api {
    /// Items per listing (`indonesia/new`, `indonesia/comments`, `search`), oldest first.
    listings: HashMap<String, Vec<Value>>,
    /// Tokens issued, the last one valid.
    tokens: Vec<String>,
    /// The token endpoint refuses the app.
    refuse_app: bool,
    /// Every listing request is refused (401), whatever the token.
    refuse_all: bool,
    /// `X-Ratelimit-Remaining` of the next answers.
    remaining: f64,
    /// Answers served instead of the next listing answers: status, body, Retry-After.
    faults: VecDeque<(StatusCode, String, Option<&'static str>)>,
    /// Listings asked for, with their query.
    calls: Vec<(String, HashMap<String, String>)>,
}

fn post_item(id: &str, at: i64) -> Value {
    json!({"kind": "t3", "data": {
        "id": id, "name": format!("t3_{id}"), "title": format!("NusaPay transfer gagal lagi ({id})"),
        "selftext": "saldo hilang", "author": format!("u_{id}"), "author_fullname": format!("t2_{id}"),
        "created_utc": at as f64, "permalink": format!("/r/indonesia/comments/{id}/nusapay/"),
        "subreddit": "indonesia", "score": 5, "num_comments": 2, "over_18": false}})
}

fn comment_item(id: &str, at: i64) -> Value {
    let body = match id {
        "c05" => "[removed]".to_string(),
        "c06" => "[deleted]".to_string(),
        _ => format!("NusaPay transfer gagal lagi, saldo hilang ({id})"),
    };
    json!({"kind": "t1", "data": {
        "id": id, "name": format!("t1_{id}"), "body": body, "author": format!("u_{id}"),
        "created_utc": at as f64, "permalink": format!("/r/indonesia/comments/p01/nusapay/{id}/"),
        "link_id": "t3_p01", "parent_id": "t3_p01", "score": 1, "subreddit": "indonesia"}})
}

type Shared = Arc<Mutex<Api>>;

async fn token(State(api): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut api = api.lock().unwrap();
    let ua = headers["user-agent"].to_str().unwrap();
    assert!(ua.contains(":gema:"), "{ua}");
    assert_eq!(body, "grant_type=client_credentials");
    if api.refuse_app || headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(BASIC) {
        return (
            StatusCode::UNAUTHORIZED,
            "{\"message\": \"Unauthorized\", \"error\": 401}",
        )
            .into_response();
    }
    let t = format!("tok-{}", api.tokens.len() + 1);
    api.tokens.push(t.clone());
    axum::Json(
        json!({"access_token": t, "token_type": "bearer", "expires_in": 86400, "scope": "*"}),
    )
    .into_response()
}

fn listing(api: &mut Api, key: &str, q: HashMap<String, String>, headers: &HeaderMap) -> Response {
    api.calls.push((key.to_string(), q.clone()));
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
    let valid = api.tokens.last().map(|t| format!("bearer {t}"));
    if api.refuse_all || bearer.map(str::to_lowercase) != valid {
        return (
            StatusCode::UNAUTHORIZED,
            "{\"message\": \"Unauthorized\", \"error\": 401}",
        )
            .into_response();
    }
    assert!(headers["user-agent"].to_str().unwrap().contains(":gema:"));
    if let Some((status, body, retry)) = api.faults.pop_front() {
        let mut resp = (status, body).into_response();
        if let Some(r) = retry {
            resp.headers_mut().insert("retry-after", r.parse().unwrap());
        }
        return resp;
    }
    let items: Vec<Value> = api.listings.get(key).cloned().unwrap_or_default();
    let newest_first: Vec<Value> = items.into_iter().rev().collect();
    let start = match q.get("after") {
        Some(a) => {
            newest_first
                .iter()
                .position(|t| t["data"]["name"] == a.as_str())
                .unwrap()
                + 1
        }
        None => 0,
    };
    let limit: usize = q["limit"].parse::<usize>().unwrap().min(PAGE);
    let page: Vec<Value> = newest_first
        .iter()
        .skip(start)
        .take(limit)
        .cloned()
        .collect();
    let after = match start + limit < newest_first.len() {
        true => page.last().map(|t| t["data"]["name"].clone()),
        false => None,
    };
    let body = json!({"kind": "Listing", "data": {"after": after, "dist": page.len(), "modhash": "",
        "before": null, "children": page}});
    let mut resp = axum::Json(body).into_response();
    let h = resp.headers_mut();
    h.insert("x-ratelimit-used", "4".parse().unwrap());
    h.insert(
        "x-ratelimit-remaining",
        format!("{:.1}", api.remaining).parse().unwrap(),
    );
    h.insert("x-ratelimit-reset", "33".parse().unwrap());
    resp
}

async fn subreddit(
    State(api): State<Shared>,
    Path((name, which)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut api = api.lock().unwrap();
    listing(&mut api, &format!("{name}/{which}"), q, &headers)
}

async fn search(
    State(api): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut api = api.lock().unwrap();
    assert_eq!((q["sort"].as_str(), q["type"].as_str()), ("new", "link"));
    let key = format!("search:{}", q["q"]);
    listing(&mut api, &key, q, &headers)
}

async fn stand_in(api: Shared) -> String {
    let app = axum::Router::new()
        .route("/api/v1/access_token", post(token))
        .route("/r/{name}/{which}", get(subreddit))
        .route("/search", get(search))
        .with_state(api);
    common::serve_locally(app).await
}

fn push(api: &Shared, key: &str, items: impl IntoIterator<Item = Value>) {
    api.lock()
        .unwrap()
        .listings
        .entry(key.to_string())
        .or_default()
        .extend(items);
}

fn no_errors(reports: &[SourceReport]) {
    assert!(reports.iter().all(|r| r.error.is_none()), "{reports:?}");
}

fn new_api() -> Shared {
    Arc::new(Mutex::new(Api {
        remaining: 500.0,
        ..Api::default()
    }))
}

async fn poller(env: &TestEnv, base: &str, state: &std::path::Path) -> Poller {
    Poller::new(
        &env.config.kafka,
        &env.topics,
        base,
        "test-id".into(),
        "test-secret".into(),
        state,
    )
    .await
    .unwrap()
}

/// Every mention on the raw topic, checked valid and keyed `reddit:<fullname>`.
fn raw_ids(env: &TestEnv) -> Vec<String> {
    let mut ids: Vec<String> = env
        .read_topic(&env.topics.raw)
        .into_iter()
        .map(|(key, payload)| {
            let m = Mention::parse(&payload).expect("a valid mention");
            assert_eq!(String::from_utf8(key).unwrap(), m.key());
            m.id
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_and_comments_arrive_once_across_pages_restarts_and_new_tokens() {
    let env = TestEnv::new("reddit");
    let store = env.store().await;
    let api = new_api();
    push(
        &api,
        "indonesia/new",
        (1..=10).map(|i| post_item(&format!("p{i:02}"), T0 + i * 60)),
    );
    push(
        &api,
        "indonesia/comments",
        (1..=20).map(|i| comment_item(&format!("c{i:02}"), T0 + 1000 + i)),
    );
    push(
        &api,
        "search:nusapay error",
        (1..=5).map(|i| post_item(&format!("s{i:02}"), T0 + i)),
    );
    let base = stand_in(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("reddit.json");
    let mut p = poller(&env, &base, &state).await;
    let follow = vec!["r/indonesia".to_string(), "nusapay error".to_string()];

    // 10 posts, 18 comments (one removed, one deleted), 5 search hits.
    let r = p.poll(&follow).await.unwrap();
    no_errors(&r);
    assert_eq!((r[0].sent, r[1].sent), (28, 5), "{r:?}");
    let r = p.poll(&follow).await.unwrap();
    no_errors(&r);
    assert_eq!((r[0].sent, r[1].sent), (0, 0), "{r:?}");
    assert_eq!(api.lock().unwrap().tokens.len(), 1, "the token is kept");

    // 40 new comments (two pages and a bit), 3 new posts (two in the second of the newest sent),
    // 2 new hits; a restart keeps its place.
    push(
        &api,
        "indonesia/comments",
        (21..=60).map(|i| comment_item(&format!("c{i:02}"), T0 + 1000 + i)),
    );
    push(
        &api,
        "indonesia/new",
        [
            post_item("p11", T0 + 600),
            post_item("p12", T0 + 600),
            post_item("p13", T0 + 700),
        ],
    );
    push(
        &api,
        "search:nusapay error",
        [post_item("s06", T0 + 5), post_item("s07", T0 + 9)],
    );
    drop(p);
    let mut p = poller(&env, &base, &state).await;
    let r = p.poll(&follow).await.unwrap();
    no_errors(&r);
    assert_eq!((r[0].sent, r[1].sent), (43, 2), "{r:?}");
    let r = p.poll(&follow).await.unwrap();
    no_errors(&r);
    assert_eq!((r[0].sent, r[1].sent), (0, 0), "{r:?}");

    // A token the API stops taking is replaced once, and the poll goes on.
    api.lock()
        .unwrap()
        .tokens
        .push("tok-revoked-elsewhere".into());
    push(&api, "indonesia/new", [post_item("p14", T0 + 800)]);
    let r = p.poll(&follow).await.unwrap();
    no_errors(&r);
    assert_eq!(r[0].sent, 1, "{r:?}");
    assert_eq!(api.lock().unwrap().tokens.len(), 4);
    let calls = api.lock().unwrap().calls.clone();
    assert!(calls
        .iter()
        .all(|(_, q)| q["raw_json"] == "1" && q["limit"] == "100"));
    assert!(
        calls.iter().any(|(_, q)| q.contains_key("after")),
        "paged with after"
    );

    let ids = raw_ids(&env);
    assert_eq!(ids.len(), 79);
    let mut distinct = ids.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 79, "each item once");
    assert!(!ids.contains(&"t1_c05".to_string()) && !ids.contains(&"t1_c06".to_string()));
    assert!(ids.contains(&"t3_p12".to_string()) && ids.contains(&"t1_c60".to_string()));

    // Through enrich and the sink.
    let stages = Stages::start(&env, &store);
    env.wait_drained(Duration::from_secs(60)).await;
    stages.stop().await;
    let (n, negative, url): (u64, u64, String) = store
        .client
        .query("SELECT count(), countIf(sentiment = 'negative'), anyIf(url, id = 't1_c60') FROM mentions FINAL WHERE platform = 'reddit'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(n, 79);
    assert_eq!(negative, n, "every item is a complaint");
    assert_eq!(
        url,
        "https://www.reddit.com/r/indonesia/comments/p01/nusapay/c60/"
    );
    env.cleanup(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_failures_and_refused_credentials() {
    let env = TestEnv::new("reddit-faults");
    let api = new_api();
    push(
        &api,
        "a_sub/new",
        (1..=3).map(|i| post_item(&format!("a{i:02}"), T0 + i)),
    );
    push(
        &api,
        "search:nusapay",
        (1..=2).map(|i| post_item(&format!("q{i:02}"), T0 + i)),
    );
    let base = stand_in(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("reddit.json");
    let mut p = poller(&env, &base, &state).await;
    let follow = vec!["r/a_sub".to_string()];
    let fault = |f: (StatusCode, &str, Option<&'static str>)| {
        api.lock()
            .unwrap()
            .faults
            .push_back((f.0, f.1.to_string(), f.2));
    };

    // 429 with Retry-After: the wait asked for, nothing lost.
    fault((StatusCode::TOO_MANY_REQUESTS, "{}", Some("9")));
    let r = p.poll(&follow).await.unwrap();
    assert_eq!(
        r[0].error.as_ref().unwrap().rate_limit(),
        Some(Duration::from_secs(9)),
        "{r:?}"
    );
    assert_eq!(r[0].sent, 0);
    let r = p.poll(&follow).await.unwrap();
    no_errors(&r);
    assert_eq!(r[0].sent, 3);

    // A 5xx is transient; the next poll recovers.
    push(&api, "a_sub/new", [post_item("a04", T0 + 4)]);
    fault((StatusCode::BAD_GATEWAY, "<html>bad gateway</html>", None));
    let r = p.poll(&follow).await.unwrap();
    assert_eq!(
        r[0].error.as_ref().unwrap().kind,
        FailureKind::Transient,
        "{r:?}"
    );
    assert_eq!(p.poll(&follow).await.unwrap()[0].sent, 1);

    // Malformed JSON: nothing sent, the cursor file untouched.
    push(&api, "a_sub/new", [post_item("a05", T0 + 5)]);
    let before = std::fs::read(&state).unwrap();
    fault((
        StatusCode::OK,
        "{\"kind\": \"Listing\", \"data\": {\"children\": [",
        None,
    ));
    let r = p.poll(&follow).await.unwrap();
    assert_eq!(
        r[0].error.as_ref().unwrap().kind,
        FailureKind::Malformed,
        "{r:?}"
    );
    assert_eq!(r[0].sent, 0);
    assert_eq!(std::fs::read(&state).unwrap(), before);
    assert_eq!(p.poll(&follow).await.unwrap()[0].sent, 1);

    // The window nearly spent (1 request left): the round ends after the answer in hand, with
    // the reset's wait; the search is not asked for until the next round.
    let both = vec!["r/a_sub".to_string(), "nusapay".to_string()];
    push(&api, "a_sub/new", [post_item("a06", T0 + 6)]);
    api.lock().unwrap().remaining = 1.0;
    let searches = |api: &Shared| {
        api.lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(k, _)| k.starts_with("search"))
            .count()
    };
    let r = p.poll(&both).await.unwrap();
    assert_eq!(r[0].sent, 1, "{r:?}");
    for report in &r {
        assert_eq!(
            report.error.as_ref().unwrap().rate_limit(),
            Some(Duration::from_secs(33)),
            "{r:?}"
        );
    }
    assert_eq!(searches(&api), 0);
    // A listing cut short by the window sends nothing and keeps its place.
    push(
        &api,
        "a_sub/new",
        (7..=40).map(|i| post_item(&format!("a{i:02}"), T0 + i)),
    );
    let r = p.poll(&both).await.unwrap();
    assert_eq!(r[0].sent, 0, "{r:?}");
    assert!(r[0].error.as_ref().unwrap().rate_limit().is_some(), "{r:?}");
    api.lock().unwrap().remaining = 500.0;
    let r = p.poll(&both).await.unwrap();
    no_errors(&r);
    assert_eq!((r[0].sent, r[1].sent), (34, 2), "{r:?}");

    // A 403 on a listing (a private or banned subreddit) fails that entry only: the app's
    // token works, so the source goes on.
    fault((
        StatusCode::FORBIDDEN,
        "{\"message\": \"Forbidden\", \"error\": 403}",
        None,
    ));
    let e = p.poll(&follow).await.unwrap()[0].error.clone().unwrap();
    assert!(!e.is_denied() && e.message.contains("private"), "{e}");
    // Refused credentials stop the source: a 401 even with a fresh token, a token endpoint
    // that refuses the app.
    api.lock().unwrap().refuse_all = true;
    let tokens = api.lock().unwrap().tokens.len();
    let r = p.poll(&both).await.unwrap();
    let e = r[0].error.as_ref().unwrap();
    assert!(e.is_denied() && e.message.contains("fresh token"), "{e}");
    assert!(r[1].error.as_ref().unwrap().is_denied(), "the round ends");
    assert_eq!(
        api.lock().unwrap().tokens.len(),
        tokens + 1,
        "one new token, then no more"
    );
    {
        let mut a = api.lock().unwrap();
        a.refuse_all = false;
        a.refuse_app = true;
    }
    let mut fresh = poller(&env, &base, &state).await;
    let e = fresh.poll(&follow).await.unwrap()[0].error.clone().unwrap();
    assert!(e.is_denied() && e.message.contains("access_token"), "{e}");

    let ids = raw_ids(&env);
    let mut distinct = ids.clone();
    distinct.dedup();
    assert_eq!((ids.len(), distinct.len()), (42, 42), "each item once");
}
