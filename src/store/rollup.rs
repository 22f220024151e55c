//! Per-minute and per-hour rollups of the tracked queries (`query_minutes`, `query_hours`,
//! schemas/clickhouse/0003_time_order_rollups.sql).
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

/// Recomputes the rollup rows of every minute in `minutes` (Unix seconds, multiples of 60) and of
/// the hours holding them. Cheap for a live stream (the current minute or two); a replayed
/// backlog recomputes one range per contiguous run.
pub async fn refresh(store: &Store, minutes: &BTreeSet<u32>) -> Result<(), StoreError> {
    refresh_ranges(store, &ranges(minutes, MINUTE)).await
}

/// Recomputes the minutes in each `[from, to)` range (seconds, multiples of 60, ascending and
/// disjoint) and the hours holding them.
async fn refresh_ranges(store: &Store, minutes: &[(u32, u32)]) -> Result<(), StoreError> {
    if minutes.is_empty() {
        return Ok(());
    }
    // A newer computation must win even within one millisecond of the previous one.
    let version = Utc::now().timestamp_micros().max(0) as u64;
    for &(from, to) in minutes {
        insert_select(
            store,
            "recompute query_minutes",
            "INSERT INTO query_minutes \
             SELECT toStartOfMinute(created_at) AS minute, q AS query, count(), \
             countIf(sentiment = 'negative'), countIf(sentiment = 'neutral'), \
             countIf(sentiment = 'positive'), uniqHLL12State(author_id), ? \
             FROM mentions FINAL ARRAY JOIN queries AS q \
             WHERE created_at >= toDateTime(?) AND created_at < toDateTime(?) AND deleted = 0 \
             GROUP BY minute, query",
            [version, from.into(), to.into()],
        )
        .await?;
    }
    // Queries that matched in a minute before and match nothing there now (a mention re-enriched
    // with other tracked queries) keep their old row: zero it.
    zero_vanished(store, minutes, version).await?;
    for (from, to) in hour_ranges(minutes) {
        insert_select(
            store,
            "recompute query_hours",
            "INSERT INTO query_hours \
             SELECT toStartOfHour(minute) AS hour, query, sum(total), sum(negative), \
             sum(neutral), sum(positive), uniqHLL12MergeState(authors), ? \
             FROM query_minutes FINAL \
             WHERE minute >= toDateTime(?) AND minute < toDateTime(?) \
             GROUP BY hour, query",
            [version, from.into(), to.into()],
        )
        .await?;
    }
    Ok(())
}

/// Runs one `INSERT … SELECT` with its `?` placeholders bound to `binds` in order.
async fn insert_select<const N: usize>(
    store: &Store,
    what: &str,
    sql: &str,
    binds: [u64; N],
) -> Result<(), StoreError> {
    binds
        .into_iter()
        .fold(store.client.query(sql), |q, b| q.bind(b))
        .execute()
        .await
        .map_err(query_err(what))
}

/// Writes a zero row (newer version) for every (minute, query) pair in `minutes` whose newest row
/// is older than `version`: the recomputation just written did not produce it, so no mention
/// matches that query in that minute any more.
async fn zero_vanished(
    store: &Store,
    minutes: &[(u32, u32)],
    version: u64,
) -> Result<(), StoreError> {
    for &(from, to) in minutes {
        insert_select(
            store,
            "zero vanished query_minutes",
            "INSERT INTO query_minutes \
             SELECT minute, query, 0, 0, 0, 0, uniqHLL12StateIf('', 0), ? \
             FROM query_minutes FINAL \
             WHERE minute >= toDateTime(?) AND minute < toDateTime(?) AND version < ? \
             AND total > 0 GROUP BY minute, query",
            [version, from.into(), to.into(), version],
        )
        .await?;
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
    refresh_ranges(store, &[(first, end)]).await?;
    Ok(((end - first) / MINUTE) as usize)
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
    fn minute_of_floors() {
        use chrono::TimeZone;
        assert_eq!(minute_of(Utc.timestamp_opt(3_659, 0).unwrap()), 3_600);
        assert_eq!(minute_of(Utc.timestamp_opt(-5, 0).unwrap()), 0);
    }
}
