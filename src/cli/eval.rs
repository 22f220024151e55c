//! `gema eval-trends FEED TRUTH`: replay a scenario through the real stages and score the alerts.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use gema::config::Config;
use gema::pipeline::{self, Namespace, Stage};
use gema::query::alerts;
use gema::sources::replay::{ReplayOptions, Speed};
use gema::sources::scenario::Truth;
use gema::trends::eval::{evaluate, Detected};

use super::query::table;

#[derive(Debug, clap::Args)]
pub struct EvalTrendsArgs {
    /// The scenario feed (from `gema synth --scenario --out FEED`, or `--stationary` for a
    /// steady background whose every alert, bar those about its launches, is a false one).
    pub feed: PathBuf,
    /// Its ground truth (FEED.truth.json).
    pub truth: PathBuf,
    /// Replay speed (event time × factor). Paced, mentions reach the stages in event-time order
    /// as they would live; the pipeline must keep up (use a release build for high factors).
    #[arg(long, default_value = "600x")]
    pub speed: Speed,
    /// Keep the run's topics and database afterwards (they are named in the output).
    #[arg(long)]
    pub keep: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Config, args: &EvalTrendsArgs) -> anyhow::Result<()> {
    let truth: Truth = serde_json::from_slice(
        &std::fs::read(&args.truth)
            .with_context(|| format!("cannot read {}", args.truth.display()))?,
    )
    .with_context(|| format!("{} is not a scenario truth file", args.truth.display()))?;
    anyhow::ensure!(
        !config.tracked.is_empty(),
        "no tracked queries configured (gema.toml)"
    );
    // A namespace of its own: fresh topics, database and detector state.
    let ns = Namespace::fresh(config, "eval").context("creating the run's state directory")?;
    let config = ns.config.clone();
    let running = pipeline::start(&config, &Stage::ALL).await?;
    let store = running.store.clone().expect("sink needs ClickHouse");
    let started = Instant::now();
    let opts = ReplayOptions {
        path: args.feed.clone(),
        speed: args.speed,
        retime: false,
        progress: None,
    };
    let summary = super::feed::replay_showing_progress(&config, opts, !args.json).await?;
    running
        .wait_for_drain(Duration::from_secs(600), Duration::from_secs(5))
        .await
        .map_err(anyhow::Error::msg)?;
    let metrics = running.stop().await?;
    let elapsed = started.elapsed();

    let stored = alerts::list(
        &store,
        truth.start - chrono::Duration::days(1),
        chrono::Utc::now() + chrono::Duration::days(1),
        None,
        None,
        1_000_000,
    )
    .await?;
    let detected: Vec<Detected> = stored
        .iter()
        .map(|a| Detected {
            kind: a.kind.clone(),
            query: a.query.clone(),
            term: a.term.clone(),
            why: a.why.clone(),
            event_time: a.event_time,
        })
        .collect();
    let bucket = chrono::Duration::milliseconds(config.trends.bucket_ms as i64);
    let report = evaluate(&truth, &detected, bucket);
    let late = metrics.trend_late.get();
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["mentions"] = summary.valid.into();
        v["late_occurrences"] = late.into();
        v["elapsed_s"] = elapsed.as_secs_f64().into();
        println!("{v}");
    } else {
        println!(
            "Replayed {} mentions ({} per minute of event time, {:?}) through every stage in {:.1}s; {} late term occurrences",
            summary.valid,
            truth.background_per_minute,
            args.speed,
            elapsed.as_secs_f64(),
            late
        );
        let rows: Vec<Vec<String>> = report
            .per_type
            .iter()
            .map(|t| {
                vec![
                    t.kind.clone(),
                    t.events.to_string(),
                    t.detected.to_string(),
                    format!("{:.2}", t.recall),
                    t.within_two_buckets.to_string(),
                    t.median_delay_buckets
                        .map(|d| format!("{d:.1}"))
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        print!(
            "{}",
            table::render(
                &[
                    "event type",
                    "injected",
                    "detected",
                    "recall",
                    "within 2 buckets",
                    "median delay (buckets)"
                ],
                &rows,
                30
            )
        );
        println!(
            "Alerts (emerging trend + negative spike): {}, about injected events: {}, precision {:.2}",
            report.alerts, report.true_alerts, report.precision
        );
        println!(
            "False alerts (about no injected event): {}; about the spam account: {}; about the slow organic rise: {}",
            report.false_alerts, report.spam_alerts, report.slow_rise_alerts
        );
        for u in &report.unmatched {
            println!("  unmatched: {u}");
        }
    }
    if args.keep {
        eprintln!(
            "Kept topics {}.* and database {}",
            config.kafka.topic_prefix, config.clickhouse.database
        );
    } else {
        ns.cleanup().await;
    }
    Ok(())
}
