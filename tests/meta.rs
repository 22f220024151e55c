//! The Meta webhooks connector against calls shaped as Meta sends them and a local stand-in for
//! the Graph API, with the real Kafka and ClickHouse. Shapes from developers.facebook.com: Webhooks
//! "Getting Started" (the `hub.mode` / `hub.verify_token` / `hub.challenge` check, the
//! `X-Hub-Signature-256: sha256=…` HMAC-SHA256 of the body under the app secret), Instagram
//! webhooks (`object: instagram`, `comments` and `mentions` fields, the IG Comment node's `id`,
//! `text`, `timestamp`, `username`) and the Page `feed` field (`item`, `verb`, `from`,
//! `post_id`, `comment_id`, `parent_id`, `message`, `created_time`). Checked: the subscription
//! check, signatures (bad or missing: 401 and nothing stored), the body limit (413), each change
//! as a mention, a mention's comment fetched, what cannot be mapped dead-lettered with its
//! reason and still answered 200, a transient Graph failure answered 500, and a `[[sources]]`
//! meta entry end to end into ClickHouse. Needs `scripts/services.sh up`.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use common::{Stages, TestEnv};
use gema::sources::config::{SourceConfig, SourceKind};
use gema::sources::env::SourceEnv;
use gema::sources::meta::{self, Secrets, Webhook};
use gema::sources::run::run_source;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const APP_SECRET: &str = "app-s3cret";
const VERIFY_TOKEN: &str = "v3rify-me";
const GRAPH_TOKEN: &str = "graph-t0ken";

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn secrets(access_token: Option<&str>) -> Secrets {
    Secrets {
        app_secret: APP_SECRET.into(),
        verify_token: VERIFY_TOKEN.into(),
        access_token: access_token.map(str::to_string),
    }
}

