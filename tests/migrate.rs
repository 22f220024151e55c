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
    assert_eq!(migrate(&store).await.unwrap(), ["0004_cascade_columns"]);
    assert!(migrate(&store).await.unwrap().is_empty());

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
