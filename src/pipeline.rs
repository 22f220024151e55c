//! Running stages: a supervisor that restarts a failed stage, and `gema run` (every stage in one
//! process) with graceful shutdown on Ctrl-C / SIGTERM.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::enrich::{self, Enricher};
use crate::error::StageError;
use crate::metrics::Metrics;
use crate::store::{self, Store};

/// Which stages to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Enrich,
    Sink,
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

/// Spawns the given stages on `tasks`; they stop (drained and committed) when `shutdown` is
/// cancelled.
pub fn spawn_stages(
    tasks: &mut JoinSet<()>,
    stages: &[Stage],
    config: &Config,
    enricher: &Enricher,
    store: Option<&Store>,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) {
    for stage in stages {
        let (config, metrics, shutdown) = (config.clone(), metrics.clone(), shutdown.clone());
        match stage {
            Stage::Enrich => {
                let enricher = enricher.clone();
                tasks.spawn(async move {
                    supervise("enrich", metrics.clone(), shutdown.clone(), || {
                        enrich::stage::run(
                            &config,
                            enricher.clone(),
                            metrics.clone(),
                            shutdown.clone(),
                        )
                    })
                    .await
                });
            }
            Stage::Sink => {
                let store = store.expect("the sink stage needs a ClickHouse store");
                spawn_sink::<store::sink::Mentions>(
                    tasks, "sink-ch", &config, store, &metrics, &shutdown,
                );
                spawn_sink::<store::sink::Trends>(
                    tasks,
                    "sink-trends",
                    &config,
                    store,
                    &metrics,
                    &shutdown,
                );
                spawn_sink::<store::sink::Alerts>(
                    tasks,
                    "sink-alerts",
                    &config,
                    store,
                    &metrics,
                    &shutdown,
                );
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
