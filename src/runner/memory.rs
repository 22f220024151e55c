//! Handing memory the process freed back to the operating system.
//!
//! After a backlog (a ClickHouse or broker outage, a replay) the stages free what they buffered,
//! but glibc's allocator keeps the freed pages in its arenas: a `gema run` that caught up after a
//! 30 s ClickHouse outage stayed at 2.3 times the memory of an undisturbed run. The pipeline asks
//! the allocator to return free pages every [`RELEASE_EVERY`].

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often freed memory is handed back.
pub const RELEASE_EVERY: Duration = Duration::from_secs(10);

/// Hands freed memory back every `period` until `shutdown`.
pub async fn release_every(period: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(period) => release(),
        }
    }
}

/// Returns the allocator's free pages to the operating system (glibc on Linux; elsewhere
/// nothing).
pub fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it only walks glibc's own heap under its locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
