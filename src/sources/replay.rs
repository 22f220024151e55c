//! `gema replay`: a JSONL file → `mentions.raw`, optionally paced by event time.
//!
//! Every non-blank line is sent, valid or not: the enrich stage is the one place that validates,
//! so malformed lines end in the dead-letter topic with their reason instead of vanishing here.
//! Replay only reports them (and refuses lines too large for Kafka).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

use crate::kafka::dlq::DeadLetter;
use crate::kafka::limits::{record_bytes, record_limit};
use crate::kafka::KafkaConfig;
use crate::kafka::{self, Topics};
use crate::mention::Mention;

/// How fast to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// As fast as Kafka takes it.
    Max,
    /// Event time × this factor (1 = real time, 60 = an hour per minute).
    Factor(f64),
}

impl std::str::FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        let n = s.trim_end_matches(['x', 'X']);
        match n.parse::<f64>() {
            Ok(f) if f > 0.0 && f.is_finite() => Ok(Speed::Factor(f)),
            _ => Err(format!(
                "invalid speed {s:?}: use max, or a factor such as 1x or 60x"
            )),
        }
    }
}

/// What to replay and how.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub path: PathBuf,
    pub speed: Speed,
    /// Shift event times so the feed ends now (`max`) or starts now (paced).
    pub retime: bool,
    /// Told how far the replay is, every 1,000 lines and at the end (the CLI draws a bar).
    pub progress: Option<Progress>,
}

/// How far a replay is: bytes of the file read, its size, records sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayProgress {
    pub bytes_done: u64,
    pub file_len: u64,
    pub sent: u64,
}

/// A receiver of [`ReplayProgress`].
#[derive(Clone)]
pub struct Progress(pub std::sync::Arc<dyn Fn(ReplayProgress) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

/// What a replay did.
#[derive(Debug, Default, Clone)]
pub struct ReplaySummary {
    pub lines: u64,
    pub blank: u64,
    /// Records acknowledged by Kafka (valid and malformed).
    pub sent: u64,
    pub valid: u64,
    /// Malformed lines sent on for the enrich stage to dead-letter, by reason.
    pub malformed: BTreeMap<String, u64>,
    /// Line numbers (1-based) and reasons of lines too large for the raw topic, sent straight
    /// to the dead-letter topic (cut to fit, with their length and SHA-256 in headers).
    pub dead_lettered: Vec<(u64, String)>,
    pub elapsed: StdDuration,
    /// The first and last event time sent (after `--retime`'s shift).
    pub event_times: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Whole days between the last event time and the end of the replay, when at least one:
    /// live alerts fire as they are detected, but windows ending now (the dashboard's,
    /// `--since 24h`) show none of the feed.
    pub days_old: Option<i64>,
}

impl fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(f, "Replay summary")?;
        writeln!(f, "  lines read      {:>9}", self.lines)?;
        writeln!(
            f,
            "  sent to Kafka   {:>9}  ({:.0} msgs/s)",
            self.sent,
            self.sent as f64 / secs
        )?;
        writeln!(f, "    valid         {:>9}", self.valid)?;
        let bad: u64 = self.malformed.values().sum();
        writeln!(
            f,
            "    malformed     {:>9}  (the enrich stage dead-letters these)",
            bad
        )?;
        for (reason, n) in &self.malformed {
            writeln!(f, "      {reason:<14}{n:>8}")?;
        }
        writeln!(f, "  blank lines     {:>9}", self.blank)?;
        writeln!(
            f,
            "  too large       {:>9}  (sent to the dead-letter topic, cut to fit)",
            self.dead_lettered.len()
        )?;
        for (line, reason) in self.dead_lettered.iter().take(10) {
            writeln!(f, "    line {line}: {reason}")?;
        }
        if let Some((first, last)) = self.event_times {
            writeln!(
                f,
                "  event times     {} – {} UTC",
                first.format("%Y-%m-%d %H:%M"),
                last.format("%Y-%m-%d %H:%M")
            )?;
        }
        if let Some(days) = self.days_old {
            writeln!(
                f,
                "  warning: the feed ends {days} day(s) before now. Its alerts fire as they are \
                 detected, but the dashboard and `--since 24h` show none of it: query with \
                 --since/--until around those times, or replay with --retime to move the feed \
                 to now."
            )?;
        }
        write!(f, "  elapsed         {:>8.2}s", secs)
    }
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Kafka producer for {brokers}: {source}")]
    Kafka { brokers: String, source: KafkaError },
    #[error(transparent)]
    Topics(#[from] crate::kafka::topics::TopicError),
}

