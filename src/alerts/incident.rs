//! Incidents: the alerts about one tracked query (its negative spike, the terms trending with it,
//! the negative comments behind them) folded into one story with a lifecycle, a severity that
//! follows its size and speed, whether it is rising or fading, what drives it, its posts with the
//! most reach, and a summary in words built from those facts.
//!
//! Pure, like the router that owns it: every time is event time (the alerts' own, or the router's
//! clock), passed in.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::alert::{alert_id, Alert, AlertKind, Sample, Severity};
use crate::enrich::stopwords::is_stop_word;
use crate::tracked::fold;

/// `[alerts.incidents]`: when alerts become an incident and when it is over.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentConfig {
    /// Group alerts into incidents at all.
    pub enabled: bool,
    /// The fewest negative comments about one query within `window_s` that open an incident
    /// without a spike (see [`Incidents::observe`]).
    pub open_after_comments: u32,
    /// Comments this many seconds of event time apart count towards opening the same incident.
    pub window_s: u64,
    /// An incident no spike or trend joined for this many seconds of event time is resolved
    /// once its comments are back near their usual count.
    pub resolve_after_s: u64,
    /// Posts kept as an incident's samples (most reach first).
    pub max_samples: usize,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            enabled: true,
            open_after_comments: 5,
            window_s: 900,
            resolve_after_s: 1800,
            max_samples: 5,
        }
    }
}

/// Where an incident is in its lifecycle. The router sets `open` and `resolved`; people
/// acknowledge, resolve and reopen through the API (kept apart, in `incident_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    Open,
    Acknowledged,
    Resolved,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Open => "open",
            IncidentStatus::Acknowledged => "acknowledged",
            IncidentStatus::Resolved => "resolved",
        }
    }
}

/// Whether an incident's negative posts come faster or slower than a few minutes before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Movement {
    Rising,
    Steady,
    Fading,
}

impl Movement {
    pub fn as_str(self) -> &'static str {
        match self {
            Movement::Rising => "rising",
            Movement::Steady => "steady",
            Movement::Fading => "fading",
        }
    }
}

/// One version of an incident, as the router delivers it (`<prefix>.incidents`, the
/// `incidents` table, the feed, webhooks). A later version replaces an earlier one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Deterministic: from the query and the first alert in it.
    pub id: String,
    /// The tracked query (brand) it is about.
    pub query: String,
    pub status: IncidentStatus,
    pub severity: Severity,
    /// The severity of the previous version (`None` for the first): webhooks announce an
    /// incident once, when it first reaches their `min_severity`.
    pub previous_severity: Option<Severity>,
    pub movement: Movement,
    /// In words, from the facts below.
    pub summary: String,
    /// Negative posts in it: its negative comments, or the authors of its spikes if more.
    pub negative_posts: u32,
    /// Most negative comments in one minute of event time.
    pub peak_per_minute: u32,
    /// Alerts folded into it (spikes, trends, comments).
    pub alert_count: u32,
    /// Words and tags over-represented in it, strongest first.
    pub driving_terms: Vec<String>,
    /// Terms whose emerging-trend alerts joined it.
    pub trending_terms: Vec<String>,
    /// Its posts with the most reach (followers), most first.
    pub samples: Vec<Sample>,
    /// Ids of the delivered alerts it holds (the newest 500).
    pub alert_ids: Vec<String>,
    /// Event time of its first and newest alert.
    pub opened_at: DateTime<Utc>,
    pub last_event_at: DateTime<Utc>,
    /// Event time at which it was resolved for lack of new alerts.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Wall-clock time of this version.
    pub detected_at: DateTime<Utc>,
    /// 1 for the first version, one more for each later one.
    pub version: u64,
}

/// Alert ids kept per incident.
const MAX_ALERT_IDS: usize = 500;
/// Minutes of per-minute counts kept per incident (for the peak and the movement).
const MINUTES_KEPT: usize = 180;
/// The movement compares the last this many minutes with as many before them.
const MOVEMENT_MINUTES: i64 = 5;
/// Terms named as driving an incident.
const DRIVING_TERMS: usize = 3;

/// A negative comment seen before its query has an incident.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    alert: Alert,
    /// The id the alert was stored under (its own, its thread's), if it was stored.
    stored: Option<String>,
}

