//! Per-minute and per-hour rollups of the tracked queries (`query_minutes`, `query_hours`,
//! schemas/clickhouse/0003_time_order_rollups.sql) and of the terms (`term_minutes`,
//! `term_hours`, schemas/clickhouse/0008_term_rollups.sql).
//!
//! A rollup row is never incremented: it is recomputed from `mentions FINAL` for the whole minute
//! (and its hour from the minutes), stamped with a newer version, and replaces the older row. So a
//! redelivered mention, a re-enriched one or a replayed feed never counts twice. The mentions sink
//! recomputes every minute it wrote to before it stores its Kafka offsets: a crash in between
//! means the rows are consumed, inserted and recomputed again.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::client::{query_err, Store, StoreError};

/// Seconds in a rollup minute and hour.
pub const MINUTE: u32 = 60;
pub const HOUR: u32 = 3600;

/// The minute (Unix seconds, a multiple of 60) holding `t`.
pub fn minute_of(t: DateTime<Utc>) -> u32 {
    let s = t.timestamp().clamp(0, i64::from(u32::MAX)) as u32;
    s - s % MINUTE
}

/// Contiguous runs of minutes as `[start, end)` ranges in seconds.
fn ranges(minutes: &BTreeSet<u32>, step: u32) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &m in minutes {
        match out.last_mut() {
            Some((_, end)) if *end == m => *end = m + step,
            _ => out.push((m, m + step)),
        }
    }
    out
}

/// Which rollups to recompute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The tracked queries' (timeline, share of voice).
    Queries,
    /// The terms' (top terms).
    Terms,
}

/// Recomputes the `which` rollup rows of every minute in `minutes` (Unix seconds, multiples of
/// 60) and of the hours holding them. Cheap for a live stream (the current minute or two); a
/// replayed backlog recomputes one range per contiguous run.
pub async fn refresh(
    store: &Store,
    which: Which,
    minutes: &BTreeSet<u32>,
) -> Result<(), StoreError> {
    refresh_ranges(store, &ranges(minutes, MINUTE), &[which.rollup()]).await
}

impl Which {
    fn rollup(self) -> Rollup {
        match self {
            Which::Queries => QUERIES,
            Which::Terms => TERMS,
        }
    }
}

/// The SQL of [`TERMS_OF_A_MENTION`], as a literal for `concat!`.
macro_rules! terms_of_a_mention {
    () => {
        "arrayConcat(arrayMap(h -> ('hashtag', concat('#', h)), hashtags), \
         arrayMap(k -> ('keyword', k), keywords), arrayMap(m -> ('handle', concat('@', m)), mentions))"
    };
}
/// The terms of a mention as `(kind, term)` tuples: hashtags as `#tag`, keywords and bigrams as
/// they are, mentioned handles as `@name` (what `term_minutes` and `term_hours` count).
pub const TERMS_OF_A_MENTION: &str = terms_of_a_mention!();

/// One rollup: a per-minute table recomputed from `mentions FINAL` and a per-hour table summed
/// from the minutes. Both key their rows by the time column and `keys`.
struct Rollup {
    minutes: &'static str,
    hours: &'static str,
    /// The key columns after the time column, as the tables name them.
    keys: &'static str,
    /// What the mentions are array-joined with, and the key columns selected from it.
    join: &'static str,
    select_keys: &'static str,
    /// The author sketch's aggregate function.
    authors: &'static str,
}

/// The tracked queries' rollup (timeline, share of voice).
const QUERIES: Rollup = Rollup {
    minutes: "query_minutes",
    hours: "query_hours",
    keys: "query",
    join: "queries AS q",
    select_keys: "q AS query",
    authors: "uniqHLL12",
};

/// The terms' rollup (top terms).
const TERMS: Rollup = Rollup {
    minutes: "term_minutes",
    hours: "term_hours",
    keys: "kind, term",
    join: concat!(terms_of_a_mention!(), " AS t"),
    select_keys: "t.1 AS kind, t.2 AS term",
    authors: "uniq",
};

