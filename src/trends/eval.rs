//! Scoring detected alerts against a scenario's ground truth (`gema eval-trends`).

use chrono::Duration;
use serde::Serialize;

use crate::sources::scenario::{Truth, TruthEvent};

/// What eval needs of one alert.
#[derive(Debug, Clone)]
pub struct Detected {
    pub kind: String,
    pub query: String,
    pub term: String,
    pub why: String,
    /// End of the bucket that fired.
    pub event_time: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TypeReport {
    pub kind: String,
    pub events: usize,
    pub detected: usize,
    pub recall: f64,
    /// Events whose first alert came within 2 buckets of their start (delay ≤ 2).
    pub within_two_buckets: usize,
    /// Median delay from the event's start to the end of the first bucket that alerted, in buckets.
    pub median_delay_buckets: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub per_type: Vec<TypeReport>,
    /// Emerging-trend and negative-spike alerts.
    pub alerts: usize,
    pub true_alerts: usize,
    pub precision: f64,
    /// Alerts about the spam account's terms (must be 0).
    pub spam_alerts: usize,
    /// Alerts about the slow organic rise (must be 0).
    pub slow_rise_alerts: usize,
    /// Alerts that matched no injected event (false alerts; 0 on a stationary feed is the
    /// target).
    pub false_alerts: usize,
    /// Those alerts, one line each.
    pub unmatched: Vec<String>,
}

fn about(a: &Detected, e: &TruthEvent) -> bool {
    let term_hit = !a.term.is_empty() && e.terms.contains(&a.term);
    let query_hit = !a.query.is_empty() && a.query == e.query && a.term.is_empty();
    let spike_hit = a.kind == "negative_spike" && a.query == e.query && e.kind == "crisis";
    term_hit || query_hit || spike_hit
}

fn in_window(a: &Detected, e: &TruthEvent, bucket: Duration) -> bool {
    a.event_time >= e.start && a.event_time <= e.end + bucket * 3
}

/// Scores `alerts` (any kinds; only emerging-trend and negative-spike count) against `truth`.
pub fn evaluate(truth: &Truth, alerts: &[Detected], bucket: Duration) -> EvalReport {
    let counted: Vec<&Detected> = alerts
        .iter()
        .filter(|a| a.kind == "emerging_trend" || a.kind == "negative_spike")
        .collect();
    let injected: Vec<&TruthEvent> = truth
        .events
        .iter()
        .filter(|e| e.kind == "trend" || e.kind == "crisis")
        .collect();
    let mut per_type = Vec::new();
    for kind in ["trend", "crisis"] {
        let events: Vec<&&TruthEvent> = injected.iter().filter(|e| e.kind == kind).collect();
        let mut delays: Vec<f64> = Vec::new();
        for e in &events {
            let first = counted
                .iter()
                .filter(|a| about(a, e) && in_window(a, e, bucket))
                .filter(|a| kind == "trend" || a.kind == "negative_spike")
                .map(|a| a.event_time)
                .min();
            if let Some(t) = first {
                delays.push(
                    (t - e.start).num_milliseconds() as f64 / bucket.num_milliseconds() as f64,
                );
            }
        }
        delays.sort_by(f64::total_cmp);
        let median = (!delays.is_empty()).then(|| {
            let n = delays.len();
            if n % 2 == 1 {
                delays[n / 2]
            } else {
                (delays[n / 2 - 1] + delays[n / 2]) / 2.0
            }
        });
        per_type.push(TypeReport {
            kind: kind.into(),
            events: events.len(),
            detected: delays.len(),
            within_two_buckets: delays.iter().filter(|d| **d <= 2.0).count(),
            recall: if events.is_empty() {
                1.0
            } else {
                delays.len() as f64 / events.len() as f64
            },
            median_delay_buckets: median,
        });
    }
    let mut unmatched = Vec::new();
    let mut true_alerts = 0;
    for a in &counted {
        if injected
            .iter()
            .any(|e| about(a, e) && in_window(a, e, bucket))
        {
            true_alerts += 1;
        } else {
            unmatched.push(format!(
                "{} {} {} at {}",
                a.kind,
                if a.term.is_empty() { "-" } else { &a.term },
                if a.query.is_empty() { "-" } else { &a.query },
                a.event_time.format("%H:%M")
            ));
        }
    }
    let on = |kind: &str| {
        let terms: Vec<&String> = truth
            .events
            .iter()
            .filter(|e| e.kind == kind)
            .flat_map(|e| e.terms.iter())
            .collect();
        counted
            .iter()
            .filter(|a| {
                terms.contains(&&a.term) || terms.iter().any(|t| a.why.contains(t.as_str()))
            })
            .count()
    };
    EvalReport {
        per_type,
        alerts: counted.len(),
        true_alerts,
        precision: if counted.is_empty() {
            1.0
        } else {
            true_alerts as f64 / counted.len() as f64
        },
        spam_alerts: on("spam"),
        slow_rise_alerts: on("slow_rise"),
        false_alerts: unmatched.len(),
        unmatched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(m: i64) -> chrono::DateTime<chrono::Utc> {
        "2026-11-26T00:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            + Duration::minutes(m)
    }

    fn ev(kind: &str, term: &str, query: &str, start: i64) -> TruthEvent {
        TruthEvent {
            kind: kind.into(),
            term: term.into(),
            query: query.into(),
            start: t(start),
            end: t(start + 15),
            terms: vec![term.into()],
            mentions: 10,
        }
    }

    fn det(kind: &str, term: &str, query: &str, at: i64) -> Detected {
        Detected {
            kind: kind.into(),
            query: query.into(),
            term: term.into(),
            why: String::new(),
            event_time: t(at),
        }
    }

    #[test]
    fn scores_recall_precision_and_delay() {
        let truth = Truth {
            start: t(0),
            end: t(300),
            background_per_minute: 100,
            events: vec![
                ev("trend", "#a", "kopikita", 30),
                ev("trend", "#b", "nusapay", 90),
                ev("crisis", "#c", "nusapay", 150),
                ev("spam", "#spam", "", 0),
            ],
        };
        let alerts = vec![
            det("emerging_trend", "#a", "", 32),
            det("negative_spike", "#c", "nusapay", 151),
            det("emerging_trend", "#spam", "", 200),
            det("negative_comment", "", "nusapay", 151),
        ];
        let r = evaluate(&truth, &alerts, Duration::minutes(1));
        assert_eq!((r.per_type[0].detected, r.per_type[0].events), (1, 2));
        assert_eq!(r.per_type[0].median_delay_buckets, Some(2.0));
        assert_eq!(r.per_type[0].within_two_buckets, 1);
        assert_eq!(r.per_type[1].recall, 1.0);
        assert_eq!((r.alerts, r.true_alerts, r.spam_alerts), (3, 2, 1));
        assert_eq!((r.unmatched.len(), r.false_alerts), (1, 1));
    }
}
