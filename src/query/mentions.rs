//! Searching stored mentions.

use chrono::{DateTime, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::sentiment::Label;
use crate::store::client::{Store, StoreError};

/// Filters for [`search`]; `None` means any.
#[derive(Debug, Clone)]
pub struct MentionFilter {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub sentiment: Option<Label>,
    pub lang: Option<String>,
    pub platform: Option<String>,
    /// Case-insensitive substring of the text.
    pub text: Option<String>,
    /// Only mentions whose sentiment confidence is at least this (0–1).
    pub min_confidence: Option<f32>,
    pub limit: u64,
}

/// A [`MentionFilter::min_confidence`] from text: a number from 0 to 1 (`None` otherwise, NaN
/// included). The CLI and the API both parse it here.
pub fn parse_confidence(s: &str) -> Option<f32> {
    s.parse::<f32>().ok().filter(|c| (0.0..=1.0).contains(c))
}

/// One mention as the CLI shows it.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct MentionHit {
    pub key: String,
    pub platform: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub created_at: DateTime<Utc>,
    pub author_handle: String,
    pub author_followers: u64,
    pub text: String,
    pub url: String,
    pub lang: String,
    pub sentiment: String,
    pub sentiment_score: f32,
    pub sentiment_confidence: f32,
    /// `fast` or `bert`: which sentiment tier decided (the cascade, docs/SENTIMENT.md).
    pub sentiment_tier: String,
    /// A person's correction of the sentiment (`gema mentions correct`), `""` when none.
    pub corrected_label: String,
    /// Who made it.
    pub corrected_by: String,
}

/// Newest mentions first that pass `filter`.
pub async fn search(store: &Store, filter: &MentionFilter) -> Result<Vec<MentionHit>, StoreError> {
    // The latest correction of each mention joins in (ANY LEFT JOIN: ClickHouse 18.16 too; both
    // sides aliased, which modern servers require of joined subqueries).
    let mut sql = String::from(
        "SELECT key, platform, created_at, author_handle, author_followers, text, url, lang, \
         sentiment, sentiment_score, sentiment_confidence, sentiment_tier, corrected_label, \
         corrected_by FROM (SELECT * FROM mentions FINAL \
         WHERE created_at >= toDateTime(?) AND created_at < toDateTime(?) AND deleted = 0",
    );
    // Each optional filter adds one placeholder; values are bound below in the same order.
    if filter.sentiment.is_some() {
        sql.push_str(" AND sentiment = ?");
    }
    if filter.lang.is_some() {
        sql.push_str(" AND lang = ?");
    }
    if filter.platform.is_some() {
        sql.push_str(" AND platform = ?");
    }
    if filter.text.is_some() {
        sql.push_str(" AND positionCaseInsensitiveUTF8(text, ?) > 0");
    }
    if filter.min_confidence.is_some() {
        sql.push_str(" AND sentiment_confidence >= ?");
    }
    sql.push_str(
        ") AS m ANY LEFT JOIN (SELECT key, argMax(label, version) AS corrected_label, \
         argMax(corrected_by, version) AS corrected_by FROM sentiment_corrections GROUP BY key) \
         AS c USING key ORDER BY created_at DESC, key LIMIT ?",
    );
    let mut q = store
        .client
        .query(&sql)
        .bind(filter.since.timestamp().max(0))
        .bind(super::time::end_secs(filter.until));
    if let Some(s) = filter.sentiment {
        q = q.bind(s.as_str());
    }
    if let Some(l) = &filter.lang {
        q = q.bind(l.as_str());
    }
    if let Some(p) = &filter.platform {
        q = q.bind(p.as_str());
    }
    if let Some(t) = &filter.text {
        q = q.bind(t.as_str());
    }
    if let Some(c) = filter.min_confidence {
        q = q.bind(c);
    }
    q.bind(filter.limit)
        .fetch_all()
        .await
        .map_err(|source| StoreError::Query {
            what: "search mentions".into(),
            source,
        })
}
