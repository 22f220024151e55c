//! The wording of trend and spike alerts: what the trend stage's events become when they are
//! worth a person's attention, each explaining itself (who, when, against what usual level, and
//! for a negative spike the words driving it and the posts behind it).

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};

use super::alert::alert_id;
use super::{Alert, AlertKind, Sample, Severity};
use crate::trends::{Term, TrendEvent};

/// Buckets of negative-mention context kept per query for explaining spikes.
const CONTEXT_BUCKETS: usize = 120;

/// Term counts and samples of negative mentions of one query, per bucket.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct QueryContext {
    buckets: VecDeque<(i64, HashMap<String, u32>, Vec<Sample>)>,
}

impl QueryContext {
    pub fn add(&mut self, bucket: i64, terms: &[String], sample: &Sample) {
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
    /// bucket's samples, most-followed authors first. The bucket just before (`bucket − width`)
    /// is left out of the comparison: a burst is often found in its second bucket (the trend
    /// detector also tests two buckets together), and its start must not hide its cause.
    pub fn explain(&self, bucket: i64, width: i64) -> (Vec<(String, u32, u32)>, Vec<Sample>) {
        let mut spike: HashMap<String, u32> = HashMap::new();
        let mut before: HashMap<String, u32> = HashMap::new();
        let mut samples = Vec::new();
        for (b, counts, s) in &self.buckets {
            if *b == bucket {
                spike = counts.clone();
                samples = s.clone();
            } else if *b < bucket - width {
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
        why.push_str(&format!("{RISING}{}", others.join(", ")));
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

/// Where an emerging-trend alert's `why` names the terms rising with its own.
const RISING: &str = "; rising with it: ";
/// Most terms named as rising with the leading one.
const MAX_RISING: usize = 8;

/// The emerging-trend alerts of one bucket raised by several states (one per terms partition:
/// `[trend_stage] state = "per-partition"`) as one alert with the id `id`: the one with the most
/// authors leads (then the higher severity, then the term's name, so the order they arrive in
/// does not matter), and the others' terms, with those rising with them, are named as rising
/// with it. `None` for no alerts.
pub fn merge_emerging(members: &[Alert], id: &str) -> Option<Alert> {
    let mut sorted: Vec<&Alert> = members.iter().collect();
    sorted.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(b.severity.cmp(&a.severity))
            .then(a.term.cmp(&b.term))
    });
    let (top, rest) = sorted.split_first()?;
    let mut merged = (*top).clone();
    merged.id = id.to_string();
    merged.severity = sorted
        .iter()
        .map(|a| a.severity)
        .max()
        .unwrap_or(top.severity);
    merged.detected_at = sorted
        .iter()
        .map(|a| a.detected_at)
        .max()
        .unwrap_or(top.detected_at);
    let (own, mut named) = match top.why.split_once(RISING) {
        Some((own, list)) => (
            own.to_string(),
            list.split(", ").map(String::from).collect(),
        ),
        None => (top.why.clone(), Vec::new()),
    };
    for a in rest {
        let Some(term) = &a.term else { continue };
        named.push(format!("{term} ({} authors)", a.count));
        if let Some((_, list)) = a.why.split_once(RISING) {
            named.extend(list.split(", ").map(String::from));
        }
    }
    named.truncate(MAX_RISING);
    merged.why = if named.is_empty() {
        own
    } else {
        format!("{own}{RISING}{}", named.join(", "))
    };
    Some(merged)
}

/// Where a negative spike's `why` names the terms driving it.
const DRIVING: &str = "; driving it: ";

/// The terms a negative-spike alert's `why` names as driving it, strongest first (what
/// [`query_alert`] wrote: `driving it: #nusapaydown (10 in the spike, 0 before), hilang (...)`).
pub fn driving_terms(why: &str) -> Vec<String> {
    let Some((_, list)) = why.split_once(DRIVING) else {
        return Vec::new();
    };
    list.split(" before), ")
        .filter_map(|part| part.split_once(" (").map(|(t, _)| t.to_string()))
        .collect()
}

pub fn query_alert(
    e: &TrendEvent,
    contexts: &HashMap<String, QueryContext>,
    now: DateTime<Utc>,
) -> Option<Alert> {
    let term = Term::parse(&e.term);
    if let Term::QueryNegative(q) = term {
        let (terms, samples) = contexts
            .get(q)
            .map(|c| {
                c.explain(
                    e.bucket_start.timestamp_millis(),
                    (e.bucket_end - e.bucket_start).num_milliseconds(),
                )
            })
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
            why.push_str(&format!("{DRIVING}{}", parts.join(", ")));
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
    let Term::QueryVolume(q) = term else {
        return None;
    };
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
    fn emerging_alerts_of_one_bucket_merge_whatever_their_order() {
        let now = Utc::now();
        let a = emerging_trend_alert(
            &[event("pandan", 20, 19.8), event("#kopikitasenja", 40, 39.8)],
            now,
        )
        .unwrap();
        let b = emerging_trend_alert(&[event("@kopikita", 12, 8.0)], now).unwrap();
        let c = emerging_trend_alert(&[event("senja", 50, 9.0)], now).unwrap();
        let one = merge_emerging(&[a.clone(), b.clone(), c.clone()], "bucket").unwrap();
        assert_eq!(one, merge_emerging(&[b, c, a], "bucket").unwrap());
        assert_eq!(one.id, "bucket");
        assert_eq!(one.term.as_deref(), Some("senja"), "the most authors lead");
        assert_eq!(one.count, 50);
        assert!(
            one.why.ends_with(
                "; rising with it: #kopikitasenja (40 authors), pandan (20 authors), @kopikita (12 authors)"
            ),
            "{}",
            one.why
        );
        assert_eq!(merge_emerging(&[], "x"), None);
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
        // The burst began in the bucket before: that is not its usual level.
        for _ in 0..8 {
            c.add(spike_ms - 60_000, &["#nusapaydown".into()], &sample);
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
        let terms = driving_terms(&a.why);
        assert!(terms.len() >= 2, "{terms:?}");
        assert!(terms.contains(&"#nusapaydown".to_string()), "{terms:?}");
        assert!(terms.contains(&"saldo".to_string()), "{terms:?}");
        assert_eq!(a.samples.len(), 5);
    }

    #[test]
    fn sparkline_scales_to_the_max() {
        assert_eq!(sparkline(&[0, 1, 2, 4, 8]), "▁▂▃▅█");
    }
}
