//! Upgrading a database made by an older gema, on the real ClickHouse (`scripts/services.sh up`).

mod common;

use std::sync::Arc;

use clickhouse::Row;
use gema::enrich::cascade::record;
use gema::enrich::Enricher;
use gema::mention::{Escalation, Mention};
use gema::sentiment::lexicon::LexiconModel;
use gema::sentiment::{Label, Sentiment};
use gema::store::migrate::{migrate, migrate_to};
use gema::store::row::MentionRow;
use serde::Deserialize;

#[derive(Debug, Row, Deserialize, PartialEq)]
struct Tier {
    key: String,
    sentiment: String,
    sentiment_score: f32,
    sentiment_tier: String,
    cascade_escalation: String,
    fast_sentiment: String,
    fast_score: f32,
}

/// 0004 adds the cascade columns to a 0003 database that holds mentions, also after an
/// interrupted earlier attempt; old rows read as decided by the fast tier, and new rows keep
/// both verdicts when the transformer decided.
#[tokio::test]
async fn cascade_columns_upgrade_an_existing_database() {
    let env = common::TestEnv::new("migrate");
    let store = gema::store::connect(&env.config.clickhouse)
        .await
        .expect("ClickHouse is up (scripts/services.sh up)");
    let _ = store.drop_database().await;
    migrate_to(&store, 3).await.unwrap();
    // A mention written by a gema before 0004 (its columns only).
    store
        .client
        .query(
            "INSERT INTO mentions (key, platform, id, created_at, text, sentiment, \
             sentiment_score, sentiment_confidence, version) VALUES \
             ('x:old', 'x', 'old', now(), 'the app is broken', 'negative', -0.8, 0.9, 1)",
        )
        .execute()
        .await
        .unwrap();
    // An attempt that was interrupted after its first column.
    store
        .client
        .query("ALTER TABLE mentions ADD COLUMN sentiment_tier String DEFAULT 'fast'")
        .execute()
        .await
        .unwrap();
    assert_eq!(
        migrate_to(&store, 4).await.unwrap(),
        ["0004_cascade_columns"]
    );
    assert!(migrate_to(&store, 4).await.unwrap().is_empty());

    // A new mention the transformer decided.
    let enricher = Enricher::new(Arc::new(LexiconModel));
    let mention = Mention::parse(
        br#"{"id":"new","platform":"x","text":"well that was something","created_at":"2026-11-26T10:00:00Z","author":{"id":"a","handle":"ann"}}"#,
    )
    .unwrap();
    let mut e = enricher.enrich(mention);
    let fast = e.sentiment;
    let bert = Sentiment {
        label: Label::Negative,
        score: -0.6,
        confidence: 0.7,
    };
    record(&mut e, Escalation::Decided, Some((bert, "bert-test")));
    let mut insert = store.client.insert::<MentionRow>("mentions").await.unwrap();
    insert.write(&MentionRow::from(&e)).await.unwrap();
    insert.end().await.unwrap();

    let rows: Vec<Tier> = store
        .client
        .query(
            "SELECT ?fields FROM mentions FINAL WHERE key IN ('x:old', 'x:new') ORDER BY key DESC",
        )
        .fetch_all()
        .await
        .unwrap();
    let old = Tier {
        key: "x:old".into(),
        sentiment: "negative".into(),
        sentiment_score: -0.8,
        sentiment_tier: "fast".into(),
        cascade_escalation: String::new(),
        fast_sentiment: "negative".into(),
        fast_score: -0.8,
    };
    let new = Tier {
        key: "x:new".into(),
        sentiment: "negative".into(),
        sentiment_score: -0.6,
        sentiment_tier: "bert".into(),
        cascade_escalation: "decided".into(),
        fast_sentiment: fast.label.as_str().into(),
        fast_score: fast.score,
    };
    assert_eq!(rows, [old, new]);
    env.cleanup(&store).await;
}

#[derive(Debug, Row, Deserialize, PartialEq)]
struct Kept {
    key: String,
    created_at: u32,
    text: String,
}

