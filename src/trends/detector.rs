//! The trend detector: a pure, deterministic state machine from term occurrences to trend events.
//!
//! * **Buckets.** Occurrences fall into event-time tumbling buckets of `bucket_ms`. The watermark
//!   is `max event time seen − allowed_lateness_ms`; [`Detector::advance`] closes every bucket
//!   that ends at or before it. An occurrence for a closed bucket is *late*: it is counted
//!   ([`Observed::Late`], [`DetectorStats::late`]) and not added to any bucket.
//! * **Active buckets.** Only closed buckets in which the detector saw *any* occurrence are
//!   counted ("active buckets", numbered by an ordinal). A stretch with no data at all (an outage,
//!   a gap between a snapshot and a restart) is not a quiet period for every term, so it neither
//!   decays baselines nor triggers a flood of false trends afterwards. Buckets with no data are
//!   skipped entirely (no summary, no sparkline entry).
//! * **Scoring.** Per term and bucket the detector keeps the occurrence count and the distinct
//!   authors; only distinct authors are scored, so one account posting 500 times counts once.
//!   With `burst_test = "count"` (the default) each term active in a closing bucket gets a
//!   p-value, `P(X ≥ authors)` under a negative binomial fitted to its own baseline *before* the
//!   bucket (see [`super::burst`]); Benjamini–Hochberg at `fdr` over all the terms tested in the
//!   bucket decides which are discoveries, so a bucket with hundreds of steady terms does not
//!   raise one by chance. A discovery trends when it also persists (the term's previous active
//!   bucket had p ≤ [`PERSIST_P`]) or its excess over the mean comes from authors new to the term
//!   (not in its [`RecentAuthors`] filter), and it has ≥ min_support authors and an effect size
//!   (the excess over the predicted mean in predicted standard deviations) ≥ threshold. With
//!   `burst_test = "zscore"` a bucket trends, term by term, when it has ≥ min_support authors and
//!   `(authors − mean) / sqrt(max(var, mean, variance_floor))` ≥ threshold.
//! * **Warm-up.** After a cold start or a [`Detector::restore`], a term may trend only once it
//!   has `warmup_buckets` active buckets of history, or once the detector itself has run
//!   `warmup_buckets` active buckets. On a cold start every term looks new, so without the rule
//!   each busy term would "trend" at once; terms restored from a snapshot keep their history and
//!   can trend right away. The detector-level clause restarts on restore because the snapshot
//!   may be older than the consumer's position (terms first seen in between would look new).
//!   After warm-up a genuinely new term (no history, baseline 0) trends with min_support authors.
//! * **Bounded memory.** At most `max_terms` terms keep state. A new term arriving when full
//!   evicts the least active tenth (by an exponentially decayed occurrence count, the
//!   heavy-hitter rule); terms quiet for `idle_evict_buckets` active buckets are dropped when a
//!   bucket closes. Baselines of quiet terms decay lazily, in closed form, when next touched.
//!   Closing a bucket visits the tracked terms once (≤ `max_terms`, once per bucket of event
//!   time), which also performs the idle eviction and the top-terms summary.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::baseline::{lambda, Baseline};
use super::burst::{bh_cutoff_among, Predictive};
use super::config::{BurstTest, ConfigError, DetectorConfig};
use super::sketch::{hash_author, AuthorSet, RecentAuthors};
use super::terms::TermOccurrence;

/// What [`Detector::observe`] did with an occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Added to its (open) bucket.
    Counted,
    /// Its bucket had already closed: counted in [`DetectorStats::late`], not in any bucket.
    Late {
        bucket_start: DateTime<Utc>,
        watermark: DateTime<Utc>,
    },
    /// Its mention is already in its (open) bucket: a term record sent again (the enrich stage
    /// re-read its input after a crash) or the term twice in one post. Counted in
    /// [`DetectorStats::repeats`], not again in the bucket.
    Repeat,
}

