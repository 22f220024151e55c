//! Top terms by volume over a time window, with their sentiment mix.

use chrono::{DateTime, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::store::client::{Store, StoreError};
use crate::store::rollup::{HOUR, MINUTE, TERMS_OF_A_MENTION};

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

impl TermKind {
    /// The rollups' `kind` values this choice ranks (schemas/clickhouse/0008_term_rollups.sql).
    fn kinds(self) -> &'static str {
        match self {
            TermKind::All => "('hashtag', 'keyword')",
            TermKind::Hashtags => "('hashtag')",
            TermKind::Keywords => "('keyword')",
            TermKind::Handles => "('handle')",
        }
    }
}

/// The shortest window whose top terms are read from the rollups: a shorter one holds few
/// mentions, and reading them is faster than reading a rollup row per term and minute
/// (docs/SERVE.md).
const ROLLUPS_FROM: u32 = 3 * HOUR;
// Under two hours a window could end its whole hours before it starts them (`Cut::new`).
const _: () = assert!(ROLLUPS_FROM >= 2 * HOUR);

/// A window `[since, end)` in seconds cut into what each source answers: whole hours from
/// `term_hours`, the whole minutes at either edge from `term_minutes`, and the seconds left at
/// either edge from the mentions themselves. Each part is `[from, to)`; an empty one has
/// `from == to`.
#[derive(Debug, PartialEq, Eq)]
struct Cut {
    hours: (u32, u32),
    minutes: [(u32, u32); 2],
    seconds: [(u32, u32); 2],
}

impl Cut {
    /// The window's parts; a window shorter than [`ROLLUPS_FROM`] is read from the mentions
    /// alone.
    fn new(since: u32, end: u32) -> Cut {
        let end = end.max(since);
        let (m1, m2) = (since.div_ceil(MINUTE) * MINUTE, end / MINUTE * MINUTE);
        if m1 >= m2 || end - since < ROLLUPS_FROM {
            return Cut {
                hours: (end, end),
                minutes: [(end, end); 2],
                seconds: [(since, end), (end, end)],
            };
        }
        // Two hours or longer (ROLLUPS_FROM), so the whole hours never start after they end.
        let (h1, h2) = (m1.div_ceil(HOUR) * HOUR, m2 / HOUR * HOUR);
        Cut {
            hours: (h1, h2),
            minutes: [(m1, h1), (h2, m2)],
            seconds: [(since, m1), (m2, end)],
        }
    }
}

