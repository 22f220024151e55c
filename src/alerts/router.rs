//! The alert router: drops repeats, groups replies in one thread, applies cooldowns per query and
//! kind, and rate-limits with a digest. Pure: the caller passes the time in.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::alert::{alert_id, Alert, AlertKind, Severity};
use super::incident::{Incident, IncidentConfig, Incidents, Membership};
use super::trend::merge_emerging;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterConfig {
    /// How many alert ids are remembered to drop repeats.
    pub dedup_capacity: usize,
    /// Negative comments in one thread within one window of this many seconds (fixed windows of
    /// event time) become one alert with a count.
    pub group_window_s: u64,
    /// After a negative-comment alert for a query, more within this many seconds are suppressed
    /// (0: every negative comment is delivered, subject to the rate limit).
    pub cooldown_negative_comment_s: u64,
    /// After a negative-spike alert for a query, more within this many seconds of event time are
    /// suppressed.
    pub cooldown_negative_spike_s: u64,
    /// After an emerging-trend alert for a term, more within this many seconds are suppressed.
    pub cooldown_emerging_trend_s: u64,
    /// Most negative-comment alerts delivered per minute of event time; the rest are summarised
    /// in one digest once that minute is over (a minute later, for stragglers). Critical ones
    /// always go through, and spike and trend alerts are limited by their cooldowns instead, so
    /// a flood of comments never hides a spike.
    pub max_per_minute: u32,
    /// Samples kept in a grouped alert or a digest.
    pub max_samples: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            dedup_capacity: 100_000,
            group_window_s: 900,
            cooldown_negative_comment_s: 0,
            cooldown_negative_spike_s: 900,
            cooldown_emerging_trend_s: 1800,
            max_per_minute: 30,
            max_samples: 5,
        }
    }
}

/// What the router did with one alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Delivered,
    /// Same id seen before (a redelivery).
    Duplicate,
    /// Folded into the thread's alert with this id.
    Grouped(String),
    CoolingDown,
    /// Held for the next digest.
    RateLimited,
}

#[derive(Debug, Default, Clone)]
pub struct RouterStats {
    pub delivered: u64,
    pub duplicates: u64,
    pub grouped: u64,
    pub cooling_down: u64,
    pub rate_limited: u64,
    pub digests: u64,
}

/// A thread's negative comments in one window, or a bucket's emerging-trend alerts, as one
/// alert.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Group {
    alert: Alert,
    opened: DateTime<Utc>,
    emitted_count: u32,
    /// A bucket's emerging-trend alerts, one per state that raised one (with a state per terms
    /// partition, each partition's); `alert` is them merged.
    #[serde(default)]
    members: Vec<Alert>,
    /// Members in the alert that last went out.
    #[serde(default)]
    emitted_members: usize,
}

impl Group {
    /// The group's alert when it has grown since it last went out: a thread's count, or a
    /// bucket's members.
    fn update(&mut self, now: DateTime<Utc>) -> Option<Alert> {
        let grown = if self.members.is_empty() {
            self.alert.count > self.emitted_count
        } else {
            self.members.len() > self.emitted_members
        };
        if !grown {
            return None;
        }
        self.emitted_count = self.alert.count;
        self.emitted_members = self.members.len();
        let mut update = self.alert.clone();
        update.detected_at = now;
        Some(update)
    }
}

/// One minute of event time under the rate limit: alerts delivered in it, and those held for its
/// digest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Minute {
    delivered: u32,
    held: Vec<Alert>,
}

/// The router's clock: event time, the low watermark of its input (the oldest, over the
/// partitions it reads, of their newest `event_time`: [`Router::advance`]), running on with the
/// wall clock while it does not move (so that a quiet live stream still closes its windows, and a
/// replay at 600× meets the windows as the live stream did).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Clock {
    event: DateTime<Utc>,
    /// When (wall clock) `event` last moved.
    at: DateTime<Utc>,
}

