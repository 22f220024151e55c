//! The Bluesky connector against a local stand-in for `app.bsky.feed.searchPosts` (`q`,
//! `sort=latest`, `since` inclusive on sortAt, `limit`, `cursor`; newest first, as the lexicon
//! describes it) and the real Kafka and ClickHouse: new posts only despite the overlap it asks
//! for, every page of a burst, posts without text skipped, the token sent, a failing query
//! reported. Needs `scripts/services.sh up` (the README's test command does it).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use common::{Stages, TestEnv};
use gema::sources::bluesky::Poller;
use serde_json::{json, Value};

#[derive(Default)]
struct AppView {
    posts: Vec<Value>,
    auth: Vec<Option<String>>,
}

/// Post `i`, `i` seconds after 08:00; post 30 is an image without text.
fn post(i: i64) -> Value {
    let t = DateTime::from_timestamp(1_795_766_400 + i, 0).unwrap();
    let at = t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "uri": format!("at://did:plc:u{i}/app.bsky.feed.post/p{i}"), "cid": "bafy",
        "author": {"did": format!("did:plc:u{i}"), "handle": format!("u{i}.bsky.social")},
        "record": {"$type": "app.bsky.feed.post",
            "text": if i == 30 { String::new() } else { format!("NusaPay gagal transfer, kecewa ({i})") },
            "createdAt": at, "langs": ["id"]},
        "replyCount": 0, "repostCount": 0, "likeCount": 1, "indexedAt": at
    })
}

async fn search(
    State(view): State<Arc<Mutex<AppView>>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let mut view = view.lock().unwrap();
    view.auth.push(
        headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string()),
    );
    if q["q"] != "nusapay" {
        return (StatusCode::BAD_REQUEST, "{\"error\":\"BadQueryString\"}").into_response();
    }
    assert_eq!(q["sort"], "latest");
    let since: Option<DateTime<Utc>> = q.get("since").map(|s| s.parse().unwrap());
    let limit: usize = q["limit"].parse().unwrap();
    let offset: usize = q.get("cursor").map_or(0, |c| c.parse().unwrap());
    let matching: Vec<Value> = view
        .posts
        .iter()
        .rev()
        .filter(|p| {
            let at: DateTime<Utc> = p["indexedAt"].as_str().unwrap().parse().unwrap();
            since.is_none_or(|s| at >= s)
        })
        .cloned()
        .collect();
    let page: Vec<Value> = matching.iter().skip(offset).take(limit).cloned().collect();
    let next = offset + page.len();
    let cursor = (next < matching.len()).then(|| next.to_string());
    axum::Json(json!({"posts": page, "cursor": cursor})).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searched_posts_become_mentions_once_with_every_page_of_a_burst() {
    let env = TestEnv::new("bluesky");
    let store = env.store().await;
    let view = Arc::new(Mutex::new(AppView {
        posts: (1..=120).map(post).collect(),
        auth: Vec::new(),
    }));
    let app = axum::Router::new()
        .route("/xrpc/app.bsky.feed.searchPosts", get(search))
        .with_state(view.clone());
    let base = common::serve_locally(app).await;

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("bluesky.json");
    let token = Some("bsky-t0ken".to_string());
    let queries = vec!["nusapay".to_string(), "bad query".to_string()];
    let mut poller = Poller::new(&env.config.kafka, &env.topics, &base, token.clone(), &state)
        .await
        .unwrap();
    // The first poll takes the newest page: posts 21..120, less the one without text.
    let r = poller.poll(&queries).await.unwrap();
    assert_eq!((r[0].sent, &r[0].error), (99, &None), "{r:?}");
    assert!(
        r[1].error
            .as_ref()
            .unwrap()
            .message
            .as_str()
            .contains("400"),
        "{r:?}"
    );
    // The minute of overlap it asks for is not resent.
    let r = poller.poll(&queries[..1]).await.unwrap();
    assert_eq!((r[0].sent, &r[0].error), (0, &None), "{r:?}");
    // A burst of 150 spans two pages; a restart keeps its place.
    view.lock().unwrap().posts.extend((121..=270).map(post));
    drop(poller);
    let mut poller = Poller::new(&env.config.kafka, &env.topics, &base, token, &state)
        .await
        .unwrap();
    assert_eq!(poller.poll(&queries[..1]).await.unwrap()[0].sent, 150);
    assert_eq!(poller.poll(&queries[..1]).await.unwrap()[0].sent, 0);
    let auth = view.lock().unwrap().auth.clone();
    assert!(
        auth.iter()
            .all(|a| a.as_deref() == Some("Bearer bsky-t0ken")),
        "{auth:?}"
    );

    let stages = Stages::start(&env, &store);
    env.wait_drained(Duration::from_secs(60)).await;
    stages.stop().await;
    let n: u64 = store
        .client
        .query("SELECT count() FROM mentions FINAL WHERE platform = 'bluesky'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(n, 249);
    env.cleanup(&store).await;
}
