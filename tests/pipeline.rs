//! The pipeline on the real Kafka and ClickHouse: nothing lost, nothing duplicated.
//! Needs `scripts/services.sh up` (the README's test command does it).

mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use common::{Stages, TestEnv};
use gema::kafka::lag;
use gema::sources::replay::{replay, ReplayOptions, Speed};
use gema::sources::synth::{generate, SynthOptions};

/// `valid` synthetic mentions with malformed lines of every kind mixed in; returns the lines and
/// the malformed ones.
fn feed_lines(valid: usize, seed: u64) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut lines: Vec<Vec<u8>> = generate(&SynthOptions {
        seed,
        count: valid,
        start: "2026-11-26T00:00:00Z".parse().unwrap(),
        span: ChronoDuration::hours(2),
        malformed: 12,
    })
    .into_iter()
    .map(String::into_bytes)
    .collect();
    let extra: Vec<Vec<u8>> = vec![
        b"\xff\xfe not utf-8 at all".to_vec(),
        br#"{"id":"old","platform":"x","text":"from 1900","created_at":"1900-01-01T00:00:00Z","author":{"id":"a","handle":"a"}}"#.to_vec(),
        br#"{"id":"noauthor","platform":"x","text":"who wrote this","created_at":"2026-11-26T00:00:00Z"}"#.to_vec(),
        br#"[1,2,3]"#.to_vec(),
    ];
    for (i, l) in extra.into_iter().enumerate() {
        let at = (i + 1) * lines.len() / 5;
        lines.insert(at, l);
    }
    let malformed = lines
        .iter()
        .filter(|l| gema::mention::Mention::parse(l).is_err())
        .cloned()
        .collect();
    (lines, malformed)
}

async fn replay_file(
    env: &TestEnv,
    path: std::path::PathBuf,
) -> gema::sources::replay::ReplaySummary {
    let opts = ReplayOptions {
        path,
        speed: Speed::Max,
        retime: false,
        progress: None,
    };
    replay(&env.config.kafka, &env.topics, &opts)
        .await
        .expect("replay to the real Kafka")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_ends_in_clickhouse_or_the_dlq_and_reconsuming_changes_no_count() {
    let mut env = TestEnv::new("dlq");
    env.config.tracked = ["nusapay", "kopikita"]
        .map(|q| gema::tracked::TrackedQueryConfig {
            name: q.into(),
            query: format!("{q} OR #{q}*"),
        })
        .to_vec();
    let store = env.store().await;
    let (lines, malformed) = feed_lines(3000, 11);
    let n = lines.len();
    assert_eq!(malformed.len(), 16);

    let summary = replay_file(&env, env.feed(&lines)).await;
    assert_eq!(
        summary.sent as usize, n,
        "replay sends every line, valid or not"
    );
    assert_eq!(summary.valid as usize, n - malformed.len());

    let stages = Stages::start(&env, &store);
    env.wait_drained(Duration::from_secs(120)).await;
    let metrics = stages.stop().await;
    assert_eq!(metrics.enrich_received.get() as usize, n);

    let distinct = store.count_mentions().await.unwrap() as usize;
    let dead = env.dead_letters();
    assert_eq!(
        distinct,
        n - malformed.len(),
        "every valid line is one distinct mention"
    );
    assert_eq!(
        env.distinct_dead_letters(),
        malformed.len(),
        "every malformed line is in the DLQ"
    );
    assert_eq!(distinct + env.distinct_dead_letters(), n);

    // The DLQ keeps the original bytes and says why.
    let originals: HashSet<String> = dead.iter().map(|r| r.original.clone()).collect();
    for m in &malformed {
        assert!(
            originals.contains(&String::from_utf8_lossy(m).into_owned()),
            "missing in DLQ: {:?}",
            String::from_utf8_lossy(m)
        );
    }
    let reasons: HashSet<String> = dead
        .iter()
        .map(|r| r.dead_letter.as_ref().unwrap().reason.clone())
        .collect();
    for r in [
        "invalid_json",
        "schema",
        "empty_field",
        "not_utf8",
        "out_of_range",
    ] {
        assert!(
            reasons.contains(r),
            "no dead letter with reason {r}: {reasons:?}"
        );
    }
    assert!(dead.iter().all(|r| {
        let d = r.dead_letter.as_ref().unwrap();
        d.topic == env.topics.raw && d.stage == "enrich" && !d.error.is_empty()
    }));

    // Enrichment really happened: the burst hashtag is stored with negative sentiment.
    let negative_burst: u64 = store
        .client
        .query("SELECT count() FROM mentions FINAL WHERE has(hashtags, 'nusapaydown') AND sentiment = 'negative'")
        .fetch_one()
        .await
        .unwrap();
    assert!(
        negative_burst > 100,
        "negative burst mentions stored: {negative_burst}"
    );

    // Re-consume everything from offset 0: no count changes.
    lag::rewind_group(
        &env.config.kafka,
        &env.topics.group(gema::kafka::Group::Enrich),
        &env.topics.raw,
    )
    .unwrap();
    lag::rewind_group(
        &env.config.kafka,
        &env.topics.group(gema::kafka::Group::SinkMentions),
        &env.topics.enriched,
    )
    .unwrap();
    assert!(
        lag::group_lag(
            &env.config.kafka,
            &env.topics.group(gema::kafka::Group::Enrich),
            &env.topics.raw
        )
        .unwrap()
            > 0
    );
    let stages = Stages::start(&env, &store);
    env.wait_drained(Duration::from_secs(120)).await;
    let metrics = stages.stop().await;
    assert_eq!(
        metrics.enrich_received.get() as usize,
        n,
        "the second pass really re-read everything"
    );
    assert_eq!(store.count_mentions().await.unwrap() as usize, distinct);
    assert_eq!(env.distinct_dead_letters(), malformed.len());
    let final_rows: u64 = store
        .client
        .query("SELECT count() FROM mentions FINAL")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        final_rows as usize, distinct,
        "redelivered rows collapse under FINAL"
    );
    // The rollups behind the timeline and share of voice, recomputed by the sink for every
    // minute it wrote to (twice over here), agree with the mentions themselves.
    assert_rollups_match_mentions(&store).await;
    env.cleanup(&store).await;
}

