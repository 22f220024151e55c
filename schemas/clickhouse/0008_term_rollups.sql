-- Per term and minute (and per hour): mentions by sentiment and the terms' distinct authors, so
-- that top terms over many hours read rollup rows instead of every mention in the window
-- (src/query/trends.rs::top_terms; docs/SERVE.md has the measurements). A term is a hashtag
-- (`#tag`), a keyword or bigram, or a mentioned handle (`@name`); `kind` says which.
--
-- Rows are recomputed from `mentions FINAL` for every minute the mentions sink wrote to, with the
-- tracked queries' rollups (src/store/rollup.rs), so a redelivered or re-enriched mention never
-- counts twice; the newest computation (highest version) wins. `gema migrate` fills both from the
-- mentions already stored, a few hours at a time (src/store/migrate.rs).
--
-- authors is ClickHouse's `uniq` state, as the query over the mentions themselves used: exact up
-- to 65,536 authors per term. (A HyperLogLog sketch, as the query rollups keep, was measured
-- too: every term with more than 16 authors in an hour then carries 2.5 KB, and a day's ranking
-- read 72 MB of sketches, slower than these sets.)
CREATE TABLE IF NOT EXISTS {db}.term_minutes
(
    minute DateTime('UTC'),
    kind String,
    term String,
    total UInt64,
    negative UInt64,
    neutral UInt64,
    positive UInt64,
    authors AggregateFunction(uniq, String),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, kind, term);

CREATE TABLE IF NOT EXISTS {db}.term_hours
(
    hour DateTime('UTC'),
    kind String,
    term String,
    total UInt64,
    negative UInt64,
    neutral UInt64,
    positive UInt64,
    authors AggregateFunction(uniq, String),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, kind, term)
