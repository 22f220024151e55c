//! Each running source's state, for `gema sources`, `gema status`, `/readyz`, `/metrics` and the
//! dashboard: a [`Tracker`] per source updates it as the connector polls or streams and writes
//! it to `<state>.health.json` beside the connector's cursor file, so another process (the CLI,
//! the server) reads the same facts with [`read`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::http::{Failure, FailureKind};
use super::{load_state, save_state, ConnectorError};

/// Where a source stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Opening (or never run: no health file yet).
    #[default]
    Starting,
    /// The last poll, or the stream, works.
    Ok,
    /// The platform asked it to wait (429, a spent quota) until `next_at`.
    RateLimited,
    /// The last attempt failed; backing off until `next_at`.
    Failing,
    /// Stopped for good: the platform refused the credential (see `last_error`).
    Stopped,
}

impl SourceState {
    pub fn name(self) -> &'static str {
        match self {
            SourceState::Starting => "starting",
            SourceState::Ok => "ok",
            SourceState::RateLimited => "rate_limited",
            SourceState::Failing => "failing",
            SourceState::Stopped => "stopped",
        }
    }
}

/// One source's facts, as `gema sources` shows them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Health {
    pub name: String,
    pub kind: String,
    pub state: SourceState,
    /// When this run of the source started.
    pub started_at: Option<DateTime<Utc>>,
    /// The last poll, or the last event or connection attempt of a stream.
    pub last_poll: Option<DateTime<Utc>>,
    /// The last poll that worked, or the last event of a stream.
    pub last_ok: Option<DateTime<Utc>>,
    /// The last failure's message (kept after recovery, with `last_error_at`).
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Failures since the source was first run.
    pub errors: u64,
    /// Mentions Kafka stored since the source was first run.
    pub sent: u64,
    /// Where the source will resume (a short description of its cursor).
    pub cursor: Option<String>,
    /// When it polls or reconnects next.
    pub next_at: Option<DateTime<Utc>>,
    /// The process running it.
    pub pid: u32,
    /// The last time this record was written.
    pub updated_at: Option<DateTime<Utc>>,
}

/// The health file of the source whose cursor file is `state`: `source-x.json` →
/// `source-x.health.json`.
pub fn health_path(state: &Path) -> PathBuf {
    state.with_extension("health.json")
}

/// The health written for the source whose cursor file is `state`; a source never run has none.
pub fn read(state: &Path) -> Result<Option<Health>, ConnectorError> {
    let path = health_path(state);
    if !path.exists() {
        return Ok(None);
    }
    load_state::<Health>(&path).map(Some)
}

/// One configured source as `gema sources`, `gema status`, `/readyz` and `/api/sources` show
/// it: its config, its last written health (`None`: never run), and whether the process that
/// wrote it is still alive.
#[derive(Debug, Clone, Serialize)]
pub struct SourceView {
    pub name: String,
    pub kind: String,
    /// What it follows (URLs, tags, queries, channels), as configured.
    pub follow: Vec<String>,
    pub health: Option<Health>,
    /// The process that wrote the health file is alive on this machine and rewrote it within
    /// [`STALE`].
    pub running: bool,
}

impl SourceView {
    /// The state to show: `never run`, `not running` (its process is gone), or its state.
    pub fn state(&self) -> &'static str {
        match &self.health {
            None => "never run",
            Some(h) if h.state == SourceState::Stopped => "stopped",
            Some(_) if !self.running => "not running",
            Some(h) => h.state.name(),
        }
    }

    /// A running source whose last poll or stream failed, or one stopped for good.
    pub fn is_unhealthy(&self) -> bool {
        matches!(self.state(), "failing" | "stopped")
    }
}

/// A health file not rewritten for this long belongs to a source that is not running (a
/// running one rewrites it at least every 30 s), whatever its pid says: the pid may be reused,
/// or be another container's.
pub const STALE: std::time::Duration = std::time::Duration::from_secs(120);

/// Whether process `pid` is alive on this machine.
fn alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    // SAFETY: signal 0 delivers nothing; kill only checks that the pid exists (EPERM: it
    // exists under another user).
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// `sources` (a config's `[[sources]]`) with their health, their state files under
/// `state_dir`.
pub fn views(sources: &[super::config::SourceConfig], state_dir: &Path) -> Vec<SourceView> {
    sources
        .iter()
        .map(|s| {
            let health = read(&s.state_path(state_dir)).ok().flatten();
            let fresh = |h: &Health| {
                h.updated_at.is_some_and(|t| {
                    Utc::now()
                        .signed_duration_since(t)
                        .to_std()
                        .unwrap_or_default()
                        < STALE
                })
            };
            let running = health.as_ref().is_some_and(|h| fresh(h) && alive(h.pid));
            SourceView {
                name: s.name.clone(),
                kind: s.kind.name().into(),
                follow: s.follow.clone(),
                health,
                running,
            }
        })
        .collect()
}

/// Keeps one running source's [`Health`] in memory and on disk, and its counters in the
/// process's metrics. Cheap to clone (one shared record).
#[derive(Clone)]
pub struct Tracker {
    inner: Arc<Mutex<Health>>,
    path: PathBuf,
    metrics: Arc<crate::metrics::Metrics>,
    /// Changed since the last write, and when that was (for [`Tracker::flush`]).
    written: Arc<Mutex<(bool, std::time::Instant)>>,
}

