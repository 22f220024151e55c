//! The alert router stage (consumer group `<prefix>-router`): alert candidates from
//! `<prefix>.alerts.raw` → [`Router`] → `<prefix>.alerts` (which the ClickHouse sink stores) and
//! webhooks. Offsets are stored once the delivered alerts are acknowledged by Kafka; webhooks run
//! on their own bounded queues and never hold the stage up.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::StageError;
use crate::kafka::{self, offsets::commit_now, OffsetTracker, Topics};
use crate::metrics::Metrics;

use super::router::{Decision, Router};
use super::webhook::Webhook;
use super::Alert;

/// Starts one delivery task per configured webhook (fails on a missing secret variable).
pub fn webhooks(config: &Config, metrics: &Arc<Metrics>) -> Result<Vec<Webhook>, String> {
    config
        .alerts
        .webhooks
        .iter()
        .map(|w| Webhook::spawn(w.clone(), metrics.clone()))
        .collect()
}

/// Runs the router until `shutdown` is cancelled.
pub async fn run(
    config: &Config,
    webhooks: &[Webhook],
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), StageError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let (consumer, producer) = kafka::stage_clients(
        &config.kafka,
        &topics.group("router"),
        &topics.alerts_raw,
        false,
    )?;
    let mut router = Router::new(config.alerts.router.clone());
    let mut tracker = OffsetTracker::new();
    tracing::info!(topic = %topics.alerts_raw, webhooks = webhooks.len(), "Alert router started");

    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = tokio::time::timeout(Duration::from_millis(1000), consumer.recv()) => m,
        };
        // Route a batch (whatever arrives within a few ms), then deliver it and wait for the
        // acknowledgements once, so throughput does not hang on one round trip per alert.
        let mut out = Vec::new();
        let mut next = first;
        let mut n = 0;
        loop {
            let now = Utc::now();
            match next {
                Ok(Ok(msg)) => {
                    n += 1;
                    match serde_json::from_slice::<Alert>(msg.payload().unwrap_or(&[])) {
                        Ok(alert) => {
                            let (decision, due) = router.route(alert, now);
                            if decision != Decision::Delivered {
                                metrics.alerts_suppressed.inc();
                            }
                            out.extend(due);
                        }
                        Err(e) => {
                            tracing::warn!(offset = msg.offset(), error = %e, "Skipping a malformed alert")
                        }
                    }
                    tracker.track(msg.topic(), msg.partition(), msg.offset());
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "Kafka consumer error"),
                Err(_) => out.extend(router.tick(now)),
            }
            if n == 0 || n >= 2000 {
                break;
            }
            next = match tokio::time::timeout(Duration::from_millis(5), consumer.recv()).await {
                Ok(r) => Ok(r),
                Err(_) => break,
            };
        }
        deliver(&out, &producer, &topics.alerts, webhooks, &metrics).await?;
        tracker.store(&consumer);
    }
    // What the router still holds (a digest, thread counts) goes out before the offsets commit.
    deliver(
        &router.flush(Utc::now()),
        &producer,
        &topics.alerts,
        webhooks,
        &metrics,
    )
    .await?;
    commit_now(&consumer).map_err(StageError::kafka("commit offsets on shutdown"))?;
    tracing::info!(
        delivered = router.stats.delivered,
        duplicates = router.stats.duplicates,
        grouped = router.stats.grouped,
        "Alert router stopped"
    );
    Ok(())
}

/// Produces `alerts` to the alerts topic (awaiting every acknowledgement) and offers them to the
/// webhooks.
async fn deliver(
    alerts: &[Alert],
    producer: &FutureProducer,
    topic: &str,
    webhooks: &[Webhook],
    metrics: &Metrics,
) -> Result<(), StageError> {
    let mut deliveries = Vec::new();
    for alert in alerts {
        let json = serde_json::to_vec(alert).expect("an alert serialises");
        let d = producer
            .send_result(FutureRecord::to(topic).key(&alert.id).payload(&json))
            .map_err(|(source, _)| StageError::Kafka {
                action: "queue an alert",
                source,
            })?;
        deliveries.push(d);
        for w in webhooks {
            w.offer(alert);
        }
        metrics.alerts_delivered.inc();
    }
    crate::kafka::delivery::acknowledged(deliveries, "deliver an alert").await
}
