//! The largest record gema may produce: the broker's actual limit, asked at start-up, not a
//! constant.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Headers, OwnedHeaders};

use super::config::KafkaConfig;

/// Bytes of a record's limit kept free for the record batch's framing (offsets, lengths,
/// attributes, the batch header of a batch of one).
pub const FRAMING: usize = 1024;

/// The bytes a record takes against [`record_limit`]: key, value, and each header's name and
/// value.
pub fn record_bytes(key: Option<&[u8]>, payload: &[u8], headers: Option<&OwnedHeaders>) -> usize {
    let headers = headers.map_or(0, |h| {
        h.iter()
            .map(|x| x.key.len() + x.value.map_or(0, <[u8]>::len))
            .sum()
    });
    key.map_or(0, <[u8]>::len) + payload.len() + headers
}

/// librdkafka's default `message.max.bytes`.
const PRODUCER_DEFAULT: usize = 1_000_000;

/// The producer's own `message.max.bytes`: the user's option, else librdkafka's default.
pub fn producer_limit(config: &KafkaConfig) -> usize {
    config
        .options
        .get("message.max.bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(PRODUCER_DEFAULT)
}

/// The largest record (key, value and headers) that every one of `topics` accepts from gema's
/// producer: the smallest of the topics' `max.message.bytes` as the broker reports it and the
/// producer's `message.max.bytes`, less [`FRAMING`]. When the broker cannot be asked (an old
/// broker, no describe permission), the producer's limit alone, with a warning.
pub async fn record_limit(config: &KafkaConfig, topics: &[&str]) -> usize {
    let producer = producer_limit(config);
    let broker = match topic_limit(config, topics).await {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot read the topics' max.message.bytes; using the producer's message.max.bytes");
            None
        }
    };
    broker
        .unwrap_or(producer)
        .min(producer)
        .saturating_sub(FRAMING)
}

/// The smallest `max.message.bytes` of `topics` (`None`: none reported one).
async fn topic_limit(config: &KafkaConfig, topics: &[&str]) -> Result<Option<usize>, String> {
    let admin: AdminClient<DefaultClientContext> = super::client::base_config(config)
        .create()
        .map_err(|e| e.to_string())?;
    let specs: Vec<ResourceSpecifier> =
        topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .describe_configs(&specs, &opts)
        .await
        .map_err(|e| e.to_string())?;
    let mut limit: Option<usize> = None;
    for r in results {
        let resource = r.map_err(|code| format!("describe configs: {code}"))?;
        let value = resource
            .get("max.message.bytes")
            .and_then(|e| e.value.as_deref())
            .and_then(|v| v.parse::<usize>().ok());
        if let Some(v) = value {
            limit = Some(limit.map_or(v, |l| l.min(v)));
        }
    }
    Ok(limit)
}