/// An open incident and what its facts are computed from.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Open {
    incident: Incident,
    /// Negative comments per minute of event time (Unix seconds of the minute).
    minutes: BTreeMap<i64, u32>,
    comments: u32,
    spike_authors: u32,
    /// The strongest terms of its spikes, in order.
    spike_terms: Vec<String>,
    /// How many of its comments use each word or tag.
    words: BTreeMap<String, u32>,
    /// Highest severity among its alerts.
    alert_severity: Severity,
    has_spike: bool,
    /// Changed since it last went out.
    dirty: bool,
    /// The severity of the version that last went out.
    emitted_severity: Option<Severity>,
    /// When a spike or a trending term last joined it (else it opened): comments alone do not
    /// keep an incident open.
    #[serde(default)]
    last_signal: Option<DateTime<Utc>>,
    /// The query's usual negative comments per window before it opened (`None`: too little
    /// history): it resolves once the comments are back near this.
    #[serde(default)]
    baseline: Option<f64>,
}

/// Every query's open incident and the comments that may open one: what the router keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Incidents {
    open: BTreeMap<String, Open>,
    pending: BTreeMap<String, Vec<Pending>>,
    /// Incidents resolved but not yet delivered.
    #[serde(default)]
    resolved: Vec<Incident>,
    /// Per query, the event times (Unix seconds) of its negative comments over the last
    /// [`HISTORY_WINDOWS`] windows: its usual rate, against which a run of comments is news.
    #[serde(default)]
    history: BTreeMap<String, std::collections::VecDeque<i64>>,
    /// The earliest event time (Unix seconds) of any alert seen: since when the router has been
    /// listening. A query with no comment in its history for two windows while the router has
    /// listened longer is a quiet one (its usual count is 0), not a fresh start.
    #[serde(default)]
    listening_since: Option<i64>,
}

/// Windows of comment history kept per query (the baseline is the three before the current).
const HISTORY_WINDOWS: i64 = 4;
/// Most comment times kept per query.
const HISTORY_MAX: usize = 20_000;
/// A run of comments opens an incident at this many times the query's usual count per window
/// (and at least `open_after_comments`).
const OPEN_RATIO: f64 = 2.5;
/// While a query has no usual count yet, a burst of comments opens an incident at this many
/// times `open_after_comments` within a minute.
const COLD_FACTOR: f64 = 3.0;
/// An incident whose signals went quiet resolves once its comments per window are at most this
/// many times the usual count before it opened.
const FADED_RATIO: f64 = 1.5;

/// The words and tags of a post that can drive an incident: hashtags, handles and content words
/// of four letters or more, folded, without the query's own name and stop words.
fn words_of(text: &str, query: &str) -> BTreeSet<String> {
    let query = fold(query);
    let mut out = BTreeSet::new();
    for raw in text.split(|c: char| !(c.is_alphanumeric() || c == '#' || c == '@' || c == '_')) {
        // A tag is a `#` or `@` and a word; a `#` or `@` inside a word splits nothing.
        let w = fold(raw);
        let tagged = w.starts_with('#') || w.starts_with('@');
        let bare = w.trim_start_matches(['#', '@']);
        if bare.is_empty()
            || bare.contains(['#', '@'])
            || (!tagged && bare == query)
            || matches!(bare, "http" | "https" | "www")
            || is_stop_word(bare)
        {
            continue;
        }
        if tagged || (bare.chars().count() >= 4 && !bare.chars().all(|c| c.is_ascii_digit())) {
            out.insert(w);
        }
    }
    out
}

/// Whether a trending `term` belongs with `query`'s incident: it names the query
/// (`#nusapaydown`, `@nusapay`) or at least two of the incident's comments use it.
fn belongs(term: &str, query: &str, words: &BTreeMap<String, u32>) -> bool {
    let (term, query) = (fold(term), fold(query));
    term.trim_start_matches(['#', '@']).contains(&query)
        || words.get(&term).is_some_and(|n| *n >= 2)
}

fn minute_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(60) * 60
}

fn severity_of(negative_posts: u32, peak: u32, has_spike: bool) -> Severity {
    if negative_posts >= 100 || peak >= 20 {
        Severity::Critical
    } else if negative_posts >= 25 || peak >= 5 {
        Severity::High
    } else if negative_posts >= 5 || has_spike {
        Severity::Medium
    } else {
        Severity::Low
    }
}

impl Open {
    fn new(first: &Alert, query: &str) -> Open {
        Open {
            incident: Incident {
                id: alert_id(AlertKind::Digest, &["incident", query, &first.id]),
                query: query.to_string(),
                status: IncidentStatus::Open,
                severity: Severity::Low,
                previous_severity: None,
                movement: Movement::Rising,
                summary: String::new(),
                negative_posts: 0,
                peak_per_minute: 0,
                alert_count: 0,
                driving_terms: Vec::new(),
                trending_terms: Vec::new(),
                samples: Vec::new(),
                alert_ids: Vec::new(),
                opened_at: first.event_time,
                last_event_at: first.event_time,
                resolved_at: None,
                detected_at: first.detected_at,
                version: 0,
            },
            minutes: BTreeMap::new(),
            comments: 0,
            spike_authors: 0,
            spike_terms: Vec::new(),
            words: BTreeMap::new(),
            alert_severity: Severity::Low,
            has_spike: false,
            dirty: true,
            emitted_severity: None,
            last_signal: None,
            baseline: None,
        }
    }

