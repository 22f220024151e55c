//! `[display]`: the time zone people read times in, and the one place times are formatted for
//! them (CLI tables, the API's `*_local` fields, the dashboard through `/api/display`).
//!
//! Storage, Kafka and the API's own time fields stay in UTC; only presentation is local. Every
//! formatted time carries its date and, where a line could be read on its own, its zone: one
//! clock per line.

use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use crate::setting::Invalid;

/// How times are shown (`[display]`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DisplayConfig {
    /// IANA zone name times are shown in, e.g. `Asia/Jakarta`. Unset: the system's zone (the
    /// `TZ` environment variable, else the zone `/etc/localtime` links to, else UTC).
    pub time_zone: Option<String>,
}

impl DisplayConfig {
    /// Checks the zone name; the key is relative to `[display]`.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.display().map(|_| ())
    }

    /// The zone to show times in (the configured one, else the system's).
    pub fn display(&self) -> Result<Display, Invalid> {
        match &self.time_zone {
            Some(name) => name.parse::<Tz>().map(Display::new).map_err(|_| {
                Invalid::new(
                    "time_zone",
                    name,
                    "not an IANA time zone name; use one such as Asia/Jakarta, Europe/Berlin or UTC",
                )
            }),
            None => Ok(Display::new(system_zone(
                std::env::var("TZ").ok().as_deref(),
                std::fs::read_link("/etc/localtime")
                    .ok()
                    .as_deref()
                    .and_then(|p| p.to_str()),
            ))),
        }
    }
}

/// The system's zone from the `TZ` variable (`Asia/Jakarta` or `:Asia/Jakarta`), else from the
/// target of the `/etc/localtime` link (`/usr/share/zoneinfo/Asia/Jakarta`), else UTC. A value
/// that names no zone (a POSIX rule such as `WIB-7`) falls through to the next.
pub fn system_zone(tz_env: Option<&str>, localtime_link: Option<&str>) -> Tz {
    let from_env = tz_env
        .map(|v| v.trim_start_matches(':'))
        .and_then(|v| v.parse::<Tz>().ok());
    let from_link = || {
        let path = localtime_link?;
        let (_, name) = path.split_once("zoneinfo/")?;
        name.parse::<Tz>().ok()
    };
    let zone = from_env.or_else(from_link).unwrap_or(Tz::UTC);
    // Debian links /etc/localtime to Etc/UTC: show it by its common name.
    if matches!(
        zone,
        Tz::Etc__UTC | Tz::Etc__UCT | Tz::Etc__Universal | Tz::Etc__Zulu
    ) {
        Tz::UTC
    } else {
        zone
    }
}

/// Formats times in the display zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Display {
    zone: Tz,
}

impl Default for Display {
    fn default() -> Self {
        Display::new(Tz::UTC)
    }
}

impl Display {
    pub fn new(zone: Tz) -> Display {
        Display { zone }
    }

