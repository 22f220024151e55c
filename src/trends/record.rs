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
    /// The producing enrich instance's low watermark: the oldest, over the raw partitions it
    /// reads, of the newest event time it has consumed from each. Mentions still to come from
    /// it are (lateness aside) no older, so the trend stage may close buckets up to here even
    /// when one raw partition is read behind the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Occurrence {
    pub author_id: String,
    pub event_time: DateTime<Utc>,
    /// For `qneg:` terms only: what the negative mention was about, so a spike alert can say why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<SpikeContext>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpikeContext {
    /// The mention's hashtags (`#x`), keywords and bigrams.
    pub terms: Vec<String>,
    pub sample: Sample,
}

impl TermRecord {
    pub fn occurrences(&self) -> impl Iterator<Item = TermOccurrence> + '_ {
        self.occurrences.iter().map(|o| TermOccurrence {
            term: self.term.clone(),
            author_id: o.author_id.clone(),
            event_time: o.event_time,
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
                context,
            });
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_term.is_empty()
    }

    /// The records to produce, each stamped with `watermark`, emptying the batch.
    pub fn drain(
        &mut self,
        watermark: Option<DateTime<Utc>>,
    ) -> impl Iterator<Item = TermRecord> + '_ {
        self.by_term
            .drain()
            .map(move |(term, occurrences)| TermRecord {
                term,
                occurrences,
                watermark,
            })
    }
}