    /// Folds `alert` in (stored as `stored`, if it was), at clock `clock`.
    fn add(
        &mut self,
        alert: &Alert,
        stored: Option<&str>,
        clock: DateTime<Utc>,
        max_samples: usize,
    ) {
        let inc = &mut self.incident;
        inc.alert_count += 1;
        inc.opened_at = inc.opened_at.min(alert.event_time);
        inc.last_event_at = inc.last_event_at.max(alert.event_time);
        if let Some(id) = stored {
            if !inc.alert_ids.iter().any(|i| i == id) {
                inc.alert_ids.push(id.to_string());
                if inc.alert_ids.len() > MAX_ALERT_IDS {
                    inc.alert_ids.remove(0);
                }
            }
        }
        if alert.kind != AlertKind::NegativeComment {
            self.last_signal = Some(
                self.last_signal
                    .map_or(alert.event_time, |t| t.max(alert.event_time)),
            );
        }
        match alert.kind {
            AlertKind::NegativeComment => {
                self.comments += alert.count.max(1);
                *self.minutes.entry(minute_of(alert.event_time)).or_default() += alert.count.max(1);
                while self.minutes.len() > MINUTES_KEPT {
                    self.minutes.pop_first();
                }
                for s in &alert.samples {
                    for w in words_of(&s.text, &inc.query) {
                        *self.words.entry(w).or_default() += 1;
                    }
                }
            }
            AlertKind::NegativeSpike => {
                self.has_spike = true;
                self.spike_authors += alert.count;
                for t in super::trend::driving_terms(&alert.why) {
                    if !self.spike_terms.contains(&t) {
                        self.spike_terms.push(t);
                    }
                }
            }
            AlertKind::EmergingTrend => {
                if let Some(t) = &alert.term {
                    if !inc.trending_terms.contains(t) {
                        inc.trending_terms.push(t.clone());
                    }
                }
            }
            AlertKind::Digest => {}
        }
        if alert.kind != AlertKind::EmergingTrend {
            self.alert_severity = self.alert_severity.max(alert.severity);
        }
        for s in &alert.samples {
            if !inc.samples.iter().any(|k| k.key == s.key) {
                inc.samples.push(s.clone());
            }
        }
        inc.samples.sort_by(|a, b| {
            b.author_followers
                .cmp(&a.author_followers)
                .then(a.created_at.cmp(&b.created_at))
                .then(a.key.cmp(&b.key))
        });
        inc.samples.truncate(max_samples);
        self.refresh(clock);
        self.dirty = true;
    }

    /// Recomputes the facts that follow from the counts, at clock `clock`; whether they changed.
    fn refresh(&mut self, clock: DateTime<Utc>) -> bool {
        let before = (
            self.incident.severity,
            self.incident.movement,
            self.incident.summary.clone(),
        );
        let inc = &mut self.incident;
        inc.negative_posts = self.comments.max(self.spike_authors);
        inc.peak_per_minute = self.minutes.values().copied().max().unwrap_or(0);
        // Its size and speed decide; its worst alert lifts it at most to high (one post by a
        // big account is something to answer, not yet a crisis).
        inc.severity = severity_of(inc.negative_posts, inc.peak_per_minute, self.has_spike)
            .max(self.alert_severity.min(Severity::High));
        let now = minute_of(clock.max(inc.last_event_at));
        let span =
            |from: i64, to: i64| -> u32 { self.minutes.range(from..to).map(|(_, n)| n).sum() };
        let step = MOVEMENT_MINUTES * 60;
        let (recent, earlier) = (
            span(now - step + 60, now + 60),
            span(now - 2 * step + 60, now - step + 60),
        );
        inc.movement = if recent == 0 && self.comments > 0 || recent * 2 < earlier {
            Movement::Fading
        } else if recent > earlier {
            Movement::Rising
        } else {
            Movement::Steady
        };
        let mut driving: Vec<String> = self.spike_terms.clone();
        let mut common: Vec<(&String, &u32)> =
            self.words.iter().filter(|(_, n)| **n >= 2).collect();
        common.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (w, _) in common {
            if !driving.contains(w) {
                driving.push(w.clone());
            }
        }
        driving.truncate(DRIVING_TERMS);
        inc.driving_terms = driving;
        inc.summary = summary(inc, self.has_spike);
        before != (inc.severity, inc.movement, inc.summary.clone())
    }

