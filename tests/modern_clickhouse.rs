//! gema on a current ClickHouse (26.9, PyPI `chdb-core`, in process behind
//! `scripts/chdb_server.py`) next to the live 18.16 server: the same seeded database and the same
//! replayed crisis through every stage on each, then every API route, CLI query command, report
//! format and status action on both. Every statement gema sent to 26.9 must have succeeded (the
//! failures are listed with their SQL and the engine's error), and each answer must equal
//! 18.16's. On 26.9 gema takes its modern-server path: schema validation (`RowBinaryWithNames-
//! AndTypes` fetches and inserts, `DESCRIBE TABLE` before each insert) and the writer's
//! `max_partitions_per_insert_block = 0`.
//!
//! Needs the Python of `scripts/test-deps.sh` (chdb-core and lz4 in `.gema/test-venv`) besides
//! the services; fails, not skips, without it.

mod common;
mod serve_harness;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use common::TestEnv;
use serde_json::Value;
use serve_harness::Server;

/// The engine the test-deps script pins.
const CHDB_VERSION: &str = "26.9.";

/// The Python of `scripts/test-deps.sh` with chdb-core and lz4, or a failure saying to run it.
fn chdb_python() -> PathBuf {
    common::test_python(
        &format!(
            "import chdb, lz4, sys; sys.exit(not chdb.__version__.startswith('{CHDB_VERSION}'))"
        ),
        &format!("chdb-core {CHDB_VERSION}x and lz4 are"),
    )
}

/// One statement as `scripts/chdb_server.py` logged it.
#[derive(Debug, serde::Deserialize)]
struct Logged {
    query: String,
    database: String,
    settings: std::collections::BTreeMap<String, String>,
    error: Option<String>,
}

/// ClickHouse 26.9 behind the HTTP interface, for this test only.
struct Modern {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Modern {
    fn start() -> Modern {
        let python = chdb_python();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("queries.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/chdb_server.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg("--log")
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("scripts/chdb_server.py did not start: {line:?}"));
        Modern {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        }
    }

    /// Everything sent to the engine so far for `database` (and the server-wide probes).
    fn logged(&self, database: &str) -> Vec<Logged> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Logged>(l).unwrap())
            .filter(|l| l.database == database || l.query.contains(database))
            .collect()
    }
}

impl Drop for Modern {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every GET of the API, with the parameters that choose another query or another branch of one
/// (the seeded rows are in the last 5 h, the replayed crisis on 2026-11-26).
const GETS: &[&str] = &[
    "/api/trends/top",
    "/api/trends/top?kind=hashtags",
    "/api/trends/top?kind=keywords&limit=5",
    "/api/trends/top?kind=handles&since=1h",
    "/api/trends/top?kind=hashtags&q=KOPI",
    "/api/trends/top?since=2026-11-26T00:00:00Z&until=2026-11-26T03:00:00Z",
    "/api/trends/top?since=2026-11-26T00:30:15Z&until=2026-11-26T03:31:07Z&limit=100",
    "/api/trends/top?kind=handles&since=2026-11-26T00:30:15Z&until=2026-11-26T03:31:07Z",
    "/api/trends/rising",
    "/api/trends/rising?since=2026-11-26T00:00:00Z&until=2026-11-26T03:00:00Z",
    "/api/mentions",
    "/api/mentions?sentiment=negative",
    "/api/mentions?sentiment=negative&since=6h",
    "/api/mentions?sentiment=negative&min_confidence=0.5",
    "/api/mentions?lang=en",
    "/api/mentions?platform=bluesky",
    "/api/mentions?q=REFUND",
    "/api/mentions?limit=4&offset=8",
    "/api/mentions?q=nusapay&since=2026-11-26T00:00:00Z&until=2026-11-26T03:00:00Z&limit=50",
    "/api/timeline?query=nusapay&since=6h&bucket=1h",
    "/api/timeline?query=nusapay&since=2h&bucket=15m",
    "/api/timeline?query=nusapay&since=2h&bucket=1m",
    "/api/timeline?query=nusapay&since=2026-11-26T00:00:00Z&until=2026-11-26T03:00:00Z&bucket=5m",
    "/api/timeline?query=unknown&since=2h&bucket=15m",
    "/api/share-of-voice",
    "/api/share-of-voice?since=2026-11-26T00:00:00Z&until=2026-11-27T00:00:00Z",
    "/api/queries",
    "/api/display",
    "/api/headline?since=6h",
    "/api/headline?since=4h",
    "/api/headline?since=2026-11-26T00:00:00Z&until=2026-11-26T03:00:00Z",
    "/api/authors/top?since=6h&limit=3",
    "/api/authors/top?since=6h&query=kopikita",
    "/api/authors/top?since=2026-11-26T00:00:00Z&until=2026-11-26T03:00:00Z",
    "/api/sources",
    "/api/alerts",
    "/api/alerts?kind=negative_spike",
    "/api/alerts?status=acknowledged",
    "/api/alerts?status=new",
    "/api/alerts?since=2026-11-26T00:00:00Z&until=2026-11-27T00:00:00Z&limit=100",
    "/api/incidents?since=2026-11-26T00:00:00Z&until=2026-11-27T00:00:00Z",
    "/api/incidents?since=2026-11-26T00:00:00Z&until=2026-11-27T00:00:00Z&status=acknowledged",
    "/healthz",
];

/// The seeded database and, through every stage, a replayed crisis (the synthetic feed of
/// tests/incidents.rs) on the server at `url`.
async fn side(url: &str) -> Server {
    let mut env = TestEnv::new("modern-ch");
    env.config.clickhouse.url = url.into();
    let s = Server::start_in(env, true).await;
    common::replay_synth_crisis(&s.env, &s.store, 1000, 1200.0).await;
    s
}

/// Numbers to 7 significant digits (Float32 sums print differently across versions), and
/// the window's ends left out.
fn normalise(v: &Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap();
            Value::String(format!("{:.6e}", f))
        }
        Value::Array(a) => Value::Array(a.iter().map(normalise).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| !CLOCK_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), normalise(v)))
                .collect(),
        ),
        _ => v.clone(),
    }
}

