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
use gema::kafka::dlq::read_dead_letters;
use gema::kafka::{lag, Group, Topics};
use gema::metrics::Metrics;
use gema::pipeline::{Parts, Running, Stage};
use gema::store::{self, migrate::migrate, Store};
use tokio_util::sync::CancellationToken;

pub struct TestEnv {
    pub config: Config,
    pub topics: Topics,
    pub dir: tempfile::TempDir,
}

impl TestEnv {
    pub fn new(name: &str) -> TestEnv {
        // The stages' logs, when asked for (`RUST_LOG=gema=info cargo test -- --nocapture`).
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
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
        let dir = tempfile::tempdir().unwrap();
        // Trend detector snapshots stay with the test, not in the checkout's .gema/state.
        config.state_dir = dir.path().join("state");
        let topics = config.kafka.topics();
        TestEnv {
            config,
            topics,
            dir,
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

    /// Produces `mentions` to the enriched topic (keyed as the enrich stage keys them), each
    /// acknowledged before the next.
    pub async fn send_enriched(&self, mentions: &[gema::mention::EnrichedMention]) {
        let producer = gema::kafka::producer(&self.config.kafka).unwrap();
        for e in mentions {
            let json = serde_json::to_vec(e).unwrap();
            producer
                .send(
                    rdkafka::producer::FutureRecord::to(&self.topics.enriched)
                        .key(&e.key)
                        .payload(&json),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
        }
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
                &self.topics.group(Group::Enrich),
                &self.topics.raw,
            )
            .unwrap();
            let s = lag::group_lag(
                &self.config.kafka,
                &self.topics.group(Group::SinkMentions),
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

    /// `group` has committed everything in its input topic.
    pub async fn wait_lag(&self, group: Group, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let behind = lag::group_lag(
                &self.config.kafka,
                &self.topics.group(group),
                self.topics.input(group),
            )
            .unwrap();
            if behind == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{group:?} still {behind} behind after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every stage's group has committed all of its input and stayed so for 5 s (the trend
    /// stage closes its last buckets when input stops).
    pub async fn wait_all_drained(&self, timeout: Duration) {
        gema::pipeline::wait_for_drain(&self.config.kafka, timeout, Duration::from_secs(5))
            .await
            .unwrap();
    }

    /// Every record now in `topic`, as (key, payload), in order within each partition. Joins no
    /// group and commits nothing.
    pub fn read_topic(&self, topic: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::{Message, Offset, TopicPartitionList};
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.config.kafka.brokers)
            .set("group.id", "gema-test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in metadata.topics()[0].partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let end = lag::topic_size(&self.config.kafka, topic).unwrap();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while (out.len() as i64) < end {
            assert!(
                Instant::now() < deadline,
                "read {} of {end} from {topic}",
                out.len()
            );
            if let Some(m) = consumer.poll(Duration::from_millis(500)) {
                let m = m.unwrap();
                out.push((
                    m.key().unwrap_or_default().to_vec(),
                    m.payload().unwrap_or_default().to_vec(),
                ));
            }
        }
        // What the stages' idle check reads (gema::kafka::progress::fetched_end): the ends as
        // of the last fetch, here the whole (fresh, never truncated) topic.
        let fetched: i64 = metadata.topics()[0]
            .partitions()
            .iter()
            .map(|p| gema::kafka::progress::fetched_end(&consumer, topic, p.id()).unwrap_or(0))
            .sum();
        assert_eq!(fetched, end, "fetched ends of {topic}");
        out
    }

    /// Distinct dead letters, identified by their source partition and offset.
    pub fn dead_letters(&self) -> Vec<gema::kafka::dlq::DeadLetterRecord> {
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

/// Stages running in this process until [`Stages::stop`], started by the library's
/// `pipeline::start_with` as `gema run` starts them, with the built-in lexicon model.
pub struct Stages {
    pub metrics: Arc<Metrics>,
    running: Running,
}

impl Stages {
    /// Starts `stages` with the built-in model and the env's tracked queries.
    pub fn start_only(env: &TestEnv, store: &Store, stages: &[Stage]) -> Stages {
        let running = start_builtin(env, Some(store), stages);
        Stages {
            metrics: running.metrics.clone(),
            running,
        }
    }

    /// The enrich and mentions sink stages.
    pub fn start(env: &TestEnv, store: &Store) -> Stages {
        Self::start_only(env, store, &[Stage::Enrich, Stage::Sink])
    }

    /// Graceful stop: drain, flush, commit.
    pub async fn stop(self) -> Arc<Metrics> {
        self.running.stop().await.expect("the stages stop cleanly")
    }
}

/// Starts `stages` through the library's `pipeline::start_with`, as `gema run` starts them, with
/// the built-in lexicon model, the env's config and tracked queries, and `store` for the sink.
pub fn start_builtin(env: &TestEnv, store: Option<&Store>, stages: &[Stage]) -> Running {
    let mut config = env.config.clone();
    config.enrich.sentiment_model = "builtin".into();
    let metrics = Arc::new(Metrics::default());
    let parts = Parts {
        enricher: gema::pipeline::enricher(&config).expect("test queries compile"),
        store: store.cloned(),
        webhooks: gema::alerts::stage::webhooks(&config.alerts.webhooks, &metrics).unwrap(),
        metrics,
        shutdown: CancellationToken::new(),
    };
    gema::pipeline::start_with(&config, stages, parts)
}

/// Serves `app` on a free port of 127.0.0.1 for the rest of the test (a stand-in for a
/// platform's API); returns its base URL.
pub async fn serve_locally(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

pub type Received = Arc<std::sync::Mutex<Vec<(Vec<(String, String)>, Vec<u8>)>>>;

/// A minimal HTTP/1.1 endpoint on loopback that records every POST (headers, body) and
/// answers 200: a webhook target for the alert and incident tests.
pub async fn webhook_receiver() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let received: Received = Arc::default();
    let store = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let n = tokio::io::AsyncReadExt::read(&mut sock, &mut chunk)
                        .await
                        .unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let headers: Vec<(String, String)> = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    let len: usize = headers
                        .iter()
                        .find(|(k, _)| k == "content-length")
                        .map(|(_, v)| v.parse().unwrap())
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        let n = tokio::io::AsyncReadExt::read(&mut sock, &mut chunk)
                            .await
                            .unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let body = buf[end + 4..end + 4 + len].to_vec();
                    store.lock().unwrap().push((headers, body));
                    let _ = tokio::io::AsyncWriteExt::write_all(
                        &mut sock,
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
                    )
                    .await;
                    buf.drain(..end + 4 + len);
                }
            });
        }
    });
    (url, received)
}

