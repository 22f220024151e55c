//! The Mastodon connector against a local stand-in for an instance's hashtag timeline API
//! (`GET /api/v1/timelines/tag/:hashtag` with `since_id`, `max_id` and `limit`, newest first, as
//! docs.joinmastodon.org describes it) and the real Kafka and ClickHouse: new posts only, every
//! page of a burst, boosts skipped, the token sent, a failing tag reported.
//! Needs `scripts/services.sh up` (the README's test command does it).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use common::{Stages, TestEnv};
use gema::sources::mastodon::Poller;
use serde_json::{json, Value};

#[derive(Default)]
struct Instance {
    /// Statuses of #nusapay, oldest first.
    statuses: Vec<Value>,
    /// The Authorization header of every request.
    auth: Vec<Option<String>>,
}

fn status(id: u64) -> Value {
    let content = match id {
        1010 => String::new(),
        _ => format!("<p>NusaPay transfer gagal lagi, saldo hilang ({id})</p>"),
    };
    json!({
        "id": id.to_string(),
        "uri": format!("https://social.example/users/u{id}/statuses/{id}"),
        "created_at": "2026-11-27T08:00:00.000Z",
        "in_reply_to_id": null, "spoiler_text": "", "content": content,
        "url": format!("https://social.example/@u{id}/{id}"), "language": "id",
        "replies_count": 0, "reblogs_count": 0, "favourites_count": 1,
        "reblog": if id == 1020 { json!({"id": "1"}) } else { Value::Null },
        "account": {"id": id.to_string(), "username": format!("u{id}"), "acct": format!("u{id}"), "followers_count": 10}
    })
}

async fn timeline(
    State(inst): State<Arc<Mutex<Instance>>>,
    Path(tag): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let mut inst = inst.lock().unwrap();
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    inst.auth.push(auth);
    if tag != "nusapay" {
        return (StatusCode::NOT_FOUND, "{\"error\":\"Record not found\"}").into_response();
    }
    let num = |k: &str| q.get(k).map(|v| v.parse::<u64>().unwrap());
    let (since, max, limit) = (num("since_id"), num("max_id"), num("limit").unwrap_or(20));
    let page: Vec<Value> = inst
        .statuses
        .iter()
        .rev()
        .filter(|s| {
            let id: u64 = s["id"].as_str().unwrap().parse().unwrap();
            since.is_none_or(|x| id > x) && max.is_none_or(|x| id < x)
        })
        .take(limit.min(40) as usize)
        .cloned()
        .collect();
    axum::Json(page).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashtag_posts_become_mentions_once_with_every_page_of_a_burst() {
    let env = TestEnv::new("mastodon");
    let store = env.store().await;
    let inst = Arc::new(Mutex::new(Instance {
        statuses: (1001..=1045).map(status).collect(),
        auth: Vec::new(),
    }));
    let app = axum::Router::new()
        .route("/api/v1/timelines/tag/{tag}", get(timeline))
        .with_state(inst.clone());
    let base = common::serve_locally(app).await;

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("mastodon.json");
    let token = Some("t0ken".to_string());
    let mut poller = Poller::new(&env.config.kafka, &env.topics, &base, token.clone(), &state)
        .await
        .unwrap();
    let tags = vec!["#NusaPay".to_string(), "nothere".to_string()];

    // The first poll takes the newest page: 1006..1045, less the empty post and the boost.
    let r = poller.poll(&tags).await.unwrap();
    assert_eq!(r[0].sent, 38, "{r:?}");
    assert!(r[0].error.is_none(), "{r:?}");
    assert!(
        r[1].source.ends_with("/api/v1/timelines/tag/nothere"),
        "{r:?}"
    );
    assert!(
        r[1].error
            .as_ref()
            .unwrap()
            .message
            .as_str()
            .contains("404"),
        "{r:?}"
    );
    // Nothing new: nothing sent (the tag as a user types it reads the same timeline).
    let r = poller.poll(&tags).await.unwrap();
    assert_eq!((r[0].sent, &r[0].error), (0, &None), "{r:?}");
    // A burst of 45 new posts spans two pages; a restart keeps its place.
    inst.lock()
        .unwrap()
        .statuses
        .extend((1046..=1090).map(status));
    drop(poller);
    let mut poller = Poller::new(&env.config.kafka, &env.topics, &base, token, &state)
        .await
        .unwrap();
    assert_eq!(poller.poll(&tags).await.unwrap()[0].sent, 45);
    let r = poller.poll(&tags).await.unwrap();
    assert_eq!((r[0].sent, &r[0].error), (0, &None), "{r:?}");
    let auth = inst.lock().unwrap().auth.clone();
    assert!(
        auth.iter().all(|a| a.as_deref() == Some("Bearer t0ken")),
        "{auth:?}"
    );

    // Through enrich and the sink.
    let stages = Stages::start(&env, &store);
    env.wait_drained(Duration::from_secs(60)).await;
    stages.stop().await;
    let (n, negative, handle): (u64, u64, String) = store
        .client
        .query("SELECT count(), countIf(sentiment = 'negative'), any(author_handle) FROM mentions FINAL WHERE platform = 'mastodon'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(n, 83);
    assert_eq!(negative, n, "every post is a complaint");
    assert!(handle.ends_with("@127.0.0.1"), "{handle}");
    env.cleanup(&store).await;
}
