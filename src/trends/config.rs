//! Configuration of the trend detector: defaults in one place, validated once.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How eagerly terms are reported as trending. Sets [`DetectorConfig::fdr`],
/// [`DetectorConfig::threshold`] and [`DetectorConfig::min_support`] where those are not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sensitivity {
    /// False-discovery rate 1e-5, burst score ≥ 6 and ≥ 10 distinct authors: only strong,
    /// broad bursts.
    Low,
    /// False-discovery rate 1e-4, burst score ≥ 4 and ≥ 5 distinct authors.
    #[default]
    Medium,
    /// False-discovery rate 1e-3, burst score ≥ 3 and ≥ 3 distinct authors: early, noisier.
    High,
}

/// How a term's bucket is tested against its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BurstTest {
    /// A p-value from a negative binomial fitted to the term's own history (Poisson when it
    /// varies no more than that), Benjamini–Hochberg over the terms tested in the bucket at
    /// `fdr`, and the burst must persist (the term's previous bucket had p ≤ 0.01) or its excess
    /// come from authors new to the term; `threshold` and `min_support` still apply.
    #[default]
    Count,
    /// The earlier rule, kept for comparison: burst score ≥ `threshold` and ≥ `min_support`
    /// authors, each term on its own.
    Zscore,
}

impl Sensitivity {
    /// `(threshold, min_support)` of this preset.
    pub fn preset(self) -> (f64, u32) {
        match self {
            Sensitivity::Low => (6.0, 10),
            Sensitivity::Medium => (4.0, 5),
            Sensitivity::High => (3.0, 3),
        }
    }

    /// The false-discovery rate of this preset.
    pub fn fdr(self) -> f64 {
        match self {
            Sensitivity::Low => 1e-5,
            Sensitivity::Medium => 1e-4,
            Sensitivity::High => 1e-3,
        }
    }
}

/// Trend detector settings (`[trends]` in `gema.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Width of an event-time bucket in milliseconds.
    pub bucket_ms: u64,
    /// How far behind the newest event time a bucket stays open for late occurrences, in
    /// milliseconds. The watermark is `max event time seen − allowed_lateness_ms`; a bucket
    /// closes (and is scored) once the watermark passes its end. Older occurrences are late.
    pub allowed_lateness_ms: u64,
    /// Half-life of the per-term baseline (EWMA of distinct authors per bucket), in active
    /// buckets.
    pub baseline_half_life_buckets: f64,
    /// Preset for `fdr`, `threshold` and `min_support`: `low`, `medium` or `high`.
    pub sensitivity: Sensitivity,
    /// How a bucket is tested: `count` (p-values, false-discovery control, persistence or new
    /// authors) or `zscore` (the earlier per-term score rule, for comparison).
    pub burst_test: BurstTest,
    /// With `burst_test = "count"`: the Benjamini–Hochberg false-discovery rate over the terms
    /// tested in one bucket (also the chance that a bucket with no real burst raises any);
    /// overrides the `sensitivity` preset.
    pub fdr: Option<f64>,
    /// Burst score `(authors − mean) / sqrt(max(var, mean, variance_floor))` a bucket must also
    /// reach to trend (an effect-size floor); overrides the `sensitivity` preset.
    pub threshold: Option<f64>,
    /// Distinct authors a bucket must have to trend; overrides the `sensitivity` preset.
    pub min_support: Option<u32>,
    /// Smallest variance used in the burst score, so that a term with a flat (or no) history
    /// needs `threshold × sqrt(variance_floor)` authors above its mean to trend.
    pub variance_floor: f64,
    /// Most terms that keep full state (baseline, sparkline, open buckets). When full, the
    /// least active tenth is evicted.
    pub max_terms: usize,
    /// Terms with no occurrence for this many active buckets are evicted.
    pub idle_evict_buckets: u64,
    /// After a cold start or a restore, a term trends only once it has this many active
    /// buckets of history, or the detector has run this many active buckets.
    pub warmup_buckets: u64,
    /// Number of active buckets (distinct authors each) in a trend event's sparkline.
    pub sparkline_buckets: usize,
    /// Top terms by distinct authors reported for each closed bucket (0: none).
    pub top_terms: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            bucket_ms: 60_000,
            allowed_lateness_ms: 120_000,
            baseline_half_life_buckets: 30.0,
            sensitivity: Sensitivity::Medium,
            burst_test: BurstTest::Count,
            fdr: None,
            threshold: None,
            min_support: None,
            variance_floor: 1.0,
            max_terms: 100_000,
            idle_evict_buckets: 240,
            warmup_buckets: 10,
            sparkline_buckets: 30,
            top_terms: 10,
        }
    }
}

/// An invalid detector setting, naming the key.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("invalid trends setting `{key}`: {message}")]
pub struct ConfigError {
    pub key: &'static str,
    /// The value refused, as written.
    pub value: String,
    pub message: String,
}

