//! Shared set-up for integration tests against the real Kafka and ClickHouse started by
//! `scripts/services.sh up` (addresses from GEMA_KAFKA_BROKERS / GEMA_CLICKHOUSE_URL, defaulting
//! to the script's). Each test gets its own topic prefix and database, so tests run in parallel
//! and can be re-run.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gema::config::Config;
use gema::enrich::dlq::read_dead_letters;
use gema::enrich::Enricher;
use gema::kafka::{lag, Topics};
use gema::metrics::Metrics;
use gema::pipeline::{spawn_stages, Deps, Stage};
use gema::sentiment::lexicon::LexiconModel;
use gema::store::{self, migrate::migrate, Store};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub struct TestEnv {
    pub config: Config,
    pub topics: Topics,
    pub dir: tempfile::TempDir,
}

impl TestEnv {
    pub fn new(name: &str) -> TestEnv {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
        let mut config = Config::default();
        if let Ok(b) = std::env::var("GEMA_KAFKA_BROKERS") {
            config.kafka.brokers = b;
        }
        if let Ok(u) = std::env::var("GEMA_CLICKHOUSE_URL") {
            config.clickhouse.url = u;
        }
        config.kafka.topic_prefix = format!("test-{name}-{id}");
        config.clickhouse.database = format!("test_{}_{id}", name.replace('-', "_"));
        config.sink.period_ms = 300;
        let topics = Topics::new(&config.kafka.topic_prefix);
        TestEnv {
            config,
            topics,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Connects to ClickHouse and applies the migrations to this test's database.
    pub async fn store(&self) -> Store {
        let store = store::connect(&self.config.clickhouse)
            .await
            .unwrap_or_else(|e| panic!("{e}\nStart the services first: scripts/services.sh up"));
        migrate(&store).await.unwrap();
        store
    }

    /// Writes `lines` (raw bytes, one per line) to a feed file.
    pub fn feed(&self, lines: &[Vec<u8>]) -> PathBuf {
        let path = self.dir.path().join("feed.jsonl");
        let mut f = std::fs::File::create(&path).unwrap();
        for l in lines {
            f.write_all(l).unwrap();
            f.write_all(b"\n").unwrap();
        }
        path
    }

    /// Both stages' committed offsets have reached the end of their input topics.
    pub async fn wait_drained(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let e = lag::group_lag(
                &self.config.kafka,
                &self.topics.group("enrich"),
                &self.topics.raw,
            )
            .unwrap();
            let s = lag::group_lag(
                &self.config.kafka,
                &self.topics.group("sink-ch"),
                &self.topics.enriched,
            )
            .unwrap();
            if e == 0 && s == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not drained after {timeout:?}: enrich lag {e}, sink lag {s}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every stage's group has committed all of its input and stayed so for 5 s (the trend
    /// stage closes its last buckets when input stops).
    pub async fn wait_all_drained(&self, timeout: Duration) {
        gema::pipeline::wait_for_drain(&self.config, timeout, Duration::from_secs(5))
            .await
            .unwrap();
    }

    /// Distinct dead letters, identified by their source partition and offset.
    pub fn dead_letters(&self) -> Vec<gema::enrich::dlq::DeadLetterRecord> {
        read_dead_letters(&self.config.kafka, &self.topics.dlq, usize::MAX).unwrap()
    }

    pub fn distinct_dead_letters(&self) -> usize {
        let set: std::collections::HashSet<(i32, i64)> = self
            .dead_letters()
            .iter()
            .map(|r| {
                let d = r
                    .dead_letter
                    .as_ref()
                    .expect("dead letters carry gema headers");
                (d.partition, d.offset)
            })
            .collect();
        set.len()
    }

    pub async fn cleanup(&self, store: &Store) {
        let _ = store.drop_database().await;
    }
}

/// The enrich and sink stages running in this process until [`Stages::stop`].
pub struct Stages {
    pub metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl Stages {
    /// Starts `stages` with the built-in model and the env's tracked queries.
    pub fn start_only(env: &TestEnv, store: &Store, stages: &[Stage]) -> Stages {
        let metrics = Arc::new(Metrics::default());
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let enricher = Enricher::new(Arc::new(LexiconModel))
            .with_queries(env.config.queries().expect("test queries compile"));
        let webhooks = gema::alerts::stage::webhooks(&env.config, &metrics).unwrap();
        let deps = Deps {
            config: env.config.clone(),
            enricher,
            store: Some(store.clone()),
            webhooks,
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
        };
        spawn_stages(&mut tasks, stages, &deps);
        Stages {
            metrics,
            shutdown,
            tasks,
        }
    }

    /// The enrich and mentions sink stages.
    pub fn start(env: &TestEnv, store: &Store) -> Stages {
        Self::start_only(env, store, &[Stage::Enrich, Stage::Sink])
    }

    /// Graceful stop: drain, flush, commit.
    pub async fn stop(mut self) -> Arc<Metrics> {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.metrics
    }
}

/// Serves `app` on a free port of 127.0.0.1 for the rest of the test (a stand-in for a
/// platform's API); returns its base URL.
pub async fn serve_locally(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}