async fn assert_rollups_match_mentions(store: &gema::store::Store) {
    use gema::query::timeline::{sentiment_timeline, share_of_voice};
    let (since, until) = (
        "2026-11-25T23:00:00Z".parse().unwrap(),
        "2026-11-26T03:00:00Z".parse().unwrap(),
    );
    let voices = share_of_voice(store, since, until).await.unwrap();
    assert_eq!(voices.len(), 2, "{voices:?}");
    for v in &voices {
        let (total, negative): (u64, u64) = store
            .client
            .query("SELECT count(), countIf(sentiment = 'negative') FROM mentions FINAL WHERE has(queries, ?)")
            .bind(&v.query)
            .fetch_one()
            .await
            .unwrap();
        assert!(total > 100, "{} matched {total} mentions", v.query);
        assert_eq!((v.mentions, v.negative), (total, negative), "{}", v.query);
        // 5-minute buckets read the minute rollup, hourly ones the hour rollup: both add up.
        for bucket in [300, 3600] {
            let t = sentiment_timeline(store, &v.query, since, until, bucket)
                .await
                .unwrap();
            assert_eq!(t.iter().map(|b| b.total).sum::<u64>(), total);
            assert_eq!(t.iter().map(|b| b.negative).sum::<u64>(), negative);
        }
    }
    assert_top_terms_match_mentions(store).await;
}

