//! A replayed crisis as a manager meets it, on the real Kafka and ClickHouse: a dashboard client
//! connected to `GET /api/feed/incidents` of `gema serve` before the crisis gets the incident as
//! it opens and grows (every version, in order, with the fields the dashboard draws), a client
//! reconnecting with `Last-Event-ID` gets exactly what it missed, and `gema incidents` shows it
//! (table with times in the configured zone, `--json`) and changes its status, with a clear
//! error for an id that does not exist.

mod common;
mod serve_harness;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as ChronoDuration, FixedOffset, Utc};
use gema::alerts::Incident;
use gema::query::incidents;
use gema::tracked::TrackedQueryConfig;
use serde_json::Value;
use serve_harness::*;

/// Runs the gema binary with `config`; (success, stdout, stderr).
fn gema(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gema"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_crisis_reaches_the_live_feed_and_the_cli() {
    let mut s = Server::start("incviews", true).await;
    wait_ready(&s).await;
    s.env.config.tracked = vec![
        TrackedQueryConfig {
            name: "nusapay".into(),
            query: "nusapay OR @nusapay OR #nusapay*".into(),
        },
        TrackedQueryConfig {
            name: "kopikita".into(),
            query: "kopikita OR @kopikita OR #kopikita*".into(),
        },
    ];

    // The dashboard is open before the crisis.
    let mut live = SseClient::connect_to(&s, "/api/feed/incidents", None).await;
    common::replay_synth_crisis(&s.env, &s.store, 2000, 600.0).await;

    let since = "2026-11-01T00:00:00Z".parse().unwrap();
    let until = Utc::now() + ChronoDuration::hours(1);
    let stored = incidents::list(&s.store, since, until, None, 100)
        .await
        .unwrap();
    let nusapay: Vec<_> = stored.iter().filter(|i| i.query == "nusapay").collect();
    assert_eq!(nusapay.len(), 1, "one incident for the brand: {stored:#?}");
    let inc = nusapay[0].clone();
    let versions_in_topic = s
        .env
        .read_topic(&s.env.topics.incidents)
        .into_iter()
        .filter(|(k, _)| k == inc.id.as_bytes())
        .count();

    // The open client got every version of it as it went out: opened, then updated, in order.
    let mut events: Vec<(String, Value)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while events
        .iter()
        .filter(|(_, v)| v["id"] == inc.id.as_str())
        .count()
        < versions_in_topic
    {
        assert!(
            Instant::now() < deadline,
            "{} of {versions_in_topic} versions of {} on the feed",
            events.len(),
            inc.id
        );
        let Some((event, id, data)) = live.next_event(Duration::from_secs(5)).await else {
            continue;
        };
        assert_eq!(event, "incident");
        events.push((id, serde_json::from_str(&data).unwrap()));
    }
    assert!(
        live.next_event(Duration::from_millis(500)).await.is_none(),
        "nothing more, nothing twice"
    );
    drop(live);
    let ours: Vec<&Value> = events
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v["id"] == inc.id.as_str())
        .collect();
    assert!(ours.len() >= 2, "opened, then updated: {ours:#?}");
    let versions: Vec<u64> = ours
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(
        versions,
        (1..=ours.len() as u64).collect::<Vec<_>>(),
        "every version, in order"
    );
    assert_eq!(ours[0]["status"], "open");
    assert_eq!(ours[0]["previous_severity"], Value::Null);
    // What the dashboard draws (assets/incidents.js), on every version.
    for v in &ours {
        let inc: Incident = serde_json::from_value((*v).clone()).expect("a whole incident");
        assert_eq!(inc.query, "nusapay");
        assert!(inc.summary.starts_with("nusapay: "), "{}", inc.summary);
        assert!(inc.alert_count >= 1);
        assert!(!inc.samples.is_empty());
        for sample in &inc.samples {
            assert!(sample.url.starts_with("https://"), "{sample:?}");
            assert!(!sample.author_handle.is_empty() && !sample.text.is_empty());
        }
        for key in ["severity", "status", "movement"] {
            assert!(v[key].is_string(), "{key} in {v}");
        }
    }
    // Severity only grows with the incident; the last version is what is stored.
    let last: Incident = serde_json::from_value(ours.last().unwrap().to_owned().clone()).unwrap();
    assert_eq!(
        (
            last.summary.as_str(),
            last.severity.as_str(),
            last.negative_posts,
            last.version,
            last.status.as_str()
        ),
        (
            inc.summary.as_str(),
            inc.severity.as_str(),
            inc.negative_posts,
            inc.version,
            inc.status.as_str()
        )
    );
    assert_eq!(inc.severity, "critical");
    assert!(last.driving_terms.iter().any(|t| t == "#nusapaydown"));

    // A client that reconnects with the id of the second event gets exactly the rest, in
    // order; with the last id, nothing.
    let mut again = SseClient::connect_to(&s, "/api/feed/incidents", Some(&events[1].0)).await;
    let mut rest = Vec::new();
    while let Some((_, id, _)) = again.next_event(Duration::from_millis(1500)).await {
        rest.push(id);
    }
    let want: Vec<String> = events[2..].iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(rest, want, "after Last-Event-ID: the rest, once each");
    drop(again);
    let mut caught_up =
        SseClient::connect_to(&s, "/api/feed/incidents", Some(&events.last().unwrap().0)).await;
    assert!(caught_up
        .next_event(Duration::from_millis(500))
        .await
        .is_none());
    drop(caught_up);

    // `gema incidents`, in the configured zone (Asia/Jakarta, UTC+7, no daylight saving).
    let config = s.env.dir.path().join("gema.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = {:?}\ntopic_prefix = {:?}\n[clickhouse]\nurl = {:?}\n\
             database = {:?}\n[display]\ntime_zone = \"Asia/Jakarta\"\n",
            s.env.config.kafka.brokers,
            s.env.config.kafka.topic_prefix,
            s.env.config.clickhouse.url,
            s.env.config.clickhouse.database,
        ),
    )
    .unwrap();
    let wib = FixedOffset::east_opt(7 * 3600).unwrap();
    let since_arg = "2026-11-01T00:00:00Z";
    let (ok, out, err) = gema(&config, &["incidents", "--since", since_arg]);
    assert!(ok, "{err}");
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    for col in [
        "severity",
        "status",
        "movement",
        "opened (Asia/Jakarta)",
        "last (Asia/Jakarta)",
        "id",
        "summary",
        "top post",
    ] {
        assert!(header.contains(col), "{col} in {header}");
    }
    let row = out
        .lines()
        .find(|l| l.contains(&inc.id))
        .unwrap_or_else(|| panic!("{} in\n{out}", inc.id));
    let local = |t: DateTime<Utc>| t.with_timezone(&wib).format("%m-%d %H:%M").to_string();
    assert!(
        row.starts_with(&format!("{}  ", inc.severity)) && row.contains(" open "),
        "{row}"
    );
    // The columns after severity, status and movement: opened, then last, both in WIB.
    let cells: Vec<&str> = row
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cells[3..5],
        [local(inc.opened_at), local(inc.last_event_at)],
        "opened and last in WIB ({} and {}): {row}",
        inc.opened_at,
        inc.last_event_at
    );
    assert!(
        row.contains(&inc.summary),
        "the whole summary, uncut: {row}"
    );
    let samples: Vec<gema::alerts::Sample> = serde_json::from_str(&inc.samples).unwrap();
    assert!(
        row.ends_with(&format!(
            "@{} ({}): {}",
            samples[0].author_handle, samples[0].author_followers, samples[0].url
        )),
        "the top post by reach: {row}"
    );

    // --json: one object a line; times in RFC 3339 beside their WIB form; samples an array.
    let (ok, out, err) = gema(&config, &["incidents", "--since", since_arg, "--json"]);
    assert!(ok, "{err}");
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), stored.len());
    let j = rows.iter().find(|r| r["id"] == inc.id.as_str()).unwrap();
    assert_eq!(
        (
            &j["summary"],
            &j["severity"],
            &j["status"],
            &j["negative_posts"]
        ),
        (
            &Value::from(inc.summary.clone()),
            &Value::from(inc.severity.clone()),
            &Value::from("open"),
            &Value::from(inc.negative_posts)
        )
    );
    let opened: DateTime<Utc> = j["opened_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(opened, inc.opened_at);
    assert_eq!(
        j["opened_at_local"],
        inc.opened_at
            .with_timezone(&wib)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    );
    assert_eq!(j["resolved_at"], Value::Null, "open: not resolved");
    assert_eq!(j["samples"].as_array().unwrap().len(), samples.len());
    assert_eq!(j["samples"][0]["url"], samples[0].url.as_str());

    // Acknowledge, resolve and reopen from the CLI; the list, the API and the filter agree.
    for (action, status) in [
        ("ack", "acknowledged"),
        ("resolve", "resolved"),
        ("reopen", "open"),
        ("ack", "acknowledged"),
    ] {
        let (ok, out, err) = gema(&config, &["incidents", action, &inc.id]);
        assert!(ok, "gema incidents {action}: {err}");
        assert_eq!(out.trim(), format!("Incident {} is now {status}.", inc.id));
        let (ok, out, _) = gema(
            &config,
            &[
                "incidents",
                "--since",
                since_arg,
                "--status",
                status,
                "--json",
            ],
        );
        assert!(ok);
        assert!(out.contains(&format!("\"id\":\"{}\"", inc.id)), "{out}");
        let (code, v) = s.get(&format!("/api/incidents/{}", inc.id)).await;
        assert_eq!((code, v["status"].as_str()), (200, Some(status)));
    }
    let (ok, out, _) = gema(&config, &["incidents", "--since", since_arg]);
    assert!(ok);
    let row = out.lines().find(|l| l.contains(&inc.id)).unwrap();
    assert!(row.contains(" acknowledged "), "{row}");

    // Bad input: an id that is no incident, a status that is none.
    let (ok, _, err) = gema(&config, &["incidents", "ack", "no-such-incident"]);
    assert!(!ok, "an unknown id is an error");
    assert!(
        err.contains("no incident with id \"no-such-incident\"") && err.contains("gema incidents"),
        "{err}"
    );
    let (ok, _, err) = gema(&config, &["incidents", "--status", "closed"]);
    assert!(
        !ok && err.contains("closed") && err.contains("acknowledged"),
        "{err}"
    );
    // Nothing in the window: said so.
    let (ok, out, _) = gema(&config, &["incidents", "--since", "1m"]);
    assert!(ok);
    assert_eq!(out, "No incidents.\n");

    s.stop().await;
}
