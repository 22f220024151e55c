//! Trends and alerts through the real stages on the real Kafka and ClickHouse: a replayed feed
//! with a negative crisis, a launching hashtag and a spam account gives a negative-spike alert
//! that names its cause, an emerging-trend alert, no trend for the spammer, signed webhooks.

mod common;

use chrono::Duration as ChronoDuration;
use common::TestEnv;
use gema::alerts::webhook::{
    sign, WebhookConfig, WebhookEvent, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use gema::alerts::Severity;
use gema::query::alerts::list;
use gema::tracked::TrackedQueryConfig;

use common::webhook_receiver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crisis_launch_and_spam_give_the_right_alerts_with_reasons_and_signed_webhooks() {
    let mut env = TestEnv::new("alerts");
    let (url, received) = webhook_receiver().await;
    std::env::set_var("GEMA_TEST_WEBHOOK_SECRET", "s3cret");
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
        secret_env: Some("GEMA_TEST_WEBHOOK_SECRET".into()),
        min_severity: Severity::High,
        timeout_ms: 2000,
        max_retries: 2,
        queue_capacity: 100,
        events: vec![WebhookEvent::Alert],
    }];
    env.config.state_dir = env.dir.path().join("state");
    let store = env.store().await;

    // Two hours of event time, about 17 mentions a minute, replayed at 600x (12 s).
    let metrics = common::replay_synth_crisis(&env, &store, 2000, 600.0).await;
    assert!(
        metrics.trend_late.get() == 0,
        "no occurrence was late: {}",
        metrics.trend_late.get()
    );

    let since = "2026-01-01T00:00:00Z".parse().unwrap();
    let until = chrono::Utc::now() + ChronoDuration::hours(1);
    let alerts = list(&store, since, until, None, None, 1000).await.unwrap();
    let spikes: Vec<_> = alerts
        .iter()
        .filter(|a| a.kind == "negative_spike")
        .collect();
    assert!(!spikes.is_empty(), "a negative spike alert for the crisis");
    let spike = spikes
        .iter()
        .find(|a| a.query == "nusapay")
        .expect("the spike is about nusapay");
    assert!(
        spike.why.contains("#nusapaydown"),
        "the why names the crisis hashtag: {}",
        spike.why
    );
    assert!(
        spike.samples.contains("nusapay") || spike.samples.to_lowercase().contains("nusapay"),
        "with samples"
    );
    // The crisis runs from 78 % to 90 % of the span: 01:33:36–01:48:00.
    let crisis_start: chrono::DateTime<chrono::Utc> = "2026-11-26T01:33:36Z".parse().unwrap();
    let first_spike = spikes.iter().map(|a| a.event_time).min().unwrap();
    assert!(
        first_spike >= crisis_start && first_spike <= crisis_start + ChronoDuration::minutes(3),
        "the spike is detected within 2 buckets of the crisis start: {first_spike}"
    );

    let trending: Vec<&str> = alerts
        .iter()
        .filter(|a| a.kind == "emerging_trend")
        .map(|a| a.term.as_str())
        .collect();
    assert!(
        trending.contains(&"#kopikitasenja"),
        "the launch hashtag trends: {trending:?}"
    );
    let spam_trends: u64 = store
        .client
        .query("SELECT count() FROM trends WHERE term IN ('#promomurah', '@promo_gacor88', 'gacor', 'promo gacor')")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(spam_trends, 0, "one spam account never makes a trend");

    // Negative-comment alerts have deterministic ids: each mention alerts once.
    let comments = alerts
        .iter()
        .filter(|a| a.kind == "negative_comment")
        .count();
    assert!(comments > 0);
    // They say which words made the mention negative, so a false alarm shows at a glance.
    let explained: Vec<&str> = alerts
        .iter()
        .filter(|a| a.kind == "negative_comment")
        .map(|a| a.why.as_str())
        .filter(|w| w.starts_with("Negative because of "))
        .collect();
    assert!(
        explained.len() * 2 > comments,
        "most negative-comment alerts name their words: {} of {comments}",
        explained.len()
    );
    let distinct: std::collections::HashSet<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(distinct.len(), alerts.len());

    // Webhooks: only high and critical, each signed over "<timestamp>.<body>".
    let got = received.lock().unwrap().clone();
    assert!(!got.is_empty(), "the webhook received alerts");
    for (headers, body) in &got {
        let h = |k: &str| {
            headers
                .iter()
                .find(|(n, _)| n == &k.to_ascii_lowercase())
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let ts: i64 = h(TIMESTAMP_HEADER).parse().unwrap();
        assert_eq!(h(SIGNATURE_HEADER), sign(b"s3cret", ts, body));
        let json: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert!(
            json["text"].as_str().unwrap().starts_with("*["),
            "Slack text: {json}"
        );
        let sev = json["gema_alert"]["severity"].as_str().unwrap();
        assert!(
            sev == "high" || sev == "critical",
            "min_severity filters: {sev}"
        );
    }
    env.cleanup(&store).await;
}
