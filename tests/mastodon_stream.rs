//! The streaming Mastodon connector against a local stand-in for an instance and the real Kafka
//! and ClickHouse. The stand-in speaks the documented wire format:
//! - the streaming API (docs.joinmastodon.org/methods/streaming/): `GET
//!   /api/v1/streaming/hashtag?tag=…` and `/api/v1/streaming/public/local` as server-sent
//!   events (HTML standard event streams): `event: update` with a Status as `data`, `event:
//!   delete` with an id, `:thump` heartbeat comments, data split over several `data:` lines,
//!   CRLF line ends, 401 without a token;
//! - the hashtag timeline (docs.joinmastodon.org/methods/timelines/#tag): `since_id`, `max_id`,
//!   `limit`, newest first.
//!
//! Needs `scripts/services.sh up` (the README's test command does it).

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{Stages, TestEnv};
use gema::mention::Mention;
use gema::metrics::Metrics;
use gema::sources::config::{SourceConfig, SourceKind};
use gema::sources::env::SourceEnv;
use gema::sources::health::{self, SourceState, Tracker};
use gema::sources::http::FailureKind;
use gema::sources::mastodon_stream::Stream;
use gema::sources::run::run_source;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// What one connection to a stream does.
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
struct Instance {
    /// Status ids of the #nusapay timeline.
    timeline: Vec<u64>,
    /// Per stream (`hashtag:<tag>`, `public:local`), what each connection does in turn; none
    /// left: heartbeats only.
    conns: HashMap<String, VecDeque<Conn>>,
    /// `since_id` of each timeline request.
    since: Vec<Option<String>>,
    /// The Authorization header of every request.
    auth: Vec<String>,
}

type Shared = Arc<Mutex<Instance>>;

fn status(id: u64) -> Value {
    json!({
        "id": id.to_string(),
        "uri": format!("https://social.example/users/u{id}/statuses/{id}"),
        "created_at": "2026-11-27T08:00:00.000Z",
        "in_reply_to_id": null, "spoiler_text": "",
        "content": format!("<p>NusaPay transfer gagal lagi, saldo hilang ({id})</p>"),
        "url": format!("https://social.example/@u{id}/{id}"), "language": "id",
        "replies_count": 0, "reblogs_count": 0, "favourites_count": 1, "reblog": null,
        "account": {"id": id.to_string(), "username": format!("u{id}"), "acct": format!("u{id}"), "followers_count": 10}
    })
}

/// An `update` event carrying status `id`.
fn update(id: u64) -> Step {
    Step::Send(format!("event: update\ndata: {}\n\n", status(id)))
}

/// The same, its JSON split over two `data:` lines.
fn update_multiline(id: u64) -> Step {
    let json = status(id).to_string();
    let cut = json.find(",\"").unwrap();
    Step::Send(format!(
        "event: update\ndata: {}\ndata: {}\n\n",
        &json[..cut],
        &json[cut..]
    ))
}

/// The same, with CRLF line ends.
fn update_crlf(id: u64) -> Step {
    Step::Send(format!("event: update\r\ndata: {}\r\n\r\n", status(id)))
}

fn thump() -> Step {
    Step::Send(":thump\n".into())
}

fn record_auth(inst: &Shared, headers: &HeaderMap) {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    inst.lock().unwrap().auth.push(auth);
}