impl Tracker {
    /// A tracker for source `name` of `kind` whose cursor file is `state`; totals (sent,
    /// errors) carry on from its last health file.
    pub fn open(
        name: &str,
        kind: &str,
        state: &Path,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Tracker {
        let previous = read(state).ok().flatten().unwrap_or_default();
        let health = Health {
            name: name.to_string(),
            kind: kind.to_string(),
            state: SourceState::Starting,
            started_at: Some(Utc::now()),
            pid: std::process::id(),
            ..previous
        };
        metrics.source(name, kind, |s| s.up = false);
        let t = Tracker {
            inner: Arc::new(Mutex::new(health)),
            path: health_path(state),
            metrics,
            written: Arc::new(Mutex::new((false, std::time::Instant::now()))),
        };
        t.save();
        t
    }

    /// A copy of the record.
    pub fn get(&self) -> Health {
        self.inner.lock().unwrap().clone()
    }

    fn changed(&self) {
        self.written.lock().unwrap().0 = true;
    }

    fn update(&self, f: impl FnOnce(&mut Health)) {
        let (name, kind, state) = {
            let mut h = self.inner.lock().unwrap();
            f(&mut h);
            (h.name.clone(), h.kind.clone(), h.state)
        };
        self.changed();
        self.metrics
            .source(&name, &kind, |s| s.up = state == SourceState::Ok);
    }

    /// `n` more mentions stored by Kafka.
    pub fn sent(&self, n: u64) {
        if n == 0 {
            return;
        }
        let name = {
            let mut h = self.inner.lock().unwrap();
            h.sent += n;
            h.last_ok = Some(Utc::now());
            h.name.clone()
        };
        self.changed();
        self.metrics.source(&name, "", |s| s.sent += n);
    }

    /// Where the source resumes from now.
    pub fn cursor(&self, cursor: impl Into<String>) {
        let c = cursor.into();
        self.update(|h| h.cursor = Some(c));
    }

    /// A poll, a connection or a stream event that worked.
    pub fn ok(&self) {
        let now = Utc::now();
        self.update(|h| {
            h.state = SourceState::Ok;
            h.last_poll = Some(now);
            h.last_ok = Some(now);
        });
    }

    /// A failure; the state follows its kind.
    pub fn failed(&self, f: &Failure) {
        let now = Utc::now();
        let name = {
            let mut h = self.inner.lock().unwrap();
            // Only `stop` stops a source: a refusal is a failure until the runner decides.
            h.state = match f.kind {
                FailureKind::RateLimited(_) => SourceState::RateLimited,
                _ => SourceState::Failing,
            };
            h.last_poll = Some(now);
            h.last_error = Some(f.message.clone());
            h.last_error_at = Some(now);
            h.errors += 1;
            h.name.clone()
        };
        self.changed();
        self.metrics.source(&name, "", |s| {
            s.errors += 1;
            s.up = false;
        });
    }

    /// Stopped for good (a refused credential): `message` says why and what to fix. The failure
    /// that led here was already counted.
    pub fn stop(&self, message: String) {
        let now = Utc::now();
        self.update(|h| {
            h.state = SourceState::Stopped;
            h.last_error = Some(message);
            h.last_error_at = Some(now);
            h.next_at = None;
        });
    }

    /// When the next poll or reconnection is due.
    pub fn next_in(&self, wait: std::time::Duration) {
        let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        self.update(|h| h.next_at = Some(at));
    }

    /// Writes the record when it changed since the last write, or when that write is older than
    /// `heartbeat` (so readers see the source is alive). The runner calls it every few seconds.
    pub fn flush(&self, heartbeat: std::time::Duration) {
        let due = {
            let w = self.written.lock().unwrap();
            w.0 || w.1.elapsed() >= heartbeat
        };
        if due {
            self.save();
        }
    }

    /// Writes the record to its health file (a failure to write is logged, never fatal: the
    /// source's work matters more than its report).
    pub fn save(&self) {
        *self.written.lock().unwrap() = (false, std::time::Instant::now());
        let h = {
            let mut h = self.inner.lock().unwrap();
            h.updated_at = Some(Utc::now());
            h.clone()
        };
        if let Err(e) = save_state(&self.path, &h) {
            tracing::warn!(source = %h.name, error = %e, "Cannot write the source's health file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_failures_and_totals_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("source-yt.json");
        assert_eq!(
            health_path(&state),
            dir.path().join("source-yt.health.json")
        );
        assert!(read(&state).unwrap().is_none());
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let t = Tracker::open("yt", "youtube", &state, metrics.clone());
        t.ok();
        t.sent(3);
        t.cursor("3 videos");
        t.failed(&Failure::new(
            FailureKind::RateLimited(std::time::Duration::from_secs(5)),
            "HTTP 429",
        ));
        t.save();
        let h = read(&state).unwrap().unwrap();
        assert_eq!(h.state, SourceState::RateLimited);
        assert_eq!((h.sent, h.errors), (3, 1));
        assert_eq!(h.cursor.as_deref(), Some("3 videos"));
        assert!(metrics
            .render()
            .contains("gema_source_sent_total{source=\"yt\",kind=\"youtube\"} 3"));

        let again = Tracker::open("yt", "youtube", &state, metrics);
        again.sent(2);
        again.failed(&Failure::new(FailureKind::Denied, "HTTP 403"));
        assert_eq!(again.get().state, SourceState::Failing);
        again.stop("HTTP 403; fix GEMA_YOUTUBE_API_KEY".into());
        again.save();
        let h = read(&state).unwrap().unwrap();
        assert_eq!((h.sent, h.errors, h.state), (5, 2, SourceState::Stopped));
    }
}