/// A stand-in for the Graph API's IG Comment node: `ig-m1` is a comment, `ig-gone` was deleted
/// (400, as the Graph API answers), `ig-busy` fails with 503.
async fn comment(
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    State(calls): State<Arc<Mutex<Vec<String>>>>,
) -> impl IntoResponse {
    calls.lock().unwrap().push(id.clone());
    assert_eq!(q["fields"], "id,text,timestamp,username");
    if q.get("access_token").map(String::as_str) != Some(GRAPH_TOKEN) {
        return (StatusCode::BAD_REQUEST, "{\"error\":{\"code\":190}}").into_response();
    }
    match id.as_str() {
        "ig-m1" => axum::Json(json!({"id": "ig-m1", "text": "cc @nusapay saldo hilang",
            "timestamp": "2026-11-27T08:01:00+0000", "username": "sari"}))
        .into_response(),
        "ig-busy" => (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
        _ => (
            StatusCode::BAD_REQUEST,
            "{\"error\":{\"message\":\"Unsupported get request\",\"code\":100}}",
        )
            .into_response(),
    }
}

async fn graph() -> (String, Arc<Mutex<Vec<String>>>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/v21.0/{id}", get(comment))
        .with_state(calls.clone());
    (format!("{}/v21.0", common::serve_locally(app).await), calls)
}

async fn endpoint(env: &TestEnv, graph: &str, access_token: Option<&str>) -> String {
    let hook = Webhook::new(
        &env.config.kafka,
        &env.topics,
        "meta-test",
        secrets(access_token),
        graph,
    )
    .await
    .unwrap();
    common::serve_locally(meta::router(Arc::new(hook))).await
}

async fn post_signed(base: &str, body: &[u8]) -> (StatusCode, String) {
    let resp = reqwest::Client::new()
        .post(format!("{base}{}", meta::WEBHOOK_PATH))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sign(body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

fn size(env: &TestEnv, topic: &str) -> i64 {
    gema::kafka::lag::topic_size(&env.config.kafka, topic).unwrap()
}

fn instagram_comment(id: &str, text: &str) -> Value {
    json!({"object": "instagram", "entry": [{"id": "17841400000", "time": 1_795_766_400,
        "changes": [{"field": "comments", "value": {"from": {"id": "17841499", "username": "rina"},
            "media": {"id": "ig-media-1", "media_product_type": "FEED"}, "id": id, "text": text}}]}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscription_check_signatures_and_the_body_limit_guard_the_endpoint() {
    let env = TestEnv::new("meta-guard");
    let (graph, _) = graph().await;
    let base = endpoint(&env, &graph, None).await;
    let http = reqwest::Client::new();
    let url = format!("{base}{}", meta::WEBHOOK_PATH);

    let check = |token: &str| {
        http.get(&url).query(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", token),
            ("hub.challenge", "1158201444"),
        ])
    };
    let resp = check(VERIFY_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "1158201444");
    assert_eq!(check("guess").send().await.unwrap().status(), 403);
    let no_mode = http
        .get(&url)
        .query(&[("hub.verify_token", VERIFY_TOKEN), ("hub.challenge", "1")]);
    assert_eq!(no_mode.send().await.unwrap().status(), 403);
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let body = serde_json::to_vec(&instagram_comment("ig-c1", "nusapay error")).unwrap();
    let missing = http.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert!(missing.text().await.unwrap().contains("missing"));
    let forged = http
        .post(&url)
        .header("x-hub-signature-256", sign(b"another body"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let garbled = http
        .post(&url)
        .header("x-hub-signature-256", "sha256=nothex")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(garbled.status(), 401);

    let mut huge = br#"{"object":"instagram","entry":[],"pad":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', meta::MAX_BODY_BYTES));
    huge.extend(br#""}"#);
    let (status, _) = post_signed(&base, &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // Nothing refused reached Kafka, not even as a dead letter.
    assert_eq!(size(&env, &env.topics.raw), 0);
    assert_eq!(size(&env, &env.topics.dlq), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_changes_become_mentions_and_what_cannot_be_mapped_is_dead_lettered() {
    let env = TestEnv::new("meta-changes");
    let (graph, calls) = graph().await;
    let base = endpoint(&env, &graph, Some(GRAPH_TOKEN)).await;

    let feed = |value: Value| json!({"field": "feed", "value": value});
    let body = json!({"object": "page", "entry": [{"id": "page-1", "time": 1_795_766_400, "changes": [
        feed(json!({"from": {"id": "fb-u1", "name": "Budi"}, "item": "comment", "verb": "add",
            "post_id": "page-1_post-1", "comment_id": "post-1_c1", "parent_id": "page-1_post-1",
            "message": "NusaPay kapan refund?", "created_time": 1_795_766_430})),
        feed(json!({"from": {"id": "page-1", "name": "NusaPay"}, "item": "post", "verb": "edited",
            "post_id": "page-1_post-2", "message": "Maaf atas gangguan NusaPay hari ini",
            "created_time": 1_795_766_440})),
        feed(json!({"from": {"id": "fb-u1", "name": "Budi"}, "item": "comment", "verb": "remove",
            "post_id": "page-1_post-1", "comment_id": "post-1_c0"})),
        feed(json!({"from": {"id": "fb-u2", "name": "Ani"}, "item": "reaction", "verb": "add",
            "post_id": "page-1_post-1", "reaction_type": "angry"})),
    ]}]});
    let (status, answer) = post_signed(&base, &serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer, json!({"sent": 2, "dead_lettered": 0, "ignored": 2}));

    let body = json!({"object": "instagram", "entry": [{"id": "17841400000", "time": 1_795_766_500, "changes": [
        instagram_comment("ig-c1", "NusaPay error terus")["entry"][0]["changes"][0].clone(),
        {"field": "mentions", "value": {"media_id": "ig-media-2", "comment_id": "ig-m1"}},
        {"field": "mentions", "value": {"media_id": "ig-media-2", "comment_id": "ig-gone"}},
        {"field": "story_insights", "value": {"media_id": "s1", "impressions": 4}},
    ]}]});
    let (status, answer) = post_signed(&base, &serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer, json!({"sent": 2, "dead_lettered": 2, "ignored": 0}));
    assert_eq!(*calls.lock().unwrap(), vec!["ig-m1", "ig-gone"]);

    // A transient Graph failure: 500, so Meta sends the call again; nothing of it is stored.
    let busy = json!({"object": "instagram", "entry": [{"id": "1", "time": 1_795_766_500, "changes": [
        instagram_comment("ig-c9", "nusapay")["entry"][0]["changes"][0].clone(),
        {"field": "mentions", "value": {"media_id": "ig-media-2", "comment_id": "ig-busy"}}]}]});
    let (status, answer) = post_signed(&base, &serde_json::to_vec(&busy).unwrap()).await;
    assert_eq!(status, 500, "{answer}");
    assert!(answer.contains("503"), "{answer}");

    // Signed but not a notification: dead-lettered as it came, answered 200.
    let (status, _) = post_signed(&base, b"{\"object\": \"instagram\", \"entry\": [").await;
    assert_eq!(status, 200);
    // Without a Graph token, a mention cannot be fetched: dead-lettered saying so.
    let tokenless = endpoint(&env, &graph, None).await;
    let mention = json!({"object": "instagram", "entry": [{"id": "17841400000", "time": 1_795_766_600,
        "changes": [{"field": "mentions", "value": {"media_id": "ig-media-3", "comment_id": "ig-m1"}}]}]});
    let (status, _) = post_signed(&tokenless, &serde_json::to_vec(&mention).unwrap()).await;
    assert_eq!(status, 200);

    let mentions: HashMap<String, Value> = env
        .read_topic(&env.topics.raw)
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8(k).unwrap(),
                serde_json::from_slice(&v).unwrap(),
            )
        })
        .collect();
    let mut keys: Vec<&str> = mentions.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "facebook:page-1_post-2",
            "facebook:post-1_c1",
            "instagram:ig-c1",
            "instagram:ig-m1"
        ]
    );
    let fb = &mentions["facebook:post-1_c1"];
    assert_eq!(fb["text"], "NusaPay kapan refund?");
    assert_eq!(fb["author"], json!({"id": "fb-u1", "handle": "Budi"}));
    assert_eq!(fb["parent_id"], "page-1_post-1");
    assert_eq!(fb["thread_id"], "page-1_post-1");
    assert_eq!(fb["url"], "https://www.facebook.com/post-1_c1");
    assert_eq!(fb["created_at"], "2026-11-27T08:00:30Z");
    let ig = &mentions["instagram:ig-c1"];
    assert_eq!(ig["author"], json!({"id": "17841499", "handle": "rina"}));
    assert_eq!(ig["thread_id"], "ig-media-1");
    assert_eq!(ig["created_at"], "2026-11-27T08:01:40Z");
    let fetched = &mentions["instagram:ig-m1"];
    assert_eq!(fetched["text"], "cc @nusapay saldo hilang");
    assert_eq!(fetched["author"]["handle"], "sari");
    assert_eq!(fetched["parent_id"], "ig-media-2");
    assert_eq!(fetched["created_at"], "2026-11-27T08:01:00Z");
    for m in mentions.values() {
        gema::mention::Mention::parse(&serde_json::to_vec(m).unwrap()).unwrap();
    }

    let mut dead: Vec<(String, String, String)> = env
        .dead_letters()
        .into_iter()
        .map(|r| {
            let d = r.dead_letter.expect("gema headers");
            assert_eq!(d.stage, "meta");
            (d.reason, d.error, r.original)
        })
        .collect();
    dead.sort();
    let reasons: Vec<&str> = dead.iter().map(|(r, _, _)| r.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "graph_refused",
            "invalid_json",
            "no_access_token",
            "unsupported_field"
        ]
    );
    assert!(
        dead[0].1.contains("400") && dead[0].2.contains("ig-gone"),
        "{dead:?}"
    );
    assert_eq!(dead[1].2, "{\"object\": \"instagram\", \"entry\": [");
    assert!(dead[2].1.contains("GEMA_META_ACCESS_TOKEN"), "{dead:?}");
    assert!(dead[3].1.contains("story_insights"), "{dead:?}");
    // A change's dead letter is a notification of that change alone, ready to send again.
    let original: Value = serde_json::from_str(&dead[3].2).unwrap();
    assert_eq!(
        original["entry"][0]["changes"][0]["field"],
        "story_insights"
    );
    assert!(
        dead.iter().all(|(_, e, _)| !e.contains(GRAPH_TOKEN)),
        "a token leaked into a dead letter: {dead:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meta_source_listens_until_shutdown_and_its_mentions_reach_clickhouse() {
    let env = TestEnv::new("meta-source");
    let store = env.store().await;
    // The only test of this binary that reads the environment.
    std::env::set_var(meta::APP_SECRET_ENV, APP_SECRET);
    std::env::set_var(meta::VERIFY_TOKEN_ENV, VERIFY_TOKEN);
    let port = common::free_port();
    let source = SourceConfig {
        listen: Some(format!("127.0.0.1:{port}")),
        ..SourceConfig::new(SourceKind::Meta, &[])
    };
    source.validate().unwrap();
    let source_env = SourceEnv::new(
        &env.config.kafka,
        &env.config.state_dir,
        &env.config.tracked,
        Arc::new(gema::metrics::Metrics::default()),
    );
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_source(source.clone(), source_env, shutdown.clone()));
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(Instant::now() < deadline, "the meta source never listened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (id, text) in [
        ("ig-e1", "NusaPay mantap"),
        ("ig-e2", "nusapay gagal bayar"),
    ] {
        let body = serde_json::to_vec(&instagram_comment(id, text)).unwrap();
        let (status, answer) = post_signed(&base, &body).await;
        assert_eq!(status, 200, "{answer}");
    }
    shutdown.cancel();
    task.await.unwrap();
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "still listening after shutdown"
    );
    let h = gema::sources::health::read(&source.state_path(&env.config.state_dir))
        .unwrap()
        .unwrap();
    assert_eq!(h.sent, 2, "{h:?}");

    let stages = Stages::start(&env, &store);
    env.wait_drained(Duration::from_secs(60)).await;
    stages.stop().await;
    let (n, handle): (u64, String) = store
        .client
        .query(
            "SELECT count(), any(author_handle) FROM mentions FINAL WHERE platform = 'instagram'",
        )
        .fetch_one()
        .await
        .unwrap();
    assert_eq!((n, handle.as_str()), (2, "rina"));
    env.cleanup(&store).await;
}
