//! The `terms` topic's records: one term's occurrences from one enrich batch (key: the term), so
//! the trend stage can shard by term and popular terms cost one record per batch, not per mention.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alerts::Sample;
use crate::mention::EnrichedMention;

use super::TermOccurrence;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TermRecord {
    pub term: String,
    pub occurrences: Vec<Occurrence>,
    /// The producing enrich instance's low watermark from just before it read the batch these
    /// occurrences come from: the oldest, over the raw partitions it reads, of the newest event
    /// time it had consumed from each. These occurrences and the mentions still to come from it
    /// are (lateness aside) no older, so the trend stage may close buckets up to here even when
    /// one raw partition, or the batch's records on another terms partition, are read behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<DateTime<Utc>>,
    /// Which enrich process wrote the record (an id it picks at start): with several enrich
    /// processes the trend stage keeps each one's watermark per terms partition and waits for
    /// the slowest (`kafka::progress`). Absent in records of earlier versions.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<u64>,
    /// The raw partitions the watermark speaks for: those the producer was reading when it
    /// began the batch. The trend stage keeps the watermark per raw partition, so a partition
    /// that moves to another enrich process holds the terms back until that process has caught
    /// up with it, however long its start takes. Absent in records of earlier versions.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Sources>,
}

/// Partitions of the producer's input, on the wire as ranges (`"0-5,8"`): one enrich process
/// may read many raw partitions, and every term record says which.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sources(pub Vec<i32>);

impl Serialize for Sources {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        sorted.dedup();
        let mut out = String::new();
        let mut i = 0;
        while i < sorted.len() {
            let mut j = i;
            while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
                j += 1;
            }
            if !out.is_empty() {
                out.push(',');
            }
            if j == i {
                out.push_str(&sorted[i].to_string());
            } else {
                out.push_str(&format!("{}-{}", sorted[i], sorted[j]));
            }
            i = j + 1;
        }
        s.serialize_str(&out)
    }
}

impl<'de> Deserialize<'de> for Sources {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Sources, D::Error> {
        let text = String::deserialize(d)?;
        let bad = || serde::de::Error::custom(format!("invalid partition ranges {text:?}"));
        let mut out = Vec::new();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (from, to) = match part.split_once('-') {
                Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
                None => (part.parse::<i32>(), part.parse::<i32>()),
            };
            let (from, to) = (from.map_err(|_| bad())?, to.map_err(|_| bad())?);
            if from < 0 || to < from || to - from > 100_000 {
                return Err(bad());
            }
            out.extend(from..=to);
        }
        Ok(Sources(out))
    }
}

/// One occurrence of a term. On the wire the keys are one letter and the time is milliseconds
/// since the epoch (`{"a":"u1","t":1764133200000,"m":…}`): a batch carries one per term of every
/// mention, the largest of the topics; the long keys and an RFC 3339 time of earlier versions
/// are still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Occurrence {
    #[serde(rename = "a", alias = "author_id")]
    pub author_id: String,
    #[serde(rename = "t", alias = "event_time", with = "millis")]
    pub event_time: DateTime<Utc>,
    /// A hash of the mention's key: the trend stage counts each mention once per bucket, also
    /// when the enrich stage sends a record again after a crash.
    #[serde(
        rename = "m",
        alias = "mention",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mention: Option<u64>,
    /// For `qneg:` terms only: what the negative mention was about, so a spike alert can say why.
    #[serde(
        rename = "c",
        alias = "context",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub context: Option<SpikeContext>,
}