/// Top terms read from the term rollups (whole hours, whole minutes, and the edge seconds from
/// the mentions) equal the same ranking computed from the mentions alone, for every kind and
/// windows cut every way.
async fn assert_top_terms_match_mentions(store: &gema::store::Store) {
    use gema::query::trends::{top_terms, TermCount, TermKind};
    let windows = [
        ("2026-11-25T23:00:00Z", "2026-11-26T03:00:00Z"),
        ("2026-11-25T23:17:29Z", "2026-11-26T02:41:07Z"),
        ("2026-11-26T00:30:15Z", "2026-11-26T03:31:07Z"),
        ("2026-11-26T00:30:15Z", "2026-11-26T01:10:45Z"),
        ("2026-11-26T01:00:05Z", "2026-11-26T01:00:55Z"),
    ];
    let kinds = [
        (
            TermKind::All,
            "arrayConcat(arrayMap(h -> concat('#', h), hashtags), keywords)",
        ),
        (
            TermKind::Hashtags,
            "arrayMap(h -> concat('#', h), hashtags)",
        ),
        (TermKind::Keywords, "keywords"),
        (TermKind::Handles, "arrayMap(h -> concat('@', h), mentions)"),
    ];
    let mut compared = 0;
    for (since, until) in windows {
        let (since, until): (DateTime<Utc>, DateTime<Utc>) =
            (since.parse().unwrap(), until.parse().unwrap());
        for (kind, terms) in kinds {
            let fast = top_terms(store, kind, since, until, 10_000).await.unwrap();
            let slow: Vec<TermCount> = store
                .client
                .query(&format!(
                    "SELECT term, n AS mentions, a AS authors, neg AS negative, neu AS neutral, \
                     pos AS positive FROM (SELECT term, count() AS n, uniq(author_id) AS a, \
                     countIf(sentiment = 'negative') AS neg, countIf(sentiment = 'neutral') AS neu, \
                     countIf(sentiment = 'positive') AS pos FROM mentions FINAL \
                     ARRAY JOIN {terms} AS term WHERE created_at >= toDateTime(?) \
                     AND created_at < toDateTime(?) AND deleted = 0 GROUP BY term) \
                     ORDER BY mentions DESC, authors DESC, term"
                ))
                .bind(since.timestamp())
                .bind(until.timestamp())
                .fetch_all()
                .await
                .unwrap();
            assert_eq!(fast, slow, "{kind:?} over {since} to {until}");
            compared += fast.len();
        }
    }
    assert!(compared > 100, "only {compared} terms compared");
}

fn spawn_gema(env: &TestEnv, args: &[&str]) -> Child {
    let empty = env.dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    Command::new(env!("CARGO_BIN_EXE_gema"))
        .arg("--config")
        .arg(&empty)
        .args(args)
        .env("GEMA_KAFKA_BROKERS", &env.config.kafka.brokers)
        .env("GEMA_KAFKA_TOPIC_PREFIX", &env.config.kafka.topic_prefix)
        .env("GEMA_CLICKHOUSE_URL", &env.config.clickhouse.url)
        .env("GEMA_CLICKHOUSE_DATABASE", &env.config.clickhouse.database)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the gema binary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_killed_mid_stream_loses_nothing_after_restart() {
    let env = TestEnv::new("kill");
    let store = env.store().await;
    let (lines, malformed) = feed_lines(40_000, 12);
    let n = lines.len();
    let path = env.feed(&lines);

    let mut first = spawn_gema(&env, &["run"]);
    // Replay while the stages run, and kill them (SIGKILL: no drain, no commit) as soon as the
    // first rows are in ClickHouse, while the replay is still producing.
    let env_ref = &env;
    let replaying = async move { replay_file(env_ref, path).await };
    let killer = async {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut stored = 0;
        while stored == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            stored = store.count_mentions().await.unwrap_or(0);
        }
        first.kill().unwrap();
        first.wait().unwrap();
        assert!(stored > 0, "the first gema run never wrote a row");
        stored
    };
    let (summary, stored_at_kill) = tokio::join!(replaying, killer);
    assert_eq!(summary.sent as usize, n);
    assert!(
        (stored_at_kill as usize) < n - malformed.len(),
        "the kill came mid-stream ({stored_at_kill} stored)"
    );

    let mut second = spawn_gema(&env, &["run"]);
    env.wait_drained(Duration::from_secs(240)).await;
    // SIGTERM: the graceful path must also leave everything committed.
    Command::new("kill")
        .arg("-TERM")
        .arg(second.id().to_string())
        .status()
        .unwrap();
    assert!(
        second.wait().unwrap().success(),
        "gema run exits 0 after SIGTERM"
    );

    assert_eq!(
        store.count_mentions().await.unwrap() as usize,
        n - malformed.len(),
        "no mention lost"
    );
    assert_eq!(
        env.distinct_dead_letters(),
        malformed.len(),
        "no dead letter lost"
    );
    assert_eq!(
        lag::group_lag(
            &env.config.kafka,
            &env.topics.group(gema::kafka::Group::Enrich),
            &env.topics.raw
        )
        .unwrap(),
        0
    );
    env.cleanup(&store).await;
}
