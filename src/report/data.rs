//! What a report holds, read from ClickHouse: per tracked query KPIs for the window and the one
//! before it, the window's incidents and alerts, the top negative posts, rising terms and the chart's buckets.
//!
//! Counts use the sentiment the enrich stage stored (as `gema trends` and the timeline do; a
//! person's correction does not move them). A mention matching two tracked queries counts for
//! both. Every value is bound on the client; the SQL runs on ClickHouse 18.16 and current
//! servers alike.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::query::alerts::{self, StoredAlert};
use crate::query::incidents::{self, StoredIncident};
use crate::query::time::end_secs;
use crate::query::trends::{self, Rising};
use crate::store::client::{query_err, Store, StoreError};

/// What to put in a report.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Start of the window (inclusive).
    pub since: DateTime<Utc>,
    /// End of the window (exclusive).
    pub until: DateTime<Utc>,
    /// The tracked queries' names, in the config's order: each gets a KPI row, with or without
    /// mentions.
    pub tracked: Vec<String>,
    /// How many negative posts to list.
    pub top_negative: u64,
    /// How many rising terms to list.
    pub rising: u64,
    /// Most alerts to list.
    pub max_alerts: u64,
    /// Most incidents to list.
    pub max_incidents: u64,
    /// How the report shows times to people (`[display] time_zone`; CSV stays UTC).
    pub display: crate::display::Display,
}

impl ReportOptions {
    /// The window `[since, until)` with the default list sizes (10 negative posts, 10 rising
    /// terms, 500 alerts, 50 incidents).
    pub fn new(since: DateTime<Utc>, until: DateTime<Utc>, tracked: Vec<String>) -> ReportOptions {
        ReportOptions {
            since,
            until,
            tracked,
            top_negative: 10,
            rising: 10,
            max_alerts: 500,
            max_incidents: 50,
            display: crate::display::Display::default(),
        }
    }
}

/// Mention counts of one tracked query over one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Kpis {
    pub mentions: u64,
    pub negative: u64,
    pub neutral: u64,
    pub positive: u64,
    /// The sum of the mentions' authors' followers (an author posting twice counts twice).
    pub reach: u64,
}

impl Kpis {
    fn scored(&self) -> u64 {
        self.negative + self.neutral + self.positive
    }

    /// Negative mentions over scored mentions, in [0, 1]; 0 with none scored.
    pub fn negative_share(&self) -> f64 {
        match self.scored() {
            0 => 0.0,
            n => self.negative as f64 / n as f64,
        }
    }

    /// (positive - negative) / scored, in [-1, 1]; 0 with none scored.
    pub fn net_sentiment(&self) -> f64 {
        match self.scored() {
            0 => 0.0,
            n => (self.positive as f64 - self.negative as f64) / n as f64,
        }
    }
}

/// One tracked query's KPIs now and in the previous window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryKpis {
    pub query: String,
    pub current: Kpis,
    pub previous: Kpis,
}

/// The relative change from `previous` to `current` in percent; `None` when `previous` is 0.
pub fn change_pct(current: u64, previous: u64) -> Option<f64> {
    (previous > 0).then(|| (current as f64 - previous as f64) / previous as f64 * 100.0)
}

impl QueryKpis {
    pub fn mentions_change_pct(&self) -> Option<f64> {
        change_pct(self.current.mentions, self.previous.mentions)
    }

    pub fn reach_change_pct(&self) -> Option<f64> {
        change_pct(self.current.reach, self.previous.reach)
    }

    /// The negative share's change in percentage points.
    pub fn negative_share_change_pp(&self) -> f64 {
        (self.current.negative_share() - self.previous.negative_share()) * 100.0
    }

    pub fn net_sentiment_change(&self) -> f64 {
        self.current.net_sentiment() - self.previous.net_sentiment()
    }
}

/// The window's alerts of one tracked query and kind, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertGroup {
    /// The tracked query (`""` for alerts about no query, such as emerging terms).
    pub query: String,
    pub kind: String,
    pub alerts: Vec<StoredAlert>,
}

