//! The contracts between stages: [`Mention`] (connectors → everything else) and
//! [`EnrichedMention`] (enrich stage → sink, trends, alerts). JSON Schemas for both live in
//! `schemas/`; a test checks they agree with these types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::sentiment::{Label, Sentiment};

/// One post, comment or article that mentions something the user listens for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mention {
    /// The platform's own id for the post.
    pub id: String,
    /// Where it was posted: `mastodon`, `bluesky`, `reddit`, `rss`, `hn`, `x`, `webhook`, `synth`...
    pub platform: String,
    pub text: String,
    /// When the author posted it (event time), RFC 3339 UTC.
    pub created_at: DateTime<Utc>,
    pub author: Author,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The platform's language hint (ISO 639-1), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// When a connector read it; used to measure end-to-end latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingested_at: Option<DateTime<Utc>>,
    /// Fields this version of gema does not know, kept as they came (written back at the top
    /// level, so a mention round-trips unchanged).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Author {
    pub id: String,
    pub handle: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub followers: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    #[serde(default)]
    pub likes: u32,
    #[serde(default)]
    pub reposts: u32,
    #[serde(default)]
    pub replies: u32,
}

/// Why a message is not a valid [`Mention`].
#[derive(Debug, thiserror::Error)]
pub enum MentionError {
    #[error("not UTF-8 at byte {0}")]
    NotUtf8(usize),
    #[error("invalid JSON mention: {0}")]
    Json(#[from] serde_json::Error),
    #[error("field `{0}` must not be empty")]
    Empty(&'static str),
    #[error("field `text` is {0} bytes, over the limit of {MAX_TEXT_BYTES}")]
    TooLong(usize),
    #[error("field `{0}` is {1}, outside 2000-01-01..2100-01-01")]
    OutOfRange(&'static str, DateTime<Utc>),
    #[error("nested {0} levels deep, over the limit of {MAX_NESTING}")]
    TooDeep(usize),
    #[error("field `{0}` must not contain control characters")]
    ControlChars(&'static str),
}

impl MentionError {
    /// A short, fixed reason code for metrics and the dead-letter topic.
    pub fn reason(&self) -> &'static str {
        match self {
            MentionError::NotUtf8(_) => "not_utf8",
            MentionError::Json(e) if e.is_syntax() || e.is_eof() => "invalid_json",
            MentionError::Json(_) => "schema",
            MentionError::Empty(_) => "empty_field",
            MentionError::TooLong(_) => "too_long",
            MentionError::OutOfRange(..) => "out_of_range",
            MentionError::TooDeep(_) => "too_deep",
            MentionError::ControlChars(_) => "schema",
        }
    }
}

/// Deepest nesting of arrays and objects a mention may have. Every stage after enrich reads the
/// enriched form, which nests the mention one level deeper, with serde_json's limit of 128; a
/// mention past this limit is refused at the door instead of being accepted by enrich and refused
/// by the sink.
pub const MAX_NESTING: usize = 64;

/// Zero-width spaces, joiners, the word joiner, the byte-order mark and soft hyphen: characters
/// that show nothing.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}'
    )
}

/// The deepest nesting of `[` and `{` in `json`, outside strings.
fn nesting(json: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Texts longer than this are rejected (long-form articles are truncated by their connector).
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// The key of each Kafka record and ClickHouse row for a mention: `<platform>:<id>`.
pub fn mention_key(platform: &str, id: &str) -> String {
    format!("{platform}:{id}")
}

impl Mention {
    /// Parses and validates raw bytes from a connector.
    pub fn parse(bytes: &[u8]) -> Result<Mention, MentionError> {
        let s = std::str::from_utf8(bytes).map_err(|e| MentionError::NotUtf8(e.valid_up_to()))?;
        let depth = nesting(bytes);
        if depth > MAX_NESTING {
            return Err(MentionError::TooDeep(depth));
        }
        let mention: Mention = serde_json::from_str(s)?;
        mention.validate()?;
        Ok(mention)
    }

    pub fn validate(&self) -> Result<(), MentionError> {
        if self.id.trim().is_empty() {
            return Err(MentionError::Empty("id"));
        }
        if self.platform.trim().is_empty() {
            return Err(MentionError::Empty("platform"));
        }
        // Zero-width and other invisible format characters do not make a text.
        let visible = |c: char| !c.is_whitespace() && !is_invisible(c);
        if !self.text.chars().any(visible) {
            return Err(MentionError::Empty("text"));
        }
        for (field, value) in [("id", &self.id), ("platform", &self.platform)] {
            if value.chars().any(char::is_control) {
                return Err(MentionError::ControlChars(field));
            }
        }
        if self.author.id.trim().is_empty() {
            return Err(MentionError::Empty("author.id"));
        }
        if self.text.len() > MAX_TEXT_BYTES {
            return Err(MentionError::TooLong(self.text.len()));
        }
        // Social and news posts of the web era. ClickHouse's DateTime holds 1970..2106, but
        // 18.16 shows the epoch itself as 0000-00-00, and a time before 2000 or after 2099 is a
        // connector's bug, not a post.
        let in_range = |t: &DateTime<Utc>| (EARLIEST_TIME..LATEST_TIME).contains(&t.timestamp());
        if !in_range(&self.created_at) {
            return Err(MentionError::OutOfRange("created_at", self.created_at));
        }
        if let Some(t) = self.ingested_at.filter(|t| !in_range(t)) {
            return Err(MentionError::OutOfRange("ingested_at", t));
        }
        Ok(())
    }

    pub fn key(&self) -> String {
        mention_key(&self.platform, &self.id)
    }
}

/// The accepted `created_at` / `ingested_at` range, in Unix seconds: 2000-01-01 (inclusive) to
/// 2100-01-01 (exclusive). A mention outside it is dead-lettered (`out_of_range`).
pub const EARLIEST_TIME: i64 = 946_684_800;
pub const LATEST_TIME: i64 = 4_102_444_800;

/// A mention with everything the enrich stage derived from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrichedMention {
    /// `<platform>:<id>`, the same as the Kafka key.
    pub key: String,
    pub mention: Mention,
    /// Detected language: `en`, `id` or `other`.
    pub lang: String,
    pub lang_confidence: f32,
    pub sentiment: Sentiment,
    /// Which model produced `sentiment`.
    pub sentiment_model: String,
    /// Text after normalisation (URLs and handles replaced, lower case, elongations squeezed).
    pub normalized_text: String,
    /// Lower-case hashtags without `#`.
    pub hashtags: Vec<String>,
    /// Lower-case handles without `@`.
    pub mentions: Vec<String>,
    pub urls: Vec<String>,
    pub emojis: Vec<String>,
    /// Content words after English and Indonesian stop words.
    pub keywords: Vec<String>,
    /// Names of the tracked queries this mention matches.
    pub queries: Vec<String>,
    pub enriched_at: DateTime<Utc>,
    /// What the sentiment cascade did, when it is enabled (`[enrich.cascade]`): which tier
    /// decided `sentiment`, and both tiers' scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cascade: Option<CascadeRecord>,
}

/// The sentiment cascade's record on one mention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CascadeRecord {
    /// `fast` or `bert`: the tier whose verdict is `EnrichedMention::sentiment`.
    pub tier: String,
    pub escalation: Escalation,
    /// The fast tier's verdict.
    pub fast: Sentiment,
    /// The transformer tier's verdict, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bert: Option<Sentiment>,
}

