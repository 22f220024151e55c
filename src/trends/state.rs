//! The trend stage's state: its three detectors, the spike contexts, and their snapshot on disk
//! (`<state_dir>/<prefix>-trend-state.json`) with the input offsets it covers.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Detector, DetectorConfig, DetectorSnapshot, Term, TrendEvent};
use crate::alerts::trend::QueryContext;
use crate::kafka::progress::PartitionProgress;

/// The three detector sections of the config: `[trends]`, `[keywords]` and `[spikes]`.
#[derive(Debug, Clone)]
pub struct DetectorSections {
    pub trends: DetectorConfig,
    pub keywords: DetectorConfig,
    pub spikes: DetectorConfig,
}

/// The trend stage's whole state as one snapshot: its detectors, the spike contexts, and the
/// input it covers. Written atomically (a temporary file renamed over the old one) after the
/// stage's outputs are acknowledged and before its offsets are stored, so the committed offsets
/// never pass the snapshot: after a crash the stage restores it and skips what it already holds.
#[derive(Serialize, Deserialize)]
pub struct TrendSnapshot {
    pub trends: DetectorSnapshot,
    pub keywords: DetectorSnapshot,
    pub spikes: DetectorSnapshot,
    /// Recent negative-mention context per tracked query (what explains a spike).
    pub contexts: HashMap<String, QueryContext>,
    /// Per partition of the terms topic, the next offset the state has not seen.
    pub covered: BTreeMap<i32, i64>,
    /// Per partition of the terms topic, what its producers (enrich processes) had vouched for
    /// in the records covered: (producer id, newest event time).
    #[serde(default)]
    pub producers: BTreeMap<i32, Vec<(u64, i64)>>,
    /// Per partition of the terms topic, what was vouched for each raw partition in the
    /// records covered: (raw partition, newest event time).
    #[serde(default)]
    pub sources: BTreeMap<i32, Vec<(i32, i64)>>,
}

/// What a restart begins with.
pub struct Restored {
    pub detectors: Detectors,
    pub contexts: HashMap<String, QueryContext>,
    pub covered: BTreeMap<i32, i64>,
    pub producers: BTreeMap<i32, Vec<(u64, i64)>>,
    pub sources: BTreeMap<i32, Vec<(i32, i64)>>,
}

/// Where the trend stage keeps its snapshot: `<dir>/<prefix>-trend-state.json`.
#[derive(Debug, Clone)]
pub struct StateFiles {
    pub dir: PathBuf,
    pub prefix: String,
}

impl StateFiles {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}-{name}.json", self.prefix))
    }

    /// The state of the last snapshot, or a fresh one. A snapshot that cannot be read or does
    /// not fit the configuration (another `bucket_ms`) is reported and the stage starts cold.
    /// Snapshots of earlier versions (one file per detector, no offsets) are still read.
    pub fn load(&self, sections: &DetectorSections) -> Restored {
        let path = self.path("trend-state");
        let fresh =
            |cfg: &DetectorConfig| Detector::new(cfg.clone()).expect("validated at config load");
        let restored = crate::runner::state::load::<TrendSnapshot>(&path)
            .and_then(|snap| snap.map(|s| Restored::of(sections, s, false)).transpose());
        match restored {
            Ok(Some(r)) => {
                tracing::info!(path = %path.display(), terms = r.detectors.tracked_terms(), covered = ?r.covered, "Restored trend state");
                return r;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "Cannot restore trend state; starting cold")
            }
        }
        let legacy = |name: &str, cfg: &DetectorConfig| {
            std::fs::read(self.path(name))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<DetectorSnapshot>(&bytes).ok())
                .and_then(|snap| Detector::restore(cfg.clone(), snap).ok())
                .unwrap_or_else(|| fresh(cfg))
        };
        Restored {
            detectors: Detectors {
                tags: legacy("trends", &sections.trends),
                words: legacy("keywords", &sections.keywords),
                spikes: legacy("spikes", &sections.spikes),
            },
            contexts: HashMap::new(),
            covered: BTreeMap::new(),
            producers: BTreeMap::new(),
            sources: BTreeMap::new(),
        }
    }

    /// Writes the snapshot (to a temporary file renamed over the old one, so a crash leaves the
    /// old or the new one whole).
    pub fn save(&self, state: Borrowed<'_>) -> std::io::Result<()> {
        crate::runner::state::save_atomically(&self.path("trend-state"), &state)
    }
}

/// A [`TrendSnapshot`] of state the stage keeps on holding.
#[derive(Serialize)]
pub struct Borrowed<'a> {
    trends: DetectorSnapshot,
    keywords: DetectorSnapshot,
    spikes: DetectorSnapshot,
    contexts: &'a HashMap<String, QueryContext>,
    covered: &'a BTreeMap<i32, i64>,
    producers: BTreeMap<i32, Vec<(u64, i64)>>,
    sources: BTreeMap<i32, Vec<(i32, i64)>>,
}

impl<'a> Borrowed<'a> {
    /// The snapshot of `detectors` and `contexts`, covering `covered`, with what `progress`
    /// knows of the producers of the partitions covered.
    pub fn of(
        detectors: &Detectors,
        contexts: &'a HashMap<String, QueryContext>,
        covered: &'a BTreeMap<i32, i64>,
        progress: &PartitionProgress,
    ) -> Borrowed<'a> {
        Borrowed {
            trends: detectors.tags.snapshot(),
            keywords: detectors.words.snapshot(),
            spikes: detectors.spikes.snapshot(),
            contexts,
            covered,
            producers: covered
                .keys()
                .map(|p| (*p, progress.producers_of(*p)))
                .collect(),
            sources: covered
                .keys()
                .map(|p| (*p, progress.sources_of(*p)))
                .collect(),
        }
    }

    /// As JSON bytes (what the state topic holds per terms partition).
    pub fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a snapshot serialises")
    }
}

