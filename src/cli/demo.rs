//! `gema demo`: the whole pipeline on the bundled feed, in one command.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use gema::config::Config;
use gema::pipeline::{self, Namespace, Stage};
use gema::query::alerts;
use gema::query::mentions::{self, MentionFilter};
use gema::query::trends::{self, TermKind};
use gema::sentiment::Label;
use gema::sources::replay::{ReplayOptions, Speed};

use super::query::{
    alerts_table, dlq_table, mentions_table, rising_table, status_lines, trends_table,
};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The feed to replay.
    #[arg(long, default_value = "tests/data/demo-feed.jsonl")]
    pub feed: PathBuf,
    /// Replay speed: event time × this factor (the bundled 3-hour feed takes 18 s at 600x), or
    /// max. Paced, the stream arrives as it would live, in event-time order across partitions.
    #[arg(long, default_value = "600x")]
    pub speed: Speed,
    /// Give up waiting for the stages after this many seconds.
    #[arg(long, default_value_t = 180)]
    pub timeout_s: u64,
}

/// The demo's own database: dropped and recreated by every run, so each run starts clean and
/// never touches the configured one.
pub const DEMO_DATABASE: &str = "gema_demo";
const DEMO_PREFIX: &str = "gema-demo";

pub async fn run(config: &Config, args: &DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !config.tracked.is_empty(),
        "no tracked queries configured: run the demo from the repository root (it reads gema.toml) or pass --config"
    );
    // A fresh namespace for this run: topics `gema-demo-<time>.*` (earlier runs' demo topics are
    // deleted), database `gema_demo` (recreated), detector state under `<state_dir>/demo`.
    let ns = Namespace::recreated(
        config,
        DEMO_PREFIX,
        DEMO_DATABASE,
        config.state_dir.join("demo"),
    )
    .await
    .context("preparing the demo's topics and database")?;
    let config = &ns.config;
    let running = pipeline::start(config, &Stage::ALL)
        .await
        .context("preparing Kafka and ClickHouse")?;
    let store = running.store.clone().expect("the sink needs ClickHouse");
    println!(
        "== gema demo: Kafka {} · ClickHouse {} {} · tracking {}",
        config.kafka.brokers,
        config.clickhouse.url,
        store.version,
        config
            .tracked
            .iter()
            .map(|q| q.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let demo_started = Utc::now();
    pipeline::cancel_on_signal(running.shutdown_token());

    println!(
        "\n== Replaying {} at {:?} (event times shifted so the feed ends as the replay does)",
        args.feed.display(),
        args.speed
    );
    let opts = ReplayOptions {
        path: args.feed.clone(),
        speed: args.speed,
        retime: true,
        progress: None,
    };
    let summary = super::feed::replay_showing_progress(config, opts, true).await?;
    println!("{summary}");

    let started = Instant::now();
    running
        .wait_for_drain(Duration::from_secs(args.timeout_s), Duration::from_secs(5))
        .await
        .map_err(anyhow::Error::msg)?;
    let now = Utc::now();
    print!(
        "{}",
        incidents_story(
            &gema::query::incidents::list(&store, now - chrono::Duration::hours(5), now, None, 5)
                .await?,
            &config.display()
        )
    );
    let m = &running.metrics;
    println!(
        "\n== Pipeline drained in {:.1}s: enrich read {}, enriched {}, dead-lettered {}; {} rows written to ClickHouse \
         (mentions, trends and alerts); {} alert candidates, {} alerts delivered",
        started.elapsed().as_secs_f64(),
        m.enrich_received.get(),
        m.enrich_enriched.get(),
        m.dead_letter_total(),
        m.sink_rows.get(),
        m.alerts_raised.get(),
        m.alerts_delivered.get()
    );
    for l in status_lines(config, Some(&store)).await? {
        println!("{l}");
    }

    let now = Utc::now();
    let hour_ago = now - chrono::Duration::hours(1);
    let feed_start = now - chrono::Duration::hours(4);
    // Only this run's alerts (an earlier demo's stay in the table, and in `gema alerts`).
    let all = alerts::list(&store, demo_started, now, None, None, 100_000).await?;
    let mut counts: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for a in &all {
        *counts
            .entry((a.kind.clone(), a.severity.clone()))
            .or_default() += 1;
    }
    let summary: Vec<String> = counts
        .iter()
        .map(|((k, s), n)| format!("{n} {k} ({s})"))
        .collect();
    println!("\n== Alerts: {}", summary.join(", "));
    println!("-- spikes and trends (each explains itself):");
    let mut big: Vec<_> = all
        .iter()
        .filter(|a| a.kind != "negative_comment")
        .cloned()
        .collect();
    big.sort_by_key(|a| a.event_time);
    print!("{}", alerts_table(&big, &config.display()));
    println!(
        "-- latest negative comments to answer (the router rate-limits these; see `gema alerts`):"
    );
    let comments: Vec<_> = all
        .iter()
        .filter(|a| a.kind == "negative_comment")
        .take(8)
        .cloned()
        .collect();
    print!("{}", alerts_table(&comments, &config.display()));

    println!("\n== Rising now: strongest bursts over the feed (score = authors above baseline, in std devs)");
    print!(
        "{}",
        rising_table(
            &trends::rising_now(
                &store,
                feed_start,
                now,
                10,
                trends::bucket_secs(config.trends.bucket_ms)
            )
            .await?,
            &config.display()
        )
    );

    println!("\n== Top volume in the last hour (hashtags and keywords)");
    print!(
        "{}",
        trends_table(&trends::top_terms(&store, TermKind::All, hour_ago, now, 10).await?)
    );

    // As confident as a negative-comment alert must be, so the list is what to answer first.
    let min_confidence = config.alerts.negative_comment.min_confidence;
    println!(
        "\n== Negative mentions in the last hour with confidence ≥ {min_confidence} (newest first)"
    );
    let filter = MentionFilter {
        since: hour_ago,
        until: now,
        sentiment: Some(Label::Negative),
        lang: None,
        platform: None,
        text: None,
        min_confidence: Some(min_confidence),
        limit: 10,
    };
    print!(
        "{}",
        mentions_table(&mentions::search(&store, &filter).await?, &config.display())
    );

    println!("\n== Dead letters (malformed input, kept with the reason)");
    let (_, table) = dlq_table(config, 20)?;
    print!("{table}");

    running.stop().await?;
    print!("{}", closing_hint(config));
    Ok(())
}

/// The incidents as the demo leads with them: each one's summary, state and the posts with the
/// most reach in full, and how to acknowledge it.
fn incidents_story(
    rows: &[gema::query::incidents::StoredIncident],
    display: &gema::display::Display,
) -> String {
    use std::fmt::Write;
    let mut s = String::from("\n== Incidents: each brand's crisis as one story\n");
    // The biggest story first: the worst severity, then the most negative posts.
    let rank = |sev: &str| {
        ["critical", "high", "medium", "low"]
            .iter()
            .position(|s| *s == sev)
    };
    let mut rows = rows.to_vec();
    rows.sort_by(|a, b| {
        rank(&a.severity)
            .cmp(&rank(&b.severity))
            .then(b.negative_posts.cmp(&a.negative_posts))
    });
    if rows.is_empty() {
        s.push_str("No incident: no brand had a negative spike or a run of negative comments.\n");
        return s;
    }
    for i in &rows {
        let _ = writeln!(
            s,
            "{} {} — {}, {}; since {}\n  {}",
            i.severity.to_uppercase(),
            i.query,
            i.status,
            i.movement,
            display.full(i.opened_at),
            i.summary
        );
        let samples: Vec<gema::alerts::Sample> =
            serde_json::from_str(&i.samples).unwrap_or_default();
        if !samples.is_empty() {
            s.push_str("  the posts with the most reach:\n");
        }
        for p in samples.iter().take(3) {
            let _ = writeln!(
                s,
                "    @{} ({} followers, {}): {}\n      {}",
                p.author_handle,
                p.author_followers,
                display.full(p.created_at),
                p.text,
                p.url
            );
        }
        let _ = writeln!(s, "  on it? gema incidents ack {}", i.id);
    }
    s
}

/// How to look at the demo's data afterwards, as commands that work when pasted: the demo's own
/// topic prefix and database, the binary's path (`gema` is not on PATH after `make demo`), and
/// the dashboard.
fn closing_hint(config: &Config) -> String {
    let gema = std::env::current_exe()
        .ok()
        .and_then(|p| {
            let cwd = std::env::current_dir().ok()?;
            Some(
                p.strip_prefix(&cwd)
                    .map(|r| format!("./{}", r.display()))
                    .unwrap_or_else(|_| p.display().to_string()),
            )
        })
        .unwrap_or_else(|| "gema".into());
    format!(
        "\nStages stopped cleanly. The demo's data stays in topics {prefix}.* and database {db}; \
         explore it with:\n  \
         export GEMA_KAFKA_TOPIC_PREFIX={prefix} GEMA_CLICKHOUSE_DATABASE={db}\n  \
         {gema} alerts --since 4h; {gema} trends --rising --since 4h; \
         {gema} mentions --sentiment negative --since 4h; {gema} dlq\n\
         and on the dashboard (then open http://{listen}/?token=$GEMA_API_TOKEN):\n  \
         export GEMA_API_TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')\n  \
         {gema} serve\n",
        prefix = config.kafka.topic_prefix,
        db = config.clickhouse.database,
        listen = config.server.listen,
    )
}
