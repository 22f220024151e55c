-- Which sentiment tier decided each mention, and the fast tier's own verdict (docs/SENTIMENT.md,
-- the cascade). sentiment / sentiment_score / sentiment_confidence stay the deciding verdict;
-- when the transformer decided (sentiment_tier = 'bert') the fast_* columns keep the fast tier's,
-- so both scores are stored. cascade_escalation is what the cascade did: '' when it is off,
-- not_needed, decided, queue_full or timed_out. Rows written before this migration read as
-- decided by the fast tier (the defaults copy their verdict).
-- ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS: gema's migration runner checks
-- system.columns first and runs the plain ADD COLUMN only when the column is missing, so this
-- file can be applied again after an interruption.
ALTER TABLE {db}.mentions ADD COLUMN IF NOT EXISTS sentiment_tier String DEFAULT 'fast';
ALTER TABLE {db}.mentions ADD COLUMN IF NOT EXISTS cascade_escalation String DEFAULT '';
ALTER TABLE {db}.mentions ADD COLUMN IF NOT EXISTS fast_sentiment String DEFAULT sentiment;
ALTER TABLE {db}.mentions ADD COLUMN IF NOT EXISTS fast_score Float32 DEFAULT sentiment_score;
ALTER TABLE {db}.mentions ADD COLUMN IF NOT EXISTS fast_confidence Float32 DEFAULT sentiment_confidence
