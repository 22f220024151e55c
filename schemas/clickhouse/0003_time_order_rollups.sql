-- Time-first mentions and per-minute rollups of the tracked queries, so that dashboard queries
-- over millions of mentions read only their window (docs/SERVE.md has the measurements).
--
-- 1. mentions is rebuilt sorted by (created_at, platform, id): a window reads only its own rows.
--    A redelivered mention has the same created_at, platform and id, so ReplacingMergeTree still
--    collapses it. ClickHouse 18.16 cannot change a sorting key, so the rows are copied into a new
--    table that then takes the name. Every step can run again after an interruption (the copy is
--    done before the old table is renamed away; repeated rows collapse).
CREATE TABLE IF NOT EXISTS {db}.mentions_by_time
(
    key String,
    platform String,
    id String,
    created_at DateTime('UTC'),
    ingested_at DateTime('UTC'),
    enriched_at DateTime('UTC'),
    author_id String,
    author_handle String,
    author_followers UInt64,
    text String,
    url String,
    lang String,
    sentiment String,
    sentiment_score Float32,
    sentiment_confidence Float32,
    sentiment_model String,
    hashtags Array(String),
    mentions Array(String),
    urls Array(String),
    keywords Array(String),
    queries Array(String),
    parent_id String,
    thread_id String,
    likes UInt32,
    reposts UInt32,
    replies UInt32,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(created_at)
ORDER BY (created_at, platform, id);

INSERT INTO {db}.mentions_by_time SELECT * FROM {db}.mentions;

DROP TABLE IF EXISTS {db}.mentions_0001;

RENAME TABLE {db}.mentions TO {db}.mentions_0001, {db}.mentions_by_time TO {db}.mentions;

DROP TABLE IF EXISTS {db}.mentions_0001;

-- 2. Per tracked query and minute (and per hour): mention counts by sentiment and an author
--    sketch. Rows are recomputed from `mentions FINAL` for every minute the mentions sink wrote to
--    (src/store/rollup.rs), so redelivered mentions never count twice; the newest computation
--    (highest version, ms) wins. total counts every matching mention, unscored ones included.
--    authors is a HyperLogLog sketch (uniqHLL12): distinct authors are approximate (about 1.6 %).
--    A sketch takes up to 2.5 KB, so granules are small: a window reads only its own rows.
CREATE TABLE IF NOT EXISTS {db}.query_minutes
(
    minute DateTime('UTC'),
    query String,
    total UInt64,
    negative UInt64,
    neutral UInt64,
    positive UInt64,
    authors AggregateFunction(uniqHLL12, String),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, query)
SETTINGS index_granularity = 256;

CREATE TABLE IF NOT EXISTS {db}.query_hours
(
    hour DateTime('UTC'),
    query String,
    total UInt64,
    negative UInt64,
    neutral UInt64,
    positive UInt64,
    authors AggregateFunction(uniqHLL12, String),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, query)
SETTINGS index_granularity = 256;

INSERT INTO {db}.query_minutes
SELECT toStartOfMinute(created_at) AS minute, q AS query, count(), countIf(sentiment = 'negative'),
       countIf(sentiment = 'neutral'), countIf(sentiment = 'positive'), uniqHLL12State(author_id), 0
FROM {db}.mentions FINAL ARRAY JOIN queries AS q
GROUP BY minute, query;

INSERT INTO {db}.query_hours
SELECT toStartOfHour(minute) AS hour, query, sum(total), sum(negative), sum(neutral), sum(positive),
       uniqHLL12MergeState(authors), 0
FROM {db}.query_minutes FINAL
GROUP BY hour, query
