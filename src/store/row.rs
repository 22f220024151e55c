//! The `mentions` table row (column order = `schemas/clickhouse/0001_mentions.sql`, kept by 0003,
//! then the columns 0004 adds).

use chrono::{DateTime, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::mention::EnrichedMention;

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct MentionRow {
    pub key: String,
    pub platform: String,
    pub id: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub ingested_at: DateTime<Utc>,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub enriched_at: DateTime<Utc>,
    pub author_id: String,
    pub author_handle: String,
    pub author_followers: u64,
    pub text: String,
    pub url: String,
    pub lang: String,
    pub sentiment: String,
    pub sentiment_score: f32,
    pub sentiment_confidence: f32,
    pub sentiment_model: String,
    pub hashtags: Vec<String>,
    pub mentions: Vec<String>,
    pub urls: Vec<String>,
    pub keywords: Vec<String>,
    pub queries: Vec<String>,
    pub parent_id: String,
    pub thread_id: String,
    pub likes: u32,
    pub reposts: u32,
    pub replies: u32,
    /// Newest enrichment wins when a redelivered mention collapses.
    pub version: u64,
    /// `fast` or `bert`: the tier whose verdict `sentiment` is (migration 0004).
    pub sentiment_tier: String,
    /// What the cascade did (`not_needed`, `decided`, `queue_full`, `timed_out`); empty when off.
    pub cascade_escalation: String,
    /// The fast tier's verdict (equal to `sentiment` unless the transformer decided).
    pub fast_sentiment: String,
    pub fast_score: f32,
    pub fast_confidence: f32,
}

impl From<&EnrichedMention> for MentionRow {
    fn from(e: &EnrichedMention) -> Self {
        let m = &e.mention;
        let metrics = m.metrics.unwrap_or_default();
        let (tier, escalation, fast) = match &e.cascade {
            Some(c) => (c.tier.as_str(), c.escalation.as_str(), c.fast),
            None => ("fast", "", e.sentiment),
        };
        MentionRow {
            key: e.key.clone(),
            platform: m.platform.clone(),
            id: m.id.clone(),
            created_at: m.created_at,
            ingested_at: m.ingested_at.unwrap_or(e.enriched_at),
            enriched_at: e.enriched_at,
            author_id: m.author.id.clone(),
            author_handle: m.author.handle.clone(),
            author_followers: m.author.followers.unwrap_or(0),
            text: m.text.clone(),
            url: m.url.clone().unwrap_or_default(),
            lang: e.lang.clone(),
            sentiment: e.sentiment.label.as_str().to_string(),
            sentiment_score: e.sentiment.score,
            sentiment_confidence: e.sentiment.confidence,
            sentiment_model: e.sentiment_model.clone(),
            hashtags: e.hashtags.clone(),
            mentions: e.mentions.clone(),
            urls: e.urls.clone(),
            keywords: e.keywords.clone(),
            queries: e.queries.clone(),
            parent_id: m.parent_id.clone().unwrap_or_default(),
            thread_id: m.thread_id.clone().unwrap_or_default(),
            likes: metrics.likes,
            reposts: metrics.reposts,
            replies: metrics.replies,
            version: e.enriched_at.timestamp_millis().max(0) as u64,
            sentiment_tier: tier.to_string(),
            cascade_escalation: escalation.to_string(),
            fast_sentiment: fast.label.as_str().to_string(),
            fast_score: fast.score,
            fast_confidence: fast.confidence,
        }
    }
}

/// The `trends` table row.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct TrendRow {
    pub term: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub bucket_start: DateTime<Utc>,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub bucket_end: DateTime<Utc>,
    pub count: u32,
    pub authors: u32,
    pub baseline_mean: f32,
    pub baseline_std: f32,
    pub score: f32,
    pub sparkline: Vec<u32>,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub detected_at: DateTime<Utc>,
}

