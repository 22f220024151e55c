//! The alert router stage (consumer group `<prefix>-router`): alert candidates from
//! `<prefix>.alerts.raw` → [`Router`] → `<prefix>.alerts` and `<prefix>.incidents` (which the
//! ClickHouse sinks store) and webhooks. The Kafka loop is the runner's ([`crate::runner`]); webhooks run on their own
//! bounded queues and never hold the stage up.
//!
//! What the router holds (thread groups and their growing counts, alerts held for the minute's
//! digest, the ids it saw, cooldowns) is never behind the committed offsets: batches are held
//! until a snapshot covers them (`<state_dir>/<prefix>-router-state.json`, taken once the
//! delivered alerts are acknowledged: every 5 s under load, when the input is quiet, and on
//! shutdown), and a restarted router restores it and skips the candidates it already routed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rdkafka::message::BorrowedMessage;

use crate::kafka::progress::{producer_of, PartitionProgress};
use crate::kafka::{Group, Topics};
use crate::metrics::Metrics;
use crate::runner::state::Coverage;
use crate::runner::{BatchPolicy, HandleError, Handler, Io, Output, Reject, Settled, StageError};

use super::incident::IncidentConfig;
use super::router::{Decision, Router, RouterConfig, RouterSnapshot};
use super::webhook::{Webhook, WebhookConfig};
use super::{Alert, Incident};

/// How often the router looks at what it holds (digests, thread counts).
const TICK: Duration = Duration::from_secs(1);

/// The router's snapshot: what it remembers, and the input it covers.
#[derive(serde::Serialize, serde::Deserialize)]
struct RouterState {
    router: RouterSnapshot,
    /// Per partition of `alerts.raw`, the next offset the state has not seen.
    covered: BTreeMap<i32, i64>,
}

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
    /// Incident versions due for delivery in the current batch.
    incidents: Vec<Incident>,
    last_tick: tokio::time::Instant,
    /// The snapshot file.
    state: PathBuf,
    /// What the state covers of the input, and when it was last saved.
    coverage: Coverage,
    /// Event-time progress per input partition: the router's clock is their low watermark, so
    /// a partition read behind the others does not find its threads' windows closed.
    progress: PartitionProgress,
    /// Candidates routed since the last tick.
    since_tick: usize,
}

impl RouterStage {
    /// The router with what its snapshot in `state_dir` holds (`prefix` names the file).
    pub fn new(
        config: RouterConfig,
        incidents: IncidentConfig,
        webhooks: Vec<Webhook>,
        topics: Topics,
        metrics: Arc<Metrics>,
        state_dir: &Path,
    ) -> RouterStage {
        let state = state_dir.join(format!("{}-router-state.json", topics.prefix));
        let (router, covered) = match crate::runner::state::load::<RouterState>(&state) {
            Ok(Some(s)) => {
                tracing::info!(path = %state.display(), covered = ?s.covered, "Restored router state");
                (Router::restore(config, s.router), s.covered)
            }
            Ok(None) => (Router::new(config), BTreeMap::new()),
            Err(e) => {
                tracing::warn!(path = %state.display(), error = %e, "Cannot restore router state; starting empty");
                (Router::new(config), BTreeMap::new())
            }
        };
        let router = router.with_incidents(incidents);
        tracing::info!(topic = %topics.alerts_raw, webhooks = webhooks.len(), "Alert router ready");
        RouterStage {
            router,
            state,
            coverage: Coverage::restored(covered),
            progress: PartitionProgress::default(),
            since_tick: 0,
            webhooks,
            topics,
            metrics,
            due: Vec::new(),
            incidents: Vec::new(),
            last_tick: tokio::time::Instant::now(),
        }
    }

    /// The input's low watermark (event time), `None` until every assigned partition is read.
    fn watermark(&mut self, io: &Io<'_>) -> Option<chrono::DateTime<Utc>> {
        self.progress
            .low_watermark(io.consumer)
            .and_then(chrono::DateTime::from_timestamp_millis)
    }

