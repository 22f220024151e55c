//! Versioned, idempotent DDL from `schemas/clickhouse/NNNN_name.sql`, compiled into the binary.

use clickhouse::Row;
use serde::Deserialize;

use std::collections::BTreeSet;

use super::client::{Store, StoreError};
use super::rollup::Which;

/// Every migration in order: (version, name, SQL with `{db}` for the database).
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "0001_mentions",
        include_str!("../../schemas/clickhouse/0001_mentions.sql"),
    ),
    (
        2,
        "0002_trends_alerts",
        include_str!("../../schemas/clickhouse/0002_trends_alerts.sql"),
    ),
    (
        3,
        "0003_time_order_rollups",
        include_str!("../../schemas/clickhouse/0003_time_order_rollups.sql"),
    ),
    (
        4,
        "0004_cascade_columns",
        include_str!("../../schemas/clickhouse/0004_cascade_columns.sql"),
    ),
    (
        5,
        "0005_one_row_per_mention",
        include_str!("../../schemas/clickhouse/0005_one_row_per_mention.sql"),
    ),
    (
        6,
        "0006_sentiment_corrections",
        include_str!("../../schemas/clickhouse/0006_sentiment_corrections.sql"),
    ),
    (
        7,
        "0007_incidents",
        include_str!("../../schemas/clickhouse/0007_incidents.sql"),
    ),
    (
        8,
        "0008_term_rollups",
        include_str!("../../schemas/clickhouse/0008_term_rollups.sql"),
    ),
    (
        9,
        "0009_mention_keys_small_granules",
        include_str!("../../schemas/clickhouse/0009_mention_keys_small_granules.sql"),
    ),
];

/// `ALTER TABLE <db>.<table> ADD COLUMN IF NOT EXISTS <column> <rest>`, which ClickHouse 18.16
/// cannot parse: (table, column, the statement without `IF NOT EXISTS`).
fn add_column_if_missing(statement: &str) -> Option<(String, String, String)> {
    let words: Vec<&str> = statement.split_whitespace().collect();
    let head = ["ALTER", "TABLE"];
    let middle = ["ADD", "COLUMN", "IF", "NOT", "EXISTS"];
    if words.len() < 9
        || !words[..2]
            .iter()
            .zip(head)
            .all(|(w, k)| w.eq_ignore_ascii_case(k))
        || !words[3..8]
            .iter()
            .zip(middle)
            .all(|(w, k)| w.eq_ignore_ascii_case(k))
    {
        return None;
    }
    let table = words[2].rsplit('.').next()?.to_string();
    let column = words[8].to_string();
    let plain = format!(
        "ALTER TABLE {} ADD COLUMN {}",
        words[2],
        words[8..].join(" ")
    );
    Some((table, column, plain))
}

/// A migration statement for a cluster (`[clickhouse] cluster`): DDL gets `ON CLUSTER <name>`
/// after the object it names, and a `*MergeTree` engine becomes its `Replicated*` form with the
/// ZooKeeper path `/clickhouse/tables/{shard}/<db>/<table>/<run>` and the `{replica}` macro
/// (both macros from each server's `<macros>`). Database and table are spelled out: the
/// `{database}`/`{table}` macros are expanded again at each server start, so a renamed table
/// would no longer load. `run` is new for each `gema migrate`, so a table created again after
/// an interrupted rename (0003) never meets the path its predecessor still holds. Everything
/// else (`INSERT … SELECT`) is returned as it is: run on one replica, replication copies its
/// rows.
fn for_cluster(statement: &str, cluster: &str, run: &str) -> String {
    let words: Vec<&str> = statement.split_whitespace().collect();
    let upper = |i: usize| words.get(i).map(|w| w.to_ascii_uppercase());
    let on = format!(" ON CLUSTER {cluster}");
    match (upper(0).as_deref(), upper(1).as_deref()) {
        (Some("CREATE"), Some("DATABASE"))
        | (Some("DROP"), Some("TABLE" | "DATABASE"))
        | (Some("RENAME"), Some("TABLE")) => format!("{}{on}", statement.trim_end()),
        (Some("ALTER"), Some("TABLE")) => {
            // ALTER TABLE <name> …: the clause goes right after the name.
            let at = name_end(statement, 2);
            format!("{}{on}{}", &statement[..at], &statement[at..])
        }
        (Some("CREATE"), Some("TABLE")) => {
            let skip = if upper(2).as_deref() == Some("IF") {
                5
            } else {
                2
            };
            let at = name_end(statement, skip);
            let name = statement[..at].split_whitespace().last().unwrap_or("");
            let (db, table) = name.split_once('.').unwrap_or(("default", name));
            let path = format!("'/clickhouse/tables/{{shard}}/{db}/{table}/{run}', '{{replica}}'");
            let rest = replicated_engine(&statement[at..], &path);
            format!("{}{on}{rest}", &statement[..at])
        }
        _ => statement.to_string(),
    }
}