/// The synthetic crisis feed (`gema synth`, seed 5: three brands over two hours of event time
/// from 2026-11-26T00:00Z, a NusaPay outage in it) of `count` mentions, replayed at `factor`×
/// through every stage into `store`; waits until every stage has committed, stops them and
/// returns their metrics.
pub async fn replay_synth_crisis(
    env: &TestEnv,
    store: &Store,
    count: usize,
    factor: f64,
) -> Arc<Metrics> {
    use gema::sources::replay::{replay, ReplayOptions, Speed};
    use gema::sources::synth::{generate, SynthOptions};
    let lines: Vec<Vec<u8>> = generate(&SynthOptions {
        seed: 5,
        count,
        start: "2026-11-26T00:00:00Z".parse().unwrap(),
        span: chrono::Duration::hours(2),
        malformed: 0,
    })
    .into_iter()
    .map(String::into_bytes)
    .collect();
    let path = env.feed(&lines);
    let stages = Stages::start_only(env, store, &Stage::ALL);
    let opts = ReplayOptions {
        path,
        speed: Speed::Factor(factor),
        retime: false,
        progress: None,
    };
    replay(&env.config.kafka, &env.topics, &opts).await.unwrap();
    env.wait_all_drained(Duration::from_secs(120)).await;
    stages.stop().await
}

/// The Python of `scripts/test-deps.sh` (`.gema/test-venv`) once `check` (Python code) exits 0
/// there; otherwise the test fails saying `what` is missing and how to install it.
pub fn test_python(check: &str, what: &str) -> PathBuf {
    let python =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".gema/test-venv/bin/python");
    let ok = python.exists()
        && std::process::Command::new(&python)
            .args(["-c", check])
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{what} not installed in {}: run scripts/test-deps.sh (or `make test-deps`) first",
        python.display()
    );
    python
}

/// A port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (up to 20 s) until something listens on `port` of 127.0.0.1; `what` names it if not.
pub fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
