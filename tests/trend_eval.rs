//! Trends that are real, through the real stages on the real Kafka and ClickHouse: a stationary
//! background (hundreds of hashtags and keywords at constant rates, tracked brands at constant
//! volume and sentiment) raises no emerging-trend or negative-spike alert by chance, and the
//! launches injected into it are each found within 2 buckets.

mod common;

use std::time::{Duration, Instant};

use chrono::Duration as ChronoDuration;
use common::{Stages, TestEnv};
use gema::pipeline::Stage;
use gema::query::alerts::list;
use gema::sources::replay::{replay, ReplayOptions, Speed};
use gema::sources::stationary::{stationary, StationaryOptions};
use gema::tracked::TrackedQueryConfig;
use gema::trends::eval::{evaluate, Detected};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stationary_feed_raises_no_trend_and_launches_are_found_within_two_buckets() {
    let mut env = TestEnv::new("trend-eval");
    env.config.tracked = ["kopikita", "nusapay", "arunika air"]
        .iter()
        .map(|q| TrackedQueryConfig {
            name: q.replace(' ', "-"),
            query: format!("\"{q}\""),
        })
        .collect();
    let store = env.store().await;

    // Four hours of event time at 150 background mentions a minute (36,000 mentions) with 3
    // launches in the last two, replayed at 1500× (under 10 s of sending).
    let (lines, truth) = stationary(&StationaryOptions {
        seed: 11,
        start: "2026-11-26T00:00:00Z".parse().unwrap(),
        span: ChronoDuration::hours(4),
        per_minute: 150,
        launches: 3,
    });
    let lines: Vec<Vec<u8>> = lines.into_iter().map(String::into_bytes).collect();
    let path = env.feed(&lines);
    let started = Instant::now();
    let stages = Stages::start_only(&env, &store, &Stage::ALL);
    let opts = ReplayOptions {
        path,
        speed: Speed::Factor(1500.0),
        retime: false,
        progress: None,
    };
    replay(&env.config.kafka, &env.topics, &opts).await.unwrap();
    env.wait_all_drained(Duration::from_secs(120)).await;
    let metrics = stages.stop().await;
    assert_eq!(metrics.trend_late.get(), 0, "no occurrence was late");

    let since = "2026-01-01T00:00:00Z".parse().unwrap();
    let until = chrono::Utc::now() + ChronoDuration::hours(1);
    let alerts = list(&store, since, until, None, None, 100_000)
        .await
        .unwrap();
    let detected: Vec<Detected> = alerts
        .iter()
        .map(|a| Detected {
            kind: a.kind.clone(),
            query: a.query.clone(),
            term: a.term.clone(),
            why: a.why.clone(),
            event_time: a.event_time,
        })
        .collect();
    let report = evaluate(&truth, &detected, ChronoDuration::minutes(1));
    assert_eq!(
        report.false_alerts, 0,
        "no trend or spike raised by chance: {:?}",
        report.unmatched
    );
    let launches = &report.per_type[0];
    assert_eq!(launches.kind, "trend");
    assert_eq!(launches.events, 3);
    assert_eq!(
        (launches.detected, launches.within_two_buckets),
        (3, 3),
        "every launch found within 2 buckets: {launches:?}"
    );
    eprintln!(
        "{} alerts, all about the 3 launches; {:.1}s",
        report.alerts,
        started.elapsed().as_secs_f64()
    );
    env.cleanup(&store).await;
}