    /// The version to deliver now (wall clock `now`).
    fn emit(&mut self, now: DateTime<Utc>) -> Incident {
        self.dirty = false;
        self.incident.version += 1;
        self.incident.detected_at = now;
        self.incident.previous_severity = self.emitted_severity;
        self.emitted_severity = Some(self.incident.severity);
        self.incident.clone()
    }
}

/// "nusapay: negative spike — 317 negative posts in 12 min (peak 41 a minute), driven by
/// #nusapaydown, saldo, hilang; trending: #nusapaydown, @nusapay; rising".
fn summary(inc: &Incident, spike: bool) -> String {
    let minutes = ((inc.last_event_at - inc.opened_at).num_seconds() / 60 + 1).max(1);
    let posts = match inc.negative_posts {
        1 => "1 negative post".to_string(),
        n => format!("{n} negative posts"),
    };
    let mut s = format!(
        "{}: {}{posts} in {minutes} min",
        inc.query,
        if spike { "negative spike — " } else { "" }
    );
    if inc.peak_per_minute > 1 {
        s.push_str(&format!(" (peak {} a minute)", inc.peak_per_minute));
    }
    if !inc.driving_terms.is_empty() {
        s.push_str(&format!(", driven by {}", inc.driving_terms.join(", ")));
    } else if let Some(top) = inc.samples.first() {
        s.push_str(&format!(
            ", from @{} ({} followers)",
            top.author_handle, top.author_followers
        ));
    }
    if !inc.trending_terms.is_empty() {
        s.push_str(&format!("; trending: {}", inc.trending_terms.join(", ")));
    }
    match inc.status {
        IncidentStatus::Resolved => s.push_str("; resolved"),
        _ => {
            s.push_str("; ");
            s.push_str(inc.movement.as_str());
        }
    }
    s
}

/// What [`Incidents::observe`] made of an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// Not part of any incident.
    None,
    /// A comment about this query that may yet open an incident.
    Pending(String),
    /// Part of the incident with this id (open, or opened by this alert).
    Joined(String),
}

impl Incidents {
    /// The query an alert is about for grouping: its own, or for a trending term the query
    /// whose open incident it belongs with.
    fn query_of(&self, alert: &Alert) -> Option<String> {
        if let Some(q) = &alert.query {
            return Some(q.clone());
        }
        let term = alert.term.as_deref()?;
        self.open
            .iter()
            .find(|(q, o)| belongs(term, q, &o.words))
            .map(|(q, _)| q.clone())
    }

    /// Folds `alert` (stored as `stored`) into its query's incident, opening one when it is a
    /// negative spike, or a comment that makes the window's count at least
    /// `open_after_comments` and [`OPEN_RATIO`] times the query's usual count (with no usual
    /// count yet: [`COLD_FACTOR`] × `open_after_comments` within a minute, and [`OPEN_RATIO`]
    /// times the rate per minute seen so far); `clock` is the router's event time.
    pub fn observe(
        &mut self,
        config: &IncidentConfig,
        alert: &Alert,
        stored: Option<&str>,
        clock: DateTime<Utc>,
    ) -> Membership {
        if !config.enabled || alert.kind == AlertKind::Digest {
            return Membership::None;
        }
        let et = alert.event_time.timestamp();
        self.listening_since = Some(self.listening_since.map_or(et, |s| s.min(et)));
        let Some(query) = self.query_of(alert) else {
            return Membership::None;
        };
        let window = Duration::seconds(config.window_s as i64);
        if alert.kind == AlertKind::NegativeComment {
            let h = self.history.entry(query.clone()).or_default();
            let t = alert.event_time.timestamp();
            let keep_from = t - HISTORY_WINDOWS * window.num_seconds();
            // Kept in event-time order; a late comment goes in its place.
            let at = h.partition_point(|x| *x <= t);
            h.insert(at, t);
            while h.front().is_some_and(|x| *x < keep_from) || h.len() > HISTORY_MAX {
                h.pop_front();
            }
        }
        if let Some(open) = self.open.get_mut(&query) {
            open.add(alert, stored, clock, config.max_samples);
            return Membership::Joined(open.incident.id.clone());
        }
        let usual = self.usual(&query, alert.event_time, window);
        let opens = match alert.kind {
            AlertKind::NegativeSpike => true,
            // A run of comments well above the query's usual count (one critical comment is one
            // comment: a brand with many followers' complaints every hour has no crisis).
            AlertKind::NegativeComment => {
                let pending = self.pending.entry(query.clone()).or_default();
                pending.retain(|p| (alert.event_time - p.alert.event_time).abs() < window);
                pending.push(Pending {
                    alert: alert.clone(),
                    stored: stored.map(String::from),
                });
                let least = config.open_after_comments.max(1) as f64;
                match usual {
                    Some(u) => pending.len() as f64 >= least.max((OPEN_RATIO * u).ceil()),
                    // No usual count yet (a new query, a fresh start): the comments may be the
                    // brand's everyday rate, or chatter the sentiment model misreads, so only a
                    // sharp burst is news: `COLD_FACTOR × open_after_comments` within a
                    // fifteenth of the window (a minute), and `OPEN_RATIO` times the rate per
                    // minute seen so far once a few minutes were seen.
                    None => {
                        let burst = window / 15;
                        let close = pending
                            .iter()
                            .filter(|p| (alert.event_time - p.alert.event_time).abs() <= burst)
                            .count();
                        let so_far = rate_so_far(self.history.get(&query), alert.event_time, burst);
                        close as f64 >= (COLD_FACTOR * least).max((OPEN_RATIO * so_far).ceil())
                    }
                }
            }
            // A term or volume surge is not bad news on its own.
            _ => false,
        };
        if !opens {
            return match alert.kind {
                AlertKind::NegativeComment => Membership::Pending(query),
                _ => Membership::None,
            };
        }
        let earlier = self.pending.remove(&query).unwrap_or_default();
        let first = earlier
            .iter()
            .map(|p| &p.alert)
            .filter(|a| (alert.event_time - a.event_time).abs() < window)
            .min_by_key(|a| (a.event_time, a.id.clone()))
            .unwrap_or(alert);
        let mut open = Open::new(first, &query);
        open.baseline = usual;
        open.last_signal = Some(alert.event_time);
        for p in &earlier {
            if p.alert.id != alert.id && (alert.event_time - p.alert.event_time).abs() < window {
                open.add(&p.alert, p.stored.as_deref(), clock, config.max_samples);
            }
        }
        open.add(alert, stored, clock, config.max_samples);
        let id = open.incident.id.clone();
        self.open.insert(query, open);
        Membership::Joined(id)
    }

