//! `[alerts]`: the negative-comment rule, the router and the webhooks, each owned by its module.

/// `[alerts]` in `gema.toml`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// When one negative mention is an alert.
    pub negative_comment: super::rules::NegativeCommentConfig,
    /// Repeats, grouping, cooldowns and the rate limit.
    pub router: super::router::RouterConfig,
    /// When related alerts become one incident, and when it is over.
    pub incidents: super::incident::IncidentConfig,
    /// Where delivered alerts are POSTed (`[[alerts.webhooks]]`).
    pub webhooks: Vec<super::webhook::WebhookConfig>,
}