/// The top `limit` terms of mentions created in `[since, until)`, by mentions then authors.
///
/// Over 3 hours or more, whole hours of the window are read from `term_hours` and whole minutes
/// from `term_minutes` (the sink keeps both current from `mentions FINAL`, src/store/rollup.rs);
/// only the seconds at either edge are read from `mentions`. So the cost of a long window
/// depends on its length and the terms in it, not on how many mentions it holds. Either way the
/// counts are those of the mentions (redelivered ones once).
pub async fn top_terms(
    store: &Store,
    kind: TermKind,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<TermCount>, StoreError> {
    let secs = |t: i64| t.clamp(0, i64::from(u32::MAX - HOUR)) as u32;
    let cut = Cut::new(secs(since.timestamp()), secs(super::time::end_secs(until)));
    let kinds = kind.kinds();
    // The counts are named in an outer query: ClickHouse resolves an alias before a column, so
    // `count() AS mentions` next to the `mentions` column (the handles) would turn the handles
    // into `count()`.
    let sql = format!(
        "SELECT term, n AS mentions, a AS authors, neg AS negative, neu AS neutral, \
         pos AS positive FROM ( \
         SELECT term, sum(c) AS n, uniqMerge(s) AS a, sum(cn) AS neg, sum(cu) AS neu, \
         sum(cp) AS pos FROM ( \
         SELECT term, total AS c, negative AS cn, neutral AS cu, positive AS cp, authors AS s \
         FROM term_hours FINAL WHERE hour >= toDateTime(?) AND hour < toDateTime(?) \
         AND kind IN {kinds} \
         UNION ALL \
         SELECT term, total, negative, neutral, positive, authors FROM term_minutes FINAL \
         WHERE ((minute >= toDateTime(?) AND minute < toDateTime(?)) \
         OR (minute >= toDateTime(?) AND minute < toDateTime(?))) AND kind IN {kinds} \
         UNION ALL \
         SELECT t.2 AS term, count(), countIf(sentiment = 'negative'), \
         countIf(sentiment = 'neutral'), countIf(sentiment = 'positive'), uniqState(author_id) \
         FROM mentions FINAL ARRAY JOIN {TERMS_OF_A_MENTION} AS t \
         WHERE ((created_at >= toDateTime(?) AND created_at < toDateTime(?)) \
         OR (created_at >= toDateTime(?) AND created_at < toDateTime(?))) AND deleted = 0 \
         AND t.1 IN {kinds} GROUP BY term) \
         GROUP BY term HAVING n > 0) ORDER BY mentions DESC, authors DESC, term LIMIT ?"
    );
    let [m0, m1] = cut.minutes;
    let [s0, s1] = cut.seconds;
    [cut.hours, m0, m1, s0, s1]
        .into_iter()
        .fold(store.client.query(&sql), |q, (from, to)| {
            q.bind(from).bind(to)
        })
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

/// A rising term with its line of distinct authors per step over the whole window, read from
/// the stored mentions. The detector's own line (`Rising::sparkline` as stored) stops at the
/// burst bucket; this one goes on to the end of the window, so a manager sees whether the term
/// is still climbing or already fading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RisingNow {
    #[serde(flatten)]
    pub rising: Rising,
    /// Start of the line's first step.
    pub sparkline_since: DateTime<Utc>,
    /// End of the line's last step (the last whole trend bucket before `until` or now).
    pub sparkline_until: DateTime<Utc>,
    /// Width of one step of the line: a whole number of trend buckets.
    pub sparkline_step_secs: u32,
    /// The step that holds the burst bucket, when it lies on the line.
    pub burst_index: Option<u32>,
}

/// Where the points of a window's lines fall: `n` steps of `step` seconds from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineLayout {
    pub start: i64,
    pub step: i64,
    pub n: i64,
}

impl LineLayout {
    /// About `points` steps over `[since, min(until, now))`, each a whole number of `bucket_secs`
    /// and aligned to them, ending at the last whole bucket: a step still filling would read as
    /// a fall.
    pub fn new(
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
        bucket_secs: u32,
        points: u32,
    ) -> LineLayout {
        let bucket = i64::from(bucket_secs.max(1));
        let points = i64::from(points.max(1));
        let from = since.timestamp().max(0);
        // The last whole bucket ends at or before `until` itself: rounding a fractional `until`
        // up (as an exclusive query end does) at hh:mm:59.x would count the filling minute.
        let end = until.min(now).timestamp().max(from);
        let end = end - end.rem_euclid(bucket);
        let buckets = ((end - from) as f64 / bucket as f64).ceil() as i64;
        let step = bucket * ((buckets + points - 1) / points).max(1);
        // Whole steps ending at `end`; the first may start before `since`.
        let n = ((end - from + step - 1) / step).max(1);
        LineLayout {
            start: end - n * step,
            step,
            n,
        }
    }

    pub fn start_time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.start, 0).unwrap_or_default()
    }

    pub fn end_time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.start + self.n * self.step, 0).unwrap_or_default()
    }

    /// The step holding `t`, if on the line.
    pub fn index_of(&self, t: DateTime<Utc>) -> Option<u32> {
        let i = (t.timestamp() - self.start).div_euclid(self.step);
        (0..self.n).contains(&i).then_some(i as u32)
    }
}

/// The condition a stored mention meets when it carries `term` (as the enrich stage derives
/// terms, `crate::enrich::terms_of`), with the value to bind to its one `?`.
fn term_condition(term: &str) -> (&'static str, &str) {
    use crate::trends::Term;
    match Term::parse(term) {
        Term::Hashtag(t) => ("has(hashtags, ?)", t),
        Term::Handle(h) => ("has(mentions, ?)", h),
        Term::Keyword(k) => ("has(keywords, ?)", k),
        Term::Bigram(b) => (
            "has(arrayMap((x, y) -> concat(x, ' ', y), arrayPopBack(keywords), \
             arrayPopFront(keywords)), ?)",
            b,
        ),
        Term::QueryVolume(q) => ("has(queries, ?)", q),
        Term::QueryNegative(q) => ("(has(queries, ?) AND sentiment = 'negative')", q),
    }
}

