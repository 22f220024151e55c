//! Runs one `[[sources]]` entry until shutdown, whatever its [`Mode`]: a polling connector
//! polls ([`super::poll::poll_loop`]), a stream reconnects with backoff after every drop
//! ([`stream_loop`]), a listener serves the platform's calls. Its [`Tracker`] keeps the health
//! `gema sources` shows. A source that cannot open retries every minute, and one whose
//! credential is refused stops; neither stops the other sources or the pipeline.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::config::{Mode, SourceConfig, SourceKind};
use super::env::SourceEnv;
use super::health::Tracker;
use super::http::{Backoff, Failure};
use super::poll::{denied_message, poll_loop, Poller};
use super::{jetstream, mastodon_stream, meta, x, ConnectorError};

/// One of the streaming connectors.
pub enum Streamer {
    Jetstream(jetstream::Stream),
    X(x::Stream),
    MastodonStream(mastodon_stream::Stream),
}

impl Streamer {
    /// The streaming connector `source` names.
    pub async fn open(source: &SourceConfig, env: &SourceEnv) -> Result<Streamer, ConnectorError> {
        match source.kind {
            SourceKind::Jetstream => Ok(Streamer::Jetstream(
                jetstream::Stream::open(source, env).await?,
            )),
            SourceKind::X => Ok(Streamer::X(x::Stream::open(source, env).await?)),
            SourceKind::MastodonStream => Ok(Streamer::MastodonStream(
                mastodon_stream::Stream::open(source, env).await?,
            )),
            other => Err(ConnectorError::Config(format!(
                "{} is not a streaming connector",
                other.name()
            ))),
        }
    }

    /// One connection: connects, sends what arrives until the stream drops (the failure) or
    /// `shutdown` (`Ok`), counting in `tracker`.
    pub async fn session(
        &mut self,
        tracker: &Tracker,
        shutdown: &CancellationToken,
    ) -> Result<(), Failure> {
        match self {
            Streamer::Jetstream(s) => s.session(tracker, shutdown).await,
            Streamer::X(s) => s.session(tracker, shutdown).await,
            Streamer::MastodonStream(s) => s.session(tracker, shutdown).await,
        }
    }
}

/// Runs a listening connector until `shutdown`.
async fn listen(
    source: &SourceConfig,
    env: &SourceEnv,
    tracker: &Tracker,
    shutdown: &CancellationToken,
) -> Result<(), ConnectorError> {
    match source.kind {
        SourceKind::Meta => meta::listen(source, env, tracker, shutdown).await,
        other => Err(ConnectorError::Config(format!(
            "{} is not a listening connector",
            other.name()
        ))),
    }
}

/// A stream connection that lasted this long counts as working, even if quiet: the backoff
/// starts over after it drops.
const HELD_CONNECTION: Duration = Duration::from_secs(60);

/// How often a running source rewrites its health file even when nothing happens, so `gema
/// sources` can tell a live source from one whose process is gone ([`super::health::STALE`]).
const HEARTBEAT: Duration = Duration::from_secs(30);

/// How soon a change of a source's health (a mention sent, a connection made) reaches its
/// health file at the latest.
const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// Runs `source` until `shutdown` like [`run_source`], starting it again a minute after a
/// panic (a connector bug meeting unexpected platform input must not silence the source for
/// good); its health says what happened.
pub async fn supervise(source: SourceConfig, env: SourceEnv, shutdown: CancellationToken) {
    loop {
        let task = tokio::spawn(run_source(source.clone(), env.clone(), shutdown.clone()));
        match task.await {
            Err(e) if e.is_panic() => {
                let state = source.state_path(&env.state_dir);
                let tracker = Tracker::open(
                    &source.name,
                    source.kind.name(),
                    &state,
                    env.metrics.clone(),
                );
                let f = Failure::transient(
                    "the connector panicked (a bug: please report it with the log); \
                     restarting in 60 s",
                );
                tracing::error!(source = %source.name, error = %e, "Source panicked; restarting in 60 s");
                tracker.failed(&f);
                tracker.next_in(Duration::from_secs(60));
                tracker.save();
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
            }
            _ => return,
        }
    }
}

