//! The RSS / Atom connector against real Kafka and ClickHouse: feeds served over HTTP on
//! 127.0.0.1 become stored mentions, a poll sends only new items (also after a restart), and a
//! broken feed is reported with its URL while the others still arrive.
//! Needs `scripts/services.sh up` (the README's test command does it).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use common::{Stages, TestEnv};
use gema::sources::rss::Poller;

const RSS_HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Kabar Bisnis</title><link>http://news.local/</link><language>id</language>"#;

fn rss_item(guid: &str, title: &str, description: &str) -> String {
    format!(
        "<item><title>{title}</title><link>http://news.local/{guid}</link><guid isPermaLink=\"false\">{guid}</guid>\
         <description>{description}</description><pubDate>Fri, 27 Nov 2026 08:00:00 GMT</pubDate></item>"
    )
}

const ATOM: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Tech Daily</title><id>urn:uuid:feed-1</id>
<updated>2026-11-27T09:00:00Z</updated>
<entry><title>KopiKita launches a new app, reviewers love it</title><id>urn:uuid:entry-1</id>
<link href="http://tech.local/kopikita"/><updated>2026-11-27T09:00:00Z</updated>
<summary type="html">&lt;p&gt;Fast and &lt;em&gt;great&lt;/em&gt;.&lt;/p&gt;</summary></entry></feed>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_become_mentions_once_and_a_broken_feed_is_reported() {
    let env = TestEnv::new("rss");
    let store = env.store().await;
    // The news site: its items can grow between polls.
    let items = Arc::new(Mutex::new(vec![
        rss_item(
            "101",
            "NusaPay gangguan lagi, saldo pengguna hilang",
            "Pengguna &lt;b&gt;kecewa&lt;/b&gt;.",
        ),
        rss_item(
            "102",
            "Arunika Air tambah rute baru",
            "Rute ke Labuan Bajo.",
        ),
    ]));
    let app = axum::Router::new()
        .route(
            "/news.xml",
            get(|State(items): State<Arc<Mutex<Vec<String>>>>| async move {
                let body = format!(
                    "{RSS_HEAD}{}</channel></rss>",
                    items.lock().unwrap().join("")
                );
                ([("content-type", "application/rss+xml")], body)
            }),
        )
        .route("/atom.xml", get(|| async { ATOM }))
        .route("/broken.xml", get(|| async { "<html>not a feed</html>" }))
        .route("/gone.xml", get(|| async { StatusCode::NOT_FOUND }))
        .with_state(items.clone());
    let base = common::serve_locally(app).await;
    let urls: Vec<String> = ["news.xml", "atom.xml", "broken.xml", "gone.xml"]
        .iter()
        .map(|p| format!("{base}/{p}"))
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("rss-seen.json");
    let mut poller = Poller::new(&env.config.kafka, &env.topics, &state)
        .await
        .unwrap();
    let reports = poller.poll(&urls).await.unwrap();
    let sent: Vec<usize> = reports.iter().map(|r| r.sent).collect();
    assert_eq!(sent, [2, 1, 0, 0], "{reports:?}");
    assert!(
        reports[0].error.is_none() && reports[1].error.is_none(),
        "{reports:?}"
    );
    let broken = reports[2].error.as_ref().unwrap().message.as_str();
    assert!(broken.contains("not an RSS, Atom or JSON feed"), "{broken}");
    assert!(
        reports[3]
            .error
            .as_ref()
            .unwrap()
            .message
            .as_str()
            .contains("404"),
        "{reports:?}"
    );

    // Polling again sends nothing new; a new item is sent alone, also after a restart.
    assert!(poller
        .poll(&urls)
        .await
        .unwrap()
        .iter()
        .all(|r| r.sent == 0));
    items
        .lock()
        .unwrap()
        .push(rss_item("103", "NusaPay minta maaf", "Saldo dikembalikan."));
    drop(poller);
    let mut poller = Poller::new(&env.config.kafka, &env.topics, &state)
        .await
        .unwrap();
    let sent: Vec<usize> = poller
        .poll(&urls)
        .await
        .unwrap()
        .iter()
        .map(|r| r.sent)
        .collect();
    assert_eq!(sent, [1, 0, 0, 0]);

    // Through enrich and the sink: four stored mentions with sentiment.
    let stages = Stages::start(&env, &store);
    env.wait_drained(Duration::from_secs(60)).await;
    stages.stop().await;
    let rows: Vec<(String, String, String)> = store
        .client
        .query("SELECT id, author_handle, sentiment FROM mentions FINAL WHERE platform = 'rss' ORDER BY id")
        .fetch_all()
        .await
        .unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    // An id that is not a URL or URN is prefixed with the feed's host.
    assert_eq!(
        ids,
        [
            "127.0.0.1/101",
            "127.0.0.1/102",
            "127.0.0.1/103",
            "urn:uuid:entry-1"
        ],
        "{rows:?}"
    );
    assert_eq!(rows[0].1, "Kabar Bisnis");
    assert_eq!(rows[0].2, "negative", "{rows:?}");
    assert_eq!(rows[3].2, "positive", "{rows:?}");
    assert_eq!(env.distinct_dead_letters(), 0);
    env.cleanup(&store).await;
}

