//! `gema serve` against the real ClickHouse (and Kafka for the live feed): every endpoint on
//! seeded data, auth, injection attempts in every parameter, and the SSE feed delivering new
//! alerts and resuming after `Last-Event-ID`. Each test has its own database and topics.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use common::TestEnv;
use gema::alerts::{Alert, AlertKind, Sample, Severity};
use gema::kafka::topics::{delete_topics, ensure_topics};
use gema::metrics::Metrics;
use gema::server::auth::Token;
use gema::server::sse::{run_consumer, Feed};
use gema::server::{AppState, Counters};
use gema::store::row::{AlertRow, MentionRow, TrendRow};
use gema::store::Store;
use gema::tracked::TrackedQueryConfig;
use rdkafka::producer::FutureRecord;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "test-token-0123456789abcdef";

struct Server {
    env: TestEnv,
    store: Store,
    url: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    kafka: bool,
}

#[allow(clippy::too_many_arguments)]
fn mention(
    id: &str,
    platform: &str,
    at: DateTime<Utc>,
    sentiment: &str,
    lang: &str,
    text: &str,
    hashtags: &[&str],
    keywords: &[&str],
    queries: &[&str],
) -> MentionRow {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    MentionRow {
        key: format!("{platform}:{id}"),
        platform: platform.into(),
        id: id.into(),
        created_at: at,
        ingested_at: at,
        enriched_at: at,
        author_id: format!("a-{id}"),
        author_handle: format!("user{id}"),
        author_followers: 100,
        text: text.into(),
        url: format!("https://example.social/{id}"),
        lang: lang.into(),
        sentiment: sentiment.into(),
        sentiment_score: match sentiment {
            "negative" => -0.8,
            "positive" => 0.7,
            _ => 0.0,
        },
        sentiment_confidence: 0.9,
        sentiment_model: "test".into(),
        hashtags: s(hashtags),
        mentions: vec![],
        urls: vec![],
        keywords: s(keywords),
        queries: s(queries),
        parent_id: String::new(),
        thread_id: String::new(),
        likes: 0,
        reposts: 0,
        replies: 0,
        version: 1,
    }
}

fn alert(id: &str, kind: AlertKind, severity: Severity, text: &str, ago_min: i64) -> Alert {
    let at = Utc::now() - ChronoDuration::minutes(ago_min);
    Alert {
        id: id.into(),
        kind,
        severity,
        query: Some("nusapay".into()),
        term: None,
        title: format!("Negative mention: {text}"),
        why: "negative mention of a tracked query".into(),
        samples: vec![Sample {
            key: format!("x:{id}"),
            text: text.into(),
            author_handle: "angry_user".into(),
            author_followers: 5000,
            url: format!("https://example.social/{id}"),
            created_at: at,
        }],
        count: 1,
        thread_id: None,
        event_time: at,
        detected_at: at,
    }
}

/// Inserts `rows` into `table` (a macro: the crate's `Row` bound differs per row type).
macro_rules! insert {
    ($store:expr, $ty:ty, $table:expr, $rows:expr) => {{
        let mut ins = $store.client.insert::<$ty>($table).await.unwrap();
        for r in $rows.iter() {
            ins.write(r).await.unwrap();
        }
        ins.end().await.unwrap();
    }};
}

