//! Command-line arguments and dispatch. Each subcommand's work lives in the library; this module
//! only parses, connects and prints.

mod bench;
#[cfg(feature = "bert")]
mod bert;
mod demo;
mod eval;
mod feed;
mod incidents;
mod query;
mod report;
mod sentiment;
mod sentiment_args;
mod serve;
mod sources;
mod stages;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gema::config::Config;

/// gema — hear everything said about your brand, in English and Indonesian, as it happens.
///
/// Mentions flow from connectors into Kafka, get language, sentiment, hashtags and keywords in the
/// enrich stage, and land in ClickHouse, where `gema trends` and `gema mentions` read them.
#[derive(Debug, Parser)]
#[command(name = "gema", version, propagate_version = true)]
pub struct Cli {
    /// Config file (TOML). Default: ./gema.toml when it exists. Env vars GEMA_* override it.
    #[arg(long, global = true, env = "GEMA_CONFIG")]
    pub config: Option<PathBuf>,
    /// More log output (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole demo: migrate, start the stages, replay the bundled feed, print trends,
    /// negative mentions and dead letters, then stop cleanly.
    Demo(demo::DemoArgs),
    /// Create the ClickHouse database and tables (idempotent, versioned) and the Kafka topics.
    Migrate(stages::MigrateArgs),
    /// Generate a synthetic feed of mentions (JSONL), deterministic for a --seed.
    Synth(feed::SynthArgs),
    /// Send a JSONL file of mentions to the raw topic.
    Replay(feed::ReplayArgs),
    /// Poll RSS / Atom news feeds and send their new items to the raw topic (`platform: rss`)
    Rss(feed::RssArgs),
    /// Poll Mastodon hashtag timelines and send their new posts to the raw topic (`platform:
    /// mastodon`); `GEMA_MASTODON_TOKEN` for instances that need a token
    Mastodon(feed::MastodonArgs),
    /// Search Hacker News stories and comments (HN Search API) and send new hits to the raw
    /// topic (`platform: hn`)
    Hn(feed::HnArgs),
    /// Search Bluesky posts (app.bsky.feed.searchPosts) and send new ones to the raw topic
    /// (`platform: bluesky`); `GEMA_BLUESKY_TOKEN` where the service needs a token
    Bluesky(feed::BlueskyArgs),
    /// Run every stage in one process until Ctrl-C / SIGTERM (drains, flushes, commits).
    Run(stages::RunArgs),
    /// Run only the enrich stage (raw → enriched / dead letters).
    Enrich,
    /// Run only the ClickHouse sink stages (mentions, trends and alerts topics → tables).
    Sink,
    /// Run only the trend stage (term occurrences → trend events, spike and trend alerts).
    TrendsStage,
    /// Run only the alert router (dedup, grouping, cooldown, rate limit → alerts topic, webhooks).
    Router,
    /// What is rising now and the top hashtags and keywords by volume, with their sentiment mix.
    Trends(query::TrendsArgs),
    /// Search stored mentions, newest first.
    Mentions(query::MentionsArgs),
    /// Show what is in the dead-letter topic and why.
    Dlq(query::DlqArgs),
    /// List alerts, or acknowledge / resolve / reopen one.
    Alerts(query::AlertsArgs),
    /// List incidents (a brand's spike, trends and negative comments as one story), or
    /// acknowledge / resolve / reopen one.
    Incidents(incidents::IncidentsArgs),
    /// A report of a window against the period before it: KPIs per tracked query, alerts, top
    /// negative posts, rising terms and a chart, as Markdown, CSV or HTML; `--email` sends it
    /// now as the daily digest would.
    Report(report::ReportArgs),
    /// Replay a scenario (`gema synth --scenario` or `--stationary`) through every stage and
    /// report precision, recall, launches found within 2 buckets, detection delay per event type
    /// and the false alerts.
    EvalTrends(eval::EvalTrendsArgs),
    /// Send mentions at a fixed rate through every stage (own topics and database) and report
    /// throughput and ingest → alert latency percentiles.
    Bench(bench::BenchArgs),
    /// Serve the HTTP API, the live alert feed (SSE) and the dashboard.
    ///
    /// Requires the bearer token in GEMA_API_TOKEN (16+ characters; send it as
    /// `Authorization: Bearer <token>`, or open the dashboard once as /?token=<token>, which sets
    /// an HttpOnly cookie). Without GEMA_API_TOKEN it refuses to start unless
    /// --insecure-no-auth is given.
    Serve(serve::ServeArgs),
    /// Show topic sizes, stage lag, stored mention count and the connectors' state.
    Status,
    /// List the `[[sources]]` connectors with their state: last poll, last success, mentions
    /// sent, errors, cursor, next poll and last error (as the process running them last wrote
    /// it).
    Sources(sources::SourcesArgs),
    /// Train the fast sentiment model on the labelled data (writes models/ and a manifest).
    Train(Box<sentiment::TrainArgs>),
    /// Score the sentiment model on labelled JSONL files (accuracy, macro recall/F1, speed).
    Eval(sentiment::EvalArgs),
    /// Classify texts (arguments or stdin) as the enrich stage would: language, sentiment label,
    /// confidence and polarity score; `--explain` lists the words that moved the score.
    Classify(sentiment::ClassifyArgs),
    /// Recompute the per-minute and per-hour rollups behind the timeline, share-of-voice and
    /// top-terms queries from the stored mentions. The mentions sink keeps them current; run this after
    /// writing to the `mentions` table by other means.
    Rollup(query::RollupArgs),
    /// Move a stage's committed offsets back to the start of its input topic, so it re-processes
    /// everything Kafka still holds (e.g. after changing the sentiment model). Stop the stage first.
    Rewind {
        /// The stage to rewind.
        #[arg(value_parser = ["enrich", "sink"])]
        stage: String,
    },
}

