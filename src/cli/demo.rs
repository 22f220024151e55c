//! `gema demo`: the whole pipeline on the bundled feed, in one command.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use gema::config::Config;
use gema::kafka::{lag, Topics};
use gema::metrics::Metrics;
use gema::pipeline::{self, Stage};
use gema::query::mentions::{self, MentionFilter};
use gema::query::trends::{self, TermKind};
use gema::sentiment::Label;
use gema::sources::replay::{self, ReplayOptions, Speed};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::query::{dlq_table, mentions_table, status_lines, trends_table};
use super::stages::{enricher, prepare};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The feed to replay.
    #[arg(long, default_value = "tests/data/demo-feed.jsonl")]
    pub feed: PathBuf,
    /// Give up waiting for the stages after this many seconds.
    #[arg(long, default_value_t = 180)]
    pub timeout_s: u64,
}

/// Waits until both stages have committed everything in their input topics.
pub async fn wait_for_drain(config: &Config, timeout: Duration) -> anyhow::Result<()> {
    let t = Topics::new(&config.kafka.topic_prefix);
    let deadline = Instant::now() + timeout;
    loop {
        let enrich = lag::group_lag(&config.kafka, &t.group("enrich"), &t.raw)?;
        let sink = lag::group_lag(&config.kafka, &t.group("sink-ch"), &t.enriched)?;
        if enrich == 0 && sink == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "stages still behind after {timeout:?}: enrich lag {enrich}, sink lag {sink}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

pub async fn run(config: &Config, args: &DemoArgs) -> anyhow::Result<()> {
    let stages = [Stage::Enrich, Stage::Sink];
    let enricher = enricher(config)?;
    let store = prepare(config, &stages)
        .await
        .context("preparing Kafka and ClickHouse (are they running? `scripts/services.sh up`)")?
        .expect("the sink needs ClickHouse");
    println!(
        "== gema demo: Kafka {} · ClickHouse {} {}",
        config.kafka.brokers, config.clickhouse.url, store.version
    );

    let metrics = Arc::new(Metrics::default());
    let shutdown = CancellationToken::new();
    pipeline::cancel_on_signal(shutdown.clone());
    let mut tasks = JoinSet::new();
    pipeline::spawn_stages(
        &mut tasks,
        &stages,
        config,
        &enricher,
        Some(&store),
        &metrics,
        &shutdown,
    );

    println!(
        "\n== Replaying {} (event times shifted to end now)",
        args.feed.display()
    );
    let opts = ReplayOptions {
        path: args.feed.clone(),
        speed: Speed::Max,
        retime: true,
        progress: true,
    };
    let topics = Topics::new(&config.kafka.topic_prefix);
    let summary = replay::replay(&config.kafka, &topics, &opts).await?;
    println!("{summary}");

    let started = Instant::now();
    wait_for_drain(config, Duration::from_secs(args.timeout_s)).await?;
    println!(
        "\n== Pipeline drained in {:.1}s: enrich read {}, enriched {}, dead-lettered {}; sink wrote {} rows",
        started.elapsed().as_secs_f64(),
        metrics.enrich_received.get(),
        metrics.enrich_enriched.get(),
        metrics.dead_letter_total(),
        metrics.sink_rows.get()
    );
    for l in status_lines(config, Some(&store)).await? {
        println!("{l}");
    }

    let now = Utc::now();
    let hour_ago = now - chrono::Duration::hours(1);
    println!("\n== Trending in the last hour (hashtags and keywords)");
    let top = trends::top_terms(&store, TermKind::All, hour_ago, now, 15).await?;
    print!("{}", trends_table(&top));

    println!("\n== Negative mentions in the last hour (newest first)");
    let filter = MentionFilter {
        since: hour_ago,
        until: now,
        sentiment: Some(Label::Negative),
        lang: None,
        platform: None,
        text: None,
        limit: 15,
    };
    print!(
        "{}",
        mentions_table(&mentions::search(&store, &filter).await?)
    );

    println!("\n== Dead letters (malformed input, kept with the reason)");
    let (_, table) = dlq_table(config, 20)?;
    print!("{table}");

    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    println!("\nStages stopped cleanly. Explore further: `gema trends --since 3h`, `gema mentions --sentiment negative --since 3h`, `gema status`.");
    Ok(())
}
