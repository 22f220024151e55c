//! The trend stage's state is never behind its committed offsets. A trend stage stopped at once
//! mid-stream (no drain, no final snapshot: what `kill -9` leaves) and started again has, in the
//! end, taken in every term occurrence exactly once; and offsets that fall behind its snapshot (a
//! commit lost after a snapshot) make it skip what it already counted instead of counting again.
//!
//! Counted in the detectors' own statistics, restored from the stage's snapshot: which trends a
//! run finds also depends on how records happen to be batched, so two undisturbed runs need not
//! publish identical trend rows; the occurrences taken in must be identical.

mod common;

use std::time::{Duration, Instant};

use chrono::Duration as ChronoDuration;
use common::TestEnv;
use gema::kafka::{lag, Group};
use gema::pipeline::{Running, Stage};
use gema::sources::replay::{replay, ReplayOptions, Speed};
use gema::sources::synth::{generate, SynthOptions};
use gema::trends::record::TermRecord;
use rdkafka::producer::FutureRecord;

fn start(env: &TestEnv, stages: &[Stage]) -> Running {
    common::start_builtin(env, None, stages)
}

/// A test namespace with one partition per topic, so records are read back in write order.
async fn env(name: &str) -> TestEnv {
    let mut env = TestEnv::new(name);
    env.config.kafka.partitions = 1;
    env.config.tracked = ["nusapay", "kopikita", "arunika"]
        .map(|q| gema::tracked::TrackedQueryConfig {
            name: q.into(),
            query: q.into(),
        })
        .to_vec();
    gema::kafka::topics::ensure_topics(&env.config.kafka, &env.topics)
        .await
        .unwrap();
    env
}

/// Waits until the trend stage has committed all of its input and its output stopped growing
/// for 6 s (the last buckets close 3 s after the input went quiet).
async fn wait_settled(env: &TestEnv) {
    let group = env.topics.group(Group::Trends);
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = (-1, Instant::now());
    loop {
        assert!(Instant::now() < deadline, "the trend stage did not settle");
        let behind = lag::group_lag(&env.config.kafka, &group, &env.topics.terms).unwrap();
        let out = lag::topic_size(&env.config.kafka, &env.topics.trends).unwrap();
        if out != last.0 || behind > 0 {
            last = (out, Instant::now());
        } else if last.1.elapsed() >= Duration::from_secs(6) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Occurrences the stage's last snapshot has taken in.
fn observed_in_snapshot(env: &TestEnv) -> u64 {
    let (sections, files) = gema::pipeline::trend_state(&env.config);
    files.load(&sections).detectors.observed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trend_stage_stopped_mid_stream_takes_in_every_occurrence_exactly_once() {
    // The term records of a 3-hour feed, made once by the enrich stage in a namespace of their
    // own, then written in two halves for the trend stage under test.
    let source = env("trendstate-source").await;
    let lines: Vec<Vec<u8>> = generate(&SynthOptions {
        seed: 42,
        count: 20_000,
        start: "2026-11-26T00:00:00Z".parse().unwrap(),
        span: ChronoDuration::hours(3),
        malformed: 0,
    })
    .into_iter()
    .map(String::into_bytes)
    .collect();
    let enrich = start(&source, &[Stage::Enrich]);
    replay(
        &source.config.kafka,
        &source.topics,
        &ReplayOptions {
            path: source.feed(&lines),
            speed: Speed::Max,
            retime: false,
            progress: None,
        },
    )
    .await
    .unwrap();
    source
        .wait_lag(Group::Enrich, Duration::from_secs(120))
        .await;
    enrich.stop().await.unwrap();
    let records = source.read_topic(&source.topics.terms);
    let occurrences: u64 = records
        .iter()
        .map(|(_, p)| {
            serde_json::from_slice::<TermRecord>(p)
                .unwrap()
                .occurrences
                .len() as u64
        })
        .sum();
    assert!(records.len() > 1000, "{}", records.len());
    // A record's watermark vouches for its own occurrences too (the feed is in time order, so
    // none is older): a trend stage that has read one record of a batch may close buckets up to
    // its watermark while the batch's records on other partitions are still unread.
    for (key, payload) in &records {
        let record: TermRecord = serde_json::from_slice(payload).unwrap();
        let oldest = record.occurrences.iter().map(|o| o.event_time).min();
        assert!(
            record.watermark <= oldest,
            "the record of {} is stamped {:?}, after its oldest occurrence {:?}",
            String::from_utf8_lossy(key),
            record.watermark,
            oldest
        );
    }

    let env = env("trendstate").await;
    let producer = gema::kafka::producer(&env.config.kafka).unwrap();
    // Queued all at once, then awaited: the half arrives in one go, with no quiet gap in which
    // the stage would settle.
    let send = |part: &[(Vec<u8>, Vec<u8>)]| {
        let deliveries: Vec<_> = part
            .iter()
            .map(|(key, payload)| {
                producer
                    .send_result(
                        FutureRecord::to(&env.topics.terms)
                            .key(key)
                            .payload(payload),
                    )
                    .unwrap()
            })
            .collect();
        async move {
            for d in deliveries {
                d.await.unwrap().unwrap();
            }
        }
    };
    let half = records.len() / 2;
    let group = env.topics.group(Group::Trends);
    let behind = || lag::group_lag(&env.config.kafka, &group, &env.topics.terms).unwrap();

    // The first half: read, snapshotted and committed once the stage has read it all.
    send(&records[..half]).await;
    let stage = start(&env, &[Stage::Trends]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while behind() > 0 {
        assert!(
            Instant::now() < deadline,
            "the first half was never committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The second half: part of it handled, not yet covered by a snapshot, when the stage is
    // stopped at once.
    send(&records[half..]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    stage.abort().await;
    let left = behind();
    assert!(left > 0, "stopped before the end");
    let stage = start(&env, &[Stage::Trends]);
    wait_settled(&env).await;
    stage.stop().await.unwrap();
    assert_eq!(
        observed_in_snapshot(&env),
        occurrences,
        "every occurrence taken in once (stopped with {left} records uncommitted)"
    );

    // Offsets behind the snapshot: read again from the start, it counts nothing twice and
    // publishes nothing new.
    let published = lag::topic_size(&env.config.kafka, &env.topics.trends).unwrap();
    lag::rewind_group(&env.config.kafka, &group, &env.topics.terms).unwrap();
    let stage = start(&env, &[Stage::Trends]);
    wait_settled(&env).await;
    stage.stop().await.unwrap();
    assert_eq!(observed_in_snapshot(&env), occurrences);
    assert_eq!(
        lag::topic_size(&env.config.kafka, &env.topics.trends).unwrap(),
        published
    );

    for e in [source, env] {
        let _ = gema::kafka::topics::delete_topics(&e.config.kafka, &e.topics).await;
    }
}
