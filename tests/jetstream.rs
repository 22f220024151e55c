//! The Jetstream connector against a local stand-in for a Jetstream instance and the real Kafka
//! and ClickHouse. The stand-in follows github.com/bluesky-social/jetstream (README): a WebSocket
//! at `/subscribe` taking `wantedCollections` and `cursor` (a Unix time in microseconds, replayed
//! from inclusive), sending one JSON text frame per event (`did`, `time_us`, `kind` `commit` /
//! `identity` / `account`, a commit's `operation`, `collection`, `rkey` and `record`). Checked:
//! matching posts become mentions once, other posts and events are skipped, a malformed frame is
//! skipped, a drop mid-stream resumes from the cursor with no gap and no repeat, a restart
//! resumes from the state file, a 429 on the handshake is a rate limit, a silent stream is
//! dropped. Needs `scripts/services.sh up` (the README's test command does it).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{Stages, TestEnv};
use gema::sources::config::{SourceConfig, SourceKind};
use gema::sources::env::SourceEnv;
use gema::sources::health::{self, Tracker};
use gema::sources::http::FailureKind;
use gema::sources::jetstream::{Cursor, Stream};
use gema::sources::run::{run_source, Streamer};
use gema::tracked::{QuerySet, TrackedQueryConfig};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Microseconds of event `i`: 2026-11-27 08:00 UTC plus `i` ms.
fn time_us(i: i64) -> i64 {
    1_795_766_400_000_000 + i * 1000
}

fn post(i: i64, text: &str) -> String {
    json!({"did": format!("did:plc:u{i}"), "time_us": time_us(i), "kind": "commit",
        "commit": {"rev": format!("rev{i}"), "operation": "create", "collection": "app.bsky.feed.post",
            "rkey": format!("p{i}"), "cid": "bafy",
            "record": {"$type": "app.bsky.feed.post", "text": text, "langs": ["id"],
                "createdAt": "2026-11-27T07:59:00.000Z"}}})
    .to_string()
}

fn uri(i: i64) -> String {
    format!("at://did:plc:u{i}/app.bsky.feed.post/p{i}")
}

/// Events 1..=12: posts 2, 4, 5, 8, 10 and 12 match `nusapay`; the rest are another post, an
/// identity and an account event, a deletion, an update and a malformed frame.
fn first_events() -> Vec<(i64, String)> {
    let other = |i: i64, kind: &str| {
        json!({"did": "did:plc:x", "time_us": time_us(i), "kind": kind,
            kind: {"did": "did:plc:x", "seq": i, "time": "2026-11-27T08:00:00Z", "active": true}})
        .to_string()
    };
    let commit = |i: i64, op: &str| {
        json!({"did": "did:plc:u2", "time_us": time_us(i), "kind": "commit",
            "commit": {"rev": "r", "operation": op, "collection": "app.bsky.feed.post", "rkey": "p2",
                "record": {"$type": "app.bsky.feed.post", "text": "NusaPay edited", "createdAt": "2026-11-27T07:59:00Z"}}})
        .to_string()
    };
    vec![
        (1, post(1, "kopi pagi ini enak")),
        (2, post(2, "NusaPay gagal transfer lagi")),
        (3, other(3, "identity")),
        (4, post(4, "top up #nusapay kok lama")),
        (5, post(5, "nusapay refund belum masuk")),
        (6, "{\"did\": \"did:plc:broken\", \"time_us\": ".to_string()),
        (7, other(7, "account")),
        (8, post(8, "aplikasi NUSAPAY error")),
        (9, commit(9, "delete")),
        (10, post(10, "nusapay oke sekarang")),
        (11, commit(11, "update")),
        (12, post(12, "makasih nusapay")),
    ]
    .into_iter()
    .map(|(i, text)| (time_us(i), text))
    .collect()
}

