-- Incidents: the alerts about one tracked query folded into one story (src/alerts/incident.rs).
-- The router re-delivers an incident as it grows; a later version replaces the earlier row.
CREATE TABLE IF NOT EXISTS {db}.incidents
(
    id String,
    query String,
    status String,
    severity String,
    movement String,
    summary String,
    negative_posts UInt32,
    peak_per_minute UInt32,
    alert_count UInt32,
    driving_terms Array(String),
    trending_terms Array(String),
    samples String,
    alert_ids Array(String),
    opened_at DateTime('UTC'),
    last_event_at DateTime('UTC'),
    resolved_at DateTime('UTC'),
    detected_at DateTime('UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

-- Status changes by people (acknowledge / resolve / reopen), kept apart so the router never
-- overwrites them.
CREATE TABLE IF NOT EXISTS {db}.incident_status
(
    id String,
    status String,
    changed_at DateTime('UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id
