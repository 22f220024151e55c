//! `gema migrate`, `gema run`, `gema enrich`, `gema sink`.

use std::sync::Arc;

use anyhow::Context;
use gema::config::Config;
use gema::enrich::Enricher;
use gema::kafka::{topics::ensure_topics, Topics};
use gema::metrics::Metrics;
use gema::pipeline::{self, Stage};
use gema::sentiment::lexicon::LexiconModel;
use gema::store::{self, migrate::migrate as apply_migrations, Store};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Stages to run, comma separated.
    #[arg(long, value_delimiter = ',', default_values = ["enrich", "sink"], value_parser = ["enrich", "sink"])]
    pub stages: Vec<String>,
}

impl RunArgs {
    pub fn only(stage: &str) -> RunArgs {
        RunArgs {
            stages: vec![stage.to_string()],
        }
    }

    fn parsed(&self) -> Vec<Stage> {
        self.stages
            .iter()
            .map(|s| {
                if s == "enrich" {
                    Stage::Enrich
                } else {
                    Stage::Sink
                }
            })
            .collect()
    }
}

/// Loads the sentiment model named in the config, once, failing fast with the path and reason.
pub fn enricher(config: &Config) -> anyhow::Result<Enricher> {
    match config.enrich.sentiment_model.as_str() {
        "builtin" => Ok(Enricher::new(Arc::new(LexiconModel))),
        other => anyhow::bail!(
            "enrich.sentiment_model = {other:?}: only `builtin` is available in this build"
        ),
    }
}

pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let store = store::connect(&config.clickhouse).await?;
    let applied = apply_migrations(&store).await?;
    let topics = Topics::new(&config.kafka.topic_prefix);
    ensure_topics(&config.kafka, &topics).await?;
    println!(
        "ClickHouse {} database {}: {} migration(s) applied{}",
        store.version,
        store.database,
        applied.len(),
        if applied.is_empty() {
            " (up to date)".to_string()
        } else {
            format!(": {}", applied.join(", "))
        }
    );
    println!(
        "Kafka {}: topics {} ready",
        config.kafka.brokers,
        topics.all().join(", ")
    );
    Ok(())
}

/// Connects and migrates ClickHouse (when a stage needs it) and creates the topics.
pub async fn prepare(config: &Config, stages: &[Stage]) -> anyhow::Result<Option<Store>> {
    ensure_topics(&config.kafka, &Topics::new(&config.kafka.topic_prefix)).await?;
    if stages.contains(&Stage::Sink) {
        let store = store::connect(&config.clickhouse).await?;
        apply_migrations(&store).await?;
        return Ok(Some(store));
    }
    Ok(None)
}

pub async fn run(config: &Config, args: &RunArgs) -> anyhow::Result<()> {
    let stages = args.parsed();
    let enricher = enricher(config)?;
    let store = prepare(config, &stages)
        .await
        .context("preparing Kafka and ClickHouse")?;
    let metrics = Arc::new(Metrics::default());
    let shutdown = CancellationToken::new();
    pipeline::cancel_on_signal(shutdown.clone());
    let mut tasks = JoinSet::new();
    pipeline::spawn_stages(
        &mut tasks,
        &stages,
        config,
        &enricher,
        store.as_ref(),
        &metrics,
        &shutdown,
    );
    while tasks.join_next().await.is_some() {}
    tracing::info!(
        received = metrics.enrich_received.get(),
        enriched = metrics.enrich_enriched.get(),
        dead_letters = metrics.dead_letter_total(),
        rows = metrics.sink_rows.get(),
        "Stopped"
    );
    Ok(())
}

pub fn rewind(config: &Config, stage: &str) -> anyhow::Result<()> {
    let t = Topics::new(&config.kafka.topic_prefix);
    let (group, topic) = match stage {
        "enrich" => (t.group("enrich"), t.raw.clone()),
        _ => (t.group("sink-ch"), t.enriched.clone()),
    };
    gema::kafka::lag::rewind_group(&config.kafka, &group, &topic)
        .with_context(|| format!("rewinding group {group} on {topic} (is the stage stopped?)"))?;
    println!("Group {group} now starts again at the beginning of {topic}.");
    Ok(())
}
