//! What an alert is: a deterministic id, a kind, a severity, the tracked query, sample mentions
//! and a human-readable *why*.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::mention::EnrichedMention;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// One negative mention matching a tracked query.
    NegativeComment,
    /// Negative volume of a tracked query far above its baseline.
    NegativeSpike,
    /// A term crossing the burst threshold.
    EmergingTrend,
    /// Alerts held back by the rate limit, summarised.
    Digest,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::NegativeComment => "negative_comment",
            AlertKind::NegativeSpike => "negative_spike",
            AlertKind::EmergingTrend => "emerging_trend",
            AlertKind::Digest => "digest",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn bump(self) -> Severity {
        match self {
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            _ => Severity::Critical,
        }
    }
}

/// A mention quoted in an alert, with what the manager needs to answer it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub key: String,
    pub text: String,
    pub author_handle: String,
    pub author_followers: u64,
    pub url: String,
    pub created_at: DateTime<Utc>,
}

impl From<&EnrichedMention> for Sample {
    fn from(e: &EnrichedMention) -> Self {
        Sample {
            key: e.key.clone(),
            text: e.mention.text.clone(),
            author_handle: e.mention.author.handle.clone(),
            author_followers: e.mention.author.followers.unwrap_or(0),
            url: e.mention.url.clone().unwrap_or_default(),
            created_at: e.mention.created_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Deterministic: the same event always gets the same id, so repeats are dropped.
    pub id: String,
    pub kind: AlertKind,
    pub severity: Severity,
    /// The tracked query it is about, if any.
    pub query: Option<String>,
    /// The term it is about (trends), if any.
    pub term: Option<String>,
    pub title: String,
    /// Why this alert fired, in words.
    pub why: String,
    pub samples: Vec<Sample>,
    /// How many mentions or alerts this one stands for (grouped replies, digests).
    pub count: u32,
    /// The thread grouped into this alert, if any.
    pub thread_id: Option<String>,
    /// Event time of what triggered it.
    pub event_time: DateTime<Utc>,
    /// Wall-clock time the pipeline raised it.
    pub detected_at: DateTime<Utc>,
}

/// A short stable id from the parts that identify an event.
pub fn alert_id(kind: AlertKind, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_str().as_bytes());
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    digest[..10].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinguish_parts() {
        let a = alert_id(AlertKind::NegativeComment, &["q", "x:1"]);
        assert_eq!(a, alert_id(AlertKind::NegativeComment, &["q", "x:1"]));
        assert_ne!(a, alert_id(AlertKind::NegativeComment, &["q", "x:2"]));
        assert_ne!(a, alert_id(AlertKind::NegativeSpike, &["q", "x:1"]));
        assert_ne!(
            alert_id(AlertKind::Digest, &["ab", "c"]),
            alert_id(AlertKind::Digest, &["a", "bc"])
        );
        assert_eq!(a.len(), 20);
    }
}