/// A term that burst in one closed bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendEvent {
    pub term: String,
    pub bucket_start: DateTime<Utc>,
    pub bucket_end: DateTime<Utc>,
    /// Occurrences in the bucket.
    pub count: u64,
    /// Distinct authors in the bucket (what is scored).
    pub authors: u32,
    /// Baseline mean of distinct authors per active bucket, before this bucket.
    pub baseline_mean: f64,
    /// Standard deviation of the predictive distribution of the bucket (`burst_test = "count"`),
    /// or the one used for the score after the variance and Poisson floors (`"zscore"`).
    pub baseline_std: f64,
    /// The burst's effect size: `(authors − predicted mean) / sqrt(max(predicted variance,
    /// variance_floor))` of the test that decided (this bucket, or this and the previous one
    /// together) with `"count"`; `(authors − baseline_mean) / baseline_std` with `"zscore"`.
    pub score: f64,
    /// Distinct authors of the last active buckets, oldest first, this bucket last.
    pub sparkline: Vec<u32>,
}

impl TrendEvent {
    /// Deterministic id (`<term>@<bucket start ms>`), so that a replay re-emits the same id and
    /// the alert router can drop repeats.
    pub fn id(&self) -> String {
        format!("{}@{}", self.term, self.bucket_start.timestamp_millis())
    }
}

/// Volume of one term in one closed bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermVolume {
    pub term: String,
    pub count: u64,
    pub authors: u32,
}

/// One closed bucket that held data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketSummary {
    pub bucket_start: DateTime<Utc>,
    pub bucket_end: DateTime<Utc>,
    /// Terms with at least one occurrence in the bucket.
    pub active_terms: u64,
    /// The `top_terms` terms with most distinct authors (then occurrences, then name).
    pub top: Vec<TermVolume>,
}

/// What [`Detector::advance`] closed: trend events (by bucket, then score, highest first) and a
/// summary per closed bucket, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Advanced {
    pub trends: Vec<TrendEvent>,
    pub buckets: Vec<BucketSummary>,
}

/// Counters for metrics; they survive snapshot and restore.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorStats {
    /// Occurrences added to an open bucket.
    pub counted: u64,
    /// Occurrences whose bucket had closed.
    pub late: u64,
    /// Occurrences of a mention already in their bucket.
    #[serde(default)]
    pub repeats: u64,
    /// Buckets closed that held data.
    pub buckets_closed: u64,
    /// Trend events emitted.
    pub trends: u64,
    /// Terms dropped after `idle_evict_buckets` quiet active buckets.
    pub evicted_idle: u64,
    /// Terms dropped to stay within `max_terms`.
    pub evicted_capacity: u64,
    /// Occurrences still in open buckets of terms dropped to stay within `max_terms`.
    pub evicted_open_occurrences: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OpenBucket {
    bucket: i64,
    count: u64,
    authors: AuthorSet,
    /// Hashes of the mentions counted (up to [`EXACT_MENTIONS`]), so that a mention counts once
    /// however often its occurrence arrives.
    #[serde(default)]
    mentions: HashSet<u64>,
}

/// Mentions remembered per open bucket of a term; beyond it (a term viral within one bucket) a
/// repeated occurrence counts again, which keeps the bucket a few hundred KiB at most.
const EXACT_MENTIONS: usize = 16_384;

/// Full state of one tracked term.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TermState {
    base: Baseline,
    /// Ordinal of the term's first closed active bucket.
    first: Option<u64>,
    /// Decayed occurrence count (heavy-hitter weight) as of bucket `weight_bucket`.
    weight: f64,
    weight_bucket: i64,
    spark: VecDeque<u32>,
    /// Open buckets with occurrences, ascending.
    open: Vec<OpenBucket>,
    /// Ordinal of the term's last closed bucket with p ≤ [`PERSIST_P`] (absent in snapshots
    /// before the count test: none).
    #[serde(default)]
    elevated: Option<u64>,
    /// Authors of the term's recent buckets (absent in older snapshots: until the term's next
    /// bucket closes, none of its authors counts as new).
    #[serde(default)]
    recent: Option<Box<RecentAuthors>>,
    /// The term's last closed active bucket: its ordinal, its authors, and the predictive
    /// distribution of two buckets' sum from then (for the two-bucket test).
    #[serde(default)]
    prev: Option<PrevBucket>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct PrevBucket {
    ord: u64,
    authors: u32,
    mean2: f64,
    var2: f64,
}

