//! `gema serve` against the real ClickHouse (and Kafka for the live feed): every endpoint on
//! seeded data, auth, injection attempts in every parameter, and the SSE feed delivering new
//! alerts and resuming after `Last-Event-ID`. Each test has its own database and topics.

mod common;
mod serve_harness;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::TestEnv;
use gema::alerts::Alert;
use serde_json::Value;
use serve_harness::*;

fn items(v: &Value) -> &Vec<Value> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {v}"))
}

const PROTECTED: [&str; 14] = [
    "/metrics",
    "/api/trends/top",
    "/api/trends/rising",
    "/api/mentions",
    "/api/timeline?query=nusapay",
    "/api/share-of-voice",
    "/api/queries",
    "/api/display",
    "/api/headline",
    "/api/authors/top",
    "/api/alerts",
    "/api/feed",
    "/api/feed/mentions",
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
    for (path, body) in [
        ("/api/alerts/a1/acknowledge", ""),
        ("/api/classify", r#"{"texts": ["hello"]}"#),
        ("/api/ingest", r#"{"id": "1"}"#),
    ] {
        let r = s
            .http
            .post(format!("{}{path}", s.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "POST {path} without a token");
    }
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

/// Top @handles: the handles column and the count share the name `mentions`, which ClickHouse
/// resolved to the count (503 "Unknown identifier: count()").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_handles_are_counted() {
    let s = Server::start("serve-handles", false).await;
    let at = Utc::now() - chrono::Duration::minutes(3);
    let rows: Vec<_> = ["h1", "h2", "h3"]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut m = serve_harness::mention(
                id,
                "x",
                at,
                if i == 0 { "negative" } else { "positive" },
                "id",
                "@nusapay tolong",
                &[],
                &[],
                &[],
            );
            m.mentions = if i < 2 {
                vec!["nusapay".into()]
            } else {
                vec!["kopikita".into()]
            };
            m
        })
        .collect();
    serve_harness::insert_mentions(&s.store, &rows).await;
    let (st, v) = s.get("/api/trends/top?kind=handles&since=1h").await;
    assert_eq!(st, 200, "{v}");
    let top: Vec<(&str, u64, u64)> = items(&v)
        .iter()
        .map(|t| {
            (
                t["term"].as_str().unwrap(),
                t["mentions"].as_u64().unwrap(),
                t["negative"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(top, vec![("@nusapay", 2, 1), ("@kopikita", 1, 0)]);
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
    // The line is counted from the stored mentions over the whole hour, in 2-minute steps of
    // whole buckets up to the last whole minute: #nusapaydown's three authors posted 15, 10 and
    // 5 minutes ago, one step each, and the burst (10 minutes ago) is marked on the line.
    let line: Vec<u64> = r[0]["sparkline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(
        (line.len(), r[0]["sparkline_step_secs"].as_u64()),
        (30, Some(120))
    );
    assert_eq!(
        (line.iter().sum::<u64>(), line.iter().max()),
        (3, Some(&1)),
        "{line:?}"
    );
    let burst = r[0]["burst_index"].as_u64().unwrap() as usize;
    assert_eq!(line[burst], 1, "the burst's step holds n1's post");
    assert_eq!(
        line[burst + 2..].iter().sum::<u64>(),
        1,
        "n0's post, 5 minutes ago, after it"
    );
    let until: chrono::DateTime<chrono::Utc> =
        r[0]["sparkline_until"].as_str().unwrap().parse().unwrap();
    let age = chrono::Utc::now() - until;
    assert!(
        age >= chrono::Duration::zero() && age <= chrono::Duration::seconds(65),
        "{until}"
    );
    assert!(r[0]["sparkline_until_local"].is_string());
    assert!(
        r[0]["bucket_start"].as_str().unwrap().ends_with('Z'),
        "RFC 3339 times"
    );

    // Mention search with every filter, and pagination.
    let (_, v) = s.get("/api/mentions").await;
    assert_eq!(items(&v).len(), 10, "the last hour holds 10 mentions");
    assert!(items(&v).iter().all(|m| m["sentiment_tier"] == "fast"));
    let (_, v) = s.get("/api/mentions?sentiment=negative").await;
    assert_eq!(items(&v).len(), 3);
    let (_, v) = s.get("/api/mentions?sentiment=negative&since=6h").await;
    assert_eq!(items(&v).len(), 4);
    let (_, v) = s
        .get("/api/mentions?sentiment=negative&min_confidence=0.5")
        .await;
    assert_eq!(items(&v).len(), 2, "n2 (confidence 0.45) is left out");
    assert!(items(&v).iter().all(|m| m["key"] != "x:n2"));
    for bad in ["1.5", "-0.1", "high", "NaN"] {
        let (st, v) = s.get(&format!("/api/mentions?min_confidence={bad}")).await;
        assert_eq!(st, 400, "{bad}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains("min_confidence"),
            "{v}"
        );
    }
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
    // Net sentiment per bucket is (positive - negative) / scored (the seeded hour may straddle a
    // bucket boundary, so every non-empty bucket is checked).
    for x in b.iter().filter(|x| x["total"].as_u64().unwrap() > 0) {
        let n = |k: &str| x[k].as_f64().unwrap();
        let want = (n("positive") - n("negative")) / (n("negative") + n("neutral") + n("positive"));
        assert!((n("net_sentiment") - want).abs() < 1e-9, "{x}");
    }
    // An empty bucket is a gap: zero counts, no net sentiment.
    for x in b.iter().filter(|x| x["total"].as_u64().unwrap() == 0) {
        assert!(x["net_sentiment"].is_null(), "{x}");
    }
    // Times come in UTC and, beside them, in the display zone (Asia/Jakarta here).
    assert_eq!(v["time_zone"], "Asia/Jakarta");
    let utc: chrono::DateTime<Utc> = b[0]["bucket_start"].as_str().unwrap().parse().unwrap();
    let local = b[0]["bucket_start_local"].as_str().unwrap();
    assert!(local.ends_with("+07:00"), "{local}");
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(local).unwrap(),
        utc,
        "the same instant"
    );
    // A name neither tracked nor mentioned is a typo: 404 naming the tracked queries, not a
    // timeline of zeros.
    let (status, v) = s
        .get("/api/timeline?query=unknown&since=2h&bucket=15m")
        .await;
    assert_eq!(status, 404, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("tracked: nusapay, kopikita"),
        "{v}"
    );
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

    let (st, v) = s.get("/api/display").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (
            v["time_zone"].as_str(),
            v["abbreviation"].as_str(),
            v["offset_seconds"].as_i64()
        ),
        (Some("Asia/Jakarta"), Some("WIB"), Some(7 * 3600))
    );

    // Headline per tracked query over the last 6 h against the 6 h before. Seeded in the last
    // 6 h: nusapay 4 negative (one 5 h ago), 1 positive, 2 neutral by 7 authors of 100
    // followers each, except n0's author, who has 50,000; kopikita 4 positive by 4 authors.
    // Before: nothing.
    let (st, v) = s.get("/api/headline?since=6h").await;
    assert_eq!(st, 200, "{v}");
    let h = items(&v);
    let names: Vec<&str> = h.iter().map(|x| x["query"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["nusapay", "kopikita"], "config order");
    assert_eq!(
        (
            h[0]["mentions"].as_u64(),
            h[0]["negative"].as_u64(),
            h[0]["reach"].as_u64()
        ),
        (Some(7), Some(4), Some(50_000 + 6 * 100))
    );
    assert!((h[0]["negative_share"].as_f64().unwrap() - 4.0 / 7.0).abs() < 1e-9);
    assert!(
        h[0]["mentions_change"].is_null(),
        "nothing before: no change"
    );
    assert_eq!(
        (
            h[1]["mentions"].as_u64(),
            h[1]["negative_share"].as_f64(),
            h[1]["reach"].as_u64()
        ),
        (Some(4), Some(0.0), Some(400))
    );
    // Over the last 4 h against the 4 h before, the old negative (5 h ago) is in "before".
    let (_, v) = s.get("/api/headline?since=4h").await;
    let h = items(&v);
    assert_eq!(h[0]["mentions"], 6);
    assert_eq!(h[0]["previous"]["mentions"], 1);
    assert_eq!(h[0]["previous"]["negative"], 1);
    assert!((h[0]["mentions_change"].as_f64().unwrap() - 5.0).abs() < 1e-9);
    assert!((h[0]["negative_share"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    assert!((h[0]["negative_share_change"].as_f64().unwrap() + 0.5).abs() < 1e-9);
    assert!((h[0]["reach_change"].as_f64().unwrap() - (50_500.0 - 100.0) / 100.0).abs() < 1e-9);

    // Top authors by reach: n0's author first.
    let (st, v) = s.get("/api/authors/top?since=6h&limit=3").await;
    assert_eq!(st, 200, "{v}");
    let a = items(&v);
    assert_eq!(a.len(), 3);
    assert_eq!(
        (
            a[0]["handle"].as_str(),
            a[0]["followers"].as_u64(),
            a[0]["negative"].as_u64()
        ),
        (Some("usern0"), Some(50_000), Some(1))
    );
    let (_, v) = s.get("/api/authors/top?since=6h&query=kopikita").await;
    assert_eq!(items(&v).len(), 4);
    assert!(items(&v)
        .iter()
        .all(|a| a["handle"].as_str().unwrap().starts_with("userk")));

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
    insert_mentions(&fstore, &[canary]).await;

    let endpoints: [(&str, &[&str]); 8] = [
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
        ("/api/feed/mentions", &["last_event_id"]),
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
                // An unknown query name is 404 (it names the tracked queries, never the input).
                let unknown_query = path == "/api/timeline" && *name == "query" && status == 404;
                assert!(
                    status == 400 || status == 200 || unknown_query,
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
            .contains("gema_server_feed_events_total{feed=\"alert\"} 4")
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
fn serve_refuses_to_start_without_a_token_unless_told_to() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gema"))
        .args(["serve", "--listen", "127.0.0.1:1"])
        .env_remove("GEMA_API_TOKEN")
        .env("GEMA_CONFIG", "/dev/null")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("GEMA_API_TOKEN") && err.contains("--insecure-no-auth"),
        "{err}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gema"))
        .args(["serve", "--listen", "127.0.0.1:1"])
        .env("GEMA_API_TOKEN", "short")
        .env("GEMA_CONFIG", "/dev/null")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a 5-character token is refused");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_gema"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--insecure-no-auth") && help.contains("GEMA_API_TOKEN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classify_answers_as_the_enrich_stage_and_names_the_words() {
    let s = Server::start("serve-classify", false).await;
    let body = serde_json::json!({
        "texts": ["awful customer service", "Pelayanannya cepat, mantap", "Das ist ein Haus"],
        "explain": true,
    });
    let (status, v) = s.post_json("/api/classify", &body).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["model"].as_str().unwrap().starts_with("fast"), "{v}");
    let got = items(&v);
    assert_eq!(got.len(), 3);
    assert_eq!(
        (&got[0]["lang"], &got[0]["label"]),
        (&"en".into(), &"negative".into())
    );
    assert_eq!(got[0]["words"][0]["word"], "awful", "{v}");
    assert!(got[0]["words"][0]["effect"].as_f64().unwrap() < 0.0, "{v}");
    assert_eq!(
        (&got[1]["lang"], &got[1]["label"]),
        (&"id".into(), &"positive".into())
    );
    assert_eq!(
        (&got[2]["label"], &got[2]["confidence"]),
        (&"unscored".into(), &0.0.into())
    );
    assert!(got[2].get("words").is_none(), "{v}");
    // Without `explain` there are no words.
    let (_, v) = s
        .post_json(
            "/api/classify",
            &serde_json::json!({"texts": ["great app"]}),
        )
        .await;
    assert!(items(&v)[0].get("words").is_none(), "{v}");
    // Bad bodies name the problem.
    let too_many: Vec<&str> = vec!["x"; 101];
    let long = "a".repeat(2001);
    for (bad, says) in [
        (serde_json::json!({"texts": []}), "texts: 1 to 100"),
        (serde_json::json!({"texts": too_many}), "got 101"),
        (
            serde_json::json!({"texts": ["ok", long]}),
            "texts[1]: longer than 2000",
        ),
        (serde_json::json!({"text": "ok"}), "unknown field"),
        (serde_json::json!({"texts": "ok"}), "body:"),
    ] {
        let (status, v) = s.post_json("/api/classify", &bad).await;
        assert_eq!(status, 400, "{bad}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{bad}: {v}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_sends_mentions_through_the_pipeline_and_dead_letters_the_malformed() {
    let s = Server::start("serve-ingest", true).await;
    let stages = common::Stages::start(&s.env, &s.store);
    let now = Utc::now().to_rfc3339();
    let mention = |id: &str, text: &str| {
        serde_json::json!({
            "id": id, "platform": "webhook", "text": text, "created_at": now,
            "author": {"id": format!("a-{id}"), "handle": format!("h{id}")},
        })
    };
    let mut no_text = mention("wh-3", "x");
    no_text.as_object_mut().unwrap().remove("text");
    let body = serde_json::json!([
        mention("wh-1", "NusaPay app error lagi, saldo hilang"),
        mention("wh-2", "KopiKita enak banget"),
        no_text,
    ]);
    let (status, v) = s.post_json("/api/ingest", &body).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!((&v["sent"], &v["accepted"]), (&3.into(), &2.into()), "{v}");
    assert_eq!(v["malformed"][0]["index"], 2, "{v}");
    assert_eq!(v["malformed"][0]["reason"], "schema", "{v}");
    assert!(
        v["malformed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("text"),
        "{v}"
    );
    // One object is one mention.
    let (status, v) = s
        .post_json("/api/ingest", &mention("wh-4", "biasa aja"))
        .await;
    assert_eq!((status, &v["accepted"]), (202, &1.into()), "{v}");
    // A body that is not a mention or a list of them is refused, and nothing is sent.
    for (bad, says) in [
        (serde_json::json!("text"), "a mention object or an array"),
        (serde_json::json!([]), "1 to 1000 mentions, got 0"),
    ] {
        let (status, v) = s.post_json("/api/ingest", &bad).await;
        assert_eq!(status, 400, "{bad}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{bad}: {v}");
    }
    let r = s
        .http
        .post(format!("{}/api/ingest", s.url))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // The valid ones are enriched and stored; the malformed one is dead-lettered with its reason.
    s.env.wait_drained(Duration::from_secs(60)).await;
    let stored: u64 = s
        .store
        .client
        .query("SELECT count() FROM mentions FINAL WHERE key IN ('webhook:wh-1', 'webhook:wh-2', 'webhook:wh-4')")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(stored, 3);
    let dead = s.env.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].dead_letter.as_ref().unwrap().reason, "schema");
    assert!(dead[0].original.contains("wh-3"), "{:?}", dead[0]);
    stages.stop().await;
    s.stop().await;
}

/// `/api/ingest` validates each element from its own bytes as `gema replay` does, and a
/// malformed element reaches the dead-letter topic byte for byte as the client sent it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_validates_like_replay_and_dead_letters_the_original_bytes() {
    let s = Server::start("serve-ingest-raw", true).await;
    let stages = common::Stages::start(&s.env, &s.store);
    let now = Utc::now().to_rfc3339();
    let good = format!(
        r#"{{"id":"raw-1","platform":"webhook","text":"NusaPay oke","created_at":"{now}","author":{{"id":"a1","handle":"h1"}}}}"#
    );
    // A duplicate field: serde_json::Value would keep the last one and accept it; replay refuses.
    let duplicate = format!(
        r#"{{ "id" : "raw-2",  "id": "raw-3", "platform":"webhook","text":"dua kali","created_at":"{now}","author":{{"id":"a2","handle":"h2"}} }}"#
    );
    assert!(gema::mention::Mention::parse(duplicate.as_bytes()).is_err());
    let r = s
        .http
        .post(format!("{}/api/ingest", s.url))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(format!("[{good},\n  {duplicate}]"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!((&v["sent"], &v["accepted"]), (&2.into(), &1.into()), "{v}");
    assert_eq!(v["malformed"][0]["index"], 1, "{v}");
    assert!(
        v["malformed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("duplicate field"),
        "{v}"
    );
    s.env.wait_drained(Duration::from_secs(60)).await;
    let dead = s.env.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        dead[0].original, duplicate,
        "the original bytes, spacing and all"
    );
    stages.stop().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_without_kafka_answers_503() {
    let s = Server::start("serve-ingest-off", false).await;
    let (status, v) = s
        .post_json("/api/ingest", &serde_json::json!({"id": "1"}))
        .await;
    assert_eq!(status, 503, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("ingest is off"),
        "{v}"
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
        "/api/display:",
        "/api/headline:",
        "/api/authors/top:",
        "/api/alerts:",
        "/api/alerts/{id}/{action}:",
        "/api/feed:",
        "/api/feed/mentions:",
        "/api/classify:",
        "/api/ingest:",
    ] {
        assert!(
            spec.contains(&format!("  {path}\n")),
            "{path} missing from openapi.yaml"
        );
    }
}

/// An enriched mention as the enrich stage writes it, scored by the built-in lexicon.
fn enriched(id: &str, text: &str) -> gema::mention::EnrichedMention {
    use gema::enrich::Enricher;
    use gema::sentiment::lexicon::LexiconModel;
    use gema::tracked::{QuerySet, TrackedQueryConfig};
    let queries = QuerySet::compile(&[TrackedQueryConfig {
        name: "nusapay".into(),
        query: "nusapay".into(),
    }])
    .unwrap();
    let enricher = Enricher::new(std::sync::Arc::new(LexiconModel)).with_queries(queries);
    let mention = serde_json::from_value(serde_json::json!({
        "id": id, "platform": "x", "text": text, "created_at": Utc::now(),
        "author": {"id": "u1", "handle": "someone", "followers": 10},
        "url": format!("https://x.com/someone/status/{id}"),
    }))
    .unwrap();
    enricher.enrich(mention)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mention_feed_sends_only_negative_mentions_of_tracked_queries() {
    let s = Server::start("serve-mfeed", true).await;
    wait_ready(&s).await;
    let bad = enriched("m1", "NusaPay is a scam, terrible app, worst service ever");
    let good = enriched("m2", "NusaPay is great, love it, thank you");
    let other = enriched("m3", "this coffee is terrible, worst ever");
    assert!(bad.is_negative() && !good.is_negative() && other.queries.is_empty());
    let producer = gema::kafka::producer(&s.env.config.kafka).unwrap();
    for e in [&good, &other, &bad] {
        let json = serde_json::to_vec(e).unwrap();
        producer
            .send(
                rdkafka::producer::FutureRecord::to(&s.env.topics.enriched)
                    .key(&e.key)
                    .payload(&json),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let mut c = SseClient::connect_to(&s, "/api/feed/mentions", None).await;
    let (event, _, data) = c.next_event(Duration::from_secs(20)).await.expect("m1");
    assert_eq!(event, "mention");
    let v: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(v["key"], "x:m1");
    assert_eq!(v["queries"], serde_json::json!(["nusapay"]));
    assert!(v["sentiment_score"].as_f64().unwrap() < 0.0);
    assert!(
        c.next_event(Duration::from_millis(500)).await.is_none(),
        "positive and untracked mentions stay out"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_follow_redelivered_and_re_enriched_mentions() {
    use gema::query::timeline::{sentiment_timeline, share_of_voice};
    use gema::query::trends::TermKind;
    let env = TestEnv::new("rollup");
    let store = env.store().await;
    let at = Utc::now() - chrono::Duration::minutes(30);
    let (since, until) = (at - chrono::Duration::hours(2), Utc::now());
    let first = mention(
        "r1",
        "x",
        at,
        "negative",
        "id",
        "NusaPay error",
        &[],
        &["nusapay"],
        &["nusapay"],
    );
    let other = mention(
        "r2",
        "x",
        at,
        "positive",
        "id",
        "NusaPay ok",
        &[],
        &["nusapay"],
        &["nusapay"],
    );
    insert_mentions(&store, &[first.clone(), other.clone()]).await;
    // The same two mentions delivered again: nothing counts twice.
    insert_mentions(&store, &[first.clone(), other]).await;
    let v = share_of_voice(&store, since, until).await.unwrap();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!((v[0].mentions, v[0].negative, v[0].positive), (2, 1, 1));
    // Over 3 hours: read from the term rollups.
    let top = |store| async move {
        let since = since - chrono::Duration::hours(1);
        gema::query::trends::top_terms(store, TermKind::Keywords, since, until, 10)
            .await
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t.term.clone(),
                    t.mentions,
                    t.authors,
                    t.negative,
                    t.positive,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(top(&store).await, vec![("nusapay".into(), 2, 2, 1, 1)]);

    // r1 re-enriched (newer version): now positive and about kopikita instead of nusapay.
    let mut again = mention(
        "r1",
        "x",
        at,
        "positive",
        "id",
        "NusaPay error",
        &[],
        &["kopikita"],
        &["kopikita"],
    );
    again.version = first.version + 1;
    insert_mentions(&store, &[again]).await;
    let v = share_of_voice(&store, since, until).await.unwrap();
    let counts: Vec<(String, u64, u64, u64)> = v
        .iter()
        .map(|x| (x.query.clone(), x.mentions, x.negative, x.positive))
        .collect();
    assert_eq!(
        counts,
        vec![("kopikita".into(), 1, 0, 1), ("nusapay".into(), 1, 0, 1)]
    );
    // The term rollups follow too: r1's keyword is now kopikita.
    assert_eq!(
        top(&store).await,
        vec![
            ("kopikita".into(), 1, 1, 0, 1),
            ("nusapay".into(), 1, 1, 0, 1)
        ]
    );
    for (bucket, name) in [(60, "minute rollup"), (3600, "hour rollup")] {
        let t = sentiment_timeline(&store, "nusapay", since, until, bucket)
            .await
            .unwrap();
        let sum =
            |f: fn(&gema::query::timeline::TimelineBucket) -> u64| t.iter().map(f).sum::<u64>();
        assert_eq!(
            (sum(|b| b.total), sum(|b| b.negative), sum(|b| b.positive)),
            (1, 0, 1),
            "{name}"
        );
    }
    env.cleanup(&store).await;
}
