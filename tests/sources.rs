//! `gema run` with a gema.toml naming one source of each kind, every one pointed at a local
//! stand-in for its platform on 127.0.0.1 (the wire formats the connectors' own tests cite):
//! polled (rss, mastodon, hn, bluesky, youtube, reddit), streamed (x: the X API v2 filtered
//! stream, its rules from the `[[tracked]]` query; jetstream: a WebSocket; mastodon-stream:
//! server-sent events) and called (meta: the test signs an Instagram comment webhook and POSTs
//! it to the source's `listen` address after Meta's subscription check). All of them reach
//! ClickHouse through the real Kafka, each once (`FINAL`), and `gema sources` shows each one's
//! state: working ones ok with what they sent, a refused credential stopped naming its
//! variable, a 429 rate limited for its Retry-After, and after SIGTERM none running. Needs
//! `scripts/services.sh up` (the README's test command does it).

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::TestEnv;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

/// How often the streams' stand-ins send their keep-alives and other traffic.
const TICK: Duration = Duration::from_millis(300);

/// The X filtered stream's rules on the stand-in: (id, value, tag).
type XRules = Arc<Mutex<Vec<(String, String, Option<String>)>>>;

/// The bearer token the X stand-in accepts (401 otherwise, which would stop the source).
const X_TOKEN: &str = "x-b3arer";
const META_APP_SECRET: &str = "meta-s3cret";
const META_VERIFY_TOKEN: &str = "meta-v3rify";

fn x_authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(format!("Bearer {X_TOKEN}").as_str())
}

fn x_unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(
            json!({"title": "Unauthorized", "type": "about:blank", "status": 401,
            "detail": "Unauthorized"}),
        ),
    )
        .into_response()
}

/// `GET /2/tweets/search/stream/rules`: `{"data": [{id, value, tag}], "meta": …}`.
async fn x_get_rules(State(rules): State<XRules>, headers: HeaderMap) -> Response {
    if !x_authorized(&headers) {
        return x_unauthorized();
    }
    let data: Vec<Value> = rules
        .lock()
        .unwrap()
        .iter()
        .map(|(id, value, tag)| json!({"id": id, "value": value, "tag": tag}))
        .collect();
    let meta = json!({"sent": "2026-11-27T08:00:00.000Z", "result_count": data.len()});
    if data.is_empty() {
        axum::Json(json!({ "meta": meta })).into_response()
    } else {
        axum::Json(json!({"data": data, "meta": meta})).into_response()
    }
}

/// `POST /2/tweets/search/stream/rules`: `{"add": [{value, tag}]}` or `{"delete": {"ids"}}`.
async fn x_post_rules(State(rules): State<XRules>, headers: HeaderMap, body: Bytes) -> Response {
    if !x_authorized(&headers) {
        return x_unauthorized();
    }
    let body: Value = serde_json::from_slice(&body).unwrap();
    let mut rules = rules.lock().unwrap();
    if let Some(add) = body["add"].as_array() {
        let mut data = Vec::new();
        for r in add {
            let id = format!("17{:02}", rules.len() + 1);
            let (value, tag) = (r["value"].as_str().unwrap(), r["tag"].as_str());
            data.push(json!({"id": id, "value": value, "tag": tag}));
            rules.push((id, value.to_string(), tag.map(str::to_string)));
        }
        let summary = json!({"created": data.len(), "not_created": 0, "valid": data.len(),
            "invalid": 0});
        return (
            StatusCode::CREATED,
            axum::Json(json!({"data": data,
                "meta": {"sent": "2026-11-27T08:00:00.000Z", "summary": summary}})),
        )
            .into_response();
    }
    let ids: Vec<&str> = body["delete"]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    rules.retain(|(id, _, _)| !ids.contains(&id.as_str()));
    axum::Json(json!({"meta": {"sent": "2026-11-27T08:00:00.000Z",
        "summary": {"deleted": ids.len(), "not_deleted": 0}}}))
    .into_response()
}