/// Mentions: nusapay 3 negative (x, id), 1 positive (mastodon, en), 2 neutral (bluesky, en);
/// kopikita 4 positive (x, id); all in the last hour; one old nusapay negative 5 h ago.
async fn seed(store: &Store) {
    let now = Utc::now();
    let ago = |m: i64| now - ChronoDuration::minutes(m);
    let mut rows = Vec::new();
    for (i, m) in [5, 10, 15].into_iter().enumerate() {
        rows.push(mention(
            &format!("n{i}"),
            "x",
            ago(m),
            "negative",
            "id",
            "NusaPay gagal top up lagi #NusaPayDown",
            &["nusapaydown"],
            &["nusapay", "gagal"],
            &["nusapay"],
        ));
    }
    rows.push(mention(
        "n3",
        "mastodon",
        ago(20),
        "positive",
        "en",
        "NusaPay refund arrived, thanks",
        &[],
        &["nusapay", "refund"],
        &["nusapay"],
    ));
    for (i, m) in [25, 30].into_iter().enumerate() {
        rows.push(mention(
            &format!("n{}", 4 + i),
            "bluesky",
            ago(m),
            "neutral",
            "en",
            "Anyone using NusaPay?",
            &[],
            &["nusapay"],
            &["nusapay"],
        ));
    }
    for (i, m) in [2, 4, 6, 8].into_iter().enumerate() {
        rows.push(mention(
            &format!("k{i}"),
            "x",
            ago(m),
            "positive",
            "id",
            "Kopi enak di KopiKita #KopiKitaSenja",
            &["kopikitasenja"],
            &["kopikita"],
            &["kopikita"],
        ));
    }
    rows.push(mention(
        "old",
        "x",
        ago(300),
        "negative",
        "en",
        "old outage",
        &[],
        &["nusapay"],
        &["nusapay"],
    ));
    insert!(store, MentionRow, "mentions", &rows);

    let trend = |term: &str, score: f32, m: i64| TrendRow {
        term: term.into(),
        bucket_start: ago(m),
        bucket_end: ago(m - 1),
        count: 30,
        authors: 25,
        baseline_mean: 1.0,
        baseline_std: 1.0,
        score,
        sparkline: vec![1, 1, 2, 8, 25],
        detected_at: ago(m - 2),
    };
    insert!(
        store,
        TrendRow,
        "trends",
        &[
            trend("#nusapaydown", 9.5, 10),
            trend("#nusapaydown", 4.0, 20),
            trend("#kopikitasenja", 5.0, 15),
            trend("#old", 50.0, 300),
        ]
    );

    let alerts = [
        alert(
            "a1",
            AlertKind::NegativeComment,
            Severity::High,
            "NusaPay scam",
            10,
        ),
        alert(
            "a2",
            AlertKind::NegativeSpike,
            Severity::Medium,
            "spike",
            20,
        ),
    ];
    let rows: Vec<AlertRow> = alerts.iter().map(AlertRow::from).collect();
    insert!(store, AlertRow, "alerts", &rows);
}

impl Server {
    /// Seeds a database, starts the server on a free port (and the live feed when `kafka`).
    async fn start(name: &str, kafka: bool) -> Server {
        let env = TestEnv::new(name);
        let store = env.store().await;
        seed(&store).await;
        let shutdown = CancellationToken::new();
        let feed = Arc::new(Feed::new(1000));
        if kafka {
            ensure_topics(&env.config.kafka, &env.topics).await.unwrap();
            tokio::spawn(run_consumer(
                env.config.kafka.clone(),
                env.topics.alerts.clone(),
                1000,
                feed.clone(),
                shutdown.clone(),
            ));
        }
        let state = Arc::new(AppState {
            store: store.clone(),
            config: env.config.server.clone(),
            tracked: vec![
                TrackedQueryConfig {
                    name: "nusapay".into(),
                    query: "nusapay".into(),
                },
                TrackedQueryConfig {
                    name: "kopikita".into(),
                    query: "kopikita".into(),
                },
            ],
            token: Some(Token::new(TOKEN)),
            feed: feed.clone(),
            metrics: Arc::new(Metrics::default()),
            counters: Counters::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            feed.closed.cancel();
        });
        tokio::spawn(gema::server::serve(state, listener, shutdown.clone()));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Server {
            env,
            store,
            url,
            http,
            shutdown,
            kafka,
        }
    }

    /// GET with the token; returns status and JSON body (Null when not JSON).
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn stop(self) {
        self.shutdown.cancel();
        if self.kafka {
            let _ = delete_topics(&self.env.config.kafka, &self.env.topics).await;
        }
        self.env.cleanup(&self.store).await;
    }
}

fn items(v: &Value) -> &Vec<Value> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {v}"))
}