/// The byte offset just past the `skip`-th whitespace-separated word of `s` (the name after
/// `ALTER TABLE` or `CREATE TABLE IF NOT EXISTS`), a `(` ending the name as well.
fn name_end(s: &str, skip: usize) -> usize {
    let mut seen = 0;
    let mut in_word = false;
    for (i, c) in s.char_indices() {
        let boundary = c.is_whitespace() || (c == '(' && seen == skip);
        if in_word && boundary {
            in_word = false;
            if seen == skip + 1 {
                return i;
            }
        } else if !in_word && !c.is_whitespace() {
            in_word = true;
            seen += 1;
        }
    }
    s.len()
}

/// `ENGINE = XMergeTree(args)` (or without arguments) → `ENGINE = ReplicatedXMergeTree(path,
/// args)`; a statement without a `*MergeTree` engine is returned as it is.
fn replicated_engine(rest: &str, path: &str) -> String {
    let Some(e) = rest.find("ENGINE") else {
        return rest.to_string();
    };
    let after = rest[e + "ENGINE".len()..].trim_start();
    let after = after.strip_prefix('=').unwrap_or(after).trim_start();
    let engine_at = rest.len() - after.len();
    let name_len = after
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(after.len());
    let engine = &after[..name_len];
    if !engine.ends_with("MergeTree") || engine.starts_with("Replicated") {
        return rest.to_string();
    }
    let tail = &after[name_len..];
    let (args, tail) = match tail.strip_prefix('(') {
        Some(t) => {
            let close = t.find(')').unwrap_or(t.len());
            let inner = t[..close].trim();
            let args = if inner.is_empty() {
                path.to_string()
            } else {
                format!("{path}, {inner}")
            };
            (args, &t[(close + 1).min(t.len())..])
        }
        None => (path.to_string(), tail),
    };
    format!("{}Replicated{engine}({args}){tail}", &rest[..engine_at])
}

#[derive(Debug, Row, Deserialize)]
struct Applied {
    version: u32,
}

/// Creates the database and applies the migrations it has not seen; returns the names applied.
/// Safe to run again and from several processes (every statement is `IF NOT EXISTS`; an
/// `ADD COLUMN IF NOT EXISTS` runs as a plain `ADD COLUMN` when `system.columns` lacks the column,
/// because ClickHouse 18.16 cannot parse it).
pub async fn migrate(store: &Store) -> Result<Vec<String>, StoreError> {
    migrate_to(store, u32::MAX).await
}

/// [`migrate`], but only up to and including version `last` (to test upgrades of older
/// databases).
pub async fn migrate_to(store: &Store, last: u32) -> Result<Vec<String>, StoreError> {
    let db = &store.database;
    // The database name is validated at config load (letters, digits, '_'), so it is safe to
    // splice; ClickHouse cannot bind identifiers on 18.16.
    let admin = store.client.clone().with_database("default");
    let exec = |name: &str, sql: String| {
        let admin = admin.clone();
        let name = name.to_string();
        async move {
            admin
                .query(&sql)
                .execute()
                .await
                .map_err(|source| StoreError::Migration { name, source })
        }
    };
    let run = format!("{:016x}", rand::random::<u64>());
    let ddl = |sql: String| match store.cluster.as_deref() {
        Some(cluster) => for_cluster(&sql, cluster, &run),
        None => sql,
    };
    exec(
        "create database",
        ddl(format!("CREATE DATABASE IF NOT EXISTS {db}")),
    )
    .await?;
    exec(
        "create schema_migrations",
        ddl(format!(
            "CREATE TABLE IF NOT EXISTS {db}.schema_migrations (version UInt32, name String, \
             applied_at DateTime('UTC') DEFAULT now()) ENGINE = ReplacingMergeTree ORDER BY version"
        )),
    )
    .await?;
    let applied: Vec<Applied> = admin
        .query(&format!("SELECT version FROM {db}.schema_migrations FINAL"))
        .fetch_all()
        .await
        .map_err(|source| StoreError::Query {
            what: "read schema_migrations".into(),
            source,
        })?;
    let mut done = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if *version > last || applied.iter().any(|a| a.version == *version) {
            continue;
        }
        // Comments may contain ';': drop them before splitting into statements.
        let body: String = sql
            .replace("{db}", db)
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        for statement in body.split(';') {
            let body = statement.trim().to_string();
            if body.is_empty() {
                continue;
            }
            let Some((table, column, plain)) = add_column_if_missing(&body) else {
                exec(name, ddl(body)).await?;
                continue;
            };
            // Bound values: the names come from our own files, but stay out of the SQL anyway.
            let has_column = || async {
                admin
                    .query(
                        "SELECT count() FROM system.columns \
                         WHERE database = ? AND table = ? AND name = ?",
                    )
                    .bind(db.as_str())
                    .bind(table.as_str())
                    .bind(column.as_str())
                    .fetch_one::<u64>()
                    .await
                    .map(|n| n > 0)
                    .map_err(|source| StoreError::Query {
                        what: format!("look up column {table}.{column}"),
                        source,
                    })
            };
            if has_column().await? {
                continue;
            }
            if let Err(e) = exec(name, ddl(plain)).await {
                // Another process may have added it in between.
                if !has_column().await? {
                    return Err(e);
                }
            }
        }
        if *version == 5 {
            recount_tombstoned(store).await?;
        }
        if *version == 8 {
            fill_term_rollups(store).await?;
        }
        exec(
            name,
            format!(
                "INSERT INTO {db}.schema_migrations (version, name) VALUES ({version}, '{name}')"
            ),
        )
        .await?;
        tracing::info!(migration = name, database = %db, "Applied migration");
        done.push(name.to_string());
    }
    Ok(done)
}

