//! The trend stage's state: its three detectors and their snapshots on disk
//! (`<state_dir>/<prefix>-{trends,keywords,spikes}.json`).

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::{Detector, DetectorConfig, DetectorSnapshot, Term, TrendEvent};

/// The three detector sections of the config: `[trends]`, `[keywords]` and `[spikes]`.
#[derive(Debug, Clone)]
pub struct DetectorSections {
    pub trends: DetectorConfig,
    pub keywords: DetectorConfig,
    pub spikes: DetectorConfig,
}

/// Where the detectors' snapshots are kept: `<dir>/<prefix>-<name>.json`.
#[derive(Debug, Clone)]
pub struct StateFiles {
    pub dir: PathBuf,
    pub prefix: String,
}

impl StateFiles {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}-{name}.json", self.prefix))
    }

    /// The detector `name` restored from its snapshot, or a new one.
    fn load(&self, name: &str, cfg: &DetectorConfig) -> Detector {
        let path = self.path(name);
        let restored = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<DetectorSnapshot>(&bytes).ok())
            .and_then(|snap| Detector::restore(cfg.clone(), snap).ok());
        match restored {
            Some(d) => {
                tracing::info!(path = %path.display(), terms = d.tracked_terms(), "Restored detector state");
                d
            }
            None => Detector::new(cfg.clone()).expect("validated at config load"),
        }
    }

    /// Writes the snapshot of `d` (to a temporary file renamed over the old one).
    fn save(&self, name: &str, d: &Detector) {
        let path = self.path(name);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let tmp = path.with_extension("json.tmp");
            std::fs::write(
                &tmp,
                serde_json::to_vec(&d.snapshot()).expect("snapshot serialises"),
            )?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            tracing::warn!(path = %path.display(), error = %e, "Cannot save detector state");
        }
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
    /// The detectors of `sections`, each restored from its snapshot in `files` when there is
    /// one.
    pub fn load(sections: &DetectorSections, files: &StateFiles) -> Detectors {
        Detectors {
            tags: files.load("trends", &sections.trends),
            words: files.load("keywords", &sections.keywords),
            spikes: files.load("spikes", &sections.spikes),
        }
    }

    /// Snapshots every detector to `files`.
    pub fn save(&self, files: &StateFiles) {
        files.save("trends", &self.tags);
        files.save("keywords", &self.words);
        files.save("spikes", &self.spikes);
    }

    pub fn pick(&mut self, term: &str) -> &mut Detector {
        match Term::parse(term) {
            Term::QueryVolume(_) | Term::QueryNegative(_) => &mut self.spikes,
            Term::Hashtag(_) | Term::Handle(_) => &mut self.tags,
            Term::Keyword(_) | Term::Bigram(_) => &mut self.words,
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
