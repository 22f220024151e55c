//! Process-wide counters for every stage, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters of all stages in this process.
#[derive(Debug, Default)]
pub struct Metrics {
    pub enrich_received: Counter,
    pub enrich_enriched: Counter,
    /// Mentions the sentiment cascade queued for the transformer tier.
    pub cascade_escalated: Counter,
    /// Queued mentions the transformer decided in time.
    pub cascade_decided: Counter,
    /// Mentions the cascade wanted to escalate but its queue was full (fast label stands).
    pub cascade_queue_full: Counter,
    /// Queued mentions whose verdict did not come within `max_wait_ms` (fast label stands).
    pub cascade_timed_out: Counter,
    /// Rejected messages by reason (few fixed reason codes).
    pub dead_letters: Mutex<BTreeMap<String, u64>>,
    pub sink_rows: Counter,
    pub sink_inserts: Counter,
    pub stage_restarts: Counter,
    pub alerts_raised: Counter,
    pub alerts_delivered: Counter,
    /// Incident versions the router delivered.
    pub incidents_delivered: Counter,
    pub alerts_suppressed: Counter,
    pub webhook_sent: Counter,
    pub webhook_failed: Counter,
    pub webhook_dropped: Counter,
    pub trend_occurrences: Counter,
    pub trend_late: Counter,
    pub trend_events: Counter,
    /// Term occurrences left out because even alone they exceed the terms topic's limit.
    pub terms_too_large: Counter,
    /// Per `[[sources]]` connector running in this process, by name.
    pub sources: Mutex<BTreeMap<String, SourceStats>>,
}

/// One connector's counters (see [`crate::sources::health::Tracker`]).
#[derive(Debug, Default, Clone)]
pub struct SourceStats {
    pub kind: String,
    /// Mentions Kafka stored.
    pub sent: u64,
    /// Failed polls, requests and stream sessions.
    pub errors: u64,
    /// Whether its last poll or stream works.
    pub up: bool,
}

impl Metrics {
    pub fn dead_lettered(&self, reason: &str) {
        *self
            .dead_letters
            .lock()
            .unwrap()
            .entry(reason.to_string())
            .or_default() += 1;
    }

    /// Updates source `name`'s counters (`kind`, when not empty, names its connector).
    pub fn source(&self, name: &str, kind: &str, f: impl FnOnce(&mut SourceStats)) {
        let mut sources = self.sources.lock().unwrap();
        let s = sources.entry(name.to_string()).or_default();
        if !kind.is_empty() {
            s.kind = kind.to_string();
        }
        f(s);
    }

    pub fn dead_letter_total(&self) -> u64 {
        self.dead_letters.lock().unwrap().values().sum()
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
            ));
        };
        counter(
            "gema_enrich_received_total",
            "Messages read from mentions.raw.",
            self.enrich_received.get(),
        );
        counter(
            "gema_enrich_enriched_total",
            "Mentions written to mentions.enriched.",
            self.enrich_enriched.get(),
        );
        counter(
            "gema_cascade_escalated_total",
            "Mentions queued for the transformer sentiment tier.",
            self.cascade_escalated.get(),
        );
        counter(
            "gema_cascade_decided_total",
            "Queued mentions the transformer tier decided in time.",
            self.cascade_decided.get(),
        );
        counter(
            "gema_cascade_queue_full_total",
            "Mentions not escalated because the transformer queue was full (fast label kept).",
            self.cascade_queue_full.get(),
        );
        counter(
            "gema_cascade_timed_out_total",
            "Queued mentions whose transformer verdict came too late (fast label kept).",
            self.cascade_timed_out.get(),
        );
        counter(
            "gema_sink_rows_total",
            "Rows committed to ClickHouse.",
            self.sink_rows.get(),
        );
        counter(
            "gema_sink_inserts_total",
            "INSERT statements committed to ClickHouse.",
            self.sink_inserts.get(),
        );
        counter(
            "gema_terms_too_large_total",
            "Term occurrences left out: alone over the terms topic's record limit.",
            self.terms_too_large.get(),
        );
        counter(
            "gema_stage_restarts_total",
            "Stages restarted after an error.",
            self.stage_restarts.get(),
        );
        out.push_str("# HELP gema_dead_letters_total Messages sent to the dead-letter topic.\n");
        out.push_str("# TYPE gema_dead_letters_total counter\n");
        for (reason, n) in self.dead_letters.lock().unwrap().iter() {
            out.push_str(&format!(
                "gema_dead_letters_total{{reason=\"{reason}\"}} {n}\n"
            ));
        }
        let sources = self.sources.lock().unwrap();
        if !sources.is_empty() {
            for (name, help, kind) in [
                (
                    "gema_source_sent_total",
                    "Mentions a connector sent to Kafka.",
                    "counter",
                ),
                (
                    "gema_source_errors_total",
                    "A connector's failed polls, requests and streams.",
                    "counter",
                ),
                (
                    "gema_source_up",
                    "1 when a connector's last poll or stream works.",
                    "gauge",
                ),
            ] {
                out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
                for (source, s) in sources.iter() {
                    let v = match name {
                        "gema_source_sent_total" => s.sent,
                        "gema_source_errors_total" => s.errors,
                        _ => u64::from(s.up),
                    };
                    out.push_str(&format!(
                        "{name}{{source=\"{source}\",kind=\"{}\"}} {v}\n",
                        s.kind
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_reasons() {
        let m = Metrics::default();
        m.enrich_received.add(3);
        m.dead_lettered("invalid_json");
        let text = m.render();
        assert!(text.contains("gema_enrich_received_total 3\n"));
        assert!(text.contains("gema_dead_letters_total{reason=\"invalid_json\"} 1\n"));
        assert_eq!(m.dead_letter_total(), 1);
    }
}
