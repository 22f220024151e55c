//! `gema migrate`, `gema run`, and the single-stage commands.

use std::sync::Arc;

use anyhow::Context;
use gema::config::Config;
use gema::enrich::cascade::Cascade;
use gema::enrich::Enricher;
use gema::kafka::{topics::ensure_topics, Topics};
use gema::metrics::Metrics;
use gema::pipeline::{self, Deps, Stage};
use gema::sentiment::lexicon::LexiconModel;
use gema::sentiment::SentimentModel;
use gema::store::{self, migrate::migrate as apply_migrations};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

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
}

impl RunArgs {
    pub fn only(stage: &str) -> RunArgs {
        RunArgs {
            stages: vec![stage.to_string()],
        }
    }

    fn parsed(&self) -> Vec<Stage> {
        Stage::ALL
            .into_iter()
            .filter(|s| self.stages.iter().any(|n| n == s.name()))
            .collect()
    }
}

/// Loads the fast sentiment model at `path` (`enrich.sentiment_model`), naming the setting and
/// the path when it cannot.
fn load_fast(path: &str) -> anyhow::Result<gema::sentiment::FastModel> {
    gema::sentiment::load_model(std::path::Path::new(path)).with_context(|| {
        format!(
            "loading the sentiment model (enrich.sentiment_model / GEMA_SENTIMENT_MODEL = {path:?}; \
             run from the repository root, point it at the file, or use \"builtin\")"
        )
    })
}

/// The sentiment model named in the config, for `gema serve`'s `/api/classify`: the fast tier
/// (or the built-in lexicon), without the transformer.
pub fn sentiment_model(config: &Config) -> anyhow::Result<Arc<dyn SentimentModel>> {
    Ok(match config.enrich.sentiment_model.as_str() {
        "builtin" => Arc::new(LexiconModel),
        path => Arc::new(load_fast(path)?),
    })
}

/// Loads the sentiment model named in the config once and compiles the tracked queries, failing
/// fast with the path or the query's error position.
pub fn enricher(config: &Config) -> anyhow::Result<Enricher> {
    let base = match config.enrich.sentiment_model.as_str() {
        "builtin" => Enricher::new(Arc::new(LexiconModel)),
        path => {
            let model = Arc::new(load_fast(path)?);
            let enricher = Enricher::new(model.clone());
            if config.enrich.cascade.enabled {
                let cascade = Cascade::start(&config.enrich.cascade, model)
                    .context("starting the transformer tier ([enrich.cascade])")?;
                enricher.with_cascade(cascade)
            } else {
                enricher
            }
        }
    };
    Ok(base.with_queries(config.queries()?))
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

/// Everything `stages` need: topics, ClickHouse (migrated) for the sink, the enricher, webhooks.
pub async fn deps(config: &Config, stages: &[Stage]) -> anyhow::Result<Deps> {
    let enricher = enricher(config)?;
    ensure_topics(&config.kafka, &Topics::new(&config.kafka.topic_prefix))
        .await
        .context("creating the Kafka topics (is Kafka running? `scripts/services.sh up`)")?;
    let store = if stages.contains(&Stage::Sink) {
        let store = store::connect(&config.clickhouse).await?;
        apply_migrations(&store).await?;
        Some(store)
    } else {
        None
    };
    let metrics = Arc::new(Metrics::default());
    let webhooks = if stages.contains(&Stage::Router) {
        gema::alerts::stage::webhooks(config, &metrics).map_err(anyhow::Error::msg)?
    } else {
        Vec::new()
    };
    Ok(Deps {
        config: config.clone(),
        enricher,
        store,
        webhooks,
        metrics,
        shutdown: CancellationToken::new(),
    })
}

pub async fn run(config: &Config, args: &RunArgs) -> anyhow::Result<()> {
    let stages = args.parsed();
    let deps = deps(config, &stages).await?;
    pipeline::cancel_on_signal(deps.shutdown.clone());
    let mut tasks = JoinSet::new();
    pipeline::spawn_stages(&mut tasks, &stages, &deps);
    while tasks.join_next().await.is_some() {}
    let m = &deps.metrics;
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
