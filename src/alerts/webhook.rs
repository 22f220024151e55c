//! Webhook delivery: Slack-compatible JSON, an HMAC-SHA256 signature, retries with backoff, on a
//! bounded queue of its own so a failing endpoint never blocks the pipeline.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use tokio::sync::mpsc;

use super::alert::{Alert, Severity};
use super::incident::{Incident, IncidentStatus};
use crate::metrics::Metrics;

/// Header with the signature: `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub const SIGNATURE_HEADER: &str = "X-Gema-Signature";
/// Header with the Unix time the signature covers (reject old ones to stop replays).
pub const TIMESTAMP_HEADER: &str = "X-Gema-Timestamp";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST (e.g. a Slack incoming-webhook URL).
    pub url: String,
    /// Name of the environment variable holding the signing secret (never the secret itself).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Only alerts at least this severe are sent.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// Per-request timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Retries after the first failed attempt (backoff 0.5 s, 1 s, 2 s, ...).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Alerts waiting for this endpoint; beyond it new ones are dropped and counted.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// What is sent: `alert` (every delivered alert) and/or `incident` (an incident once, when it
    /// first reaches `min_severity`, and again when it is resolved).
    #[serde(default = "default_events")]
    pub events: Vec<WebhookEvent>,
}

/// What a webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookEvent {
    Alert,
    Incident,
}

fn default_events() -> Vec<WebhookEvent> {
    vec![WebhookEvent::Alert]
}

fn default_min_severity() -> Severity {
    Severity::Low
}
fn default_timeout_ms() -> u64 {
    5_000
}
fn default_retries() -> u32 {
    3
}
fn default_queue() -> usize {
    1_000
}

/// `sha256=<hex>` over `"<timestamp>.<body>"`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// The JSON body: Slack's `text` (plus blocks) and the whole alert under `gema_alert`.
pub fn payload(alert: &Alert) -> serde_json::Value {
    let mut lines = vec![
        format!(
            "*[{}] {}*",
            alert.severity.as_str().to_uppercase(),
            alert.title
        ),
        alert.why.clone(),
    ];
    for s in alert.samples.iter().take(3) {
        lines.push(format!(
            "> @{}: {} <{}|open>",
            s.author_handle,
            s.text.replace('\n', " "),
            s.url
        ));
    }
    let text = lines.join("\n");
    serde_json::json!({
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        "gema_alert": alert,
    })
}

/// The JSON body for an incident: Slack's `text` (plus blocks) and the whole incident under
/// `gema_incident`.
pub fn incident_payload(incident: &Incident) -> serde_json::Value {
    let mut lines = vec![
        format!(
            "*[{}] Incident{}: {}*",
            incident.severity.as_str().to_uppercase(),
            if incident.status == IncidentStatus::Resolved {
                " resolved"
            } else {
                ""
            },
            incident.query
        ),
        incident.summary.clone(),
    ];
    for s in incident.samples.iter().take(3) {
        lines.push(format!(
            "> @{} ({} followers): {} <{}|open>",
            s.author_handle,
            s.author_followers,
            s.text.replace('\n', " "),
            s.url
        ));
    }
    let text = lines.join("\n");
    serde_json::json!({
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        "gema_incident": incident,
    })
}

/// A handle to one endpoint's delivery task.
#[derive(Clone)]
pub struct Webhook {
    /// (the alert's or incident's id, the body).
    tx: mpsc::Sender<(String, serde_json::Value)>,
    min_severity: Severity,
    events: Vec<WebhookEvent>,
    metrics: Arc<Metrics>,
}

