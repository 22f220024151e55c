//! Starting stages: what each needs, built once from the config, each stage on a tokio task
//! under the runner's supervisor, and the handle that drains and stops them.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::alerts::stage::RouterStage;
use crate::alerts::webhook::Webhook;
use crate::config::{Config, ConfigError};
use crate::enrich::cascade::Cascade;
use crate::enrich::stage::EnrichStage;
use crate::enrich::Enricher;
use crate::kafka::topics::{ensure_topics, TopicError};
use crate::kafka::{KafkaConfig, Topics};
use crate::metrics::Metrics;
use crate::runner::{self, Handler, StageError};
use crate::sentiment::lexicon::LexiconModel;
use crate::sentiment::{FastModel, SentimentModel};
use crate::store::client::StoreError;
use crate::store::sink::{self, SinkStage, SinkTable};
use crate::store::{self, Store};
use crate::trends::stage::TrendStage;
use crate::trends::state::{DetectorSections, StateFiles};

/// Which stages to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// raw → enriched, terms, negative-comment alerts, dead letters.
    Enrich,
    /// enriched / trends / alerts topics → ClickHouse tables.
    Sink,
    /// terms → trend events and spike / emerging-trend alerts.
    Trends,
    /// alert candidates → delivered alerts and webhooks.
    Router,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Enrich, Stage::Sink, Stage::Trends, Stage::Router];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Enrich => "enrich",
            Stage::Sink => "sink",
            Stage::Trends => "trends",
            Stage::Router => "router",
        }
    }

    /// The stages named in `names` (`enrich`, `sink`, `trends`, `router`), in data-flow order.
    pub fn named(names: &[String]) -> Vec<Stage> {
        Stage::ALL
            .into_iter()
            .filter(|s| names.iter().any(|n| n == s.name()))
            .collect()
    }
}

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(
        "loading the sentiment model (enrich.sentiment_model / GEMA_SENTIMENT_MODEL = {path:?}; \
         run from the repository root, point it at the file, or use \"builtin\"): {source}"
    )]
    Model {
        path: String,
        source: crate::sentiment::ModelError,
    },
    #[error("starting the transformer tier ([enrich.cascade]): {0}")]
    Cascade(Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("creating the Kafka topics (is Kafka running? `scripts/services.sh up`): {0}")]
    Topics(#[from] TopicError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("alert webhooks ([[alerts.webhooks]]): {0}")]
    Webhook(String),
    #[error("a stage stopped: {0}")]
    Stage(#[from] StageError),
}

/// Loads the fast sentiment model at `path` (`enrich.sentiment_model`), naming the setting and
/// the path when it cannot.
fn load_fast(path: &str) -> Result<FastModel, PipelineError> {
    crate::sentiment::load_model(std::path::Path::new(path)).map_err(|source| {
        PipelineError::Model {
            path: path.into(),
            source,
        }
    })
}

/// The sentiment model named in the config, for `gema serve`'s `/api/classify`: the fast tier
/// (or the built-in lexicon), without the transformer.
pub fn sentiment_model(config: &Config) -> Result<Arc<dyn SentimentModel>, PipelineError> {
    Ok(match config.enrich.sentiment_model.as_str() {
        "builtin" => Arc::new(LexiconModel),
        path => Arc::new(load_fast(path)?),
    })
}

/// The enrich stage's enricher: the sentiment model named in the config loaded once (with the
/// transformer tier when `[enrich.cascade]` is on) and the tracked queries compiled, failing
/// fast with the path or the query's error position.
pub fn enricher(config: &Config) -> Result<Enricher, PipelineError> {
    let base = match config.enrich.sentiment_model.as_str() {
        "builtin" => Enricher::new(Arc::new(LexiconModel)),
        path => {
            let model = Arc::new(load_fast(path)?);
            let enricher = Enricher::new(model.clone());
            if config.enrich.cascade.enabled {
                let cascade = Cascade::start(&config.enrich.cascade, model)
                    .map_err(|e| PipelineError::Cascade(e.into()))?;
                enricher.with_cascade(cascade)
            } else {
                enricher
            }
        }
    };
    Ok(base.with_queries(config.queries()?))
}

/// The trend stage's detector sections and where `config` keeps its snapshot.
pub fn trend_state(config: &Config) -> (DetectorSections, StateFiles) {
    (
        DetectorSections {
            trends: config.trends.clone(),
            keywords: config.keywords.clone(),
            spikes: config.spikes.clone(),
        },
        StateFiles {
            dir: config.state_dir.clone(),
            prefix: config.kafka.topic_prefix.clone(),
        },
    )
}

/// What `gema migrate` did.
pub struct Migrated {
    pub store: Store,
    /// The migrations applied now (empty: up to date).
    pub applied: Vec<String>,
    pub topics: Topics,
}

/// Creates the ClickHouse database and tables (idempotent, versioned) and the Kafka topics.
pub async fn migrate(config: &Config) -> Result<Migrated, PipelineError> {
    let store = store::connect(&config.clickhouse).await?;
    let applied = store::migrate::migrate(&store).await?;
    let topics = config.kafka.topics();
    ensure_topics(&config.kafka, &topics).await?;
    Ok(Migrated {
        store,
        applied,
        topics,
    })
}

/// Everything the stages share, built once.
#[derive(Clone)]
pub struct Parts {
    pub enricher: Enricher,
    /// Needed by the sink.
    pub store: Option<Store>,
    /// Used by the router.
    pub webhooks: Vec<Webhook>,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
}

impl Parts {
    /// What `stages` need: the topics created, ClickHouse connected and migrated for the sink,
    /// the enricher, the webhooks' delivery tasks.
    pub async fn for_stages(config: &Config, stages: &[Stage]) -> Result<Parts, PipelineError> {
        let enricher = enricher(config)?;
        ensure_topics(&config.kafka, &config.kafka.topics()).await?;
        let store = if stages.contains(&Stage::Sink) {
            let store = store::connect(&config.clickhouse).await?;
            store::migrate::migrate(&store).await?;
            Some(store)
        } else {
            None
        };
        let metrics = Arc::new(Metrics::default());
        let webhooks = if stages.contains(&Stage::Router) {
            crate::alerts::stage::webhooks(&config.alerts.webhooks, &metrics)
                .map_err(PipelineError::Webhook)?
        } else {
            Vec::new()
        };
        Ok(Parts {
            enricher,
            store,
            webhooks,
            metrics,
            shutdown: CancellationToken::new(),
        })
    }
}

/// Starts `stages` with what the config names (see [`Parts::for_stages`]).
pub async fn start(config: &Config, stages: &[Stage]) -> Result<Running, PipelineError> {
    let parts = Parts::for_stages(config, stages).await?;
    Ok(start_with(config, stages, parts))
}

/// Starts `stages` with the given parts; they run until [`Running::stop`] (or the parts'
/// shutdown token is cancelled), each restarted by the supervisor after an error it can retry.
///
/// # Panics
/// When `stages` has the sink and `parts.store` is `None`.
pub fn start_with(config: &Config, stages: &[Stage], parts: Parts) -> Running {
    let mut tasks = JoinSet::new();
    let topics = config.kafka.topics();
    for stage in stages {
        let (stage_topics, metrics) = (topics.clone(), parts.metrics.clone());
        match stage {
            Stage::Enrich => {
                let (enricher, section) = (parts.enricher.clone(), config.enrich.clone());
                let rule = config.alerts.negative_comment.clone();
                spawn(&mut tasks, "enrich", config, &parts, move || {
                    EnrichStage::new(
                        enricher.clone(),
                        &section,
                        rule.clone(),
                        stage_topics.clone(),
                        metrics.clone(),
                    )
                });
            }
            Stage::Sink => {
                let store = parts
                    .store
                    .as_ref()
                    .expect("the sink stage needs a ClickHouse store");
                spawn_sink::<sink::Mentions>(&mut tasks, config, store, &parts);
                spawn_sink::<sink::Trends>(&mut tasks, config, store, &parts);
                spawn_sink::<sink::Alerts>(&mut tasks, config, store, &parts);
                spawn_sink::<sink::Incidents>(&mut tasks, config, store, &parts);
            }
            Stage::Trends => {
                let (sections, files) = trend_state(config);
                let (kafka, keeping) = (config.kafka.clone(), config.trend_stage.state);
                spawn(&mut tasks, "trends", config, &parts, move || {
                    TrendStage::new(
                        sections.clone(),
                        keeping,
                        files.clone(),
                        stage_topics.clone(),
                        &kafka,
                        metrics.clone(),
                    )
                });
            }
            Stage::Router => {
                let (router, webhooks) = (config.alerts.router.clone(), parts.webhooks.clone());
                let incidents = config.alerts.incidents.clone();
                let state_dir = config.state_dir.clone();
                spawn(&mut tasks, "router", config, &parts, move || {
                    RouterStage::new(
                        router.clone(),
                        incidents.clone(),
                        webhooks.clone(),
                        stage_topics.clone(),
                        metrics.clone(),
                        &state_dir,
                    )
                });
            }
        }
    }
    // Freed buffers (after an outage or a backlog) go back to the operating system.
    let shutdown = parts.shutdown.clone();
    tasks.spawn(async move {
        runner::memory::release_every(runner::memory::RELEASE_EVERY, shutdown).await;
        Ok(())
    });
    Running {
        kafka: config.kafka.clone(),
        topics,
        metrics: parts.metrics,
        store: parts.store,
        shutdown: parts.shutdown,
        tasks,
    }
}

/// Spawns one stage: the runner's loop around a handler from `make`, under the supervisor, which
/// makes a new handler for each restart.
fn spawn<H, F>(
    tasks: &mut JoinSet<Result<(), StageError>>,
    name: &'static str,
    config: &Config,
    parts: &Parts,
    make: F,
) where
    H: Handler + 'static,
    F: Fn() -> H + Send + Sync + 'static,
{
    let (kafka, topics) = (config.kafka.clone(), config.kafka.topics());
    let (metrics, shutdown) = (parts.metrics.clone(), parts.shutdown.clone());
    tasks.spawn(async move {
        runner::supervise(name, &metrics, &shutdown, || {
            runner::run(&kafka, &topics, make(), &metrics, &shutdown)
        })
        .await
    });
}

fn spawn_sink<T: SinkTable + Send + 'static>(
    tasks: &mut JoinSet<Result<(), StageError>>,
    config: &Config,
    store: &Store,
    parts: &Parts,
) {
    let (store, sink, metrics) = (store.clone(), config.sink.clone(), parts.metrics.clone());
    spawn(tasks, T::GROUP.suffix(), config, parts, move || {
        SinkStage::<T>::new(&sink, &store, metrics.clone())
    });
}