/// A negative mention worth reading.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct NegativePost {
    pub key: String,
    pub platform: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub created_at: DateTime<Utc>,
    pub author_handle: String,
    pub author_followers: u64,
    pub text: String,
    pub url: String,
    pub sentiment_confidence: f32,
    pub queries: Vec<String>,
}

/// One tracked query's mentions per chart bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub query: String,
    pub negative: Vec<u64>,
    pub total: Vec<u64>,
}

/// The chart's data: buckets of `bucket_s` seconds from the window's start (the last one may
/// reach past the window's end; it counts only mentions inside the window).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChartData {
    pub bucket_s: u32,
    pub starts: Vec<DateTime<Utc>>,
    /// One per KPI row, in the same order.
    pub series: Vec<Series>,
}

/// A whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// The previous window is `[previous_since, since)`, as long as this one.
    pub previous_since: DateTime<Utc>,
    pub generated_at: DateTime<Utc>,
    /// How its times are shown (Markdown, HTML, the email).
    #[serde(skip)]
    pub display: crate::display::Display,
    pub kpis: Vec<QueryKpis>,
    /// Incidents active in the window (opened before its end, last alert after its start), open
    /// ones first, then by severity.
    pub incidents: Vec<StoredIncident>,
    pub alerts: Vec<AlertGroup>,
    /// How many alerts the window holds in all (more than listed when over `max_alerts`).
    pub alerts_listed: usize,
    pub negative_posts: Vec<NegativePost>,
    pub rising: Vec<Rising>,
    pub chart: ChartData,
}

/// Why a report cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the window is empty: since {since} is not before until {until}")]
    EmptyWindow {
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Row, Deserialize)]
struct KpiRow {
    query: String,
    mentions: u64,
    negative: u64,
    neutral: u64,
    positive: u64,
    reach: u64,
}

#[derive(Debug, Row, Deserialize)]
struct BucketRow {
    query: String,
    bucket: u32,
    negative: u64,
    total: u64,
}

/// The bucket widths a chart may use, smallest first.
const WIDTHS: [u32; 11] = [
    60, 300, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200, 86_400, 604_800,
];
/// At most this many buckets (unless the window is over 36 weeks).
const MAX_BUCKETS: u64 = 36;

/// The smallest width of [`WIDTHS`] giving at most [`MAX_BUCKETS`] buckets over `window_s`.
pub fn bucket_width(window_s: i64) -> u32 {
    let window_s = window_s.max(0) as u64;
    WIDTHS
        .into_iter()
        .find(|w| window_s.div_ceil(u64::from(*w)) <= MAX_BUCKETS)
        .unwrap_or(WIDTHS[WIDTHS.len() - 1])
}

/// Reads the report of `opts`' window from `store`.
pub async fn build(store: &Store, opts: &ReportOptions) -> Result<Report, ReportError> {
    let (since, until) = (opts.since, opts.until);
    if since >= until {
        return Err(ReportError::EmptyWindow { since, until });
    }
    let previous_since = since - (until - since);
    let current = kpis(store, since, until).await?;
    let previous = kpis(store, previous_since, since).await?;
    let mut names: Vec<String> = opts.tracked.clone();
    for n in current.keys().chain(previous.keys()) {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let kpis: Vec<QueryKpis> = names
        .iter()
        .map(|q| QueryKpis {
            query: q.clone(),
            current: current.get(q).copied().unwrap_or_default(),
            previous: previous.get(q).copied().unwrap_or_default(),
        })
        .collect();

    let incidents = incidents::list(store, since, until, None, opts.max_incidents).await?;
    let listed = alerts::list(store, since, until, None, None, opts.max_alerts).await?;
    let alerts_listed = listed.len();
    let alerts = group_alerts(listed, &names);
    let negative_posts = negative_posts(store, since, until, opts.top_negative).await?;
    let rising = trends::rising(store, since, until, opts.rising).await?;
    let chart = chart(store, since, until, &names).await?;
    Ok(Report {
        since,
        until,
        previous_since,
        generated_at: Utc::now(),
        display: opts.display,
        kpis,
        incidents,
        alerts,
        alerts_listed,
        negative_posts,
        rising,
        chart,
    })
}

async fn kpis(
    store: &Store,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<BTreeMap<String, Kpis>, StoreError> {
    // Counts are named in an outer query: ClickHouse resolves an alias before a column.
    let rows: Vec<KpiRow> = store
        .client
        .query(
            "SELECT q AS query, n AS mentions, neg AS negative, neu AS neutral, pos AS positive, \
             r AS reach FROM ( \
             SELECT q, count() AS n, countIf(sentiment = 'negative') AS neg, \
             countIf(sentiment = 'neutral') AS neu, countIf(sentiment = 'positive') AS pos, \
             sum(author_followers) AS r \
             FROM mentions FINAL ARRAY JOIN queries AS q \
             WHERE created_at >= toDateTime(?) AND created_at < toDateTime(?) AND deleted = 0 \
             GROUP BY q) ORDER BY query",
        )
        .bind(since.timestamp().max(0))
        .bind(end_secs(until))
        .fetch_all()
        .await
        .map_err(query_err("report KPIs"))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.query,
                Kpis {
                    mentions: r.mentions,
                    negative: r.negative,
                    neutral: r.neutral,
                    positive: r.positive,
                    reach: r.reach,
                },
            )
        })
        .collect())
}