/// After 0005: recomputes the query rollups of the hours holding a row it tombstoned (nothing
/// when no key had two `created_at`s). The term rollups come later, from 0008.
async fn recount_tombstoned(store: &Store) -> Result<(), StoreError> {
    rebuild_hours_of(
        store,
        Which::Queries,
        "tombstoned mentions",
        "WHERE deleted = 1",
    )
    .await
}

/// After 0008: computes the term rollups of every hour that holds stored mentions.
async fn fill_term_rollups(store: &Store) -> Result<(), StoreError> {
    rebuild_hours_of(store, Which::Terms, "stored mentions", "").await
}

/// Recomputes the `which` rollup of every hour holding a mention that `filter` selects.
async fn rebuild_hours_of(
    store: &Store,
    which: Which,
    what: &str,
    filter: &str,
) -> Result<(), StoreError> {
    let hours: BTreeSet<u32> = store
        .client
        .query(&format!(
            "SELECT DISTINCT toUInt32(toStartOfHour(created_at)) FROM mentions {filter}"
        ))
        .fetch_all::<u32>()
        .await
        .map_err(super::client::query_err(&format!(
            "find the hours of {what}"
        )))?
        .into_iter()
        .collect();
    if !hours.is_empty() {
        tracing::info!(hours = hours.len(), rollup = ?which, "Recomputing the rollups of {what}");
        super::rollup::rebuild_hours(store, which, &hours).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ddl_runs_on_every_replica_with_replicated_engines() {
        let c = |s: &str| for_cluster(s, "gc", "r1");
        assert_eq!(
            c("CREATE DATABASE IF NOT EXISTS g"),
            "CREATE DATABASE IF NOT EXISTS g ON CLUSTER gc"
        );
        assert_eq!(
            c(
                "CREATE TABLE IF NOT EXISTS g.t\n(\n  k String,\n  version UInt64\n)\n\
               ENGINE = ReplacingMergeTree(version)\nORDER BY k"
            ),
            "CREATE TABLE IF NOT EXISTS g.t ON CLUSTER gc\n(\n  k String,\n  version UInt64\n)\n\
             ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/g/t/r1', \
             '{replica}', version)\nORDER BY k"
        );
        assert_eq!(
            c("CREATE TABLE IF NOT EXISTS g.m (version UInt32) ENGINE = ReplacingMergeTree ORDER BY version"),
            "CREATE TABLE IF NOT EXISTS g.m ON CLUSTER gc (version UInt32) ENGINE = \
             ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/g/m/r1', '{replica}') \
             ORDER BY version"
        );
        assert_eq!(
            c("ALTER TABLE g.mentions ADD COLUMN deleted UInt8 DEFAULT 0"),
            "ALTER TABLE g.mentions ON CLUSTER gc ADD COLUMN deleted UInt8 DEFAULT 0"
        );
        assert_eq!(
            c("RENAME TABLE g.a TO g.b, g.c TO g.a"),
            "RENAME TABLE g.a TO g.b, g.c TO g.a ON CLUSTER gc"
        );
        assert_eq!(
            c("DROP TABLE IF EXISTS g.a"),
            "DROP TABLE IF EXISTS g.a ON CLUSTER gc"
        );
        let insert = "INSERT INTO g.b SELECT * FROM g.a";
        assert_eq!(c(insert), insert);
    }

    #[test]
    fn add_column_if_not_exists_becomes_a_checked_plain_add() {
        let (table, column, plain) = add_column_if_missing(
            "ALTER TABLE gema.mentions ADD COLUMN IF NOT EXISTS fast_score Float32 \
             DEFAULT sentiment_score",
        )
        .unwrap();
        assert_eq!(
            (table.as_str(), column.as_str()),
            ("mentions", "fast_score")
        );
        assert_eq!(
            plain,
            "ALTER TABLE gema.mentions ADD COLUMN fast_score Float32 DEFAULT sentiment_score"
        );
        assert!(add_column_if_missing("ALTER TABLE gema.mentions ADD COLUMN x String").is_none());
        assert!(add_column_if_missing("CREATE TABLE IF NOT EXISTS gema.t (x String)").is_none());
    }
}
