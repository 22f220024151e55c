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
            cascade: CascadeConfig::default(),
        }
    }
}

impl EnrichConfig {
    /// Checks every value; the key is relative to `[enrich]`.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.batch_max == 0 {
            return Err(Invalid::new("batch_max", 0, "must be ≥ 1"));
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
