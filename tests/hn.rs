//! The Hacker News connector against a local stand-in for the HN Search API
//! (`/api/v1/search_by_date` with `query`, `tags`, `numericFilters=created_at_i>=N`,
//! `hitsPerPage` and `page`, newest first) and the real Kafka and ClickHouse: new hits only, also
//! those sharing a second with the last one sent, every page of a burst, deleted items skipped,
//! a failing query reported.
//! Needs `scripts/services.sh up` (the README's test command does it).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use common::{Stages, TestEnv};
use gema::sources::hn::Poller;
use serde_json::{json, Value};

const T0: i64 = 1_795_766_400;

/// Hit `i`: two hits per second; even ones are comments; hit 140 was deleted (no author).
fn hit(i: i64) -> Value {
    let t = T0 + i / 2;
    let created = chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339();
    let mut h = json!({
        "objectID": (40_000_000 + i).to_string(), "created_at": created, "created_at_i": t,
        "author": format!("u{i}"), "points": 1, "num_comments": 0, "story_id": 40_000_001,
    });
    if i % 2 == 0 {
        h["comment_text"] = json!(format!("NusaPay <i>error</i> lagi, saldo hilang ({i})"));
        h["parent_id"] = json!(40_000_001);
    } else {
        h["title"] = json!(format!("NusaPay outage report {i}"));
    }
    if i == 140 {
        h["author"] = Value::Null;
    }
    h
}

async fn search(
    State(hits): State<Arc<Mutex<Vec<Value>>>>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    if q.get("query").map(String::as_str) != Some("nusapay") {
        return (StatusCode::INTERNAL_SERVER_ERROR, "{}").into_response();
    }
    assert_eq!(q.get("tags").map(String::as_str), Some("(story,comment)"));
    let since: i64 = q
        .get("numericFilters")
        .map(|f| f.strip_prefix("created_at_i>=").unwrap().parse().unwrap())
        .unwrap_or(0);
    let per: usize = q["hitsPerPage"].parse().unwrap();
    let page: usize = q["page"].parse().unwrap();
    let all: Vec<Value> = hits
        .lock()
        .unwrap()
        .iter()
        .rev()
        .filter(|h| h["created_at_i"].as_i64().unwrap() >= since)
        .cloned()
        .collect();
    let pages = all.len().div_ceil(per);
    let page_hits: Vec<Value> = all.into_iter().skip(page * per).take(per).collect();
    axum::Json(json!({"hits": page_hits, "nbPages": pages, "page": page, "hitsPerPage": per}))
        .into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_hits_become_mentions_once_with_every_page_of_a_burst() {
    let env = TestEnv::new("hn");
    let store = env.store().await;
    let hits = Arc::new(Mutex::new((1..=150).map(hit).collect::<Vec<_>>()));
    let app = axum::Router::new()
        .route("/api/v1/search_by_date", get(search))
        .with_state(hits.clone());
    let base = common::serve_locally(app).await;

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("hn.json");
    let queries = vec!["nusapay".to_string(), "broken".to_string()];
    let mut poller = Poller::new(&env.config.kafka, &env.topics, &base, &state)
        .await
        .unwrap();
    // The first poll takes the newest page: hits 51..150, less the deleted one.
    let r = poller.poll(&queries).await.unwrap();
    assert_eq!((r[0].sent, &r[0].error), (99, &None), "{r:?}");
    let broken = r[1].error.as_ref().unwrap().message.as_str();
    assert!(
        broken.contains("query=broken") && broken.contains("500"),
        "{broken}"
    );
    // The last second is asked again, and its two hits are not resent.
    let r = poller.poll(&queries[..1]).await.unwrap();
    assert_eq!((r[0].sent, &r[0].error), (0, &None), "{r:?}");
    // A burst of 120 spans two pages; a restart keeps its place.
    hits.lock().unwrap().extend((151..=270).map(hit));
    drop(poller);
    let mut poller = Poller::new(&env.config.kafka, &env.topics, &base, &state)
        .await
        .unwrap();
    assert_eq!(poller.poll(&queries[..1]).await.unwrap()[0].sent, 120);
    assert_eq!(poller.poll(&queries[..1]).await.unwrap()[0].sent, 0);

    let stages = Stages::start(&env, &store);
    env.wait_drained(Duration::from_secs(60)).await;
    stages.stop().await;
    let (n, comments): (u64, u64) = store
        .client
        .query("SELECT count(), countIf(parent_id != '') FROM mentions FINAL WHERE platform = 'hn'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(n, 219);
    assert_eq!(comments, 109, "comments keep their parent");
    env.cleanup(&store).await;
}
