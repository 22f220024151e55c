//! `gema report` and the email digest end to end: mentions and alerts seeded through the real
//! stages (enrich, router, sink) on the real Kafka and ClickHouse, rising terms through the sink,
//! then the binary's report in each format checked against numbers computed here from what was
//! seeded, and the digest delivered to a real SMTP server (aiosmtpd, from
//! `scripts/test-deps.sh`), by `gema report --email` and by the daily scheduler.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Timelike, Utc};
use common::{Stages, TestEnv};
use gema::mention::Mention;
use gema::pipeline::Stage;
use gema::sentiment::Label;
use gema::sources::replay::{replay, ReplayOptions, Speed};
use gema::tracked::TrackedQueryConfig;
use rdkafka::producer::FutureRecord;
use serde_json::{json, Value};

/// One seeded post.
struct Post {
    id: &'static str,
    /// Hours before `until`.
    hours_ago: i64,
    text: &'static str,
    followers: u64,
    /// What the built-in model must call it (checked before anything is counted).
    label: Label,
}

const POSTS: [Post; 12] = [
    // Current window.
    Post {
        id: "c1",
        hours_ago: 2,
        text: "nusapay is terrible, the worst app, I hate it and want a refund",
        followers: 50_000,
        label: Label::Negative,
    },
    Post {
        id: "c2",
        hours_ago: 3,
        text: "nusapay failed again, awful and broken service",
        followers: 1_200,
        label: Label::Negative,
    },
    Post {
        id: "c3",
        hours_ago: 5,
        text: "nusapay is great, I love how fast and excellent it is",
        followers: 300,
        label: Label::Positive,
    },
    Post {
        id: "c4",
        hours_ago: 7,
        text: "nusapay office opens at nine on monday",
        followers: 80,
        label: Label::Neutral,
    },
    Post {
        id: "c5",
        hours_ago: 9,
        text: "kopikita coffee is great, love it",
        followers: 700,
        label: Label::Positive,
    },
    Post {
        id: "c6",
        hours_ago: 20,
        text: "kopikita is awful, terrible bitter coffee, I hate it",
        followers: 40,
        label: Label::Negative,
    },
    // Previous window.
    Post {
        id: "p1",
        hours_ago: 26,
        text: "nusapay is great and excellent, I love it",
        followers: 2_000,
        label: Label::Positive,
    },
    Post {
        id: "p2",
        hours_ago: 30,
        text: "nusapay is terrible and broken, I hate it",
        followers: 500,
        label: Label::Negative,
    },
    Post {
        id: "p3",
        hours_ago: 40,
        text: "kopikita coffee is great, love it",
        followers: 100,
        label: Label::Positive,
    },
    Post {
        id: "p4",
        hours_ago: 44,
        text: "kopikita is great, excellent beans, love it",
        followers: 250,
        label: Label::Positive,
    },
    // Before both windows and after the report's end: never counted.
    Post {
        id: "o1",
        hours_ago: 60,
        text: "nusapay is terrible, I hate it",
        followers: 9_999_999,
        label: Label::Negative,
    },
    Post {
        id: "o2",
        hours_ago: -2,
        text: "nusapay is terrible, I hate it",
        followers: 9_999_999,
        label: Label::Negative,
    },
];

fn query_of(text: &str) -> &'static str {
    if text.contains("nusapay") {
        "nusapay"
    } else {
        "kopikita"
    }
}

fn mention(p: &Post, until: DateTime<Utc>) -> Mention {
    serde_json::from_value(json!({
        "id": p.id, "platform": "x", "text": p.text,
        "created_at": (until - ChronoDuration::hours(p.hours_ago)).to_rfc3339(),
        "author": {"id": format!("a-{}", p.id), "handle": format!("user_{}", p.id), "followers": p.followers},
        "url": format!("https://x.example/status/{}?ref=a&b=1", p.id),
    }))
    .unwrap()
}