    /// Records that an alert [`observe`](Self::observe) placed was stored as `stored` (its own
    /// id, or its thread's alert's when it was grouped).
    pub fn stored_as(&mut self, membership: &Membership, alert_id: &str, stored: &str) {
        match membership {
            Membership::None => {}
            Membership::Pending(query) => {
                if let Some(p) = self
                    .pending
                    .get_mut(query)
                    .and_then(|p| p.iter_mut().find(|p| p.alert.id == alert_id))
                {
                    p.stored = Some(stored.to_string());
                }
            }
            Membership::Joined(incident) => {
                if let Some(open) = self.open.values_mut().find(|o| &o.incident.id == incident) {
                    let ids = &mut open.incident.alert_ids;
                    if !ids.iter().any(|i| i == stored) {
                        ids.push(stored.to_string());
                        if ids.len() > MAX_ALERT_IDS {
                            ids.remove(0);
                        }
                        open.dirty = true;
                    }
                }
            }
        }
    }

    /// Moves incidents on to clock `clock`: the movement follows the quiet minutes, and an
    /// incident quiet for `resolve_after_s` is resolved. Forgets pending comments out of the
    /// window.
    pub fn tick(&mut self, config: &IncidentConfig, clock: DateTime<Utc>, now: DateTime<Utc>) {
        let quiet = Duration::seconds(config.resolve_after_s as i64);
        let window = Duration::seconds(config.window_s as i64);
        let mut done = Vec::new();
        for (q, open) in &mut self.open {
            // Resolved once no spike or trend has joined for `resolve_after_s`, and its comments
            // in the last window are back near the usual count before it opened.
            let signal = open.last_signal.unwrap_or(open.incident.last_event_at);
            // The history is in event-time order: the comments after `from` are its tail.
            let recent = self.history.get(q).map_or(0, |h| {
                let from = (clock - window).timestamp();
                h.len() - h.partition_point(|t| *t <= from)
            });
            // Opened without a usual count (a fresh start): the usual count since, once known.
            let baseline = open
                .baseline
                .or_else(|| usual_in(self.history.get(q), self.listening_since, clock, window));
            let faded_at = (config.open_after_comments.saturating_sub(1) as f64)
                .max((FADED_RATIO * baseline.unwrap_or(0.0)).ceil());
            if clock - signal >= quiet && recent as f64 <= faded_at {
                done.push(q.clone());
            } else if open.refresh(clock) {
                open.dirty = true;
            }
        }
        for q in done {
            let mut open = self.open.remove(&q).expect("present");
            open.incident.status = IncidentStatus::Resolved;
            open.incident.resolved_at = Some(clock);
            open.refresh(clock);
            self.resolved.push(open.emit(now));
        }
        let window = Duration::seconds(config.window_s as i64);
        self.pending.retain(|_, p| {
            p.retain(|p| clock - p.alert.event_time < window);
            !p.is_empty()
        });
    }