/// `GET /2/tweets/search/stream`: newline-delimited JSON, one post then `\r\n` keep-alives for
/// as long as the connection stays open.
async fn x_stream(headers: HeaderMap) -> Response {
    if !x_authorized(&headers) {
        return x_unauthorized();
    }
    let post = json!({
        "data": {"id": "1850000000000000001", "text": "NusaPay refund gagal, saldo hilang",
            "created_at": "2026-11-27T08:00:00.000Z", "author_id": "42", "lang": "in",
            "conversation_id": "1850000000000000001",
            "edit_history_tweet_ids": ["1850000000000000001"],
            "public_metrics": {"retweet_count": 0, "reply_count": 0, "like_count": 4, "quote_count": 0}},
        "includes": {"users": [{"id": "42", "name": "Budi", "username": "budi_s",
            "public_metrics": {"followers_count": 120}}]},
        "matching_rules": [{"id": "1701", "tag": "gema:query:NusaPay"}]
    });
    let body = async_stream::stream! {
        yield Ok::<Bytes, std::convert::Infallible>(Bytes::from(format!("{post}\r\n")));
        loop {
            tokio::time::sleep(TICK).await;
            yield Ok(Bytes::from_static(b"\r\n"));
        }
    };
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(body))
        .unwrap()
}

/// A Jetstream event creating post `rkey` of `did`.
fn jetstream_post(did: &str, rkey: &str, time_us: i64, text: &str) -> String {
    json!({"did": did, "time_us": time_us, "kind": "commit",
        "commit": {"rev": format!("rev-{rkey}"), "operation": "create",
            "collection": "app.bsky.feed.post", "rkey": rkey, "cid": "bafy",
            "record": {"$type": "app.bsky.feed.post", "text": text, "langs": ["id"],
                "createdAt": "2026-11-27T08:00:00.000Z"}}})
    .to_string()
}

/// Jetstream's `/subscribe`: one post a tracked query matches, then the rest of the network's
/// posts (none about NusaPay) until the connector hangs up.
async fn jetstream(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket: WebSocket| async move {
        let start = 1_795_766_400_000_000_i64;
        let matched = jetstream_post("did:plc:jet", "3jet1", start, "NusaPay top up gagal terus");
        if socket.send(Message::Text(matched.into())).await.is_err() {
            return;
        }
        for i in 1.. {
            tokio::time::sleep(TICK).await;
            let other = jetstream_post(
                "did:plc:other",
                &format!("3oth{i}"),
                start + i * 1000,
                "kopi pagi ini enak",
            );
            if socket.send(Message::Text(other.into())).await.is_err() {
                return;
            }
        }
    })
}

