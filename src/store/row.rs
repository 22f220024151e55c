//! The `mentions` table row (column order = `schemas/clickhouse/0001_mentions.sql`).

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
}

impl From<&EnrichedMention> for MentionRow {
    fn from(e: &EnrichedMention) -> Self {
        let m = &e.mention;
        let metrics = m.metrics.unwrap_or_default();
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
        }
    }
}