/// Counts of one query over one window, from the seeded posts.
#[derive(Debug, Default, Clone, Copy)]
struct Expected {
    mentions: u64,
    negative: u64,
    positive: u64,
    scored: u64,
    reach: u64,
}

impl Expected {
    fn of(query: &str, from_h: i64, to_h: i64) -> Expected {
        let mut e = Expected::default();
        for p in POSTS.iter().filter(|p| query_of(p.text) == query) {
            if p.hours_ago > from_h && p.hours_ago <= to_h {
                e.mentions += 1;
                e.scored += 1;
                e.reach += p.followers;
                match p.label {
                    Label::Negative => e.negative += 1,
                    Label::Positive => e.positive += 1,
                    _ => {}
                }
            }
        }
        e
    }
    fn neg_share(&self) -> f64 {
        self.negative as f64 / self.scored as f64
    }
    fn net(&self) -> f64 {
        (self.positive as f64 - self.negative as f64) / self.scored as f64
    }
}

fn pct(now: u64, before: u64) -> f64 {
    (now as f64 - before as f64) / before as f64 * 100.0
}

/// A real SMTP server on 127.0.0.1 writing every message it receives into a Maildir.
struct SmtpServer {
    child: Child,
    port: u16,
    maildir: tempfile::TempDir,
    python: PathBuf,
}

