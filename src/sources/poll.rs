//! Any polling connector behind one type, and the loop that polls one until shutdown (what
//! [`super::run::run_source`] does for a polling `[[sources]]` entry, and the connector
//! commands for their arguments).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::config::{SourceConfig, SourceKind};
use super::env::SourceEnv;
use super::health::Tracker;
use super::http::{Backoff, Failure};
use super::{bluesky, hn, mastodon, reddit, rss, youtube, ConnectorError, SourceReport};

/// Env var with a Mastodon access token, for instances that do not serve public timelines
/// anonymously.
pub const MASTODON_TOKEN_ENV: &str = super::env::MASTODON_TOKEN;
/// Env var with a Bluesky access token, for a service that does not serve search anonymously.
pub const BLUESKY_TOKEN_ENV: &str = super::env::BLUESKY_TOKEN;

use super::env::token_from_env;

/// The secret in the environment variable `name`, which `who` cannot run without.
fn required_env(name: &str, who: &str) -> Result<String, ConnectorError> {
    token_from_env(name).ok_or_else(|| {
        ConnectorError::Config(format!(
            "{who} needs {name} to be set (it is unset or empty)"
        ))
    })
}

/// One of the polling connectors.
pub enum Poller {
    Rss(rss::Poller),
    Mastodon(mastodon::Poller),
    Hn(hn::Poller),
    Bluesky(bluesky::Poller),
    Youtube(youtube::Poller),
    Reddit(reddit::Poller),
}

impl Poller {
    /// The polling connector `source` names, with its state from its state file (tokens, keys
    /// and client credentials from the environment; YouTube and Reddit refuse to open without
    /// theirs, naming the variable).
    pub async fn open(source: &SourceConfig, env: &SourceEnv) -> Result<Poller, ConnectorError> {
        let (kafka, topics) = (&env.kafka, &env.kafka.topics());
        let state = &source.state_path(&env.state_dir);
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
            SourceKind::Youtube => {
                for f in &source.follow {
                    youtube::Target::parse(f).map_err(ConnectorError::Config)?;
                }
                let key = required_env(youtube::API_KEY_ENV, "the YouTube connector")?;
                let quota = source
                    .quota_per_day
                    .unwrap_or(youtube::DEFAULT_QUOTA_PER_DAY);
                Poller::Youtube(
                    youtube::Poller::new(kafka, topics, source.api(), key, quota, state).await?,
                )
            }
            SourceKind::Reddit => {
                let id = required_env(reddit::CLIENT_ID_ENV, "the Reddit connector")?;
                let secret = required_env(reddit::CLIENT_SECRET_ENV, "the Reddit connector")?;
                Poller::Reddit(
                    reddit::Poller::new(kafka, topics, source.api(), id, secret, state).await?,
                )
            }
            other => {
                return Err(ConnectorError::Config(format!(
                    "{} is not a polling connector",
                    other.name()
                )))
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
                    source: if r.unchanged {
                        format!("{} (not modified)", r.url)
                    } else {
                        format!("{} ({} items)", r.url, r.items)
                    },
                    sent: r.sent,
                    error: r.error,
                })
                .collect(),
            Poller::Mastodon(p) => named(p.poll(follow).await?, ""),
            Poller::Hn(p) => named(p.poll(follow).await?, "hn "),
            Poller::Bluesky(p) => named(p.poll(follow).await?, "bluesky "),
            Poller::Youtube(p) => named(p.poll(follow).await?, "youtube "),
            Poller::Reddit(p) => named(p.poll(follow).await?, "reddit "),
        })
    }
}

impl Poller {
    /// Where the connector stands (what it resumes from), for `gema sources`.
    pub fn cursor(&self) -> String {
        match self {
            Poller::Rss(p) => p.cursor(),
            Poller::Mastodon(p) => p.cursor(),
            Poller::Hn(p) => p.cursor(),
            Poller::Bluesky(p) => p.cursor(),
            Poller::Youtube(p) => p.cursor(),
            Poller::Reddit(p) => p.cursor(),
        }
    }
}

/// What a polling source follows: its `follow` entries, and for rss its preset's feeds.
pub fn followed(source: &SourceConfig, env: &SourceEnv) -> Vec<String> {
    let mut all: Vec<String> = source
        .follow
        .iter()
        .filter(|f| !f.trim().is_empty())
        .cloned()
        .collect();
    if let Some(p) = &source.preset {
        for url in super::presets::feeds(p, &env.tracked) {
            if !all.contains(&url) {
                all.push(url);
            }
        }
    }
    all
}

/// What the poll loop does after a round: how long to wait and why.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Poll again after this wait.
    Wait(Duration),
    /// A credential was refused: stop, with this message.
    Stop(String),
}

/// The wait after a round whose reports are `reports`: a refused credential stops the source
/// (naming `envs`), a rate limit waits as long as the platform asked (at least `every`),
/// a round where everything failed backs off (from 5 s, at most `every`), otherwise `every`.
/// A source with no credential (`envs` empty) never stops: a 401 / 403 there is a site's
/// refusal of that feed or query (a firewall, a paywall), which may pass.
pub fn after_round(
    reports: &[SourceReport],
    every: Duration,
    envs: &[&str],
    backoff: &mut Backoff,
) -> Next {
    if let Some(denied) = reports
        .iter()
        .filter_map(|r| r.error.as_ref())
        .find(|f| f.is_denied())
        .filter(|_| !envs.is_empty())
    {
        return Next::Stop(denied_message(denied, envs));
    }
    let rate = reports
        .iter()
        .filter_map(|r| r.error.as_ref().and_then(Failure::rate_limit))
        .max();
    let all_failed = !reports.is_empty() && reports.iter().all(|r| r.error.is_some());
    let wait = if all_failed && rate.is_none() {
        backoff.next_wait().min(every)
    } else {
        backoff.reset();
        every
    };
    Next::Wait(rate.map_or(wait, |r| r.max(wait)))
}

