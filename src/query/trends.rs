//! Top terms by volume over a time window, with their sentiment mix.

use chrono::{DateTime, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::store::client::{Store, StoreError};

/// Which terms to rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TermKind {
    /// Hashtags and keywords.
    All,
    Hashtags,
    Keywords,
    /// @handles mentioned.
    Handles,
}

/// One ranked term.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct TermCount {
    pub term: String,
    pub mentions: u64,
    /// Distinct authors: one spammy account posting 100 times counts once here. ClickHouse's
    /// `uniq`: exact up to 65,536 authors per term (barring 32-bit hash collisions), an
    /// adaptive-sampling estimate above.
    pub authors: u64,
    pub negative: u64,
    pub neutral: u64,
    pub positive: u64,
}

impl TermCount {
    /// Share of scored mentions that are negative, in [0, 1].
    pub fn negative_share(&self) -> f64 {
        let scored = self.negative + self.neutral + self.positive;
        if scored == 0 {
            0.0
        } else {
            self.negative as f64 / scored as f64
        }
    }
}

/// The top `limit` terms of mentions created in `[since, until)`, by mentions then authors.
pub async fn top_terms(
    store: &Store,
    kind: TermKind,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<TermCount>, StoreError> {
    let terms = match kind {
        TermKind::All => "arrayConcat(arrayMap(h -> concat('#', h), hashtags), keywords)",
        TermKind::Hashtags => "arrayMap(h -> concat('#', h), hashtags)",
        TermKind::Keywords => "keywords",
        TermKind::Handles => "arrayMap(h -> concat('@', h), mentions)",
    };
    // FINAL collapses redelivered mentions so every count is exact. The counts are named in an
    // outer query: ClickHouse resolves an alias before a column, so `count() AS mentions` next
    // to the `mentions` column (the handles) would turn the handles into `count()`.
    let sql = format!(
        "SELECT term, n AS mentions, a AS authors, neg AS negative, neu AS neutral, \
         pos AS positive FROM ( \
         SELECT term, count() AS n, uniq(author_id) AS a, countIf(sentiment = 'negative') AS neg, \
         countIf(sentiment = 'neutral') AS neu, countIf(sentiment = 'positive') AS pos \
         FROM mentions FINAL ARRAY JOIN {terms} AS term \
         WHERE created_at >= toDateTime(?) AND created_at < toDateTime(?) AND deleted = 0 \
         GROUP BY term) ORDER BY mentions DESC, authors DESC, term LIMIT ?"
    );
    store
        .client
        .query(&sql)
        .bind(since.timestamp().max(0))
        .bind(super::time::end_secs(until))
        .bind(limit)
        .fetch_all()
        .await
        .map_err(|source| StoreError::Query {
            what: "top terms".into(),
            source,
        })
}

/// A term's strongest burst in the window.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct Rising {
    pub term: String,
    pub score: f32,
    pub authors: u32,
    pub count: u32,
    pub baseline_mean: f32,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub bucket_start: DateTime<Utc>,
    pub sparkline: Vec<u32>,
}

/// "Rising now": terms whose buckets in `[since, until)` crossed the burst threshold, strongest
/// burst first (tracked-query terms `q:`/`qneg:` included).
pub async fn rising(
    store: &Store,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Rising>, StoreError> {
    store
        .client
        .query(
                        // Aliases differ from column names: ClickHouse resolves an alias before a column, and
            // `argMax(authors, score) AS authors` would refer to itself.
            "SELECT term, best AS score, a AS authors, c AS count, m AS baseline_mean, \
             b AS bucket_start, s AS sparkline FROM ( \
             SELECT term, max(score) AS best, argMax(authors, score) AS a, argMax(count, score) AS c, \
             argMax(baseline_mean, score) AS m, argMax(bucket_start, score) AS b, \
             argMax(sparkline, score) AS s \
             FROM trends FINAL WHERE bucket_start >= toDateTime(?) AND bucket_start < toDateTime(?) \
             GROUP BY term) ORDER BY score DESC, term LIMIT ?",
        )
        .bind(since.timestamp().max(0))
        .bind(super::time::end_secs(until))
        .bind(limit)
        .fetch_all()
        .await
        .map_err(|source| StoreError::Query { what: "rising terms".into(), source })
}