impl Webhook {
    /// Starts the delivery task. Fails if `secret_env` names a variable that is not set.
    pub fn spawn(config: WebhookConfig, metrics: Arc<Metrics>) -> Result<Webhook, String> {
        let secret = match &config.secret_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                format!(
                    "webhook {}: environment variable {var} (secret_env) is not set",
                    config.url
                )
            })?),
            None => None,
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()
            .map_err(|e| format!("webhook {}: {e}", config.url))?;
        let (tx, mut rx) =
            mpsc::channel::<(String, serde_json::Value)>(config.queue_capacity.max(1));
        let m = metrics.clone();
        let (min_severity, events) = (config.min_severity, config.events.clone());
        tokio::spawn(async move {
            while let Some((id, payload)) = rx.recv().await {
                let body = serde_json::to_vec(&payload).expect("a payload serialises");
                let mut backoff = Duration::from_millis(500);
                let mut attempt = 0;
                loop {
                    let ts = chrono::Utc::now().timestamp();
                    let mut req = client
                        .post(&config.url)
                        .header("content-type", "application/json")
                        .header(TIMESTAMP_HEADER, ts.to_string())
                        .body(body.clone());
                    if let Some(s) = &secret {
                        req = req.header(SIGNATURE_HEADER, sign(s.as_bytes(), ts, &body));
                    }
                    let result = req.send().await.and_then(|r| r.error_for_status());
                    match result {
                        Ok(_) => {
                            m.webhook_sent.inc();
                            break;
                        }
                        Err(e) if attempt < config.max_retries => {
                            attempt += 1;
                            tracing::debug!(url = %config.url, attempt, error = %e, "Webhook failed; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff *= 2;
                        }
                        Err(e) => {
                            m.webhook_failed.inc();
                            tracing::warn!(url = %config.url, id = %id, error = %e, "Webhook gave up");
                            break;
                        }
                    }
                }
            }
        });
        Ok(Webhook {
            tx,
            min_severity,
            events,
            metrics,
        })
    }

    /// Queues `alert` without waiting, if this endpoint takes alerts; a full queue drops it and
    /// counts the drop.
    pub fn offer(&self, alert: &Alert) {
        if alert.severity < self.min_severity || !self.events.contains(&WebhookEvent::Alert) {
            return;
        }
        self.queue(alert.id.clone(), payload(alert));
    }

    /// Queues an incident version without waiting, if this endpoint takes incidents and the
    /// version is news to it: the first to reach `min_severity`, or the resolution of one that
    /// had reached it.
    pub fn offer_incident(&self, incident: &Incident) {
        if incident.severity < self.min_severity || !self.events.contains(&WebhookEvent::Incident) {
            return;
        }
        let announced = incident
            .previous_severity
            .is_some_and(|s| s >= self.min_severity);
        if announced && incident.status != IncidentStatus::Resolved {
            return;
        }
        self.queue(incident.id.clone(), incident_payload(incident));
    }

    fn queue(&self, id: String, payload: serde_json::Value) {
        if self.tx.try_send((id, payload)).is_err() {
            self.metrics.webhook_dropped.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac() {
        // HMAC-SHA256(key="secret", "1700000000.{}") computed independently with Python's hmac.
        let sig = sign(b"secret", 1_700_000_000, b"{}");
        assert_eq!(
            sig,
            "sha256=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
        assert_ne!(sig, sign(b"secret", 1_700_000_001, b"{}"));
        assert_ne!(sig, sign(b"other", 1_700_000_000, b"{}"));
    }

    fn alert(severity: Severity) -> Alert {
        Alert {
            id: "a".into(),
            kind: super::super::AlertKind::NegativeComment,
            severity,
            query: Some("q".into()),
            term: None,
            title: "t".into(),
            why: "w".into(),
            samples: vec![],
            count: 1,
            thread_id: None,
            event_time: chrono::Utc::now(),
            detected_at: chrono::Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_dead_endpoint_never_blocks_and_every_loss_is_counted() {
        // Port 1 on loopback refuses connections at once.
        let metrics = Arc::new(Metrics::default());
        let config = WebhookConfig {
            url: "http://127.0.0.1:1/hook".into(),
            secret_env: None,
            min_severity: Severity::Medium,
            timeout_ms: 500,
            max_retries: 1,
            queue_capacity: 2,
            events: default_events(),
        };
        let hook = Webhook::spawn(config, metrics.clone()).unwrap();
        let started = std::time::Instant::now();
        for _ in 0..10 {
            hook.offer(&alert(Severity::High));
        }
        hook.offer(&alert(Severity::Low)); // below min_severity: not sent, not counted
        assert!(
            started.elapsed() < std::time::Duration::from_millis(50),
            "offer never waits"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while metrics.webhook_failed.get() + metrics.webhook_dropped.get() < 10 {
            assert!(std::time::Instant::now() < deadline, "failures are counted");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(
            metrics.webhook_dropped.get() >= 7,
            "a full queue drops and counts"
        );
        assert_eq!(metrics.webhook_sent.get(), 0);
    }

    #[test]
    fn a_missing_secret_variable_is_an_error_naming_it() {
        let config = WebhookConfig {
            url: "http://127.0.0.1:1/hook".into(),
            secret_env: Some("GEMA_TEST_NO_SUCH_SECRET".into()),
            min_severity: Severity::Low,
            timeout_ms: 500,
            max_retries: 0,
            queue_capacity: 1,
            events: default_events(),
        };
        let err = Webhook::spawn(config, Arc::new(Metrics::default()))
            .err()
            .unwrap();
        assert!(err.contains("GEMA_TEST_NO_SUCH_SECRET"), "{err}");
    }
}