/// Whether and how a mention went to the transformer tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Escalation {
    /// The fast tier was sure enough, or the mention did not matter enough.
    NotNeeded,
    /// The transformer decided.
    Decided,
    /// The transformer's queue was full: the fast label stands.
    QueueFull,
    /// The verdict did not come within `max_wait_ms` (or the transformer failed): the fast label
    /// stands.
    TimedOut,
}

impl Escalation {
    /// The name used in JSON and in the `cascade_escalation` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Escalation::NotNeeded => "not_needed",
            Escalation::Decided => "decided",
            Escalation::QueueFull => "queue_full",
            Escalation::TimedOut => "timed_out",
        }
    }
}

impl EnrichedMention {
    pub fn is_negative(&self) -> bool {
        self.sentiment.label == Label::Negative
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"id":"1","platform":"x","text":"hi","created_at":"2026-11-26T10:00:00Z","author":{"id":"a","handle":"ann"},"foo":{"bar":1}}"#;

    #[test]
    fn escalation_names_match_the_json() {
        use Escalation::*;
        for e in [NotNeeded, Decided, QueueFull, TimedOut] {
            assert_eq!(serde_json::to_value(e).unwrap(), e.as_str());
        }
    }

    #[test]
    fn a_mention_nested_past_the_limit_is_refused_with_the_reason() {
        let nested = |levels: usize| {
            format!(
                r#"{{"id":"1","platform":"x","text":"t [[[[ {{{{","created_at":"2026-11-26T00:00:00Z","author":{{"id":"a","handle":"a"}},"extra":{}1{}}}"#,
                "[".repeat(levels),
                "]".repeat(levels)
            )
        };
        // 126 levels: serde alone would take it, and the enriched form (one level deeper)
        // would then fail in the sink.
        let err = Mention::parse(nested(126).as_bytes()).unwrap_err();
        assert_eq!(err.reason(), "too_deep");
        assert!(err.to_string().contains("127 levels"), "{err}");
        // Brackets inside strings do not count; a mention at the limit round-trips through the
        // enriched form.
        let ok = Mention::parse(nested(MAX_NESTING - 1).as_bytes()).unwrap();
        let json = serde_json::to_vec(&ok).unwrap();
        assert!(Mention::parse(&json).is_ok());
        assert_eq!(nesting(br#"{"a":"[[[[","b":[{}]}"#), 3);
    }

    #[test]
    fn invisible_text_and_control_characters_in_ids_are_refused() {
        let m = |id: &str, text: &str| {
            format!(
                r#"{{"id":{},"platform":"x","text":{},"created_at":"2026-11-26T00:00:00Z","author":{{"id":"a","handle":"a"}}}}"#,
                serde_json::to_string(id).unwrap(),
                serde_json::to_string(text).unwrap()
            )
        };
        let err = Mention::parse(m("1", "\u{200b}\u{200d} \u{feff}").as_bytes()).unwrap_err();
        assert_eq!(err.reason(), "empty_field");
        let err = Mention::parse(m("\u{0}", "halo").as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("`id` must not contain control"),
            "{err}"
        );
        assert!(Mention::parse(m("1", "halo\u{200b}").as_bytes()).is_ok());
    }

    #[test]
    fn parses_and_keeps_unknown_fields_in_extra() {
        let m = Mention::parse(GOOD.as_bytes()).unwrap();
        assert_eq!(m.key(), "x:1");
        assert_eq!(m.extra.get("foo").unwrap()["bar"], 1);
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        let cases: &[(&[u8], &str)] = &[
            (b"{not json", "invalid_json"),
            (b"{\"id\":\"1\"}", "schema"),
            (b"\xff\xfe", "not_utf8"),
            (br#"{"id":"1","platform":"x","text":"  ","created_at":"2026-11-26T10:00:00Z","author":{"id":"a","handle":"a"}}"#, "empty_field"),
            (br#"{"id":"1","platform":"x","text":"t","created_at":"yesterday","author":{"id":"a","handle":"a"}}"#, "schema"),
            (br#"{"id":"1","platform":"x","text":"t","created_at":"1900-01-01T00:00:00Z","author":{"id":"a","handle":"a"}}"#, "out_of_range"),
        ];
        for (input, reason) in cases {
            let err = Mention::parse(input).unwrap_err();
            assert_eq!(err.reason(), *reason, "{err}");
        }
    }
}
