//! `gema run` with a gema.toml naming one source of each kind, every one pointed at a local
//! stand-in for its platform on 127.0.0.1 (the wire formats the connectors' own tests cite):
//! all of them reach ClickHouse through the real Kafka, and `gema sources` shows each one's
//! state. Needs `scripts/services.sh up` (the README's test command does it).

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::routing::get;
use common::TestEnv;
use serde_json::{json, Value};

/// Every platform's stand-in, one router.
fn stand_ins() -> axum::Router {
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
    use axum::http::StatusCode;
    axum::Router::new()
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

/// A Mastodon instance that asks to wait ten minutes.
fn limited_instance() -> axum::Router {
    axum::Router::new().route(
        "/api/v1/timelines/tag/{tag}",
        get(|| async {
            (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "600")],
                "{}",
            )
        }),
    )
}

/// `[[sources]]` entries naming one source of each kind, pointed at `base` (`limited`: the
/// instance that rate-limits).
fn sources_toml(base: &str, limited: &str) -> String {
    format!(
        r#"
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
name = "bsky-denied"
kind = "bluesky"
api = "{base}/denied"
follow = ["nusapay"]

[[sources]]
name = "masto-limited"
kind = "mastodon"
api = "{limited}"
follow = ["nusapay"]
"#
    )
}

/// What the platforms' stand-ins accept.
const CREDENTIALS: &[(&str, &str)] = &[
    ("GEMA_YOUTUBE_API_KEY", "yt-key"),
    ("GEMA_REDDIT_CLIENT_ID", "rdt-id"),
    ("GEMA_REDDIT_CLIENT_SECRET", "rdt-secret"),
];

/// The sources above that work.
const WORKING: &[&str] = &["news", "masto", "hackernews", "bsky", "yt", "rdt"];

/// The platforms the sources above bring in, each with how many mentions.
fn expected() -> BTreeMap<String, u64> {
    [
        ("rss", 1),
        ("mastodon", 1),
        ("hn", 1),
        ("bluesky", 1),
        ("youtube", 1),
        ("reddit", 1),
    ]
    .into_iter()
    .map(|(p, n)| (p.to_string(), n))
    .collect()
}

fn config_toml(env: &TestEnv, base: &str, limited: &str) -> String {
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
        sources = sources_toml(base, limited),
    )
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
    let base = common::serve_locally(stand_ins()).await;
    let config = env.dir.path().join("gema.toml");
    let limited = common::serve_locally(limited_instance()).await;
    std::fs::write(&config, config_toml(&env, &base, &limited)).unwrap();

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
    assert_eq!(
        table.matches("never run").count(),
        WORKING.len() + 2,
        "{table}"
    );

    let log = std::fs::File::create(env.dir.path().join("run.log")).unwrap();
    let child = gema(&config, &["run"])
        .envs(CREDENTIALS.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();

    // Every platform's mentions reach ClickHouse.
    let want = expected();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    while Instant::now() < deadline {
        got = store
            .client
            .query("SELECT platform, count() FROM mentions FINAL GROUP BY platform")
            .fetch_all::<(String, u64)>()
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
        if want.iter().all(|(p, n)| got.get(p) >= Some(n)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let run_log = || std::fs::read_to_string(env.dir.path().join("run.log")).unwrap();
    assert_eq!(got, want, "platforms in ClickHouse; log:\n{}", run_log());

    // `gema sources --json`: each working one ok, running, with what it sent; the refused
    // credential stopped its source (naming the variable), the rate limit parks its own, and
    // neither stopped the others.
    let out = gema(&config, &["sources", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let views: BTreeMap<String, Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["name"].as_str().unwrap().to_string(), v))
        .collect();
    assert_eq!(views.len(), WORKING.len() + 2);
    for name in WORKING {
        let v = &views[*name];
        assert_eq!(v["running"], true, "{v}");
        assert_eq!(v["health"]["state"], "ok", "{v}");
        assert!(v["health"]["sent"].as_u64() >= Some(1), "{v}");
        assert!(v["health"]["last_ok"].is_string(), "{v}");
    }
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
    env.cleanup(&store).await;
}
