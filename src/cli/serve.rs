//! `gema serve`: the HTTP API, live alert feed and dashboard (see `gema::server`).

use std::sync::Arc;

use anyhow::Context;
use gema::config::Config;
use gema::kafka::Topics;
use gema::metrics::Metrics;
use gema::pipeline::{self, Stage};
use gema::server::auth::Token;
use gema::server::sse::{run_consumer, Feed, FeedKind};
use gema::server::{AppState, Counters};
use gema::store::{self, migrate::migrate as apply_migrations};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Environment variable holding the API bearer token.
pub const TOKEN_ENV: &str = "GEMA_API_TOKEN";

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides `server.listen`, default 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<String>,
    /// Serve without any authentication. Only for a trusted loopback development setup: anyone
    /// who can reach the port reads every mention and can change alert status.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Also run these pipeline stages in this process, so /metrics shows their counters
    /// (comma separated: enrich, sink, trends, router). Default: none.
    #[arg(long, value_delimiter = ',', value_parser = ["enrich", "sink", "trends", "router"])]
    pub stages: Vec<String>,
}

/// A token usable as a bearer credential and a cookie value: 16 to 256 visible ASCII characters
/// other than `;`, `,`, `"` and `\`.
fn check_token(t: &str) -> anyhow::Result<()> {
    let ok = (16..=256).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'"' | b'\\'));
    anyhow::ensure!(
        ok,
        "{TOKEN_ENV} must be 16 to 256 visible ASCII characters without ; , \" or \\ \
         (e.g. `openssl rand -hex 32`)"
    );
    Ok(())
}

pub async fn run(config: &Config, args: &ServeArgs) -> anyhow::Result<()> {
    let mut server = config.server.clone();
    if let Some(l) = &args.listen {
        server.listen = l.clone();
    }
    server.validate().map_err(anyhow::Error::msg)?;
    let token = match std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()) {
        Some(t) => {
            check_token(&t)?;
            Some(Token::new(&t))
        }
        None if args.insecure_no_auth => {
            tracing::warn!("Serving WITHOUT authentication (--insecure-no-auth)");
            None
        }
        None => anyhow::bail!(
            "{TOKEN_ENV} is not set: set it to a secret token (e.g. `export {TOKEN_ENV}=$(openssl \
             rand -hex 32)`), or pass --insecure-no-auth for a trusted local setup"
        ),
    };

    // `/api/classify` asks the enrich stage's model: a missing or corrupt file stops start-up.
    let classifier = super::stages::sentiment_model(config)?;

    let stages: Vec<Stage> = Stage::ALL
        .into_iter()
        .filter(|s| args.stages.iter().any(|n| n == s.name()))
        .collect();
    let mut tasks = JoinSet::new();
    let (metrics, shutdown) = if stages.is_empty() {
        (Arc::new(Metrics::default()), CancellationToken::new())
    } else {
        let deps = super::stages::deps(config, &stages).await?;
        pipeline::spawn_stages(&mut tasks, &stages, &deps);
        (deps.metrics.clone(), deps.shutdown.clone())
    };
    pipeline::cancel_on_signal(shutdown.clone());

    let mut store = store::connect(&config.clickhouse).await?;
    apply_migrations(&store).await?;
    // A runaway API query must not hold ClickHouse: the server ends it (18.16 knows this setting).
    store.client = store
        .client
        .with_setting("max_execution_time", server.query_timeout_s.to_string());
    let feed = Arc::new(Feed::new(server.feed_ring_capacity));
    let mention_feed = Arc::new(Feed::new(server.feed_ring_capacity));
    let topics = Topics::new(&config.kafka.topic_prefix);
    // The webhook connector (`POST /api/ingest`) writes to the raw topic.
    let ingest = gema::server::ingest::Ingest::new(&config.kafka, &topics).with_context(|| {
        format!(
            "a Kafka producer for {} (/api/ingest)",
            config.kafka.brokers
        )
    })?;
    for (kind, topic, f) in [
        (FeedKind::Alerts, &topics.alerts, &feed),
        (FeedKind::NegativeMentions, &topics.enriched, &mention_feed),
    ] {
        tasks.spawn(run_consumer(
            config.kafka.clone(),
            kind,
            topic.clone(),
            server.feed_ring_capacity,
            f.clone(),
            shutdown.clone(),
        ));
    }
    let listener = tokio::net::TcpListener::bind(&server.listen)
        .await
        .with_context(|| format!("listening on {}", server.listen))?;
    eprintln!(
        "gema serve: http://{}/ (open /?token=<{TOKEN_ENV}> once in a browser)",
        listener.local_addr()?
    );
    let state = Arc::new(AppState {
        store,
        config: server,
        tracked: config.tracked.clone(),
        token,
        feed: feed.clone(),
        mention_feed: mention_feed.clone(),
        metrics,
        ingest: Some(Arc::new(ingest)),
        classifier,
        counters: Counters::default(),
    });
    let stop_feed = {
        let (shutdown, feed, mention_feed) = (shutdown.clone(), feed.clone(), mention_feed.clone());
        async move {
            shutdown.cancelled().await;
            feed.closed.cancel();
            mention_feed.closed.cancel();
        }
    };
    tokio::spawn(stop_feed);
    gema::server::serve(state, listener, shutdown).await?;
    while tasks.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_be_cookie_safe_and_long_enough() {
        assert!(check_token("0123456789abcdef").is_ok());
        assert!(check_token("short").is_err());
        assert!(check_token("0123456789abcdef;x").is_err());
        assert!(check_token("0123456789 abcdef").is_err());
    }
}
