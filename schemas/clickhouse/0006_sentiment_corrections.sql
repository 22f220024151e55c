-- Sentiment corrections by people (`POST /api/mentions/{key}/sentiment`, `gema mentions correct`,
-- the dashboard): who said what a mention's sentiment really is, and when. The latest per key
-- wins (argMax by version when read; ReplacingMergeTree keeps it on merges). The mention's text
-- and language are copied in, so that `gema mentions corrections` can export training rows for
-- `gema train --corrections` even after the mention itself has expired.
CREATE TABLE IF NOT EXISTS {db}.sentiment_corrections
(
    key String,
    label String,
    previous_label String,
    text String,
    lang String,
    corrected_by String,
    corrected_at DateTime('UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY key