#[derive(Debug, Row, Deserialize)]
struct LinePoint {
    step: i64,
    authors: Vec<u64>,
}

/// Distinct authors per step of `layout` for each of `terms`, from `mentions FINAL` (one scan
/// for up to 50 terms).
pub async fn author_lines(
    store: &Store,
    terms: &[&str],
    layout: LineLayout,
) -> Result<Vec<Vec<u32>>, StoreError> {
    let mut lines = vec![vec![0u32; layout.n as usize]; terms.len()];
    for (chunk_no, chunk) in terms.chunks(50).enumerate() {
        let conds: Vec<(&str, &str)> = chunk.iter().map(|t| term_condition(t)).collect();
        let columns: Vec<String> = conds
            .iter()
            .map(|(c, _)| format!("uniqExactIf(author_id, {c})"))
            .collect();
        let sql = format!(
            "SELECT intDiv(toInt64(toUInt32(created_at)) - ?, ?) AS step, [{}] AS authors \
             FROM mentions FINAL WHERE created_at >= toDateTime(?) AND created_at < toDateTime(?) \
             AND deleted = 0 GROUP BY step ORDER BY step",
            columns.join(", ")
        );
        let mut q = store
            .client
            .query(&sql)
            .bind(layout.start)
            .bind(layout.step);
        for (_, value) in &conds {
            q = q.bind(*value);
        }
        let points: Vec<LinePoint> = q
            .bind(layout.start)
            .bind(layout.start + layout.n * layout.step)
            .fetch_all()
            .await
            .map_err(|source| StoreError::Query {
                what: "rising terms' lines".into(),
                source,
            })?;
        for p in points {
            if !(0..layout.n).contains(&p.step) {
                continue;
            }
            for (j, a) in p.authors.iter().enumerate() {
                lines[chunk_no * 50 + j][p.step as usize] = (*a).min(u64::from(u32::MAX)) as u32;
            }
        }
    }
    Ok(lines)
}

/// Rows of [`rising`] over `[since, until)` with each term's line over that window from the
/// stored mentions ([`RisingNow`]): about 30 steps of whole `bucket_secs` buckets.
pub async fn with_lines(
    store: &Store,
    rows: Vec<Rising>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket_secs: u32,
) -> Result<Vec<RisingNow>, StoreError> {
    let layout = LineLayout::new(since, until, Utc::now(), bucket_secs, 30);
    let terms: Vec<&str> = rows.iter().map(|r| r.term.as_str()).collect();
    let lines = author_lines(store, &terms, layout).await?;
    Ok(rows
        .into_iter()
        .zip(lines)
        .map(|(mut rising, line)| {
            rising.sparkline = line;
            RisingNow {
                burst_index: layout.index_of(rising.bucket_start),
                rising,
                sparkline_since: layout.start_time(),
                sparkline_until: layout.end_time(),
                sparkline_step_secs: layout.step as u32,
            }
        })
        .collect())
}

/// The strongest `limit` bursts in `[since, until)` with their lines ([`rising`], then
/// [`with_lines`]).
pub async fn rising_now(
    store: &Store,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u64,
    bucket_secs: u32,
) -> Result<Vec<RisingNow>, StoreError> {
    let rows = rising(store, since, until, limit).await?;
    with_lines(store, rows, since, until, bucket_secs).await
}