fn open(path: &Path) -> Result<BufReader<std::fs::File>, ReplayError> {
    std::fs::File::open(path)
        .map(|f| BufReader::with_capacity(1 << 20, f))
        .map_err(|source| ReplayError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads each line as bytes (lines need not be UTF-8), without the line ending.
fn for_each_line(
    path: &Path,
    mut f: impl FnMut(u64, &[u8]) -> Result<(), ReplayError>,
) -> Result<(), ReplayError> {
    let mut reader = open(path)?;
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        buf.clear();
        let read = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| ReplayError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        if read == 0 {
            return Ok(());
        }
        n += 1;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        f(n, &buf)?;
    }
}

/// First and last event time of a feed.
type TimeRange = (DateTime<Utc>, DateTime<Utc>);

/// First and last event time among the valid lines.
fn time_range(path: &Path) -> Result<Option<TimeRange>, ReplayError> {
    let mut range: Option<TimeRange> = None;
    for_each_line(path, |_, line| {
        if let Ok(m) = Mention::parse(line) {
            range = Some(match range {
                None => (m.created_at, m.created_at),
                Some((a, b)) => (a.min(m.created_at), b.max(m.created_at)),
            });
        }
        Ok(())
    })?;
    Ok(range)
}

/// How far `--retime` moves every event time of a feed spanning `range` (first, last), replayed
/// from `now` at `speed`: the last event lands when the replay ends (at once at max speed, after
/// span / factor when paced). One shift for all, so the gaps between mentions are kept.
pub fn retime_shift(
    range: (DateTime<Utc>, DateTime<Utc>),
    speed: Speed,
    now: DateTime<Utc>,
) -> Duration {
    let (first, last) = range;
    match speed {
        Speed::Max => now - last,
        Speed::Factor(f) => {
            let replay_ms = ((last - first).num_milliseconds() as f64 / f) as i64;
            now + Duration::milliseconds(replay_ms) - last
        }
    }
}

/// Replays `opts.path` into the raw topic (created if missing) and waits for every delivery.
pub async fn replay(
    config: &KafkaConfig,
    topics: &Topics,
    opts: &ReplayOptions,
) -> Result<ReplaySummary, ReplayError> {
    kafka::topics::ensure_topics(config, topics).await?;
    let producer = kafka::producer(config).map_err(|source| ReplayError::Kafka {
        brokers: config.brokers.clone(),
        source,
    })?;
    let range = time_range(&opts.path)?;
    let now = Utc::now();
    // Retimed, the feed's last event lands when the replay ends: at once at max speed, after
    // (span / factor) when paced. Event times then never run ahead of the wall clock.
    let shift = match (opts.retime, range) {
        (true, Some(range)) => retime_shift(range, opts.speed, now),
        _ => Duration::zero(),
    };
    let first_event = range.map(|r| r.0 + shift);
    let file_len = std::fs::metadata(&opts.path).map(|m| m.len()).unwrap_or(0);
    // The largest record the raw and dead-letter topics take, as the broker says.
    let limit = record_limit(config, &[&topics.raw, &topics.dlq]).await;
    let report = |bytes_done: u64, sent: u64| {
        if let Some(p) = &opts.progress {
            (p.0)(ReplayProgress {
                bytes_done,
                file_len,
                sent,
            });
        }
    };

    let started = Instant::now();
    let mut summary = ReplaySummary::default();
    let mut in_flight: VecDeque<DeliveryFuture> = VecDeque::new();
    let mut reader = open(&opts.path)?;
    let mut line = Vec::new();
    let mut bytes_done = 0u64;
    let name = opts
        .path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    loop {
        line.clear();
        // A local file read is quick; blocking the runtime thread for it is fine in a CLI command.
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| ReplayError::Read {
                path: opts.path.clone(),
                source,
            })?;
        if read == 0 {
            break;
        }
        bytes_done += read as u64;
        summary.lines += 1;
        let n = summary.lines;
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            summary.blank += 1;
            continue;
        }
        let (key, payload, malformed) = match Mention::parse(&line) {
            Ok(mut m) => {
                m.created_at += shift;
                if let (Speed::Factor(f), Some(first)) = (opts.speed, first_event) {
                    let due = StdDuration::from_secs_f64(
                        (m.created_at - first).num_milliseconds().max(0) as f64 / 1000.0 / f,
                    );
                    let elapsed = started.elapsed();
                    if due > elapsed {
                        tokio::time::sleep(due - elapsed).await;
                    }
                }
                m.ingested_at = Some(Utc::now());
                (
                    m.key(),
                    serde_json::to_vec(&m).expect("a mention serialises"),
                    None,
                )
            }
            Err(e) => (format!("replay:{name}:{n}"), line.clone(), Some(e.reason())),
        };
        if record_bytes(Some(key.as_bytes()), &payload, None) > limit {
            // Too large for the raw topic: kept in the dead-letter topic, cut to fit.
            let error = format!(
                "{} bytes, over the raw topic's record limit of {limit}",
                line.len()
            );
            let mut dead = DeadLetter {
                stage: "replay".into(),
                reason: "too_large".into(),
                error: error.clone(),
                topic: opts.path.display().to_string(),
                partition: -1,
                offset: n as i64,
                truncated: None,
            };
            let kept = dead.fit(Some(key.as_bytes()), &line, limit);
            let headers = dead.headers();
            send(
                &producer,
                &topics.dlq,
                &key,
                kept,
                Some(headers),
                &mut in_flight,
                &mut summary,
                config,
            )
            .await?;
            summary.dead_lettered.push((n, error));
            continue;
        }
        match malformed {
            None => summary.valid += 1,
            Some(reason) => *summary.malformed.entry(reason.to_string()).or_default() += 1,
        }
        send(
            &producer,
            &topics.raw,
            &key,
            &payload,
            None,
            &mut in_flight,
            &mut summary,
            config,
        )
        .await?;
        if n % 1000 == 0 {
            report(bytes_done, summary.sent);
        }
    }
    while let Some(d) = in_flight.pop_front() {
        ack(d, &mut summary, config).await?;
    }
    report(bytes_done, summary.sent);
    summary.elapsed = started.elapsed();
    summary.event_times = range.map(|(first, last)| (first + shift, last + shift));
    summary.days_old = summary
        .event_times
        .map(|(_, last)| (Utc::now() - last).num_days())
        .filter(|d| *d >= 1);
    Ok(summary)
}