const ROLLUPS: [Rollup; 2] = [QUERIES, TERMS];

impl Rollup {
    /// Recomputes the minutes in each range.
    async fn minutes(
        &self,
        store: &Store,
        minutes: &[(u32, u32)],
        version: u64,
    ) -> Result<(), StoreError> {
        let (table, keys, authors) = (self.minutes, self.keys, self.authors);
        let sql = format!(
            "INSERT INTO {table} \
             SELECT toStartOfMinute(created_at) AS minute, {}, count(), \
             countIf(sentiment = 'negative'), countIf(sentiment = 'neutral'), \
             countIf(sentiment = 'positive'), {authors}State(author_id), ? \
             FROM mentions FINAL ARRAY JOIN {} \
             WHERE created_at >= toDateTime(?) AND created_at < toDateTime(?) AND deleted = 0 \
             GROUP BY minute, {keys}",
            self.select_keys, self.join
        );
        per_range(
            store,
            &format!("recompute {table}"),
            &sql,
            minutes,
            |f, t| vec![version, f.into(), t.into()],
        )
        .await
    }

    /// Writes a zero row (newer version) for every (minute, key) pair in `minutes` whose newest
    /// row is older than `version`: the recomputation just written did not produce it, so no
    /// mention counts there any more (a mention re-enriched with other queries or terms, or
    /// replaced).
    async fn zero_vanished(
        &self,
        store: &Store,
        minutes: &[(u32, u32)],
        version: u64,
    ) -> Result<(), StoreError> {
        let (table, keys, authors) = (self.minutes, self.keys, self.authors);
        let sql = format!(
            "INSERT INTO {table} \
             SELECT minute, {keys}, 0, 0, 0, 0, {authors}StateIf('', 0), ? \
             FROM {table} FINAL \
             WHERE minute >= toDateTime(?) AND minute < toDateTime(?) AND version < ? \
             AND total > 0 GROUP BY minute, {keys}"
        );
        per_range(
            store,
            &format!("zero vanished {table}"),
            &sql,
            minutes,
            |f, t| vec![version, f.into(), t.into(), version],
        )
        .await
    }

    /// Recomputes the hours in each range from the minutes.
    async fn hours(
        &self,
        store: &Store,
        hours: &[(u32, u32)],
        version: u64,
    ) -> Result<(), StoreError> {
        let (table, minutes, keys, authors) = (self.hours, self.minutes, self.keys, self.authors);
        let sql = format!(
            "INSERT INTO {table} \
             SELECT toStartOfHour(minute) AS hour, {keys}, sum(total), sum(negative), \
             sum(neutral), sum(positive), {authors}MergeState(authors), ? \
             FROM {minutes} FINAL \
             WHERE minute >= toDateTime(?) AND minute < toDateTime(?) \
             GROUP BY hour, {keys}"
        );
        per_range(store, &format!("recompute {table}"), &sql, hours, |f, t| {
            vec![version, f.into(), t.into()]
        })
        .await
    }
}

/// Recomputes the minutes in each `[from, to)` range (seconds, multiples of 60, ascending and
/// disjoint) and the hours holding them, in each of `rollups`.
async fn refresh_ranges(
    store: &Store,
    minutes: &[(u32, u32)],
    rollups: &[Rollup],
) -> Result<(), StoreError> {
    if minutes.is_empty() {
        return Ok(());
    }
    // A newer computation must win even within one millisecond of the previous one.
    let version = Utc::now().timestamp_micros().max(0) as u64;
    let hours = hour_ranges(minutes);
    // A long backlog (a replayed history, `gema rollup --since 30d`, migration 0008) is
    // recomputed a few hours per statement, so no GROUP BY holds a month of terms at once.
    let minutes = &pieces(minutes, CHUNK);
    let hours = &pieces(&hours, CHUNK);
    for rollup in rollups {
        rollup.minutes(store, minutes, version).await?;
        rollup.zero_vanished(store, minutes, version).await?;
        rollup.hours(store, hours, version).await?;
    }
    Ok(())
}