/// The feed behind `/cond.xml`: a version that changes with its items, served with an `ETag`
/// and a `Last-Modified`, answering 304 to a matching `If-None-Match`.
#[derive(Default)]
struct Versioned {
    version: u32,
    items: Vec<String>,
    /// Each request's `If-None-Match` and `If-Modified-Since`.
    asked: Vec<(Option<String>, Option<String>)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_are_conditional_gets_and_validators_survive_a_restart() {
    use axum::http::HeaderMap;
    use axum::response::IntoResponse;
    let env = TestEnv::new("rss-cond");
    let feed = Arc::new(Mutex::new(Versioned {
        version: 1,
        items: vec![rss_item("201", "NusaPay promo akhir tahun", "Diskon.")],
        ..Versioned::default()
    }));
    let app = axum::Router::new()
        .route(
            "/cond.xml",
            get(
                |State(feed): State<Arc<Mutex<Versioned>>>, headers: HeaderMap| async move {
                    let mut f = feed.lock().unwrap();
                    let h = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_string());
                    f.asked.push((h("if-none-match"), h("if-modified-since")));
                    let etag = format!("\"v{}\"", f.version);
                    if h("if-none-match").as_deref() == Some(etag.as_str()) {
                        return StatusCode::NOT_MODIFIED.into_response();
                    }
                    let body = format!("{RSS_HEAD}{}</channel></rss>", f.items.join(""));
                    (
                        [
                            ("etag", etag),
                            ("last-modified", "Fri, 27 Nov 2026 08:00:00 GMT".to_string()),
                        ],
                        body,
                    )
                        .into_response()
                },
            ),
        )
        .with_state(feed.clone());
    let url = format!("{}/cond.xml", common::serve_locally(app).await);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("rss.json");
    let urls = [url.clone()];

    let mut poller = Poller::new(&env.config.kafka, &env.topics, &state)
        .await
        .unwrap();
    let r = poller.poll(&urls).await.unwrap();
    assert_eq!((r[0].sent, r[0].unchanged, &r[0].error), (1, false, &None));
    // Unchanged: the validators go back and the feed answers 304 with no body.
    let r = poller.poll(&urls).await.unwrap();
    assert_eq!((r[0].sent, r[0].unchanged, &r[0].error), (0, true, &None));
    {
        let f = feed.lock().unwrap();
        assert_eq!(f.asked[0], (None, None));
        assert_eq!(
            f.asked[1],
            (
                Some("\"v1\"".into()),
                Some("Fri, 27 Nov 2026 08:00:00 GMT".into())
            )
        );
    }
    // A new item changes the version: it is sent, and only it.
    {
        let mut f = feed.lock().unwrap();
        f.version = 2;
        f.items
            .push(rss_item("202", "NusaPay transfer gagal", "Saldo hilang."));
    }
    let r = poller.poll(&urls).await.unwrap();
    assert_eq!((r[0].sent, r[0].unchanged), (1, false));
    drop(poller);
    // After a restart the validators are still there: 304, nothing resent.
    let mut again = Poller::new(&env.config.kafka, &env.topics, &state)
        .await
        .unwrap();
    let r = again.poll(&urls).await.unwrap();
    assert_eq!((r[0].sent, r[0].unchanged), (0, true));
    assert_eq!(
        feed.lock().unwrap().asked.last().unwrap().0.as_deref(),
        Some("\"v2\"")
    );
    let raw = env.read_topic(&env.topics.raw);
    assert_eq!(raw.len(), 2, "each item sent once");

    // A state file from before validators were kept (a bare list of ids) still loads.
    let old = dir.path().join("old.json");
    std::fs::write(&old, r#"["127.0.0.1/201"]"#).unwrap();
    let mut from_old = Poller::new(&env.config.kafka, &env.topics, &old)
        .await
        .unwrap();
    let r = from_old.poll(&urls).await.unwrap();
    assert_eq!(
        r[0].sent, 1,
        "202 is new to the old state, 201 is not: {r:?}"
    );
}