    /// Produces the due alerts and incident versions to their topics and offers them to the
    /// webhooks.
    async fn deliver(&mut self, out: &mut Output) -> Result<(), StageError> {
        self.incidents
            .extend(self.router.take_incidents(Utc::now()));
        for incident in std::mem::take(&mut self.incidents) {
            let json = serde_json::to_vec(&incident).expect("an incident serialises");
            out.send(
                &self.topics.incidents,
                Some(incident.id.as_bytes()),
                &json,
                None,
            )
            .await?;
            for w in &self.webhooks {
                w.offer_incident(&incident);
            }
            self.metrics.incidents_delivered.inc();
        }
        for alert in std::mem::take(&mut self.due) {
            let json = serde_json::to_vec(&alert).expect("an alert serialises");
            out.send(&self.topics.alerts, Some(alert.id.as_bytes()), &json, None)
                .await?;
            for w in &self.webhooks {
                w.offer(&alert);
            }
            self.metrics.alerts_delivered.inc();
        }
        Ok(())
    }
}

impl Handler for RouterStage {
    fn settling(&mut self) -> Result<(), StageError> {
        let (router, path) = (&self.router, &self.state);
        self.coverage.save("the router's state", path, |covered| {
            let snap = RouterState {
                router: router.snapshot(),
                covered: covered.clone(),
            };
            crate::runner::state::save_atomically(path, &snap)
        })
    }

    fn policy(&self) -> BatchPolicy {
        BatchPolicy {
            group: Group::Router,
            max: 2000,
            linger: Duration::from_millis(5),
            partition_eof: true,
            pipelined: false,
            partition_state: false,
        }
    }

    async fn handle(
        &mut self,
        msg: &BorrowedMessage<'_>,
        io: &mut Io<'_>,
    ) -> Result<(), HandleError> {
        use rdkafka::message::Message;
        if !self.coverage.take(msg.partition(), msg.offset()) {
            // Already routed into the restored state.
            return Ok(());
        }
        self.since_tick += 1;
        let alert =
            serde_json::from_slice::<Alert>(msg.payload().unwrap_or(&[])).map_err(|e| Reject {
                reason: "schema".into(),
                error: format!("invalid alert: {e}"),
            })?;
        let now = Utc::now();
        // An enrich process names itself in a header; the trend stage's spike alerts do not.
        self.progress.saw_from(
            msg.partition(),
            producer_of(msg).unwrap_or(0),
            alert.event_time.timestamp_millis(),
        );
        let watermark = self.watermark(io);
        self.router.advance(watermark, now);
        let (decision, due) = self.router.route(alert, now);
        if decision != Decision::Delivered {
            self.metrics.alerts_suppressed.inc();
        }
        self.due.extend(due);
        Ok(())
    }

    async fn end_batch(&mut self, io: &mut Io<'_>) -> Result<Settled, StageError> {
        self.deliver(io.out).await?;
        Ok(self.coverage.settle_when(false))
    }

    fn next_wake(&mut self) -> Option<tokio::time::Instant> {
        Some(self.last_tick + TICK)
    }

    async fn wake(&mut self, io: &mut Io<'_>) -> Result<Settled, StageError> {
        self.last_tick = tokio::time::Instant::now();
        let now = Utc::now();
        let watermark = self.watermark(io);
        self.router.advance(watermark, now);
        let due = self.router.tick(now);
        self.due.extend(due);
        self.deliver(io.out).await?;
        // Quiet since the last tick: settle what is held now.
        let quiet = std::mem::take(&mut self.since_tick) == 0;
        Ok(self.coverage.settle_when(quiet))
    }

    fn partition_end(&mut self, partition: i32, end: Option<i64>) {
        self.progress
            .reached_end(partition, end, std::time::Instant::now());
    }

    async fn drain(&mut self, io: &mut Io<'_>) -> Result<(), StageError> {
        // What the router still holds (a digest, thread counts) goes out before the offsets
        // commit.
        let held = self.router.flush(Utc::now());
        let incidents = self.router.take_incidents(Utc::now());
        if !held.is_empty() || !incidents.is_empty() {
            self.coverage.changed();
        }
        self.due.extend(held);
        self.incidents.extend(incidents);
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
