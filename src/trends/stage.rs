//! The trend stage (`gema trends-stage`, consumer group `<prefix>-trends`): term occurrences →
//! detectors → trend events (`<prefix>.trends`) and alert candidates (`<prefix>.alerts.raw`).
//!
//! Three detectors run side by side: `[trends]` over hashtags and handles and `[keywords]` over
//! keywords and bigrams (emerging-trend alerts), and `[spikes]` over tracked-query volume
//! `q:<name>` and negative volume `qneg:<name>` (negative-spike alerts). Their state is
//! snapshotted to `<state_dir>/<prefix>-{trends,keywords,spikes}.json` every 30 s and on
//! shutdown, and restored at start.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use crate::alerts::alert::alert_id;
use crate::alerts::{Alert, AlertKind, Sample, Severity};
use crate::config::Config;
use crate::error::StageError;
use crate::kafka::{self, offsets::commit_now, progress::PartitionProgress, OffsetTracker, Topics};
use crate::metrics::Metrics;

use super::record::TermRecord;
use super::{Detector, DetectorConfig, DetectorSnapshot, Observed, TrendEvent};

/// How long the input may be quiet before event time is moved to the wall clock, so the last
/// buckets of a stream that stopped still close.
const IDLE_FLUSH: Duration = Duration::from_secs(3);
const SNAPSHOT_EVERY: Duration = Duration::from_secs(30);
/// Buckets of negative-mention context kept per query for explaining spikes.
const CONTEXT_BUCKETS: usize = 120;

fn is_query_term(term: &str) -> bool {
    term.starts_with("q:") || term.starts_with("qneg:")
}

/// Term counts and samples of negative mentions of one query, per bucket.
#[derive(Default)]
struct QueryContext {
    buckets: VecDeque<(i64, HashMap<String, u32>, Vec<Sample>)>,
}

impl QueryContext {
    fn add(&mut self, bucket: i64, terms: &[String], sample: &Sample) {
        let pos = match self.buckets.iter().position(|(b, _, _)| *b == bucket) {
            Some(p) => p,
            None => {
                self.buckets.push_back((bucket, HashMap::new(), Vec::new()));
                self.buckets.make_contiguous().sort_by_key(|(b, _, _)| *b);
                while self.buckets.len() > CONTEXT_BUCKETS {
                    self.buckets.pop_front();
                }
                match self.buckets.iter().position(|(b, _, _)| *b == bucket) {
                    Some(p) => p,
                    None => return,
                }
            }
        };
        let (_, counts, samples) = &mut self.buckets[pos];
        for t in terms {
            *counts.entry(t.clone()).or_default() += 1;
        }
        if samples.len() < 20 {
            samples.push(sample.clone());
        }
    }