impl From<ConfigError> for crate::setting::Invalid {
    fn from(e: ConfigError) -> Self {
        crate::setting::Invalid::new(e.key, e.value, &e.message)
    }
}

impl DetectorConfig {
    /// The burst-score threshold in force (explicit, else the preset's).
    pub fn effective_threshold(&self) -> f64 {
        self.threshold.unwrap_or(self.sensitivity.preset().0)
    }

    /// The false-discovery rate in force (explicit, else the preset's).
    pub fn effective_fdr(&self) -> f64 {
        self.fdr.unwrap_or(self.sensitivity.fdr())
    }

    /// The minimum distinct authors in force (explicit, else the preset's).
    pub fn effective_min_support(&self) -> u32 {
        self.min_support.unwrap_or(self.sensitivity.preset().1)
    }

    /// Checks every setting; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, value: String, message: &str| {
            Err(ConfigError {
                key,
                value,
                message: message.to_string(),
            })
        };
        if self.bucket_ms == 0 || self.bucket_ms > i64::MAX as u64 / 4 {
            return bad(
                "bucket_ms",
                self.bucket_ms.to_string(),
                "must be a positive number of milliseconds",
            );
        }
        if self.allowed_lateness_ms > i64::MAX as u64 / 4 {
            return bad(
                "allowed_lateness_ms",
                self.allowed_lateness_ms.to_string(),
                "is too large",
            );
        }
        if !(self.baseline_half_life_buckets.is_finite() && self.baseline_half_life_buckets > 0.0) {
            return bad(
                "baseline_half_life_buckets",
                self.baseline_half_life_buckets.to_string(),
                "must be a positive number of buckets",
            );
        }
        if let Some(t) = self.threshold {
            if !(t.is_finite() && t > 0.0) {
                return bad("threshold", t.to_string(), "must be a positive number");
            }
        }
        if let Some(q) = self.fdr {
            if !(q > 0.0 && q < 1.0) {
                return bad("fdr", q.to_string(), "must be between 0 and 1 (exclusive)");
            }
        }
        if self.min_support == Some(0) {
            return bad("min_support", "0".into(), "must be at least 1 author");
        }
        if !(self.variance_floor.is_finite() && self.variance_floor > 0.0) {
            return bad(
                "variance_floor",
                self.variance_floor.to_string(),
                "must be a positive number",
            );
        }
        if self.max_terms == 0 {
            return bad(
                "max_terms",
                self.max_terms.to_string(),
                "must be at least 1",
            );
        }
        if self.idle_evict_buckets == 0 {
            return bad(
                "idle_evict_buckets",
                self.idle_evict_buckets.to_string(),
                "must be at least 1 bucket",
            );
        }
        if self.sparkline_buckets == 0 || self.sparkline_buckets > 10_000 {
            return bad(
                "sparkline_buckets",
                self.sparkline_buckets.to_string(),
                "must be from 1 to 10000",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_presets_and_overrides() {
        let c: DetectorConfig = toml::from_str("").unwrap();
        assert_eq!(c, DetectorConfig::default());
        assert_eq!(
            (c.effective_threshold(), c.effective_min_support()),
            (4.0, 5)
        );
        let c: DetectorConfig = toml::from_str("sensitivity = \"high\"\nmin_support = 4").unwrap();
        assert_eq!(
            (c.effective_threshold(), c.effective_min_support()),
            (3.0, 4)
        );
        assert!(toml::from_str::<DetectorConfig>("bucket_secs = 60").is_err());
    }

    #[test]
    fn validation_names_the_key() {
        let c = DetectorConfig {
            bucket_ms: 0,
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "bucket_ms");
        let c = DetectorConfig {
            min_support: Some(0),
            ..Default::default()
        };
        let e = c.validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid trends setting `min_support`: must be at least 1 author"
        );
        assert!(DetectorConfig::default().validate().is_ok());
    }
}

/// Where the trend stage keeps its state (`[trend_stage] state`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateKeeping {
    /// One process holds the state of every terms partition, snapshotted to a file in
    /// `state_dir`; the false-discovery control of a bucket spans every term. Run one
    /// trend-stage process.
    #[default]
    One,
    /// Each terms partition has state of its own (detectors, baselines, the false-discovery
    /// control over that partition's terms), kept in the compacted `<prefix>.trend-state` topic
    /// and handed over with the partition on a rebalance. Run as many trend-stage processes as
    /// the terms topic has partitions; the results depend on the partition count, not on how
    /// many processes share them or when they come and go (the fault suite's scale-out run).
    PerPartition,
}

/// The trend stage's own settings (`[trend_stage]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrendStageConfig {
    pub state: StateKeeping,
}
