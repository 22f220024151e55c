//! What the alert router holds is never behind its committed offsets: a router stopped at once
//! mid-stream (what `kill -9` leaves) and started again still groups each thread into one alert
//! whose count is every comment in it: no grouping lost (lost grouping becomes repeats), no
//! comment counted twice.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::TestEnv;
use gema::alerts::{Alert, AlertKind, Sample, Severity};
use gema::kafka::{lag, Group};
use gema::pipeline::{Running, Stage};
use rdkafka::producer::FutureRecord;

fn start(env: &TestEnv) -> Running {
    common::start_builtin(env, None, &[Stage::Router])
}

fn comment(i: usize, thread: usize) -> Alert {
    let now = Utc::now();
    Alert {
        id: format!("comment-{i}"),
        kind: AlertKind::NegativeComment,
        severity: Severity::Low,
        query: Some("nusapay".into()),
        term: None,
        title: format!("Negative mention {i}"),
        why: "negative".into(),
        samples: vec![Sample {
            key: format!("x:{i}"),
            text: "saldo hilang".into(),
            author_handle: format!("user{i}"),
            author_followers: 10,
            url: format!("https://example.social/{i}"),
            created_at: now,
        }],
        count: 1,
        thread_id: Some(format!("thread-{thread}")),
        event_time: now,
        detected_at: now,
    }
}

/// Every alert the router delivered, in order.
fn delivered(env: &TestEnv) -> Vec<Alert> {
    env.read_topic(&env.topics.alerts)
        .into_iter()
        .map(|(_, payload)| serde_json::from_slice(&payload).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_stopped_mid_stream_keeps_every_thread_as_one_alert_with_its_full_count() {
    let mut env = TestEnv::new("routerstate");
    env.config.kafka.partitions = 1;
    env.config.alerts.router.max_per_minute = u32::MAX;
    gema::kafka::topics::ensure_topics(&env.config.kafka, &env.topics)
        .await
        .unwrap();
    let (threads, per_thread) = (4, 50);
    let comments: Vec<Alert> = (0..threads * per_thread)
        .map(|i| comment(i, i % threads))
        .collect();
    let producer = gema::kafka::producer(&env.config.kafka).unwrap();
    // Queued all at once, then awaited: no quiet gap in which the router would settle.
    let send = |part: Vec<Alert>| {
        let deliveries: Vec<_> = part
            .iter()
            .map(|a| {
                let json = serde_json::to_vec(a).unwrap();
                producer
                    .send_result(
                        FutureRecord::to(&env.topics.alerts_raw)
                            .key("nusapay")
                            .payload(&json),
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
    let group = env.topics.group(Group::Router);
    let behind = || lag::group_lag(&env.config.kafka, &group, &env.topics.alerts_raw).unwrap();
    let half = comments.len() / 2;

    // The first half, routed and committed; then the second, partly routed when the router is
    // stopped at once.
    send(comments[..half].to_vec()).await;
    let router = start(&env);
    let deadline = Instant::now() + Duration::from_secs(60);
    while behind() > 0 {
        assert!(
            Instant::now() < deadline,
            "the first half was never committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    send(comments[half..].to_vec()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    router.abort().await;
    let left = behind();
    assert!(left > 0, "stopped before the end");

    // Started again and stopped gracefully: the thread updates go out with their counts.
    let router = start(&env);
    let deadline = Instant::now() + Duration::from_secs(60);
    while behind() > 0 {
        assert!(Instant::now() < deadline, "the rest was never committed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    router.stop().await.unwrap();

    let alerts = delivered(&env);
    let mut last_count: BTreeMap<String, u32> = BTreeMap::new();
    for a in &alerts {
        last_count.insert(a.id.clone(), a.count);
    }
    assert_eq!(
        last_count.len(),
        threads,
        "one alert per thread, no repeats after the restart ({left} candidates were uncommitted): {last_count:?}"
    );
    for (id, count) in &last_count {
        assert_eq!(
            *count as usize, per_thread,
            "thread alert {id}: {last_count:?}"
        );
    }
    let _ = gema::kafka::topics::delete_topics(&env.config.kafka, &env.topics).await;
}
