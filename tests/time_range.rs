//! The accepted time range, on the real Kafka and ClickHouse: mentions from 2000-01-01 to the
//! end of 2099 are stored, even when one sink batch spans a century of monthly partitions
//! (current ClickHouse refuses an INSERT touching more than 100 partitions unless told
//! otherwise; `scripts/check_modern_clickhouse.py` shows both); anything outside is dead-lettered
//! as `out_of_range` with the field named. Before this, 1970-01-01 was accepted and shown as
//! 0000-00-00 by ClickHouse 18.16.

mod common;

use std::time::Duration;

use common::{Stages, TestEnv};
use gema::pipeline::Stage;
use gema::sources::replay::{replay, ReplayOptions, Speed};

fn mention(id: &str, created_at: &str) -> Vec<u8> {
    format!(
        r#"{{"id":"{id}","platform":"x","text":"hello from {created_at}","created_at":"{created_at}","author":{{"id":"a{id}","handle":"h{id}"}}}}"#
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_century_of_mentions_is_stored_and_times_outside_it_are_dead_lettered() {
    let env = TestEnv::new("timerange");
    let store = env.store().await;
    gema::kafka::topics::ensure_topics(&env.config.kafka, &env.topics)
        .await
        .unwrap();
    // One mention in each of 150 months from January 2000 to December 2099, in one batch.
    let mut lines: Vec<Vec<u8>> = (0..150)
        .map(|i| {
            let month = i * 1199 / 149; // 0 ..= 1199 months after 2000-01
            let at = format!("{}-{:02}-15T12:00:00Z", 2000 + month / 12, month % 12 + 1);
            mention(&format!("m{i}"), &at)
        })
        .collect();
    lines.push(mention("first", "2000-01-01T00:00:00Z"));
    let outside = [
        ("epoch", "1970-01-01T00:00:00Z"),
        ("y1999", "1999-12-31T23:59:59Z"),
        ("y2100", "2100-01-01T00:00:00Z"),
    ];
    for (id, at) in outside {
        lines.push(mention(id, at));
    }
    let stages = Stages::start_only(&env, &store, &[Stage::Enrich, Stage::Sink]);
    replay(
        &env.config.kafka,
        &env.topics,
        &ReplayOptions {
            path: env.feed(&lines),
            speed: Speed::Max,
            retime: false,
            progress: None,
        },
    )
    .await
    .unwrap();
    env.wait_drained(Duration::from_secs(120)).await;
    stages.stop().await;

    assert_eq!(store.count_mentions().await.unwrap(), 151);
    let (first, last): (u32, u32) = store
        .client
        .query("SELECT toUInt32(min(created_at)), toUInt32(max(created_at)) FROM mentions")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!((first, last), (946_684_800, 4_101_019_200));
    let dead = env.dead_letters();
    let mut reasons: Vec<(String, String)> = dead
        .iter()
        .map(|r| {
            let d = r.dead_letter.as_ref().unwrap();
            (d.reason.clone(), d.error.clone())
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), outside.len(), "{reasons:?}");
    for (reason, error) in &reasons {
        assert_eq!(reason, "out_of_range");
        assert!(
            error.contains("field `created_at`") && error.contains("2000-01-01..2100-01-01"),
            "{error}"
        );
    }
    env.cleanup(&store).await;
}