/// Every platform's stand-in, one router (the X stand-in keeps its rules in `x_rules`).
fn stand_ins(x_rules: XRules) -> axum::Router {
    let rss = || async {
        (
            [("content-type", "application/rss+xml"), ("etag", "\"v1\"")],
            r#"<?xml version="1.0"?><rss version="2.0"><channel><title>Kabar</title><language>id</language>
<item><title>NusaPay gangguan, saldo pengguna hilang</title><link>http://news.local/1</link><guid>n1</guid>
<pubDate>Fri, 27 Nov 2026 08:00:00 GMT</pubDate></item></channel></rss>"#,
        )
    };
    let mastodon = || async {
        axum::Json(json!([{
            "id": "1001", "uri": "https://social.local/users/budi/statuses/1001",
            "created_at": "2026-11-27T08:00:00.000Z", "content": "<p>NusaPay transfer gagal lagi</p>",
            "url": "https://social.local/@budi/1001", "language": "id",
            "account": {"id": "1", "acct": "budi", "followers_count": 10}
        }]))
    };
    let hn = || async {
        axum::Json(json!({"nbPages": 1, "hits": [{
            "objectID": "42000001", "created_at": "2026-11-27T08:00:00Z", "created_at_i": 1795766400,
            "author": "tom", "title": "NusaPay lost my balance", "story_text": "Support never answers",
            "points": 3, "num_comments": 0, "story_id": 42000001
        }]}))
    };
    let bluesky = || async {
        axum::Json(json!({"posts": [{
            "uri": "at://did:plc:sari/app.bsky.feed.post/3k1", "indexedAt": "2026-11-27T08:00:01Z",
            "author": {"did": "did:plc:sari", "handle": "sari.bsky.social"},
            "record": {"text": "NusaPay error lagi, kecewa", "createdAt": "2026-11-27T08:00:00Z", "langs": ["id"]},
            "likeCount": 1
        }]}))
    };
    let youtube = || async {
        axum::Json(
            json!({"kind": "youtube#commentThreadListResponse", "items": [{
                "kind": "youtube#commentThread", "id": "UgT1",
                "snippet": {"videoId": "dQw4w9WgXcQ", "totalReplyCount": 0, "topLevelComment": {
                    "kind": "youtube#comment", "id": "UgT1",
                    "snippet": {"videoId": "dQw4w9WgXcQ", "textOriginal": "NusaPay saldo hilang, kecewa",
                        "textDisplay": "NusaPay saldo hilang, kecewa", "authorDisplayName": "@rina",
                        "authorChannelId": {"value": "UCrina"}, "likeCount": 2,
                        "publishedAt": "2026-11-27T08:00:00Z", "updatedAt": "2026-11-27T08:00:00Z"}}}
            }]}),
        )
    };
    let reddit_token = || async {
        axum::Json(
            json!({"access_token": "r-token", "token_type": "bearer", "expires_in": 86400, "scope": "*"}),
        )
    };
    let reddit_search = || async {
        axum::Json(
            json!({"kind": "Listing", "data": {"after": null, "before": null, "children": [
            {"kind": "t3", "data": {"id": "p01", "name": "t3_p01", "title": "NusaPay transfer gagal",
                "selftext": "saldo hilang", "author": "dewi", "created_utc": 1795766400.0,
                "permalink": "/r/indonesia/comments/p01/nusapay/", "subreddit": "indonesia",
                "score": 5, "num_comments": 0}}]}}),
        )
    };
    let x = axum::Router::new()
        .route(
            "/2/tweets/search/stream/rules",
            get(x_get_rules).post(x_post_rules),
        )
        .route("/2/tweets/search/stream", get(x_stream))
        .with_state(x_rules);
    axum::Router::new()
        .merge(x)
        .route("/subscribe", get(jetstream))
        .route("/youtube/v3/commentThreads", get(youtube))
        .route(
            "/reddit/api/v1/access_token",
            axum::routing::post(reddit_token),
        )
        .route("/reddit/search", get(reddit_search))
        // A service that refuses the credential.
        .route(
            "/denied/xrpc/app.bsky.feed.searchPosts",
            get(|| async { (StatusCode::UNAUTHORIZED, "{\"error\":\"AuthRequired\"}") }),
        )
        .route("/feed.xml", get(rss))
        .route("/api/v1/timelines/tag/{tag}", get(mastodon))
        .route("/api/v1/search_by_date", get(hn))
        .route("/xrpc/app.bsky.feed.searchPosts", get(bluesky))
}

/// A Mastodon instance's streaming API (`/api/v1/streaming/hashtag?tag=…`, server-sent events):
/// one `update` with a status, then only `:thump` heartbeats for as long as the connection stays
/// open (a quiet stream: `gema sources` must still show what it sent); and its hashtag timeline,
/// which the connector reads to backfill only when it sent a status before (never on this first
/// run). Its own router: the connector ignores the
/// instance URL's path, and the polled `mastodon` stand-in has the timeline route.
fn streaming_instance() -> axum::Router {
    let hashtag = |q: axum::extract::Query<BTreeMap<String, String>>| async move {
        assert_eq!(q.get("tag").map(String::as_str), Some("nusapay"));
        let status = json!({
            "id": "2001", "uri": "https://social.local/users/ayu/statuses/2001",
            "created_at": "2026-11-27T08:00:00.000Z", "in_reply_to_id": null, "spoiler_text": "",
            "content": "<p>NusaPay top up nyangkut, saldo belum masuk</p>",
            "url": "https://social.local/@ayu/2001", "language": "id", "reblog": null,
            "replies_count": 0, "reblogs_count": 0, "favourites_count": 2,
            "account": {"id": "2", "username": "ayu", "acct": "ayu", "followers_count": 30}
        });
        let body = async_stream::stream! {
            yield Ok::<Bytes, std::convert::Infallible>(Bytes::from(format!(
                ":)\nevent: update\ndata: {status}\n\n"
            )));
            for i in 1.. {
                tokio::time::sleep(TICK).await;
                yield Ok(Bytes::from(format!(":thump {i}\n")));
            }
        };
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(body))
            .unwrap()
    };
    axum::Router::new()
        .route("/api/v1/streaming/hashtag", get(hashtag))
        .route(
            "/api/v1/timelines/tag/{tag}",
            get(|| async { axum::Json(json!([])) }),
        )
}

