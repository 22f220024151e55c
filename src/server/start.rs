//! Starting `gema serve`: the store, the live feeds' consumers, the webhook connector's producer,
//! optionally pipeline stages in the same process, and the HTTP listener. The binary and the
//! integration tests call the same [`start`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::auth::Token;
use super::config::ServerConfig;
use super::ingest::Ingest;
use super::sse::{run_consumer, Feed, FeedKind};
use super::{AppState, Counters};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pipeline::{self, PipelineError, Stage};
use crate::store::{self, client::StoreError};

/// How to serve, beyond the config's `[server]` section.
pub struct ServeOptions {
    /// `[server]`, with any command-line override applied.
    pub server: ServerConfig,
    /// The bearer token; `None` serves without authentication.
    pub token: Option<Token>,
    /// Pipeline stages to run in this process (their counters show on `/metrics`).
    pub stages: Vec<Stage>,
    /// Read the live feeds from Kafka and send `/api/ingest` to the raw topic. Without it the
    /// feeds stay empty and ingest answers 503 (an API over a database only).
    pub kafka: bool,
    /// Run the config's `[[sources]]` connectors in this process too.
    pub sources: bool,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] crate::setting::Invalid),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a Kafka producer for {brokers} (/api/ingest): {source}")]
    Ingest {
        brokers: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("listening on {listen}: {source}")]
    Listen {
        listen: String,
        source: std::io::Error,
    },
}

/// A server accepting connections.
pub struct RunningServer {
    /// The address it listens on (the real port when `listen` asked for port 0).
    pub addr: SocketAddr,
    /// Cancel to stop: open live-feed streams end, stages drain and commit.
    pub shutdown: CancellationToken,
    /// Ends once the server, its feed consumers and its stages have stopped.
    pub task: JoinHandle<std::io::Result<()>>,
}

/// Starts serving `config`'s database (migrated first) with `opts`.
pub async fn start(config: &Config, opts: ServeOptions) -> Result<RunningServer, ServeError> {
    let server = opts.server;
    server.validate().map_err(|e| e.within("server"))?;
    // `/api/classify` asks the enrich stage's model: a missing or corrupt file stops start-up.
    let classifier = pipeline::sentiment_model(config)?;
    let (running, metrics, shutdown) = if opts.stages.is_empty() {
        (None, Arc::new(Metrics::default()), CancellationToken::new())
    } else {
        let running = pipeline::start(config, &opts.stages).await?;
        let (metrics, shutdown) = (running.metrics.clone(), running.shutdown_token());
        (Some(running), metrics, shutdown)
    };

    let mut store = store::connect(&config.clickhouse).await?;
    store::migrate::migrate(&store).await?;
    // A runaway API query must not hold ClickHouse: the server ends it (18.16 knows this setting).
    store.client = store
        .client
        .with_setting("max_execution_time", server.query_timeout_s.to_string());
    let feed = Arc::new(Feed::new(server.feed_ring_capacity));
    let mention_feed = Arc::new(Feed::new(server.feed_ring_capacity));
    let incident_feed = Arc::new(Feed::new(server.feed_ring_capacity));
    let topics = config.kafka.topics();
    let mut consumers = Vec::new();
    let ingest = if opts.kafka {
        // The webhook connector (`POST /api/ingest`) writes to the raw topic.
        let ingest = Ingest::new(&config.kafka, &topics).map_err(|source| ServeError::Ingest {
            brokers: config.kafka.brokers.clone(),
            source,
        })?;
        for (kind, topic, f) in [
            (FeedKind::Alerts, &topics.alerts, &feed),
            (FeedKind::NegativeMentions, &topics.enriched, &mention_feed),
            (FeedKind::Incidents, &topics.incidents, &incident_feed),
        ] {
            consumers.push(tokio::spawn(run_consumer(
                config.kafka.clone(),
                kind,
                topic.clone(),
                server.feed_ring_capacity,
                f.clone(),
                shutdown.clone(),
            )));
        }
        Some(Arc::new(ingest))
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(&server.listen)
        .await
        .map_err(|source| ServeError::Listen {
            listen: server.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        listen: server.listen.clone(),
        source,
    })?;
    let state = Arc::new(AppState {
        store,
        config: server,
        tracked: config.tracked.clone(),
        token: opts.token,
        feed: feed.clone(),
        mention_feed: mention_feed.clone(),
        incident_feed: incident_feed.clone(),
        metrics,
        ingest,
        classifier,
        counters: Counters::default(),
        sources: config.sources.clone(),
        state_dir: config.state_dir.clone(),
        display: config.display(),
        trend_bucket_secs: crate::query::trends::bucket_secs(config.trends.bucket_ms),
    });
    let stop_feed = {
        let (shutdown, feed, mention_feed) = (shutdown.clone(), feed.clone(), mention_feed.clone());
        let incident_feed = incident_feed.clone();
        async move {
            shutdown.cancelled().await;
            feed.closed.cancel();
            mention_feed.closed.cancel();
            incident_feed.closed.cancel();
        }
    };
    tokio::spawn(stop_feed);
    let sources: Vec<_> = if opts.sources {
        let env = crate::sources::env::SourceEnv::new(
            &config.kafka,
            &config.state_dir,
            &config.tracked,
            state.metrics.clone(),
        );
        config
            .sources
            .iter()
            .map(|s| {
                tokio::spawn(crate::sources::run::supervise(
                    s.clone(),
                    env.clone(),
                    shutdown.clone(),
                ))
            })
            .collect()
    } else {
        Vec::new()
    };
    // The daily digest (`[digest]`), when on; with `gema run` beside it, one of them sends.
    let digest = config
        .digest
        .enabled()
        .then(|| tokio::spawn(crate::report::digest::run(config.clone(), shutdown.clone())));
    let serve_shutdown = shutdown.clone();
    let task = tokio::spawn(async move {
        let served = super::serve(state, listener, serve_shutdown).await;
        for c in consumers.into_iter().chain(sources).chain(digest) {
            let _ = c.await;
        }
        if let Some(running) = running {
            if let Err(e) = running.stop().await {
                tracing::error!(error = %e, "A stage stopped with an error");
            }
        }
        served
    });
    Ok(RunningServer {
        addr,
        shutdown,
        task,
    })
}