/// The trend bucket width of `[trends] bucket_ms` in whole seconds (at least 1).
pub fn bucket_secs(bucket_ms: u64) -> u32 {
    (bucket_ms / 1000).clamp(1, u64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn a_window_is_cut_into_whole_hours_whole_minutes_and_edge_seconds() {
        // 10:00:30 to 13:02:10 (over 3 hours): 11:00-13:00 from hours, 10:01-11:00 and
        // 13:00-13:02 from minutes, 10:00:30-10:01 and 13:02-13:02:10 from mentions.
        let c = Cut::new(36_030, 46_930);
        assert_eq!(c.hours, (39_600, 46_800));
        assert_eq!(c.minutes, [(36_060, 39_600), (46_800, 46_920)]);
        assert_eq!(c.seconds, [(36_030, 36_060), (46_920, 46_930)]);
        // Aligned on hours: nothing but hours.
        let c = Cut::new(3_600, 18_000);
        assert_eq!(c.hours, (3_600, 18_000));
        assert!(c.minutes.iter().chain(&c.seconds).all(|(a, b)| a == b));
        // Under 3 hours: the mentions alone.
        let c = Cut::new(3_630, 5_430);
        assert_eq!(c.seconds[0], (3_630, 5_430));
        assert!([c.hours, c.minutes[0], c.minutes[1], c.seconds[1]]
            .iter()
            .all(|(a, b)| a == b));
        // Inside one minute, or across one minute's edge: seconds only.
        for (since, end) in [(3_610, 3_650), (3_630, 3_690)] {
            let c = Cut::new(since, end);
            assert_eq!(c.seconds[0], (since, end));
            assert!([c.hours, c.minutes[0], c.minutes[1], c.seconds[1]]
                .iter()
                .all(|(a, b)| a == b));
        }
        // An empty or reversed window reads nothing.
        let c = Cut::new(500, 400);
        assert!([
            c.hours,
            c.minutes[0],
            c.minutes[1],
            c.seconds[0],
            c.seconds[1]
        ]
        .iter()
        .all(|(a, b)| a == b));
        // Every second of a window is read exactly once.
        for (since, end) in [(36_030, 46_930), (0, 7_260), (59, 61), (3_599, 7_201)] {
            let c = Cut::new(since, end);
            let mut parts = vec![
                c.hours,
                c.minutes[0],
                c.minutes[1],
                c.seconds[0],
                c.seconds[1],
            ];
            parts.retain(|(a, b)| a < b);
            parts.sort();
            assert_eq!(parts.first().map(|p| p.0), Some(since));
            assert_eq!(parts.last().map(|p| p.1), Some(end));
            assert!(parts.windows(2).all(|w| w[0].1 == w[1].0), "{parts:?}");
        }
    }

    #[test]
    fn an_hour_of_minute_buckets_is_30_steps_of_two_minutes_ending_at_the_last_whole_minute() {
        // since 10:00:30, now 11:00:45: the line ends at 11:00:00.
        let (since, now) = (t(36_030), t(39_645));
        let l = LineLayout::new(since, now, now, 60, 30);
        assert_eq!(l.step, 120);
        assert_eq!(l.start + l.n * l.step, 39_600);
        assert!(l.start <= 36_030 && l.start + l.step > 36_030, "{l:?}");
        assert_eq!(l.index_of(t(39_599)), Some(l.n as u32 - 1));
        assert_eq!(
            l.index_of(t(39_600)),
            None,
            "the minute still filling is left off"
        );
        assert_eq!(l.index_of(t(l.start - 1)), None);
    }

    #[test]
    fn an_hour_ending_in_the_last_second_of_a_minute_keeps_that_minute_off() {
        // now 11:00:59.5, since an hour before: the minute 11:00 is still filling.
        let now = DateTime::from_timestamp(39_659, 500_000_000).unwrap();
        let since = now - chrono::Duration::hours(1);
        let l = LineLayout::new(since, now, now, 60, 30);
        assert_eq!((l.step, l.n, l.start + l.n * l.step), (120, 30, 39_600));
    }

    #[test]
    fn a_window_ending_in_the_past_ends_there_and_a_tiny_one_has_one_step() {
        let l = LineLayout::new(t(0), t(86_400), t(1_000_000), 60, 30);
        assert_eq!((l.step, l.n, l.start), (2_880, 30, 0));
        let l = LineLayout::new(t(600), t(630), t(630), 60, 30);
        assert_eq!((l.step, l.n), (60, 1));
    }

    #[test]
    fn terms_map_to_the_mention_columns_they_come_from() {
        assert_eq!(term_condition("#kopi").1, "kopi");
        assert!(term_condition("@nusapay").0.contains("mentions"));
        assert!(term_condition("top up").0.contains("arrayPopBack"));
        assert_eq!(term_condition("qneg:nusapay").1, "nusapay");
        assert!(term_condition("qneg:nusapay").0.contains("negative"));
        assert_eq!(term_condition("saldo"), ("has(keywords, ?)", "saldo"));
    }
}