impl Restored {
    /// Hands what the snapshot knew of the producers and sources of each partition it covers
    /// to `progress`, as heard from now.
    pub fn restore_progress(&self, progress: &mut PartitionProgress) {
        for (p, producers) in &self.producers {
            progress.restore_producers(*p, producers, std::time::Instant::now());
        }
        for (p, sources) in &self.sources {
            progress.restore_sources(*p, sources);
        }
    }

    /// A fresh state (nothing covered).
    pub fn cold(sections: &DetectorSections) -> Restored {
        let fresh =
            |cfg: &DetectorConfig| Detector::new(cfg.clone()).expect("validated at config load");
        Restored {
            detectors: Detectors {
                tags: fresh(&sections.trends),
                words: fresh(&sections.keywords),
                spikes: fresh(&sections.spikes),
            },
            contexts: HashMap::new(),
            covered: BTreeMap::new(),
            producers: BTreeMap::new(),
            sources: BTreeMap::new(),
        }
    }

    /// The state `snap` holds under `sections`; `exact`: it covers exactly the input read before
    /// it ([`Detector::resume`]), else the warm-up rule starts again ([`Detector::restore`]).
    pub fn of(
        sections: &DetectorSections,
        snap: TrendSnapshot,
        exact: bool,
    ) -> Result<Restored, String> {
        let restore = |cfg: &DetectorConfig, s: DetectorSnapshot| {
            let d = if exact {
                Detector::resume(cfg.clone(), s)
            } else {
                Detector::restore(cfg.clone(), s)
            };
            d.map_err(|e| e.to_string())
        };
        Ok(Restored {
            detectors: Detectors {
                tags: restore(&sections.trends, snap.trends)?,
                words: restore(&sections.keywords, snap.keywords)?,
                spikes: restore(&sections.spikes, snap.spikes)?,
            },
            contexts: snap.contexts,
            covered: snap.covered,
            producers: snap.producers,
            sources: snap.sources,
        })
    }
}

/// The three detectors: hashtags and handles (`[trends]`), keywords and bigrams (`[keywords]`),
/// tracked-query volume and negative volume (`[spikes]`).
pub struct Detectors {
    tags: Detector,
    words: Detector,
    spikes: Detector,
}

impl Detectors {
    pub fn pick(&mut self, term: &str) -> &mut Detector {
        match Term::parse(term) {
            Term::QueryVolume(_) | Term::QueryNegative(_) => &mut self.spikes,
            Term::Hashtag(_) | Term::Handle(_) => &mut self.tags,
            Term::Keyword(_) | Term::Bigram(_) => &mut self.words,
        }
    }

    /// Occurrences the three detectors took in: counted in a bucket, found late, or a repeat of
    /// a mention already counted.
    pub fn observed(&self) -> u64 {
        [&self.tags, &self.words, &self.spikes]
            .iter()
            .map(|d| {
                let s = d.stats();
                s.counted + s.late + s.repeats
            })
            .sum()
    }

    /// Whether any detector holds a bucket that is not closed yet.
    pub fn has_open(&self) -> bool {
        [&self.tags, &self.words, &self.spikes]
            .iter()
            .any(|d| d.has_open())
    }

    /// Each detector sees one of `n` shares of the terms ([`Detector::share_of`]).
    pub fn share_of(self, n: usize) -> Detectors {
        Detectors {
            tags: self.tags.share_of(n),
            words: self.words.share_of(n),
            spikes: self.spikes.share_of(n),
        }
    }

    pub fn tracked_terms(&self) -> usize {
        self.tags.tracked_terms() + self.words.tracked_terms() + self.spikes.tracked_terms()
    }

    /// Closes what the watermark (the oldest partition's newest event, minus each detector's
    /// lateness) lets close; returns (term events, query events).
    pub fn advance_until(
        &mut self,
        sections: &DetectorSections,
        oldest: Option<i64>,
    ) -> (Vec<TrendEvent>, Vec<TrendEvent>) {
        let until = |lateness_ms: u64| {
            let ms = oldest
                .unwrap_or(i64::MIN)
                .saturating_sub(lateness_ms as i64);
            DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
        };
        let mut terms = self
            .tags
            .advance_until(until(sections.trends.allowed_lateness_ms))
            .trends;
        terms.extend(
            self.words
                .advance_until(until(sections.keywords.allowed_lateness_ms))
                .trends,
        );
        (
            terms,
            self.spikes
                .advance_until(until(sections.spikes.allowed_lateness_ms))
                .trends,
        )
    }

    /// On a quiet input, moves each detector that has data to the wall clock. (Moving an empty
    /// detector would make a replay of older mentions that starts later entirely late.)
    pub fn idle_flush(&mut self, now: DateTime<Utc>) -> (Vec<TrendEvent>, Vec<TrendEvent>) {
        let flush = |d: &mut Detector| {
            if d.watermark().is_some() {
                d.advance_to(now).trends
            } else {
                Vec::new()
            }
        };
        let mut terms = flush(&mut self.tags);
        terms.extend(flush(&mut self.words));
        (terms, flush(&mut self.spikes))
    }
}
