//! `[digest]`: the daily email report (who gets it, when, which window) and the SMTP server
//! that sends it. The SMTP password is never in the file: it comes from `GEMA_SMTP_PASSWORD`.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use crate::setting::Invalid;

/// The environment variable holding the SMTP password (used when `digest.username` is set).
pub const PASSWORD_ENV: &str = "GEMA_SMTP_PASSWORD";

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// No encryption: only for a relay on this machine (loopback `host`).
    None,
}

/// The daily digest (`gema run` and `gema serve` send it; `gema report --email` sends one now).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DigestConfig {
    /// Recipients' addresses; empty (the default) turns the digest off.
    pub to: Vec<String>,
    /// The sender's address (`gema@example.com` or `gema <gema@example.com>`).
    pub from: String,
    /// The time of day to send, `HH:MM`, in `time_zone`.
    pub at: String,
    /// IANA zone `at` is in (daylight saving followed). Unset: the display zone
    /// (`[display] time_zone`, else the system's).
    pub time_zone: Option<String>,
    /// A fixed offset from UTC for `at` instead of a zone, `+HH:MM` or `-HH:MM` (no daylight
    /// saving; kept for older configs). Cannot be set with `time_zone`.
    pub utc_offset: Option<String>,
    /// The window the digest covers, ending when it is sent (`24h`, `7d`).
    pub since: String,
    /// The SMTP server's host name.
    pub host: String,
    /// The SMTP server's port.
    pub port: u16,
    /// `starttls`, `tls` or `none` (loopback hosts only).
    pub security: SmtpSecurity,
    /// The SMTP user; empty sends without authentication. The password comes from
    /// `GEMA_SMTP_PASSWORD`.
    pub username: String,
    /// Gives up on one delivery attempt after this many seconds.
    pub timeout_s: u64,
    /// A PEM file of CA certificates trusted for the SMTP server's certificate, in addition to
    /// the built-in public roots (Mozilla's): for a server whose certificate a private CA
    /// signed. Empty: the built-in roots only.
    pub ca_file: String,
}

impl Default for DigestConfig {
    fn default() -> Self {
        DigestConfig {
            to: Vec::new(),
            from: String::new(),
            at: "08:00".into(),
            time_zone: None,
            utc_offset: None,
            since: "24h".into(),
            host: "localhost".into(),
            port: 587,
            security: SmtpSecurity::Starttls,
            username: String::new(),
            timeout_s: 30,
            ca_file: String::new(),
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl DigestConfig {
    /// Whether the daily digest is on (it has recipients).
    pub fn enabled(&self) -> bool {
        !self.to.is_empty()
    }

    /// Checks every value; keys are relative to `[digest]`.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.send_time()
            .map_err(|r| Invalid::new("at", &self.at, &r))?;
        if let Some(off) = &self.utc_offset {
            self.offset()
                .map_err(|r| Invalid::new("utc_offset", off, &r))?;
            if self.time_zone.is_some() {
                return Err(Invalid::new(
                    "utc_offset",
                    off,
                    "set either time_zone or utc_offset, not both",
                ));
            }
        }
        if let Some(zone) = &self.time_zone {
            zone.parse::<Tz>().map_err(|_| {
                Invalid::new(
                    "time_zone",
                    zone,
                    "not an IANA time zone name; use one such as Asia/Jakarta or Europe/Berlin",
                )
            })?;
        }
        self.window()
            .map_err(|r| Invalid::new("since", &self.since, &r))?;
        if self.timeout_s == 0 {
            return Err(Invalid::new("timeout_s", 0, "must be at least 1"));
        }
        if !self.enabled() {
            return Ok(());
        }
        for (i, to) in self.to.iter().enumerate() {
            to.parse::<lettre::message::Mailbox>()
                .map_err(|e| Invalid::new(&format!("to[{i}]"), to, &format!("{e}")))?;
        }
        self.from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| Invalid::new("from", &self.from, &format!("the sender's address: {e}")))?;
        if self.host.trim().is_empty() {
            return Err(Invalid::new(
                "host",
                &self.host,
                "the SMTP server's host name",
            ));
        }
        if self.port == 0 {
            return Err(Invalid::new(
                "port",
                0,
                "the SMTP server's port (587, 465, 25)",
            ));
        }
        if !self.ca_file.is_empty() {
            if self.security == SmtpSecurity::None {
                return Err(Invalid::new(
                    "ca_file",
                    &self.ca_file,
                    "a CA file is only used with TLS: set security to starttls or tls, or remove \
                     ca_file",
                ));
            }
            self.ca_certificates()
                .map_err(|r| Invalid::new("ca_file", &self.ca_file, &r))?;
        }
        if self.security == SmtpSecurity::None && !is_loopback(&self.host) {
            return Err(Invalid::new(
                "security",
                "none",
                &format!(
                    "sending without TLS is allowed only to a loopback host, not {:?}: use \
                     starttls or tls",
                    self.host
                ),
            ));
        }
        Ok(())
    }

    /// The PEM text of `ca_file` (`None` when it is empty), checked to hold a certificate.
    pub fn ca_certificates(&self) -> Result<Option<Vec<u8>>, String> {
        if self.ca_file.is_empty() {
            return Ok(None);
        }
        let pem = std::fs::read(&self.ca_file).map_err(|e| format!("cannot read it: {e}"))?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
        }
        Ok(Some(pem))
    }

