//! Trend detection over term occurrences: event-time buckets, distinct authors per term and
//! bucket, a per-term EWMA baseline, a count-model burst test with false-discovery control over
//! each bucket, bounded state, snapshots for restarts.
//!
//! Pure library code (no I/O, no clock): the trend stage feeds [`Detector::observe`] from the
//! `terms` topic, calls [`Detector::advance`] after each batch, and publishes the
//! [`TrendEvent`]s it returns.

mod baseline;
pub mod burst;
mod config;
mod detector;
pub mod eval;
pub mod record;
pub mod sketch;
pub mod stage;
pub mod state;
mod terms;

#[cfg(test)]
mod detector_tests;

pub use baseline::Baseline;
pub use config::{
    BurstTest, ConfigError, DetectorConfig, Sensitivity, StateKeeping, TrendStageConfig,
};
pub use detector::{
    Advanced, BucketSummary, Detector, DetectorSnapshot, DetectorStats, Observed, RestoreError,
    TermVolume, TrendEvent,
};
pub use terms::{
    bigrams, handle_term, hashtag_term, query_negative_term, query_term, term_label, Term,
    TermOccurrence,
};
