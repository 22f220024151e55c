//! Running stages: a supervisor that restarts a failed stage, and `gema run` (every stage in one
//! process) with graceful shutdown on Ctrl-C / SIGTERM.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::alerts::{self, webhook::Webhook};
use crate::config::Config;
use crate::enrich::{self, Enricher};
use crate::error::StageError;
use crate::kafka::{lag, Topics};
use crate::metrics::Metrics;
use crate::store::{self, Store};
use crate::trends;

/// Which stages to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// raw → enriched, terms, negative-comment alerts, dead letters.
    Enrich,
    /// enriched / trends / alerts topics → ClickHouse tables.
    Sink,
    /// terms → trend events and spike / emerging-trend alerts.
    Trends,
    /// alert candidates → delivered alerts and webhooks.
    Router,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Enrich, Stage::Sink, Stage::Trends, Stage::Router];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Enrich => "enrich",
            Stage::Sink => "sink",
            Stage::Trends => "trends",
            Stage::Router => "router",
        }
    }
}

/// Everything the stages share.
#[derive(Clone)]
pub struct Deps {
    pub config: Config,
    pub enricher: Enricher,
    /// Needed by the sink.
    pub store: Option<Store>,
    /// Used by the router.
    pub webhooks: Vec<Webhook>,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
}

/// Runs `stage` until `shutdown`, restarting it with backoff after an error. A restarted stage
/// resumes from its group's committed offsets, which cover only acknowledged work.
pub async fn supervise<F, Fut>(
    name: &'static str,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    mut stage: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), StageError>>,
{
    let mut backoff = Duration::from_millis(500);
    loop {
        match stage().await {
            Ok(()) => return,
            Err(e) => {
                metrics.stage_restarts.inc();
                tracing::error!(stage = name, error = %e, retry_in_ms = backoff.as_millis() as u64, "Stage failed; restarting");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Spawns the given stages on `tasks`; they stop (drained and committed) when `deps.shutdown` is
/// cancelled.
pub fn spawn_stages(tasks: &mut JoinSet<()>, stages: &[Stage], deps: &Deps) {
    for stage in stages {
        let d = deps.clone();
        match stage {
            Stage::Enrich => {
                tasks.spawn(async move {
                    supervise("enrich", d.metrics.clone(), d.shutdown.clone(), || {
                        enrich::stage::run(
                            &d.config,
                            d.enricher.clone(),
                            d.metrics.clone(),
                            d.shutdown.clone(),
                        )
                    })
                    .await
                });
            }
            Stage::Sink => {
                let store = deps
                    .store
                    .as_ref()
                    .expect("the sink stage needs a ClickHouse store");
                let (c, m, s) = (&deps.config, &deps.metrics, &deps.shutdown);
                spawn_sink::<store::sink::Mentions>(tasks, "sink-ch", c, store, m, s);
                spawn_sink::<store::sink::Trends>(tasks, "sink-trends", c, store, m, s);
                spawn_sink::<store::sink::Alerts>(tasks, "sink-alerts", c, store, m, s);
            }
            Stage::Trends => {
                tasks.spawn(async move {
                    supervise("trends", d.metrics.clone(), d.shutdown.clone(), || {
                        trends::stage::run(&d.config, d.metrics.clone(), d.shutdown.clone())
                    })
                    .await
                });
            }
            Stage::Router => {
                tasks.spawn(async move {
                    supervise("router", d.metrics.clone(), d.shutdown.clone(), || {
                        alerts::stage::run(
                            &d.config,
                            &d.webhooks,
                            d.metrics.clone(),
                            d.shutdown.clone(),
                        )
                    })
                    .await
                });
            }
        }
    }
}

fn spawn_sink<T: store::sink::SinkTable + 'static>(
    tasks: &mut JoinSet<()>,
    name: &'static str,
    config: &Config,
    store: &Store,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) {
    let (config, store, metrics, shutdown) = (
        config.clone(),
        store.clone(),
        metrics.clone(),
        shutdown.clone(),
    );
    tasks.spawn(async move {
        supervise(name, metrics.clone(), shutdown.clone(), || {
            store::sink::run::<T>(&config, &store, metrics.clone(), shutdown.clone())
        })
        .await
    });
}

/// Cancels `token` on the first Ctrl-C or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("install SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("Shutdown requested: draining, flushing and committing");
        token.cancel();
    });
}

/// Every stage's consumer group and its input topic.
pub fn stage_groups(t: &Topics) -> Vec<(String, String)> {
    vec![
        (t.group("enrich"), t.raw.clone()),
        (t.group("sink-ch"), t.enriched.clone()),
        (t.group("trends"), t.terms.clone()),
        (t.group("router"), t.alerts_raw.clone()),
        (t.group("sink-trends"), t.trends.clone()),
        (t.group("sink-alerts"), t.alerts.clone()),
    ]
}

/// Waits until every stage has committed everything in its input topic, and it stayed so for
/// `settle` (the trend stage closes its last buckets after a quiet spell, which makes more work).
pub async fn wait_for_drain(
    config: &Config,
    timeout: Duration,
    settle: Duration,
) -> Result<(), String> {
    let t = Topics::new(&config.kafka.topic_prefix);
    let deadline = Instant::now() + timeout;
    let mut quiet_since: Option<Instant> = None;
    loop {
        let mut behind = Vec::new();
        for (group, topic) in stage_groups(&t) {
            let lag = lag::group_lag(&config.kafka, &group, &topic)
                .map_err(|e| format!("reading the lag of {group}: {e}"))?;
            if lag > 0 {
                behind.push(format!("{group} {lag}"));
            }
        }
        if behind.is_empty() {
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= settle {
                return Ok(());
            }
        } else {
            quiet_since = None;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "stages still behind after {timeout:?}: {}",
                behind.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
