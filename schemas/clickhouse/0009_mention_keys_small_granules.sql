-- mention_keys with small granules. The mentions sink looks up every INSERT's keys in it, 500
-- keys per query (src/store/keys.rs); keys of one batch fall all over the key order, so with
-- ClickHouse's default of 8,192 rows a granule every lookup read nearly the whole table, and the
-- sink slowed down as the table grew. With 256 rows a granule a lookup reads at most 500 granules
-- (128,000 rows) however large the table is: 119,360 rows and 44 ms instead of 1,000,000 rows and
-- 202 ms for 500 random keys of a million (ClickHouse 18.16, 2-core VM).
--
-- ClickHouse 18.16 cannot change a table's settings, so the keys are copied into a new table that
-- then takes the name, as 0003 does for mentions. Every step can run again after an interruption
-- (the copy is done before the old table is renamed away; repeated rows collapse). Stop the sink
-- while `gema migrate` runs.
CREATE TABLE IF NOT EXISTS {db}.mention_keys_0009
(
    platform String,
    id String,
    created_at DateTime('UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (platform, id)
SETTINGS index_granularity = 256;

INSERT INTO {db}.mention_keys_0009 SELECT platform, id, created_at, version FROM {db}.mention_keys;

DROP TABLE IF EXISTS {db}.mention_keys_0005;

RENAME TABLE {db}.mention_keys TO {db}.mention_keys_0005, {db}.mention_keys_0009 TO {db}.mention_keys;

DROP TABLE IF EXISTS {db}.mention_keys_0005
