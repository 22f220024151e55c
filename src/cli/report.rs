//! `gema report`: the report of a window against the one before it, printed, written to a file
//! or emailed now (see `gema::report`).

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use gema::config::Config;
use gema::query::time::parse_time;
use gema::report::{self, email, Format, ReportOptions};
use gema::store;

fn time_arg(s: &str) -> Result<DateTime<Utc>, String> {
    parse_time(s, Utc::now())
}

/// `--format` of `gema report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// Markdown.
    Md,
    /// One long CSV table: section,query,item,field,value (see the README).
    Csv,
    /// A self-contained HTML page with the chart as an embedded PNG.
    Html,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Md => Format::Markdown,
            FormatArg::Csv => Format::Csv,
            FormatArg::Html => Format::Html,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Start of the window: a duration ago (24h, 7d) or an RFC 3339 time (default: 24h, or
    /// `digest.since` with --email). The KPIs compare it with the period as long before it.
    #[arg(long, value_parser = time_arg)]
    pub since: Option<DateTime<Utc>>,
    /// End of the window (default: now).
    #[arg(long, value_parser = time_arg)]
    pub until: Option<DateTime<Utc>>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Md)]
    pub format: FormatArg,
    /// Write the report to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Email the report now (HTML with the chart, and a plain-text part) to `digest.to`
    /// through the `[digest]` SMTP server, instead of printing it.
    #[arg(long, conflicts_with_all = ["format", "out"])]
    pub email: bool,
    /// How many negative posts to list.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub top: u64,
}

pub async fn run(config: &Config, args: &ReportArgs) -> anyhow::Result<()> {
    let until = args.until.unwrap_or_else(Utc::now);
    let since = match args.since {
        Some(s) => s,
        None if args.email => until - config.digest.window().map_err(anyhow::Error::msg)?,
        None => until - chrono::Duration::hours(24),
    };
    anyhow::ensure!(
        since < until,
        "--since {} is not before --until {}",
        since.to_rfc3339(),
        until.to_rfc3339()
    );
    if args.email {
        anyhow::ensure!(
            config.digest.enabled(),
            "--email sends to digest.to, which is empty: set [digest] to, from and the SMTP \
             server in the config"
        );
    }
    let store = store::connect(&config.clickhouse).await?;
    let mut opts = ReportOptions::new(
        since,
        until,
        config.tracked.iter().map(|t| t.name.clone()).collect(),
    );
    opts.top_negative = args.top;
    opts.display = config.display.display()?;
    let r = report::build(&store, &opts).await?;
    if args.email {
        email::send(&config.digest, &r).await?;
        eprintln!(
            "Sent the report of {} – {} to {}",
            r.show_time(since),
            r.show_time(until),
            config.digest.to.join(", ")
        );
        return Ok(());
    }
    let text = report::render(&r, args.format.into());
    match &args.out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("Wrote the report to {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}