/// 0005 leaves one row per mention key in a database that already holds a mention stored under
/// two `created_at`s (re-sent after an edit): the newest version's, with the rollups of both
/// minutes recomputed and its current version in `mention_keys`; running it again changes
/// nothing. 0008 then computes the term rollups from the rows kept.
#[tokio::test]
async fn one_row_per_mention_upgrades_an_existing_database() {
    let env = common::TestEnv::new("migrate5");
    let store = gema::store::connect(&env.config.clickhouse)
        .await
        .expect("ClickHouse is up (scripts/services.sh up)");
    let _ = store.drop_database().await;
    migrate_to(&store, 4).await.unwrap();
    store
        .client
        .query(
            "INSERT INTO mentions (key, platform, id, created_at, text, queries, keywords, \
             version) VALUES \
             ('x:1', 'x', '1', toDateTime('2026-11-26 10:00:00', 'UTC'), 'first', ['q'], \
             ['refund'], 1), \
             ('x:1', 'x', '1', toDateTime('2026-11-26 10:05:00', 'UTC'), 'edited', ['q'], \
             ['refund'], 2), \
             ('x:2', 'x', '2', toDateTime('2026-11-26 10:00:30', 'UTC'), 'other', ['q'], \
             ['refund', 'late'], 1)",
        )
        .execute()
        .await
        .unwrap();
    // The rollups as a gema before 0005 computed them: both rows of x:1 count.
    store
        .client
        .query(
            "INSERT INTO query_minutes SELECT toStartOfMinute(created_at) AS minute, q AS query, \
             count(), countIf(sentiment = 'negative'), countIf(sentiment = 'neutral'), \
             countIf(sentiment = 'positive'), uniqHLL12State(author_id), 1 \
             FROM mentions FINAL ARRAY JOIN queries AS q GROUP BY minute, query",
        )
        .execute()
        .await
        .unwrap();

    assert_eq!(
        migrate(&store).await.unwrap(),
        [
            "0005_one_row_per_mention",
            "0006_sentiment_corrections",
            "0007_incidents",
            "0008_term_rollups",
            "0009_mention_keys_small_granules"
        ]
    );
    assert!(migrate(&store).await.unwrap().is_empty());
    let kept: Vec<Kept> = store
        .client
        .query(
            "SELECT key, toUInt32(created_at) AS created_at, text FROM mentions FINAL \
             WHERE deleted = 0 ORDER BY key",
        )
        .fetch_all()
        .await
        .unwrap();
    let at = |s: &str| {
        s.parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            .timestamp() as u32
    };
    let kept_row = |key: &str, created: &str, text: &str| Kept {
        key: key.into(),
        created_at: at(created),
        text: text.into(),
    };
    assert_eq!(
        kept,
        [
            kept_row("x:1", "2026-11-26T10:05:00Z", "edited"),
            kept_row("x:2", "2026-11-26T10:00:30Z", "other"),
        ]
    );
    let minutes: Vec<(u32, u64)> = store
        .client
        .query(
            "SELECT toUInt32(minute), total FROM query_minutes FINAL \
             WHERE query = 'q' AND total > 0 ORDER BY minute",
        )
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        minutes,
        [
            (at("2026-11-26T10:00:00Z"), 1),
            (at("2026-11-26T10:05:00Z"), 1)
        ]
    );
    // 0008 computed the term rollups of the rows 0005 kept: x:1 counts once.
    let top = gema::query::trends::top_terms(
        &store,
        gema::query::trends::TermKind::Keywords,
        "2026-11-26T09:00:00Z".parse().unwrap(),
        "2026-11-26T12:00:00Z".parse().unwrap(),
        10,
    )
    .await
    .unwrap();
    assert_eq!(
        top.iter()
            .map(|t| (t.term.as_str(), t.mentions))
            .collect::<Vec<_>>(),
        [("refund", 2), ("late", 1)]
    );
    let keys: Vec<(String, u32, u64)> = store
        .client
        .query("SELECT id, toUInt32(created_at), version FROM mention_keys FINAL ORDER BY id")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        keys,
        [
            ("1".to_string(), at("2026-11-26T10:05:00Z"), 2),
            ("2".to_string(), at("2026-11-26T10:00:30Z"), 1)
        ]
    );
    env.cleanup(&store).await;
}