    /// Terms over-represented in `bucket` against the buckets before it, strongest first, and the
    /// bucket's samples, most-followed authors first.
    fn explain(&self, bucket: i64) -> (Vec<(String, u32, u32)>, Vec<Sample>) {
        let mut spike: HashMap<String, u32> = HashMap::new();
        let mut before: HashMap<String, u32> = HashMap::new();
        let mut samples = Vec::new();
        for (b, counts, s) in &self.buckets {
            if *b == bucket {
                spike = counts.clone();
                samples = s.clone();
            } else if *b < bucket {
                for (t, n) in counts {
                    *before.entry(t.clone()).or_default() += n;
                }
            }
        }
        let n_spike: u32 = spike.values().sum::<u32>().max(1);
        let n_before: u32 = before.values().sum::<u32>().max(1);
        let mut scored: Vec<(f64, String, u32, u32)> = spike
            .iter()
            .filter(|(_, n)| **n >= 3)
            .map(|(t, n)| {
                let b = before.get(t).copied().unwrap_or(0);
                let ratio =
                    ((*n as f64 + 0.5) / n_spike as f64) / ((b as f64 + 0.5) / n_before as f64);
                (ratio * (*n as f64).sqrt(), t.clone(), *n, b)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        samples.sort_by_key(|s| std::cmp::Reverse(s.author_followers));
        samples.truncate(5);
        (
            scored
                .into_iter()
                .take(5)
                .map(|(_, t, n, b)| (t, n, b))
                .collect(),
            samples,
        )
    }
}

/// A compact line of bars for a sparkline.
pub fn sparkline(values: &[u32]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    values
        .iter()
        .map(|v| BARS[((*v as usize) * 7).div_ceil(max as usize).min(7)])
        .collect()
}

fn window(e: &TrendEvent) -> String {
    format!(
        "{}–{} UTC",
        e.bucket_start.format("%H:%M"),
        e.bucket_end.format("%H:%M")
    )
}

/// "in 10:05–10:06 UTC against a usual 0.2 ± 1.0<unit> (burst score 4.8); recent buckets ▁▂█":
/// the facts every trend and spike alert explains itself with.
fn burst_facts(e: &TrendEvent, unit: &str) -> String {
    format!(
        "in {} against a usual {:.1} ± {:.1}{unit} (burst score {:.1}); recent buckets {}",
        window(e),
        e.baseline_mean,
        e.baseline_std,
        e.score,
        sparkline(&e.sparkline)
    )
}

fn severity_of(e: &TrendEvent) -> Severity {
    if e.authors >= 100 || e.score >= 30.0 {
        Severity::High
    } else if e.authors >= 20 || e.score >= 10.0 {
        Severity::Medium
    } else {
        Severity::Low
    }
}

/// One emerging-trend alert per closed bucket: its strongest term, naming the others rising with
/// it, so a burst of related words is one alert, not ten.
pub fn emerging_trend_alert(events: &[TrendEvent], now: DateTime<Utc>) -> Option<Alert> {
    let top = events.iter().max_by(|a, b| a.score.total_cmp(&b.score))?;
    let others: Vec<String> = events
        .iter()
        .filter(|e| e.term != top.term && e.bucket_start == top.bucket_start)
        .take(8)
        .map(|e| format!("{} ({} authors)", e.term, e.authors))
        .collect();
    let mut why = format!(
        "{} distinct authors used {} {}",
        top.authors,
        top.term,
        burst_facts(top, " per bucket")
    );
    if !others.is_empty() {
        why.push_str(&format!("; rising with it: {}", others.join(", ")));
    }
    Some(Alert {
        id: alert_id(AlertKind::EmergingTrend, &[&top.id()]),
        kind: AlertKind::EmergingTrend,
        severity: severity_of(top),
        query: None,
        term: Some(top.term.clone()),
        title: format!("{} is trending", top.term),
        why,
        samples: Vec::new(),
        count: top.authors,
        thread_id: None,
        event_time: top.bucket_end,
        detected_at: now,
    })
}

fn query_alert(
    e: &TrendEvent,
    contexts: &HashMap<String, QueryContext>,
    now: DateTime<Utc>,
) -> Option<Alert> {
    if let Some(q) = e.term.strip_prefix("qneg:") {
        let (terms, samples) = contexts
            .get(q)
            .map(|c| c.explain(e.bucket_start.timestamp_millis()))
            .unwrap_or_default();
        let mut why = format!(
            "{} distinct authors posted negative mentions matching \"{q}\" {}",
            e.authors,
            burst_facts(e, "")
        );
        if !terms.is_empty() {
            let parts: Vec<String> = terms
                .iter()
                .map(|(t, n, b)| format!("{t} ({n} in the spike, {b} before)"))
                .collect();
            why.push_str(&format!("; driving it: {}", parts.join(", ")));
        }
        return Some(Alert {
            id: alert_id(AlertKind::NegativeSpike, &[&e.id()]),
            kind: AlertKind::NegativeSpike,
            severity: severity_of(e).bump(),
            query: Some(q.to_string()),
            term: terms.first().map(|t| t.0.clone()),
            title: format!("Negative spike about {q}"),
            why,
            samples,
            count: e.authors,
            thread_id: None,
            event_time: e.bucket_end,
            detected_at: now,
        });
    }
    let q = e.term.strip_prefix("q:")?;
    Some(Alert {
        id: alert_id(AlertKind::EmergingTrend, &[&e.id()]),
        kind: AlertKind::EmergingTrend,
        severity: severity_of(e),
        query: Some(q.to_string()),
        term: None,
        title: format!("Mentions of {q} are surging"),
        why: format!(
            "{} distinct authors mentioned \"{q}\" {}",
            e.authors,
            burst_facts(e, "")
        ),
        samples: Vec::new(),
        count: e.authors,
        thread_id: None,
        event_time: e.bucket_end,
        detected_at: now,
    })
}

/// The three detectors: hashtags and handles (`[trends]`), keywords and bigrams (`[keywords]`),
/// tracked-query volume and negative volume (`[spikes]`).
struct Detectors {
    tags: Detector,
    words: Detector,
    spikes: Detector,
}

impl Detectors {
    fn load(config: &Config) -> Detectors {
        Detectors {
            tags: load(config, "trends", &config.trends),
            words: load(config, "keywords", &config.keywords),
            spikes: load(config, "spikes", &config.spikes),
        }
    }

    fn save(&self, config: &Config) {
        save(config, "trends", &self.tags);
        save(config, "keywords", &self.words);
        save(config, "spikes", &self.spikes);
    }

    fn pick(&mut self, term: &str) -> &mut Detector {
        if is_query_term(term) {
            &mut self.spikes
        } else if term.starts_with('#') || term.starts_with('@') {
            &mut self.tags
        } else {
            &mut self.words
        }
    }

    fn tracked_terms(&self) -> usize {
        self.tags.tracked_terms() + self.words.tracked_terms() + self.spikes.tracked_terms()
    }

    /// Closes what the watermark (the oldest partition's newest event, minus each detector's
    /// lateness) lets close; returns (term events, query events).
    fn advance_until(
        &mut self,
        config: &Config,
        oldest: Option<i64>,
    ) -> (Vec<TrendEvent>, Vec<TrendEvent>) {
        let until = |lateness_ms: u64| {
            let ms = oldest
                .unwrap_or(i64::MIN)
                .saturating_sub(lateness_ms as i64);
            DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
        };
        let mut terms = self
            .tags
            .advance_until(until(config.trends.allowed_lateness_ms))
            .trends;
        terms.extend(
            self.words
                .advance_until(until(config.keywords.allowed_lateness_ms))
                .trends,
        );
        (
            terms,
            self.spikes
                .advance_until(until(config.spikes.allowed_lateness_ms))
                .trends,
        )
    }

    /// On a quiet input, moves each detector that has data to the wall clock. (Moving an empty
    /// detector would make a replay of older mentions that starts later entirely late.)
    fn idle_flush(&mut self, now: DateTime<Utc>) -> (Vec<TrendEvent>, Vec<TrendEvent>) {
        let flush = |d: &mut Detector| {
            if d.watermark().is_some() {
                d.advance_to(now).trends
            } else {
                Vec::new()
            }
        };
        let mut terms = flush(&mut self.tags);
        terms.extend(flush(&mut self.words));
        (terms, flush(&mut self.spikes))
    }
}

fn state_path(config: &Config, name: &str) -> PathBuf {
    config
        .state_dir
        .join(format!("{}-{name}.json", config.kafka.topic_prefix))
}

fn load(config: &Config, name: &str, cfg: &DetectorConfig) -> Detector {
    let path = state_path(config, name);
    let restored = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<DetectorSnapshot>(&bytes).ok())
        .and_then(|snap| Detector::restore(cfg.clone(), snap).ok());
    match restored {
        Some(d) => {
            tracing::info!(path = %path.display(), terms = d.tracked_terms(), "Restored detector state");
            d
        }
        None => Detector::new(cfg.clone()).expect("validated at config load"),
    }
}

fn save(config: &Config, name: &str, d: &Detector) {
    let path = state_path(config, name);
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(&config.state_dir)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec(&d.snapshot()).expect("snapshot serialises"),
        )?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        tracing::warn!(path = %path.display(), error = %e, "Cannot save detector state");
    }
}