    /// The query's usual negative comments per window at `t`: the mean over the windows before
    /// the current one (up to three), or `None` while neither its history nor the router's
    /// listening reaches two windows back (a fresh start).
    fn usual(&self, query: &str, t: DateTime<Utc>, window: Duration) -> Option<f64> {
        usual_in(self.history.get(query), self.listening_since, t, window)
    }

    /// The incidents changed since they last went out, as versions stamped `now`.
    pub fn take(&mut self, now: DateTime<Utc>) -> Vec<Incident> {
        let mut out = std::mem::take(&mut self.resolved);
        for open in self.open.values_mut().filter(|o| o.dirty) {
            out.push(open.emit(now));
        }
        out
    }

    /// The incidents open now (a copy of each, as last computed).
    pub fn open(&self) -> Vec<&Incident> {
        self.open.values().map(|o| &o.incident).collect()
    }
}

/// A query's comments per `burst` before the burst that ends at `t`, over what history there is
/// (0 with under three bursts' worth of it: too little to say).
fn rate_so_far(
    h: Option<&std::collections::VecDeque<i64>>,
    t: DateTime<Utc>,
    burst: Duration,
) -> f64 {
    let Some(first) = h.and_then(|h| h.front().copied()) else {
        return 0.0;
    };
    let (b, end) = (
        burst.num_seconds().max(1),
        t.timestamp() - burst.num_seconds(),
    );
    if end - first < 3 * b {
        return 0.0;
    }
    // In event-time order: the comments before `end` are its head.
    let n = h.map_or(0, |h| h.partition_point(|x| *x < end));
    n as f64 * b as f64 / (end - first) as f64
}

