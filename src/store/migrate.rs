//! Versioned, idempotent DDL from `schemas/clickhouse/NNNN_name.sql`, compiled into the binary.

use clickhouse::Row;
use serde::Deserialize;

use super::client::{Store, StoreError};

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
    exec(
        "create database",
        format!("CREATE DATABASE IF NOT EXISTS {db}"),
    )
    .await?;
    exec(
        "create schema_migrations",
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.schema_migrations (version UInt32, name String, \
             applied_at DateTime('UTC') DEFAULT now()) ENGINE = ReplacingMergeTree ORDER BY version"
        ),
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
                exec(name, body).await?;
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
            if let Err(e) = exec(name, plain).await {
                // Another process may have added it in between.
                if !has_column().await? {
                    return Err(e);
                }
            }
        }
        if *version == 5 {
            recount_tombstoned(store).await?;
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

/// After 0005: recomputes the rollup minutes between the oldest and newest row it tombstoned
/// (nothing when no key had two `created_at`s).
async fn recount_tombstoned(store: &Store) -> Result<(), StoreError> {
    let (n, first, last) = store
        .client
        .query(
            "SELECT count(), toUInt32(min(created_at)), toUInt32(max(created_at)) \
             FROM mentions WHERE deleted = 1",
        )
        .fetch_one::<(u64, u32, u32)>()
        .await
        .map_err(super::client::query_err("find tombstoned mentions"))?;
    if n > 0 {
        let at = |s: u32| chrono::DateTime::from_timestamp(i64::from(s), 0).unwrap_or_default();
        super::rollup::rebuild(store, at(first), at(last)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