fn events(inst: &Shared, stream: &str) -> Response {
    let conn = inst
        .lock()
        .unwrap()
        .conns
        .get_mut(stream)
        .and_then(VecDeque::pop_front);
    let steps = match conn {
        Some(Conn::Status(code, retry)) => {
            let mut r = (
                StatusCode::from_u16(code).unwrap(),
                axum::Json(json!({"error": "The access token is invalid"})),
            )
                .into_response();
            if let Some(s) = retry {
                r.headers_mut().insert("retry-after", s.parse().unwrap());
            }
            return r;
        }
        Some(Conn::Steps(steps)) => steps,
        None => vec![thump(), Step::Hang],
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
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap()
}

async fn hashtag_stream(
    State(inst): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    record_auth(&inst, &headers);
    events(&inst, &format!("hashtag:{}", q["tag"]))
}

async fn local_stream(State(inst): State<Shared>, headers: HeaderMap) -> Response {
    record_auth(&inst, &headers);
    events(&inst, "public:local")
}

async fn timeline(
    State(inst): State<Shared>,
    Path(tag): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    record_auth(&inst, &headers);
    let mut inst = inst.lock().unwrap();
    assert_eq!(tag, "nusapay");
    inst.since.push(q.get("since_id").cloned());
    let num = |k: &str| q.get(k).map(|v| v.parse::<u64>().unwrap());
    let (since, max, limit) = (num("since_id"), num("max_id"), num("limit").unwrap_or(20));
    let mut ids: Vec<u64> = inst
        .timeline
        .iter()
        .copied()
        .filter(|&id| since.is_none_or(|x| id > x) && max.is_none_or(|x| id < x))
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    let page: Vec<Value> = ids.into_iter().take(limit as usize).map(status).collect();
    axum::Json(page).into_response()
}

async fn stand_in(inst: Shared) -> String {
    let app = axum::Router::new()
        .route("/api/v1/streaming/hashtag", get(hashtag_stream))
        .route("/api/v1/streaming/public/local", get(local_stream))
        .route("/api/v1/timelines/tag/{tag}", get(timeline))
        .with_state(inst);
    common::serve_locally(app).await
}

fn plan(inst: &Shared, stream: &str, conns: Vec<Conn>) {
    inst.lock()
        .unwrap()
        .conns
        .entry(stream.into())
        .or_default()
        .extend(conns);
}

/// The status ids in the raw topic, sorted, and the mentions.
fn sent(env: &TestEnv) -> (Vec<u64>, Vec<Mention>) {
    let mentions: Vec<Mention> = env
        .read_topic(&env.topics.raw)
        .iter()
        .map(|(_, payload)| Mention::parse(payload).unwrap())
        .collect();
    let mut ids: Vec<u64> = mentions
        .iter()
        .map(|m| m.id.rsplit('/').next().unwrap().parse().unwrap())
        .collect();
    ids.sort_unstable();
    (ids, mentions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_statuses_become_mentions_once_across_drops_backfills_and_a_restart() {
    let env = TestEnv::new("mastodon-stream");
    let inst: Shared = Arc::default();
    inst.lock().unwrap().timeline = vec![1, 2];
    plan(
        &inst,
        "hashtag:nusapay",
        vec![
            Conn::Steps(vec![
                thump(),
                update_multiline(1),
                Step::Send("event: delete\ndata: 1\n\n".into()),
                Step::Send("event: update\ndata: {\"id\": \"9\", trunc\n\n".into()),
                Step::Sleep(300),
                thump(),
                update_crlf(2),
                Step::Sleep(200),
            ]),
            // 4 and 5 were posted while it was away (the backfill finds them), 5 is also
            // streamed, 3 arrives here too after the local timeline had it.
            Conn::Steps(vec![update(5), update(3), thump(), update(6)]),
        ],
    );
    plan(
        &inst,
        "public:local",
        vec![
            Conn::Steps(vec![thump(), update(3), Step::Hang]),
            Conn::Steps(vec![thump(), Step::Hang]),
        ],
    );
    let base = stand_in(inst.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("source-ms.json");
    let tracker = Tracker::open(
        "ms",
        "mastodon-stream",
        &state,
        Arc::new(Metrics::default()),
    );
    let shutdown = CancellationToken::new();
    let follow = ["#NusaPay".to_string(), "public:local".to_string()];
    let open = || async {
        let mut s = Stream::new(
            &env.config.kafka,
            &env.topics,
            &base,
            Some("t0ken".into()),
            &follow,
            &state,
        )
        .await
        .unwrap();
        s.stall = Duration::from_secs(2);
        s
    };
    let mut s = open().await;

    let f = s.session(&tracker, &shutdown).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::Transient, "{f}");
    assert!(
        f.message.contains("/api/v1/streaming/hashtag?tag=nusapay")
            && f.message.contains("ended the stream"),
        "{f}"
    );
    assert_eq!(s.malformed(), 1);
    assert_eq!(tracker.get().sent, 3);
    // Nothing sent for the tag before: no backfill.
    assert!(inst.lock().unwrap().since.is_empty());

    inst.lock().unwrap().timeline.extend([4, 5]);
    let f = s.session(&tracker, &shutdown).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::Transient, "{f}");
    assert_eq!(inst.lock().unwrap().since, [Some("2".to_string())]);
    assert_eq!(tracker.get().sent, 6);

    // A restart from the state file: 7 was posted while it was down.
    drop(s);
    inst.lock().unwrap().timeline.extend([6, 7]);
    plan(
        &inst,
        "hashtag:nusapay",
        vec![Conn::Steps(vec![update(7), update(8)])],
    );
    let mut s = open().await;
    let f = s.session(&tracker, &shutdown).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::Transient, "{f}");
    assert_eq!(
        inst.lock().unwrap().since.last().unwrap().as_deref(),
        Some("6")
    );

    let (ids, mentions) = sent(&env);
    assert_eq!(ids, (1..=8).collect::<Vec<_>>(), "each status once");
    let m = mentions
        .iter()
        .find(|m| m.id.ends_with("/statuses/1"))
        .unwrap();
    assert_eq!(m.platform, "mastodon");
    assert_eq!(m.text, "NusaPay transfer gagal lagi, saldo hilang (1)");
    assert_eq!(m.author.handle, "u1@127.0.0.1");
    let a = inst.lock().unwrap();
    assert!(a.auth.iter().all(|h| h == "Bearer t0ken"), "{:?}", a.auth);
}

fn source(base: &str, state: &std::path::Path) -> SourceConfig {
    SourceConfig {
        name: "ms".into(),
        api: Some(base.into()),
        every_s: Some(1),
        state: Some(state.to_path_buf()),
        ..SourceConfig::new(SourceKind::MastodonStream, &["nusapay".to_string()])
    }
}

fn source_env(env: &TestEnv) -> SourceEnv {
    SourceEnv {
        kafka: env.config.kafka.clone(),
        state_dir: env.dir.path().join("state"),
        tracked: Vec::new(),
        metrics: Arc::new(Metrics::default()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_source_reconnects_without_a_gap_into_clickhouse() {
    let env = TestEnv::new("mastodon-stream-run");
    let store = env.store().await;
    let inst: Shared = Arc::default();
    inst.lock().unwrap().timeline = vec![11, 12, 13];
    plan(
        &inst,
        "hashtag:nusapay",
        vec![
            Conn::Steps(vec![thump(), update(11), update(12)]),
            Conn::Status(503, None),
            Conn::Steps(vec![update(13), update(14), thump(), Step::Hang]),
        ],
    );
    let base = stand_in(inst.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("source-ms.json");
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(run_source(
        source(&base, &state),
        source_env(&env),
        shutdown.clone(),
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while gema::kafka::lag::topic_size(&env.config.kafka, &env.topics.raw).unwrap_or(0) < 4 {
        assert!(std::time::Instant::now() < deadline, "4 statuses not sent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    run.await.unwrap();
    let h = health::read(&state).unwrap().unwrap();
    assert_eq!(h.sent, 4, "{h:?}");
    assert_eq!(h.errors, 2, "the drop and the 503: {h:?}");
    assert!(h.cursor.unwrap().contains("127.0.0.1#nusapay 14"));
    assert_eq!(sent(&env).0, [11, 12, 13, 14]);
    assert_eq!(
        inst.lock().unwrap().since,
        [Some("12".to_string())],
        "backfilled once connected again (the 503 came before)"
    );

    let stages = Stages::start(&env, &store);
    env.wait_drained(Duration::from_secs(60)).await;
    stages.stop().await;
    let (n, negative): (u64, u64) = store
        .client
        .query("SELECT count(), countIf(sentiment = 'negative') FROM mentions FINAL WHERE platform = 'mastodon'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(n, 4);
    assert_eq!(negative, n, "every post is a complaint");
    env.cleanup(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_sort_into_rate_limits_retries_and_a_stop_naming_the_token() {
    let env = TestEnv::new("mastodon-stream-refused");
    let inst: Shared = Arc::default();
    plan(
        &inst,
        "hashtag:nusapay",
        vec![
            Conn::Status(429, Some("7")),
            Conn::Status(502, None),
            Conn::Status(401, None),
        ],
    );
    let base = stand_in(inst.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("source-ms.json");
    let tracker = Tracker::open(
        "ms",
        "mastodon-stream",
        &state,
        Arc::new(Metrics::default()),
    );
    let shutdown = CancellationToken::new();
    let mut s = Stream::new(
        &env.config.kafka,
        &env.topics,
        &base,
        None,
        &["nusapay".to_string()],
        &state,
    )
    .await
    .unwrap();
    let f = s.session(&tracker, &shutdown).await.unwrap_err();
    assert_eq!(f.rate_limit(), Some(Duration::from_secs(7)), "{f}");
    let f = s.session(&tracker, &shutdown).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::Transient, "{f}");
    assert!(f.message.contains("502"), "{f}");
    drop(s);

    // The runner stops the source on the 401, naming the token's variable.
    tokio::time::timeout(
        Duration::from_secs(20),
        run_source(source(&base, &state), source_env(&env), shutdown),
    )
    .await
    .expect("a refused credential stops the source");
    let h = health::read(&state).unwrap().unwrap();
    assert_eq!(h.state, SourceState::Stopped, "{h:?}");
    let e = h.last_error.unwrap();
    assert!(
        e.contains("401") && e.contains("GEMA_MASTODON_TOKEN"),
        "{e}"
    );
}
