//! Poison input on the real Kafka and ClickHouse: records too large for a topic, a dead letter
//! whose original is itself too large, a mention nested too deep. Each ends in the dead-letter
//! topic with its reason, nothing restarts, and the mentions around them are all stored.

mod common;

use std::time::Duration;

use chrono::Duration as ChronoDuration;
use common::{Stages, TestEnv};
use gema::sources::replay::{replay, ReplayOptions, Speed};
use gema::sources::synth::{generate, SynthOptions};
use sha2::{Digest, Sha256};

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_are_dead_lettered_with_the_reason_and_the_stages_keep_going() {
    let env = TestEnv::new("poison");
    let store = env.store().await;
    gema::kafka::topics::ensure_topics(&env.config.kafka, &env.topics)
        .await
        .unwrap();
    let mut lines: Vec<Vec<u8>> = generate(&SynthOptions {
        seed: 5,
        count: 300,
        start: "2026-11-26T00:00:00Z".parse().unwrap(),
        span: ChronoDuration::hours(1),
        malformed: 0,
    })
    .into_iter()
    .map(String::into_bytes)
    .collect();
    // A valid mention (60 KB of text, an unknown field padding the line to ~990 KB) whose
    // enriched form (the text again, normalised) is over the topic's record limit.
    let too_large_enriched = format!(
        r#"{{"id":"big-1","platform":"x","text":"{}","created_at":"2026-11-26T00:30:00Z","author":{{"id":"a","handle":"a"}},"padding":"{}"}}"#,
        "kata ".repeat(12_000),
        "p".repeat(930_000)
    )
    .into_bytes();
    // A malformed line that fits the raw topic, but not with the dead letter's headers.
    let mut almost_limit = br#"{"id":""#.to_vec();
    almost_limit.resize(998_900, b'x');
    // A line twice the raw topic's limit: replay cannot send it there at all.
    let mut twice_the_limit = br#"{"id":"huge","text":""#.to_vec();
    twice_the_limit.resize(2_000_000, b'y');
    // A mention nested 126 levels deep: enriched, it would pass serde's 128 in the sink.
    let too_deep = format!(
        r#"{{"id":"deep","platform":"x","text":"deep","created_at":"2026-11-26T00:30:00Z","author":{{"id":"a","handle":"a"}},"extra":{}1{}}}"#,
        "[".repeat(126),
        "]".repeat(126)
    )
    .into_bytes();
    for (i, poison) in [
        too_large_enriched.clone(),
        almost_limit.clone(),
        twice_the_limit.clone(),
        too_deep.clone(),
    ]
    .into_iter()
    .enumerate()
    {
        lines.insert(50 + 60 * i, poison);
    }

    let stages = Stages::start(&env, &store);
    let summary = replay(
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
    // The 2 MB line went straight to the dead-letter topic; every other line to the raw topic.
    assert_eq!(summary.dead_lettered.len(), 1, "{summary}");
    assert_eq!(summary.sent as usize, lines.len());
    env.wait_drained(Duration::from_secs(120)).await;
    let metrics = stages.stop().await;

    assert_eq!(
        metrics.stage_restarts.get(),
        0,
        "no record made a stage fail"
    );
    assert_eq!(
        store.count_mentions().await.unwrap(),
        300,
        "every mention around the poison is stored"
    );
    let dead = env.dead_letters();
    assert_eq!(env.distinct_dead_letters(), 4, "{dead:#?}");
    let by_reason = |reason: &str| {
        dead.iter()
            .filter(|r| r.dead_letter.as_ref().unwrap().reason == reason)
            .collect::<Vec<_>>()
    };
    // The valid mention whose output is too large: its original, whole.
    let too_large = by_reason("too_large");
    assert_eq!(too_large.len(), 2, "{too_large:#?}");
    let enrich_side = too_large
        .iter()
        .find(|r| r.dead_letter.as_ref().unwrap().stage == "enrich")
        .expect("the enrich stage dead-lettered the mention whose output is too large");
    assert!(enrich_side
        .dead_letter
        .as_ref()
        .unwrap()
        .truncated
        .is_none());
    assert!(enrich_side.original.contains("\"id\":\"big-1\""));
    assert!(enrich_side
        .dead_letter
        .as_ref()
        .unwrap()
        .error
        .contains("over the"));
    // The line replay could not send: cut to fit, with its length and hash.
    let replay_side = too_large
        .iter()
        .find(|r| r.dead_letter.as_ref().unwrap().stage == "replay")
        .expect("replay dead-lettered the line too large for the raw topic");
    let t = replay_side
        .dead_letter
        .as_ref()
        .unwrap()
        .truncated
        .clone()
        .expect("cut to fit");
    assert_eq!(t.original_bytes, twice_the_limit.len());
    assert_eq!(t.sha256, sha256_hex(&twice_the_limit));
    // The malformed line whose dead letter would pass the limit: cut, with length and hash.
    let invalid = by_reason("invalid_json");
    assert_eq!(invalid.len(), 1);
    let t = invalid[0]
        .dead_letter
        .as_ref()
        .unwrap()
        .truncated
        .clone()
        .expect("cut to fit");
    assert_eq!(t.original_bytes, almost_limit.len());
    assert_eq!(t.sha256, sha256_hex(&almost_limit));
    assert!(almost_limit.starts_with(invalid[0].original.as_bytes()));
    // The mention nested too deep, refused by enrich, not by the sink.
    let deep = by_reason("too_deep");
    assert_eq!(deep.len(), 1);
    assert_eq!(deep[0].dead_letter.as_ref().unwrap().stage, "enrich");
    env.cleanup(&store).await;
}