/// A Mastodon instance that asks to wait ten minutes.
fn limited_instance() -> axum::Router {
    axum::Router::new().route(
        "/api/v1/timelines/tag/{tag}",
        get(|| async {
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "600")],
                "{}",
            )
        }),
    )
}

/// Where the stand-ins and the meta source's listener are.
struct Places {
    /// [`stand_ins`].
    base: String,
    /// [`limited_instance`].
    limited: String,
    /// [`streaming_instance`].
    streaming: String,
    /// The address the meta source listens on.
    listen: String,
}

/// `[[sources]]` entries naming one source of each kind, pointed at the stand-ins.
fn sources_toml(p: &Places) -> String {
    let (base, limited, streaming, listen) = (&p.base, &p.limited, &p.streaming, &p.listen);
    let ws = base.replace("http://", "ws://");
    format!(
        r##"
[[sources]]
name = "news"
kind = "rss"
follow = ["{base}/feed.xml"]

[[sources]]
name = "masto"
kind = "mastodon"
api = "{base}"
follow = ["nusapay"]

[[sources]]
name = "hackernews"
kind = "hn"
api = "{base}"
follow = ["nusapay"]

[[sources]]
name = "bsky"
kind = "bluesky"
api = "{base}"
follow = ["nusapay"]

[[sources]]
name = "yt"
kind = "youtube"
api = "{base}/youtube/v3"
follow = ["dQw4w9WgXcQ"]

[[sources]]
name = "rdt"
kind = "reddit"
api = "{base}/reddit"
follow = ["nusapay"]

[[sources]]
name = "xstream"
kind = "x"
api = "{base}"

[[sources]]
name = "jet"
kind = "jetstream"
api = "{ws}"

[[sources]]
name = "masto-live"
kind = "mastodon-stream"
api = "{streaming}"
follow = ["#nusapay"]

[[sources]]
name = "ig"
kind = "meta"
api = "{base}/graph/v21.0"
listen = "{listen}"

[[sources]]
name = "bsky-denied"
kind = "bluesky"
api = "{base}/denied"
follow = ["nusapay"]

[[sources]]
name = "masto-limited"
kind = "mastodon"
api = "{limited}"
follow = ["nusapay"]
"##
    )
}

/// What the platforms' stand-ins accept.
const CREDENTIALS: &[(&str, &str)] = &[
    ("GEMA_YOUTUBE_API_KEY", "yt-key"),
    ("GEMA_REDDIT_CLIENT_ID", "rdt-id"),
    ("GEMA_REDDIT_CLIENT_SECRET", "rdt-secret"),
    ("GEMA_X_BEARER_TOKEN", X_TOKEN),
    ("GEMA_META_APP_SECRET", META_APP_SECRET),
    ("GEMA_META_VERIFY_TOKEN", META_VERIFY_TOKEN),
];

/// The sources above that work.
const WORKING: &[&str] = &[
    "news",
    "masto",
    "hackernews",
    "bsky",
    "yt",
    "rdt",
    "xstream",
    "jet",
    "masto-live",
    "ig",
];

/// The platforms the sources above bring in, each with how many mentions: Jetstream's post is
/// a `bluesky` mention as the search's is, and the Mastodon stream's a `mastodon` one as the
/// polled timeline's (each pair two posts, two ids).
fn expected() -> BTreeMap<String, u64> {
    [
        ("rss", 1),
        ("mastodon", 2),
        ("hn", 1),
        ("bluesky", 2),
        ("youtube", 1),
        ("reddit", 1),
        ("x", 1),
        ("instagram", 1),
    ]
    .into_iter()
    .map(|(p, n)| (p.to_string(), n))
    .collect()
}

