//! Incidents as stored, with their status: the router's (`open`, or `resolved` when it faded)
//! unless a person changed it later (`acknowledged`, `resolved`, reopened as `open`).

use chrono::{DateTime, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::store::client::{query_err, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct StoredIncident {
    pub id: String,
    pub query: String,
    pub status: String,
    pub severity: String,
    pub movement: String,
    pub summary: String,
    pub negative_posts: u32,
    pub peak_per_minute: u32,
    pub alert_count: u32,
    pub driving_terms: Vec<String>,
    pub trending_terms: Vec<String>,
    /// JSON array of samples, most reach first.
    pub samples: String,
    pub alert_ids: Vec<String>,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub opened_at: DateTime<Utc>,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub last_event_at: DateTime<Utc>,
    /// The Unix epoch while not resolved by the router.
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub resolved_at: DateTime<Utc>,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub detected_at: DateTime<Utc>,
    pub version: u64,
}

impl StoredIncident {
    /// Its post with the most reach (the samples are stored most reach first).
    pub fn top_post(&self) -> Option<crate::alerts::Sample> {
        serde_json::from_str::<Vec<crate::alerts::Sample>>(&self.samples)
            .ok()
            .and_then(|s| s.into_iter().next())
    }

    /// When the router resolved it (`None` while it is not).
    pub fn resolved(&self) -> Option<DateTime<Utc>> {
        (self.resolved_at.timestamp() != 0).then_some(self.resolved_at)
    }
}

/// The statuses an incident can have.
pub const STATUSES: [&str; 3] = ["open", "acknowledged", "resolved"];

/// The router resolving an incident after a person's change wins; otherwise the person's does.
const SELECT: &str = "SELECT id, query, \
     if(i.status = 'resolved' AND i.detected_at >= s.changed_at, 'resolved', \
        if(s.status = '', i.status, s.status)) AS status, \
     severity, movement, summary, negative_posts, peak_per_minute, alert_count, driving_terms, \
     trending_terms, samples, alert_ids, opened_at, last_event_at, resolved_at, detected_at, \
     i.version AS version \
     FROM (SELECT * FROM incidents FINAL WHERE __WHERE__) AS i \
     ANY LEFT JOIN (SELECT id, argMax(status, version) AS status, \
                    argMax(changed_at, version) AS changed_at FROM incident_status GROUP BY id) AS s \
     USING id";

/// Incidents active in `[since, until)` (their newest alert in it), optionally of one status;
/// the open ones first, then the most severe, then the newest.
pub async fn list(
    store: &Store,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    status: Option<&str>,
    limit: u64,
) -> Result<Vec<StoredIncident>, StoreError> {
    let mut sql = SELECT.replace(
        "__WHERE__",
        "last_event_at >= toDateTime(?) AND opened_at < toDateTime(?)",
    );
    sql.push_str(" WHERE 1");
    if status.is_some() {
        sql.push_str(" AND status = ?");
    }
    sql.push_str(
        " ORDER BY status = 'resolved', \
         indexOf(['critical', 'high', 'medium', 'low'], severity), last_event_at DESC, id LIMIT ?",
    );
    let mut q = store
        .client
        .query(&sql)
        .bind(since.timestamp().max(0))
        .bind(super::time::end_secs(until));
    if let Some(s) = status {
        q = q.bind(s);
    }
    q.bind(limit)
        .fetch_all()
        .await
        .map_err(query_err("list incidents"))
}

/// One incident by id.
pub async fn get(store: &Store, id: &str) -> Result<Option<StoredIncident>, StoreError> {
    let sql = SELECT.replace("__WHERE__", "id = ?");
    store
        .client
        .query(&sql)
        .bind(id)
        .fetch_optional()
        .await
        .map_err(query_err("find incident"))
}

/// Sets an incident's status; false when no incident has that id.
pub async fn set_status(store: &Store, id: &str, status: &str) -> Result<bool, StoreError> {
    assert!(STATUSES.contains(&status), "unknown status {status}");
    super::alerts::record_status(
        store,
        "incidents",
        "incident_status",
        "incident",
        id,
        status,
    )
    .await
}