/// Stages running on tokio tasks.
pub struct Running {
    kafka: KafkaConfig,
    pub topics: Topics,
    pub metrics: Arc<Metrics>,
    /// The sink's ClickHouse store, when the sink runs.
    pub store: Option<Store>,
    shutdown: CancellationToken,
    tasks: JoinSet<Result<(), StageError>>,
}

impl Running {
    /// The token that stops every stage (e.g. for [`cancel_on_signal`]).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until every stage has committed everything in its input topic, and it stayed so for
    /// `settle` (see [`super::wait_for_drain`]).
    pub async fn wait_for_drain(&self, timeout: Duration, settle: Duration) -> Result<(), String> {
        super::wait_for_drain(&self.kafka, timeout, settle).await
    }

    /// Waits until the stages end: after the shutdown token is cancelled (drained, flushed and
    /// committed), or when one stops for good, which stops the others too and is the error.
    pub async fn join(&mut self) -> Result<(), StageError> {
        let mut first = None;
        while let Some(done) = self.tasks.join_next().await {
            if let Ok(Err(e)) = done {
                self.shutdown.cancel();
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Starts polling every `[[sources]]` connector of `config` on its own task (one failing
    /// source never stops the others); they stop with the stages.
    pub fn start_sources(&mut self, config: &Config) {
        let env = crate::sources::env::SourceEnv::new(
            &config.kafka,
            &config.state_dir,
            &config.tracked,
            self.metrics.clone(),
        );
        for source in &config.sources {
            let task =
                crate::sources::run::supervise(source.clone(), env.clone(), self.shutdown.clone());
            self.tasks.spawn(async move {
                task.await;
                Ok(())
            });
        }
    }

    /// Starts the daily email digest (`[digest]`) on its own task when it is on; it stops with
    /// the stages, and its failures are logged and retried, never stopping them.
    pub fn start_digest(&mut self, config: &Config) {
        if config.digest.enabled() {
            let task = crate::report::digest::run(config.clone(), self.shutdown.clone());
            self.tasks.spawn(async move {
                task.await;
                Ok(())
            });
        }
    }

    /// Stops every stage at once, without draining, flushing or committing: what a `kill -9`
    /// leaves behind (librdkafka's close still commits what was already stored). For fault tests.
    pub async fn abort(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Graceful stop: every stage drains, flushes and commits; returns the metrics.
    pub async fn stop(mut self) -> Result<Arc<Metrics>, StageError> {
        self.shutdown.cancel();
        self.join().await?;
        Ok(self.metrics)
    }
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
