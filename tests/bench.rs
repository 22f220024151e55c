//! `gema bench` on the real services: a small run gives every figure the README quotes (not how
//! fast: speed lives in the numbers the command prints, this checks they are there and
//! consistent), and the enrich-only mode enriches its whole backlog. Each run uses and then
//! deletes its own topics and database.

mod common;

use std::process::Command;

use common::TestEnv;
use serde_json::Value;

/// `gema bench <args> --json` with the test services and three tracked brands; its report.
fn bench(args: &[&str]) -> Value {
    let env = TestEnv::new("bench-cli");
    let config = env.dir.path().join("gema.toml");
    std::fs::write(
        &config,
        "[[tracked]]\nname = \"kopikita\"\nquery = 'kopikita OR @kopikita OR #kopikita*'\n\
         [[tracked]]\nname = \"nusapay\"\nquery = 'nusapay OR @nusapay OR #nusapay*'\n\
         [[tracked]]\nname = \"arunika-air\"\nquery = '\"arunika air\" OR #arunikaair*'\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gema"))
        .arg("--config")
        .arg(&config)
        .arg("bench")
        .args(args)
        .arg("--json")
        .env("GEMA_KAFKA_BROKERS", &env.config.kafka.brokers)
        .env("GEMA_CLICKHOUSE_URL", &env.config.clickhouse.url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gema bench {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("one JSON object: {e}\n{stdout}"))
}

#[test]
fn a_small_bench_reports_every_figure() {
    let r = bench(&["--rate", "2000", "--messages", "2000"]);
    assert_eq!(r["messages"], 2000);
    assert_eq!(r["stored"], 2000, "every mention stored: {r}");
    assert!(r["end_to_end_rate"].as_f64().unwrap() > 0.0);
    assert!(r["enrich_workers"].as_u64().unwrap() >= 1);
    // Latencies: p50 ≤ p95 ≤ p99 ≤ max, in milliseconds.
    for key in ["ingest_to_visible", "ingest_to_alert"] {
        let q = &r[key];
        assert!(q["count"].as_u64().unwrap() > 0, "{key}: {q}");
        let v: Vec<f64> = ["p50_ms", "p95_ms", "p99_ms", "max_ms"]
            .iter()
            .map(|p| q[p].as_f64().unwrap())
            .collect();
        assert!(
            v.windows(2).all(|w| w[0] <= w[1]) && v[0] >= 0.0,
            "{key}: {q}"
        );
    }
    assert!(r["cpu_us_per_mention"]["gema"].as_f64().unwrap() > 0.0);
    assert!(r["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
    for key in [
        "kafka_produce_per_s",
        "kafka_consume_per_s",
        "clickhouse_insert_rows_per_s",
    ] {
        assert!(r["ceiling"][key].as_f64().unwrap() > 0.0, "{key}: {r}");
    }
    // With the services of scripts/services.sh in this checkout, their CPU and the topics'
    // bytes on disk are measured too.
    let local = std::path::Path::new(".gema/kafka/data").is_dir()
        && std::env::var_os("GEMA_KAFKA_BROKERS").is_none();
    if local {
        let bytes = &r["topic_bytes_per_mention"];
        assert!(bytes["raw"].as_f64().unwrap() > 50.0, "{bytes}");
        assert!(bytes["enriched"].as_f64().unwrap() > bytes["raw"].as_f64().unwrap());
        assert!(r["cpu_us_per_mention"]["kafka"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn the_enrich_stage_alone_enriches_its_whole_backlog() {
    let r = bench(&["--enrich-backlog", "--messages", "20000"]);
    assert_eq!(r["mode"], "enrich_backlog");
    assert_eq!(r["messages"], 20000);
    assert!(r["rate"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["cpu_s"].as_f64().unwrap() > 0.0, "{r}");
}
