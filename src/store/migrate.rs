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
];

#[derive(Debug, Row, Deserialize)]
struct Applied {
    version: u32,
}

/// Creates the database and applies the migrations it has not seen; returns the names applied.
/// Safe to run again and from several processes (every statement is `IF NOT EXISTS`).
pub async fn migrate(store: &Store) -> Result<Vec<String>, StoreError> {
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
        if applied.iter().any(|a| a.version == *version) {
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
            exec(name, body).await?;
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
