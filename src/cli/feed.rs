//! `gema synth`, `gema replay`, and the polling connectors `gema rss`, `gema mastodon`, `gema hn`
//! and `gema bluesky`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use gema::config::Config;
use gema::sources::config::{SourceConfig, SourceKind};
use gema::sources::env::SourceEnv;
use gema::sources::poll::{followed, Poller};
use gema::sources::replay::{self, Progress, ReplayOptions, ReplayProgress, ReplaySummary, Speed};
use gema::sources::synth::{self, SynthOptions};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Valid mentions to generate.
    #[arg(long, default_value_t = 3000)]
    pub count: usize,
    /// Random seed: the same seed gives the same feed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Event time of the first mention (RFC 3339).
    #[arg(long, default_value = "2026-11-26T00:00:00Z")]
    pub start: DateTime<Utc>,
    /// Hours of event time the feed covers.
    #[arg(long, default_value_t = 3.0)]
    pub hours: f64,
    /// Malformed lines to mix in (they must end in the dead-letter topic).
    #[arg(long, default_value_t = 0)]
    pub malformed: usize,
    /// Output file; standard output when absent.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Generate an evaluation scenario instead: a steady background (--per-minute) with
    /// labelled trends, crises, a spam account and a slow rise injected; the ground truth goes to
    /// <out>.truth.json (needs --out). --count and --malformed are ignored.
    #[arg(long, requires = "out")]
    pub scenario: bool,
    /// Generate a stationary feed instead: hundreds of made-up hashtags and keywords at constant
    /// rates (Zipf-distributed, Poisson noise), tracked brands at constant rates and sentiment,
    /// 40,000 authors, and --launches launches after two hours (new hashtags, or quiet ones used
    /// 10–40× as often); the ground truth goes to <out>.truth.json. With `gema eval-trends` it
    /// counts the trends raised by chance, e.g. --hours 24 --per-minute 150.
    #[arg(long, requires = "out", conflicts_with = "scenario")]
    pub stationary: bool,
    /// Stationary feed: launches to inject (0: pure background).
    #[arg(long, default_value_t = 6)]
    pub launches: usize,
    /// Scenario and stationary feed: background mentions per minute.
    #[arg(long, default_value_t = 100)]
    pub per_minute: usize,
    /// Scenario: hashtag launches to inject.
    #[arg(long, default_value_t = 8)]
    pub trends: usize,
    /// Scenario: negative crises to inject.
    #[arg(long, default_value_t = 6)]
    pub crises: usize,
}

/// `<out>.truth.json` beside a scenario feed.
pub fn truth_path(out: &std::path::Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".truth.json");
    PathBuf::from(s)
}