/// Alerts grouped by query (in `order`, then others by name, alerts of no query last) and kind.
fn group_alerts(listed: Vec<StoredAlert>, order: &[String]) -> Vec<AlertGroup> {
    let rank = |q: &str| -> (usize, String) {
        match order.iter().position(|n| n == q) {
            Some(i) => (i, String::new()),
            None if q.is_empty() => (usize::MAX, String::new()),
            None => (order.len(), q.to_string()),
        }
    };
    let mut groups: BTreeMap<((usize, String), String), AlertGroup> = BTreeMap::new();
    for a in listed {
        groups
            .entry((rank(&a.query), a.kind.clone()))
            .or_insert_with(|| AlertGroup {
                query: a.query.clone(),
                kind: a.kind.clone(),
                alerts: Vec::new(),
            })
            .alerts
            .push(a);
    }
    groups.into_values().collect()
}

async fn negative_posts(
    store: &Store,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<NegativePost>, StoreError> {
    store
        .client
        .query(
            "SELECT key, platform, created_at, author_handle, author_followers, text, url, \
             sentiment_confidence, queries FROM mentions FINAL \
             WHERE created_at >= toDateTime(?) AND created_at < toDateTime(?) AND deleted = 0 \
             AND sentiment = 'negative' \
             ORDER BY author_followers DESC, sentiment_confidence DESC, created_at DESC, key \
             LIMIT ?",
        )
        .bind(since.timestamp().max(0))
        .bind(end_secs(until))
        .bind(limit)
        .fetch_all()
        .await
        .map_err(query_err("report negative posts"))
}

async fn chart(
    store: &Store,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    names: &[String],
) -> Result<ChartData, StoreError> {
    let from = since.timestamp().max(0);
    let window = end_secs(until) - from;
    let bucket_s = bucket_width(window);
    let n = (window.max(0) as u64).div_ceil(u64::from(bucket_s)).max(1) as usize;
    let rows: Vec<BucketRow> = store
        .client
        .query(
            "SELECT q AS query, b AS bucket, neg AS negative, n AS total FROM ( \
             SELECT q, toUInt32(intDiv(toInt64(toUInt32(created_at)) - ?, ?)) AS b, \
             countIf(sentiment = 'negative') AS neg, count() AS n \
             FROM mentions FINAL ARRAY JOIN queries AS q \
             WHERE created_at >= toDateTime(?) AND created_at < toDateTime(?) AND deleted = 0 \
             GROUP BY q, b) ORDER BY query, bucket",
        )
        .bind(from)
        .bind(bucket_s)
        .bind(from)
        .bind(end_secs(until))
        .fetch_all()
        .await
        .map_err(query_err("report chart"))?;
    let mut series: Vec<Series> = names
        .iter()
        .map(|q| Series {
            query: q.clone(),
            negative: vec![0; n],
            total: vec![0; n],
        })
        .collect();
    for r in rows {
        let (Some(s), Some(i)) = (
            series.iter_mut().find(|s| s.query == r.query),
            usize::try_from(r.bucket).ok().filter(|i| *i < n),
        ) else {
            continue;
        };
        s.negative[i] = r.negative;
        s.total[i] = r.total;
    }
    let starts = (0..n)
        .map(|i| {
            Utc.timestamp_opt(from + i as i64 * i64::from(bucket_s), 0)
                .single()
                .unwrap_or_default()
        })
        .collect();
    Ok(ChartData {
        bucket_s,
        starts,
        series,
    })
}

/// A readable bucket width: `30 min`, `1 h`, `1 d`, `1 w`.
pub fn show_width(bucket_s: u32) -> String {
    let d = Duration::seconds(i64::from(bucket_s));
    if bucket_s.is_multiple_of(604_800) {
        format!("{} w", d.num_weeks())
    } else if bucket_s.is_multiple_of(86_400) {
        format!("{} d", d.num_days())
    } else if bucket_s.is_multiple_of(3_600) {
        format!("{} h", d.num_hours())
    } else {
        format!("{} min", d.num_minutes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kpis_and_changes() {
        let q = QueryKpis {
            query: "nusapay".into(),
            current: Kpis {
                mentions: 6,
                negative: 3,
                neutral: 1,
                positive: 1,
                reach: 1_500,
            },
            previous: Kpis {
                mentions: 4,
                negative: 1,
                neutral: 1,
                positive: 2,
                reach: 3_000,
            },
        };
        assert!(
            (q.current.negative_share() - 0.6).abs() < 1e-9,
            "of 5 scored"
        );
        assert!((q.current.net_sentiment() + 0.4).abs() < 1e-9);
        assert_eq!(q.mentions_change_pct(), Some(50.0));
        assert_eq!(q.reach_change_pct(), Some(-50.0));
        assert!((q.negative_share_change_pp() - 35.0).abs() < 1e-9);
        assert!((q.net_sentiment_change() + 0.65).abs() < 1e-9);
        assert_eq!(change_pct(3, 0), None, "no change from nothing");
        assert_eq!(Kpis::default().net_sentiment(), 0.0);
    }

    #[test]
    fn bucket_widths_give_at_most_36_buckets() {
        assert_eq!(bucket_width(24 * 3_600), 3_600);
        assert_eq!(bucket_width(3_600), 300);
        assert_eq!(bucket_width(7 * 86_400), 21_600);
        assert_eq!(bucket_width(30), 60);
        assert_eq!(bucket_width(400 * 86_400), 604_800);
        assert_eq!(show_width(3_600), "1 h");
        assert_eq!(show_width(1_800), "30 min");
        assert_eq!(show_width(21_600), "6 h");
    }

    fn alert(query: &str, kind: &str, id: &str) -> StoredAlert {
        StoredAlert {
            id: id.into(),
            kind: kind.into(),
            severity: "low".into(),
            query: query.into(),
            term: String::new(),
            title: String::new(),
            why: String::new(),
            samples: "[]".into(),
            count: 1,
            event_time: Utc::now(),
            detected_at: Utc::now(),
            status: "new".into(),
        }
    }

    #[test]
    fn alerts_group_by_tracked_query_order_then_kind() {
        let order = vec!["nusapay".to_string(), "kopikita".to_string()];
        let g = group_alerts(
            vec![
                alert("", "emerging_trend", "1"),
                alert("kopikita", "negative_comment", "2"),
                alert("nusapay", "negative_spike", "3"),
                alert("nusapay", "negative_comment", "4"),
                alert("nusapay", "negative_comment", "5"),
                alert("old", "negative_comment", "6"),
            ],
            &order,
        );
        let keys: Vec<(&str, &str, usize)> = g
            .iter()
            .map(|g| (g.query.as_str(), g.kind.as_str(), g.alerts.len()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("nusapay", "negative_comment", 2),
                ("nusapay", "negative_spike", 1),
                ("kopikita", "negative_comment", 1),
                ("old", "negative_comment", 1),
                ("", "emerging_trend", 1),
            ]
        );
        assert_eq!(g[0].alerts[0].id, "4", "newest first as listed");
    }
}