    /// The zone.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The IANA name, e.g. `Asia/Jakarta`.
    pub fn zone_name(&self) -> &'static str {
        self.zone.name()
    }

    /// The zone's abbreviation at `t` (`WIB`, `CET`, `UTC`), or its offset (`+07`) where the
    /// zone database has no letters for it.
    pub fn abbreviation(&self, t: DateTime<Utc>) -> String {
        self.zone
            .from_utc_datetime(&t.naive_utc())
            .format("%Z")
            .to_string()
    }

    /// Seconds east of UTC at `t`.
    pub fn offset_seconds(&self, t: DateTime<Utc>) -> i32 {
        self.zone
            .offset_from_utc_datetime(&t.naive_utc())
            .fix()
            .local_minus_utc()
    }

    /// `t` in the zone as RFC 3339 with its offset: `2026-11-26T17:00:00+07:00`.
    pub fn rfc3339(&self, t: DateTime<Utc>) -> String {
        self.zone
            .from_utc_datetime(&t.naive_utc())
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    }

    /// `11-26 17:00`: date and minute, for table columns whose header names the zone.
    pub fn short(&self, t: DateTime<Utc>) -> String {
        self.zone
            .from_utc_datetime(&t.naive_utc())
            .format("%m-%d %H:%M")
            .to_string()
    }

    /// `11-26 17:00:05`: date and second, for table columns whose header names the zone.
    pub fn short_secs(&self, t: DateTime<Utc>) -> String {
        self.zone
            .from_utc_datetime(&t.naive_utc())
            .format("%m-%d %H:%M:%S")
            .to_string()
    }

    /// `2026-11-26 17:00 WIB`: a time that stands on its own in a sentence.
    pub fn full(&self, t: DateTime<Utc>) -> String {
        let local = self.zone.from_utc_datetime(&t.naive_utc());
        format!(
            "{} {}",
            local.format("%Y-%m-%d %H:%M"),
            self.abbreviation(t)
        )
    }

    /// `text` with every `HH:MM–HH:MM UTC` (or `HH:MM UTC`) clock, as alerts state their windows
    /// when they are raised, moved to the display zone (`17:05–17:06 WIB`), so that a line shown
    /// beside a local time holds one clock. Each clock is read as the latest such UTC time at or
    /// before `reference` (the alert's detection), which is also how the date is found.
    pub fn localize_utc_clocks(&self, text: &str, reference: DateTime<Utc>) -> String {
        static CLOCKS: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        let re = CLOCKS.get_or_init(|| {
            regex::Regex::new(
                r"\b(?:(\d{4}-\d{2}-\d{2}) )?(\d{2}):(\d{2})(?:–(\d{2}):(\d{2}))? UTC\b",
            )
            .expect("valid")
        });
        if self.zone == Tz::UTC {
            return text.to_string();
        }
        let at = |date: Option<&str>, h: &str, m: &str| -> Option<DateTime<Utc>> {
            let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
            if let Some(date) = date {
                let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
                return Some(day.and_hms_opt(h, m, 0)?.and_utc());
            }
            let t = reference.date_naive().and_hms_opt(h, m, 0)?.and_utc();
            Some(if t > reference {
                t - chrono::Duration::days(1)
            } else {
                t
            })
        };
        let local = |t: DateTime<Utc>, pattern: &str| {
            self.zone
                .from_utc_datetime(&t.naive_utc())
                .format(pattern)
                .to_string()
        };
        re.replace_all(text, |c: &regex::Captures| {
            let dated = c.get(1).map(|d| d.as_str());
            let Some(start) = at(dated, &c[2], &c[3]) else {
                return c[0].to_string();
            };
            let first = local(
                start,
                if dated.is_some() {
                    "%Y-%m-%d %H:%M"
                } else {
                    "%H:%M"
                },
            );
            let end = match (c.get(4), c.get(5)) {
                (Some(h), Some(m)) => match at(None, h.as_str(), m.as_str()) {
                    Some(e) => Some(if e < start {
                        e + chrono::Duration::days(1)
                    } else {
                        e
                    }),
                    None => return c[0].to_string(),
                },
                _ => None,
            };
            match end {
                Some(e) => format!("{first}–{} {}", local(e, "%H:%M"), self.abbreviation(start)),
                None => format!("{first} {}", self.abbreviation(start)),
            }
        })
        .into_owned()
    }

    /// A table header naming the zone: `time (Asia/Jakarta)`.
    pub fn header(&self, what: &str) -> String {
        format!("{what} ({})", self.zone_name())
    }
}

/// Fields the ClickHouse rows carry as Unix seconds; [`json_rows`] gives each as RFC 3339.
const TIME_FIELDS: [&str; 10] = [
    "created_at",
    "sparkline_since",
    "sparkline_until",
    "detected_at",
    "event_time",
    "bucket_start",
    "corrected_at",
    "opened_at",
    "last_event_at",
    "resolved_at",
];

