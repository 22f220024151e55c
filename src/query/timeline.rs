//! Sentiment over time for one tracked query, and share of voice across tracked queries. Every
//! value is bound on the client with `?`; ClickHouse 18.16 has no `toStartOfInterval` or
//! `WITH FILL`, so buckets are `intDiv(ts, width) * width` and empty buckets are filled here.

use chrono::{DateTime, TimeZone, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::store::client::{Store, StoreError};

/// One time bucket of a tracked query's mentions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineBucket {
    pub bucket_start: DateTime<Utc>,
    pub total: u64,
    pub negative: u64,
    pub neutral: u64,
    pub positive: u64,
    /// (positive - negative) / scored, in [-1, 1]; 0 for an empty bucket.
    pub net_sentiment: f64,
}

#[derive(Debug, Row, Deserialize)]
struct BucketRow {
    bucket: u32,
    total: u64,
    negative: u64,
    neutral: u64,
    positive: u64,
}

fn net(negative: u64, neutral: u64, positive: u64) -> f64 {
    let scored = negative + neutral + positive;
    if scored == 0 {
        0.0
    } else {
        (positive as f64 - negative as f64) / scored as f64
    }
}

fn query_err(what: &str) -> impl FnOnce(clickhouse::error::Error) -> StoreError + '_ {
    move |source| StoreError::Query {
        what: what.into(),
        source,
    }
}

/// Buckets of `bucket_s` seconds over `[since, until)` for mentions matching the tracked query
/// `query`, oldest first, every bucket present (empty ones with zero counts).
pub async fn sentiment_timeline(
    store: &Store,
    query: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket_s: u32,
) -> Result<Vec<TimelineBucket>, StoreError> {
    let bucket_s = bucket_s.max(1);
    let rows: Vec<BucketRow> = store
        .client
        .query(
            "SELECT toUInt32(intDiv(toUInt32(created_at), ?) * ?) AS bucket, count() AS total, \
             countIf(sentiment = 'negative') AS negative, \
             countIf(sentiment = 'neutral') AS neutral, \
             countIf(sentiment = 'positive') AS positive \
             FROM mentions FINAL \
             WHERE created_at >= toDateTime(?) AND created_at < toDateTime(?) AND has(queries, ?) \
             GROUP BY bucket ORDER BY bucket",
        )
        .bind(bucket_s)
        .bind(bucket_s)
        .bind(since.timestamp().max(0))
        .bind(super::time::end_secs(until))
        .bind(query)
        .fetch_all()
        .await
        .map_err(query_err("sentiment timeline"))?;
    Ok(fill(rows, since, until, bucket_s))
}

/// Every bucket from the one holding `since` to the one before `until`, with counts where a row
/// exists.
fn fill(
    rows: Vec<BucketRow>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket_s: u32,
) -> Vec<TimelineBucket> {
    let w = i64::from(bucket_s);
    let first = since.timestamp().max(0).div_euclid(w) * w;
    let end = until.timestamp().max(0);
    let mut rows = rows.into_iter().peekable();
    let mut out = Vec::new();
    let mut t = first;
    while t < end {
        let mut b = TimelineBucket {
            bucket_start: Utc.timestamp_opt(t, 0).single().unwrap_or_default(),
            total: 0,
            negative: 0,
            neutral: 0,
            positive: 0,
            net_sentiment: 0.0,
        };
        while let Some(r) = rows.next_if(|r| i64::from(r.bucket) <= t) {
            if i64::from(r.bucket) == t {
                b.total = r.total;
                b.negative = r.negative;
                b.neutral = r.neutral;
                b.positive = r.positive;
                b.net_sentiment = net(r.negative, r.neutral, r.positive);
            }
        }
        out.push(b);
        t += w;
    }
    out
}

/// One tracked query's part of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Voice {
    pub query: String,
    pub mentions: u64,
    pub authors: u64,
    /// This query's mentions over all tracked-query mentions in the window, in [0, 1].
    pub share: f64,
    pub negative: u64,
    pub neutral: u64,
    pub positive: u64,
    pub net_sentiment: f64,
}

#[derive(Debug, Row, Deserialize)]
struct VoiceRow {
    query: String,
    mentions: u64,
    authors: u64,
    negative: u64,
    neutral: u64,
    positive: u64,
}

/// Share of voice of the tracked queries in `[since, until)`, largest first. A mention matching
/// two queries counts for both.
pub async fn share_of_voice(
    store: &Store,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<Voice>, StoreError> {
    let rows: Vec<VoiceRow> = store
        .client
        .query(
            "SELECT q AS query, count() AS mentions, uniqExact(author_id) AS authors, \
             countIf(sentiment = 'negative') AS negative, \
             countIf(sentiment = 'neutral') AS neutral, \
             countIf(sentiment = 'positive') AS positive \
             FROM mentions FINAL ARRAY JOIN queries AS q \
             WHERE created_at >= toDateTime(?) AND created_at < toDateTime(?) \
             GROUP BY q ORDER BY mentions DESC, q",
        )
        .bind(since.timestamp().max(0))
        .bind(super::time::end_secs(until))
        .fetch_all()
        .await
        .map_err(query_err("share of voice"))?;
    let total: u64 = rows.iter().map(|r| r.mentions).sum();
    Ok(rows
        .into_iter()
        .map(|r| Voice {
            share: if total == 0 {
                0.0
            } else {
                r.mentions as f64 / total as f64
            },
            net_sentiment: net(r.negative, r.neutral, r.positive),
            query: r.query,
            mentions: r.mentions,
            authors: r.authors,
            negative: r.negative,
            neutral: r.neutral,
            positive: r.positive,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(bucket: u32, neg: u64, pos: u64) -> BucketRow {
        BucketRow {
            bucket,
            total: neg + pos,
            negative: neg,
            neutral: 0,
            positive: pos,
        }
    }

    #[test]
    fn fill_covers_every_bucket_and_computes_net() {
        let since = Utc.timestamp_opt(3_630, 0).unwrap();
        let until = Utc.timestamp_opt(3_600 * 4, 0).unwrap();
        let out = fill(
            vec![row(3_600, 3, 1), row(3 * 3_600, 0, 2)],
            since,
            until,
            3_600,
        );
        let starts: Vec<i64> = out.iter().map(|b| b.bucket_start.timestamp()).collect();
        assert_eq!(starts, vec![3_600, 7_200, 10_800]);
        assert_eq!(out[0].total, 4);
        assert!((out[0].net_sentiment + 0.5).abs() < 1e-9);
        assert_eq!(out[1].total, 0);
        assert_eq!(out[1].net_sentiment, 0.0);
        assert_eq!(out[2].positive, 2);
        assert!((out[2].net_sentiment - 1.0).abs() < 1e-9);
    }
}
