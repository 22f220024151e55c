//! `gema migrate`, `gema run`, the single-stage commands and `gema rewind`.

use anyhow::Context;
use gema::config::Config;
use gema::kafka::Group;
use gema::pipeline::{self, Stage};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Stages to run, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_values = ["enrich", "sink", "trends", "router"],
        value_parser = ["enrich", "sink", "trends", "router"]
    )]
    pub stages: Vec<String>,
    /// Do not start the `[[sources]]` connectors of the config.
    #[arg(long)]
    pub no_sources: bool,
    /// Do not send the daily email digest of `[digest]` from this process.
    #[arg(long)]
    pub no_digest: bool,
}

impl RunArgs {
    /// One stage, without the configured sources (`gema enrich`, `gema sink`, ...).
    pub fn only(stage: &str) -> RunArgs {
        RunArgs {
            stages: vec![stage.to_string()],
            no_sources: true,
            no_digest: true,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Create the database and tables on every replica of this cluster of the server's
    /// `remote_servers` (`ON CLUSTER`, `Replicated*MergeTree` engines; needs ZooKeeper or
    /// ClickHouse Keeper and the `{shard}` and `{replica}` macros). Default: `[clickhouse]
    /// cluster`, else one server
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
}

pub async fn migrate(mut config: Config, args: &MigrateArgs) -> anyhow::Result<()> {
    if let Some(c) = &args.cluster {
        config.clickhouse.cluster = c.clone();
        config
            .clickhouse
            .validate()
            .map_err(|e| anyhow::anyhow!("--cluster: {}", e.within("clickhouse")))?;
    }
    let m = pipeline::migrate(&config).await?;
    println!(
        "ClickHouse {} database {}{}: {} migration(s) applied{}",
        m.store.version,
        m.store.database,
        m.store
            .cluster
            .as_deref()
            .map(|c| format!(" on cluster {c}"))
            .unwrap_or_default(),
        m.applied.len(),
        if m.applied.is_empty() {
            " (up to date)".to_string()
        } else {
            format!(": {}", m.applied.join(", "))
        }
    );
    println!(
        "Kafka {}: topics {} ready",
        config.kafka.brokers,
        m.topics.all().join(", ")
    );
    Ok(())
}

pub async fn run(config: &Config, args: &RunArgs) -> anyhow::Result<()> {
    let mut running = pipeline::start(config, &Stage::named(&args.stages)).await?;
    if !args.no_sources {
        running.start_sources(config);
    }
    if !args.no_digest {
        running.start_digest(config);
    }
    pipeline::cancel_on_signal(running.shutdown_token());
    running.join().await?;
    let m = &running.metrics;
    tracing::info!(
        received = m.enrich_received.get(),
        enriched = m.enrich_enriched.get(),
        dead_letters = m.dead_letter_total(),
        rows = m.sink_rows.get(),
        alerts = m.alerts_delivered.get(),
        "Stopped"
    );
    Ok(())
}

pub fn rewind(config: &Config, stage: &str) -> anyhow::Result<()> {
    let t = config.kafka.topics();
    let g = match stage {
        "enrich" => Group::Enrich,
        _ => Group::SinkMentions,
    };
    let (group, topic) = (t.group(g), t.input(g));
    gema::kafka::lag::rewind_group(&config.kafka, &group, topic)
        .with_context(|| format!("rewinding group {group} on {topic} (is the stage stopped?)"))?;
    println!("Group {group} now starts again at the beginning of {topic}.");
    Ok(())
}