const PROTECTED: [&str; 10] = [
    "/metrics",
    "/api/trends/top",
    "/api/trends/rising",
    "/api/mentions",
    "/api/timeline?query=nusapay",
    "/api/share-of-voice",
    "/api/queries",
    "/api/alerts",
    "/api/feed",
    "/assets/dashboard.js",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_required_on_api_feed_and_dashboard() {
    let s = Server::start("serve-auth", false).await;
    for path in PROTECTED.iter().chain(&["/"]) {
        let url = format!("{}{path}", s.url);
        let r = s.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without a token");
        let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("token"),
            "{path}: {body}"
        );
        let r = s
            .http
            .get(&url)
            .bearer_auth("wrong-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong token");
        let r = s
            .http
            .get(&url)
            .header("cookie", "gema_token=wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong cookie");
    }
    let r = s
        .http
        .post(format!("{}/api/alerts/a1/acknowledge", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Health needs no token and says nothing about the data.
    let r = s
        .http
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The dashboard: ?token= once sets an HttpOnly cookie and redirects to a token-free URL.
    let r = s
        .http
        .get(format!("{}/?token=nope", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .http
        .get(format!("{}/?token={TOKEN}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let r = s
        .http
        .get(format!("{}/", s.url))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    let html = r.text().await.unwrap();
    assert!(html.contains("Live alerts") && html.contains("/assets/uPlot.iife.min.js"));
    for asset in [
        "dashboard.js",
        "dashboard.css",
        "uPlot.iife.min.js",
        "uPlot.LICENSE",
    ] {
        let r = s
            .http
            .get(format!("{}/assets/{asset}", s.url))
            .header("cookie", &pair)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }
    // CORS is off by default: no Access-Control-* headers even for a foreign Origin.
    let r = s
        .http
        .get(format!("{}/api/queries", s.url))
        .bearer_auth(TOKEN)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_from_the_seeded_data() {
    let s = Server::start("serve-api", false).await;

    let (st, v) = s.get("/healthz").await;
    assert_eq!((st, v["status"].as_str()), (200, Some("ok")));
    // Without the feed's Kafka consumer the server is alive but not ready.
    let (st, v) = s.get("/readyz").await;
    assert_eq!(st, 503);
    assert_eq!(v["clickhouse"], true);

    // Top terms in the last hour.
    let (st, v) = s.get("/api/trends/top?kind=keywords&limit=5").await;
    assert_eq!(st, 200, "{v}");
    let top = &items(&v)[0];
    assert_eq!(
        (top["term"].as_str(), top["mentions"].as_u64()),
        (Some("nusapay"), Some(6))
    );
    assert_eq!(top["negative"], 3);
    let (_, v) = s.get("/api/trends/top?kind=hashtags&q=KOPI").await;
    let terms: Vec<&str> = items(&v)
        .iter()
        .map(|t| t["term"].as_str().unwrap())
        .collect();
    assert_eq!(terms, vec!["#kopikitasenja"]);

    // Rising: the strongest burst per term, old ones outside the window left out.
    let (st, v) = s.get("/api/trends/rising").await;
    assert_eq!(st, 200, "{v}");
    let r = items(&v);
    let terms: Vec<&str> = r.iter().map(|t| t["term"].as_str().unwrap()).collect();
    assert_eq!(terms, vec!["#nusapaydown", "#kopikitasenja"]);
    assert_eq!(r[0]["score"], 9.5);
    assert_eq!(r[0]["sparkline"], serde_json::json!([1, 1, 2, 8, 25]));
    assert!(
        r[0]["bucket_start"].as_str().unwrap().ends_with('Z'),
        "RFC 3339 times"
    );

    // Mention search with every filter, and pagination.
    let (_, v) = s.get("/api/mentions").await;
    assert_eq!(items(&v).len(), 10, "the last hour holds 10 mentions");
    let (_, v) = s.get("/api/mentions?sentiment=negative").await;
    assert_eq!(items(&v).len(), 3);
    let (_, v) = s.get("/api/mentions?sentiment=negative&since=6h").await;
    assert_eq!(items(&v).len(), 4);
    let (_, v) = s.get("/api/mentions?lang=en").await;
    assert_eq!(items(&v).len(), 3);
    let (_, v) = s.get("/api/mentions?platform=bluesky").await;
    assert_eq!(items(&v).len(), 2);
    let (_, v) = s.get("/api/mentions?q=REFUND").await;
    assert_eq!(items(&v)[0]["key"], "mastodon:n3");
    let (_, p1) = s.get("/api/mentions?limit=4").await;
    assert_eq!(p1["next_offset"], 4);
    let (_, p3) = s.get("/api/mentions?limit=4&offset=8").await;
    assert_eq!(items(&p3).len(), 2);
    assert!(p3["next_offset"].is_null());
    let (_, all) = s.get("/api/mentions?limit=10").await;
    assert_eq!(items(&all)[8], items(&p3)[0], "pages follow the same order");
    let times: Vec<&str> = items(&all)
        .iter()
        .map(|m| m["created_at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");

    // Sentiment timeline of a tracked query: every bucket present, counts add up.
    let (st, v) = s
        .get("/api/timeline?query=nusapay&since=6h&bucket=1h")
        .await;
    assert_eq!(st, 200, "{v}");
    let b = items(&v);
    assert!((6..=7).contains(&b.len()), "{} buckets", b.len());
    let sum = |k: &str| b.iter().map(|x| x[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(
        (sum("negative"), sum("neutral"), sum("positive")),
        (4, 2, 1)
    );
    let busy = b
        .iter()
        .find(|x| x["total"].as_u64().unwrap() >= 3)
        .unwrap();
    let net = busy["net_sentiment"].as_f64().unwrap();
    assert!((-1.0..0.0).contains(&net), "{busy}");
    let (_, v) = s
        .get("/api/timeline?query=unknown&since=2h&bucket=15m")
        .await;
    assert!(items(&v).iter().all(|x| x["total"] == 0));
    assert!(s.get("/api/timeline").await.0 == 400, "query is required");
    assert_eq!(
        s.get("/api/timeline?query=nusapay&since=30d&bucket=1m")
            .await
            .0,
        400
    );

    // Share of voice over the last day.
    let (st, v) = s.get("/api/share-of-voice").await;
    assert_eq!(st, 200, "{v}");
    let sov = items(&v);
    assert_eq!(
        (sov[0]["query"].as_str(), sov[0]["mentions"].as_u64()),
        (Some("nusapay"), Some(7))
    );
    assert_eq!(
        (sov[1]["query"].as_str(), sov[1]["mentions"].as_u64()),
        (Some("kopikita"), Some(4))
    );
    let total: f64 = sov.iter().map(|x| x["share"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-9);
    assert_eq!(sov[1]["net_sentiment"], 1.0);

    let (_, v) = s.get("/api/queries").await;
    assert_eq!(items(&v).len(), 2);

    // Alerts: history, filters, acknowledge / resolve, unknown ids.
    let (_, v) = s.get("/api/alerts").await;
    let ids: Vec<&str> = items(&v)
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["a1", "a2"]);
    let (_, v) = s.get("/api/alerts?kind=negative_spike").await;
    assert_eq!(items(&v).len(), 1);
    let (st, v) = s.post("/api/alerts/a1/acknowledge").await;
    assert_eq!((st, v["status"].as_str()), (200, Some("acknowledged")));
    let (_, v) = s.get("/api/alerts?status=acknowledged").await;
    assert_eq!(items(&v)[0]["id"], "a1");
    assert_eq!(items(&v).len(), 1);
    let (st, _) = s.post("/api/alerts/a2/resolve").await;
    assert_eq!(st, 200);
    let (_, v) = s.get("/api/alerts?status=new").await;
    assert!(items(&v).is_empty());
    assert_eq!(s.post("/api/alerts/nope/acknowledge").await.0, 404);
    assert_eq!(s.post("/api/alerts/a1/explode").await.0, 404);

    // Metrics: every stage's counters plus the server's.
    let r = s
        .http
        .get(format!("{}/metrics", s.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    for name in [
        "gema_enrich_received_total",
        "gema_sink_rows_total",
        "gema_server_requests_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }

    // Errors are JSON with the right status.
    let (st, v) = s.get("/nope").await;
    assert_eq!((st, v["error"].is_string()), (404, true));
    let (st, v) = s.post("/api/mentions").await;
    assert_eq!((st, v["error"].is_string()), (405, true));
    let (st, v) = s.get("/api/mentions?limit=501").await;
    assert_eq!((st, v["error"].is_string()), (400, true));
    assert_eq!(s.get("/api/mentions?since=91d").await.0, 400);
    assert_eq!(s.get("/api/mentions?since=1h&until=2h").await.0, 400);
    assert_eq!(s.get("/api/mentions?colour=red").await.0, 400);
    let r = s
        .http
        .post(format!("{}/api/alerts/a1/acknowledge", s.url))
        .bearer_auth(TOKEN)
        .body(vec![b'x'; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    s.stop().await;
}

/// Values that would change a query pasted together from strings.
fn attacks() -> Vec<String> {
    vec![
        "' OR 1=1 --".into(),
        "'; DROP TABLE mentions; --".into(),
        "`; DROP TABLE mentions".into(),
        "\\' OR '1'='1".into(),
        "x') UNION ALL SELECT * FROM system.tables --".into(),
        "? ? ?".into(),
        "{p:String}".into(),
        "ñandú 漢字 🙂 \u{202e}".into(),
        "\u{0}\n".into(),
        "9".repeat(40),
        "-1".into(),
        "a".repeat(5000),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_attempts_get_400_or_nothing() {
    let s = Server::start("serve-inject", false).await;
    // A foreign database's row must never show up.
    let foreign = TestEnv::new("serve-foreign");
    let fstore = foreign.store().await;
    let canary = mention(
        "c",
        "x",
        Utc::now(),
        "negative",
        "id",
        "CANARY foreign",
        &["canary"],
        &["canary"],
        &["nusapay"],
    );
    insert!(&fstore, MentionRow, "mentions", &[canary]);

    let endpoints: [(&str, &[&str]); 7] = [
        ("/api/trends/top", &["since", "until", "limit", "kind", "q"]),
        ("/api/trends/rising", &["since", "until", "limit", "q"]),
        (
            "/api/mentions",
            &[
                "since",
                "until",
                "sentiment",
                "lang",
                "platform",
                "q",
                "limit",
                "offset",
            ],
        ),
        ("/api/timeline", &["query", "since", "until", "bucket"]),
        ("/api/share-of-voice", &["since", "until"]),
        (
            "/api/alerts",
            &["since", "until", "kind", "status", "limit"],
        ),
        ("/api/feed", &["last_event_id"]),
    ];
    let mut checked = 0;
    for (path, names) in endpoints {
        for name in names {
            for attack in attacks() {
                let mut url = reqwest::Url::parse(&format!("{}{path}", s.url)).unwrap();
                {
                    let mut q = url.query_pairs_mut();
                    if path == "/api/timeline" && *name != "query" {
                        q.append_pair("query", "nusapay");
                    }
                    q.append_pair(name, &attack);
                }
                let r = s.http.get(url).bearer_auth(TOKEN).send().await.unwrap();
                let status = r.status().as_u16();
                let body = r.bytes().await.unwrap();
                let text = String::from_utf8_lossy(&body);
                assert!(
                    status == 400 || status == 200,
                    "{path}?{name}={attack:?} gave {status}: {text}"
                );
                assert!(
                    !text.contains("CANARY"),
                    "{path}?{name}: foreign data: {text}"
                );
                assert!(!text.contains("DB::Exception"), "{path}?{name}: {text}");
                if status == 200 {
                    let v: Value = serde_json::from_slice(&body).unwrap();
                    let n = v["items"].as_array().map_or(0, |a| a.len());
                    let empty = match path {
                        // Timeline buckets exist but are empty for an unknown query name.
                        "/api/timeline" if *name == "query" => v["items"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .all(|b| b["total"] == 0),
                        _ => n == 0,
                    };
                    assert!(empty, "{path}?{name}={attack:?} matched data: {v}");
                } else {
                    let v: Value = serde_json::from_slice(&body).unwrap();
                    assert!(v["error"].is_string());
                }
                checked += 1;
            }
        }
    }
    for attack in attacks() {
        let id: String = url_encode(&attack);
        let (st, _) = s.post(&format!("/api/alerts/{id}/acknowledge")).await;
        assert!(st == 400 || st == 404, "alert id {attack:?} gave {st}");
    }
    // A Last-Event-ID header is checked the same way.
    let r = s
        .http
        .get(format!("{}/api/feed", s.url))
        .bearer_auth(TOKEN)
        .header("last-event-id", "1' OR 1=1 --")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Nothing was dropped or changed.
    assert_eq!(s.store.count_mentions().await.unwrap(), 11);
    let (_, v) = s.get("/api/mentions?since=1d").await;
    assert_eq!(items(&v).len(), 11);
    assert!(checked > 300);
    foreign.cleanup(&fstore).await;
    s.stop().await;
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One SSE client: reads `alert` events as (id, alert).
struct SseClient {
    resp: reqwest::Response,
    buf: String,
}

impl SseClient {
    async fn connect(s: &Server, last_event_id: Option<&str>) -> SseClient {
        let mut req = s.http.get(format!("{}/api/feed", s.url)).bearer_auth(TOKEN);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        SseClient {
            resp,
            buf: String::new(),
        }
    }

    async fn next(&mut self, timeout: Duration) -> Option<(String, Alert)> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut data, mut event) = (None, None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = Some(v.trim_start().to_string());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_string());
                    }
                }
                if event.as_deref() == Some("alert") {
                    let alert: Alert = serde_json::from_str(&data.unwrap()).unwrap();
                    return Some((id.unwrap(), alert));
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Ok(Ok(Some(c))) => self.buf.push_str(&String::from_utf8_lossy(&c)),
                _ => return None,
            }
        }
    }
}

async fn publish(s: &Server, alerts: &[Alert]) {
    let producer = gema::kafka::producer(&s.env.config.kafka).unwrap();
    for a in alerts {
        let json = serde_json::to_vec(a).unwrap();
        producer
            .send(
                FutureRecord::to(&s.env.topics.alerts)
                    .key(&a.id)
                    .payload(&json),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
}

async fn wait_ready(s: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.get("/readyz").await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the live feed never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn neg(id: &str) -> Alert {
    alert(
        id,
        AlertKind::NegativeComment,
        Severity::High,
        &format!("{id}: NusaPay nipu"),
        0,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_delivers_new_alerts_and_resumes_after_last_event_id() {
    let s = Server::start("serve-sse", true).await;
    wait_ready(&s).await;
    let t = Duration::from_secs(20);

    publish(&s, &[neg("f1")]).await;
    let mut c = SseClient::connect(&s, None).await;
    let (_, a) = c.next(t).await.expect("the backlog holds f1");
    assert_eq!(a.id, "f1");
    publish(&s, &[neg("f2")]).await;
    let (id2, a) = c.next(t).await.expect("f2 arrives live");
    assert_eq!(a.id, "f2");
    assert_eq!(a.samples[0].author_handle, "angry_user");
    drop(c);

    // While disconnected, two more alerts; the reconnect gets exactly those.
    publish(&s, &[neg("f3"), neg("f4")]).await;
    let deadline = Instant::now() + t;
    while s.get("/metrics").await.0 == 200 {
        let r = s
            .http
            .get(format!("{}/metrics", s.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        if r.text()
            .await
            .unwrap()
            .contains("gema_server_feed_alerts_total 4")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the feed never read f3 and f4");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut c = SseClient::connect(&s, Some(&id2)).await;
    let mut got = vec![
        c.next(t).await.expect("f3 or f4").1.id,
        c.next(t).await.expect("f3 or f4").1.id,
    ];
    got.sort();
    assert_eq!(got, vec!["f3", "f4"]);
    assert!(
        c.next(Duration::from_millis(500)).await.is_none(),
        "nothing replayed twice"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_reaches_100_concurrent_clients() {
    let s = Server::start("serve-sse100", true).await;
    wait_ready(&s).await;
    let mut clients = Vec::new();
    for _ in 0..100 {
        clients.push(SseClient::connect(&s, None).await);
    }
    let sent: Vec<Alert> = (0..5).map(|i| neg(&format!("m{i}"))).collect();
    let started = Instant::now();
    publish(&s, &sent).await;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut ids = Vec::new();
                while ids.len() < 5 {
                    match c.next(Duration::from_secs(30)).await {
                        Some((_, a)) => ids.push(a.id),
                        None => break,
                    }
                }
                ids.sort();
                ids
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), vec!["m0", "m1", "m2", "m3", "m4"]);
    }
    eprintln!(
        "100 SSE clients received all 5 alerts {:?} after publishing started",
        started.elapsed()
    );
    s.stop().await;
}

#[test]
fn openapi_describes_every_route() {
    let spec = include_str!("../schemas/openapi.yaml");
    for path in [
        "/healthz:",
        "/readyz:",
        "/metrics:",
        "/api/trends/top:",
        "/api/trends/rising:",
        "/api/mentions:",
        "/api/timeline:",
        "/api/share-of-voice:",
        "/api/queries:",
        "/api/alerts:",
        "/api/alerts/{id}/{action}:",
        "/api/feed:",
    ] {
        assert!(
            spec.contains(&format!("  {path}\n")),
            "{path} missing from openapi.yaml"
        );
    }
}