/// A burst persists when the term's previous active bucket already had a p-value at or below
/// this (a nominal level: the current bucket must still pass the false-discovery control).
pub const PERSIST_P: f64 = 0.01;

impl TermState {
    fn weight_at(&self, bucket: i64, lambda: f64) -> f64 {
        let age = bucket.saturating_sub(self.weight_bucket).max(0);
        self.weight * lambda.powf(age as f64)
    }
}

/// Why a snapshot could not be restored.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RestoreError {
    #[error("trend snapshot has version {found}, this gema reads version {expected}; delete the snapshot to start cold")]
    Version { found: u32, expected: u32 },
    #[error("trend snapshot was taken with bucket_ms = {snapshot}, the configuration has {config}; set bucket_ms back or delete the snapshot to start cold")]
    BucketMs { snapshot: u64, config: u64 },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

const SNAPSHOT_VERSION: u32 = 1;

/// The detector's whole state, for persisting across restarts (serde; terms sorted by name so the
/// same state always serialises the same way). Open buckets are included, so a restore continues
/// exactly where the snapshot was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorSnapshot {
    version: u32,
    bucket_ms: u64,
    max_event_ms: Option<i64>,
    next_close: Option<i64>,
    next_ord: u64,
    stats: DetectorStats,
    terms: Vec<(String, TermState)>,
    /// Ordinal of the first bucket closed since the detector's cold start or last restore (for
    /// the warm-up rule; only [`Detector::resume`] reads it back).
    #[serde(default)]
    warm_from: Option<u64>,
}

/// The trend detector. See the module documentation for the rules.
#[derive(Debug, Clone)]
pub struct Detector {
    cfg: DetectorConfig,
    fdr: f64,
    threshold: f64,
    min_support: u32,
    lambda: f64,
    terms: HashMap<String, TermState>,
    max_event_ms: Option<i64>,
    /// Buckets with a lower index are closed.
    next_close: Option<i64>,
    /// Open buckets that hold at least one occurrence.
    open: BTreeSet<i64>,
    /// Ordinal of the next active bucket to close.
    next_ord: u64,
    /// Ordinal of the first bucket closed since the cold start or restore.
    warm_from: Option<u64>,
    stats: DetectorStats,
    /// How many detectors share the terms, each with its share (the state per terms partition):
    /// a bucket's false-discovery control counts this many times its own tests.
    shares: usize,
}