/// (status, body) of one request to each: 18.16 must answer 200 (or the expected 404 of an
/// unknown id), 26.9 the same.
fn compare(out: &mut Vec<String>, what: String, a: (u16, Value), b: (u16, Value)) {
    let (a, b) = ((a.0, normalise(&a.1)), (b.0, normalise(&b.1)));
    if a.0 != 200 && !(a.0 == 404 && (what.contains("nope") || what.contains("unknown"))) {
        out.push(format!("{what}: 18.16 answered {} {}", a.0, a.1));
    }
    if a != b {
        out.push(format!(
            "{what}\n  18.16: {} {}\n  26.9:  {} {}",
            a.0, a.1, b.0, b.1
        ));
    }
}

/// Fields read from the clock of the request (the window a duration ago ends now), not the data.
const CLOCK_FIELDS: &[&str] = &[
    "now",
    "now_local",
    "since",
    "since_local",
    "until",
    "until_local",
    "previous_since",
    "previous_since_local",
    "previous_until",
    "previous_until_local",
    // A correction's version is the clock's microseconds, its time the clock's.
    "version",
    "corrected_at",
    "corrected_at_local",
];

/// CLI output with [`CLOCK_FIELDS`] left out of its JSON lines.
fn without_clock(out: &str) -> String {
    out.lines()
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(v) if v.is_object() => normalise(&v).to_string(),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `gema <args>` on `s`'s database and topics; (success, stdout, stderr).
fn cli(s: &Server, config: &Path, args: &[&str]) -> (bool, String, String) {
    let c = &s.env.config;
    let out = Command::new(env!("CARGO_BIN_EXE_gema"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("GEMA_CLICKHOUSE_URL", &c.clickhouse.url)
        .env("GEMA_CLICKHOUSE_DATABASE", &c.clickhouse.database)
        .env("GEMA_KAFKA_BROKERS", &c.kafka.brokers)
        .env("GEMA_KAFKA_TOPIC_PREFIX", &c.kafka.topic_prefix)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const CLI: &[&[&str]] = &[
    &["trends", "--since", "6h"],
    &["trends", "--since", "6h", "--kind", "hashtags", "--json"],
    &["trends", "--since", "6h", "--kind", "handles", "--json"],
    &["trends", "--since", "6h", "--rising", "--json"],
    &[
        "trends",
        "--since",
        "2026-11-26T00:00:00Z",
        "--until",
        "2026-11-26T03:00:00Z",
        "--kind",
        "keywords",
        "--json",
    ],
    &["mentions", "--since", "6h"],
    &["mentions", "correct", "x:k0", "negative", "--by", "budi"],
    &["mentions", "corrections"],
    &["alerts", "reopen", "a2"],
    &["alerts"],
    &["incidents", "--since", "2026-11-26T00:00:00Z"],
    &[
        "report",
        "--since",
        "2026-11-26T00:00:00Z",
        "--until",
        "2026-11-26T03:00:00Z",
    ],
    &[
        "report",
        "--since",
        "2026-11-26T00:00:00Z",
        "--until",
        "2026-11-26T03:00:00Z",
        "--format",
        "csv",
    ],
    &["report", "--since", "6h", "--format", "html"],
    &["status"],
    &[
        "rollup",
        "--since",
        "2026-11-26T00:00:00Z",
        "--until",
        "2026-11-26T03:00:00Z",
    ],
    &["migrate"],
];

/// Copies every table of `from` (18.16) into `to` (26.9, migrated, empty), so both answer
/// from the same rows (the stages' own output depends on timing). Marked with a `log_comment`,
/// so these statements are not counted as gema's.
async fn copy_tables(from: &gema::store::Store, to: &gema::store::Store) {
    let tables: Vec<String> = from
        .client
        .query(
            "SELECT name FROM system.tables WHERE database = ? AND name != 'schema_migrations' \
             AND engine NOT LIKE '%View'",
        )
        .bind(from.database.as_str())
        .fetch_all()
        .await
        .unwrap();
    let writer = to.client.clone().with_setting("log_comment", COPY_COMMENT);
    for table in tables {
        // RowBinary, not text: 18.16 prints the zero DateTime as 0000-00-00 00:00:00.
        let columns: Vec<String> = from
            .client
            .query("SELECT name FROM system.columns WHERE database = ? AND table = ?")
            .bind(from.database.as_str())
            .bind(table.as_str())
            .fetch_all()
            .await
            .unwrap();
        let names = columns.join(", ");
        let rows = from
            .client
            .query(&format!("SELECT {names} FROM {table}"))
            .fetch_bytes("RowBinary")
            .unwrap()
            .collect()
            .await
            .unwrap();
        if rows.is_empty() {
            continue;
        }
        let mut insert =
            writer.insert_formatted_with(format!("INSERT INTO {table} ({names}) FORMAT RowBinary"));
        insert.send(rows).await.unwrap();
        insert.end().await.unwrap();
    }
}

const COPY_COMMENT: &str = "modern_clickhouse test: copy from 18.16";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_statement_gema_sends_runs_on_clickhouse_26_with_the_answers_of_18_16() {
    let started = Instant::now();
    let modern = Modern::start();
    let live_url = TestEnv::new("probe").config.clickhouse.url;
    // gema's whole write path on each: migrations, seeding, every stage.
    let (old, new) = tokio::join!(side(&live_url), side(&modern.url));
    assert!(
        old.store.version.starts_with("18."),
        "the live server is {}",
        old.store.version
    );
    assert!(
        new.store.version.starts_with(CHDB_VERSION),
        "chdb is {}",
        new.store.version
    );
    assert_eq!(
        new.store.count_mentions().await.unwrap(),
        old.store.count_mentions().await.unwrap(),
        "mentions stored by the stages"
    );
    // The read path compared on the same rows: 18.16's, copied.
    let copy = {
        let mut env = TestEnv::new("modern-ch-copy");
        env.config.clickhouse.url = modern.url.clone();
        let store = env.store().await;
        copy_tables(&old.store, &store).await;
        Server::open(env, store, true).await
    };

    let mut differences = Vec::new();

    // Every route, on both, twice where an answer depends on the minute it is asked in.
    for path in GETS {
        let own = new.get(path).await;
        if own.0 != 200 && !path.contains("unknown") {
            differences.push(format!(
                "GET {path} on 26.9's own data: {} {}",
                own.0, own.1
            ));
        }
        let (mut a, mut b) = (old.get(path).await, copy.get(path).await);
        if a != b {
            (a, b) = (old.get(path).await, copy.get(path).await);
        }
        compare(&mut differences, format!("GET {path}"), a, b);
    }

    // Status changes and what they read back.
    let incidents = old
        .get("/api/incidents?since=2026-11-26T00:00:00Z&until=2026-11-27T00:00:00Z")
        .await
        .1;
    let incident = incidents["items"][0]["id"].as_str().map(str::to_string);
    assert!(
        incident.is_some(),
        "the crisis made an incident: {incidents}"
    );
    let incident = incident.unwrap();
    for (path, body) in [
        ("/api/alerts/a1/acknowledge", Value::Null),
        ("/api/alerts/a2/resolve", Value::Null),
        ("/api/alerts/nope/acknowledge", Value::Null),
        (
            &*format!("/api/incidents/{incident}/acknowledge"),
            Value::Null,
        ),
        (
            "/api/mentions/x:n0/sentiment",
            serde_json::json!({"label": "neutral", "by": "ana"}),
        ),
        (
            "/api/classify",
            serde_json::json!({"texts": ["NusaPay gagal lagi"]}),
        ),
    ] {
        let a = old.post_json(path, &body).await;
        let b = copy.post_json(path, &body).await;
        compare(&mut differences, format!("POST {path}"), a, b);
    }
    for path in [
        "/api/alerts?status=acknowledged",
        "/api/alerts?status=resolved",
        "/api/mentions?sentiment=neutral",
        &*format!("/api/incidents/{incident}"),
        "/api/incidents?since=2026-11-26T00:00:00Z&until=2026-11-27T00:00:00Z&status=acknowledged",
    ] {
        let (a, b) = (old.get(path).await, copy.get(path).await);
        compare(
            &mut differences,
            format!("GET {path} after the changes"),
            a,
            b,
        );
    }

    // The CLI's query commands, reports and maintenance.
    let config = old.env.dir.path().join("gema.toml");
    std::fs::write(
        &config,
        "[[tracked]]\nname = \"nusapay\"\nquery = \"nusapay\"\n\n\
         [[tracked]]\nname = \"kopikita\"\nquery = \"kopikita\"\n",
    )
    .unwrap();
    for args in CLI {
        let a = cli(&old, &config, args);
        let b = cli(&copy, &config, args);
        let own = cli(&new, &config, args);
        if !own.0 {
            differences.push(format!(
                "gema {} on 26.9's own data: {}",
                args.join(" "),
                own.2
            ));
        }
        if !a.0 || !b.0 {
            differences.push(format!(
                "gema {}: 18.16 {} {}, 26.9 {} {}",
                args.join(" "),
                if a.0 { "succeeded" } else { "FAILED" },
                a.2,
                if b.0 { "succeeded" } else { "FAILED" },
                b.2
            ));
        }
        // Status and maintenance print the clock, the size of the engine's parts, the time of a
        // correction; the HTML report embeds a chart whose PNG encoding is not compared.
        let volatile = ["status", "migrate", "rollup"].contains(&args[0])
            || args.contains(&"html")
            || args.contains(&"correct");
        if !volatile && without_clock(&a.1) != without_clock(&b.1) {
            differences.push(format!(
                "gema {}\n  18.16:\n{}\n  26.9:\n{}",
                args.join(" "),
                a.1,
                b.1
            ));
        }
    }

    // Migrations on an older database (up to 0004, with a mention edited in it) on 26.9.
    let upgrade = {
        let mut env = TestEnv::new("modern-ch-upgrade");
        env.config.clickhouse.url = modern.url.clone();
        let store = gema::store::connect(&env.config.clickhouse).await.unwrap();
        gema::store::migrate::migrate_to(&store, 4).await.unwrap();
        let db = &store.database;
        store
            .client
            .query(&format!(
                "INSERT INTO {db}.mentions (key, platform, id, created_at, text, queries, version) \
                 VALUES ('x:1','x','1',toDateTime('2026-11-26 10:00:00','UTC'),'first',['q'],1), \
                 ('x:1','x','1',toDateTime('2026-11-26 10:05:00','UTC'),'edited',['q'],2)"
            ))
            .execute()
            .await
            .unwrap();
        gema::store::migrate::migrate(&store).await.unwrap();
        assert_eq!(store.count_mentions().await.unwrap(), 1);
        store
    };

    // What 26.9 refused, with the statement.
    let mut sent = BTreeSet::new();
    let mut failed = Vec::new();
    for db in [&new.store.database, &copy.store.database, &upgrade.database] {
        for l in modern
            .logged(db)
            .into_iter()
            .filter(|l| l.settings.get("log_comment").map(String::as_str) != Some(COPY_COMMENT))
        {
            if let Some(e) = &l.error {
                failed.push(format!("{}\n  -> {e}", l.query));
            }
            sent.insert(l.query);
        }
    }
    upgrade.drop_database().await.unwrap();
    old.stop().await;
    new.stop().await;
    copy.stop().await;
    println!(
        "{} distinct statements ran on ClickHouse 26.9 in {:.0?}",
        sent.len(),
        started.elapsed()
    );
    assert!(
        failed.is_empty(),
        "{} statement(s) failed on ClickHouse 26.9:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
    assert!(
        differences.is_empty(),
        "{} answer(s) differ between 18.16 and 26.9:\n{}",
        differences.len(),
        differences.join("\n\n")
    );
}
