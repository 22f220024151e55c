//! One row per mention key, on the real Kafka and ClickHouse: a mention re-sent with another
//! `created_at` (platforms re-send edited posts) replaces its earlier row, the newest version
//! wins (also against an older version that arrives later), and the per-minute rollups count it
//! once, in its new minute. Fails without src/store/keys.rs: `mentions` is sorted by
//! `(created_at, platform, id)`, so both versions stay.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clickhouse::Row;
use common::TestEnv;
use gema::enrich::Enricher;
use gema::kafka::Group;
use gema::mention::{EnrichedMention, Mention};
use gema::pipeline::Stage;
use gema::sentiment::lexicon::LexiconModel;
use serde::Deserialize;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A mention of the tracked query `nusapay` as the enrich stage would have written it at
/// `enriched_at` (its version).
fn enriched(id: &str, created_at: &str, text: &str, enriched_at: &str) -> EnrichedMention {
    let raw = serde_json::json!({
        "id": id, "platform": "x", "text": text, "created_at": created_at,
        "author": {"id": format!("a{id}"), "handle": format!("user{id}")},
    });
    let mention = Mention::parse(raw.to_string().as_bytes()).unwrap();
    let mut e = Enricher::new(Arc::new(LexiconModel)).enrich(mention);
    e.queries = vec!["nusapay".into()];
    e.enriched_at = at(enriched_at);
    e
}

#[derive(Debug, Row, Deserialize, PartialEq)]
struct Stored {
    key: String,
    created_at: u32,
    text: String,
}

fn stored(key: &str, created_at: &str, text: &str) -> Stored {
    Stored {
        key: key.into(),
        created_at: at(created_at).timestamp() as u32,
        text: text.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_sent_mention_is_one_row_and_the_newest_version_wins() {
    let env = TestEnv::new("onekey");
    let store = env.store().await;
    gema::kafka::topics::ensure_topics(&env.config.kafka, &env.topics)
        .await
        .unwrap();
    let sink = common::start_builtin(&env, Some(&store), &[Stage::Sink]);
    // Each step is one sink batch, stored (rollups included) before the next is sent.
    let step = |mentions: Vec<EnrichedMention>| {
        let env = &env;
        async move {
            env.send_enriched(&mentions).await;
            env.wait_lag(Group::SinkMentions, Duration::from_secs(60))
                .await;
        }
    };
    step(vec![
        enriched(
            "1",
            "2026-11-26T10:00:10Z",
            "first words",
            "2026-11-26T10:00:11Z",
        ),
        enriched(
            "2",
            "2026-11-26T10:00:30.250Z",
            "another one",
            "2026-11-26T10:00:31Z",
        ),
    ])
    .await;
    // 2 enriched again (a stage restart): the same created_at, stored to the second, a newer
    // version of the same row.
    step(vec![enriched(
        "2",
        "2026-11-26T10:00:30.250Z",
        "another one",
        "2026-11-26T10:00:40Z",
    )])
    .await;
    // Edited: re-sent with a new created_at, enriched later.
    step(vec![enriched(
        "1",
        "2026-11-26T10:05:00Z",
        "edited words",
        "2026-11-26T10:05:01Z",
    )])
    .await;
    step(vec![
        // An older version of 1 arriving late (enriched before the edit): the edit stays.
        enriched(
            "1",
            "2026-11-26T10:10:00Z",
            "stale words",
            "2026-11-26T10:00:12Z",
        ),
        // Two versions of 3 in one INSERT.
        enriched("3", "2026-11-26T10:20:00Z", "draft", "2026-11-26T10:20:01Z"),
        enriched("3", "2026-11-26T10:21:00Z", "final", "2026-11-26T10:21:01Z"),
    ])
    .await;
    sink.stop().await.unwrap();

    let rows: Vec<Stored> = store
        .client
        .query(
            "SELECT key, toUInt32(created_at) AS created_at, text FROM mentions FINAL \
             WHERE deleted = 0 ORDER BY key",
        )
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        rows,
        [
            stored("x:1", "2026-11-26T10:05:00Z", "edited words"),
            stored("x:2", "2026-11-26T10:00:30Z", "another one"),
            stored("x:3", "2026-11-26T10:21:00Z", "final"),
        ]
    );
    // The rollups count each mention once, in the minute it is stored under now.
    let minutes: Vec<(u32, u64)> = store
        .client
        .query(
            "SELECT toUInt32(minute), total FROM query_minutes FINAL \
             WHERE query = 'nusapay' AND total > 0 ORDER BY minute",
        )
        .fetch_all()
        .await
        .unwrap();
    let minute = |s: &str| at(s).timestamp() as u32;
    assert_eq!(
        minutes,
        [
            (minute("2026-11-26T10:00:00Z"), 1),
            (minute("2026-11-26T10:05:00Z"), 1),
            (minute("2026-11-26T10:21:00Z"), 1),
        ]
    );
    // So do the API's queries.
    let hits = gema::query::mentions::search(
        &store,
        &gema::query::mentions::MentionFilter {
            since: at("2026-11-26T00:00:00Z"),
            until: at("2026-11-27T00:00:00Z"),
            sentiment: None,
            lang: None,
            platform: None,
            text: None,
            min_confidence: None,
            limit: 100,
        },
    )
    .await
    .unwrap();
    assert_eq!(hits.len(), 3, "{hits:?}");
    env.cleanup(&store).await;
}