pub fn init_logging(cli: &Cli) {
    let default = match (cli.verbose, &cli.command) {
        (
            0,
            Command::Run(_)
            | Command::Enrich
            | Command::Sink
            | Command::TrendsStage
            | Command::Router
            | Command::Serve(_),
        ) => "info",
        (0, _) => "warn",
        (1, _) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default},librdkafka=error"))
    });
    // Colours only on a terminal: a log redirected to a file stays plain text.
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref()).context("loading configuration")?;
    match cli.command {
        Command::Demo(args) => demo::run(&config, &args).await,
        Command::Migrate(args) => stages::migrate(config, &args).await,
        Command::Synth(args) => feed::synth(&args),
        Command::Replay(args) => feed::replay(&config, &args).await,
        Command::Rss(args) => feed::rss(&config, &args).await,
        Command::Mastodon(args) => feed::mastodon(&config, &args).await,
        Command::Hn(args) => feed::hn(&config, &args).await,
        Command::Bluesky(args) => feed::bluesky(&config, &args).await,
        Command::Run(args) => stages::run(&config, &args).await,
        Command::Enrich => stages::run(&config, &stages::RunArgs::only("enrich")).await,
        Command::Sink => stages::run(&config, &stages::RunArgs::only("sink")).await,
        Command::TrendsStage => stages::run(&config, &stages::RunArgs::only("trends")).await,
        Command::Router => stages::run(&config, &stages::RunArgs::only("router")).await,
        Command::Trends(args) => query::trends(&config, &args).await,
        Command::Mentions(args) => query::mentions(&config, &args).await,
        Command::Dlq(args) => query::dlq(&config, &args),
        Command::Alerts(args) => query::alerts(&config, &args).await,
        Command::Incidents(args) => incidents::run(&config, &args).await,
        Command::Report(args) => report::run(&config, &args).await,
        Command::EvalTrends(args) => eval::run(&config, &args).await,
        Command::Bench(args) => bench::run(&config, &args).await,
        Command::Serve(args) => serve::run(&config, &args).await,
        Command::Status => query::status(&config).await,
        Command::Sources(args) => sources::sources(&config, &args),
        Command::Train(args) => sentiment::run_train(&args, &config),
        Command::Eval(args) => sentiment::run_eval(&args),
        Command::Classify(args) => sentiment::run_classify(&args, &config.enrich),
        Command::Rollup(args) => query::rollup(&config, &args).await,
        Command::Rewind { stage } => stages::rewind(&config, &stage),
    }
}