pub fn synth(args: &SynthArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.hours > 0.0,
        "--hours must be positive, got {}",
        args.hours
    );
    if args.scenario || args.stationary {
        let out = args.out.as_ref().expect("clap requires --out");
        let span = Duration::milliseconds((args.hours * 3_600_000.0) as i64);
        let (lines, truth) = if args.stationary {
            gema::sources::stationary::stationary(&gema::sources::stationary::StationaryOptions {
                seed: args.seed,
                start: args.start,
                span,
                per_minute: args.per_minute,
                launches: args.launches,
            })
        } else {
            gema::sources::scenario::scenario(&gema::sources::scenario::ScenarioOptions {
                seed: args.seed,
                start: args.start,
                span,
                per_minute: args.per_minute,
                trends: args.trends,
                crises: args.crises,
            })
        };
        std::fs::write(out, lines.join("\n") + "\n")
            .with_context(|| format!("cannot write {}", out.display()))?;
        let tp = truth_path(out);
        std::fs::write(&tp, serde_json::to_string_pretty(&truth)?)
            .with_context(|| format!("cannot write {}", tp.display()))?;
        eprintln!(
            "Wrote {} mentions to {} and {} events to {}",
            lines.len(),
            out.display(),
            truth.events.len(),
            tp.display()
        );
        return Ok(());
    }
    let lines = synth::generate(&SynthOptions {
        seed: args.seed,
        count: args.count,
        start: args.start,
        span: Duration::milliseconds((args.hours * 3_600_000.0) as i64),
        malformed: args.malformed,
    });
    let mut out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    for l in &lines {
        writeln!(out, "{l}")?;
    }
    out.flush()?;
    if let Some(p) = &args.out {
        eprintln!(
            "Wrote {} lines ({} valid, {} malformed) to {}",
            lines.len(),
            args.count,
            args.malformed,
            p.display()
        );
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// JSONL file, one mention per line.
    pub file: PathBuf,
    /// max, or a factor of event time: 1x (real time), 60x (an hour per minute)...
    #[arg(long, default_value = "max")]
    pub speed: Speed,
    /// Shift event times so the feed's last mention lands when the replay ends (now with
    /// --speed max), so `--since 1h` queries see it and event time never runs ahead of the clock.
    #[arg(long)]
    pub retime: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub async fn replay(config: &Config, args: &ReplayArgs) -> anyhow::Result<()> {
    let opts = ReplayOptions {
        path: args.file.clone(),
        speed: args.speed,
        retime: args.retime,
        progress: None,
    };
    let summary = replay_showing_progress(config, opts, !args.quiet).await?;
    println!("{summary}");
    Ok(())
}

/// Replays `opts` to the raw topic, drawing a progress bar on stderr when `show`.
pub async fn replay_showing_progress(
    config: &Config,
    mut opts: ReplayOptions,
    show: bool,
) -> anyhow::Result<ReplaySummary> {
    let bar = if show {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} [{bar:30}] {msg} {elapsed}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let shown = bar.clone();
    opts.progress = Some(Progress(std::sync::Arc::new(move |p: ReplayProgress| {
        shown.set_length(p.file_len);
        shown.set_position(p.bytes_done);
        shown.set_message(format!("{} sent", p.sent));
    })));
    let summary = replay::replay(&config.kafka, &config.kafka.topics(), &opts).await;
    bar.finish_and_clear();
    Ok(summary?)
}

#[derive(Debug, clap::Args)]
pub struct RssArgs {
    /// RSS, Atom or JSON Feed URLs (news sites, blogs, Google News searches for your brand...).
    #[arg(required = true)]
    pub urls: Vec<String>,
    /// Time between polls: 90s, 5m, 1h...
    #[arg(long, default_value = "5m", value_parser = poll_interval)]
    pub every: std::time::Duration,
    /// Poll once and exit (non-zero when a feed failed), e.g. from cron.
    #[arg(long)]
    pub once: bool,
    /// Where the ids of items already sent are kept, so a restart does not resend them.
    #[arg(long, default_value = ".gema/state/rss-seen.json")]
    pub state: PathBuf,
}

fn poll_interval(s: &str) -> Result<std::time::Duration, String> {
    let d = gema::query::time::parse_duration(s)?;
    if d < Duration::seconds(10) {
        return Err(format!("{s:?}: poll at most every 10 s"));
    }
    d.to_std().map_err(|e| format!("{s:?}: {e}"))
}

/// One source of a poll (a feed, a tag, a query): its name, how many mentions it sent, and
/// why it failed, if it did.
type PollLine = (String, usize, Option<String>);

/// Polls every `every` until Ctrl-C / SIGTERM, or once with `once` (then non-zero when a source
/// failed), printing a line per source.
async fn poll_until_stopped<'a, F>(
    every: std::time::Duration,
    once: bool,
    mut poll: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> std::pin::Pin<
        Box<dyn std::future::Future<Output = anyhow::Result<Vec<PollLine>>> + 'a>,
    >,
{
    let shutdown = tokio_util::sync::CancellationToken::new();
    gema::pipeline::cancel_on_signal(shutdown.clone());
    loop {
        let lines = poll().await?;
        let mut failed = 0;
        for (name, sent, error) in &lines {
            match error {
                None => println!("{name}: {sent} new sent"),
                Some(e) => {
                    failed += 1;
                    eprintln!("{name}: {sent} new sent; {e}");
                }
            }
        }
        if once {
            anyhow::ensure!(failed == 0, "{failed} of {} failed", lines.len());
            return Ok(());
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Polls `source` until Ctrl-C / SIGTERM (or once), with the same connector `gema run` starts
/// for a `[[sources]]` entry.
async fn poll_command(config: &Config, source: SourceConfig, once: bool) -> anyhow::Result<()> {
    let env = SourceEnv::new(
        &config.kafka,
        &config.state_dir,
        &config.tracked,
        Default::default(),
    );
    let poller = Poller::open(&source, &env).await?;
    let poller = tokio::sync::Mutex::new(poller);
    let follow = followed(&source, &env);
    poll_until_stopped(source.every(), once, || {
        Box::pin(async {
            let reports = poller.lock().await.poll(&follow).await?;
            Ok(reports
                .into_iter()
                .map(|r| (r.source, r.sent, r.error.map(|e| e.to_string())))
                .collect())
        })
    })
    .await
}

/// The source a connector command's arguments describe.
fn source(
    kind: SourceKind,
    follow: &[String],
    api: Option<&str>,
    every: std::time::Duration,
    state: &std::path::Path,
) -> SourceConfig {
    SourceConfig {
        api: api.map(str::to_string),
        every_s: Some(every.as_secs()),
        state: Some(state.to_path_buf()),
        ..SourceConfig::new(kind, follow)
    }
}

/// `gema rss`: polls the feeds until Ctrl-C / SIGTERM (or once).
pub async fn rss(config: &Config, args: &RssArgs) -> anyhow::Result<()> {
    let source = source(SourceKind::Rss, &args.urls, None, args.every, &args.state);
    poll_command(config, source, args.once).await
}

#[derive(Debug, clap::Args)]
pub struct MastodonArgs {
    /// Hashtags to follow (with or without `#`), e.g. your brand's and its campaigns'.
    #[arg(required = true)]
    pub tags: Vec<String>,
    /// The instance whose public hashtag timelines are read (it sees the posts it federates).
    #[arg(long, default_value = "https://mastodon.social")]
    pub instance: String,
    /// Time between polls: 30s, 2m, 1h...
    #[arg(long, default_value = "2m", value_parser = poll_interval)]
    pub every: std::time::Duration,
    /// Poll once and exit (non-zero when a tag failed), e.g. from cron.
    #[arg(long)]
    pub once: bool,
    /// Where the newest status id per instance and tag is kept.
    #[arg(long, default_value = ".gema/state/mastodon.json")]
    pub state: PathBuf,
}

/// `gema mastodon`: polls the hashtag timelines until Ctrl-C / SIGTERM (or once).
pub async fn mastodon(config: &Config, args: &MastodonArgs) -> anyhow::Result<()> {
    let source = source(
        SourceKind::Mastodon,
        &args.tags,
        Some(&args.instance),
        args.every,
        &args.state,
    );
    poll_command(config, source, args.once).await
}

#[derive(Debug, clap::Args)]
pub struct HnArgs {
    /// Search terms (your brand's names); each is searched in stories and comments.
    #[arg(required = true)]
    pub queries: Vec<String>,
    /// The HN Search API's base URL.
    #[arg(long, default_value = "https://hn.algolia.com")]
    pub api: String,
    /// Time between polls: 1m, 5m, 1h...
    #[arg(long, default_value = "5m", value_parser = poll_interval)]
    pub every: std::time::Duration,
    /// Poll once and exit (non-zero when a query failed), e.g. from cron.
    #[arg(long)]
    pub once: bool,
    /// Where each query's newest hit is kept.
    #[arg(long, default_value = ".gema/state/hn.json")]
    pub state: PathBuf,
}

/// `gema hn`: searches Hacker News until Ctrl-C / SIGTERM (or once).
pub async fn hn(config: &Config, args: &HnArgs) -> anyhow::Result<()> {
    let source = source(
        SourceKind::Hn,
        &args.queries,
        Some(&args.api),
        args.every,
        &args.state,
    );
    poll_command(config, source, args.once).await
}

#[derive(Debug, clap::Args)]
pub struct BlueskyArgs {
    /// Search queries (your brand's names, hashtags); each is searched newest first.
    #[arg(required = true)]
    pub queries: Vec<String>,
    /// The AppView to search.
    #[arg(long, default_value = "https://public.api.bsky.app")]
    pub api: String,
    /// Time between polls: 30s, 2m, 1h...
    #[arg(long, default_value = "2m", value_parser = poll_interval)]
    pub every: std::time::Duration,
    /// Poll once and exit (non-zero when a query failed), e.g. from cron.
    #[arg(long)]
    pub once: bool,
    /// Where each query's newest post and recent URIs are kept.
    #[arg(long, default_value = ".gema/state/bluesky.json")]
    pub state: PathBuf,
}

/// `gema bluesky`: searches Bluesky until Ctrl-C / SIGTERM (or once).
pub async fn bluesky(config: &Config, args: &BlueskyArgs) -> anyhow::Result<()> {
    let source = source(
        SourceKind::Bluesky,
        &args.queries,
        Some(&args.api),
        args.every,
        &args.state,
    );
    poll_command(config, source, args.once).await
}
