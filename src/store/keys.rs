//! One row per mention key (platform, id), the newest version winning, whatever else changed
//! (schemas/clickhouse/0005_one_row_per_mention.sql).
//!
//! `mentions` is sorted by `(created_at, platform, id)` so that a time window reads only its
//! own rows; ReplacingMergeTree collapses only rows with equal sorting keys, so a mention re-sent
//! with another `created_at` (platforms re-send edited posts) would be two rows. The mentions sink
//! therefore keeps each key's current `created_at` and `version` in `mention_keys` (sorted by key),
//! and, once an INSERT has ended, writes a *tombstone* over every row that a newer version of its
//! key replaced under another `created_at`: the same sorting key, a higher version and
//! `deleted = 1`, so `mentions FINAL WHERE deleted = 0` holds exactly one row per key. Tombstones
//! are written before the new winners are recorded, so a crash in between repeats the same
//! decisions when the rows are consumed again.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::client::{query_err, Store, StoreError};
use super::rollup::minute_of;

/// Keys looked up per query: two bound values each, well under ClickHouse's 256 KiB query size.
const LOOKUP_CHUNK: usize = 500;

/// A version of one mention: where its row sits and how new it is.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct KeyRow {
    pub platform: String,
    pub id: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub created_at: DateTime<Utc>,
    pub version: u64,
}

impl KeyRow {
    /// The key version of a row, its `created_at` cut to whole seconds as a `DateTime` column
    /// stores it (so that it compares equal to what a lookup reads back).
    pub fn new(platform: &str, id: &str, created_at: DateTime<Utc>, version: u64) -> KeyRow {
        KeyRow {
            platform: platform.to_string(),
            id: id.to_string(),
            created_at: DateTime::from_timestamp(created_at.timestamp(), 0).unwrap_or(created_at),
            version,
        }
    }
}

/// The tombstone over a replaced row (the columns not named take their defaults).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
struct Tombstone {
    key: String,
    platform: String,
    id: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    created_at: DateTime<Utc>,
    version: u64,
    deleted: u8,
}

/// The newest version of each key among the rows of the open INSERT, and the rows of the same
/// INSERT it replaced under another `created_at`.
#[derive(Debug, Default)]
pub struct Written {
    newest: HashMap<(String, String), KeyRow>,
    replaced: Vec<(KeyRow, u64)>,
}

impl Written {
    /// A row with this key, `created_at` and `version` went into the open INSERT.
    pub fn add(&mut self, row: KeyRow) {
        use std::collections::hash_map::Entry;
        match self.newest.entry((row.platform.clone(), row.id.clone())) {
            Entry::Vacant(e) => {
                e.insert(row);
            }
            Entry::Occupied(mut e) => {
                let (old, new) = if row.version >= e.get().version {
                    (e.insert(row), e.get().version)
                } else {
                    (row, e.get().version)
                };
                if old.created_at != e.get().created_at {
                    self.replaced.push((old, new));
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.newest.is_empty()
    }
}

/// After the INSERT of the rows in `written` has ended: tombstones every row a newer version of
/// its key replaced under another `created_at` (in this INSERT or before it), then records the
/// winners in `mention_keys`. Returns the rollup minutes whose mentions changed (the replaced
/// rows'), and empties `written`.
pub async fn settle(store: &Store, written: &mut Written) -> Result<BTreeSet<u32>, StoreError> {
    let Written {
        newest,
        mut replaced,
    } = std::mem::take(written);
    let stored = lookup(store, newest.values()).await?;
    let mut winners = Vec::with_capacity(newest.len());
    for (key, row) in newest {
        match stored.get(&key) {
            Some(s) if s.created_at == row.created_at => {
                if row.version > s.version {
                    winners.push(row);
                }
            }
            Some(s) if s.version > row.version => {
                // An older version arrived late: the stored one stays.
                let v = s.version;
                replaced.push((row, v));
            }
            Some(s) => {
                let v = row.version;
                replaced.push((s.clone(), v));
                winners.push(row);
            }
            None => winners.push(row),
        }
    }
    let minutes = replaced
        .iter()
        .map(|(r, _)| minute_of(r.created_at))
        .collect();
    if !replaced.is_empty() {
        let mut insert = store
            .writer
            .insert::<Tombstone>("mentions")
            .await
            .map_err(query_err("write tombstones"))?;
        for (row, by) in &replaced {
            let tombstone = Tombstone {
                key: crate::mention::mention_key(&row.platform, &row.id),
                platform: row.platform.clone(),
                id: row.id.clone(),
                created_at: row.created_at,
                // Above the replaced row's, whatever the winner's (equal versions: last wins).
                version: (*by).max(row.version + 1),
                deleted: 1,
            };
            insert
                .write(&tombstone)
                .await
                .map_err(query_err("write tombstones"))?;
        }
        insert.end().await.map_err(query_err("write tombstones"))?;
        tracing::debug!(
            count = replaced.len(),
            "Mentions replaced by a newer version"
        );
    }
    if !winners.is_empty() {
        let mut insert = store
            .writer
            .insert::<KeyRow>("mention_keys")
            .await
            .map_err(query_err("record mention keys"))?;
        for row in &winners {
            insert
                .write(row)
                .await
                .map_err(query_err("record mention keys"))?;
        }
        insert
            .end()
            .await
            .map_err(query_err("record mention keys"))?;
    }
    Ok(minutes)
}

/// The stored version of each of these keys that has one.
async fn lookup<'a>(
    store: &Store,
    rows: impl Iterator<Item = &'a KeyRow>,
) -> Result<HashMap<(String, String), KeyRow>, StoreError> {
    let rows: Vec<&KeyRow> = rows.collect();
    let mut out = HashMap::with_capacity(rows.len());
    for chunk in rows.chunks(LOOKUP_CHUNK) {
        let tuples = vec!["(?, ?)"; chunk.len()].join(", ");
        let mut q = store.client.query(&format!(
            "SELECT ?fields FROM mention_keys FINAL WHERE (platform, id) IN ({tuples})"
        ));
        for r in chunk {
            q = q.bind(r.platform.as_str()).bind(r.id.as_str());
        }
        for s in q
            .fetch_all::<KeyRow>()
            .await
            .map_err(query_err("look up mention keys"))?
        {
            out.insert((s.platform.clone(), s.id.clone()), s);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, created_s: i64, version: u64) -> KeyRow {
        KeyRow::new(
            "x",
            id,
            DateTime::from_timestamp(created_s, 0).unwrap(),
            version,
        )
    }

    #[test]
    fn created_at_is_compared_as_stored() {
        let ms = DateTime::from_timestamp_millis(100_250).unwrap();
        assert_eq!(KeyRow::new("x", "1", ms, 1), row("1", 100, 1));
    }

    #[test]
    fn the_newest_version_in_an_insert_wins_and_the_redated_rows_it_replaced_are_kept() {
        let mut w = Written::default();
        w.add(row("1", 100, 5));
        // Same created_at: ReplacingMergeTree collapses it, no tombstone needed.
        w.add(row("1", 100, 6));
        // Newer, re-dated: the row at 100 is replaced by version 7.
        w.add(row("1", 200, 7));
        // Older, re-dated: it is replaced itself.
        w.add(row("1", 300, 4));
        assert_eq!(w.newest[&("x".into(), "1".into())], row("1", 200, 7));
        assert_eq!(w.replaced, [(row("1", 100, 6), 7), (row("1", 300, 4), 7)]);
    }
}
