//! Restarting a failed stage.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use tokio_util::sync::CancellationToken;

use super::{decide, Decision, StageError};
use crate::metrics::Metrics;

/// A stage that ran this long before failing was healthy: its next restart waits the shortest
/// backoff again instead of the doubled one.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Runs `stage` until `shutdown`, restarting it after an error that [`decide`] says to retry,
/// with a backoff that doubles up to 30 s and resets after a run of [`HEALTHY_AFTER`]. A
/// restarted stage resumes from its group's committed offsets, which cover only settled work.
/// Returns the error that stopped it for good, if any.
pub async fn supervise<F, Fut>(
    name: &'static str,
    metrics: &Metrics,
    shutdown: &CancellationToken,
    mut stage: F,
) -> Result<(), StageError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), StageError>>,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let e = match stage().await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if decide(&e) == Decision::Stop {
            tracing::error!(stage = name, error = %e, "Stage failed and cannot recover; stopping it");
            return Err(e);
        }
        if started.elapsed() >= HEALTHY_AFTER {
            backoff = FIRST_BACKOFF;
        }
        metrics.stage_restarts.inc();
        tracing::error!(stage = name, error = %e, retry_in_ms = backoff.as_millis() as u64, "Stage failed; restarting");
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn restarts_with_backoff_until_success_and_stops_on_a_fatal_error() {
        let metrics = Metrics::default();
        let shutdown = CancellationToken::new();
        let tries = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        supervise("t", &metrics, &shutdown, || async {
            if tries.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(StageError::kafka("deliver a record")(
                    rdkafka::error::KafkaError::Canceled,
                ))
            } else {
                Ok(())
            }
        })
        .await
        .unwrap();
        assert_eq!(tries.load(Ordering::SeqCst), 4);
        assert_eq!(metrics.stage_restarts.get(), 3);
        // 0.5 + 1 + 2 s of backoff.
        assert_eq!(started.elapsed(), Duration::from_millis(3500));

        // Three quick failures (0.5 + 1 + 2 s), a healthy minute, a failure: the backoff starts
        // again at 0.5 s instead of 4 s.
        let tries = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        supervise("t", &metrics, &shutdown, || async {
            let n = tries.fetch_add(1, Ordering::SeqCst);
            if n == 3 {
                tokio::time::sleep(HEALTHY_AFTER + Duration::from_secs(1)).await;
            }
            if n < 4 {
                Err(StageError::kafka("deliver a record")(
                    rdkafka::error::KafkaError::Canceled,
                ))
            } else {
                Ok(())
            }
        })
        .await
        .unwrap();
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(3500)
                + HEALTHY_AFTER
                + Duration::from_secs(1)
                + Duration::from_millis(500)
        );

        let fatal = supervise("t", &metrics, &shutdown, || async {
            Err(StageError::kafka("create a stage consumer")(
                rdkafka::error::KafkaError::ClientCreation("bad option".into()),
            ))
        })
        .await;
        assert!(fatal.is_err());
        assert_eq!(metrics.stage_restarts.get(), 7);
    }
}
