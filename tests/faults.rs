//! The fault suite, on a Kafka broker and a ClickHouse server of its own (started with
//! `scripts/services.sh` on other ports, so killing them disturbs no other test).
//!
//! One feed (synthetic mentions with malformed lines of every kind mixed in) goes through the
//! four stages, each its own `gema` process, once undisturbed and then under each fault:
//! - every stage killed with SIGKILL mid-stream, twice, and restarted;
//! - the broker killed with SIGKILL mid-stream and restarted 5 s later;
//! - ClickHouse killed with SIGKILL mid-stream and restarted 30 s later;
//! - scale-out on real clusters (`scripts/cluster/`): a three-broker Kafka (replication factor 3,
//!   `min.insync.replicas` 2) and two ClickHouse replicas with ZooKeeper (`migrate` on the
//!   cluster). Mid-stream a second enrich, sink and trend-stage process join their groups, one
//!   broker is killed with SIGKILL and comes back, the added processes leave, and one replica is
//!   stopped and comes back. Both replicas must end like the undisturbed run. (The trend stage
//!   keeps the enrich watermark per raw partition: kept per enrich process, with a process not
//!   heard from for 10 s left out, a raw partition whose new reader started late was dropped
//!   as late and about one run in four ended with fewer trend rows.) The trend stage keeps a
//!   state per terms partition (`[trend_stage] state = "per-partition"`) in every run, so its
//!   partitions' states move between the two processes through the state topic, twice, and
//!   its SIGKILLs restore from that topic.
//!
//! Each run must end exactly like the undisturbed one: the same distinct mentions in ClickHouse
//! (one row each) and dead letters (together: every input line), the same trend rows, the same
//! alert candidates and delivered alerts (ids, and the counts of thread alerts); the stages drain
//! by themselves afterwards and stop cleanly on SIGTERM, upstream first. (The router's per-minute rate limit is off here: which alerts beyond
//! the limit go out at once and which wait for the digest depends on how records of different
//! partitions interleave, so two undisturbed runs differ there.)

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Duration as ChronoDuration;
use clickhouse::Row;
use common::TestEnv;
use gema::sources::replay::{replay, ReplayOptions, Speed};
use gema::sources::synth::{generate, SynthOptions};
use serde::Deserialize;

const KAFKA_PORT: u16 = 29092;
const CH_PORT: u16 = 28123;
const STAGES: [&str; 4] = ["enrich", "sink", "trends-stage", "router"];
/// The cluster's ports: brokers on BASE..BASE+2 (controllers 100 up); ClickHouse replicas.
/// Every port the suite listens on stays below Linux's ephemeral range (32768–60999 by
/// default): there an outgoing connection's local port can take it between the scripts'
/// "is it free" check and the server's bind (a replica exited at start-up that way in CI).
const CLUSTER_KAFKA_BASE: u16 = 26092;
const CLUSTER_CH_HTTP: [u16; 2] = [26123, 26124];

/// Kafka and ClickHouse of the suite's own, stopped when dropped.
struct Services {
    dir: tempfile::TempDir,
}