/// Everything a router remembers, to be restored after a restart: the ids it saw (oldest
/// first), open thread groups, cooldowns, the rate limit's minutes with the alerts held for their
/// digests, and its clock. (Its statistics are the process's and start again.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouterSnapshot {
    seen: Vec<String>,
    groups: Vec<((String, String), Group)>,
    last_delivered: Vec<((AlertKind, String), DateTime<Utc>)>,
    #[serde(default)]
    minutes: Vec<(i64, Minute)>,
    #[serde(default)]
    clock: Option<Clock>,
    /// Open incidents and the comments that may open one.
    #[serde(default)]
    incidents: Incidents,
    /// Held alerts in a snapshot from before the rate limit ran on event time.
    #[serde(default, skip_serializing)]
    held: Vec<Alert>,
}

/// A minute's digest, and a thread's final count, wait this long after the minute or window for
/// alerts that arrive late.
const DIGEST_GRACE_S: i64 = 60;

/// How long after its window a thread's group is kept for comments that arrive late (a day of
/// event time: a replay read at full speed can deliver a partition's comments that far behind
/// the others), and how many closed groups are kept at most (the oldest go first; a few MB).
const GROUP_KEPT_S: i64 = 86_400;
const MAX_KEPT_GROUPS: usize = 2_000;

/// The minute (Unix seconds, a multiple of 60) holding `t`.
fn minute_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(60) * 60
}

pub struct Router {
    config: RouterConfig,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
    groups: HashMap<(String, String), Group>,
    last_delivered: HashMap<(AlertKind, String), DateTime<Utc>>,
    minutes: BTreeMap<i64, Minute>,
    clock: Option<Clock>,
    incident_config: IncidentConfig,
    incidents: Incidents,
    pub stats: RouterStats,
}

impl Router {
    pub fn new(config: RouterConfig) -> Router {
        Router {
            config,
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            groups: HashMap::new(),
            last_delivered: HashMap::new(),
            minutes: BTreeMap::new(),
            clock: None,
            incident_config: IncidentConfig::default(),
            incidents: Incidents::default(),
            stats: RouterStats::default(),
        }
    }

    /// The router, grouping alerts into incidents as `config` says.
    pub fn with_incidents(mut self, config: IncidentConfig) -> Router {
        self.incident_config = config;
        self
    }

    /// The incidents changed since this was last called, as versions stamped `now`.
    pub fn take_incidents(&mut self, now: DateTime<Utc>) -> Vec<Incident> {
        self.incidents.take(now)
    }

    /// The incidents open now.
    pub fn open_incidents(&self) -> Vec<&Incident> {
        self.incidents.open()
    }

    /// What the router remembers now.
    pub fn snapshot(&self) -> RouterSnapshot {
        RouterSnapshot {
            seen: self.seen_order.iter().cloned().collect(),
            groups: self
                .groups
                .iter()
                .map(|(k, g)| (k.clone(), g.clone()))
                .collect(),
            last_delivered: self
                .last_delivered
                .iter()
                .map(|(k, t)| (k.clone(), *t))
                .collect(),
            minutes: self
                .minutes
                .iter()
                .map(|(m, state)| (*m, state.clone()))
                .collect(),
            clock: self.clock,
            incidents: self.incidents.clone(),
            held: Vec::new(),
        }
    }

    /// A router with `config` that remembers what `snap` holds.
    pub fn restore(config: RouterConfig, snap: RouterSnapshot) -> Router {
        let mut r = Router::new(config);
        for id in snap.seen {
            r.remember(&id);
        }
        r.groups = snap.groups.into_iter().collect();
        r.last_delivered = snap.last_delivered.into_iter().collect();
        r.minutes = snap.minutes.into_iter().collect();
        r.clock = snap.clock;
        r.incidents = snap.incidents;
        for a in snap.held {
            r.minutes
                .entry(minute_of(a.event_time))
                .or_default()
                .held
                .push(a);
        }
        r
    }