fn config_toml(env: &TestEnv, places: &Places) -> String {
    let c = &env.config;
    format!(
        r#"state_dir = "{state}"

[kafka]
brokers = "{brokers}"
topic_prefix = "{prefix}"

[clickhouse]
url = "{ch}"
database = "{db}"

[sink]
period_ms = 300

[[tracked]]
name = "NusaPay"
query = "nusapay"
{sources}"#,
        state = c.state_dir.display(),
        brokers = c.kafka.brokers,
        prefix = c.kafka.topic_prefix,
        ch = c.clickhouse.url,
        db = c.clickhouse.database,
        sources = sources_toml(places),
    )
}

/// A free port of 127.0.0.1 (bound, read and let go) for the meta source to listen on.
fn free_address() -> String {
    format!("127.0.0.1:{}", common::free_port())
}

/// An Instagram `comments` webhook call, as Meta sends it.
fn instagram_comment() -> Vec<u8> {
    serde_json::to_vec(
        &json!({"object": "instagram", "entry": [{"id": "17841400000",
        "time": 1_795_766_400, "changes": [{"field": "comments", "value": {
            "from": {"id": "17841499", "username": "rina"},
            "media": {"id": "ig-media-1", "media_product_type": "FEED"},
            "id": "ig-c1", "text": "NusaPay saldo hilang, kecewa"}}]}]}),
    )
    .unwrap()
}