/// Runs the trend stage until `shutdown` is cancelled.
pub async fn run(
    config: &Config,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), StageError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let (consumer, producer) =
        kafka::stage_clients(&config.kafka, &topics.group("trends"), &topics.terms, true)?;
    let mut detectors = Detectors::load(config);
    let mut contexts: HashMap<String, QueryContext> = HashMap::new();
    let mut tracker = OffsetTracker::new();
    let mut last_input = Instant::now();
    let mut last_save = Instant::now();
    let bucket_ms = config.spikes.bucket_ms as i64;
    // Event-time progress per input partition (the enrich stage's low watermark carried on each
    // record): the watermark is the oldest of them over the assigned partitions, minus the
    // allowed lateness, so neither a terms partition nor a raw partition read ahead of the others
    // makes theirs late (src/kafka/progress.rs).
    let mut progress = PartitionProgress::default();
    tracing::info!(topic = %topics.terms, "Trend stage started");

    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = tokio::time::timeout(Duration::from_millis(500), consumer.recv()) => m,
        };
        let mut received = 0usize;
        let mut next = first;
        loop {
            match next {
                Ok(Ok(msg)) => {
                    received += 1;
                    let payload = msg.payload().unwrap_or(&[]);
                    match serde_json::from_slice::<TermRecord>(payload) {
                        Ok(record) => {
                            // The producer's low watermark; a record without one (an older
                            // producer) vouches only for its own newest occurrence.
                            let vouched =
                                record.watermark.map(|w| w.timestamp_millis()).or_else(|| {
                                    record
                                        .occurrences
                                        .iter()
                                        .map(|o| o.event_time.timestamp_millis())
                                        .max()
                                });
                            if let Some(p) = vouched {
                                progress.saw(msg.partition(), p);
                            }
                            let query = record.term.strip_prefix("qneg:").map(str::to_string);
                            let detector = detectors.pick(&record.term);
                            for occ in record.occurrences() {
                                metrics.trend_occurrences.inc();
                                if let Observed::Late { .. } = detector.observe(&occ) {
                                    metrics.trend_late.inc();
                                }
                            }
                            if let Some(q) = query {
                                let ctx = contexts.entry(q).or_default();
                                for o in &record.occurrences {
                                    if let Some(c) = &o.context {
                                        let ms = o.event_time.timestamp_millis();
                                        ctx.add(ms - ms.rem_euclid(bucket_ms), &c.terms, &c.sample);
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(offset = msg.offset(), error = %e, "Skipping a malformed term record")
                        }
                    }
                    tracker.track(msg.topic(), msg.partition(), msg.offset());
                }
                Ok(Err(e)) => progress.consumer_error(e),
                Err(_) => {}
            }
            if received >= 5000 {
                break;
            }
            next = match tokio::time::timeout(Duration::from_millis(20), consumer.recv()).await {
                Ok(r) => Ok(r),
                Err(_) => break,
            };
        }
        let now = Utc::now();
        let oldest = progress.low_watermark(&consumer);
        let (mut terms, mut queries) = detectors.advance_until(config, oldest);
        if received > 0 {
            last_input = Instant::now();
        } else if last_input.elapsed() >= IDLE_FLUSH {
            let (t, q) = detectors.idle_flush(now);
            terms.extend(t);
            queries.extend(q);
        }
        let mut deliveries = Vec::new();
        for e in terms.iter().chain(queries.iter()) {
            metrics.trend_events.inc();
            let json = serde_json::to_vec(e).expect("a trend event serialises");
            deliveries.push(send(&producer, &topics.trends, &e.term, &json)?);
        }
        // One emerging-trend alert per closed bucket of the term detectors.
        let mut by_bucket: Vec<Vec<TrendEvent>> = Vec::new();
        for e in terms {
            match by_bucket
                .iter_mut()
                .find(|b| b[0].bucket_start == e.bucket_start)
            {
                Some(b) => b.push(e),
                None => by_bucket.push(vec![e]),
            }
        }
        let mut alerts: Vec<Alert> = by_bucket
            .iter()
            .filter_map(|b| emerging_trend_alert(b, now))
            .collect();
        alerts.extend(
            queries
                .iter()
                .filter_map(|e| query_alert(e, &contexts, now)),
        );
        for a in &alerts {
            metrics.alerts_raised.inc();
            let key = a
                .query
                .clone()
                .or_else(|| a.term.clone())
                .unwrap_or_default();
            let json = serde_json::to_vec(a).expect("an alert serialises");
            deliveries.push(send(&producer, &topics.alerts_raw, &key, &json)?);
        }
        kafka::delivery::acknowledged(deliveries, "deliver a trend record").await?;
        tracker.store(&consumer);
        if last_save.elapsed() >= SNAPSHOT_EVERY {
            detectors.save(config);
            last_save = Instant::now();
        }
    }
    detectors.save(config);
    commit_now(&consumer).map_err(StageError::kafka("commit offsets on shutdown"))?;
    tracing::info!(
        terms = detectors.tracked_terms(),
        "Trend stage stopped after saving its state"
    );
    Ok(())
}

fn send(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
) -> Result<rdkafka::producer::DeliveryFuture, StageError> {
    producer
        .send_result(FutureRecord::to(topic).key(key).payload(payload))
        .map_err(|(source, _)| StageError::Kafka {
            action: "queue a trend record",
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(term: &str, authors: u32, score: f64) -> TrendEvent {
        TrendEvent {
            term: term.into(),
            bucket_start: "2026-11-26T10:05:00Z".parse().unwrap(),
            bucket_end: "2026-11-26T10:06:00Z".parse().unwrap(),
            count: authors as u64,
            authors,
            baseline_mean: 0.2,
            baseline_std: 1.0,
            score,
            sparkline: vec![0, 1, 0, authors],
        }
    }

    #[test]
    fn one_emerging_alert_per_bucket_names_the_rest() {
        let a = emerging_trend_alert(
            &[event("pandan", 20, 19.8), event("#kopikitasenja", 40, 39.8)],
            Utc::now(),
        )
        .unwrap();
        assert_eq!(a.term.as_deref(), Some("#kopikitasenja"));
        assert!(
            a.why
                .contains("40 distinct authors used #kopikitasenja in 10:05–10:06 UTC"),
            "{}",
            a.why
        );
        assert!(
            a.why.contains("rising with it: pandan (20 authors)"),
            "{}",
            a.why
        );
        assert_eq!(
            a.id,
            emerging_trend_alert(&[event("#kopikitasenja", 40, 39.8)], Utc::now())
                .unwrap()
                .id
        );
    }

    #[test]
    fn spike_alert_explains_with_over_represented_terms() {
        let mut contexts = HashMap::new();
        let mut c = QueryContext::default();
        let sample = Sample {
            key: "x:1".into(),
            text: "saldo hilang".into(),
            author_handle: "a".into(),
            author_followers: 10,
            url: "u".into(),
            created_at: Utc::now(),
        };
        let spike_ms = event("x", 1, 1.0).bucket_start.timestamp_millis();
        for i in 0..10 {
            c.add(
                spike_ms - 60_000 * (i + 1),
                &["app".into(), "slow".into()],
                &sample,
            );
        }
        for _ in 0..30 {
            c.add(
                spike_ms,
                &["#nusapaydown".into(), "saldo".into(), "app".into()],
                &sample,
            );
        }
        contexts.insert("nusapay".to_string(), c);
        let a = query_alert(&event("qneg:nusapay", 30, 29.8), &contexts, Utc::now()).unwrap();
        assert_eq!(a.kind, AlertKind::NegativeSpike);
        assert_eq!(a.query.as_deref(), Some("nusapay"));
        assert!(a.why.contains("driving it: "), "{}", a.why);
        let driving = a.why.split("driving it: ").nth(1).unwrap();
        assert!(
            driving.starts_with("#nusapaydown (30 in the spike, 0 before)")
                || driving.starts_with("saldo"),
            "{driving}"
        );
        assert!(!driving.starts_with("app"), "{driving}");
        assert_eq!(a.samples.len(), 5);
    }

    #[test]
    fn sparkline_scales_to_the_max() {
        assert_eq!(sparkline(&[0, 1, 2, 4, 8]), "▁▂▃▅█");
    }
}
