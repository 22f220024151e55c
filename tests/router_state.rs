//! What the alert router holds is never behind its committed offsets: a router stopped at once
//! mid-stream (what `kill -9` leaves) and started again still groups each thread into one alert
//! whose count is every comment in it: no grouping lost (lost grouping becomes repeats), no
//! comment counted twice. The same holds for the incident those comments make.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::TestEnv;
use gema::alerts::{Alert, AlertKind, Incident, Sample, Severity};
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

/// Sends `alerts` to the router's input, queued all at once and then awaited: no quiet gap in
/// which the router would settle.
async fn send_all(env: &TestEnv, producer: &rdkafka::producer::FutureProducer, alerts: &[Alert]) {
    let deliveries: Vec<_> = alerts
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
    for d in deliveries {
        d.await.unwrap().unwrap();
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
    let group = env.topics.group(Group::Router);
    let behind = || lag::group_lag(&env.config.kafka, &group, &env.topics.alerts_raw).unwrap();
    let half = comments.len() / 2;

    // The first half, routed and committed; then the second, partly routed when the router is
    // stopped at once.
    send_all(&env, &producer, &comments[..half]).await;
    let router = start(&env);
    let deadline = Instant::now() + Duration::from_secs(60);
    while behind() > 0 {
        assert!(
            Instant::now() < deadline,
            "the first half was never committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    send_all(&env, &producer, &comments[half..]).await;
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

/// The last version of every incident the router published, by id.
fn last_incidents(env: &TestEnv) -> BTreeMap<String, Incident> {
    env.read_topic(&env.topics.incidents)
        .into_iter()
        .map(|(_, payload)| serde_json::from_slice::<Incident>(&payload).unwrap())
        .map(|i| (i.id.clone(), i))
        .collect()
}

/// What a manager sees of an incident (not when it was published or how often).
fn facts(i: &Incident) -> String {
    let mut ids = i.alert_ids.clone();
    ids.sort();
    format!(
        "{} {} {:?} posts={} peak={} alerts={} terms={:?} trending={:?} opened={} last={} \
         samples={:?} ids={ids:?}",
        i.id,
        i.query,
        i.severity,
        i.negative_posts,
        i.peak_per_minute,
        i.alert_count,
        i.driving_terms,
        i.trending_terms,
        i.opened_at,
        i.last_event_at,
        i.samples.iter().map(|s| &s.key).collect::<Vec<_>>(),
    )
}

/// Routes `crisis` with a router that is killed once mid-stream (`kill` true) or left alone;
/// the incidents it published.
async fn route_crisis(name: &str, crisis: &[Alert], kill: bool) -> BTreeMap<String, Incident> {
    let mut env = TestEnv::new(name);
    env.config.kafka.partitions = 1;
    env.config.alerts.router.max_per_minute = u32::MAX;
    gema::kafka::topics::ensure_topics(&env.config.kafka, &env.topics)
        .await
        .unwrap();
    let producer = gema::kafka::producer(&env.config.kafka).unwrap();
    let group = env.topics.group(Group::Router);
    let behind = || lag::group_lag(&env.config.kafka, &group, &env.topics.alerts_raw).unwrap();
    let drained = |what: &'static str| async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while behind() > 0 {
            assert!(Instant::now() < deadline, "{what} was never committed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let half = crisis.len() / 2;
    send_all(&env, &producer, &crisis[..half]).await;
    let router = start(&env);
    drained("the first half").await;
    send_all(&env, &producer, &crisis[half..]).await;
    let router = if kill {
        tokio::time::sleep(Duration::from_millis(100)).await;
        router.abort().await;
        assert!(behind() > 0, "killed before the end");
        start(&env)
    } else {
        router
    };
    drained("the rest").await;
    router.stop().await.unwrap();
    let out = last_incidents(&env);
    let _ = gema::kafka::topics::delete_topics(&env.config.kafka, &env.topics).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_killed_mid_crisis_ends_with_the_same_incident_as_one_left_alone() {
    // 240 negative comments about one brand, one every two seconds of event time, from people
    // with different reach: one incident.
    let start_at = Utc::now() - chrono::Duration::minutes(10);
    let crisis: Vec<Alert> = (0..240)
        .map(|i| {
            let mut a = comment(i, 0);
            a.id = format!("crisis-{i}");
            a.thread_id = None;
            a.event_time = start_at + chrono::Duration::seconds(2 * i as i64);
            a.detected_at = a.event_time;
            a.samples[0].author_followers = (i as u64 * 7919) % 100_000;
            a.samples[0].text = format!("saldo hilang, transfer gagal #NusaPayDown ({i})");
            a.samples[0].created_at = a.event_time;
            a
        })
        .collect();
    let alone = route_crisis("incalone", &crisis, false).await;
    let killed = route_crisis("inckilled", &crisis, true).await;
    assert_eq!(alone.len(), 1, "one incident: {alone:#?}");
    let want: Vec<String> = alone.values().map(facts).collect();
    let got: Vec<String> = killed.values().map(facts).collect();
    assert_eq!(
        got, want,
        "killed and started again: the same incident, no comment lost or counted twice"
    );
    let inc = alone.values().next().unwrap();
    assert_eq!(inc.negative_posts, 240);
    assert_eq!(inc.alert_count, 240);
}
