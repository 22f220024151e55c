//! Sentiment corrections by people: recorded per mention key (the latest wins), shown with the
//! mention (`mentions::search`), and exported as training rows for `gema train --corrections`.

use chrono::{DateTime, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::sentiment::Label;
use crate::store::client::{query_err, Store, StoreError};

/// One correction as stored.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct Correction {
    pub key: String,
    /// What the person says the sentiment is.
    pub label: String,
    /// What gema had said.
    pub previous_label: String,
    pub text: String,
    pub lang: String,
    pub corrected_by: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub corrected_at: DateTime<Utc>,
    pub version: u64,
}

#[derive(Debug, Row, Deserialize)]
struct Stored {
    text: String,
    lang: String,
    sentiment: String,
}

/// A correction's label from text: negative, neutral or positive (a person does not mark a
/// post unscored). The CLI and the API both parse it here.
pub fn parse_label(s: &str) -> Result<Label, String> {
    match s.parse::<Label>() {
        Ok(Label::Unscored) | Err(_) => Err(format!("{s:?} is not negative, neutral or positive")),
        Ok(l) => Ok(l),
    }
}

/// Who corrects, as given: 1 to 100 characters, not blank, no control characters; returned
/// trimmed. The CLI and the API both check it here.
pub fn check_by(by: &str) -> Result<&str, String> {
    if by.trim().is_empty() || by.chars().count() > 100 || by.chars().any(char::is_control) {
        return Err("1 to 100 characters, no control characters".into());
    }
    Ok(by.trim())
}

/// Records that `by` says mention `key` is `label`. `None` when no stored mention has that key.
/// `label` is negative, neutral or positive (a person does not mark a post unscored).
pub async fn correct(
    store: &Store,
    key: &str,
    label: Label,
    by: &str,
) -> Result<Option<Correction>, StoreError> {
    assert!(label != Label::Unscored, "a correction names a sentiment");
    let found: Vec<Stored> = store
        .client
        .query("SELECT text, lang, sentiment FROM mentions FINAL WHERE key = ? AND deleted = 0 LIMIT 1")
        .bind(key)
        .fetch_all()
        .await
        .map_err(query_err("find the mention to correct"))?;
    let Some(m) = found.into_iter().next() else {
        return Ok(None);
    };
    let now = Utc::now();
    let row = Correction {
        key: key.to_string(),
        label: label.as_str().to_string(),
        previous_label: m.sentiment,
        text: m.text,
        lang: m.lang,
        corrected_by: by.to_string(),
        corrected_at: now,
        version: now.timestamp_micros().max(0) as u64,
    };
    let mut insert = store
        .client
        .insert::<Correction>("sentiment_corrections")
        .await
        .map_err(query_err("store a correction"))?;
    insert
        .write(&row)
        .await
        .map_err(query_err("store a correction"))?;
    insert
        .end()
        .await
        .map_err(query_err("store a correction"))?;
    Ok(Some(row))
}

/// The latest correction of every mention, oldest first.
pub async fn latest(store: &Store) -> Result<Vec<Correction>, StoreError> {
    store
        .client
        .query(
            // Named after the struct's fields (servers that validate rows match by name) in an
            // outer query: `argMax(label, version) AS label` would be a cyclic alias.
            "SELECT key, l AS label, p AS previous_label, t AS text, g AS lang, \
             b AS corrected_by, a AS corrected_at, v AS version FROM ( \
             SELECT key, argMax(label, version) AS l, argMax(previous_label, version) AS p, \
             argMax(text, version) AS t, argMax(lang, version) AS g, \
             argMax(corrected_by, version) AS b, argMax(corrected_at, version) AS a, \
             max(version) AS v FROM sentiment_corrections GROUP BY key) ORDER BY v, key",
        )
        .fetch_all()
        .await
        .map_err(query_err("read corrections"))
}
