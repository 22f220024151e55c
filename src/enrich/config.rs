//! `[enrich]`: the enrich stage's model, batching and sentiment cascade.

use serde::Deserialize;

use super::cascade::CascadeConfig;
use crate::setting::Invalid;

/// The enrich stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichConfig {
    /// Sentiment model file made by `gema train` (relative to the working directory); `builtin`
    /// uses the small built-in lexicon instead. Env: `GEMA_SENTIMENT_MODEL`.
    pub sentiment_model: String,
    /// Most messages enriched before their outputs are awaited and offsets stored.
    pub batch_max: usize,
    /// How long a batch waits for more messages once it has one.
    pub batch_linger_ms: u64,
    /// Threads a batch's mentions are enriched on (0: one per core). Env: `GEMA_ENRICH_WORKERS`.
    pub workers: usize,
    /// The sentiment cascade: the transformer tier re-scores uncertain mentions that matter
    /// (`[enrich.cascade]`).
    pub cascade: CascadeConfig,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        EnrichConfig {
            sentiment_model: crate::sentiment::DEFAULT_MODEL_PATH.into(),
            batch_max: 2000,
            batch_linger_ms: 20,
            workers: 0,
            cascade: CascadeConfig::default(),
        }
    }
}

/// `workers`, or with 0 the cores this process may use.
pub fn workers_or_cores(workers: usize) -> usize {
    match workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

impl EnrichConfig {
    /// Checks every value; the key is relative to `[enrich]`.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.batch_max == 0 {
            return Err(Invalid::new("batch_max", 0, "must be ≥ 1"));
        }
        if self.workers > 256 {
            return Err(Invalid::new(
                "workers",
                self.workers,
                "must be at most 256 (0: one per core)",
            ));
        }
        self.cascade.validate().map_err(|e| e.within("cascade"))?;
        if self.cascade.enabled && self.sentiment_model == "builtin" {
            return Err(Invalid::new(
                "cascade.enabled",
                true,
                "the cascade fuses the transformer with the trained fast model: set \
                 enrich.sentiment_model to a file made by `gema train`",
            ));
        }
        Ok(())
    }
}