/// Keeps `streamer` connected until `shutdown`: after each drop it waits (the rate limit's
/// wait, else backoff with jitter from 1 s up to `every`, reset once a session delivered
/// mentions) and reconnects; a refused credential stops it.
pub async fn stream_loop(
    mut streamer: Streamer,
    source: &SourceConfig,
    tracker: &Tracker,
    shutdown: &CancellationToken,
) {
    let name = source.name.as_str();
    let envs = source.kind.credential_envs();
    let mut backoff = Backoff::new(Duration::from_secs(1), source.every());
    loop {
        let sent_before = tracker.get().sent;
        let started = std::time::Instant::now();
        let result = streamer.session(tracker, shutdown).await;
        tracker.save();
        if shutdown.is_cancelled() {
            return;
        }
        let f = result
            .err()
            .unwrap_or_else(|| Failure::transient("the stream ended"));
        tracker.failed(&f);
        if f.is_denied() && !envs.is_empty() {
            let message = denied_message(&f, envs);
            tracing::error!(source = name, "{message}");
            tracker.stop(message);
            tracker.save();
            return;
        }
        // A session that delivered, or held a while, was a working connection: start over.
        if tracker.get().sent > sent_before || started.elapsed() >= HELD_CONNECTION {
            backoff.reset();
        }
        let wait = f.rate_limit().unwrap_or_else(|| backoff.next_wait());
        tracing::warn!(source = name, error = %f, wait_s = wait.as_secs_f32(), "Stream dropped; reconnecting");
        tracker.next_in(wait);
        tracker.save();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Aborts the task when dropped (the heartbeat ends with its source, however that returns).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An exclusive lock on a source's `<state>.lock` file, held while the source runs in this
/// process: a second process configured with the same source (`gema run` and `gema serve
/// --sources` side by side) waits instead of polling twice and writing the same cursor file.
pub(crate) struct SourceLock(#[allow(dead_code)] std::fs::File);

impl SourceLock {
    /// Takes the lock, or says which process holds it.
    pub(crate) fn take(state: &std::path::Path) -> Result<SourceLock, String> {
        use std::io::{Read, Seek, Write};
        use std::os::fd::AsRawFd;
        let path = state.with_extension("lock");
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // SAFETY: flock on an open descriptor we own; LOCK_NB never blocks.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(format!(
                "already running in process {} ({} is locked)",
                holder.trim(),
                path.display()
            ));
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        Ok(SourceLock(file))
    }
}

/// Runs `source` until `shutdown` (see the module documentation).
pub async fn run_source(source: SourceConfig, env: SourceEnv, shutdown: CancellationToken) {
    let state = source.state_path(&env.state_dir);
    let name = source.name.as_str();
    let _lock = loop {
        match SourceLock::take(&state) {
            Ok(lock) => break lock,
            Err(why) => {
                tracing::error!(
                    source = name,
                    "Not starting the source: {why}; trying again in 60 s"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
            }
        }
    };
    let tracker = Tracker::open(name, source.kind.name(), &state, env.metrics.clone());
    let heartbeat = {
        let (tracker, shutdown) = (tracker.clone(), shutdown.child_token());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(FLUSH_EVERY) => tracker.flush(HEARTBEAT),
                }
            }
        })
    };
    let _stop_heartbeat = AbortOnDrop(heartbeat);
    tracing::info!(
        source = name,
        kind = source.kind.name(),
        follow = source.follow.len(),
        every_s = source.every().as_secs(),
        "Source starting"
    );
    loop {
        let opened = match source.kind.mode() {
            Mode::Poll => match Poller::open(&source, &env).await {
                Ok(p) => {
                    poll_loop(p, &source, &env, &tracker, &shutdown).await;
                    return;
                }
                Err(e) => e,
            },
            Mode::Stream => match Streamer::open(&source, &env).await {
                Ok(s) => {
                    stream_loop(s, &source, &tracker, &shutdown).await;
                    return;
                }
                Err(e) => e,
            },
            Mode::Listen => match listen(&source, &env, &tracker, &shutdown).await {
                Ok(()) => return,
                Err(e) => e,
            },
        };
        tracing::error!(source = name, error = %opened, "Cannot start the source; retrying in 60 s");
        tracker.failed(&Failure::transient(opened.to_string()));
        tracker.next_in(Duration::from_secs(60));
        tracker.save();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_runs_in_one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state/source-news.json");
        let first = SourceLock::take(&state).unwrap();
        let why = SourceLock::take(&state).err().unwrap();
        assert!(
            why.contains(&std::process::id().to_string()) && why.contains("source-news.lock"),
            "{why}"
        );
        drop(first);
        assert!(
            SourceLock::take(&state).is_ok(),
            "free once the holder is gone"
        );
    }
}
