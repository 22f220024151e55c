//! Headline numbers per tracked query (mentions, negative share, reach) against the period
//! before, and the authors with the widest reach: what a manager reads first.

use chrono::{DateTime, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::store::client::{query_err, Store, StoreError};

/// One tracked query's numbers in one window.
#[derive(Debug, Clone, Default, PartialEq, Row, Serialize, Deserialize)]
pub struct Period {
    pub mentions: u64,
    pub negative: u64,
    /// Mentions with a sentiment (negative, neutral or positive; not `unscored`).
    pub scored: u64,
    /// Sum of the followers of the distinct authors (each author once, at their largest
    /// follower count in the window): how many accounts could have seen the mentions.
    pub reach: u64,
}

impl Period {
    /// Negative mentions over scored mentions, in [0, 1]; `None` with nothing scored.
    pub fn negative_share(&self) -> Option<f64> {
        (self.scored > 0).then(|| self.negative as f64 / self.scored as f64)
    }
}

/// A tracked query's headline: this window, the one before it, and the changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Headline {
    pub query: String,
    pub mentions: u64,
    pub negative: u64,
    pub negative_share: Option<f64>,
    pub reach: u64,
    pub previous: Period,
    pub previous_negative_share: Option<f64>,
    /// Relative change of mentions (0.5 = +50 %); `None` when the period before had none.
    pub mentions_change: Option<f64>,
    /// Change of the negative share in points of share (0.1 = ten points more negative);
    /// `None` when either period has nothing scored.
    pub negative_share_change: Option<f64>,
    /// Relative change of reach; `None` when the period before had no reach.
    pub reach_change: Option<f64>,
}

fn relative(now: u64, before: u64) -> Option<f64> {
    (before > 0).then(|| (now as f64 - before as f64) / before as f64)
}

impl Headline {
    /// `now` against `before` for `query`.
    pub fn new(query: &str, now: &Period, before: &Period) -> Headline {
        let share = now.negative_share();
        let previous_share = before.negative_share();
        Headline {
            query: query.into(),
            mentions: now.mentions,
            negative: now.negative,
            negative_share: share,
            reach: now.reach,
            previous: before.clone(),
            previous_negative_share: previous_share,
            mentions_change: relative(now.mentions, before.mentions),
            negative_share_change: share.zip(previous_share).map(|(a, b)| a - b),
            reach_change: relative(now.reach, before.reach),
        }
    }
}

#[derive(Debug, Row, Deserialize)]
struct PeriodRow {
    query: String,
    mentions: u64,
    negative: u64,
    scored: u64,
    reach: u64,
}

/// Each tracked query's [`Period`] of mentions created in `[since, until)`.
async fn periods(
    store: &Store,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<(String, Period)>, StoreError> {
    // Per (query, author) first, so an author counts once in reach however often they post.
    let rows: Vec<PeriodRow> = store
        .client
        .query(
            "SELECT q AS query, sum(n) AS mentions, sum(neg) AS negative, sum(sc) AS scored, \
             sum(f) AS reach FROM ( \
             SELECT arrayJoin(queries) AS q, author_id, count() AS n, \
             countIf(sentiment = 'negative') AS neg, countIf(sentiment != 'unscored') AS sc, \
             max(author_followers) AS f \
             FROM mentions FINAL \
             WHERE created_at >= toDateTime(?) AND created_at < toDateTime(?) AND deleted = 0 \
             GROUP BY q, author_id) GROUP BY q ORDER BY q",
        )
        .bind(since.timestamp().max(0))
        .bind(super::time::end_secs(until))
        .fetch_all()
        .await
        .map_err(query_err("headline"))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.query,
                Period {
                    mentions: r.mentions,
                    negative: r.negative,
                    scored: r.scored,
                    reach: r.reach,
                },
            )
        })
        .collect())
}

/// The headline of every query in `queries` (in that order, zeros for a quiet one) for
/// `[since, until)` against the window of the same length just before it.
pub async fn headline(
    store: &Store,
    queries: &[String],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<Headline>, StoreError> {
    let previous_since = since - (until - since);
    let now = periods(store, since, until).await?;
    let before = periods(store, previous_since, since).await?;
    let find = |rows: &[(String, Period)], q: &str| {
        rows.iter()
            .find(|(name, _)| name == q)
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    };
    Ok(queries
        .iter()
        .map(|q| Headline::new(q, &find(&now, q), &find(&before, q)))
        .collect())
}

/// An author of mentions in the window, by reach.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct TopAuthor {
    pub platform: String,
    pub handle: String,
    /// Largest follower count seen in the window.
    pub followers: u64,
    pub mentions: u64,
    pub negative: u64,
}

/// The `limit` authors with the most followers among mentions created in `[since, until)`
/// (of the tracked query `query` when given), then by mentions; ties in a fixed order (handle,
/// platform, author id), so every server and every refresh lists them alike.
pub async fn top_authors(
    store: &Store,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    query: Option<&str>,
    limit: u64,
) -> Result<Vec<TopAuthor>, StoreError> {
    // Counts are named in an outer query: `mentions` is also a column (the handles).
    store
        .client
        .query(
            "SELECT p AS platform, h AS handle, f AS followers, n AS mentions, neg AS negative \
             FROM ( \
             SELECT platform AS p, author_id, any(author_handle) AS h, \
             max(author_followers) AS f, count() AS n, countIf(sentiment = 'negative') AS neg \
             FROM mentions FINAL \
             WHERE created_at >= toDateTime(?) AND created_at < toDateTime(?) AND deleted = 0 \
             AND (? = 0 OR has(queries, ?)) \
             GROUP BY p, author_id) \
             ORDER BY followers DESC, mentions DESC, handle, platform, author_id LIMIT ?",
        )
        .bind(since.timestamp().max(0))
        .bind(super::time::end_secs(until))
        .bind(u8::from(query.is_some()))
        .bind(query.unwrap_or(""))
        .bind(limit)
        .fetch_all()
        .await
        .map_err(query_err("top authors"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_against_the_period_before() {
        let now = Period {
            mentions: 30,
            negative: 12,
            scored: 24,
            reach: 5_000,
        };
        let before = Period {
            mentions: 20,
            negative: 4,
            scored: 20,
            reach: 10_000,
        };
        let h = Headline::new("nusapay", &now, &before);
        assert_eq!(h.mentions_change, Some(0.5));
        assert_eq!(h.negative_share, Some(0.5));
        assert!((h.negative_share_change.unwrap() - 0.3).abs() < 1e-9);
        assert_eq!(h.reach_change, Some(-0.5));
        // Nothing before: no change to speak of, not an infinite one.
        let h = Headline::new("nusapay", &now, &Period::default());
        assert_eq!(
            (h.mentions_change, h.negative_share_change, h.reach_change),
            (None, None, None)
        );
        assert_eq!(h.previous_negative_share, None);
    }
}
