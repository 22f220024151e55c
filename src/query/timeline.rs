//! Sentiment over time for one tracked query, and share of voice across tracked queries. Every
//! value is bound on the client with `?`; ClickHouse 18.16 has no `toStartOfInterval` or
//! `WITH FILL`, so buckets are `intDiv(ts, width) * width` and empty buckets are filled here.

use chrono::{DateTime, TimeZone, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::store::client::{query_err, Store, StoreError};
use crate::store::rollup::{HOUR, MINUTE};

/// One time bucket of a tracked query's mentions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineBucket {
    pub bucket_start: DateTime<Utc>,
    pub total: u64,
    pub negative: u64,
    pub neutral: u64,
    pub positive: u64,
    /// (positive - negative) / scored, in [-1, 1]; `None` (JSON null) for a bucket with nothing
    /// scored: a gap, not a neutral hour.
    pub net_sentiment: Option<f64>,
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

/// Buckets of `bucket_s` seconds over `[since, until)` for mentions matching the tracked query
/// `query`, oldest first, every bucket present (empty ones with zero counts). Every bucket is
/// counted whole: the first one from its start, even when `since` falls inside it.
///
/// Buckets of whole minutes read the rollups (`query_minutes`, and `query_hours` for buckets of
/// whole hours), so the cost depends on the window, not on how many mentions it holds. Other
/// widths read `mentions`.
pub async fn sentiment_timeline(
    store: &Store,
    query: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket_s: u32,
) -> Result<Vec<TimelineBucket>, StoreError> {
    let bucket_s = bucket_s.max(1);
    let first = since.timestamp().clamp(0, i64::from(u32::MAX)) as u32 / bucket_s * bucket_s;
    let rows: Vec<BucketRow> = if bucket_s.is_multiple_of(MINUTE) {
        let span = Span::new(first, end_minute(until), bucket_s.is_multiple_of(HOUR));
        let sql = format!(
            "SELECT toUInt32(intDiv(toUInt32(ts), ?) * ?) AS bucket, sum(total) AS total, \
             sum(negative) AS negative, sum(neutral) AS neutral, sum(positive) AS positive \
             FROM ({}) GROUP BY bucket ORDER BY bucket",
            Span::source_sql(true)
        );
        span.bind(
            store.client.query(&sql).bind(bucket_s).bind(bucket_s),
            Some(query),
        )
        .fetch_all()
        .await
        .map_err(query_err("sentiment timeline"))?
    } else {
        store
            .client
            .query(
                "SELECT toUInt32(intDiv(toUInt32(created_at), ?) * ?) AS bucket, count() AS total, \
                 countIf(sentiment = 'negative') AS negative, \
                 countIf(sentiment = 'neutral') AS neutral, \
                 countIf(sentiment = 'positive') AS positive \
                 FROM mentions FINAL \
                 WHERE created_at >= toDateTime(?) AND created_at < toDateTime(?) AND deleted = 0 \
                 AND has(queries, ?) \
                 GROUP BY bucket ORDER BY bucket",
            )
            .bind(bucket_s)
            .bind(bucket_s)
            .bind(first)
            .bind(super::time::end_secs(until))
            .bind(query)
            .fetch_all()
            .await
            .map_err(query_err("sentiment timeline"))?
    };
    Ok(fill(rows, since, until, bucket_s))
}

/// The end of a window rounded up to a whole minute (the rollups' resolution).
fn end_minute(until: DateTime<Utc>) -> u32 {
    let end = super::time::end_secs(until).min(i64::from(u32::MAX - HOUR)) as u32;
    end.div_ceil(MINUTE) * MINUTE
}

/// A window of whole minutes `[from, to)` read from the rollups: whole hours inside it from
/// `query_hours` (when `hours`), the minutes at either edge from `query_minutes`.
struct Span {
    from: u32,
    to: u32,
    /// The whole hours `[hour_from, hour_to)`; empty when no hour fits or hours are not wanted.
    hour_from: u32,
    hour_to: u32,
}

impl Span {
    /// Rows (ts, query, total, negative, neutral, positive, authors) of the window from both
    /// rollups; with `one_query`, only one tracked query's. Bind with [`Span::bind`], passing
    /// the query name exactly when `one_query`.
    fn source_sql(one_query: bool) -> String {
        let q = if one_query { " AND query = ?" } else { "" };
        format!(
            "SELECT hour AS ts, query, total, negative, neutral, positive, authors \
             FROM query_hours FINAL WHERE hour >= toDateTime(?) AND hour < toDateTime(?){q} \
             UNION ALL \
             SELECT minute AS ts, query, total, negative, neutral, positive, authors \
             FROM query_minutes FINAL WHERE ((minute >= toDateTime(?) AND minute < toDateTime(?)) \
             OR (minute >= toDateTime(?) AND minute < toDateTime(?))){q}"
        )
    }

    fn new(from: u32, to: u32, hours: bool) -> Span {
        let to = to.max(from);
        let hour_from = from.div_ceil(HOUR) * HOUR;
        let hour_to = to / HOUR * HOUR;
        if hours && hour_from < hour_to {
            Span {
                from,
                to,
                hour_from,
                hour_to,
            }
        } else {
            // No hour rows: the "left edge" is the whole window and the right edge is empty.
            Span {
                from,
                to,
                hour_from: to,
                hour_to: to,
            }
        }
    }

    /// Binds the window (and `query`) after whatever `q` already bound.
    fn bind(&self, q: clickhouse::query::Query, query: Option<&str>) -> clickhouse::query::Query {
        let mut q = q.bind(self.hour_from).bind(self.hour_to);
        if let Some(name) = query {
            q = q.bind(name);
        }
        q = q
            .bind(self.from)
            .bind(self.hour_from)
            .bind(self.hour_to)
            .bind(self.to);
        if let Some(name) = query {
            q = q.bind(name);
        }
        q
    }
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
            net_sentiment: None,
        };
        while let Some(r) = rows.next_if(|r| i64::from(r.bucket) <= t) {
            if i64::from(r.bucket) == t {
                b.total = r.total;
                b.negative = r.negative;
                b.neutral = r.neutral;
                b.positive = r.positive;
                b.net_sentiment = (r.negative + r.neutral + r.positive > 0)
                    .then(|| net(r.negative, r.neutral, r.positive));
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

/// Share of voice of the tracked queries in `[since, until)`, largest first, from the rollups:
/// the window is widened to whole minutes and distinct authors are a HyperLogLog estimate. A
/// mention matching two queries counts for both.
pub async fn share_of_voice(
    store: &Store,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<Voice>, StoreError> {
    let from = crate::store::rollup::minute_of(since);
    let span = Span::new(from, end_minute(until), true);
    let sql = format!(
        "SELECT query, sum(total) AS mentions, toUInt64(uniqHLL12Merge(authors)) AS authors, \
         sum(negative) AS negative, sum(neutral) AS neutral, sum(positive) AS positive \
         FROM ({}) GROUP BY query HAVING mentions > 0 ORDER BY mentions DESC, query",
        Span::source_sql(false)
    );
    let rows: Vec<VoiceRow> = span
        .bind(store.client.query(&sql), None)
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
        assert!((out[0].net_sentiment.unwrap() + 0.5).abs() < 1e-9);
        assert_eq!(out[1].total, 0);
        assert_eq!(
            out[1].net_sentiment, None,
            "an empty bucket is a gap, not 0"
        );
        assert_eq!(out[2].positive, 2);
        assert!((out[2].net_sentiment.unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn spans_read_whole_hours_from_the_hour_rollup_and_edges_from_minutes() {
        // 00:30 .. 03:15: hours 01:00-03:00 whole, minutes 00:30-01:00 and 03:00-03:15.
        let s = Span::new(1_800, 11_700, true);
        assert_eq!((s.hour_from, s.hour_to), (3_600, 10_800));
        // Within one hour, or hours not wanted: only minutes, the whole window on the left edge.
        let s = Span::new(1_800, 3_000, true);
        assert_eq!((s.hour_from, s.hour_to), (3_000, 3_000));
        let s = Span::new(0, 7_200, false);
        assert_eq!(
            (s.hour_from, s.hour_to, s.from, s.to),
            (7_200, 7_200, 0, 7_200)
        );
        // Aligned on hours: no minute edges at all.
        let s = Span::new(3_600, 10_800, true);
        assert_eq!((s.hour_from, s.hour_to), (3_600, 10_800));
    }

    #[test]
    fn window_ends_round_up_to_minutes() {
        assert_eq!(end_minute(Utc.timestamp_opt(120, 0).unwrap()), 120);
        assert_eq!(end_minute(Utc.timestamp_opt(121, 0).unwrap()), 180);
    }
}