/// The message for a refused credential, naming where it comes from.
pub fn denied_message(f: &Failure, envs: &[&str]) -> String {
    format!(
        "{f}; the platform refused the credential in {}, so the source stops (fix it and restart)",
        envs.join(" / ")
    )
}

/// Polls `source` until `shutdown`: each round's reports are logged and counted in `tracker`,
/// then it waits as [`after_round`] says; a round that fails as a whole (Kafka away, a state
/// file that cannot be written) backs off and tries again.
pub async fn poll_loop(
    mut poller: Poller,
    source: &SourceConfig,
    env: &SourceEnv,
    tracker: &Tracker,
    shutdown: &CancellationToken,
) {
    let name = source.name.as_str();
    let follow = followed(source, env);
    let mut backoff = Backoff::new(Duration::from_secs(5), source.every());
    loop {
        let next = match poller.poll(&follow).await {
            Ok(reports) => {
                for r in &reports {
                    match &r.error {
                        None => {
                            tracing::info!(source = name, from = %r.source, sent = r.sent, "Polled")
                        }
                        Some(e) => {
                            tracing::warn!(source = name, from = %r.source, sent = r.sent, error = %e, "Poll failed")
                        }
                    }
                }
                tracker.sent(reports.iter().map(|r| r.sent as u64).sum());
                tracker.cursor(poller.cursor());
                let failures: Vec<&Failure> =
                    reports.iter().filter_map(|r| r.error.as_ref()).collect();
                if reports.iter().any(|r| r.error.is_none()) {
                    tracker.ok();
                }
                // A rate limit decides the state when there is one: the source waits for it.
                let mut failures = failures;
                failures.sort_by_key(|f| f.rate_limit().is_some());
                for f in failures {
                    tracker.failed(f);
                }
                after_round(
                    &reports,
                    source.every(),
                    source.kind.credential_envs(),
                    &mut backoff,
                )
            }
            Err(e) => {
                let f = Failure::transient(e.to_string());
                tracing::error!(source = name, error = %e, "Poll failed; backing off");
                tracker.failed(&f);
                Next::Wait(backoff.next_wait().min(source.every()))
            }
        };
        match next {
            Next::Stop(message) => {
                tracing::error!(source = name, "{message}");
                tracker.stop(message);
                tracker.save();
                return;
            }
            Next::Wait(wait) => {
                tracker.next_in(wait);
                tracker.save();
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::http::FailureKind;

    fn report(error: Option<Failure>) -> SourceReport {
        SourceReport {
            source: "q".into(),
            sent: 0,
            error,
        }
    }

    #[test]
    fn a_missing_credential_is_named() {
        let e = required_env("GEMA_TEST_NEVER_SET_7F3A", "the YouTube connector").unwrap_err();
        assert!(
            e.to_string()
                .contains("the YouTube connector needs GEMA_TEST_NEVER_SET_7F3A"),
            "{e}"
        );
    }

    #[test]
    fn a_round_decides_the_wait() {
        let every = Duration::from_secs(120);
        let mut b = Backoff::new(Duration::from_secs(5), every);
        assert_eq!(
            after_round(&[report(None)], every, &[], &mut b),
            Next::Wait(every)
        );
        // Everything failed: back off, growing, never past `every`.
        let bad = [report(Some(Failure::transient("HTTP 502")))];
        let Next::Wait(w1) = after_round(&bad, every, &[], &mut b) else {
            panic!()
        };
        assert!(w1 <= Duration::from_secs(5), "{w1:?}");
        for _ in 0..10 {
            after_round(&bad, every, &[], &mut b);
        }
        let Next::Wait(w) = after_round(&bad, every, &[], &mut b) else {
            panic!()
        };
        assert!(w <= every && w >= every / 2, "{w:?}");
        // A partly failed round polls at the normal rate.
        assert_eq!(
            after_round(&[report(None), bad[0].clone()], every, &[], &mut b),
            Next::Wait(every)
        );
        // A rate limit waits as long as asked (at least `every`).
        let limited = Failure::new(
            FailureKind::RateLimited(Duration::from_secs(600)),
            "HTTP 429",
        );
        assert_eq!(
            after_round(&[report(Some(limited))], every, &[], &mut b),
            Next::Wait(Duration::from_secs(600))
        );
        // A refused access without a credential (a site's firewall) backs off, never stops.
        let refused = Failure::new(FailureKind::Denied, "HTTP 403 Forbidden");
        assert!(matches!(
            after_round(&[report(Some(refused))], every, &[], &mut b),
            Next::Wait(_)
        ));
        // A refused credential stops the source, naming its variable.
        let denied = Failure::new(FailureKind::Denied, "HTTP 401 Unauthorized");
        let Next::Stop(m) = after_round(
            &[report(None), report(Some(denied))],
            every,
            &["GEMA_YOUTUBE_API_KEY"],
            &mut b,
        ) else {
            panic!()
        };
        assert!(
            m.contains("GEMA_YOUTUBE_API_KEY") && m.contains("401"),
            "{m}"
        );
    }
}
