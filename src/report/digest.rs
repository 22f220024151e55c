//! The daily digest: a task that sends the report of `[digest].since` ending at the configured
//! time (`at` in `time_zone`, by default the display zone, daylight saving followed), once a
//! day, by email. `gema run` and `gema serve` start it when `digest.to` is set.
//!
//! The last send is remembered in `<state_dir>/<topic prefix>-digest.json`, so a restart does
//! not send again; when gema was not running at the time, the latest missed digest is sent when
//! it starts (older missed ones are skipped). A failed delivery is logged and retried with
//! backoff (30 s doubling to 30 min) until it succeeds or the next day's digest is due; it never
//! stops the pipeline. One process at a time sends (a lock beside the state file), so `gema run`
//! and `gema serve` side by side send one digest.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::config::Schedule;
use super::data::{build, ReportOptions};
use crate::config::Config;

/// What the state file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestState {
    /// The send time of the last digest delivered.
    pub last_slot: DateTime<Utc>,
    /// When it was delivered.
    pub sent_at: DateTime<Utc>,
}

/// The state file of `config`'s digest.
pub fn state_path(config: &Config) -> PathBuf {
    config
        .state_dir
        .join(format!("{}-digest.json", config.kafka.topic_prefix))
}

/// The state in `path`; `None` when there is none (or it cannot be read, which is logged).
pub fn read_state(path: &Path) -> Option<DigestState> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str(&text) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "Ignoring an unreadable digest state file");
            None
        }
    }
}

/// Writes `state` to `path` (a temporary file renamed over it).
pub fn write_state(path: &Path, state: &DigestState) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, path)
}

/// The digest due at `now`, if any: the latest send time at or before `now`, unless it was
/// sent already.
pub fn due(
    schedule: &Schedule,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let slot = schedule.at_or_before(now);
    match last {
        Some(last) if last >= slot => None,
        _ => Some(slot),
    }
}

/// How long to wait after the `failures`-th failed attempt in a row: 30 s, doubling, at most
/// 30 minutes.
pub fn backoff(failures: u32) -> Duration {
    let s = 30u64.saturating_mul(1 << failures.saturating_sub(1).min(10));
    Duration::from_secs(s.min(30 * 60))
}

/// Builds the report of the window ending at `slot` and emails it.
pub async fn send_for(config: &Config, slot: DateTime<Utc>) -> anyhow::Result<()> {
    let window = config.digest.window().map_err(anyhow::Error::msg)?;
    let store = crate::store::connect(&config.clickhouse).await?;
    let mut opts = ReportOptions::new(
        slot - window,
        slot,
        config.tracked.iter().map(|t| t.name.clone()).collect(),
    );
    opts.display = config.display.display()?;
    let report = build(&store, &opts).await?;
    super::email::send(&config.digest, &report).await?;
    Ok(())
}

/// Sends the digest every day until `shutdown` (see the module documentation). Returns at once
/// when the digest is off.
pub async fn run(config: Config, shutdown: CancellationToken) {
    if !config.digest.enabled() {
        return;
    }
    let path = state_path(&config);
    let _lock = loop {
        match crate::sources::run::SourceLock::take(&path) {
            Ok(lock) => break lock,
            Err(why) => {
                tracing::info!("Not sending the daily digest here: {why}; trying again in 60 s");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
            }
        }
    };
    let display = match config.display.display() {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "Not sending the daily digest: [display] does not validate");
            return;
        }
    };
    let schedule = config.digest.schedule(display.zone());
    let zone = (config.digest.utc_offset.clone())
        .or(config.digest.time_zone.clone())
        .unwrap_or_else(|| display.zone_name().to_string());
    tracing::info!(
        at = %config.digest.at,
        zone = %zone,
        next = %schedule.after(Utc::now()).to_rfc3339(),
        to = %config.digest.to.join(", "),
        "Daily digest scheduled"
    );
    let mut failures = 0u32;
    // After a failure, nothing is tried before this.
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        // Sleep a minute at most at a time: the wall clock may jump (suspend, NTP).
        let wait = match retry_at {
            Some(at) if at > tokio::time::Instant::now() => at - tokio::time::Instant::now(),
            _ => {
                let now = Utc::now();
                let last = read_state(&path).map(|s| s.last_slot);
                match due(&schedule, last, now) {
                    Some(slot) => {
                        match send_for(&config, slot).await {
                            Ok(()) => {
                                (failures, retry_at) = (0, None);
                                record(&path, slot);
                                tracing::info!(
                                    slot = %slot.to_rfc3339(),
                                    to = %config.digest.to.join(", "),
                                    "Daily digest sent"
                                );
                            }
                            Err(e) => {
                                failures = failures.saturating_add(1);
                                let wait = backoff(failures);
                                retry_at = Some(tokio::time::Instant::now() + wait);
                                tracing::error!(
                                    slot = %slot.to_rfc3339(),
                                    error = format!("{e:#}"),
                                    attempt = failures,
                                    retry_in_s = wait.as_secs(),
                                    "Could not send the daily digest"
                                );
                            }
                        }
                        continue;
                    }
                    None => (schedule.after(now) - now).to_std().unwrap_or_default(),
                }
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait.min(Duration::from_secs(60))) => {}
        }
    }
}

/// Records that the digest of `slot` was sent.
fn record(path: &Path, slot: DateTime<Utc>) {
    let state = DigestState {
        last_slot: slot,
        sent_at: Utc::now(),
    };
    if let Err(e) = write_state(path, &state) {
        tracing::error!(
            path = %path.display(),
            error = %e,
            "Could not record the digest sent: it may be sent again after a restart"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_slot_is_due_once() {
        let d = super::super::config::DigestConfig {
            to: vec!["a@example.com".into()],
            at: "08:00".into(),
            ..Default::default()
        }
        .schedule(chrono_tz::Tz::UTC);
        let now = t("2026-12-07T09:30:00Z");
        assert_eq!(
            due(&d, None, now),
            Some(t("2026-12-07T08:00:00Z")),
            "first start catches up"
        );
        assert_eq!(
            due(&d, Some(t("2026-12-07T08:00:00Z")), now),
            None,
            "sent already"
        );
        assert_eq!(
            due(&d, Some(t("2026-12-05T08:00:00Z")), now),
            Some(t("2026-12-07T08:00:00Z")),
            "only the latest missed one"
        );
        assert_eq!(
            due(
                &d,
                Some(t("2026-12-06T08:00:00Z")),
                t("2026-12-07T07:59:59Z")
            ),
            None
        );
    }

    #[test]
    fn backoff_doubles_to_half_an_hour() {
        let s: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(s, vec![30, 60, 120, 240, 480, 960, 1_800, 1_800, 1_800]);
        assert_eq!(backoff(u32::MAX).as_secs(), 1_800);
    }

    #[test]
    fn state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("p-digest.json");
        assert_eq!(read_state(&path), None);
        let s = DigestState {
            last_slot: t("2026-12-07T08:00:00Z"),
            sent_at: t("2026-12-07T08:00:03Z"),
        };
        write_state(&path, &s).unwrap();
        assert_eq!(read_state(&path), Some(s));
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(read_state(&path), None);
    }
}
