//! Incidents through the real stages on the real Kafka and ClickHouse: a replayed crisis (the
//! synthetic feed's NusaPay outage, at 600×) is exactly one incident for the brand, with its
//! severity, driving terms, samples by reach and summary; no rate-limit digest; a webhook
//! subscribed to incidents is called once; the feed's topic carries its versions; acknowledging
//! it sticks while the router keeps updating it.

mod common;

use chrono::Duration as ChronoDuration;
use common::TestEnv;
use gema::alerts::webhook::{WebhookConfig, WebhookEvent};
use gema::alerts::{Incident, Sample, Severity};
use gema::query::{alerts, incidents};
use gema::tracked::TrackedQueryConfig;

use common::webhook_receiver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_crisis_is_one_incident_with_its_facts() {
    let mut env = TestEnv::new("incidents");
    let (url, received) = webhook_receiver().await;
    env.config.tracked = vec![
        TrackedQueryConfig {
            name: "nusapay".into(),
            query: "nusapay OR @nusapay OR #nusapay*".into(),
        },
        TrackedQueryConfig {
            name: "kopikita".into(),
            query: "kopikita OR @kopikita OR #kopikita*".into(),
        },
    ];
    env.config.alerts.webhooks = vec![WebhookConfig {
        url,
        secret_env: None,
        min_severity: Severity::High,
        timeout_ms: 2000,
        max_retries: 2,
        queue_capacity: 100,
        events: vec![WebhookEvent::Incident],
    }];
    env.config.state_dir = env.dir.path().join("state");
    let store = env.store().await;
    common::replay_synth_crisis(&env, &store, 2000, 600.0).await;

    let since = "2026-01-01T00:00:00Z".parse().unwrap();
    let until = chrono::Utc::now() + ChronoDuration::hours(1);
    let all = incidents::list(&store, since, until, None, 100)
        .await
        .unwrap();
    let nusapay: Vec<_> = all.iter().filter(|i| i.query == "nusapay").collect();
    assert_eq!(nusapay.len(), 1, "one incident for the brand: {all:#?}");
    let i = nusapay[0];
    assert_eq!(
        (i.status.as_str(), i.severity.as_str()),
        ("open", "critical")
    );
    assert!(i.negative_posts >= 100, "{}", i.negative_posts);
    assert!(
        i.driving_terms.iter().any(|t| t == "#nusapaydown"),
        "{:?}",
        i.driving_terms
    );
    assert!(
        i.summary.starts_with(&format!(
            "nusapay: negative spike — {} negative posts in ",
            i.negative_posts
        )),
        "{}",
        i.summary
    );
    assert!(
        i.summary.contains("driven by #nusapaydown") || i.summary.contains(", #nusapaydown"),
        "{}",
        i.summary
    );
    let samples: Vec<Sample> = serde_json::from_str(&i.samples).unwrap();
    assert_eq!(samples.len(), 5);
    assert!(
        samples
            .windows(2)
            .all(|w| w[0].author_followers >= w[1].author_followers),
        "samples by reach"
    );
    // Its alerts are stored and reachable: the spike among them.
    let held = alerts::by_ids(&store, &i.alert_ids).await.unwrap();
    assert_eq!(held.len(), i.alert_ids.len());
    assert!(held.iter().any(|a| a.kind == "negative_spike"));
    // A 600× replay meets the rate limit per minute of event time, and comments in the incident
    // are summarised by it: no digest.
    let digests = alerts::list(&store, since, until, Some("digest"), None, 100)
        .await
        .unwrap();
    assert!(digests.is_empty(), "no digest: {digests:#?}");

    // The feed's topic carries every version; the last is what is stored.
    let versions: Vec<Incident> = env
        .read_topic(&env.topics.incidents)
        .into_iter()
        .map(|(_, p)| serde_json::from_slice(&p).unwrap())
        .filter(|v: &Incident| v.id == i.id)
        .collect();
    assert_eq!(versions.last().unwrap().version, i.version);
    assert_eq!(versions.last().unwrap().summary, i.summary);

    // The webhook subscribed to incidents: one call, the incident.
    let got = received.lock().unwrap().clone();
    let bodies: Vec<serde_json::Value> = got
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).unwrap())
        .collect();
    let about: Vec<_> = bodies
        .iter()
        .filter(|b| b["gema_incident"]["id"] == i.id.as_str())
        .collect();
    assert_eq!(about.len(), 1, "{bodies:#?}");
    assert!(
        bodies.iter().all(|b| b.get("gema_alert").is_none()),
        "no single alerts"
    );

    // Acknowledged by a person, it stays so.
    assert!(incidents::set_status(&store, &i.id, "acknowledged")
        .await
        .unwrap());
    let back = incidents::get(&store, &i.id).await.unwrap().unwrap();
    assert_eq!(back.status, "acknowledged");
    assert!(!incidents::set_status(&store, "nope", "resolved")
        .await
        .unwrap());
    env.cleanup(&store).await;
}
