//! Test harness for `tests/serve.rs`: a `gema serve` instance on a free port over its own
//! seeded database (and topics, for the live feed), an HTTP client with the token, and an SSE
//! client that parses `alert` events.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use gema::alerts::{Alert, AlertKind, Sample, Severity};
use gema::kafka::topics::{delete_topics, ensure_topics};
use gema::server::auth::Token;
use gema::server::ServeOptions;
use gema::store::row::{AlertRow, MentionRow, TrendRow};
use gema::store::Store;
use gema::tracked::TrackedQueryConfig;
use rdkafka::producer::FutureRecord;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::common::TestEnv;

pub const TOKEN: &str = "test-token-0123456789abcdef";

pub struct Server {
    pub env: TestEnv,
    pub store: Store,
    pub url: String,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    /// The server task: ends once `shutdown` is cancelled, open SSE streams included.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    pub kafka: bool,
}

#[allow(clippy::too_many_arguments)]
pub fn mention(
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
    let score = match sentiment {
        "negative" => -0.8,
        "positive" => 0.7,
        _ => 0.0,
    };
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
        sentiment_score: score,
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
        sentiment_tier: "fast".into(),
        cascade_escalation: String::new(),
        fast_sentiment: sentiment.into(),
        fast_score: score,
        fast_confidence: 0.9,
    }
}

pub fn alert(id: &str, kind: AlertKind, severity: Severity, text: &str, ago_min: i64) -> Alert {
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
/// kopikita 4 positive (x, id); all in the last hour; one old nusapay negative 5 h ago. Every
/// confidence is 0.9 except the third negative's (n2), 0.45. Every author has 100 followers
/// except n0's, 50,000.
pub async fn seed(store: &Store) {
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
    rows[2].sentiment_confidence = 0.45;
    rows[0].author_followers = 50_000;
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
    insert_mentions(store, &rows).await;

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
    /// Seeds a database, starts the server on a free port (and the live feed when `kafka`)
    /// through `gema::server::start`, as `gema serve` does, with the committed fast model.
    pub async fn start(name: &str, kafka: bool) -> Server {
        Self::start_in(TestEnv::new(name), kafka).await
    }

    /// [`Server::start`] in `env` (e.g. with another ClickHouse URL).
    pub async fn start_in(env: TestEnv, kafka: bool) -> Server {
        let store = env.store().await;
        seed(&store).await;
        Self::open(env, store, kafka).await
    }

    /// [`Server::start_in`] over `store` as it is, without seeding it.
    pub async fn open(mut env: TestEnv, store: Store, kafka: bool) -> Server {
        if kafka {
            ensure_topics(&env.config.kafka, &env.topics).await.unwrap();
        }
        env.config.tracked = vec![
            TrackedQueryConfig {
                name: "nusapay".into(),
                query: "nusapay".into(),
            },
            TrackedQueryConfig {
                name: "kopikita".into(),
                query: "kopikita".into(),
            },
        ];
        env.config.display.time_zone = Some("Asia/Jakarta".into());
        env.config.enrich.sentiment_model =
            concat!(env!("CARGO_MANIFEST_DIR"), "/models/sentiment-fast.bin").into();
        let mut server = env.config.server.clone();
        server.listen = "127.0.0.1:0".into();
        server.feed_ring_capacity = 1000;
        let opts = ServeOptions {
            server,
            token: Some(Token::new(TOKEN)),
            stages: Vec::new(),
            kafka,
            sources: false,
        };
        let running = gema::server::start(&env.config, opts).await.unwrap();
        let url = format!("http://{}", running.addr);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Server {
            env,
            store,
            url,
            http,
            shutdown: running.shutdown,
            task: running.task,
            kafka,
        }
    }

    /// GET with the token; returns status and JSON body (Null when not JSON).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        Self::send(self.http.get(format!("{}{path}", self.url))).await
    }

    pub async fn post(&self, path: &str) -> (u16, Value) {
        Self::send(self.http.post(format!("{}{path}", self.url))).await
    }

    /// POST a JSON body with the token.
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let req = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_string());
        Self::send(req).await
    }

    /// Sends with the token; status and JSON body (Null when not JSON).
    async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
        let r = req.bearer_auth(TOKEN).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Graceful stop (asserted to finish promptly even with live-feed clients connected), then
    /// the database and topics are dropped.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops within 10 s of shutdown")
            .unwrap()
            .unwrap();
        if self.kafka {
            let _ = delete_topics(&self.env.config.kafka, &self.env.topics).await;
        }
        self.env.cleanup(&self.store).await;
    }
}

pub fn url_encode(s: &str) -> String {
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
pub struct SseClient {
    pub resp: reqwest::Response,
    pub buf: String,
}

impl SseClient {
    pub async fn connect(s: &Server, last_event_id: Option<&str>) -> SseClient {
        Self::connect_to(s, "/api/feed", last_event_id).await
    }

    pub async fn connect_to(s: &Server, path: &str, last_event_id: Option<&str>) -> SseClient {
        let mut req = s.http.get(format!("{}{path}", s.url)).bearer_auth(TOKEN);
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

    /// The next `alert` event: (id, alert).
    pub async fn next(&mut self, timeout: Duration) -> Option<(String, Alert)> {
        let (_, id, data) = self.next_event(timeout).await?;
        Some((id, serde_json::from_str(&data).unwrap()))
    }

    /// The next named event: (event, id, data).
    pub async fn next_event(&mut self, timeout: Duration) -> Option<(String, String, String)> {
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
                if let (Some(event), Some(id), Some(data)) = (event, id, data) {
                    return Some((event, id, data));
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

pub async fn publish(s: &Server, alerts: &[Alert]) {
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

pub async fn wait_ready(s: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.get("/readyz").await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the live feed never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn neg(id: &str) -> Alert {
    alert(
        id,
        AlertKind::NegativeComment,
        Severity::High,
        &format!("{id}: NusaPay nipu"),
        0,
    )
}

/// Inserts mention rows into `store`'s `mentions` table and recomputes the rollups of their
/// minutes (the sink does that for what it writes; these rows bypass it).
pub async fn insert_mentions(store: &Store, rows: &[MentionRow]) {
    insert!(store, MentionRow, "mentions", rows);
    let (Some(first), Some(last)) = (
        rows.iter().map(|r| r.created_at).min(),
        rows.iter().map(|r| r.created_at).max(),
    ) else {
        return;
    };
    gema::store::rollup::rebuild(store, first, last)
        .await
        .unwrap();
}