#[derive(Default)]
struct Service {
    /// (time_us, frame), in time order; a malformed frame has the time it would have had.
    events: Vec<(i64, String)>,
    /// The `cursor` each connection asked for.
    cursors: Vec<Option<i64>>,
    /// Frames the n-th connection sends before it is cut without a close frame.
    cut_after: HashMap<usize, usize>,
    /// Answer the handshake with this instead of upgrading.
    refuse: Option<(StatusCode, Option<&'static str>)>,
    /// Send nothing at all once upgraded.
    silent: bool,
    /// Pongs received (the connector answering the ping each uncut connection starts with).
    pongs: usize,
}

type Shared = Arc<Mutex<Service>>;

async fn subscribe(
    State(service): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    assert_eq!(q["wantedCollections"], "app.bsky.feed.post");
    let cursor = q.get("cursor").map(|c| c.parse::<i64>().unwrap());
    let (frames, cut, silent) = {
        let mut s = service.lock().unwrap();
        if let Some((status, retry_after)) = s.refuse {
            let mut resp = (status, "rate limit exceeded").into_response();
            if let Some(r) = retry_after {
                resp.headers_mut().insert("retry-after", r.parse().unwrap());
            }
            return resp;
        }
        let n = s.cursors.len();
        s.cursors.push(cursor);
        let frames: Vec<String> = s
            .events
            .iter()
            .filter(|(t, _)| cursor.is_none_or(|c| *t >= c))
            .map(|(_, f)| f.clone())
            .collect();
        (frames, s.cut_after.get(&n).copied(), s.silent)
    };
    ws.on_upgrade(move |socket| serve(socket, service, frames, cut, silent))
}

async fn serve(
    mut socket: WebSocket,
    service: Shared,
    frames: Vec<String>,
    cut: Option<usize>,
    silent: bool,
) {
    if silent {
        while let Some(Ok(_)) = socket.recv().await {}
        return;
    }
    // No ping on a connection about to be cut: its unread pong would make the cut a reset,
    // which may discard frames the connector has not read yet.
    if cut.is_none() {
        socket
            .send(Message::Ping(axum::body::Bytes::from_static(b"hi")))
            .await
            .unwrap();
    }
    for (n, f) in frames.into_iter().enumerate() {
        if cut == Some(n) {
            // Dropped without a close frame, as a network failure would.
            return;
        }
        if socket.send(Message::Text(f.into())).await.is_err() {
            return;
        }
    }
    while let Some(Ok(m)) = socket.recv().await {
        if matches!(m, Message::Pong(_)) {
            service.lock().unwrap().pongs += 1;
        }
    }
}

async fn stand_in(service: Shared) -> String {
    let app = axum::Router::new()
        .route("/subscribe", get(subscribe))
        .with_state(service);
    common::serve_locally(app).await.replace("http://", "ws://")
}

fn tracked() -> Vec<TrackedQueryConfig> {
    vec![TrackedQueryConfig {
        name: "nusapay".into(),
        query: "nusapay OR #nusapay".into(),
    }]
}

/// Waits until the raw topic holds `n` records.
async fn wait_raw(env: &TestEnv, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let size = gema::kafka::lag::topic_size(&env.config.kafka, &env.topics.raw).unwrap();
        if size >= n {
            assert_eq!(size, n, "more records than mentions");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{size} of {n} records in the raw topic"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn raw_ids(env: &TestEnv) -> Vec<String> {
    env.read_topic(&env.topics.raw)
        .iter()
        .map(|(key, payload)| {
            let m: Value = serde_json::from_slice(payload).unwrap();
            assert_eq!(
                String::from_utf8_lossy(key),
                format!("bluesky:{}", m["id"].as_str().unwrap())
            );
            m["id"].as_str().unwrap().to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matching_posts_become_mentions_once_across_a_drop_and_a_restart() {
    let mut env = TestEnv::new("jetstream");
    env.config.tracked = tracked();
    let store = env.store().await;
    gema::kafka::topics::ensure_topics(&env.config.kafka, &env.topics)
        .await
        .unwrap();
    let service = Shared::default();
    {
        let mut s = service.lock().unwrap();
        s.events = first_events();
        // The first connection is cut after five events.
        s.cut_after.insert(0, 5);
    }
    let api = stand_in(service.clone()).await;
    let source = SourceConfig {
        api: Some(api),
        ..SourceConfig::new(SourceKind::Jetstream, &[])
    };
    let source_env = SourceEnv::new(
        &env.config.kafka,
        &env.config.state_dir,
        &env.config.tracked,
        Arc::new(gema::metrics::Metrics::default()),
    );
    let state = source.state_path(&env.config.state_dir);

    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_source(
        source.clone(),
        source_env.clone(),
        shutdown.clone(),
    ));
    wait_raw(&env, 6).await;
    shutdown.cancel();
    task.await.unwrap();

    // Reconnected from just after event 5, the last one of the cut connection.
    let cursors = service.lock().unwrap().cursors.clone();
    assert_eq!(cursors, vec![None, Some(time_us(5) + 1)]);
    let mut ids = raw_ids(&env);
    ids.sort();
    let mut want: Vec<String> = [2, 4, 5, 8, 10, 12].into_iter().map(uri).collect();
    want.sort();
    assert_eq!(ids, want, "each matching post once, nothing else");
    let saved: Cursor = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved.time_us, Some(time_us(12)));
    let h = health::read(&state).unwrap().unwrap();
    assert_eq!(h.sent, 6);
    assert!(h.errors >= 1, "the cut counts as a failure: {h:?}");
    assert!(service.lock().unwrap().pongs >= 1, "the ping was answered");

    // A restart resumes from the state file; the service replays from the cursor.
    {
        let mut s = service.lock().unwrap();
        s.events.push((time_us(13), post(13, "nusapay lagi")));
        s.events.push((time_us(14), post(14, "bukan apa-apa")));
        s.events.push((time_us(15), post(15, "#NusaPay mantap")));
    }
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_source(source, source_env, shutdown.clone()));
    wait_raw(&env, 8).await;
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(
        service.lock().unwrap().cursors[2],
        Some(time_us(12) + 1),
        "the restart asks from the saved cursor"
    );
    let ids: BTreeSet<String> = raw_ids(&env).into_iter().collect();
    assert_eq!(ids.len(), 8);
    assert!(ids.contains(&uri(13)) && ids.contains(&uri(15)), "{ids:?}");

    // End to end: the same posts in ClickHouse, matched by the same query.
    let stages = Stages::start(&env, &store);
    env.wait_drained(Duration::from_secs(60)).await;
    stages.stop().await;
    let (n, matched, author): (u64, u64, String) = store
        .client
        .query(
            "SELECT count(), countIf(has(queries, 'nusapay')), any(author_id) \
             FROM mentions FINAL WHERE platform = 'bluesky'",
        )
        .fetch_one()
        .await
        .unwrap();
    assert_eq!((n, matched), (8, 8));
    assert!(author.starts_with("did:plc:u"), "{author}");
    env.cleanup(&store).await;
}

async fn stream(env: &TestEnv, api: &str, state: &std::path::Path) -> Stream {
    Stream::new(
        &env.config.kafka,
        &env.topics,
        api,
        QuerySet::compile(&tracked()).unwrap(),
        state,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_handshake_waits_a_silent_stream_is_dropped_and_no_query_refuses_to_start() {
    let env = TestEnv::new("jetstream-refused");
    let service = Shared::default();
    service.lock().unwrap().refuse = Some((StatusCode::TOO_MANY_REQUESTS, Some("7")));
    let api = stand_in(service.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("source-js.json");
    let tracker = Tracker::open(
        "js",
        "jetstream",
        &state,
        Arc::new(gema::metrics::Metrics::default()),
    );
    let shutdown = CancellationToken::new();
    let mut s = stream(&env, &api, &state)
        .await
        .with_stall(Duration::from_millis(300));

    let f = s.session(&tracker, &shutdown).await.unwrap_err();
    assert_eq!(
        f.kind,
        FailureKind::RateLimited(Duration::from_secs(7)),
        "{f}"
    );
    assert!(f.message.contains("429"), "{f}");

    service.lock().unwrap().refuse = Some((StatusCode::SERVICE_UNAVAILABLE, None));
    let f = s.session(&tracker, &shutdown).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::Transient, "{f}");

    {
        let mut svc = service.lock().unwrap();
        svc.refuse = None;
        svc.silent = true;
    }
    let started = Instant::now();
    let f = s.session(&tracker, &shutdown).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::Transient, "{f}");
    assert!(f.message.contains("no frame for"), "{f}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Shutdown ends a session without a failure.
    let stop = CancellationToken::new();
    stop.cancel();
    assert_eq!(s.session(&tracker, &stop).await, Ok(()));

    // Without tracked queries there is nothing to keep.
    let source = SourceConfig {
        api: Some(api),
        ..SourceConfig::new(SourceKind::Jetstream, &[])
    };
    let no_queries = SourceEnv::new(
        &env.config.kafka,
        &env.config.state_dir,
        &env.config.tracked,
        Arc::new(gema::metrics::Metrics::default()),
    );
    let Err(e) = Streamer::open(&source, &no_queries).await else {
        panic!("a jetstream source without tracked queries opened");
    };
    assert!(e.to_string().contains("no tracked queries"), "{e}");
}
