//! Alerts: the rules that raise them, the router that keeps them few and useful, and their
//! delivery (Kafka, ClickHouse through the sink, webhooks).

pub mod alert;
pub mod router;
pub mod rules;
pub mod stage;
pub mod trend;
pub mod webhook;

pub use alert::{Alert, AlertKind, Sample, Severity};

/// `[alerts]` in `gema.toml`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// When one negative mention is an alert.
    pub negative_comment: rules::NegativeCommentConfig,
    /// Repeats, grouping, cooldowns and the rate limit.
    pub router: router::RouterConfig,
    /// Where delivered alerts are POSTed (`[[alerts.webhooks]]`).
    pub webhooks: Vec<webhook::WebhookConfig>,
}