/// [`Incidents::usual`] over one query's comment history.
fn usual_in(
    h: Option<&std::collections::VecDeque<i64>>,
    listening_since: Option<i64>,
    t: DateTime<Utc>,
    window: Duration,
) -> Option<f64> {
    let (t, w) = (t.timestamp(), window.num_seconds().max(1));
    // Counts are known from the query's oldest kept comment, or from when the router began
    // listening if that is earlier (a quiet query: windows without comments count as 0).
    let first = match (h.and_then(|h| h.front().copied()), listening_since) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    if first > t - 2 * w {
        return None;
    }
    let end = t - w;
    let start = (t - HISTORY_WINDOWS * w).max(first);
    let windows = ((end - start) as f64 / w as f64).max(1.0);
    // In event-time order: those in [start, end) lie between two binary searches.
    let n = h.map_or(0, |h| {
        h.partition_point(|x| *x < end) - h.partition_point(|x| *x < start)
    });
    Some(n as f64 / windows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        "2026-11-26T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::seconds(s)
    }

    fn comment(i: u32, at: i64, followers: u64, text: &str) -> Alert {
        Alert {
            id: format!("c{i}"),
            kind: AlertKind::NegativeComment,
            severity: Severity::Low,
            query: Some("nusapay".into()),
            term: None,
            title: "t".into(),
            why: "w".into(),
            samples: vec![Sample {
                key: format!("x:{i}"),
                text: text.into(),
                author_handle: format!("u{i}"),
                author_followers: followers,
                url: format!("https://x.com/{i}"),
                created_at: t(at),
            }],
            count: 1,
            thread_id: None,
            event_time: t(at),
            detected_at: t(at),
        }
    }

    fn spike(at: i64, authors: u32) -> Alert {
        Alert {
            id: format!("spike{at}"),
            kind: AlertKind::NegativeSpike,
            severity: Severity::Medium,
            query: Some("nusapay".into()),
            term: Some("#nusapaydown".into()),
            title: "Negative spike about nusapay".into(),
            why: format!(
                "{authors} distinct authors posted negative mentions matching \"nusapay\" in \
                 10:05–10:06 UTC against a usual 0.2 ± 1.0 (burst score 9.0); recent buckets ▁█; \
                 driving it: #nusapaydown (10 in the spike, 0 before), hilang (6 in the spike, 0 \
                 before), saldo (5 in the spike, 1 before)"
            ),
            samples: vec![],
            count: authors,
            thread_id: None,
            event_time: t(at),
            detected_at: t(at),
        }
    }

    fn trending(id: &str, term: &str, at: i64) -> Alert {
        Alert {
            id: id.into(),
            kind: AlertKind::EmergingTrend,
            severity: Severity::Medium,
            query: None,
            term: Some(term.into()),
            title: format!("{term} is trending"),
            why: "w".into(),
            samples: vec![],
            count: 10,
            thread_id: None,
            event_time: t(at),
            detected_at: t(at),
        }
    }

    #[test]
    fn a_crisis_is_one_incident_with_its_facts() {
        let config = IncidentConfig::default();
        let mut inc = Incidents::default();
        // The query's usual count: a complaint every ten minutes for the 40 minutes before.
        for (k, at) in [-2400i64, -1800, -1200].into_iter().enumerate() {
            let c = comment(100 + k as u32, at, 10, "NusaPay lambat");
            assert!(matches!(
                inc.observe(&config, &c, None, t(at)),
                Membership::Pending(_)
            ));
        }
        let text = "@nusapay saldo hilang after transfer #NusaPayDown";
        let mut ids = BTreeSet::new();
        for i in 0..40u32 {
            let at = i as i64 * 15;
            let m = inc.observe(
                &config,
                &comment(i, at, 100 + i as u64, text),
                Some(&format!("c{i}")),
                t(at),
            );
            if i < 4 {
                assert_eq!(
                    m,
                    Membership::Pending("nusapay".into()),
                    "comment {i} opens nothing yet"
                );
            } else {
                let Membership::Joined(id) = m else {
                    panic!("joined")
                };
                ids.insert(id);
            }
        }
        inc.observe(&config, &spike(300, 30), Some("spike300"), t(300));
        for (id, term) in [
            ("tr1", "#nusapaydown"),
            ("tr2", "transfer"),
            ("tr3", "@nusapay"),
            ("tr4", "#kopikitasenja"),
        ] {
            inc.observe(&config, &trending(id, term, 320), Some(id), t(320));
        }
        assert_eq!(ids.len(), 1, "one incident");
        let out = inc.take(t(600));
        assert_eq!(out.len(), 1);
        let i = &out[0];
        assert_eq!(i.query, "nusapay");
        assert_eq!(i.negative_posts, 40);
        assert_eq!(i.peak_per_minute, 4);
        assert_eq!(i.severity, Severity::High);
        assert_eq!(
            i.alert_count, 44,
            "40 comments, the spike, 3 of the 4 trends"
        );
        assert_eq!(i.driving_terms, ["#nusapaydown", "hilang", "saldo"]);
        assert_eq!(i.trending_terms, ["#nusapaydown", "transfer", "@nusapay"]);
        assert_eq!(i.samples.len(), 5);
        assert_eq!(i.samples[0].author_followers, 139, "most reach first");
        assert_eq!(i.alert_ids.len(), 44);
        assert_eq!(i.opened_at, t(0));
        assert_eq!(
            i.summary,
            "nusapay: negative spike — 40 negative posts in 10 min (peak 4 a minute), driven by \
             #nusapaydown, hilang, saldo; trending: #nusapaydown, transfer, @nusapay; steady"
        );
        assert_eq!((i.version, i.previous_severity), (1, None));
        assert!(inc.take(t(601)).is_empty(), "nothing changed");
    }

    #[test]
    fn severity_follows_size_and_speed() {
        let config = IncidentConfig::default();
        let mut inc = Incidents::default();
        // 120 comments in two minutes: critical, though each is low.
        for i in 0..120u32 {
            let at = i as i64;
            inc.observe(&config, &comment(i, at, 10, "saldo hilang"), None, t(at));
        }
        let i = inc.take(t(200)).remove(0);
        assert_eq!((i.severity, i.negative_posts), (Severity::Critical, 120));
        assert_eq!(i.previous_severity, None);
    }

    #[test]
    fn a_run_of_comments_opens_an_incident_and_quiet_resolves_it_in_event_time() {
        let config = IncidentConfig::default();
        let mut inc = Incidents::default();
        // One critical comment is one comment, not a crisis.
        let mut big = comment(1, 0, 250_000, "NusaPay is a scam, refund stolen");
        big.severity = Severity::Critical;
        assert!(matches!(
            inc.observe(&config, &big, Some("c1"), t(0)),
            Membership::Pending(_)
        ));
        // A query with no usual count yet: five within a minute may be its everyday rate (or
        // chatter misread as negative), fifteen open one.
        let mut last = Membership::None;
        for i in 2..=15 {
            let c = comment(i, i as i64, 100, "NusaPay saldo hilang");
            last = inc.observe(&config, &c, Some(&format!("c{i}")), t(i as i64));
            if i < 15 {
                assert!(matches!(last, Membership::Pending(_)), "{i}: {last:?}");
            }
        }
        assert!(matches!(last, Membership::Joined(_)), "{last:?}");
        let first = inc.take(t(15)).remove(0);
        assert_eq!(
            first.severity,
            Severity::High,
            "15 posts in a minute: high, its critical comment does not make it critical"
        );
        assert_eq!(first.negative_posts, 15);
        // Fading once quiet, resolved 30 minutes of event time after its last signal (its
        // opening), the comments being back to none.
        inc.tick(&config, t(600), t(6));
        let fading = inc.take(t(6)).remove(0);
        assert_eq!(fading.movement, Movement::Fading);
        inc.tick(&config, t(1814), t(7));
        assert!(inc.take(t(7)).is_empty());
        inc.tick(&config, t(1815), t(8));
        let resolved = inc.take(t(8)).remove(0);
        assert_eq!(resolved.status, IncidentStatus::Resolved);
        assert_eq!(resolved.resolved_at, Some(t(1815)));
        assert_eq!(resolved.id, first.id);
        assert!(inc.open().is_empty());
    }

    #[test]
    fn a_brand_with_steady_complaints_has_no_incident_until_they_jump() {
        let config = IncidentConfig::default();
        let mut inc = Incidents::default();
        // One complaint a minute for half an hour: never a burst of five within three minutes
        // while the query has no usual count, and then its usual count.
        let mut n = 0u32;
        let mut opened = Vec::new();
        for minute in 0..60i64 {
            let per_minute = if minute < 30 { 0 } else { 1 };
            for k in 0..per_minute {
                n += 1;
                let c = comment(n, minute * 60 + k, 100, "NusaPay lambat");
                if let Membership::Joined(id) = inc.observe(&config, &c, None, t(minute * 60 + k)) {
                    opened.push(id);
                }
            }
        }
        // 15 a window is now usual (one a minute): the fifth in a window is no news.
        assert!(opened.is_empty(), "{opened:?}");
        // Forty in the next five minutes is.
        for k in 0..40i64 {
            n += 1;
            let at = 3600 + k * 7;
            let c = comment(n, at, 100, "NusaPay down, saldo hilang");
            if let Membership::Joined(id) = inc.observe(&config, &c, None, t(at)) {
                opened.push(id);
            }
        }
        assert!(!opened.is_empty(), "a jump well above the usual opens one");
    }

    #[test]
    fn a_fresh_start_on_a_busy_brand_weighs_a_burst_against_the_rate_seen_so_far() {
        let config = IncidentConfig::default();
        let mut inc = Incidents::default();
        let mut n = 0u32;
        let mut observe = |inc: &mut Incidents, at: i64| {
            n += 1;
            let c = comment(n, at, 100, "NusaPay lambat");
            inc.observe(&config, &c, None, t(at))
        };
        // Ten a minute for five minutes, then sixteen in one minute: under 2.5 times what was
        // seen so far, no incident.
        for k in 0..50i64 {
            assert!(matches!(observe(&mut inc, k * 6), Membership::Pending(_)));
        }
        for k in 0..16i64 {
            let m = observe(&mut inc, 300 + k * 3);
            assert!(matches!(m, Membership::Pending(_)), "{k}: {m:?}");
        }
        // Thirty in the next minute are.
        let opened =
            (0..30i64).any(|k| matches!(observe(&mut inc, 360 + k * 2), Membership::Joined(_)));
        assert!(opened);
    }

    #[test]
    fn a_quiet_brand_is_not_a_fresh_start() {
        let config = IncidentConfig::default();
        let mut inc = Incidents::default();
        // The router has listened for an hour (an unrelated trend); the brand had no complaint.
        assert_eq!(
            inc.observe(&config, &trending("tr", "#kopi", -3600), None, t(-3600)),
            Membership::None
        );
        // Five complaints in three minutes open an incident: its usual count is none, known.
        let ms: Vec<Membership> = (0..5u32)
            .map(|k| {
                let at = i64::from(k) * 40;
                let c = comment(k, at, 10, "NusaPay saldo hilang");
                inc.observe(&config, &c, None, t(at))
            })
            .collect();
        assert!(
            ms[..4].iter().all(|m| matches!(m, Membership::Pending(_))),
            "{ms:?}"
        );
        assert!(matches!(ms[4], Membership::Joined(_)), "{ms:?}");
    }

    #[test]
    fn scattered_comments_and_unrelated_trends_open_nothing() {
        let config = IncidentConfig::default();
        let mut inc = Incidents::default();
        for i in 0..10u32 {
            // One every 20 minutes: never five within the window.
            let at = i as i64 * 1200;
            assert_eq!(
                inc.observe(&config, &comment(i, at, 10, "lambat"), None, t(at)),
                Membership::Pending("nusapay".into())
            );
            inc.tick(&config, t(at), t(at));
        }
        assert_eq!(
            inc.observe(&config, &trending("tr", "#nusapaydown", 0), None, t(0)),
            Membership::None
        );
        assert!(inc.take(t(0)).is_empty());
    }

    #[test]
    fn words_keep_tags_and_content_words() {
        let w = words_of(
            "@NusaPay saldo hilang 500rb, di #NusaPayDown https://x.co nusapay",
            "nusapay",
        );
        let w: Vec<&str> = w.iter().map(String::as_str).collect();
        assert_eq!(w, ["#nusapaydown", "500rb", "@nusapay", "hilang", "saldo"]);
    }
}
