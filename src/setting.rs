//! One invalid setting, naming its full key: the one shape every config section's `validate`
//! returns, so `gema.toml` errors read alike whichever module owns the section.

/// A setting whose value cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid value {value:?} for {key}: {reason}")]
pub struct Invalid {
    /// The full key (`enrich.cascade.max_wait_ms`); a section's own `validate` gives the key
    /// inside the section and the composing config prefixes it with [`Invalid::within`].
    pub key: String,
    pub value: String,
    pub reason: String,
}

impl Invalid {
    pub fn new(key: &str, value: impl ToString, reason: &str) -> Invalid {
        Invalid {
            key: key.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// The same setting inside `section` (`batch_max` within `enrich` is `enrich.batch_max`).
    pub fn within(mut self, section: &str) -> Invalid {
        self.key = format!("{section}.{}", self.key);
        self
    }
}