/// A time as milliseconds since the epoch, read from that or from RFC 3339 text.
mod millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.timestamp_millis())
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Millis(i64),
        Text(DateTime<Utc>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        match Either::deserialize(d)? {
            Either::Millis(ms) => DateTime::from_timestamp_millis(ms)
                .ok_or_else(|| serde::de::Error::custom(format!("time {ms} ms out of range"))),
            Either::Text(t) => Ok(t),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpikeContext {
    /// The mention's hashtags (`#x`), keywords and bigrams.
    pub terms: Vec<String>,
    pub sample: Sample,
}

impl TermRecord {
    /// The record as JSON, split into records of fewer occurrences (same term and watermark)
    /// until each is at most `max_bytes`, so a popular term in a large batch never makes a
    /// record the topic refuses. One occurrence that alone is larger stays as it is (the caller
    /// decides); `max_bytes` of real topics (hundreds of KB) holds any single occurrence of a
    /// mention within the text limit.
    pub fn into_json_parts(self, max_bytes: usize) -> Vec<Vec<u8>> {
        let json = serde_json::to_vec(&self).expect("a term record serialises");
        if json.len() <= max_bytes || self.occurrences.len() < 2 {
            return vec![json];
        }
        let mut first = self;
        let second = TermRecord {
            term: first.term.clone(),
            occurrences: first.occurrences.split_off(first.occurrences.len() / 2),
            watermark: first.watermark,
            producer: first.producer,
            sources: first.sources.clone(),
        };
        let mut parts = first.into_json_parts(max_bytes);
        parts.extend(second.into_json_parts(max_bytes));
        parts
    }

    pub fn occurrences(&self) -> impl Iterator<Item = TermOccurrence> + '_ {
        self.occurrences.iter().map(|o| TermOccurrence {
            term: self.term.clone(),
            author_id: o.author_id.clone(),
            event_time: o.event_time,
            mention: o.mention,
        })
    }
}

/// Term occurrences of a batch of mentions, grouped by term.
#[derive(Debug, Default)]
pub struct TermBatch {
    by_term: HashMap<String, Vec<Occurrence>>,
}

impl TermBatch {
    pub fn add(&mut self, e: &EnrichedMention, terms: Vec<String>) {
        let plain: Vec<String> = terms
            .iter()
            .filter(|t| super::Term::parse(t).query().is_none())
            .cloned()
            .collect();
        let mention = Some(super::sketch::hash_author(&e.key));
        for term in terms {
            let context =
                matches!(super::Term::parse(&term), super::Term::QueryNegative(_)).then(|| {
                    SpikeContext {
                        terms: plain.clone(),
                        sample: Sample::from(e),
                    }
                });
            self.by_term.entry(term).or_default().push(Occurrence {
                author_id: e.mention.author.id.clone(),
                event_time: e.mention.created_at,
                mention,
                context,
            });
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_term.is_empty()
    }

    /// The records to produce, each stamped with `watermark`, the `producer`'s id and the raw
    /// partitions the watermark speaks for, emptying the batch.
    pub fn drain<'a>(
        &'a mut self,
        watermark: Option<DateTime<Utc>>,
        producer: u64,
        sources: &'a Sources,
    ) -> impl Iterator<Item = TermRecord> + 'a {
        self.by_term
            .drain()
            .map(move |(term, occurrences)| TermRecord {
                term,
                occurrences,
                watermark,
                producer: Some(producer),
                sources: Some(sources.clone()),
            })
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;

    #[test]
    fn occurrences_are_compact_on_the_wire_and_the_older_form_still_reads() {
        let at: DateTime<Utc> = "2026-11-26T10:00:00.123Z".parse().unwrap();
        let o = Occurrence {
            author_id: "u1".into(),
            event_time: at,
            mention: Some(7),
            context: None,
        };
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(json, r#"{"a":"u1","t":1795687200123,"m":7}"#);
        assert_eq!(serde_json::from_str::<Occurrence>(&json).unwrap(), o);
        let older = r#"{"author_id":"u1","event_time":"2026-11-26T10:00:00.123Z","mention":7}"#;
        assert_eq!(serde_json::from_str::<Occurrence>(older).unwrap(), o);
    }

    #[test]
    fn sources_are_ranges_on_the_wire() {
        let json = serde_json::to_string(&Sources(vec![5, 0, 1, 2, 8, 9, 2])).unwrap();
        assert_eq!(json, r#""0-2,5,8-9""#);
        let back: Sources = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Sources(vec![0, 1, 2, 5, 8, 9]));
        assert_eq!(serde_json::to_string(&Sources(vec![])).unwrap(), r#""""#);
        assert_eq!(
            serde_json::from_str::<Sources>(r#""""#).unwrap(),
            Sources(vec![])
        );
        for bad in [r#""2-1""#, r#""x""#, r#""-1""#, r#""0-""#, "3"] {
            assert!(serde_json::from_str::<Sources>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_record_over_the_limit_splits_into_records_that_fit_and_lose_nothing() {
        let at: DateTime<Utc> = "2026-11-26T10:00:00Z".parse().unwrap();
        let record = TermRecord {
            term: "#nusapaydown".into(),
            occurrences: (0..1000)
                .map(|i| Occurrence {
                    author_id: format!("author-{i}"),
                    event_time: at,
                    mention: Some(i),
                    context: None,
                })
                .collect(),
            watermark: Some(at),
            producer: Some(3),
            sources: Some(Sources(vec![0, 1, 2, 7])),
        };
        let whole = serde_json::to_vec(&record).unwrap().len();
        let parts = record.clone().into_json_parts(whole / 5);
        assert!(parts.len() >= 5, "{}", parts.len());
        let mut authors = Vec::new();
        for p in &parts {
            assert!(p.len() <= whole / 5, "{} > {}", p.len(), whole / 5);
            let r: TermRecord = serde_json::from_slice(p).unwrap();
            assert_eq!(
                (r.term.as_str(), r.watermark, r.producer),
                ("#nusapaydown", Some(at), Some(3))
            );
            assert_eq!(r.sources, Some(Sources(vec![0, 1, 2, 7])));
            authors.extend(r.occurrences.into_iter().map(|o| o.author_id));
        }
        let expected: Vec<String> = record
            .occurrences
            .into_iter()
            .map(|o| o.author_id)
            .collect();
        assert_eq!(authors, expected);
        assert_eq!(
            TermRecord {
                term: "t".into(),
                occurrences: vec![],
                watermark: None,
                producer: None,
                sources: None,
            }
            .into_json_parts(1)
            .len(),
            1
        );
    }
}