async fn ack(
    d: DeliveryFuture,
    summary: &mut ReplaySummary,
    config: &KafkaConfig,
) -> Result<(), ReplayError> {
    match d.await {
        Ok(Ok(_)) => {
            summary.sent += 1;
            Ok(())
        }
        Ok(Err((source, _))) => Err(ReplayError::Kafka {
            brokers: config.brokers.clone(),
            source,
        }),
        Err(_) => Err(ReplayError::Kafka {
            brokers: config.brokers.clone(),
            source: KafkaError::Canceled,
        }),
    }
}

#[allow(clippy::too_many_arguments)]
async fn send(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
    headers: Option<OwnedHeaders>,
    in_flight: &mut VecDeque<DeliveryFuture>,
    summary: &mut ReplaySummary,
    config: &KafkaConfig,
) -> Result<(), ReplayError> {
    // Bound memory: at most this many records awaiting their delivery report.
    while in_flight.len() >= 50_000 {
        let d = in_flight.pop_front().expect("non-empty");
        ack(d, summary, config).await?;
    }
    loop {
        let mut record = FutureRecord::to(topic).key(key).payload(payload);
        if let Some(h) = &headers {
            record = record.headers(h.clone());
        }
        match producer.send_result(record) {
            Ok(d) => {
                in_flight.push_back(d);
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                match in_flight.pop_front() {
                    Some(d) => ack(d, summary, config).await?,
                    None => tokio::time::sleep(StdDuration::from_millis(5)).await,
                }
            }
            Err((source, _)) => {
                return Err(ReplayError::Kafka {
                    brokers: config.brokers.clone(),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_summary_warns_when_the_feed_is_older_than_the_windows_ending_now() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let old = ReplaySummary {
            event_times: Some((at("2026-11-26T00:00:00Z"), at("2026-11-26T02:00:00Z"))),
            days_old: Some(10),
            ..ReplaySummary::default()
        };
        let text = old.to_string();
        assert!(
            text.contains("event times     2026-11-26 00:00 – 2026-11-26 02:00 UTC"),
            "{text}"
        );
        assert!(
            text.contains("the feed ends 10 day(s) before now") && text.contains("--retime"),
            "{text}"
        );
        let fresh = ReplaySummary {
            days_old: None,
            ..old
        };
        assert!(!fresh.to_string().contains("warning"));
    }
    use super::*;

    #[test]
    fn retime_moves_an_old_feed_into_the_last_day_keeping_its_gaps() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let now = at("2026-12-06T12:00:00Z");
        // Ten days old, three mentions 5 and 55 minutes apart.
        let times = [
            at("2026-11-26T03:00:00Z"),
            at("2026-11-26T03:05:00Z"),
            at("2026-11-26T04:00:00Z"),
        ];
        let shift = retime_shift((times[0], times[2]), Speed::Max, now);
        let moved: Vec<DateTime<Utc>> = times.iter().map(|t| *t + shift).collect();
        assert_eq!(moved[2], now, "the last mention lands now");
        assert!(moved.iter().all(|t| *t > now - Duration::hours(24)));
        assert_eq!(moved[1] - moved[0], Duration::minutes(5));
        assert_eq!(moved[2] - moved[1], Duration::minutes(55));
        // Paced at 60x, the hour takes a minute: the last mention lands as the replay ends.
        let shift = retime_shift((times[0], times[2]), Speed::Factor(60.0), now);
        assert_eq!(times[2] + shift, now + Duration::minutes(1));
        assert_eq!(times[0] + shift, now - Duration::minutes(59));
    }

    #[test]
    fn parses_speeds() {
        assert_eq!("max".parse::<Speed>().unwrap(), Speed::Max);
        assert_eq!("60x".parse::<Speed>().unwrap(), Speed::Factor(60.0));
        assert_eq!("1".parse::<Speed>().unwrap(), Speed::Factor(1.0));
        assert!("fast".parse::<Speed>().unwrap_err().contains("fast"));
        assert!("0x".parse::<Speed>().is_err());
    }
}