impl SmtpServer {
    fn start() -> SmtpServer {
        let python = common::test_python("import aiosmtpd", "aiosmtpd is");
        let port = common::free_port();
        let maildir = tempfile::tempdir().unwrap();
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("box"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        common::wait_listening(port, "aiosmtpd");
        SmtpServer {
            child,
            port,
            maildir,
            python,
        }
    }

    fn messages(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.maildir.path().join("box/new"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Waits until `n` messages arrived.
    async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<PathBuf> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages after {timeout:?}",
                m.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A received message parsed by Python's `email` package: subject, to, and every leaf part
    /// (content type, Content-ID, decoded payload in base64).
    fn parse(&self, path: &Path) -> Value {
        let script = r#"
import base64, email, json, sys
from email import policy
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=policy.default)
parts = [{"type": p.get_content_type(), "cid": p.get("Content-ID", ""),
          "payload": base64.b64encode(p.get_payload(decode=True) or b"").decode()}
         for p in m.walk() if not p.is_multipart()]
print(json.dumps({"subject": str(m["Subject"]), "to": str(m["To"]), "from": str(m["From"]),
                  "type": m.get_content_type(), "parts": parts}))
"#;
        let out = Command::new(&self.python)
            .args(["-c", script])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn part<'a>(msg: &'a Value, ty: &str) -> Vec<u8> {
    let p: &'a Value = msg["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == ty)
        .unwrap_or_else(|| panic!("no {ty} part in {msg}"));
    base64::engine::general_purpose::STANDARD
        .decode(p["payload"].as_str().unwrap())
        .unwrap()
}

/// Width and height from a PNG's IHDR, after checking the signature.
fn png_dims(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
    (be(&png[16..20]), be(&png[20..24]))
}

/// The chart's size for two tracked queries (two panels of 90 px, a 12 px gap, 8 px margins).
const CHART: (u32, u32) = (720, 8 + 90 + 12 + 90 + 8);

/// Runs the gema binary with `config`; (success, stdout, stderr).
fn gema(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gema"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Parses the long CSV: (section, query, item, field) → value.
fn parse_csv(text: &str) -> HashMap<(String, String, String, String), String> {
    let mut rows = Vec::new();
    let (mut row, mut cell, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut cell)),
            ('\n', false) => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => cell.push(c),
        }
    }
    assert_eq!(rows[0], ["section", "query", "item", "field", "value"]);
    rows[1..]
        .iter()
        .map(|r| {
            assert_eq!(r.len(), 5, "{r:?}");
            (
                (r[0].clone(), r[1].clone(), r[2].clone(), r[3].clone()),
                r[4].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_in_every_format_and_the_digest_by_email() {
    let smtp = SmtpServer::start();
    let mut env = TestEnv::new("report");
    env.config.tracked = ["nusapay", "kopikita"]
        .map(|q| TrackedQueryConfig {
            name: q.into(),
            query: q.into(),
        })
        .to_vec();
    env.config.enrich.sentiment_model = "builtin".into();
    let store = env.store().await;
    gema::kafka::topics::ensure_topics(&env.config.kafka, &env.topics)
        .await
        .unwrap();

    // The report's window ends ten minutes from now, so the alerts the stages detect now are in it.
    let now = Utc::now().with_nanosecond(0).unwrap();
    let until = now + ChronoDuration::minutes(10);
    let since = until - ChronoDuration::hours(24);

    // The labels the counts below rely on are the built-in model's.
    let enricher = gema::pipeline::enricher(&env.config).unwrap();
    let mut confident_negatives: HashMap<&str, u64> = HashMap::new();
    for p in &POSTS {
        let e = enricher.enrich(mention(p, until));
        assert_eq!(e.sentiment.label, p.label, "{}: {:?}", p.text, e.sentiment);
        assert_eq!(e.queries, vec![query_of(p.text)], "{}", p.text);
        if p.label == Label::Negative && e.sentiment.confidence >= 0.5 {
            *confident_negatives.entry(query_of(p.text)).or_default() += 1;
        }
    }

    let stages = Stages::start_only(&env, &store, &[Stage::Enrich, Stage::Router, Stage::Sink]);
    let lines: Vec<Vec<u8>> = POSTS
        .iter()
        .map(|p| serde_json::to_vec(&mention(p, until)).unwrap())
        .collect();
    replay(
        &env.config.kafka,
        &env.topics,
        &ReplayOptions {
            path: env.feed(&lines),
            speed: Speed::Max,
            retime: false,
            progress: None,
        },
    )
    .await
    .unwrap();
    // Rising terms come from the trend stage's events; two are sent as it would send them, one
    // inside the window and one before it.
    let producer = gema::kafka::producer(&env.config.kafka).unwrap();
    for (term, hours_ago, score) in [("#nusapaydown", 3, 9.5), ("#oldnews", 30, 20.0)] {
        let start = until - ChronoDuration::hours(hours_ago);
        let event = json!({
            "term": term, "bucket_start": start, "bucket_end": start + ChronoDuration::minutes(5),
            "count": 25, "authors": 19, "baseline_mean": 1.5, "baseline_std": 0.8, "score": score,
            "sparkline": [1, 1, 2, 8, 25],
        });
        producer
            .send(
                FutureRecord::to(&env.topics.trends)
                    .key(term)
                    .payload(&event.to_string()),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    // Incidents come from the router's versions; one in the window (resolved inside it) and
    // one that ended the day before.
    for (id, opened_h, last_h, summary) in [
        (
            "inc-now",
            5,
            4,
            "nusapay: negative spike — 120 negative posts in 60 min (peak 9 a minute), driven by #nusapaydown; resolved",
        ),
        ("inc-old", 40, 39, "nusapay: 7 negative posts in 10 min"),
    ] {
        let at = |h: i64| (until - ChronoDuration::hours(h)).duration_trunc(ChronoDuration::seconds(1)).unwrap();
        let incident = json!({
            "id": id, "query": "nusapay", "status": "resolved", "severity": "critical",
            "previous_severity": "high", "movement": "fading", "summary": summary,
            "negative_posts": 120, "peak_per_minute": 9, "alert_count": 130,
            "driving_terms": ["#nusapaydown", "saldo"], "trending_terms": ["#nusapaydown"],
            "samples": [{
                "key": "x:big", "text": "Saldo NusaPay hilang #NusaPayDown",
                "author_handle": "bigvoice", "author_followers": 250000,
                "url": "https://x.example/status/big", "created_at": at(opened_h),
            }],
            "alert_ids": ["c1"], "opened_at": at(opened_h), "last_event_at": at(last_h),
            "resolved_at": at(last_h) + ChronoDuration::minutes(30),
            "detected_at": at(last_h), "version": 3,
        });
        producer
            .send(
                FutureRecord::to(&env.topics.incidents)
                    .key(id)
                    .payload(&incident.to_string()),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    env.wait_drained(Duration::from_secs(120)).await;
    let want_alerts: u64 = confident_negatives.values().sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let alerts = gema::query::alerts::list(&store, since, until, None, None, 100)
            .await
            .unwrap();
        let trends =
            gema::query::trends::rising(&store, since - ChronoDuration::hours(24), until, 10)
                .await
                .unwrap();
        let incidents = gema::query::incidents::list(
            &store,
            since - ChronoDuration::hours(24),
            until,
            None,
            10,
        )
        .await
        .unwrap();
        if alerts.len() as u64 >= want_alerts && trends.len() == 2 && incidents.len() == 2 {
            assert_eq!(alerts.len() as u64, want_alerts);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} alerts, {} trends, {} incidents stored",
            alerts.len(),
            trends.len(),
            incidents.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stages.stop().await;

    let config_path = env.dir.path().join("gema.toml");
    let config_text = format!(
        "state_dir = {state:?}\n[kafka]\nbrokers = {brokers:?}\ntopic_prefix = {prefix:?}\n\
         [clickhouse]\nurl = {url:?}\ndatabase = {db:?}\n\
         [[tracked]]\nname = \"nusapay\"\nquery = \"nusapay\"\n[[tracked]]\nname = \"kopikita\"\nquery = \"kopikita\"\n\
         [digest]\nto = [\"team@example.com\", \"Boss <boss@example.com>\"]\nfrom = \"gema <gema@example.com>\"\n\
         host = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\ntimeout_s = 10\n",
        state = env.config.state_dir.display().to_string(),
        brokers = env.config.kafka.brokers,
        prefix = env.config.kafka.topic_prefix,
        url = env.config.clickhouse.url,
        db = env.config.clickhouse.database,
        port = smtp.port,
    );
    std::fs::write(&config_path, &config_text).unwrap();
    let window = [
        "--since",
        &since.to_rfc3339(),
        "--until",
        &until.to_rfc3339(),
    ]
    .map(String::from);
    let run = |format: &str| -> String {
        let out = env.dir.path().join(format!("report.{format}"));
        let mut args: Vec<&str> =
            vec!["report", "--format", format, "--out", out.to_str().unwrap()];
        args.extend(window.iter().map(String::as_str));
        let (ok, _, err) = gema(&config_path, &args);
        assert!(ok, "gema report --format {format}: {err}");
        std::fs::read_to_string(&out).unwrap()
    };

    let cur = |q| Expected::of(q, 0, 24);
    let prev = |q| Expected::of(q, 24, 48);
    let (n_cur, n_prev, k_cur, k_prev) = (
        cur("nusapay"),
        prev("nusapay"),
        cur("kopikita"),
        prev("kopikita"),
    );
    assert_eq!(
        (
            n_cur.mentions,
            n_prev.mentions,
            k_cur.mentions,
            k_prev.mentions
        ),
        (4, 2, 2, 2)
    );

    // CSV: every KPI and its change, alerts per query, negative posts in order, rising terms,
    // chart buckets adding up to the mentions.
    let csv = parse_csv(&run("csv"));
    let get = |s: &str, q: &str, i: &str, f: &str| -> String {
        csv.get(&(s.into(), q.into(), i.into(), f.into()))
            .unwrap_or_else(|| panic!("no {s}/{q}/{i}/{f} in the CSV"))
            .clone()
    };
    let num = |s: &str, q: &str, f: &str| -> f64 { get(s, q, "", f).parse().unwrap() };
    for (q, c, p) in [("nusapay", n_cur, n_prev), ("kopikita", k_cur, k_prev)] {
        assert_eq!(num("kpi", q, "mentions"), c.mentions as f64, "{q}");
        assert_eq!(num("kpi", q, "mentions_previous"), p.mentions as f64, "{q}");
        assert!(
            (num("kpi", q, "mentions_change_pct") - pct(c.mentions, p.mentions)).abs() < 1e-3,
            "{q}"
        );
        assert!(
            (num("kpi", q, "negative_share") - c.neg_share()).abs() < 1e-3,
            "{q}"
        );
        assert!(
            (num("kpi", q, "negative_share_previous") - p.neg_share()).abs() < 1e-3,
            "{q}"
        );
        assert!(
            (num("kpi", q, "negative_share_change_pp") - (c.neg_share() - p.neg_share()) * 100.0)
                .abs()
                < 1e-3,
            "{q}"
        );
        assert_eq!(num("kpi", q, "reach"), c.reach as f64, "{q}");
        assert_eq!(num("kpi", q, "reach_previous"), p.reach as f64, "{q}");
        assert!(
            (num("kpi", q, "reach_change_pct") - pct(c.reach, p.reach)).abs() < 1e-3,
            "{q}"
        );
        assert!(
            (num("kpi", q, "net_sentiment") - c.net()).abs() < 1e-3,
            "{q}"
        );
        assert!(
            (num("kpi", q, "net_sentiment_change") - (c.net() - p.net())).abs() < 1e-3,
            "{q}"
        );
        let chart_total: u64 = csv
            .iter()
            .filter(|((s, qq, _, f), _)| s == "chart" && qq == q && f == "total")
            .map(|(_, v)| v.parse::<u64>().unwrap())
            .sum();
        assert_eq!(
            chart_total, c.mentions,
            "{q}: chart buckets add up to the mentions"
        );
        let alerts = csv
            .keys()
            .filter(|(s, qq, _, f)| s == "alert" && qq == q && f == "kind")
            .count() as u64;
        assert_eq!(
            alerts,
            confident_negatives.get(q).copied().unwrap_or(0),
            "{q} alerts"
        );
    }
    // Negative posts: the window's, by reach; full text and link.
    let negatives: Vec<&Post> = {
        let mut v: Vec<&Post> = POSTS
            .iter()
            .filter(|p| p.label == Label::Negative && p.hours_ago > 0 && p.hours_ago <= 24)
            .collect();
        v.sort_by_key(|p| std::cmp::Reverse(p.followers));
        v
    };
    assert_eq!(negatives.len(), 3);
    for (rank, p) in negatives.iter().enumerate() {
        let key = format!("x:{}", p.id);
        let q = query_of(p.text);
        assert_eq!(
            get("negative_post", q, &key, "rank"),
            (rank + 1).to_string()
        );
        assert_eq!(get("negative_post", q, &key, "text"), p.text);
        assert_eq!(
            get("negative_post", q, &key, "url"),
            format!("https://x.example/status/{}?ref=a&b=1", p.id)
        );
        assert_eq!(
            get("negative_post", q, &key, "followers"),
            p.followers.to_string()
        );
    }
    assert!(!csv
        .keys()
        .any(|(s, _, i, _)| s == "negative_post" && (i == "x:o1" || i == "x:o2")));
    // The window's incident, not the one of the day before.
    let opened = (until - ChronoDuration::hours(5))
        .duration_trunc(ChronoDuration::seconds(1))
        .unwrap();
    assert_eq!(
        get("incident", "nusapay", "inc-now", "severity"),
        "critical"
    );
    assert_eq!(get("incident", "nusapay", "inc-now", "status"), "resolved");
    assert_eq!(
        get("incident", "nusapay", "inc-now", "opened_at"),
        opened.to_rfc3339()
    );
    assert_eq!(
        get("incident", "nusapay", "inc-now", "resolved_at"),
        (opened + ChronoDuration::minutes(90)).to_rfc3339()
    );
    assert_eq!(
        get("incident", "nusapay", "inc-now", "negative_posts"),
        "120"
    );
    assert_eq!(
        get("incident", "nusapay", "inc-now", "driving_terms"),
        "#nusapaydown;saldo"
    );
    assert!(get("incident", "nusapay", "inc-now", "summary")
        .starts_with("nusapay: negative spike — 120"));
    assert_eq!(
        get("incident", "nusapay", "inc-now", "top_post"),
        "https://x.example/status/big"
    );
    assert!(
        !csv.keys().any(|(_, _, i, _)| i == "inc-old"),
        "an incident that ended before the window"
    );
    assert_eq!(get("rising", "", "#nusapaydown", "rank"), "1");
    assert_eq!(get("rising", "", "#nusapaydown", "score"), "9.5000");
    assert!(
        !csv.keys().any(|(_, _, i, _)| i == "#oldnews"),
        "a burst before the window"
    );

    // Markdown: the KPI rows as computed here.
    let md = run("md");
    for (q, c, p) in [("nusapay", n_cur, n_prev), ("kopikita", k_cur, k_prev)] {
        let row = format!(
            "| {q} | {} | {:+.1}% | {:.1}% | {:+.1} pp | {} | {:+.1}% | {:+.2} | {:+.2} |",
            c.mentions,
            pct(c.mentions, p.mentions),
            c.neg_share() * 100.0,
            (c.neg_share() - p.neg_share()) * 100.0,
            c.reach,
            pct(c.reach, p.reach),
            c.net(),
            c.net() - p.net()
        );
        assert!(md.contains(&row), "{row}\nnot in\n{md}");
    }
    // The incident leads, before the alerts, with its summary and top post.
    let inc = md.find("## Incidents").expect("an incidents section");
    assert!(
        inc < md.find("## Alerts").unwrap(),
        "incidents before alerts"
    );
    assert!(
        md.contains("- **CRITICAL** nusapay — resolved, fading; opened "),
        "{md}"
    );
    assert!(
        md.contains("  nusapay: negative spike — 120 negative posts in 60 min"),
        "{md}"
    );
    assert!(
        md.contains("  top post: @bigvoice (250000 followers): Saldo NusaPay hilang #NusaPayDown [link](<https://x.example/status/big>)"),
        "{md}"
    );
    assert!(!md.contains("7 negative posts in 10 min"), "{md}");
    assert!(md.contains("### nusapay — negative_comment ("), "{md}");
    assert!(
        md.contains("[link](<https://x.example/status/c1?ref=a&b=1>)"),
        "{md}"
    );
    assert!(md.contains(&format!("   > {}", POSTS[0].text)), "{md}");
    let first = md.find("@user_c1").unwrap();
    assert!(
        first < md.find("@user_c2").unwrap()
            && md.find("@user_c2").unwrap() < md.find("@user_c6").unwrap(),
        "by reach"
    );

    // HTML: self-contained, links escaped, the chart a PNG of the expected size.
    let html = run("html");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains("<a href=\"https://x.example/status/c1?ref=a&amp;b=1\">link</a>"),
        "{html}"
    );
    assert!(html.contains(POSTS[1].text));
    assert!(
        html.contains("<h2>Incidents</h2>")
            && html.contains("nusapay: negative spike — 120 negative posts")
            && html.contains("<a href=\"https://x.example/status/big\">link</a>"),
        "{html}"
    );
    assert!(!html.contains("<script"));
    let prefix = "src=\"data:image/png;base64,";
    let b64 = &html[html.find(prefix).unwrap() + prefix.len()..];
    let png = base64::engine::general_purpose::STANDARD
        .decode(&b64[..b64.find('"').unwrap()])
        .unwrap();
    assert_eq!(png_dims(&png), CHART);
    assert!(
        html.contains("<b>nusapay</b> (max 1)"),
        "panels named with their scale"
    );

    // Default format and bad input.
    let (ok, out, err) = gema(&config_path, &["report", "--since", "24h"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("# gema report: "), "{out}");
    let (ok, _, err) = gema(&config_path, &["report", "--since", "yesterday"]);
    assert!(
        !ok && err.contains("yesterday") && err.contains("--since"),
        "{err}"
    );
    let (ok, _, err) = gema(&config_path, &["report", "--since", "1h", "--until", "2h"]);
    assert!(!ok && err.contains("is not before --until"), "{err}");
    let (ok, _, err) = gema(&config_path, &["report", "--format", "pdf"]);
    assert!(!ok && err.contains("pdf"), "{err}");

    // `gema report --email`: one message to both recipients, the HTML with the KPIs and the
    // chart as an inline image part.
    let mut args = vec!["report", "--email"];
    args.extend(window.iter().map(String::as_str));
    let (ok, _, err) = gema(&config_path, &args);
    assert!(ok, "gema report --email: {err}");
    let got = smtp.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1);
    let msg = smtp.parse(&got[0]);
    assert_eq!(
        msg["subject"],
        format!(
            "gema report: {} – {}",
            since.format("%Y-%m-%d %H:%M UTC"),
            until.format("%Y-%m-%d %H:%M UTC")
        )
    );
    let to = msg["to"].as_str().unwrap();
    assert!(
        to.contains("team@example.com") && to.contains("boss@example.com"),
        "{to}"
    );
    assert_eq!(msg["type"], "multipart/alternative");
    let html = String::from_utf8(part(&msg, "text/html")).unwrap();
    let kpi = |q: &str, c: Expected| format!("<tr><td>{q}</td><td class=\"n\">{}</td>", c.mentions);
    assert!(
        html.contains(&kpi("nusapay", n_cur)) && html.contains(&kpi("kopikita", k_cur)),
        "{html}"
    );
    assert!(html.contains("src=\"cid:chart\""), "{html}");
    let image = msg["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "image/png")
        .unwrap();
    assert_eq!(image["cid"], "<chart>");
    assert_eq!(png_dims(&part(&msg, "image/png")), CHART);
    assert!(String::from_utf8(part(&msg, "text/plain"))
        .unwrap()
        .contains("| nusapay | 4 |"));

    // The daily digest as `gema run` starts it, due now: sent once, remembered in the state dir,
    // not sent again after a restart.
    let mut config = gema::config::Config::load(Some(&config_path)).unwrap();
    // `at` is read in the display zone: this minute in Jakarta (UTC+7) is this minute's slot.
    config.display.time_zone = Some("Asia/Jakarta".into());
    let minute = Utc::now()
        .duration_trunc(ChronoDuration::minutes(1))
        .unwrap();
    config.digest.at = minute
        .with_timezone(&chrono_tz::Asia::Jakarta)
        .format("%H:%M")
        .to_string();
    config.enrich.sentiment_model = "builtin".into();
    let mut running = common::start_builtin(&env, Some(&store), &[]);
    running.start_digest(&config);
    let got = smtp.wait_for(2, Duration::from_secs(60)).await;
    let msg = smtp.parse(&got[1]);
    assert!(
        msg["subject"]
            .as_str()
            .unwrap()
            .starts_with("gema report: "),
        "{msg}"
    );
    assert_eq!(png_dims(&part(&msg, "image/png")), CHART);
    let state = gema::report::digest::read_state(&gema::report::digest::state_path(&config))
        .expect("the send is recorded");
    assert_eq!(state.last_slot, minute);
    running.stop().await.unwrap();
    let mut running = common::start_builtin(&env, Some(&store), &[]);
    running.start_digest(&config);
    tokio::time::sleep(Duration::from_secs(4)).await;
    running.stop().await.unwrap();
    assert_eq!(
        smtp.messages().len(),
        2,
        "a restart does not send the same digest again"
    );

    env.cleanup(&store).await;
}
