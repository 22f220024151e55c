//! Alerts as stored, with their status (new / acknowledged / resolved).

use chrono::{DateTime, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::store::client::{query_err, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct StoredAlert {
    pub id: String,
    pub kind: String,
    pub severity: String,
    pub query: String,
    pub term: String,
    pub title: String,
    pub why: String,
    /// JSON array of samples.
    pub samples: String,
    pub count: u32,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub event_time: DateTime<Utc>,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub detected_at: DateTime<Utc>,
    pub status: String,
}

/// The statuses a person can set.
pub const STATUSES: [&str; 3] = ["new", "acknowledged", "resolved"];

/// Alerts detected in `[since, until)`, newest first, optionally of one kind and status.
pub async fn list(
    store: &Store,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    kind: Option<&str>,
    status: Option<&str>,
    limit: u64,
) -> Result<Vec<StoredAlert>, StoreError> {
    let mut sql = String::from(
        "SELECT id, kind, severity, query, term, title, why, samples, count, event_time, detected_at, \
         if(s.status = '', 'new', s.status) AS status \
         FROM (SELECT * FROM alerts FINAL WHERE detected_at >= toDateTime(?) AND detected_at < toDateTime(?)) AS a \
         ANY LEFT JOIN (SELECT id, argMax(status, version) AS status FROM alert_status GROUP BY id) AS s \
         USING id WHERE 1",
    );
    if kind.is_some() {
        sql.push_str(" AND kind = ?");
    }
    if status.is_some() {
        sql.push_str(" AND status = ?");
    }
    sql.push_str(" ORDER BY detected_at DESC, id LIMIT ?");
    let mut q = store
        .client
        .query(&sql)
        .bind(since.timestamp().max(0))
        .bind(super::time::end_secs(until));
    if let Some(k) = kind {
        q = q.bind(k);
    }
    if let Some(s) = status {
        q = q.bind(s);
    }
    q.bind(limit)
        .fetch_all()
        .await
        .map_err(|source| StoreError::Query {
            what: "list alerts".into(),
            source,
        })
}

/// The alerts with these ids (an incident's), newest first.
pub async fn by_ids(store: &Store, ids: &[String]) -> Result<Vec<StoredAlert>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    store
        .client
        .query(
            "SELECT id, kind, severity, query, term, title, why, samples, count, event_time, detected_at, \
             if(s.status = '', 'new', s.status) AS status \
             FROM (SELECT * FROM alerts FINAL WHERE has(?, id)) AS a \
             ANY LEFT JOIN (SELECT id, argMax(status, version) AS status FROM alert_status GROUP BY id) AS s \
             USING id ORDER BY event_time DESC, id",
        )
        .bind(ids)
        .fetch_all()
        .await
        .map_err(|source| StoreError::Query {
            what: "list an incident's alerts".into(),
            source,
        })
}

#[derive(Debug, Row, Serialize)]
struct StatusRow {
    id: String,
    status: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    changed_at: DateTime<Utc>,
    version: u64,
}

/// Sets an alert's status; false when no alert has that id.
pub async fn set_status(store: &Store, id: &str, status: &str) -> Result<bool, StoreError> {
    assert!(STATUSES.contains(&status), "unknown status {status}");
    record_status(store, "alerts", "alert_status", "alert", id, status).await
}

/// Records a person's `status` for the row `id` of `table` (alerts, incidents) in its status
/// table, versioned by the time; false when `table` has no row `id`. `what` names it in errors.
pub(crate) async fn record_status(
    store: &Store,
    table: &str,
    status_table: &str,
    what: &str,
    id: &str,
    status: &str,
) -> Result<bool, StoreError> {
    let exists: u64 = store
        .client
        .query(&format!("SELECT count() FROM {table} WHERE id = ?"))
        .bind(id)
        .fetch_one()
        .await
        .map_err(query_err(&format!("find {what}")))?;
    if exists == 0 {
        return Ok(false);
    }
    let set = format!("set {what} status");
    let now = Utc::now();
    let mut insert = store
        .client
        .insert::<StatusRow>(status_table)
        .await
        .map_err(query_err(&set))?;
    insert
        .write(&StatusRow {
            id: id.to_string(),
            status: status.to_string(),
            changed_at: now,
            version: now.timestamp_micros().max(0) as u64,
        })
        .await
        .map_err(query_err(&set))?;
    insert.end().await.map_err(query_err(&set))?;
    Ok(true)
}