fn to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Detector {
    /// A cold detector; fails on an invalid setting.
    pub fn new(cfg: DetectorConfig) -> Result<Detector, ConfigError> {
        cfg.validate()?;
        Ok(Detector {
            fdr: cfg.effective_fdr(),
            threshold: cfg.effective_threshold(),
            min_support: cfg.effective_min_support(),
            lambda: lambda(cfg.baseline_half_life_buckets),
            cfg,
            terms: HashMap::new(),
            max_event_ms: None,
            next_close: None,
            open: BTreeSet::new(),
            next_ord: 0,
            warm_from: None,
            stats: DetectorStats::default(),
            shares: 1,
        })
    }

    /// This detector sees one of `n` shares of the terms (by partition), the others are tested
    /// elsewhere: its false-discovery control judges each bucket's tests as one share of a
    /// family `n` times their number ([`super::burst::bh_cutoff_among`]), so a lone burst needs
    /// the evidence it would need among all the terms. Not part of a snapshot.
    pub fn share_of(mut self, n: usize) -> Detector {
        self.shares = n.max(1);
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &DetectorConfig {
        &self.cfg
    }

    fn bucket_ms(&self) -> i64 {
        self.cfg.bucket_ms as i64
    }

    /// Buckets below this index may close once the newest event time is `max_ms`.
    fn close_below(&self, max_ms: i64) -> i64 {
        max_ms
            .saturating_sub(self.cfg.allowed_lateness_ms as i64)
            .div_euclid(self.bucket_ms())
    }

    /// Current watermark: newest event time seen minus `allowed_lateness_ms`.
    pub fn watermark(&self) -> Option<DateTime<Utc>> {
        self.max_event_ms
            .map(|m| to_time(m.saturating_sub(self.cfg.allowed_lateness_ms as i64)))
    }

    /// Adds one occurrence to its bucket, or counts it as late. Never closes a bucket; call
    /// [`Detector::advance`] after each occurrence or batch.
    pub fn observe(&mut self, occ: &TermOccurrence) -> Observed {
        let t = occ.event_time.timestamp_millis();
        let b = t.div_euclid(self.bucket_ms());
        if let (Some(nc), Some(max)) = (self.next_close, self.max_event_ms) {
            if b < nc {
                self.stats.late += 1;
                return Observed::Late {
                    bucket_start: to_time(b * self.bucket_ms()),
                    watermark: to_time(max.saturating_sub(self.cfg.allowed_lateness_ms as i64)),
                };
            }
        }
        if let Some(h) = occ.mention {
            let seen = self.terms.get(&occ.term).is_some_and(|term| {
                term.open
                    .binary_search_by_key(&b, |o| o.bucket)
                    .is_ok_and(|i| term.open[i].mentions.contains(&h))
            });
            if seen {
                self.stats.repeats += 1;
                return Observed::Repeat;
            }
        }
        self.stats.counted += 1;
        let max = self.max_event_ms.map_or(t, |m| m.max(t));
        self.max_event_ms = Some(max);
        // Nothing is late before the first bucket closes: with several partitions, the first
        // record read need not be the oldest.
        if !self.terms.contains_key(&occ.term) {
            if self.terms.len() >= self.cfg.max_terms {
                self.evict_least_active(b);
            }
            self.terms.insert(
                occ.term.clone(),
                TermState {
                    base: Baseline::default(),
                    first: None,
                    weight: 0.0,
                    weight_bucket: b,
                    spark: VecDeque::new(),
                    open: Vec::new(),
                    elevated: None,
                    recent: None,
                    prev: None,
                },
            );
        }
        let lambda = self.lambda;
        let term = self.terms.get_mut(&occ.term).expect("inserted above");
        if b > term.weight_bucket {
            term.weight = term.weight_at(b, lambda);
            term.weight_bucket = b;
        }
        term.weight += 1.0;
        let i = match term.open.binary_search_by_key(&b, |o| o.bucket) {
            Ok(i) => i,
            Err(i) => {
                term.open.insert(
                    i,
                    OpenBucket {
                        bucket: b,
                        count: 0,
                        authors: AuthorSet::default(),
                        mentions: HashSet::new(),
                    },
                );
                i
            }
        };
        let open = &mut term.open[i];
        open.count += 1;
        open.authors.insert(hash_author(&occ.author_id));
        if let Some(h) = occ.mention {
            if open.mentions.len() < EXACT_MENTIONS {
                open.mentions.insert(h);
            }
        }
        self.open.insert(b);
        Observed::Counted
    }

    /// Closes every bucket the watermark has passed and returns what trended.
    pub fn advance(&mut self) -> Advanced {
        let Some(max) = self.max_event_ms else {
            return Advanced::default();
        };
        self.close_before(self.close_below(max))
    }

    /// Closes every bucket that ends at or before `watermark`, a watermark the caller computes
    /// (e.g. the minimum over the input partitions of their newest event time minus the allowed
    /// lateness), and returns what trended. Never moves time backwards.
    pub fn advance_until(&mut self, watermark: DateTime<Utc>) -> Advanced {
        if self.max_event_ms.is_none() {
            return Advanced::default();
        }
        self.close_before(watermark.timestamp_millis().div_euclid(self.bucket_ms()))
    }

    fn close_before(&mut self, target: i64) -> Advanced {
        let mut out = Advanced::default();
        if self.next_close.is_some_and(|nc| target <= nc) {
            return out;
        }
        self.next_close = Some(target);
        let still_open = self.open.split_off(&target);
        let closing = std::mem::replace(&mut self.open, still_open);
        for c in closing {
            self.close_bucket(c, &mut out);
        }
        out
    }

    /// Moves event time forward to `now` (e.g. on an idle stream, from the consumer's clock) and
    /// closes what that lets close. Never moves time backwards.
    pub fn advance_to(&mut self, now: DateTime<Utc>) -> Advanced {
        let now = now.timestamp_millis();
        let max = self.max_event_ms.map_or(now, |m| m.max(now));
        self.max_event_ms = Some(max);
        self.advance()
    }

    fn close_bucket(&mut self, c: i64, out: &mut Advanced) {
        let ord = self.next_ord;
        self.next_ord += 1;
        self.stats.buckets_closed += 1;
        let detector_warm = ord - *self.warm_from.get_or_insert(ord) >= self.cfg.warmup_buckets;
        let start = to_time(c * self.bucket_ms());
        let end = to_time((c + 1) * self.bucket_ms());
        let (lambda, floor) = (self.lambda, self.cfg.variance_floor);
        let (threshold, min_support) = (self.threshold, self.min_support);
        let (warmup, idle_after) = (self.cfg.warmup_buckets, self.cfg.idle_evict_buckets);
        let (spark_len, top_n) = (self.cfg.sparkline_buckets, self.cfg.top_terms);
        let count_test = self.cfg.burst_test == BurstTest::Count;
        let generation_buckets = self.cfg.baseline_half_life_buckets.ceil().max(1.0) as u64;
        // (event, p-value) of the terms that pass every rule but the false-discovery control.
        let mut candidates: Vec<(TrendEvent, f64)> = Vec::new();
        let mut p_values: Vec<f64> = Vec::new();
        let mut top: BinaryHeap<Reverse<(u32, u64, Reverse<String>)>> = BinaryHeap::new();
        let mut active = 0u64;
        let mut evicted_idle = 0u64;
        self.terms.retain(|key, term| {
            if term.open.first().is_none_or(|o| o.bucket > c) {
                let idle =
                    term.open.is_empty() && term.base.last.is_none_or(|l| ord - l > idle_after);
                evicted_idle += u64::from(idle);
                return !idle;
            }
            let ob = term.open.remove(0);
            let x = ob.authors.len();
            active += 1;
            let quiet = term.base.last.map_or(0, |l| ord - l - 1) as usize;
            for _ in 0..quiet.min(spark_len) {
                term.spark.push_back(0);
            }
            term.spark.push_back(x);
            while term.spark.len() > spark_len {
                term.spark.pop_front();
            }
            term.base.catch_up(ord, lambda);
            let mut s = term.base.score(x, floor);
            let first = *term.first.get_or_insert(ord);
            let warm = detector_warm || ord - first >= warmup;
            let own = Predictive::of(&term.base);
            let p_own = if count_test { own.upper_tail(x) } else { 0.0 };
            // The effect size of the test that decided, against its predictive distribution.
            let effect =
                |x: u32, pred: Predictive| (f64::from(x) - pred.mean) / pred.var.max(floor).sqrt();
            let mut p = p_own;
            if count_test {
                s.std = own.var.sqrt();
                s.score = effect(x, own);
                // A burst straddling the bucket boundary: the previous bucket and this one
                // together, against their sum's predictive distribution as of the previous one.
                if let Some(b) = term.prev.filter(|b| b.ord + 1 == ord) {
                    let two = Predictive {
                        mean: b.mean2,
                        var: b.var2,
                    };
                    let p_two = two.upper_tail(b.authors + x);
                    if p_two < p_own {
                        s.score = effect(b.authors + x, two);
                    }
                    p = (2.0 * p_own.min(p_two)).min(1.0);
                }
            }
            p_values.push(p);
            let persists = term.elevated.is_some_and(|e| e + 1 == ord);
            let generation = ord / generation_buckets;
            // Authors of this bucket the term has not had in its recent buckets (a term with no
            // history: all of them; one restored without the filter: none).
            let new_authors = match (&mut term.recent, term.base.last) {
                (None, None) => x,
                (None, Some(_)) => 0,
                (Some(r), _) => {
                    r.roll(generation);
                    ob.authors
                        .exact()
                        .map_or(0, |a| a.iter().filter(|h| !r.seen(**h)).count() as u32)
                }
            };
            let excess = (f64::from(x) - s.mean).ceil().max(0.0);
            // At least half the excess is new authors (the filter mistakes a few for seen ones).
            let fresh = 2.0 * f64::from(new_authors) >= excess;
            if warm
                && x >= min_support
                && s.score >= threshold
                && (!count_test || persists || fresh)
            {
                candidates.push((
                    TrendEvent {
                        term: key.clone(),
                        bucket_start: start,
                        bucket_end: end,
                        count: ob.count,
                        authors: x,
                        baseline_mean: s.mean,
                        baseline_std: s.std,
                        score: s.score,
                        sparkline: term.spark.iter().copied().collect(),
                    },
                    p,
                ));
            }
            if count_test {
                if p_own <= PERSIST_P {
                    term.elevated = Some(ord);
                }
                let two = Predictive::window(&term.base, 2);
                term.prev = Some(PrevBucket {
                    ord,
                    authors: x,
                    mean2: two.mean,
                    var2: two.var,
                });
                let r = term
                    .recent
                    .get_or_insert_with(|| Box::new(RecentAuthors::new(generation)));
                r.roll(generation);
                if let Some(a) = ob.authors.exact() {
                    for h in a {
                        r.insert(*h);
                    }
                }
            }
            term.base.push(ord, x, lambda);
            if top_n > 0 {
                let entry = (x, ob.count, Reverse(key.clone()));
                if top.len() < top_n {
                    top.push(Reverse(entry));
                } else if top.peek().is_some_and(|Reverse(min)| entry > *min) {
                    top.pop();
                    top.push(Reverse(entry));
                }
            }
            true
        });
        self.stats.evicted_idle += evicted_idle;
        let mut trends: Vec<TrendEvent> = if count_test {
            let fdr = self.fdr;
            let family = p_values.len() * self.shares;
            match bh_cutoff_among(&mut p_values, fdr, family) {
                Some(cut) => candidates
                    .into_iter()
                    .filter(|(_, p)| *p <= cut)
                    .map(|(e, _)| e)
                    .collect(),
                None => Vec::new(),
            }
        } else {
            candidates.into_iter().map(|(e, _)| e).collect()
        };
        trends.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.term.cmp(&b.term))
        });
        self.stats.trends += trends.len() as u64;
        out.trends.extend(trends);
        let mut top: Vec<_> = top.into_iter().map(|Reverse(e)| e).collect();
        top.sort_by(|a, b| b.cmp(a));
        out.buckets.push(BucketSummary {
            bucket_start: start,
            bucket_end: end,
            active_terms: active,
            top: top
                .into_iter()
                .map(|(authors, count, Reverse(term))| TermVolume {
                    term,
                    count,
                    authors,
                })
                .collect(),
        });
    }

    /// Drops the least active tenth of the terms (at least one), by decayed occurrence count
    /// as of `bucket`, ties by name.
    fn evict_least_active(&mut self, bucket: i64) {
        let keep = self.cfg.max_terms - (self.cfg.max_terms / 10).max(1);
        let n = self.terms.len().saturating_sub(keep);
        if n == 0 {
            return;
        }
        let mut ws: Vec<(f64, &String)> = self
            .terms
            .iter()
            .map(|(k, t)| (t.weight_at(bucket, self.lambda), k))
            .collect();
        let order = |a: &(f64, &String), b: &(f64, &String)| -> Ordering {
            a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1))
        };
        if n < ws.len() {
            ws.select_nth_unstable_by(n - 1, order);
        }
        let victims: Vec<String> = ws[..n].iter().map(|(_, k)| (*k).clone()).collect();
        for v in victims {
            if let Some(t) = self.terms.remove(&v) {
                self.stats.evicted_capacity += 1;
                self.stats.evicted_open_occurrences += t.open.iter().map(|o| o.count).sum::<u64>();
            }
        }
        // Open-bucket indices are kept even if no term uses them now: closing an empty bucket
        // is cheap and the set holds at most (lateness / bucket + 1) entries.
    }

    /// Number of terms with full state (≤ `max_terms`).
    pub fn tracked_terms(&self) -> usize {
        self.terms.len()
    }

    /// Rough heap bytes held by the detector (walks the terms: for metrics, not per occurrence).
    pub fn approx_memory_bytes(&self) -> usize {
        let entry = std::mem::size_of::<String>() + std::mem::size_of::<TermState>() + 8;
        let per_term: usize = self
            .terms
            .iter()
            .map(|(k, t)| {
                k.capacity()
                    + t.spark.capacity() * 4
                    + t.recent
                        .as_ref()
                        .map_or(0, |_| std::mem::size_of::<RecentAuthors>())
                    + t.open.capacity() * std::mem::size_of::<OpenBucket>()
                    + t.open
                        .iter()
                        .map(|o| o.authors.heap_bytes() + o.mentions.capacity() * 9)
                        .sum::<usize>()
            })
            .sum();
        std::mem::size_of::<Self>() + self.terms.capacity() * entry + per_term
    }

    /// Whether a bucket holds occurrences and is not closed yet.
    pub fn has_open(&self) -> bool {
        !self.open.is_empty()
    }

    /// Counters since the first start (carried through snapshots).
    pub fn stats(&self) -> DetectorStats {
        self.stats
    }

    /// The whole state, open buckets included.
    pub fn snapshot(&self) -> DetectorSnapshot {
        let mut terms: Vec<(String, TermState)> = self
            .terms
            .iter()
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        terms.sort_by(|a, b| a.0.cmp(&b.0));
        DetectorSnapshot {
            version: SNAPSHOT_VERSION,
            bucket_ms: self.cfg.bucket_ms,
            max_event_ms: self.max_event_ms,
            next_close: self.next_close,
            next_ord: self.next_ord,
            stats: self.stats,
            terms,
            warm_from: self.warm_from,
        }
    }

    /// A detector continuing from `snap` under `cfg` (which may change anything but
    /// `bucket_ms`). The warm-up rule starts again: restored terms with enough history can trend
    /// at once, new terms only after `warmup_buckets` active buckets.
    pub fn restore(cfg: DetectorConfig, snap: DetectorSnapshot) -> Result<Detector, RestoreError> {
        Detector::restore_as(cfg, snap, false)
    }

    /// A detector continuing from `snap` exactly as if it had never stopped, warm-up included:
    /// for a snapshot that covers exactly the input read before it and none after (the state
    /// per partition handed from one process to another), where no term can have been missed.
    pub fn resume(cfg: DetectorConfig, snap: DetectorSnapshot) -> Result<Detector, RestoreError> {
        Detector::restore_as(cfg, snap, true)
    }

    fn restore_as(
        cfg: DetectorConfig,
        snap: DetectorSnapshot,
        exact: bool,
    ) -> Result<Detector, RestoreError> {
        if snap.version != SNAPSHOT_VERSION {
            return Err(RestoreError::Version {
                found: snap.version,
                expected: SNAPSHOT_VERSION,
            });
        }
        if snap.bucket_ms != cfg.bucket_ms {
            return Err(RestoreError::BucketMs {
                snapshot: snap.bucket_ms,
                config: cfg.bucket_ms,
            });
        }
        let mut d = Detector::new(cfg)?;
        d.max_event_ms = snap.max_event_ms;
        d.next_close = snap.next_close;
        d.next_ord = snap.next_ord;
        d.stats = snap.stats;
        if exact {
            d.warm_from = snap.warm_from;
        }
        d.terms.reserve(snap.terms.len().min(d.cfg.max_terms));
        for (k, t) in snap.terms {
            d.open.extend(t.open.iter().map(|o| o.bucket));
            d.terms.insert(k, t);
        }
        if d.terms.len() > d.cfg.max_terms {
            let b = d.max_event_ms.unwrap_or(0).div_euclid(d.bucket_ms());
            d.evict_least_active(b);
        }
        Ok(d)
    }
}
