//! Any polling connector behind one type, and the loop that polls a configured source until
//! shutdown: what `gema run` does for each `[[sources]]` entry and the connector commands do
//! for their arguments.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::config::{SourceConfig, SourceKind};
use super::{bluesky, hn, mastodon, rss, ConnectorError, SourceReport};
use crate::kafka::{KafkaConfig, Topics};

/// Env var with a Mastodon access token, for instances that do not serve public timelines
/// anonymously.
pub const MASTODON_TOKEN_ENV: &str = "GEMA_MASTODON_TOKEN";
/// Env var with a Bluesky access token, for a service that does not serve search anonymously.
pub const BLUESKY_TOKEN_ENV: &str = "GEMA_BLUESKY_TOKEN";

/// A secret from the environment variable `name` (unset or empty: none); never logged.
fn token_from_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|t| !t.is_empty())
}

/// One of the polling connectors.
pub enum Poller {
    Rss(rss::Poller),
    Mastodon(mastodon::Poller),
    Hn(hn::Poller),
    Bluesky(bluesky::Poller),
}

impl Poller {
    /// The connector `source` names, with its state from `state` (tokens from the environment).
    pub async fn open(
        source: &SourceConfig,
        kafka: &KafkaConfig,
        topics: &Topics,
        state: &Path,
    ) -> Result<Poller, ConnectorError> {
        Ok(match source.kind {
            SourceKind::Rss => Poller::Rss(rss::Poller::new(kafka, topics, state).await?),
            SourceKind::Mastodon => {
                let token = token_from_env(MASTODON_TOKEN_ENV);
                Poller::Mastodon(
                    mastodon::Poller::new(kafka, topics, source.api(), token, state).await?,
                )
            }
            SourceKind::Hn => {
                Poller::Hn(hn::Poller::new(kafka, topics, source.api(), state).await?)
            }
            SourceKind::Bluesky => {
                let token = token_from_env(BLUESKY_TOKEN_ENV);
                Poller::Bluesky(
                    bluesky::Poller::new(kafka, topics, source.api(), token, state).await?,
                )
            }
        })
    }

    /// Polls every followed feed, tag or query once; a report each, named as the connector's
    /// command prints it.
    pub async fn poll(&mut self, follow: &[String]) -> Result<Vec<SourceReport>, ConnectorError> {
        let named = |reports: Vec<SourceReport>, prefix: &str| {
            reports
                .into_iter()
                .map(|r| SourceReport {
                    source: format!("{prefix}{}", r.source),
                    ..r
                })
                .collect()
        };
        Ok(match self {
            Poller::Rss(p) => p
                .poll(follow)
                .await?
                .into_iter()
                .map(|r| SourceReport {
                    source: format!("{} ({} items)", r.url, r.items),
                    sent: r.sent,
                    error: r.error,
                })
                .collect(),
            Poller::Mastodon(p) => named(p.poll(follow).await?, ""),
            Poller::Hn(p) => named(p.poll(follow).await?, "hn "),
            Poller::Bluesky(p) => named(p.poll(follow).await?, "bluesky "),
        })
    }
}

/// Polls `source` every `source.every()` until `shutdown`: each poll's reports are logged, a
/// poll that fails as a whole (Kafka away) is logged and tried again at the next interval, and a
/// connector that cannot even open (a bad state file) retries every minute, so one source never
/// stops the others or the pipeline.
pub async fn run_source(
    source: SourceConfig,
    kafka: KafkaConfig,
    state_dir: std::path::PathBuf,
    shutdown: CancellationToken,
) {
    let topics = kafka.topics();
    let state = source.state_path(&state_dir);
    let name = source.name.as_str();
    let mut poller = loop {
        match Poller::open(&source, &kafka, &topics, &state).await {
            Ok(p) => break p,
            Err(e) => {
                tracing::error!(source = name, error = %e, "Cannot start the source; retrying in 60 s");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
            }
        }
    };
    tracing::info!(
        source = name,
        kind = source.kind.name(),
        follow = source.follow.len(),
        every_s = source.every().as_secs(),
        "Source started"
    );
    loop {
        match poller.poll(&source.follow).await {
            Ok(reports) => {
                for r in reports {
                    match r.error {
                        None => {
                            tracing::info!(source = name, from = %r.source, sent = r.sent, "Polled")
                        }
                        Some(e) => {
                            tracing::warn!(source = name, from = %r.source, sent = r.sent, error = %e, "Poll failed")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(source = name, error = %e, "Poll failed; trying again next time")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(source.every()) => {}
        }
    }
}