/// POSTs `body` to the meta source at `listen` signed as Meta signs it (`X-Hub-Signature-256`:
/// HMAC-SHA256 of the body under the app secret); the status and answer.
async fn post_signed(listen: &str, body: &[u8]) -> (StatusCode, String) {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(META_APP_SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let resp = reqwest::Client::new()
        .post(format!("http://{listen}/webhooks/meta"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", format!("sha256={hex}"))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// Each source's `gema sources --json` line, by name.
fn source_views(config: &std::path::Path) -> BTreeMap<String, Value> {
    let out = gema(config, &["sources", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["name"].as_str().unwrap().to_string(), v))
        .collect()
}

/// Whether a working source's view shows it running, ok, with what it sent.
fn working(v: &Value) -> bool {
    v["running"] == true
        && v["health"]["state"] == "ok"
        && v["health"]["sent"].as_u64() >= Some(1)
        && v["health"]["last_ok"].is_string()
}

/// The mentions in ClickHouse per platform, each key once.
async fn platforms(store: &gema::store::Store) -> BTreeMap<String, u64> {
    store
        .client
        .query("SELECT platform, count() FROM mentions FINAL GROUP BY platform")
        .fetch_all::<(String, u64)>()
        .await
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn gema(config: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gema"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--config")
        .arg(config)
        .args(args);
    cmd
}

/// Stops `child` with SIGTERM and waits: a clean stop drains, flushes and exits 0.
fn terminate(mut child: Child) -> std::process::ExitStatus {
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("gema run did not stop within 60 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gema_run_hears_every_configured_source_and_gema_sources_shows_their_state() {
    let env = TestEnv::new("sources");
    let store = env.store().await;
    let x_rules = XRules::default();
    let places = Places {
        base: common::serve_locally(stand_ins(x_rules.clone())).await,
        limited: common::serve_locally(limited_instance()).await,
        streaming: common::serve_locally(streaming_instance()).await,
        listen: free_address(),
    };
    let config = env.dir.path().join("gema.toml");
    std::fs::write(&config, config_toml(&env, &places)).unwrap();
    let all = WORKING.len() + 2;

    // Before the first run every source is listed as never run.
    let out = gema(&config, &["sources"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    for name in WORKING.iter().chain(&["bsky-denied", "masto-limited"]) {
        assert!(table.contains(name), "{table}");
    }
    assert_eq!(table.matches("never run").count(), all, "{table}");

    let log = std::fs::File::create(env.dir.path().join("run.log")).unwrap();
    let child = gema(&config, &["run"])
        .envs(CREDENTIALS.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let run_log = || std::fs::read_to_string(env.dir.path().join("run.log")).unwrap();

    // Meta's subscription check, once the meta source listens; then Meta's call.
    let http = reqwest::Client::new();
    let hook = format!("http://{}/webhooks/meta", places.listen);
    let deadline = Instant::now() + Duration::from_secs(30);
    let check = loop {
        let sent = http
            .get(&hook)
            .query(&[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", META_VERIFY_TOKEN),
                ("hub.challenge", "1158201444"),
            ])
            .send()
            .await;
        match sent {
            Ok(resp) => break resp,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the meta source never listened: {e}; log:\n{}", run_log()),
        }
    };
    assert_eq!(check.status(), 200);
    assert_eq!(check.text().await.unwrap(), "1158201444");
    let call = instagram_comment();
    let (status, answer) = post_signed(&places.listen, &call).await;
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["sent"], 1, "{answer}");

    // Every platform's mentions reach ClickHouse.
    let want = expected();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = platforms(&store).await;
    while Instant::now() < deadline && !want.iter().all(|(p, n)| got.get(p) >= Some(n)) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        got = platforms(&store).await;
    }
    assert_eq!(got, want, "platforms in ClickHouse; log:\n{}", run_log());

    // `gema sources --json`: each working one ok, running, with what it sent; the refused
    // credential stopped its source (naming the variable), the rate limit parks its own, and
    // neither stopped the others. Health files follow within a few seconds, quiet streams and a
    // single webhook call included.
    let deadline = Instant::now() + Duration::from_secs(30);
    let views = loop {
        let views = source_views(&config);
        let lagging: Vec<&str> = WORKING
            .iter()
            .copied()
            .filter(|n| !views.get(*n).is_some_and(working))
            .collect();
        if lagging.is_empty() || Instant::now() > deadline {
            break views;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(views.len(), all);
    for name in WORKING {
        let v = &views[*name];
        assert_eq!(v["running"], true, "{v}");
        assert_eq!(v["health"]["state"], "ok", "{v}");
        assert!(v["health"]["sent"].as_u64() >= Some(1), "{v}");
        assert!(v["health"]["last_ok"].is_string(), "{v}");
    }
    assert_eq!(
        views["xstream"]["health"]["errors"], 0,
        "{}",
        views["xstream"]
    );
    assert_eq!(
        views["ig"]["health"]["cursor"],
        format!("listening on {}", places.listen)
    );
    let denied = &views["bsky-denied"]["health"];
    assert_eq!(denied["state"], "stopped", "{denied}");
    let why = denied["last_error"].as_str().unwrap();
    assert!(
        why.contains("401") && why.contains("GEMA_BLUESKY_TOKEN"),
        "{why}"
    );
    let limited = &views["masto-limited"]["health"];
    assert_eq!(limited["state"], "rate_limited", "{limited}");
    let next = chrono::DateTime::parse_from_rfc3339(limited["next_at"].as_str().unwrap()).unwrap();
    let wait = next.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!(
        (500..=600).contains(&wait),
        "waits as Retry-After asked: {wait} s"
    );
    let out = gema(&config, &["sources"]).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    let states: Vec<&str> = table
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "ok").count(),
        WORKING.len(),
        "{table}"
    );
    assert!(
        states.contains(&"stopped") && states.contains(&"rate_limited"),
        "{table}"
    );
    assert!(
        table.contains("nusapay since 2026-11-27T08:00:00+00:00"),
        "{table}"
    );

    let status = terminate(child);
    assert!(
        status.success(),
        "gema run exit {status}; log:\n{}",
        run_log()
    );
    // The X stream's rules are the tracked query's, tagged as gema's.
    let rules: Vec<(String, Option<String>)> = x_rules
        .lock()
        .unwrap()
        .iter()
        .map(|(_, v, t)| (v.clone(), t.clone()))
        .collect();
    assert_eq!(
        rules,
        [(
            "nusapay".to_string(),
            Some("gema:query:NusaPay".to_string())
        )]
    );
    // Stopped: the sources are no longer running.
    let out = gema(&config, &["sources"]).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        table.matches("not running").count(),
        WORKING.len() + 1,
        "{table}"
    );
    assert_eq!(
        table.matches("stopped").count(),
        1,
        "a stopped source stays stopped: {table}"
    );
    // Drained and flushed: still each mention once, Meta's repeated call included.
    assert_eq!(platforms(&store).await, want, "log:\n{}", run_log());
    env.cleanup(&store).await;
}