    fn remember(&mut self, id: &str) -> bool {
        if !self.seen.insert(id.to_string()) {
            return false;
        }
        self.seen_order.push_back(id.to_string());
        while self.seen_order.len() > self.config.dedup_capacity {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    fn cooldown(&self, kind: AlertKind) -> Duration {
        let s = match kind {
            AlertKind::NegativeComment => self.config.cooldown_negative_comment_s,
            AlertKind::NegativeSpike => self.config.cooldown_negative_spike_s,
            AlertKind::EmergingTrend => self.config.cooldown_emerging_trend_s,
            AlertKind::Digest => 0,
        };
        Duration::seconds(s as i64)
    }

    /// The router's clock at wall-clock time `now` (`None` before the first
    /// [`advance`](Self::advance): nothing closes yet).
    fn event_now(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.clock
            .map(|c| c.event + (now - c.at).max(Duration::zero()))
    }

    /// Moves the clock to the input's low watermark `watermark` (event time), seen at wall-clock
    /// time `now`. It never goes back.
    pub fn advance(&mut self, watermark: Option<DateTime<Utc>>, now: DateTime<Utc>) {
        let Some(w) = watermark else { return };
        if self.event_now(now).is_none_or(|e| w > e) {
            self.clock = Some(Clock { event: w, at: now });
        }
    }

    /// Routes one alert, at wall-clock time `now`; returns the decision and the alerts to
    /// deliver now (including any grouped-thread updates or digests that became due). Windows,
    /// cooldowns and the rate limit run on the alerts' event time and the router's clock.
    pub fn route(&mut self, alert: Alert, now: DateTime<Utc>) -> (Decision, Vec<Alert>) {
        let mut out = self.tick(now);
        if !self.remember(&alert.id) {
            self.stats.duplicates += 1;
            return (Decision::Duplicate, out);
        }
        let clock = self.event_now(now).unwrap_or(alert.event_time);
        let membership = self
            .incidents
            .observe(&self.incident_config, &alert, None, clock);
        let id = alert.id.clone();
        let (decision, due) = self.decide(alert, &membership);
        // A thread's first comment goes out under its group's id: the delivered alert is last.
        let stored = match &decision {
            Decision::Delivered => due.last().map(|a| a.id.as_str()),
            Decision::Grouped(group) => Some(group.as_str()),
            _ => None,
        };
        if let Some(stored) = stored {
            self.incidents.stored_as(&membership, &id, stored);
        }
        out.extend(due);
        (decision, out)
    }

    /// What becomes of one new alert, `membership` being its place in the incidents.
    fn decide(&mut self, mut alert: Alert, membership: &Membership) -> (Decision, Vec<Alert>) {
        let mut out = Vec::new();
        let subject = alert
            .query
            .clone()
            .or_else(|| alert.term.clone())
            .unwrap_or_default();

        if let (AlertKind::NegativeComment, Some(thread)) = (alert.kind, alert.thread_id.clone()) {
            // Fixed windows of event time, so that which comments share a thread's alert does
            // not depend on the order they arrive in (the partitions' interleaving).
            let window = self.config.group_window_s.max(1) as i64;
            let start = alert.event_time.timestamp().div_euclid(window) * window;
            let opened = DateTime::<Utc>::from_timestamp(start, 0).unwrap_or(alert.event_time);
            let key = (subject.clone(), format!("{thread}@{start}"));
            if let Some(g) = self.groups.get_mut(&key) {
                g.alert.count += 1;
                g.alert.severity = g.alert.severity.max(alert.severity);
                if g.alert.samples.len() < self.config.max_samples {
                    g.alert.samples.extend(alert.samples);
                }
                g.alert.why = format!(
                    "{} negative comments in one thread; latest: {}",
                    g.alert.count, alert.why
                );
                self.stats.grouped += 1;
                return (Decision::Grouped(g.alert.id.clone()), out);
            }
            // The thread's alert (for this window) gets an id of its own, stable across
            // redeliveries and runs.
            alert.id = alert_id(
                AlertKind::NegativeComment,
                &[&subject, "thread", &thread, &opened.to_rfc3339()],
            );
            self.remember(&alert.id.clone());
            self.groups.insert(
                key,
                Group {
                    alert: alert.clone(),
                    opened,
                    emitted_count: 1,
                    members: Vec::new(),
                    emitted_members: 0,
                },
            );
        }

        // Cooldowns run on event time, so a replay of history behaves as the live stream did.
        let cooldown = self.cooldown(alert.kind);
        let ck = (alert.kind, subject);
        if cooldown > Duration::zero() {
            if let Some(last) = self.last_delivered.get(&ck) {
                if (alert.event_time - *last).abs() < cooldown {
                    self.stats.cooling_down += 1;
                    return (Decision::CoolingDown, out);
                }
            }
        }
        // A term trending (a tracked query's volume surging is an emerging-trend alert too, about
        // its query, and goes out on its own).
        if alert.kind == AlertKind::EmergingTrend && alert.query.is_none() {
            if let Some(grouped) = self.join_bucket(&mut alert, ck) {
                return (grouped, out);
            }
            self.stats.delivered += 1;
            out.push(alert);
            return (Decision::Delivered, out);
        }
        let limited =
            alert.kind == AlertKind::NegativeComment && alert.severity < Severity::Critical;
        if limited {
            let minute = self.minutes.entry(minute_of(alert.event_time)).or_default();
            if minute.delivered >= self.config.max_per_minute {
                self.stats.rate_limited += 1;
                // A comment in an incident is counted by the incident, whose top posts and
                // summary tell its story: no digest repeats it, and the rate limit still keeps
                // webhooks and the live feed from a flood.
                if !matches!(membership, Membership::Joined(_)) {
                    minute.held.push(alert);
                }
                return (Decision::RateLimited, out);
            }
            minute.delivered += 1;
        }
        self.last_delivered.insert(ck, alert.event_time);
        self.stats.delivered += 1;
        out.push(alert);
        (Decision::Delivered, out)
    }

    /// A term's emerging-trend alert (not cooling down) joins its bucket's group: when the bucket
    /// already has one it is folded in (and goes out with the group's update, a grace period
    /// after the bucket): `Some(Grouped)`; else it opens the group and takes the bucket's id, to
    /// be delivered now: `None`. With a state per terms partition each partition raises its own alert for a
    /// bucket; the manager gets one.
    fn join_bucket(
        &mut self,
        alert: &mut Alert,
        cooldown_key: (AlertKind, String),
    ) -> Option<Decision> {
        let end = alert.event_time;
        let key = ("#trends".to_string(), end.timestamp().to_string());
        self.last_delivered.insert(cooldown_key, end);
        if let Some(g) = self.groups.get_mut(&key) {
            g.members.push(alert.clone());
            if let Some(merged) = merge_emerging(&g.members, &g.alert.id) {
                g.alert = merged;
            }
            self.stats.grouped += 1;
            return Some(Decision::Grouped(g.alert.id.clone()));
        }
        let id = alert_id(AlertKind::EmergingTrend, &["bucket", &end.to_rfc3339()]);
        self.remember(&id);
        let member = alert.clone();
        alert.id = id;
        // Its update is due a grace period after the bucket's end (see `tick`).
        let window = Duration::seconds(self.config.group_window_s.max(1) as i64);
        self.groups.insert(
            key,
            Group {
                alert: alert.clone(),
                opened: end - window,
                emitted_count: alert.count,
                members: vec![member],
                emitted_members: 1,
            },
        );
        None
    }

    /// Emits what became due by wall-clock time `now`: updated thread alerts whose window
    /// closed with a higher count, and the digests of minutes that are over.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Alert> {
        let mut out = Vec::new();
        let Some(clock) = self.event_now(now) else {
            return out;
        };
        // A thread's count goes out a grace period after its window ends, and again whenever
        // stragglers (comments read late, e.g. from a partition behind the others) raise it
        // while the group is kept.
        let window = self.config.group_window_s.max(1) as i64;
        let closed = Duration::seconds(window + DIGEST_GRACE_S);
        let kept = Duration::seconds(window + GROUP_KEPT_S);
        let mut gone = Vec::new();
        for (k, g) in &mut self.groups {
            if clock - g.opened >= closed {
                out.extend(g.update(now));
            }
            if clock - g.opened >= kept {
                gone.push(k.clone());
            }
        }
        for k in gone {
            self.groups.remove(&k);
        }
        if self.groups.len() > MAX_KEPT_GROUPS {
            let mut done: Vec<(DateTime<Utc>, (String, String))> = self
                .groups
                .iter()
                .filter(|(_, g)| clock - g.opened >= closed)
                .map(|(k, g)| (g.opened, k.clone()))
                .collect();
            done.sort();
            let excess = self.groups.len() - MAX_KEPT_GROUPS;
            for (_, k) in done.into_iter().take(excess) {
                self.groups.remove(&k);
            }
        }
        self.incidents.tick(&self.incident_config, clock, now);
        let over = clock.timestamp() - 60 - DIGEST_GRACE_S;
        let done: Vec<i64> = self.minutes.range(..=over).map(|(m, _)| *m).collect();
        for m in done {
            let minute = self.minutes.remove(&m).expect("present");
            if !minute.held.is_empty() {
                out.push(self.digest(m, minute.held, now));
            }
        }
        out
    }

    /// Emits everything still pending (thread updates, the digests) now, e.g. on shutdown.
    pub fn flush(&mut self, now: DateTime<Utc>) -> Vec<Alert> {
        let mut out = Vec::new();
        for (_, mut g) in self.groups.drain() {
            out.extend(g.update(now));
        }
        for (m, minute) in std::mem::take(&mut self.minutes) {
            if !minute.held.is_empty() {
                out.push(self.digest(m, minute.held, now));
            }
        }
        out
    }

    /// The digest of the alerts held in the minute starting at `minute` (Unix seconds).
    fn digest(&mut self, minute: i64, held: Vec<Alert>, now: DateTime<Utc>) -> Alert {
        let start = DateTime::<Utc>::from_timestamp(minute, 0).unwrap_or(now);
        let mut by: BTreeMap<(String, String), u32> = BTreeMap::new();
        for a in &held {
            let subject = a
                .query
                .clone()
                .or_else(|| a.term.clone())
                .unwrap_or_else(|| "-".into());
            *by.entry((a.kind.as_str().to_string(), subject))
                .or_default() += 1;
        }
        let parts: Vec<String> = by
            .iter()
            .map(|((k, s), n)| format!("{n} × {k} ({s})"))
            .collect();
        let mut sorted = held.clone();
        sorted.sort_by_key(|a| std::cmp::Reverse(a.severity));
        self.stats.digests += 1;
        Alert {
            id: alert_id(AlertKind::Digest, &[&start.to_rfc3339()]),
            kind: AlertKind::Digest,
            severity: sorted.first().map(|a| a.severity).unwrap_or(Severity::Low),
            query: None,
            term: None,
            title: format!(
                "{} more alerts in the minute from {} UTC",
                held.len(),
                start.format("%Y-%m-%d %H:%M")
            ),
            why: format!(
                "Rate limit of {} alerts per minute reached; held back: {}",
                self.config.max_per_minute,
                parts.join(", ")
            ),
            samples: sorted
                .iter()
                .flat_map(|a| a.samples.first().cloned())
                .take(self.config.max_samples)
                .collect(),
            count: held.len() as u32,
            thread_id: None,
            event_time: held.iter().map(|a| a.event_time).max().unwrap_or(now),
            detected_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(
        id: &str,
        kind: AlertKind,
        query: &str,
        thread: Option<&str>,
        severity: Severity,
    ) -> Alert {
        Alert {
            id: id.into(),
            kind,
            severity,
            query: Some(query.into()),
            term: None,
            title: "t".into(),
            why: "w".into(),
            samples: vec![],
            count: 1,
            thread_id: thread.map(String::from),
            event_time: t(0),
            detected_at: t(0),
        }
    }

    fn t(s: i64) -> DateTime<Utc> {
        "2026-11-26T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::seconds(s)
    }

    fn no_incidents() -> IncidentConfig {
        IncidentConfig {
            enabled: false,
            ..IncidentConfig::default()
        }
    }

    #[test]
    fn drops_repeats() {
        let mut r = Router::new(RouterConfig::default());
        let a = alert("a", AlertKind::NegativeComment, "q", None, Severity::Low);
        assert_eq!(r.route(a.clone(), t(0)).0, Decision::Delivered);
        assert_eq!(r.route(a, t(1)).0, Decision::Duplicate);
    }

    #[test]
    fn groups_a_thread_into_one_alert_with_a_count() {
        let mut r = Router::new(RouterConfig::default());
        let (d, out) = r.route(
            alert(
                "a",
                AlertKind::NegativeComment,
                "q",
                Some("th"),
                Severity::Low,
            ),
            t(0),
        );
        assert_eq!(d, Decision::Delivered);
        let group_id = out[0].id.clone();
        for i in 0..9 {
            let (d, out) = r.route(
                alert(
                    &format!("b{i}"),
                    AlertKind::NegativeComment,
                    "q",
                    Some("th"),
                    Severity::Medium,
                ),
                t(10 + i),
            );
            assert_eq!(d, Decision::Grouped(group_id.clone()));
            assert!(out.is_empty());
        }
        // The window (15 minutes) and its grace (a minute) are over.
        r.advance(Some(t(18)), t(18));
        assert!(r.tick(t(959)).is_empty());
        let update = r.tick(t(960));
        assert_eq!(update.len(), 1);
        assert_eq!(
            (update[0].id.as_str(), update[0].count, update[0].severity),
            (group_id.as_str(), 10, Severity::Medium)
        );
    }

    #[test]
    fn a_buckets_emerging_trend_alerts_go_out_as_one() {
        let mut r = Router::new(RouterConfig::default());
        let trend = |id: &str, term: &str, authors: u32, end: i64| Alert {
            query: None,
            term: Some(term.into()),
            count: authors,
            why: format!("{authors} distinct authors used {term}"),
            event_time: t(end),
            ..alert(id, AlertKind::EmergingTrend, "-", None, Severity::Low)
        };
        r.advance(Some(t(60)), t(0));
        // Two partitions' alerts for the bucket ending at 60 s: the first goes out at once under
        // the bucket's id, the second joins it.
        let (d, out) = r.route(trend("a", "@kopikita", 8, 60), t(0));
        assert_eq!(d, Decision::Delivered);
        let id = out[0].id.clone();
        assert_eq!(out[0].term.as_deref(), Some("@kopikita"));
        assert_eq!(
            r.route(trend("b", "#senja", 30, 60), t(1)).0,
            Decision::Grouped(id.clone())
        );
        // The other bucket is an alert of its own; the cooldown of a term in the first holds.
        assert_eq!(
            r.route(trend("c", "#lain", 9, 120), t(2)).0,
            Decision::Delivered
        );
        assert_eq!(
            r.route(trend("d", "#senja", 40, 120), t(3)).0,
            Decision::CoolingDown
        );
        // A grace period after the bucket, its update: led by the term with the most authors.
        r.advance(Some(t(60 + DIGEST_GRACE_S)), t(4));
        let updates = r.tick(t(4));
        let update = updates
            .iter()
            .find(|a| a.id == id)
            .expect("the bucket's update");
        assert_eq!(update.term.as_deref(), Some("#senja"));
        assert!(
            update
                .why
                .ends_with("rising with it: @kopikita (8 authors)"),
            "{}",
            update.why
        );
        assert!(r.tick(t(5)).iter().all(|a| a.id != id), "once");
    }

    #[test]
    fn a_restored_router_remembers_groups_repeats_cooldowns_and_held_alerts() {
        let config = RouterConfig {
            max_per_minute: 1,
            ..RouterConfig::default()
        };
        let mut r = Router::new(config.clone());
        let comment = |id: &str, thread: Option<&str>| {
            alert(id, AlertKind::NegativeComment, "q", thread, Severity::Low)
        };
        let (_, out) = r.route(comment("a", Some("th")), t(0));
        let group_id = out[0].id.clone();
        assert_eq!(
            r.route(comment("b", Some("th")), t(1)).0,
            Decision::Grouped(group_id.clone())
        );
        assert_eq!(r.route(comment("c", None), t(2)).0, Decision::RateLimited);
        r.advance(Some(t(2)), t(2));
        let json = serde_json::to_vec(&r.snapshot()).unwrap();
        let mut back = Router::restore(config, serde_json::from_slice(&json).unwrap());
        // A repeat is still a repeat, the thread still groups, the held alert is in the digest.
        assert_eq!(
            back.route(comment("b", Some("th")), t(3)).0,
            Decision::Duplicate
        );
        assert_eq!(
            back.route(comment("d", Some("th")), t(4)).0,
            Decision::Grouped(group_id.clone())
        );
        let due = back.tick(t(1000));
        let update = due
            .iter()
            .find(|a| a.id == group_id)
            .expect("the thread's update");
        assert_eq!(update.count, 3);
        let digest = due
            .iter()
            .find(|a| a.kind == AlertKind::Digest)
            .expect("the digest");
        assert!(
            digest.why.contains("1 × negative_comment (q)"),
            "{}",
            digest.why
        );
    }

    #[test]
    fn cooldown_per_query_and_kind_in_event_time() {
        let mut r = Router::new(RouterConfig::default());
        let at = |id: &str, query: &str, s: i64| {
            let mut a = alert(id, AlertKind::NegativeSpike, query, None, Severity::High);
            a.event_time = t(s);
            a
        };
        // Wall-clock time barely moves (a fast replay); event time decides.
        assert_eq!(r.route(at("s1", "q", 0), t(0)).0, Decision::Delivered);
        assert_eq!(r.route(at("s2", "q", 60), t(1)).0, Decision::CoolingDown);
        assert_eq!(r.route(at("s3", "other", 61), t(2)).0, Decision::Delivered);
        assert_eq!(r.route(at("s4", "q", 901), t(3)).0, Decision::Delivered);
    }

    #[test]
    fn rate_limit_holds_the_rest_for_a_digest_but_lets_critical_through() {
        // Unrelated comments: no incident summarises them.
        let mut r = Router::new(RouterConfig {
            max_per_minute: 3,
            ..RouterConfig::default()
        })
        .with_incidents(no_incidents());
        r.advance(Some(t(0)), t(0));
        let mut delivered = 0;
        for i in 0..10 {
            let (d, _) = r.route(
                alert(
                    &format!("a{i}"),
                    AlertKind::NegativeComment,
                    "q",
                    None,
                    Severity::Low,
                ),
                t(i),
            );
            delivered += (d == Decision::Delivered) as u32;
        }
        assert_eq!(delivered, 3);
        assert_eq!(
            r.route(
                alert(
                    "crit",
                    AlertKind::NegativeComment,
                    "q",
                    None,
                    Severity::Critical
                ),
                t(20)
            )
            .0,
            Decision::Delivered
        );
        // The minute's digest waits a minute after it for stragglers.
        assert!(r.tick(t(119)).is_empty());
        let out = r.tick(t(120));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].kind, out[0].count), (AlertKind::Digest, 7));
        assert!(
            out[0].why.contains("7 × negative_comment (q)"),
            "{}",
            out[0].why
        );
    }