/// Runs one `INSERT … SELECT` per `[from, to)` range, its `?` placeholders bound to
/// `binds(from, to)` in order.
async fn per_range(
    store: &Store,
    what: &str,
    sql: &str,
    ranges: &[(u32, u32)],
    binds: impl Fn(u32, u32) -> Vec<u64>,
) -> Result<(), StoreError> {
    for &(from, to) in ranges {
        binds(from, to)
            .into_iter()
            .fold(store.client.query(sql), |q, b| q.bind(b))
            .execute()
            .await
            .map_err(query_err(what))?;
    }
    Ok(())
}

/// Recomputes every minute in `[since, until)`: for mentions written to ClickHouse by something
/// other than the sink (`gema rollup`, tests that seed the table).
pub async fn rebuild(
    store: &Store,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let (first, end) = (minute_of(since), minute_of(until) + MINUTE);
    refresh_ranges(store, &[(first, end)], &ROLLUPS).await?;
    Ok(((end - first) / MINUTE) as usize)
}

/// Recomputes the `which` rollup only, for the `hours` given (Unix seconds, multiples of 3600):
/// for the migrations, which recompute where they changed the mentions (0005, before the term
/// rollups exist) or create a rollup (0008).
pub async fn rebuild_hours(
    store: &Store,
    which: Which,
    hours: &BTreeSet<u32>,
) -> Result<(), StoreError> {
    refresh_ranges(store, &ranges(hours, HOUR), &[which.rollup()]).await
}

/// The longest range one recomputing statement covers.
const CHUNK: u32 = 6 * HOUR;

/// `ranges` with each one longer than `max` cut into pieces of `max` (aligned to multiples of
/// `max`).
fn pieces(ranges: &[(u32, u32)], max: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for &(from, to) in ranges {
        let mut at = from;
        while at < to {
            let end = ((at / max + 1) * max).min(to);
            out.push((at, end));
            at = end;
        }
    }
    out
}

/// The hours holding the minute ranges, as merged `[from, to)` ranges.
fn hour_ranges(minutes: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &(from, to) in minutes {
        let (h_from, h_to) = (from - from % HOUR, to.div_ceil(HOUR) * HOUR);
        match out.last_mut() {
            Some((_, end)) if *end >= h_from => *end = (*end).max(h_to),
            _ => out.push((h_from, h_to)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_minutes_become_one_range() {
        let m: BTreeSet<u32> = [60, 120, 180, 600, 3600].into_iter().collect();
        assert_eq!(
            ranges(&m, MINUTE),
            vec![(60, 240), (600, 660), (3600, 3660)]
        );
        assert!(ranges(&BTreeSet::new(), MINUTE).is_empty());
        assert_eq!(
            hour_ranges(&[(60, 240), (600, 660), (3600, 3660), (7260, 7320)]),
            vec![(0, 10_800)]
        );
        assert_eq!(
            hour_ranges(&[(60, 120), (10_800, 10_860)]),
            vec![(0, 3_600), (10_800, 14_400)]
        );
    }

    #[test]
    fn long_ranges_are_recomputed_in_pieces() {
        assert_eq!(pieces(&[(60, 120)], CHUNK), vec![(60, 120)]);
        assert_eq!(
            pieces(&[(60, 2 * CHUNK + 60), (3 * CHUNK, 3 * CHUNK + 60)], CHUNK),
            vec![
                (60, CHUNK),
                (CHUNK, 2 * CHUNK),
                (2 * CHUNK, 2 * CHUNK + 60),
                (3 * CHUNK, 3 * CHUNK + 60)
            ]
        );
    }

    #[test]
    fn minute_of_floors() {
        use chrono::TimeZone;
        assert_eq!(minute_of(Utc.timestamp_opt(3_659, 0).unwrap()), 3_600);
        assert_eq!(minute_of(Utc.timestamp_opt(-5, 0).unwrap()), 0);
    }
}
