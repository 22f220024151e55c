//! The alert router stage (consumer group `<prefix>-router`): alert candidates from
//! `<prefix>.alerts.raw` → [`Router`] → `<prefix>.alerts` (which the ClickHouse sink stores) and
//! webhooks. The Kafka loop is the runner's ([`crate::runner`]): offsets are stored once the
//! delivered alerts are acknowledged by Kafka; webhooks run on their own bounded queues and never
//! hold the stage up.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rdkafka::message::BorrowedMessage;

use crate::kafka::{Group, Topics};
use crate::metrics::Metrics;
use crate::runner::{BatchPolicy, HandleError, Handler, Io, Output, Reject, Settled, StageError};

use super::router::{Decision, Router, RouterConfig};
use super::webhook::{Webhook, WebhookConfig};
use super::Alert;

/// How often the router looks at what it holds (digests, thread counts) while no alert arrives.
const TICK: Duration = Duration::from_secs(1);

/// Starts one delivery task per configured webhook (fails on a missing secret variable).
pub fn webhooks(configs: &[WebhookConfig], metrics: &Arc<Metrics>) -> Result<Vec<Webhook>, String> {
    configs
        .iter()
        .map(|w| Webhook::spawn(w.clone(), metrics.clone()))
        .collect()
}

/// The router's handler for [`crate::runner::run`].
pub struct RouterStage {
    router: Router,
    webhooks: Vec<Webhook>,
    topics: Topics,
    metrics: Arc<Metrics>,
    /// Alerts due for delivery in the current batch.
    due: Vec<Alert>,
    last_tick: tokio::time::Instant,
}

impl RouterStage {
    pub fn new(
        config: RouterConfig,
        webhooks: Vec<Webhook>,
        topics: Topics,
        metrics: Arc<Metrics>,
    ) -> RouterStage {
        tracing::info!(topic = %topics.alerts_raw, webhooks = webhooks.len(), "Alert router ready");
        RouterStage {
            router: Router::new(config),
            webhooks,
            topics,
            metrics,
            due: Vec::new(),
            last_tick: tokio::time::Instant::now(),
        }
    }

    /// Produces the due alerts to the alerts topic and offers them to the webhooks.
    async fn deliver(&mut self, out: &mut Output) -> Result<Settled, StageError> {
        for alert in std::mem::take(&mut self.due) {
            let json = serde_json::to_vec(&alert).expect("an alert serialises");
            out.send(&self.topics.alerts, Some(alert.id.as_bytes()), &json, None)
                .await?;
            for w in &self.webhooks {
                w.offer(&alert);
            }
            self.metrics.alerts_delivered.inc();
        }
        Ok(Settled::All)
    }
}

impl Handler for RouterStage {
    fn policy(&self) -> BatchPolicy {
        BatchPolicy {
            group: Group::Router,
            max: 2000,
            linger: Duration::from_millis(5),
            partition_eof: false,
        }
    }

    async fn handle(
        &mut self,
        msg: &BorrowedMessage<'_>,
        _io: &mut Io<'_>,
    ) -> Result<(), HandleError> {
        use rdkafka::message::Message;
        let alert =
            serde_json::from_slice::<Alert>(msg.payload().unwrap_or(&[])).map_err(|e| Reject {
                reason: "schema".into(),
                error: format!("invalid alert: {e}"),
            })?;
        let (decision, due) = self.router.route(alert, Utc::now());
        if decision != Decision::Delivered {
            self.metrics.alerts_suppressed.inc();
        }
        self.due.extend(due);
        Ok(())
    }

    async fn end_batch(&mut self, io: &mut Io<'_>) -> Result<Settled, StageError> {
        self.deliver(io.out).await
    }

    fn next_wake(&mut self) -> Option<tokio::time::Instant> {
        Some(self.last_tick + TICK)
    }

    async fn wake(&mut self, io: &mut Io<'_>) -> Result<Settled, StageError> {
        self.last_tick = tokio::time::Instant::now();
        let due = self.router.tick(Utc::now());
        self.due.extend(due);
        self.deliver(io.out).await
    }

    async fn drain(&mut self, io: &mut Io<'_>) -> Result<(), StageError> {
        // What the router still holds (a digest, thread counts) goes out before the offsets
        // commit.
        let held = self.router.flush(Utc::now());
        self.due.extend(held);
        self.deliver(io.out).await?;
        tracing::info!(
            delivered = self.router.stats.delivered,
            duplicates = self.router.stats.duplicates,
            grouped = self.router.stats.grouped,
            "Alert router delivered what it held"
        );
        Ok(())
    }
}