    #[test]
    fn a_fast_replay_meets_the_rate_limit_per_minute_of_event_time() {
        // Three minutes of event time replayed within one second of wall-clock time.
        let mut r = Router::new(RouterConfig {
            max_per_minute: 2,
            ..RouterConfig::default()
        })
        .with_incidents(no_incidents());
        let mut delivered = 0;
        let mut due = Vec::new();
        for i in 0..15 {
            let mut a = alert(
                &format!("a{i}"),
                AlertKind::NegativeComment,
                "q",
                None,
                Severity::Low,
            );
            a.event_time = t(i * 12); // five a minute
            let wall = t(0) + Duration::milliseconds(i * 50);
            r.advance(Some(a.event_time), wall);
            let (d, out) = r.route(a, wall);
            delivered += (d == Decision::Delivered) as u32;
            due.extend(out);
        }
        // Two a minute, not two in all.
        assert_eq!(delivered, 6);
        // The first minute's digest went out once event time was a minute past it; the rest
        // come with the flush.
        due.extend(r.flush(t(1)));
        due.retain(|a| a.kind == AlertKind::Digest);
        let digests: Vec<(&str, u32)> = due.iter().map(|a| (a.title.as_str(), a.count)).collect();
        assert_eq!(
            digests,
            [
                ("3 more alerts in the minute from 2026-11-26 10:00 UTC", 3),
                ("3 more alerts in the minute from 2026-11-26 10:01 UTC", 3),
                ("3 more alerts in the minute from 2026-11-26 10:02 UTC", 3),
            ]
        );
        let ids: HashSet<&str> = due.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids.len(), 3, "one digest id per minute");
    }

    #[test]
    fn a_threads_alerts_do_not_depend_on_the_order_its_comments_arrive_in() {
        // Six comments over 25 minutes of event time: two 15-minute windows, three in each.
        let comments: Vec<Alert> = (0..6)
            .map(|i| {
                let mut a = alert(
                    &format!("c{i}"),
                    AlertKind::NegativeComment,
                    "q",
                    Some("th"),
                    Severity::Low,
                );
                a.event_time = t(i * 300);
                a
            })
            .collect();
        let counts = |order: Vec<Alert>| {
            let mut r = Router::new(RouterConfig::default());
            let mut out = Vec::new();
            for (k, a) in order.into_iter().enumerate() {
                // One partition: its newest event time is the watermark.
                r.advance(Some(a.event_time), t(k as i64));
                out.extend(r.route(a, t(k as i64)).1);
            }
            out.extend(r.flush(t(10)));
            // What the alerts table keeps: the newest count of each id.
            let mut by_id: BTreeMap<String, u32> = BTreeMap::new();
            for a in out {
                let c = by_id.entry(a.id).or_default();
                *c = (*c).max(a.count);
            }
            by_id.into_iter().collect::<Vec<(String, u32)>>()
        };
        let forward = counts(comments.clone());
        let backward = counts(comments.into_iter().rev().collect());
        assert_eq!(forward.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [3, 3]);
        assert_eq!(backward, forward);
    }

    #[test]
    fn comments_over_the_limit_in_an_incident_are_counted_by_it_not_digested_and_a_restore_keeps_it_exact(
    ) {
        let config = RouterConfig {
            max_per_minute: 3,
            ..RouterConfig::default()
        };
        let mut r = Router::new(config.clone());
        let mut decisions = Vec::new();
        for i in 0..20 {
            let mut a = alert(
                &format!("a{i}"),
                AlertKind::NegativeComment,
                "q",
                None,
                Severity::Low,
            );
            a.event_time = t(i);
            r.advance(Some(a.event_time), t(i));
            decisions.push(r.route(a, t(i)).0);
        }
        // Three are delivered; the fourth to the fourteenth are over the limit and held for a
        // digest; the fifteenth opens the incident (a query with no usual count yet needs 15
        // within a minute), which counts it and every later one (still over the limit).
        assert_eq!(decisions[3], Decision::RateLimited);
        assert_eq!(
            decisions
                .iter()
                .filter(|d| **d == Decision::Delivered)
                .count(),
            3,
            "{decisions:?}"
        );
        let json = serde_json::to_vec(&r.snapshot()).unwrap();
        let mut back = Router::restore(config, serde_json::from_slice(&json).unwrap());
        let (mut a, mut b) = (r.take_incidents(t(30)), back.take_incidents(t(30)));
        assert_eq!(a, b, "the restored router holds the same incident");
        assert_eq!((a[0].negative_posts, a[0].alert_ids.len()), (20, 3));
        for r in [&mut r, &mut back] {
            let mut c = alert("late", AlertKind::NegativeComment, "q", None, Severity::Low);
            c.event_time = t(40);
            r.route(c, t(40));
        }
        (a, b) = (r.take_incidents(t(41)), back.take_incidents(t(41)));
        assert_eq!(a, b);
        assert_eq!((a[0].negative_posts, a[0].version), (21, 2));
        let digests: Vec<u32> = r
            .flush(t(42))
            .iter()
            .filter(|a| a.kind == AlertKind::Digest)
            .map(|a| a.count)
            .collect();
        assert_eq!(
            digests,
            [11],
            "only the comments held before the incident opened"
        );
    }
}