impl TrendRow {
    /// Reads a trend event as the trend stage writes it to `<prefix>.trends`.
    pub fn from_json(payload: &[u8]) -> Result<TrendRow, String> {
        #[derive(Deserialize)]
        struct Event {
            term: String,
            bucket_start: DateTime<Utc>,
            bucket_end: DateTime<Utc>,
            count: u32,
            authors: u32,
            baseline_mean: f64,
            baseline_std: f64,
            score: f64,
            #[serde(default)]
            sparkline: Vec<u32>,
            #[serde(default)]
            detected_at: Option<DateTime<Utc>>,
        }
        let e: Event =
            serde_json::from_slice(payload).map_err(|e| format!("invalid trend event: {e}"))?;
        Ok(TrendRow {
            term: e.term,
            bucket_start: e.bucket_start,
            bucket_end: e.bucket_end,
            count: e.count,
            authors: e.authors,
            baseline_mean: e.baseline_mean as f32,
            baseline_std: e.baseline_std as f32,
            score: e.score as f32,
            sparkline: e.sparkline,
            detected_at: e.detected_at.unwrap_or_else(Utc::now),
        })
    }
}

/// The `alerts` table row (samples as JSON text: readable on every ClickHouse version).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct AlertRow {
    pub id: String,
    pub kind: String,
    pub severity: String,
    pub query: String,
    pub term: String,
    pub title: String,
    pub why: String,
    pub samples: String,
    pub count: u32,
    pub thread_id: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub event_time: DateTime<Utc>,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub detected_at: DateTime<Utc>,
    pub version: u64,
}

impl From<&crate::alerts::Alert> for AlertRow {
    fn from(a: &crate::alerts::Alert) -> Self {
        AlertRow {
            id: a.id.clone(),
            kind: a.kind.as_str().to_string(),
            severity: a.severity.as_str().to_string(),
            query: a.query.clone().unwrap_or_default(),
            term: a.term.clone().unwrap_or_default(),
            title: a.title.clone(),
            why: a.why.clone(),
            samples: serde_json::to_string(&a.samples).expect("samples serialise"),
            count: a.count,
            thread_id: a.thread_id.clone().unwrap_or_default(),
            event_time: a.event_time,
            detected_at: a.detected_at,
            version: a.detected_at.timestamp_millis().max(0) as u64,
        }
    }
}

/// The `incidents` table row (samples as JSON text, like the alerts').
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct IncidentRow {
    pub id: String,
    pub query: String,
    pub status: String,
    pub severity: String,
    pub movement: String,
    pub summary: String,
    pub negative_posts: u32,
    pub peak_per_minute: u32,
    pub alert_count: u32,
    pub driving_terms: Vec<String>,
    pub trending_terms: Vec<String>,
    pub samples: String,
    pub alert_ids: Vec<String>,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub opened_at: DateTime<Utc>,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub last_event_at: DateTime<Utc>,
    /// The Unix epoch while not resolved.
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub resolved_at: DateTime<Utc>,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub detected_at: DateTime<Utc>,
    pub version: u64,
}

impl From<&crate::alerts::Incident> for IncidentRow {
    fn from(i: &crate::alerts::Incident) -> Self {
        IncidentRow {
            id: i.id.clone(),
            query: i.query.clone(),
            status: i.status.as_str().to_string(),
            severity: i.severity.as_str().to_string(),
            movement: i.movement.as_str().to_string(),
            summary: i.summary.clone(),
            negative_posts: i.negative_posts,
            peak_per_minute: i.peak_per_minute,
            alert_count: i.alert_count,
            driving_terms: i.driving_terms.clone(),
            trending_terms: i.trending_terms.clone(),
            samples: serde_json::to_string(&i.samples).expect("samples serialise"),
            alert_ids: i.alert_ids.clone(),
            opened_at: i.opened_at,
            last_event_at: i.last_event_at,
            resolved_at: i.resolved_at.unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
            detected_at: i.detected_at,
            version: i.version,
        }
    }
}
