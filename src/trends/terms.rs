//! Term occurrences, the trend stage's input, and how terms are named.
//!
//! A term is a string key: `#tag` (hashtag), `@handle`, a keyword or a bigram (`top up`) after
//! stop-word removal, `q:<name>` (a tracked query matched) or `qneg:<name>` (a negative mention
//! matched a tracked query). [`Term`] reads one; the `*_term` functions write one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One occurrence of a term in one mention (the `terms` topic's record, keyed by `term`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermOccurrence {
    pub term: String,
    /// The platform's author id; trends count distinct authors, never posts.
    pub author_id: String,
    /// The mention's `created_at`: buckets are in event time.
    pub event_time: DateTime<Utc>,
    /// A hash of the mention's key ([`super::sketch::hash_author`] of it), so that a mention
    /// counts once in its bucket however often it arrives; `None` from older producers.
    pub mention: Option<u64>,
}

/// What a term names, read from its string form (the key on the `terms` topic and the `term`
/// column): the one place that knows the prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term<'a> {
    /// `#tag`: the tag without `#`.
    Hashtag(&'a str),
    /// `@handle`: the handle without `@`.
    Handle(&'a str),
    /// A keyword.
    Keyword(&'a str),
    /// Two keywords joined with a space.
    Bigram(&'a str),
    /// `q:<name>`: a mention matched the tracked query `name`.
    QueryVolume(&'a str),
    /// `qneg:<name>`: a negative mention matched the tracked query `name`.
    QueryNegative(&'a str),
}

impl<'a> Term<'a> {
    pub fn parse(term: &'a str) -> Term<'a> {
        if let Some(q) = term.strip_prefix("qneg:") {
            Term::QueryNegative(q)
        } else if let Some(q) = term.strip_prefix("q:") {
            Term::QueryVolume(q)
        } else if let Some(t) = term.strip_prefix('#') {
            Term::Hashtag(t)
        } else if let Some(h) = term.strip_prefix('@') {
            Term::Handle(h)
        } else if term.contains(' ') {
            Term::Bigram(term)
        } else {
            Term::Keyword(term)
        }
    }

    /// The tracked query's name for a query term.
    pub fn query(self) -> Option<&'a str> {
        match self {
            Term::QueryVolume(q) | Term::QueryNegative(q) => Some(q),
            _ => None,
        }
    }
}

/// Term for a hashtag (given lower case, without `#`).
pub fn hashtag_term(tag: &str) -> String {
    format!("#{tag}")
}

/// Term for a handle (given lower case, without `@`).
pub fn handle_term(handle: &str) -> String {
    format!("@{handle}")
}

/// Term for a mention that matched the tracked query `name`.
pub fn query_term(name: &str) -> String {
    format!("q:{name}")
}

/// Term for a negative mention that matched the tracked query `name`.
pub fn query_negative_term(name: &str) -> String {
    format!("qneg:{name}")
}

/// How a term reads to people: a tracked query's volume term (`q:nusapay`) is `nusapay
/// (mentions)`, its negative volume (`qneg:nusapay`) `nusapay (negative mentions)`; other terms
/// read as they are.
pub fn term_label(term: &str) -> String {
    if let Some(name) = term.strip_prefix("qneg:") {
        format!("{name} (negative mentions)")
    } else if let Some(name) = term.strip_prefix("q:") {
        format!("{name} (mentions)")
    } else {
        term.to_string()
    }
}

/// Bigrams of consecutive content words (stop words already removed upstream), joined with a
/// space: `[top, up, gagal]` → `["top up", "up gagal"]`. A word repeated back to back makes no
/// bigram.
pub fn bigrams(keywords: &[String]) -> Vec<String> {
    keywords
        .windows(2)
        .filter(|w| w[0] != w[1])
        .map(|w| format!("{} {}", w[0], w[1]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_terms_and_makes_bigrams() {
        let kw: Vec<String> = ["top", "up", "up", "gagal"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(bigrams(&kw), vec!["top up", "up gagal"]);
        assert!(bigrams(&kw[..1]).is_empty());
        assert_eq!(term_label(&query_term("nusapay")), "nusapay (mentions)");
        assert_eq!(
            term_label(&query_negative_term("nusapay")),
            "nusapay (negative mentions)"
        );
        assert_eq!(term_label("#nusapaydown"), "#nusapaydown");
        assert_eq!(hashtag_term("nusapaydown"), "#nusapaydown");
        assert_eq!(handle_term("nusapay_id"), "@nusapay_id");
        assert_eq!(query_term("crisis"), "q:crisis");
        assert_eq!(query_negative_term("crisis"), "qneg:crisis");
        assert_eq!(Term::parse("qneg:crisis"), Term::QueryNegative("crisis"));
        assert_eq!(Term::parse("q:crisis").query(), Some("crisis"));
        assert_eq!(Term::parse("#kopi"), Term::Hashtag("kopi"));
        assert_eq!(Term::parse("@nusapay_id"), Term::Handle("nusapay_id"));
        assert_eq!(Term::parse("top up"), Term::Bigram("top up"));
        assert_eq!(Term::parse("gagal"), Term::Keyword("gagal"));
        assert_eq!(Term::parse("gagal").query(), None);
    }

    #[test]
    fn occurrence_round_trips_as_json() {
        let o: TermOccurrence = serde_json::from_str(
            r##"{"term":"#kopi","author_id":"42","event_time":"2026-11-26T05:00:00Z"}"##,
        )
        .unwrap();
        assert_eq!(o.term, "#kopi");
        let back: TermOccurrence =
            serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
        assert_eq!(back, o);
    }
}
