//! `gema trends`, `gema mentions`, `gema dlq`, `gema status`.

use anyhow::Context;
use chrono::{DateTime, Utc};
use gema::config::Config;
use gema::display::Display;
use gema::kafka::dlq::read_dead_letters;
use gema::kafka::{lag, Group};
use gema::query::corrections;
use gema::query::mentions::{self, MentionFilter, MentionHit};
pub use gema::query::table;
use gema::query::time::parse_time;
use gema::query::trends::{self, TermCount, TermKind};
use gema::sentiment::Label;
use gema::store::{self, Store};

pub(crate) fn time_arg(s: &str) -> Result<DateTime<Utc>, String> {
    parse_time(s, Utc::now())
}

/// `--kind` of `gema trends`: which terms to rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    /// Hashtags and keywords.
    All,
    Hashtags,
    Keywords,
    /// @handles mentioned.
    Handles,
}

impl From<KindArg> for TermKind {
    fn from(k: KindArg) -> TermKind {
        match k {
            KindArg::All => TermKind::All,
            KindArg::Hashtags => TermKind::Hashtags,
            KindArg::Keywords => TermKind::Keywords,
            KindArg::Handles => TermKind::Handles,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct TrendsArgs {
    /// Start of the window: a duration ago (15m, 1h, 7d) or an RFC 3339 time.
    #[arg(long, default_value = "1h", value_parser = time_arg)]
    pub since: DateTime<Utc>,
    /// End of the window (default: now).
    #[arg(long, value_parser = time_arg)]
    pub until: Option<DateTime<Utc>>,
    /// How many terms to show.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub top: u64,
    /// Which terms to rank.
    #[arg(long, value_enum, default_value_t = KindArg::All)]
    pub kind: KindArg,
    /// Show only what is rising (burst score against each term's baseline); without it the
    /// table shows the top rising terms above the top volume (`--json` prints volume).
    #[arg(long)]
    pub rising: bool,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn trends_table(rows: &[TermCount]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .enumerate()
        .map(|(i, t)| {
            vec![
                format!("{}", i + 1),
                t.term.clone(),
                t.mentions.to_string(),
                t.authors.to_string(),
                format!("{:.0}%", t.negative_share() * 100.0),
                format!("{}/{}/{}", t.negative, t.neutral, t.positive),
            ]
        })
        .collect();
    table::render(
        &[
            "#",
            "term",
            "mentions",
            "authors",
            "negative",
            "neg/neu/pos",
        ],
        &body,
        40,
    )
}

pub async fn trends(config: &Config, args: &TrendsArgs) -> anyhow::Result<()> {
    let store = store::connect(&config.clickhouse).await?;
    let until = args.until.unwrap_or_else(Utc::now);
    if args.rising {
        let bucket = trends::bucket_secs(config.trends.bucket_ms);
        let rows = trends::rising_now(&store, args.since, until, args.top, bucket).await?;
        if args.json {
            for r in &rows {
                println!("{}", serde_json::to_string(r)?);
            }
        } else {
            print!("{}", rising_table(&rows, &config.display()));
        }
        return Ok(());
    }
    let rows = trends::top_terms(&store, args.kind.into(), args.since, until, args.top).await?;
    if args.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
        return Ok(());
    }
    // The terminal view shows what is rising beside what is big.
    println!("Rising now (burst score against each term's baseline)");
    print!(
        "{}",
        rising_table(
            &trends::rising_now(
                &store,
                args.since,
                until,
                args.top.min(10),
                trends::bucket_secs(config.trends.bucket_ms)
            )
            .await?,
            &config.display()
        )
    );
    println!("\nTop volume");
    if rows.is_empty() {
        let d = config.display();
        println!(
            "No mentions between {} and {}.",
            d.full(args.since),
            d.full(until)
        );
    } else {
        print!("{}", trends_table(&rows));
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MentionsArgs {
    #[command(subcommand)]
    pub action: Option<MentionsAction>,
    /// Only this sentiment: negative, neutral, positive or unscored.
    #[arg(long)]
    pub sentiment: Option<Label>,
    /// Start of the window: a duration ago (15m, 1h, 7d) or an RFC 3339 time.
    #[arg(long, default_value = "1h", value_parser = time_arg)]
    pub since: DateTime<Utc>,
    /// End of the window (default: now).
    #[arg(long, value_parser = time_arg)]
    pub until: Option<DateTime<Utc>>,
    /// Only this language: en, id or other.
    #[arg(long)]
    pub lang: Option<String>,
    /// Only this platform (x, mastodon, bluesky, reddit, rss, hn...).
    #[arg(long)]
    pub platform: Option<String>,
    /// Only mentions whose text contains this (case-insensitive).
    #[arg(long)]
    pub text: Option<String>,
    /// Only mentions whose sentiment confidence is at least this (0–1); e.g. 0.5, the
    /// negative-comment alerts' default, to see the negatives worth answering first.
    #[arg(long, value_parser = confidence_arg)]
    pub min_confidence: Option<f32>,
    /// Most mentions to show.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10000))]
    pub limit: u64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What `gema mentions` does besides searching.
#[derive(Debug, clap::Subcommand)]
pub enum MentionsAction {
    /// Correct a stored mention's sentiment (shown with the mention from then on, and exported
    /// by `gema mentions corrections` for `gema train --corrections`).
    Correct {
        /// The mention's key, as `gema mentions --json` and the API show it (`platform:id`).
        key: String,
        /// What the sentiment really is: negative, neutral or positive.
        #[arg(value_parser = corrections::parse_label)]
        label: Label,
        /// Who corrects.
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// Write the latest correction of every mention as training rows (JSON lines with `text`,
    /// `label`, `lang`, `source`, `key`, `corrected_by`, `corrected_at`) for
    /// `gema train --corrections FILE`.
    Corrections {
        /// Where to write them (default: standard output).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

/// A confidence between 0 and 1.
fn confidence_arg(s: &str) -> Result<f32, String> {
    mentions::parse_confidence(s).ok_or_else(|| format!("{s:?} is not a confidence from 0 to 1"))
}

pub fn mentions_table(rows: &[MentionHit], display: &Display) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|m| {
            vec![
                display.short(m.created_at),
                m.platform.clone(),
                format!("@{}", m.author_handle),
                m.author_followers.to_string(),
                if m.corrected_label.is_empty() {
                    format!("{} {:+.2}", m.sentiment, m.sentiment_score)
                } else {
                    format!(
                        "{} {:+.2} → {} ({})",
                        m.sentiment, m.sentiment_score, m.corrected_label, m.corrected_by
                    )
                },
                format!("{:.2}", m.sentiment_confidence),
                m.text.clone(),
                m.url.clone(),
            ]
        })
        .collect();
    table::render(
        &[
            &display.header("time"),
            "platform",
            "author",
            "followers",
            "sentiment",
            "confidence",
            "text",
            "link",
        ],
        &body,
        70,
    )
}

pub async fn mentions(config: &Config, args: &MentionsArgs) -> anyhow::Result<()> {
    let store = store::connect(&config.clickhouse).await?;
    match &args.action {
        Some(MentionsAction::Correct { key, label, by }) => {
            let by = corrections::check_by(by).map_err(|e| anyhow::anyhow!("--by: {e}"))?;
            return match corrections::correct(&store, key, *label, by).await? {
                Some(c) => {
                    println!(
                        "{key}: {} → {} (by {}, {})",
                        c.previous_label,
                        c.label,
                        c.corrected_by,
                        c.corrected_at.to_rfc3339()
                    );
                    Ok(())
                }
                None => anyhow::bail!(
                    "no stored mention has the key {key:?} (see `gema mentions --json`)"
                ),
            };
        }
        Some(MentionsAction::Corrections { out }) => {
            let rows = corrections::latest(&store).await?;
            let mut text = String::new();
            for c in &rows {
                text.push_str(&serde_json::to_string(&serde_json::json!({
                    "text": c.text, "label": c.label, "lang": c.lang, "source": "correction",
                    "key": c.key, "corrected_by": c.corrected_by,
                    "corrected_at": c.corrected_at.to_rfc3339(),
                }))?);
                text.push('\n');
            }
            match out {
                Some(path) => {
                    std::fs::write(path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("Wrote {} corrections to {}", rows.len(), path.display());
                }
                None => print!("{text}"),
            }
            return Ok(());
        }
        None => {}
    }
    let filter = MentionFilter {
        since: args.since,
        until: args.until.unwrap_or_else(Utc::now),
        sentiment: args.sentiment,
        lang: args.lang.clone(),
        platform: args.platform.clone(),
        text: args.text.clone(),
        min_confidence: args.min_confidence,
        limit: args.limit,
    };
    let rows = mentions::search(&store, &filter).await?;
    if args.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
    } else if rows.is_empty() {
        println!("No mentions match.");
    } else {
        print!("{}", mentions_table(&rows, &config.display()));
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    /// Most dead letters to show.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn dlq_table(config: &Config, limit: usize) -> anyhow::Result<(usize, String)> {
    let topics = config.kafka.topics();
    let records = read_dead_letters(&config.kafka, &topics.dlq, limit)?;
    let body: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let (reason, source, error) = match &r.dead_letter {
                Some(d) => (
                    d.reason.clone(),
                    format!("{}/{}@{}", d.topic, d.partition, d.offset),
                    d.error.clone(),
                ),
                None => ("?".into(), "?".into(), "no gema headers".into()),
            };
            vec![reason, source, error, r.original.clone()]
        })
        .collect();
    Ok((
        records.len(),
        table::render(&["reason", "source", "error", "original"], &body, 60),
    ))
}

pub fn dlq(config: &Config, args: &DlqArgs) -> anyhow::Result<()> {
    if args.json {
        let topics = config.kafka.topics();
        for r in read_dead_letters(&config.kafka, &topics.dlq, args.limit)? {
            println!("{}", serde_json::to_string(&r)?);
        }
        return Ok(());
    }
    let (n, table) = dlq_table(config, args.limit)?;
    if n == 0 {
        println!("The dead-letter topic is empty.");
    } else {
        print!("{table}");
    }
    Ok(())
}

/// Topic sizes, stage lag and stored mentions.
pub async fn status_lines(config: &Config, store: Option<&Store>) -> anyhow::Result<Vec<String>> {
    let t = config.kafka.topics();
    let k = &config.kafka;
    let mut out = vec![
        format!("Kafka {}:", k.brokers),
        format!(
            "  {:<44} {:>9} messages",
            t.raw,
            lag::topic_size(k, &t.raw)?
        ),
        format!(
            "  {:<44} {:>9} messages",
            t.enriched,
            lag::topic_size(k, &t.enriched)?
        ),
        format!(
            "  {:<44} {:>9} messages",
            t.dlq,
            lag::topic_size(k, &t.dlq)?
        ),
        format!(
            "  stage enrich lag   {:>9}",
            lag::group_lag(k, &t.group(Group::Enrich), &t.raw)?
        ),
        format!(
            "  stage sink-ch lag  {:>9}",
            lag::group_lag(k, &t.group(Group::SinkMentions), &t.enriched)?
        ),
    ];
    if let Some(store) = store {
        out.push(format!(
            "ClickHouse {} ({}): {} distinct mentions in {}.mentions",
            config.clickhouse.url,
            store.version,
            store.count_mentions().await?,
            store.database
        ));
    }
    Ok(out)
}

pub async fn status(config: &Config) -> anyhow::Result<()> {
    let store = store::connect(&config.clickhouse).await?;
    for l in status_lines(config, Some(&store)).await? {
        println!("{l}");
    }
    if !config.sources.is_empty() {
        println!(
            "Sources ({} configured; `gema sources` for details):",
            config.sources.len()
        );
        for v in gema::sources::health::views(&config.sources, &config.state_dir) {
            let h = v.health.clone().unwrap_or_default();
            println!(
                "  {:<20} {:<16} {:<12} {:>7} sent {:>5} errors{}",
                v.name,
                v.kind,
                v.state(),
                h.sent,
                h.errors,
                h.last_error
                    .filter(|_| v.is_unhealthy())
                    .map(|e| format!("  {e}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

pub fn alerts_table(rows: &[gema::query::alerts::StoredAlert], display: &Display) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|a| {
            let link = serde_json::from_str::<Vec<gema::alerts::Sample>>(&a.samples)
                .ok()
                .and_then(|s| s.first().map(|s| s.url.clone()))
                .unwrap_or_default();
            vec![
                display.short_secs(a.detected_at),
                a.severity.clone(),
                a.kind.clone(),
                a.status.clone(),
                a.id.clone(),
                display.localize_utc_clocks(&format!("{} — {}", a.title, a.why), a.detected_at),
                link,
            ]
        })
        .collect();
    if body.is_empty() {
        return "No alerts.\n".into();
    }
    table::render(
        &[
            &display.header("detected"),
            "severity",
            "kind",
            "status",
            "id",
            "what and why",
            "link",
        ],
        &body,
        110,
    )
}

/// Rising terms with their lines over the window (every row has the same steps).
pub fn rising_table(rows: &[gema::query::trends::RisingNow], display: &Display) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|now| {
            let r = &now.rising;
            vec![
                gema::trends::term_label(&r.term),
                format!("{:.1}", r.score),
                r.authors.to_string(),
                format!("{:.1}", r.baseline_mean),
                display.short(r.bucket_start),
                gema::alerts::trend::sparkline(&r.sparkline),
            ]
        })
        .collect();
    let Some(first) = rows.first() else {
        return "Nothing crossed the burst threshold.\n".into();
    };
    let step = first.sparkline_step_secs;
    let step = if step % 60 == 0 {
        format!("{} min", step / 60)
    } else {
        format!("{step} s")
    };
    let line = format!(
        "authors per {step}, {} to {}",
        display.short(first.sparkline_since),
        display.short(first.sparkline_until)
    );
    table::render(
        &[
            "term",
            "score",
            "authors",
            "baseline",
            &display.header("burst"),
            &line,
        ],
        &body,
        40,
    )
}

#[derive(Debug, clap::Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    pub action: Option<AlertAction>,
    /// Start of the window: a duration ago (15m, 1h, 7d) or an RFC 3339 time.
    #[arg(long, default_value = "24h", value_parser = time_arg)]
    pub since: DateTime<Utc>,
    /// Only this kind: negative_comment, negative_spike, emerging_trend or digest.
    #[arg(long, value_parser = ["negative_comment", "negative_spike", "emerging_trend", "digest"])]
    pub kind: Option<String>,
    /// Only this status: new, acknowledged or resolved.
    #[arg(long, value_parser = ["new", "acknowledged", "resolved"])]
    pub status: Option<String>,
    /// Most alerts to show.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10000))]
    pub limit: u64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum AlertAction {
    /// Mark an alert as acknowledged (someone is on it).
    Ack { id: String },
    /// Mark an alert as resolved.
    Resolve { id: String },
    /// Mark an alert as new again.
    Reopen { id: String },
}

pub async fn alerts(config: &Config, args: &AlertsArgs) -> anyhow::Result<()> {
    let store = store::connect(&config.clickhouse).await?;
    if let Some(action) = &args.action {
        let (id, status) = match action {
            AlertAction::Ack { id } => (id, "acknowledged"),
            AlertAction::Resolve { id } => (id, "resolved"),
            AlertAction::Reopen { id } => (id, "new"),
        };
        anyhow::ensure!(
            gema::query::alerts::set_status(&store, id, status).await?,
            "no alert with id {id:?} (see `gema alerts`)"
        );
        println!("Alert {id} is now {status}.");
        return Ok(());
    }
    let rows = gema::query::alerts::list(
        &store,
        args.since,
        Utc::now() + chrono::Duration::minutes(1),
        args.kind.as_deref(),
        args.status.as_deref(),
        args.limit,
    )
    .await?;
    if args.json {
        for r in &rows {
            // `samples` is stored as JSON text; print it as the array it is.
            let mut v = serde_json::to_value(r)?;
            if let Ok(samples) = serde_json::from_str::<serde_json::Value>(&r.samples) {
                v["samples"] = samples;
            }
            println!("{v}");
        }
    } else {
        print!("{}", alerts_table(&rows, &config.display()));
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct RollupArgs {
    /// Start of the range: a duration ago (15m, 1h, 7d) or an RFC 3339 time.
    #[arg(long, default_value = "7d", value_parser = time_arg)]
    pub since: DateTime<Utc>,
    /// End of the range (default: now).
    #[arg(long, value_parser = time_arg)]
    pub until: Option<DateTime<Utc>>,
}

/// `gema rollup`: recomputes the per-minute and per-hour query and term rollups of a range.
pub async fn rollup(config: &Config, args: &RollupArgs) -> anyhow::Result<()> {
    let store = store::connect(&config.clickhouse).await?;
    let until = args.until.unwrap_or_else(Utc::now);
    anyhow::ensure!(
        args.since < until,
        "--since {} is not before --until {}",
        args.since.to_rfc3339(),
        until.to_rfc3339()
    );
    let minutes = gema::store::rollup::rebuild(&store, args.since, until)
        .await
        .context("recomputing the rollups (has `gema migrate` run on this database?)")?;
    println!(
        "Recomputed the query and term rollups of {minutes} minute(s) from {} to {} in database {}",
        args.since.to_rfc3339(),
        until.to_rfc3339(),
        store.database
    );
    Ok(())
}
