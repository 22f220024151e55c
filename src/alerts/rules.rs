//! The per-mention rule: a negative comment about a tracked query.

use chrono::Utc;
use serde::Deserialize;

use crate::mention::EnrichedMention;

use super::alert::{alert_id, Alert, AlertKind, Sample, Severity};

/// When a single mention becomes an alert, and how severe it is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NegativeCommentConfig {
    /// Only negative mentions with at least this confidence alert.
    pub min_confidence: f32,
    /// Authors with at least this many followers make the alert `medium`...
    pub followers_medium: u64,
    /// ...`high`...
    pub followers_high: u64,
    /// ...or `critical`.
    pub followers_critical: u64,
    /// Likes + reposts + replies at or above this raise the severity one level (up to `high`
    /// for authors below `followers_high`).
    pub engagement_bump: u64,
    /// Words that raise the severity one level (matched on the normalised text, whole words).
    pub crisis_terms: Vec<String>,
}

impl Default for NegativeCommentConfig {
    fn default() -> Self {
        NegativeCommentConfig {
            min_confidence: 0.5,
            followers_medium: 1_000,
            followers_high: 10_000,
            followers_critical: 100_000,
            engagement_bump: 250,
            crisis_terms: [
                "refund", "scam", "fraud", "lawsuit", "sue", "hacked", "stolen", "police",
                "boycott", "penipuan", "tipu", "nipu", "kecewa", "lapor", "polisi", "somasi",
                "viral", "bohong", "hilang", "boikot", "ylki",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        }
    }
}

/// The negative-comment alert for `e`, if it is one: negative, confident enough, and matching at
/// least one tracked query (one alert per mention, naming the first query it matches).
pub fn negative_comment(e: &EnrichedMention, config: &NegativeCommentConfig) -> Option<Alert> {
    if !e.is_negative() || e.sentiment.confidence < config.min_confidence {
        return None;
    }
    let query = e.queries.first()?;
    let followers = e.mention.author.followers.unwrap_or(0);
    let base = if followers >= config.followers_critical {
        Severity::Critical
    } else if followers >= config.followers_high {
        Severity::High
    } else if followers >= config.followers_medium {
        Severity::Medium
    } else {
        Severity::Low
    };
    let mut reasons = vec![format!(
        "negative (score {:+.2}, confidence {:.2}) {} mention matching \"{query}\" by @{} ({} followers)",
        e.sentiment.score, e.sentiment.confidence, e.mention.platform, e.mention.author.handle, followers
    )];
    let engagement = e
        .mention
        .metrics
        .map(|m| m.likes as u64 + m.reposts as u64 + m.replies as u64)
        .unwrap_or(0);
    // Engagement and crisis terms raise the severity, but only reach makes a mention critical
    // on its own: a small account gets at most `high`.
    let cap = if base >= Severity::High {
        Severity::Critical
    } else {
        Severity::High
    };
    let mut severity = base;
    if engagement >= config.engagement_bump {
        severity = severity.bump().min(cap);
        reasons.push(format!(
            "high engagement ({engagement} likes, reposts and replies)"
        ));
    }
    let words: Vec<&str> = e
        .normalized_text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let crisis: Vec<&str> = config
        .crisis_terms
        .iter()
        .map(String::as_str)
        .filter(|t| words.contains(t))
        .collect();
    if !crisis.is_empty() {
        severity = severity.bump().min(cap);
        reasons.push(format!("crisis terms: {}", crisis.join(", ")));
    }
    let thread_id = e
        .mention
        .thread_id
        .clone()
        .or_else(|| e.mention.parent_id.clone());
    Some(Alert {
        id: alert_id(AlertKind::NegativeComment, &[query, &e.key]),
        kind: AlertKind::NegativeComment,
        severity,
        query: Some(query.clone()),
        term: None,
        title: format!(
            "Negative comment about {query} from @{}",
            e.mention.author.handle
        ),
        why: capitalise(&reasons.join("; ")),
        samples: vec![Sample::from(e)],
        count: 1,
        thread_id,
        event_time: e.mention.created_at,
        detected_at: Utc::now(),
    })
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::Enricher;
    use crate::sentiment::lexicon::LexiconModel;
    use std::sync::Arc;

    fn enriched(text: &str, followers: u64, likes: u32, queries: &[&str]) -> EnrichedMention {
        let m = serde_json::from_value(serde_json::json!({
            "id": "1", "platform": "x", "text": text, "created_at": "2026-11-26T10:00:00Z",
            "author": {"id": "u", "handle": "ann", "followers": followers},
            "metrics": {"likes": likes, "reposts": 0, "replies": 0},
        }))
        .unwrap();
        let mut e = Enricher::new(Arc::new(LexiconModel)).enrich(m);
        e.queries = queries.iter().map(|s| s.to_string()).collect();
        e
    }

    #[test]
    fn negative_tracked_mentions_alert_with_severity_from_reach_engagement_and_crisis_terms() {
        let c = NegativeCommentConfig::default();
        let small = negative_comment(
            &enriched("worst app ever, so slow", 50, 0, &["nusapay"]),
            &c,
        )
        .unwrap();
        assert_eq!(small.severity, Severity::Low);
        assert_eq!(small.query.as_deref(), Some("nusapay"));
        assert!(small.why.contains("@ann (50 followers)"), "{}", small.why);

        let big = negative_comment(
            &enriched("worst app ever, so slow", 20_000, 0, &["nusapay"]),
            &c,
        )
        .unwrap();
        assert_eq!(big.severity, Severity::High);

        let crisis = negative_comment(
            &enriched(
                "this is a scam, I want a refund, terrible",
                50,
                500,
                &["nusapay"],
            ),
            &c,
        )
        .unwrap();
        assert_eq!(
            crisis.severity,
            Severity::High,
            "engagement and crisis terms each bump once"
        );
        assert!(
            crisis.why.contains("crisis terms: refund, scam"),
            "{}",
            crisis.why
        );
    }

    #[test]
    fn positive_or_untracked_mentions_do_not_alert() {
        let c = NegativeCommentConfig::default();
        assert!(
            negative_comment(&enriched("love it, great app", 50, 0, &["nusapay"]), &c).is_none()
        );
        assert!(
            negative_comment(&enriched("this is the worst app ever", 50, 0, &[]), &c).is_none()
        );
    }

    #[test]
    fn the_same_mention_always_gets_the_same_id() {
        let c = NegativeCommentConfig::default();
        let a = negative_comment(
            &enriched("this is the worst app ever", 50, 0, &["nusapay"]),
            &c,
        )
        .unwrap();
        let b = negative_comment(
            &enriched("this is the worst app ever", 50, 0, &["nusapay"]),
            &c,
        )
        .unwrap();
        assert_eq!(a.id, b.id);
    }
}
