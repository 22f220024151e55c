-- One row per mention key (platform, id), the newest version winning, even when a re-sent mention
-- changed its created_at (platforms re-send edited posts). mentions is sorted by time, so
-- ReplacingMergeTree alone would keep both rows. mention_keys holds each key's current created_at
-- and version, sorted by key; the mentions sink looks each INSERT's keys up in it and writes a
-- tombstone (same sorting key, higher version, deleted = 1) over every row a newer version
-- replaced, then records the winners (src/store/keys.rs). Exact queries read
-- `mentions FINAL WHERE deleted = 0`.
-- ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS: gema's migration runner checks system.columns
-- first. Every statement can run again after an interruption: the keys are recomputed alike and
-- a second tombstone over a row changes nothing. After this file the runner recomputes the rollup
-- minutes of the rows tombstoned here.
ALTER TABLE {db}.mentions ADD COLUMN IF NOT EXISTS deleted UInt8 DEFAULT 0;

CREATE TABLE IF NOT EXISTS {db}.mention_keys
(
    platform String,
    id String,
    created_at DateTime('UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (platform, id);

INSERT INTO {db}.mention_keys
SELECT platform, id, argMax(created_at, version), max(version)
FROM {db}.mentions WHERE deleted = 0
GROUP BY platform, id;

INSERT INTO {db}.mentions (key, platform, id, created_at, version, deleted)
SELECT any(key), platform, id, created_at, max(version) + 1, 1
FROM {db}.mentions
WHERE deleted = 0 AND (platform, id, created_at) NOT IN (SELECT platform, id, created_at FROM {db}.mention_keys)
GROUP BY platform, id, created_at
