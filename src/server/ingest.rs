//! `POST /api/ingest`: the webhook connector. Anything that can send an HTTP request (a platform's
//! webhook relay, an automation tool, a script) posts mentions in the contract of
//! `schemas/mention.schema.json`; each goes to the raw topic as `gema replay` sends a line.
//!
//! - A valid mention is stamped with `ingested_at` and keyed `<platform>:<id>`.
//! - Each element is validated from its own bytes exactly as `gema replay` validates a line (a
//!   duplicate field is refused by both). An element that is JSON but not a valid mention is
//!   forwarded byte for byte as it came, so the enrich stage dead-letters the original with the
//!   reason (nothing is lost), and the response names it.
//! - A body that is not JSON, or not an object or array, is refused with 400: nothing is sent.
//!
//! The answer (202) comes only after Kafka acknowledged every record, so a client that gets it
//! may forget the mentions; on 503 it should send them again (the pipeline is at-least-once and
//! collapses repeats by key).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::Utc;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;
use crate::kafka::KafkaConfig;
use crate::kafka::{self, Topics};
use crate::mention::Mention;

/// Most mentions in one request (the body is also capped by `server.body_limit_bytes`).
pub const MAX_INGEST_MENTIONS: usize = 1_000;
/// Longest wait for Kafka's acknowledgements before answering 503.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// The producer and the raw topic the webhook connector writes to.
pub struct Ingest {
    producer: FutureProducer,
    topic: String,
}

impl Ingest {
    /// A producer for `topics.raw`. It connects lazily: with Kafka down, requests answer 503
    /// until it is back (`gema migrate` creates the topics).
    pub fn new(config: &KafkaConfig, topics: &Topics) -> Result<Ingest, KafkaError> {
        Ok(Ingest {
            producer: kafka::producer(config)?,
            topic: topics.raw.clone(),
        })
    }
}

/// An element of the body that is not a valid mention.
#[derive(Debug, Serialize)]
struct Malformed {
    index: usize,
    reason: &'static str,
    error: String,
}

/// `POST /api/ingest`: one mention object, or an array of them.
pub async fn ingest(
    State(st): State<Arc<AppState>>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let Some(ingest) = st.ingest.as_deref() else {
        return Err(ApiError::Unavailable(
            "ingest is off: this server has no Kafka producer".into(),
        ));
    };
    let not_json = |e: serde_json::Error| {
        ApiError::BadRequest(format!("body: not JSON ({e}); nothing was sent"))
    };
    // Each element's own bytes, as the client sent them.
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let items: Vec<&RawValue> = match first {
        Some(b'[') => serde_json::from_slice(&body).map_err(not_json)?,
        Some(b'{') => vec![serde_json::from_slice(&body).map_err(not_json)?],
        _ => {
            // Not an object or array: say whether it is JSON at all.
            serde_json::from_slice::<Value>(&body).map_err(not_json)?;
            return Err(ApiError::BadRequest(
                "body: a mention object or an array of them; nothing was sent".into(),
            ));
        }
    };
    if items.is_empty() || items.len() > MAX_INGEST_MENTIONS {
        return Err(ApiError::BadRequest(format!(
            "body: 1 to {MAX_INGEST_MENTIONS} mentions, got {}; nothing was sent",
            items.len()
        )));
    }
    let now = Utc::now();
    let batch = now.timestamp_nanos_opt().unwrap_or_default();
    let mut malformed = Vec::new();
    let mut deliveries = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let raw = item.get().as_bytes();
        let (key, payload) = match Mention::parse(raw) {
            Ok(mut m) => {
                m.ingested_at = Some(now);
                let payload = serde_json::to_vec(&m).expect("a mention serialises");
                (m.key(), payload)
            }
            Err(e) => {
                malformed.push(Malformed {
                    index,
                    reason: e.reason(),
                    error: e.to_string(),
                });
                (format!("webhook:{batch}:{index}"), raw.to_vec())
            }
        };
        let record = FutureRecord::to(&ingest.topic).key(&key).payload(&payload);
        let delivery = ingest.producer.send_result(record).map_err(|(e, _)| {
            ApiError::Unavailable(format!("Kafka refused mention {index}: {e}; send again"))
        })?;
        deliveries.push(delivery);
    }
    let sent = deliveries.len();
    for (index, d) in deliveries.into_iter().enumerate() {
        match tokio::time::timeout(ACK_TIMEOUT, d).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err((e, _)))) => {
                return Err(ApiError::Unavailable(format!(
                    "Kafka did not store mention {index}: {e}; send again"
                )))
            }
            _ => {
                return Err(ApiError::Unavailable(format!(
                    "Kafka did not acknowledge mention {index} within {} s; send again",
                    ACK_TIMEOUT.as_secs()
                )))
            }
        }
    }
    tracing::debug!(sent, malformed = malformed.len(), "Ingested mentions");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "sent": sent,
            "accepted": sent - malformed.len(),
            "malformed": malformed,
        })),
    ))
}
