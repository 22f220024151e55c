-- Enriched mentions, one row per mention key. Redelivered mentions collapse: ReplacingMergeTree keeps
-- the row with the highest `version` per sorting key (platform, id); exact queries use FINAL.
-- Works on ClickHouse 18.16 and current releases (no LowCardinality, TTL, CODEC or DateTime64).
CREATE TABLE IF NOT EXISTS {db}.mentions
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
ORDER BY (platform, id)