impl Services {
    fn start() -> Services {
        let dir = tempfile::tempdir().unwrap();
        // The broker jars the main services already resolved (make test starts them first).
        let main_state = std::env::var_os("GEMA_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".gema"));
        let libs = main_state.join("kafka/libs");
        if libs.join(".complete").exists() {
            std::fs::create_dir_all(dir.path().join("kafka")).unwrap();
            std::os::unix::fs::symlink(&libs, dir.path().join("kafka/libs")).unwrap();
        }
        let s = Services { dir };
        s.up();
        s
    }

    fn script(&self, action: &str) -> bool {
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services.sh"))
            .arg(action)
            .env("GEMA_STATE_DIR", self.dir.path())
            .env("GEMA_KAFKA_PORT", KAFKA_PORT.to_string())
            .env("GEMA_KAFKA_CONTROLLER_PORT", (KAFKA_PORT + 1).to_string())
            .env("GEMA_CH_HTTP_PORT", CH_PORT.to_string())
            .env("GEMA_CH_TCP_PORT", (CH_PORT + 1).to_string())
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    /// Starts whichever of the two is down.
    fn up(&self) {
        assert!(self.script("up"), "the fault suite's own services start");
    }

    /// SIGKILL to `kafka` or `clickhouse`.
    fn kill(&self, which: &str) {
        let pid = std::fs::read_to_string(self.dir.path().join(which).join("pid")).unwrap();
        let status = Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -9 {which}");
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.script("down");
    }
}

/// A three-broker Kafka and two ClickHouse replicas with ZooKeeper (`scripts/cluster/`), on
/// ports and in a folder of the suite's own; stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let c = Cluster {
            dir: tempfile::tempdir().unwrap(),
        };
        // A node has exited during start-up here, once a Kafka node and once a ClickHouse
        // replica (when the ports were in the ephemeral range): show the logs and start afresh
        // once before giving up.
        for (which, logs, what) in [
            ("kafka", Cluster::KAFKA_LOGS, "the Kafka cluster starts"),
            (
                "clickhouse",
                Cluster::CLICKHOUSE_LOGS,
                "the ClickHouse replicas start",
            ),
        ] {
            let mut up = c.script(which, &["up"]);
            if !up {
                c.print_logs(logs);
                c.script(which, &["reset"]);
                up = c.script(which, &["up"]);
            }
            if !up {
                c.print_logs(logs);
            }
            assert!(up, "{what}");
        }
        c
    }

    /// Runs `scripts/cluster/<which>.sh <args>`; whether it succeeded.
    fn script(&self, which: &str, args: &[&str]) -> bool {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let main_state = std::env::var_os("GEMA_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".gema"));
        let [h1, h2] = CLUSTER_CH_HTTP;
        Command::new(root.join(format!("scripts/cluster/{which}.sh")))
            .args(args)
            .env("GEMA_STATE_DIR", self.dir.path())
            // The broker jars the main services already resolved (make test starts them first).
            .env("GEMA_KAFKA_LIBS", main_state.join("kafka/libs"))
            .env("GEMA_KCLUSTER_PORT_BASE", CLUSTER_KAFKA_BASE.to_string())
            .env("GEMA_ZK_PORT", "22181")
            .env("GEMA_CH1_HTTP_PORT", h1.to_string())
            .env("GEMA_CH1_TCP_PORT", "26000")
            .env("GEMA_CH1_INTERSERVER_PORT", "26009")
            .env("GEMA_CH2_HTTP_PORT", h2.to_string())
            .env("GEMA_CH2_TCP_PORT", "26001")
            .env("GEMA_CH2_INTERSERVER_PORT", "26010")
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    const KAFKA_LOGS: &[&str] = &[
        "kafka-cluster/node1/logs/stdout.log",
        "kafka-cluster/node1/logs/server.log",
        "kafka-cluster/node2/logs/stdout.log",
        "kafka-cluster/node2/logs/server.log",
        "kafka-cluster/node3/logs/stdout.log",
        "kafka-cluster/node3/logs/server.log",
    ];
    const CLICKHOUSE_LOGS: &[&str] = &[
        "zookeeper/logs/server.log",
        "ch-cluster/replica1/logs/stdout.log",
        "ch-cluster/replica1/logs/error.log",
        "ch-cluster/replica2/logs/stdout.log",
        "ch-cluster/replica2/logs/error.log",
    ];

    /// The end of each of these logs (paths in the cluster's folder), on stderr.
    fn print_logs(&self, files: &[&str]) {
        for file in files {
            let path = self.dir.path().join(file);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            eprintln!("--- {}:\n{tail}", path.display());
        }
    }

    fn bootstrap(&self) -> String {
        (0..3)
            .map(|i| format!("127.0.0.1:{}", CLUSTER_KAFKA_BASE + i))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.script("kafka", &["down"]);
        self.script("clickhouse", &["down"]);
    }
}

/// What a run leaves behind; equal for every run of the same feed.
#[derive(Debug, PartialEq)]
struct Outcome {
    mentions: u64,
    rows: u64,
    dead_letters: usize,
    trends: Vec<TrendRow>,
    candidates: BTreeSet<String>,
    /// Delivered alert ids with their (final) counts: a thread's comments grouped alike.
    delivered: Vec<(String, u32)>,
}

#[derive(Debug, PartialEq, Row, Deserialize)]
struct TrendRow {
    term: String,
    bucket_start: u32,
    count: u32,
    authors: u32,
    score: f32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    KillStages,
    KillBroker,
    KillClickHouse,
    /// On [`Cluster`]: instances added and removed, a broker killed, a replica stopped.
    ScaleOut,
}

/// The stages as processes of the gema binary, configured by `config`.
struct Processes {
    config: PathBuf,
    logs: PathBuf,
    running: Vec<(&'static str, Child)>,
}

impl Processes {
    fn start(config: PathBuf, logs: PathBuf) -> Processes {
        let mut p = Processes {
            config,
            logs,
            running: Vec::new(),
        };
        for stage in STAGES {
            p.spawn(stage);
        }
        p
    }

    fn spawn(&mut self, stage: &'static str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{stage}.log")))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gema"))
            .arg("--config")
            .arg(&self.config)
            .arg(stage)
            .env(
                "RUST_LOG",
                std::env::var("GEMA_FAULT_LOG_LEVEL").unwrap_or("gema=info,librdkafka=warn".into()),
            )
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the gema binary");
        self.running.push((stage, child));
    }

    /// SIGKILL to every stage (no drain, no commit, no snapshot), then starts them again.
    fn kill_and_restart(&mut self) {
        for (_, child) in &mut self.running {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        for (stage, _) in std::mem::take(&mut self.running) {
            self.spawn(stage);
        }
    }

    /// SIGTERM to the instance of `stage` started last, which must exit 0.
    fn stop_last(&mut self, stage: &str) {
        let i = self
            .running
            .iter()
            .rposition(|(s, _)| *s == stage)
            .expect("an instance of the stage runs");
        self.terminate(i);
    }

    /// SIGTERM to the `i`-th process, which must exit 0 (drained, flushed, committed).
    fn terminate(&mut self, i: usize) {
        let (stage, mut child) = self.running.remove(i);
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(
            child.wait().unwrap().success(),
            "gema {stage} exits 0 after SIGTERM (log: {})",
            self.logs.display()
        );
    }

    /// SIGTERM to `stages` (all when empty), one after the other in the order they run (the
    /// pipeline's); each must exit 0 (drained, flushed, committed).
    fn stop(&mut self, stages: &[&str]) {
        let mut i = 0;
        while i < self.running.len() {
            let stage = self.running[i].0;
            if !stages.is_empty() && !stages.contains(&stage) {
                i += 1;
                continue;
            }
            self.terminate(i);
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.running {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The feed: synthetic mentions over two hours with malformed lines mixed in.
fn feed() -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = generate(&SynthOptions {
        seed: 21,
        count: 6000,
        start: "2026-11-26T00:00:00Z".parse().unwrap(),
        span: ChronoDuration::hours(2),
        malformed: 20,
    })
    .into_iter()
    .map(String::into_bytes)
    .collect();
    let extra: Vec<Vec<u8>> = vec![
        b"\xff\xfe not utf-8 at all".to_vec(),
        br#"{"id":"noauthor","platform":"x","text":"who wrote this","created_at":"2026-11-26T00:00:00Z"}"#.to_vec(),
        br#"{"id":"old","platform":"x","text":"from 1900","created_at":"1900-01-01T00:00:00Z","author":{"id":"a","handle":"a"}}"#.to_vec(),
        format!("{}1{}", "[".repeat(100), "]".repeat(100)).into_bytes(),
        br#"[1,2,3]"#.to_vec(),
    ];
    for (i, l) in extra.into_iter().enumerate() {
        let at = (i + 1) * lines.len() / 6;
        lines.insert(at, l);
    }
    lines
}

fn config_file(env: &TestEnv) -> PathBuf {
    let path = env.dir.path().join("gema.toml");
    let c = &env.config;
    let toml = format!(
        r#"state_dir = "{state}"

[kafka]
brokers = "{brokers}"
topic_prefix = "{prefix}"
partitions = 3
replication_factor = {replication}
min_insync_replicas = {min_insync}

[clickhouse]
url = "{url}"
database = "{db}"
cluster = "{cluster}"

[sink]
period_ms = 300

[enrich]
sentiment_model = "builtin"

# A state per terms partition in the state topic, so trend-stage processes can come and go.
[trend_stage]
state = "per-partition"

# No per-minute rate limit: which of a wall-clock minute's alerts beyond the limit go out at once
# depends on how the partitions' records interleave, so runs differ even undisturbed.
[alerts.router]
max_per_minute = 1000000

[[tracked]]
name = "nusapay"
query = "nusapay OR @nusapay OR #nusapay*"

[[tracked]]
name = "kopikita"
query = "kopikita OR @kopikita OR #kopikita*"
"#,
        state = env.dir.path().join("state").display(),
        brokers = c.kafka.brokers,
        prefix = c.kafka.topic_prefix,
        url = c.clickhouse.url,
        db = c.clickhouse.database,
        replication = c.kafka.replication_factor,
        min_insync = c.kafka.min_insync_replicas,
        cluster = c.clickhouse.cluster,
    );
    std::fs::write(&path, toml).unwrap();
    path
}

/// Waits until `store` holds at least `n` distinct mentions.
async fn wait_stored(store: &gema::store::Store, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let stored = store.count_mentions().await.unwrap_or(0);
        if stored >= n {
            return;
        }
        assert!(Instant::now() < deadline, "only {stored} of {n} stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What `store` (and the alerts topic) hold at the end of a run.
async fn outcome(env: &TestEnv, store: &gema::store::Store) -> Outcome {
    let rows = store
        .client
        .query("SELECT count() FROM mentions FINAL WHERE deleted = 0")
        .fetch_one()
        .await
        .unwrap();
    let trends = store
        .client
        .query(
            "SELECT term, toUInt32(bucket_start) AS bucket_start, count, authors, \
             round(score, 3) AS score FROM trends FINAL ORDER BY term, bucket_start",
        )
        .fetch_all()
        .await
        .unwrap();
    let delivered: Vec<(String, u32)> = store
        .client
        .query("SELECT id, count FROM alerts FINAL ORDER BY id")
        .fetch_all()
        .await
        .unwrap();
    let candidates = env
        .read_topic(&env.topics.alerts_raw)
        .into_iter()
        .map(|(_, payload)| {
            let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    Outcome {
        mentions: store.count_mentions().await.unwrap(),
        rows,
        dead_letters: env.distinct_dead_letters(),
        trends,
        candidates,
        delivered,
    }
}

/// Where a run's stages talk to: the suite's own services, or the cluster.
enum Target<'a> {
    Services(&'a Services),
    Cluster(&'a Cluster),
}

async fn run(
    name: &str,
    lines: &[Vec<u8>],
    valid: u64,
    fault: Fault,
    target: Target<'_>,
) -> Outcome {
    let mut env = TestEnv::new(name);
    env.config.kafka.partitions = 3;
    match &target {
        Target::Services(_) => {
            env.config.kafka.brokers = format!("127.0.0.1:{KAFKA_PORT}");
            env.config.clickhouse.url = format!("http://127.0.0.1:{CH_PORT}");
        }
        Target::Cluster(cluster) => {
            env.config.kafka.brokers = cluster.bootstrap();
            env.config.kafka.replication_factor = 3;
            env.config.kafka.min_insync_replicas = 2;
            env.config.clickhouse.url = format!("http://127.0.0.1:{}", CLUSTER_CH_HTTP[0]);
            env.config.clickhouse.cluster = "gema_cluster".into();
        }
    }
    let store = env.store().await;
    gema::pipeline::migrate(&env.config).await.unwrap();
    // The whole feed is in Kafka before the stages start: the faults hit them mid-backlog.
    let summary = replay(
        &env.config.kafka,
        &env.topics,
        &ReplayOptions {
            path: env.feed(lines),
            speed: Speed::Max,
            retime: false,
            progress: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(summary.sent as usize, lines.len());
    // The stages' logs: kept where GEMA_FAULT_LOGS says (to read after a failure), else with
    // the test's temporary files.
    let logs = match std::env::var_os("GEMA_FAULT_LOGS") {
        Some(dir) => PathBuf::from(dir).join(name),
        None => env.dir.path().join("logs"),
    };
    std::fs::create_dir_all(&logs).unwrap();
    let mut stages = Processes::start(config_file(&env), logs);
    let started = Instant::now();
    let services = |what: &str| match &target {
        Target::Services(s) => *s,
        Target::Cluster(_) => panic!("{what} is a fault of the single-node services"),
    };
    match fault {
        Fault::None => {}
        Fault::ScaleOut => {
            let Target::Cluster(cluster) = &target else {
                panic!("scale-out runs on the cluster");
            };
            // Each step says how much was stored when it was done, to show it came mid-stream.
            let stored = || async { store.count_mentions().await.unwrap() };
            wait_stored(&store, valid / 10).await;
            stages.spawn("enrich");
            stages.spawn("sink");
            stages.spawn("trends-stage");
            eprintln!(
                "{name}: a second enrich, sink and trend stage joined at {} stored",
                stored().await
            );
            wait_stored(&store, valid / 4).await;
            assert!(cluster.script("kafka", &["kill-node", "2"]));
            eprintln!("{name}: broker 2 killed at {} stored", stored().await);
            wait_stored(&store, valid / 2).await;
            // The broker comes back before the added processes leave: an enrich process stopped
            // during the broker's outage once did not exit 0 (most likely its shutdown commit).
            assert!(cluster.script("kafka", &["start-node", "2"]));
            stages.stop_last("enrich");
            stages.stop_last("sink");
            stages.stop_last("trends-stage");
            eprintln!(
                "{name}: broker 2 back, the added processes left at {} stored",
                stored().await
            );
            assert!(cluster.script("clickhouse", &["stop-replica", "2"]));
            eprintln!("{name}: replica 2 stopped at {} stored", stored().await);
            tokio::time::sleep(Duration::from_secs(5)).await;
            assert!(cluster.script("clickhouse", &["start-replica", "2"]));
        }
        Fault::KillStages => {
            for share in [4, 2] {
                wait_stored(&store, valid / share).await;
                stages.kill_and_restart();
            }
        }
        Fault::KillBroker => {
            wait_stored(&store, valid / 3).await;
            services("KillBroker").kill("kafka");
            tokio::time::sleep(Duration::from_secs(5)).await;
            services("KillBroker").up();
        }
        Fault::KillClickHouse => {
            wait_stored(&store, valid / 3).await;
            services("KillClickHouse").kill("clickhouse");
            tokio::time::sleep(Duration::from_secs(30)).await;
            services("KillClickHouse").up();
        }
    }
    env.wait_all_drained(Duration::from_secs(240)).await;
    eprintln!(
        "{name}: drained {:?} after the stages started",
        started.elapsed()
    );
    // Upstream first: what the router flushes on its way out (thread counts whose window is
    // still open) reaches the sink before the sink stops.
    stages.stop(&["enrich", "trends-stage", "router"]);
    env.wait_all_drained(Duration::from_secs(120)).await;
    stages.stop(&[]);

    let outcome = outcome(&env, &store).await;
    if let Target::Cluster(_) = &target {
        // The other replica holds the same rows once replication has caught up.
        let mut second = env.config.clickhouse.clone();
        second.url = format!("http://127.0.0.1:{}", CLUSTER_CH_HTTP[1]);
        let replica = gema::store::connect(&second).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let seen = self::outcome(&env, &replica).await;
            if seen == outcome {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replica 2 differs from replica 1 after 90 s: {} vs {} mentions",
                seen.mentions,
                outcome.mentions
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        eprintln!("{name}: replica 2 caught up");
        // Nothing lost between the stages either: every valid mention is on the enriched topic
        // (a batch redelivered to another instance on a rebalance may be there twice; the table
        // keeps one row).
        let enriched = env.read_topic(&env.topics.enriched);
        let keys: BTreeSet<&[u8]> = enriched.iter().map(|(k, _)| k.as_slice()).collect();
        eprintln!(
            "{name}: enriched topic: {} records, {} distinct mentions",
            enriched.len(),
            keys.len()
        );
        assert_eq!(keys.len() as u64, valid);
    }
    if let Some(dir) = std::env::var_os("GEMA_FAULT_LOGS") {
        // What the alerts topic carried, for reading after a failure.
        let lines: Vec<String> = env
            .read_topic(&env.topics.alerts)
            .into_iter()
            .map(|(_, p)| {
                let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
                format!(
                    "{} {} {} {}",
                    v["id"], v["count"], v["detected_at"], v["event_time"]
                )
            })
            .collect();
        std::fs::write(
            PathBuf::from(dir).join(name).join("alerts.txt"),
            lines.join("\n"),
        )
        .unwrap();
    }
    env.cleanup(&store).await;
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_ends_like_an_undisturbed_run() {
    let services = Services::start();
    let lines = feed();
    let malformed = lines
        .iter()
        .filter(|l| gema::mention::Mention::parse(l).is_err())
        .count();
    let valid = (lines.len() - malformed) as u64;

    let control = run(
        "faults-control",
        &lines,
        valid,
        Fault::None,
        Target::Services(&services),
    )
    .await;
    assert_eq!((control.mentions, control.rows), (valid, valid));
    assert_eq!(
        control.dead_letters, malformed,
        "every malformed line is a dead letter"
    );
    assert!(control.trends.len() > 10, "{:?}", control.trends);
    assert!(control.delivered.len() > 10, "{:?}", control.delivered);

    for (name, fault) in [
        ("faults-kill", Fault::KillStages),
        ("faults-broker", Fault::KillBroker),
        ("faults-clickhouse", Fault::KillClickHouse),
    ] {
        let outcome = run(name, &lines, valid, fault, Target::Services(&services)).await;
        assert_eq!(outcome, control, "{fault:?} changed the outcome");
    }
    drop(services);

    let started = Instant::now();
    let cluster = Cluster::start();
    eprintln!("the cluster started in {:?}", started.elapsed());
    let outcome = run(
        "faults-scale-out",
        &lines,
        valid,
        Fault::ScaleOut,
        Target::Cluster(&cluster),
    )
    .await;
    assert_eq!(
        outcome, control,
        "scale-out on the cluster changed the outcome"
    );
}