/// Stored rows as JSON objects for people and programs (the API, `gema incidents --json`): RFC
/// 3339 times in UTC, each beside the same time in the display zone (`detected_at_local`), `null`
/// for a `resolved_at` stored as the epoch (none: an open incident's), and an alert's or
/// incident's `samples` (stored as JSON text) as an array.
pub fn json_rows<T: serde::Serialize>(rows: Vec<T>, display: &Display) -> Vec<serde_json::Value> {
    rows.into_iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let Some(obj) = v.as_object_mut() {
                for f in TIME_FIELDS {
                    let t = match obj.get(f) {
                        Some(serde_json::Value::Number(n)) => n
                            .as_i64()
                            .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0)),
                        Some(serde_json::Value::String(s)) => s.parse().ok(),
                        _ => None,
                    };
                    // The epoch stands for "none" in an incident's `resolved_at` while open.
                    if f == "resolved_at" && t.is_some_and(|t| t.timestamp() == 0) {
                        obj.insert(f.to_string(), serde_json::Value::Null);
                        obj.insert(format!("{f}_local"), serde_json::Value::Null);
                    } else if let Some(t) = t {
                        obj.insert(f.to_string(), serde_json::json!(t));
                        obj.insert(format!("{f}_local"), serde_json::json!(display.rfc3339(t)));
                    }
                }
                if let Some(samples) = obj.get("samples").and_then(|s| s.as_str()) {
                    let parsed = serde_json::from_str(samples).unwrap_or(serde_json::json!([]));
                    obj.insert("samples".into(), parsed);
                }
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_system_zone_comes_from_tz_then_localtime_then_utc() {
        assert_eq!(
            system_zone(
                Some("Asia/Jakarta"),
                Some("/usr/share/zoneinfo/Europe/Berlin")
            ),
            Tz::Asia__Jakarta
        );
        assert_eq!(system_zone(Some(":Asia/Jakarta"), None), Tz::Asia__Jakarta);
        assert_eq!(
            system_zone(Some("WIB-7"), Some("/usr/share/zoneinfo/Europe/Berlin")),
            Tz::Europe__Berlin,
            "a POSIX rule names no zone: the link decides"
        );
        assert_eq!(
            system_zone(None, Some("../usr/share/zoneinfo/Asia/Makassar")),
            Tz::Asia__Makassar
        );
        assert_eq!(system_zone(None, Some("/etc/somewhere")), Tz::UTC);
        assert_eq!(
            system_zone(None, Some("/usr/share/zoneinfo/Etc/UTC")).name(),
            "UTC"
        );
        assert_eq!(system_zone(None, None), Tz::UTC);
    }

    #[test]
    fn a_bad_zone_name_names_the_key() {
        let c = DisplayConfig {
            time_zone: Some("Asia/Jakartaa".into()),
        };
        let e = c.validate().unwrap_err().within("display");
        assert_eq!(e.key, "display.time_zone");
        assert_eq!(e.value, "Asia/Jakartaa");
        assert!(e.to_string().contains("IANA"), "{e}");
        let ok = DisplayConfig {
            time_zone: Some("Asia/Jakarta".into()),
        };
        assert_eq!(ok.display().unwrap().zone_name(), "Asia/Jakarta");
    }

    #[test]
    fn formats_in_the_zone_with_the_date() {
        let d = Display::new(Tz::Asia__Jakarta);
        // 20:30 UTC is the next morning in Jakarta: the date moves with the clock.
        let t = at("2026-11-26T20:30:05Z");
        assert_eq!(d.rfc3339(t), "2026-11-27T03:30:05+07:00");
        assert_eq!(d.short(t), "11-27 03:30");
        assert_eq!(d.short_secs(t), "11-27 03:30:05");
        assert_eq!(d.full(t), "2026-11-27 03:30 WIB");
        assert_eq!(d.offset_seconds(t), 7 * 3600);
        assert_eq!(d.header("time"), "time (Asia/Jakarta)");
        // Daylight saving: Berlin is +1 in winter, +2 in summer.
        let b = Display::new(Tz::Europe__Berlin);
        assert_eq!(
            b.rfc3339(at("2026-01-10T12:00:00Z")),
            "2026-01-10T13:00:00+01:00"
        );
        assert_eq!(
            b.rfc3339(at("2026-07-10T12:00:00Z")),
            "2026-07-10T14:00:00+02:00"
        );
        assert_eq!(Display::default().full(t), "2026-11-26 20:30 UTC");
    }

    #[test]
    fn alert_windows_stated_in_utc_read_in_the_zone() {
        let d = Display::new(Tz::Asia__Jakarta);
        let detected = at("2026-11-26T04:27:48Z");
        assert_eq!(
            d.localize_utc_clocks(
                "40 authors used #x in 03:48–03:49 UTC against 0.2",
                detected
            ),
            "40 authors used #x in 10:48–10:49 WIB against 0.2"
        );
        // A window from before midnight UTC, detected after it.
        assert_eq!(
            d.localize_utc_clocks("in the minute from 23:59 UTC", at("2026-11-27T00:01:00Z")),
            "in the minute from 06:59 WIB"
        );
        // A dated clock keeps its own date, moved with the clock.
        assert_eq!(
            d.localize_utc_clocks("from 2026-11-26 20:00 UTC", at("2026-11-26T20:01:00Z")),
            "from 2026-11-27 03:00 WIB"
        );
        assert_eq!(
            Display::default().localize_utc_clocks("03:48–03:49 UTC", detected),
            "03:48–03:49 UTC"
        );
        assert_eq!(
            d.localize_utc_clocks("no clock here", detected),
            "no clock here"
        );
    }
}
