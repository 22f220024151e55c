//! The per-mention rule: a negative comment about a tracked query.

use crate::enrich::stopwords::{names_a_reason, without_trailing_punctuation};
use crate::sentiment::explain::WordEffect;
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
    /// How many of the words that made the mention negative the `why` names (0: none, and they
    /// are not computed). Finding them re-scores the mention once per content word, only for
    /// mentions that alert.
    pub explain_words: usize,
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
            explain_words: 3,
        }
    }
}

/// The negative-comment alert for `e`, if it is one: negative, confident enough, and matching at
/// least one tracked query (one alert per mention, naming the first query it matches).
///
/// `effects` is called only when the alert fires and `config.explain_words` is not 0. It gives the leave-one-word-out effects of the
/// mention's words on its score ([`crate::sentiment::explain`]); the words that pulled it
/// towards negative lead the `why`, so whoever answers sees at a glance what the complaint is
/// about, or that the alert is a false alarm.
pub fn negative_comment(
    e: &EnrichedMention,
    config: &NegativeCommentConfig,
    effects: impl FnOnce() -> Vec<WordEffect>,
) -> Option<Alert> {
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
    let effects = if config.explain_words > 0 {
        effects()
    } else {
        Vec::new()
    };
    let words = negative_words(&effects, config.explain_words);
    let because = if words.is_empty() {
        String::new()
    } else {
        format!(" because of {}", words.join(", "))
    };
    let mut reasons = vec![format!(
        "negative{because} (score {:+.2}, confidence {:.2}): {} mention matching \"{query}\" by @{} ({} followers)",
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

/// The words that pulled a mention towards negative, the strongest first, at most `max`
/// (trailing punctuation dropped). Words with a positive effect are not listed, nor function
/// words other than negations ([`names_a_reason`]): with several complaint words in a post,
/// leaving one out barely moves a saturated score, and `ini` or `with` would otherwise lead the
/// list.
fn negative_words(effects: &[WordEffect], max: usize) -> Vec<&str> {
    effects
        .iter()
        .filter(|e| e.effect < 0.0 && names_a_reason(&e.word))
        .map(|e| without_trailing_punctuation(&e.word))
        .take(max)
        .collect()
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
            Vec::new,
        )
        .unwrap();
        assert_eq!(small.severity, Severity::Low);
        assert_eq!(small.query.as_deref(), Some("nusapay"));
        assert!(small.why.contains("@ann (50 followers)"), "{}", small.why);

        let big = negative_comment(
            &enriched("worst app ever, so slow", 20_000, 0, &["nusapay"]),
            &c,
            Vec::new,
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
            Vec::new,
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
    fn the_alert_names_the_words_that_made_the_mention_negative() {
        let e = enriched("the app is awful today, again", 50, 0, &["nusapay"]);
        let effects = || {
            crate::sentiment::explain::model_word_effects(
                &LexiconModel,
                &e.mention.text,
                crate::text::lang::Lang::En,
                e.sentiment.score,
                names_a_reason,
                16,
            )
        };
        let score = format!(
            "(score {:+.2}, confidence {:.2})",
            e.sentiment.score, e.sentiment.confidence
        );
        let a = negative_comment(&e, &NegativeCommentConfig::default(), effects).unwrap();
        assert!(
            a.why
                .starts_with(&format!("Negative because of awful {score}: x mention")),
            "{}",
            a.why
        );
        // With `explain_words = 0` nothing is computed or named.
        let off = NegativeCommentConfig {
            explain_words: 0,
            ..NegativeCommentConfig::default()
        };
        let a = negative_comment(&e, &off, || -> Vec<WordEffect> {
            panic!("not computed when off")
        })
        .unwrap();
        assert!(
            a.why.starts_with(&format!("Negative {score}: x mention")),
            "{}",
            a.why
        );
        // Without words the reason reads as before.
        let a = negative_comment(&e, &NegativeCommentConfig::default(), Vec::new).unwrap();
        assert!(
            a.why.starts_with(&format!("Negative {score}: x mention")),
            "{}",
            a.why
        );
        // Positive effects and punctuation are left out.
        let effects = [
            WordEffect {
                word: "lambat,".into(),
                effect: -0.4,
            },
            WordEffect {
                word: "cepat".into(),
                effect: 0.3,
            },
            WordEffect {
                word: "gagal".into(),
                effect: -0.2,
            },
        ];
        assert_eq!(negative_words(&effects, 3), ["lambat", "gagal"]);
        assert_eq!(negative_words(&effects, 1), ["lambat"]);
        // Function words are left out, negations kept.
        let effects = [
            WordEffect {
                word: "ini?".into(),
                effect: -0.12,
            },
            WordEffect {
                word: "gak".into(),
                effect: -0.1,
            },
            WordEffect {
                word: "With".into(),
                effect: -0.08,
            },
            WordEffect {
                word: "don't".into(),
                effect: -0.07,
            },
            WordEffect {
                word: "hilang".into(),
                effect: -0.05,
            },
        ];
        assert_eq!(negative_words(&effects, 3), ["gak", "don't", "hilang"]);
    }

    #[test]
    fn positive_or_untracked_mentions_do_not_alert() {
        let c = NegativeCommentConfig::default();
        assert!(negative_comment(
            &enriched("love it, great app", 50, 0, &["nusapay"]),
            &c,
            Vec::new
        )
        .is_none());
        assert!(negative_comment(
            &enriched("this is the worst app ever", 50, 0, &[]),
            &c,
            Vec::new
        )
        .is_none());
    }

    #[test]
    fn the_same_mention_always_gets_the_same_id() {
        let c = NegativeCommentConfig::default();
        let a = negative_comment(
            &enriched("this is the worst app ever", 50, 0, &["nusapay"]),
            &c,
            Vec::new,
        )
        .unwrap();
        let b = negative_comment(
            &enriched("this is the worst app ever", 50, 0, &["nusapay"]),
            &c,
            Vec::new,
        )
        .unwrap();
        assert_eq!(a.id, b.id);
    }
}
