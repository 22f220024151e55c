-- Trend events (one row per term and closed bucket that crossed the burst threshold) and alerts.
-- Both collapse redeliveries: ReplacingMergeTree on their natural key.
CREATE TABLE IF NOT EXISTS {db}.trends
(
    term String,
    bucket_start DateTime('UTC'),
    bucket_end DateTime('UTC'),
    count UInt32,
    authors UInt32,
    baseline_mean Float32,
    baseline_std Float32,
    score Float32,
    sparkline Array(UInt32),
    detected_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(bucket_start)
ORDER BY (term, bucket_start);

-- Alerts as the router delivered them; a grouped thread alert re-delivered with a higher count
-- replaces the earlier row (version = detected_at in ms).
CREATE TABLE IF NOT EXISTS {db}.alerts
(
    id String,
    kind String,
    severity String,
    query String,
    term String,
    title String,
    why String,
    samples String,
    count UInt32,
    thread_id String,
    event_time DateTime('UTC'),
    detected_at DateTime('UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

-- Status changes by people (acknowledge / resolve), kept apart so the router never overwrites them.
CREATE TABLE IF NOT EXISTS {db}.alert_status
(
    id String,
    status String,
    changed_at DateTime('UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id
