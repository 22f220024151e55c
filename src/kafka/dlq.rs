//! Dead-letter records: the original bytes unchanged, the reason and the source in headers.

use rdkafka::message::{Header, Headers, OwnedHeaders};

use super::limits::record_bytes;

pub const H_REASON: &str = "gema.reason";
pub const H_ERROR: &str = "gema.error";
pub const H_STAGE: &str = "gema.stage";
pub const H_TOPIC: &str = "gema.source.topic";
pub const H_PARTITION: &str = "gema.source.partition";
pub const H_OFFSET: &str = "gema.source.offset";
/// Only on a dead letter whose original was cut to fit the topic: the original's length...
pub const H_ORIGINAL_BYTES: &str = "gema.original.bytes";
/// ...and the SHA-256 (hex) of all of it.
pub const H_ORIGINAL_SHA256: &str = "gema.original.sha256";

/// Longest `gema.error` kept (an error quoting a huge input stays readable and small).
const MAX_ERROR_BYTES: usize = 2000;

/// Where a rejected message came from and why it was rejected.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeadLetter {
    pub stage: String,
    /// Short fixed code, e.g. `invalid_json`, `schema`, `empty_field`.
    pub reason: String,
    /// The full error message.
    pub error: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Set when the original was too large for the dead-letter topic and was cut to fit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncated>,
}

/// What was cut from a dead letter's original: its whole length and hash, so it can be found
/// and recognised at its source.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Truncated {
    pub original_bytes: usize,
    /// SHA-256 of the whole original, hex.
    pub sha256: String,
}

impl DeadLetter {
    pub fn headers(&self) -> OwnedHeaders {
        let partition = self.partition.to_string();
        let offset = self.offset.to_string();
        let mut error = self.error.as_str();
        if error.len() > MAX_ERROR_BYTES {
            let mut end = MAX_ERROR_BYTES;
            while !error.is_char_boundary(end) {
                end -= 1;
            }
            error = &error[..end];
        }
        let (bytes, sha) = match &self.truncated {
            Some(t) => (t.original_bytes.to_string(), t.sha256.clone()),
            None => (String::new(), String::new()),
        };
        let mut headers = vec![
            (H_STAGE, self.stage.as_str()),
            (H_REASON, self.reason.as_str()),
            (H_ERROR, error),
            (H_TOPIC, self.topic.as_str()),
            (H_PARTITION, partition.as_str()),
            (H_OFFSET, offset.as_str()),
        ];
        if self.truncated.is_some() {
            headers.push((H_ORIGINAL_BYTES, bytes.as_str()));
            headers.push((H_ORIGINAL_SHA256, sha.as_str()));
        }
        headers
            .into_iter()
            .fold(OwnedHeaders::new(), |h, (key, value)| {
                h.insert(Header {
                    key,
                    value: Some(value),
                })
            })
    }

    /// The original to send with this dead letter so that the record (key, original and
    /// headers) stays within `limit` bytes: all of it when it fits, else its first bytes, with
    /// [`DeadLetter::truncated`] set to its length and SHA-256.
    pub fn fit<'a>(&mut self, key: Option<&[u8]>, original: &'a [u8], limit: usize) -> &'a [u8] {
        if record_bytes(key, original, Some(&self.headers())) <= limit {
            return original;
        }
        use sha2::{Digest, Sha256};
        let sha256 = Sha256::digest(original)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.truncated = Some(Truncated {
            original_bytes: original.len(),
            sha256,
        });
        let room = limit.saturating_sub(record_bytes(key, &[], Some(&self.headers())));
        &original[..room.min(original.len())]
    }

    /// Reads the headers written by [`DeadLetter::headers`]; `None` if any is missing.
    pub fn from_headers<H: Headers>(headers: &H) -> Option<DeadLetter> {
        let get = |name: &str| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        Some(DeadLetter {
            stage: get(H_STAGE)?,
            reason: get(H_REASON)?,
            error: get(H_ERROR)?,
            topic: get(H_TOPIC)?,
            partition: get(H_PARTITION)?.parse().ok()?,
            offset: get(H_OFFSET)?.parse().ok()?,
            truncated: match (get(H_ORIGINAL_BYTES), get(H_ORIGINAL_SHA256)) {
                (Some(bytes), Some(sha256)) => Some(Truncated {
                    original_bytes: bytes.parse().ok()?,
                    sha256,
                }),
                _ => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let d = DeadLetter {
            stage: "enrich".into(),
            reason: "invalid_json".into(),
            error: "EOF while parsing".into(),
            topic: "gema.mentions.raw".into(),
            partition: 2,
            offset: 41,
            truncated: None,
        };
        assert_eq!(DeadLetter::from_headers(&d.headers()), Some(d));
    }

    #[test]
    fn an_original_too_large_for_the_topic_is_cut_with_its_length_and_hash() {
        let mut d = DeadLetter {
            stage: "enrich".into(),
            reason: "too_large".into(),
            error: "x".repeat(10_000),
            topic: "gema.mentions.raw".into(),
            partition: 0,
            offset: 7,
            truncated: None,
        };
        let small = b"{}";
        assert_eq!(d.clone().fit(None, small, 10_000), small);
        let original = vec![b'a'; 50_000];
        let kept = d.fit(Some(b"k"), &original, 10_000);
        let t = d.truncated.clone().expect("cut");
        assert_eq!(t.original_bytes, 50_000);
        assert_eq!(t.sha256.len(), 64);
        assert!(kept.len() > 5_000, "{}", kept.len());
        assert!(record_bytes(Some(b"k"), kept, Some(&d.headers())) <= 10_000);
        // The long error is cut too, and the headers read back.
        let back = DeadLetter::from_headers(&d.headers()).unwrap();
        assert_eq!(back.truncated, Some(t));
        assert_eq!(back.error.len(), 2000);
    }
}

/// One record read back from the dead-letter topic.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetterRecord {
    pub dead_letter: Option<DeadLetter>,
    /// The original bytes, lossily decoded for display.
    pub original: String,
    pub partition: i32,
    pub offset: i64,
}

/// Reads every record currently in the dead-letter topic (oldest first per partition), up to
/// `limit`. Joins no consumer group and commits nothing.
pub fn read_dead_letters(
    config: &super::config::KafkaConfig,
    topic: &str,
    limit: usize,
) -> Result<Vec<DeadLetterRecord>, rdkafka::error::KafkaError> {
    use rdkafka::Message;
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    super::read::read_to_end(
        config,
        "gema-dlq-reader",
        topic,
        None,
        std::time::Duration::from_secs(30),
        |m| {
            out.push(DeadLetterRecord {
                dead_letter: m.headers().and_then(DeadLetter::from_headers),
                original: String::from_utf8_lossy(m.payload().unwrap_or(&[])).into_owned(),
                partition: m.partition(),
                offset: m.offset(),
            });
            out.len() < limit
        },
    )?;
    Ok(out)
}