    /// `at` as a time of day.
    pub fn send_time(&self) -> Result<NaiveTime, String> {
        NaiveTime::parse_from_str(&self.at, "%H:%M")
            .map_err(|_| "expected a time of day as HH:MM, e.g. 08:00".into())
    }

    /// `utc_offset` as an offset (`+00:00` when unset).
    pub fn offset(&self) -> Result<FixedOffset, String> {
        let bad = || "expected +HH:MM or -HH:MM, e.g. +07:00".to_string();
        let s = self.utc_offset.as_deref().unwrap_or("+00:00").trim();
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'+') => (1, &s[1..]),
            Some(b'-') => (-1, &s[1..]),
            _ => return Err(bad()),
        };
        let (h, m) = rest.split_once(':').ok_or_else(bad)?;
        let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if !(0..=23).contains(&h) || !(0..=59).contains(&m) {
            return Err(bad());
        }
        FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(bad)
    }

    /// `since` as the window's length.
    pub fn window(&self) -> Result<Duration, String> {
        let d = crate::query::time::parse_duration(&self.since)?;
        if d <= Duration::zero() || d > Duration::days(366) {
            return Err("expected a duration from 1s to 366d, e.g. 24h or 7d".into());
        }
        Ok(d)
    }

    /// Where `at` is read: `utc_offset` if set, else `time_zone`, else `display_zone`.
    ///
    /// # Panics
    /// When the values do not validate.
    pub fn schedule(&self, display_zone: Tz) -> Schedule {
        let time = self.send_time().unwrap();
        let place = match (&self.utc_offset, &self.time_zone) {
            (Some(_), _) => Place::Offset(self.offset().unwrap()),
            (None, Some(zone)) => Place::Zone(zone.parse().unwrap()),
            (None, None) => Place::Zone(display_zone),
        };
        Schedule { time, place }
    }

    /// The latest send time at or before `now` (today's if it has passed, else yesterday's).
    ///
    /// # Panics
    /// When the values do not validate.
    pub fn slot_at_or_before(&self, now: DateTime<Utc>, display_zone: Tz) -> DateTime<Utc> {
        self.schedule(display_zone).at_or_before(now)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    Zone(Tz),
    Offset(FixedOffset),
}

/// The digest's send times: `at` on each local day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    time: NaiveTime,
    place: Place,
}

/// `time` on `day` in `zone`: the earlier of two when the clocks go back, and the first moment
/// after the gap when they go forward (08:30 that never happened is sent at the gap's end).
fn local_slot<Z: TimeZone>(zone: &Z, day: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let mut local = day.and_time(time);
    // A gap is at most a few hours (zones have moved by up to a day, once: still finite).
    for _ in 0..(26 * 4) {
        if let Some(t) = zone.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
        local += Duration::minutes(15);
    }
    zone.from_utc_datetime(&day.and_time(time))
        .with_timezone(&Utc)
}

impl Schedule {
    /// The send time on local `day`.
    pub fn on(&self, day: NaiveDate) -> DateTime<Utc> {
        match self.place {
            Place::Zone(z) => local_slot(&z, day, self.time),
            Place::Offset(o) => local_slot(&o, day, self.time),
        }
    }

    fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        match self.place {
            Place::Zone(z) => now.with_timezone(&z).date_naive(),
            Place::Offset(o) => now.with_timezone(&o).date_naive(),
        }
    }

    /// The latest send time at or before `now`.
    pub fn at_or_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let today = self.today(now);
        let slot = self.on(today);
        if slot <= now {
            slot
        } else {
            self.on(today.pred_opt().unwrap_or(today))
        }
    }

    /// The first send time after `now`.
    pub fn after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let today = self.today(now);
        let slot = self.on(today);
        if slot > now {
            slot
        } else {
            self.on(today.succ_opt().unwrap_or(today))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> DigestConfig {
        DigestConfig {
            to: vec!["team@example.com".into()],
            from: "gema <gema@example.com>".into(),
            ..DigestConfig::default()
        }
    }

    #[test]
    fn the_default_is_off_and_valid() {
        let d = DigestConfig::default();
        assert!(!d.enabled());
        d.validate().unwrap();
        on().validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        let key = |d: DigestConfig| d.validate().unwrap_err().key;
        assert_eq!(
            key(DigestConfig {
                at: "8am".into(),
                ..on()
            }),
            "at"
        );
        assert_eq!(
            key(DigestConfig {
                at: "24:00".into(),
                ..on()
            }),
            "at"
        );
        for off in ["07:00", "+7", "+24:00", "+07:60", "UTC"] {
            assert_eq!(
                key(DigestConfig {
                    utc_offset: Some(off.into()),
                    ..on()
                }),
                "utc_offset",
                "{off}"
            );
        }
        assert_eq!(
            key(DigestConfig {
                since: "0h".into(),
                ..on()
            }),
            "since"
        );
        assert_eq!(
            key(DigestConfig {
                since: "soon".into(),
                ..on()
            }),
            "since"
        );
        assert_eq!(
            key(DigestConfig {
                from: String::new(),
                ..on()
            }),
            "from"
        );
        let d = DigestConfig {
            to: vec!["ok@example.com".into(), "nobody".into()],
            ..on()
        };
        assert_eq!(key(d), "to[1]");
        assert_eq!(key(DigestConfig { port: 0, ..on() }), "port");
        let plain = DigestConfig {
            security: SmtpSecurity::None,
            host: "mail.example.com".into(),
            ..on()
        };
        assert_eq!(key(plain), "security");
        let missing = DigestConfig {
            ca_file: "/nonexistent/ca.pem".into(),
            ..on()
        };
        let e = missing.validate().unwrap_err();
        assert_eq!(e.key, "ca_file");
        assert!(e.reason.contains("cannot read it"), "{}", e.reason);
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let not_pem = DigestConfig {
            ca_file: not_pem.display().to_string(),
            ..on()
        };
        assert_eq!(key(not_pem.clone()), "ca_file");
        let with_none = DigestConfig {
            security: SmtpSecurity::None,
            host: "127.0.0.1".into(),
            ..not_pem
        };
        assert_eq!(key(with_none), "ca_file");
        for host in ["127.0.0.1", "localhost", "::1", "[::1]"] {
            DigestConfig {
                security: SmtpSecurity::None,
                host: host.into(),
                ..on()
            }
            .validate()
            .unwrap();
        }
    }

    #[test]
    fn slots_are_today_once_passed_else_yesterday_at_the_offset() {
        let d = DigestConfig {
            at: "08:00".into(),
            utc_offset: Some("+07:00".into()),
            ..on()
        };
        let at = |d: &DigestConfig, now| d.slot_at_or_before(now, Tz::UTC);
        // 08:00 at +07:00 is 01:00 UTC.
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(at(&d, t("2026-12-07T01:00:00Z")), t("2026-12-07T01:00:00Z"));
        assert_eq!(at(&d, t("2026-12-07T00:59:59Z")), t("2026-12-06T01:00:00Z"));
        // 23:30 UTC on the 6th is already the 7th at +07:00.
        assert_eq!(at(&d, t("2026-12-06T23:30:00Z")), t("2026-12-06T01:00:00Z"));
        assert_eq!(at(&d, t("2026-12-07T18:00:00Z")), t("2026-12-07T01:00:00Z"));
        let west = DigestConfig {
            utc_offset: Some("-05:30".into()),
            ..d
        };
        assert_eq!(
            at(&west, t("2026-12-07T14:00:00Z")),
            t("2026-12-07T13:30:00Z")
        );
    }

    #[test]
    fn a_zone_follows_daylight_saving_and_defaults_to_the_display_zone() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let berlin = DigestConfig {
            at: "08:00".into(),
            time_zone: Some("Europe/Berlin".into()),
            ..on()
        };
        berlin.validate().unwrap();
        // 08:00 in Berlin is 07:00 UTC in winter (CET) and 06:00 UTC in summer (CEST).
        let winter = berlin.slot_at_or_before(t("2026-12-07T12:00:00Z"), Tz::UTC);
        assert_eq!(winter, t("2026-12-07T07:00:00Z"));
        let summer = berlin.slot_at_or_before(t("2026-07-07T12:00:00Z"), Tz::UTC);
        assert_eq!(summer, t("2026-07-07T06:00:00Z"));
        // The night the clocks go forward (29 March 2026) the next slot is 23 hours on.
        let s = berlin.schedule(Tz::UTC);
        assert_eq!(
            s.after(t("2026-03-28T07:00:00Z")),
            t("2026-03-29T06:00:00Z")
        );
        assert_eq!(
            s.after(t("2026-03-29T06:00:00Z")),
            t("2026-03-30T06:00:00Z")
        );
        // Unset: the display zone.
        let plain = DigestConfig {
            at: "08:00".into(),
            ..on()
        };
        assert_eq!(
            plain.slot_at_or_before(t("2026-12-07T12:00:00Z"), Tz::Asia__Jakarta),
            t("2026-12-07T01:00:00Z")
        );
        // A time that does not exist that day is sent when the gap ends: 02:30 on 29 March
        // 2026 in Berlin is 03:00 CEST (01:00 UTC).
        let gap = DigestConfig {
            at: "02:30".into(),
            ..berlin.clone()
        };
        assert_eq!(
            gap.schedule(Tz::UTC)
                .on(NaiveDate::from_ymd_opt(2026, 3, 29).unwrap()),
            t("2026-03-29T01:00:00Z")
        );
        // Both set, or a zone that is none: errors naming the key.
        let both = DigestConfig {
            utc_offset: Some("+01:00".into()),
            ..berlin.clone()
        };
        assert_eq!(both.validate().unwrap_err().key, "utc_offset");
        let bad = DigestConfig {
            time_zone: Some("Mars/Olympus".into()),
            ..on()
        };
        assert_eq!(bad.validate().unwrap_err().key, "time_zone");
    }
}
