//! Query-string parameters, checked before anything reaches ClickHouse: known names only,
//! bounded lengths, no control characters, enumerations matched exactly, time ranges and page
//! sizes within the `[server]` limits. Whatever passes is still bound with `?`, never pasted.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::config::ServerConfig;
use super::error::ApiError;
use crate::query::time::parse_time;

/// Longest free-text parameter accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 200;

/// The parameters of one request.
pub struct Params {
    map: HashMap<String, String>,
}

impl Params {
    /// Rejects names not in `allowed`, so a typo is a 400 rather than a silently ignored filter.
    pub fn new(map: HashMap<String, String>, allowed: &[&str]) -> Result<Params, ApiError> {
        if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            let shown: String = k.chars().take(40).collect();
            return Err(bad(format!(
                "unknown parameter {shown:?} (accepted: {})",
                allowed.join(", ")
            )));
        }
        Ok(Params { map })
    }

    /// A free-text value: at most [`MAX_TEXT_CHARS`], no control characters; empty means absent.
    pub fn text(&self, name: &str) -> Result<Option<String>, ApiError> {
        let Some(v) = self.map.get(name) else {
            return Ok(None);
        };
        if v.chars().count() > MAX_TEXT_CHARS {
            return Err(bad(format!(
                "{name} is longer than {MAX_TEXT_CHARS} characters"
            )));
        }
        if v.chars().any(char::is_control) {
            return Err(bad(format!("{name} contains control characters")));
        }
        Ok((!v.is_empty()).then(|| v.clone()))
    }

    /// One of `choices`, exactly.
    pub fn choice(
        &self,
        name: &str,
        choices: &[&'static str],
    ) -> Result<Option<&'static str>, ApiError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => choices
                .iter()
                .find(|c| **c == v)
                .copied()
                .map(Some)
                .ok_or_else(|| bad(format!("{name} must be one of {}", choices.join(", ")))),
        }
    }

    /// An integer in `[min, max]`, or `default`.
    pub fn int(&self, name: &str, default: u64, min: u64, max: u64) -> Result<u64, ApiError> {
        let Some(v) = self.map.get(name) else {
            return Ok(default);
        };
        let n: u64 = v
            .parse()
            .map_err(|_| bad(format!("{name} must be an integer from {min} to {max}")))?;
        if n < min || n > max {
            return Err(bad(format!("{name} must be from {min} to {max}")));
        }
        Ok(n)
    }

    /// A number from 0 to 1 (a confidence), or `None` when absent or empty.
    pub fn fraction(&self, name: &str) -> Result<Option<f32>, ApiError> {
        match self.map.get(name).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(v) => crate::query::mentions::parse_confidence(v)
                .map(Some)
                .ok_or_else(|| bad(format!("{name} must be a number from 0 to 1"))),
        }
    }

    /// `limit`, at most `max_page_size`.
    pub fn limit(&self, default: u64, config: &ServerConfig) -> Result<u64, ApiError> {
        self.int(
            "limit",
            default.min(config.max_page_size),
            1,
            config.max_page_size,
        )
    }

    /// `since` / `until` (a duration ago such as `1h`, or RFC 3339), `since` < `until`, the range
    /// no wider than `max_range_days`.
    pub fn range(
        &self,
        default_since: &str,
        config: &ServerConfig,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
        let now = Utc::now();
        let parse = |name: &str, default: Option<&str>| -> Result<DateTime<Utc>, ApiError> {
            match self.text(name)?.as_deref().or(default) {
                None => Ok(now),
                // chrono panics on durations past ±2^63 ms: bound the number before parsing.
                Some(v) if v.chars().take_while(char::is_ascii_digit).count() > 6 => {
                    Err(bad(format!("{name}: the duration is too large")))
                }
                Some(v) => parse_time(v, now).map_err(|e| bad(format!("{name}: {e}"))),
            }
        };
        let since = parse("since", Some(default_since))?;
        let until = parse("until", None)?;
        if since >= until {
            return Err(bad("since must be before until".into()));
        }
        let max = Duration::days(config.max_range_days as i64);
        if until - since > max {
            return Err(bad(format!(
                "the time range is wider than {} days",
                config.max_range_days
            )));
        }
        // ClickHouse DateTime ends in 2106; nothing is stored outside it.
        let lo = DateTime::<Utc>::UNIX_EPOCH;
        let hi = lo + Duration::seconds(u32::MAX as i64);
        if since < lo || until > hi {
            return Err(bad("the time range must lie between 1970 and 2106".into()));
        }
        Ok((since, until))
    }
}

fn bad(msg: String) -> ApiError {
    ApiError::BadRequest(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)], allowed: &[&str]) -> Result<Params, ApiError> {
        Params::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            allowed,
        )
    }

    #[test]
    fn rejects_unknown_names_long_text_and_bad_ranges() {
        assert!(params(&[("x", "1")], &["limit"]).is_err());
        let c = ServerConfig::default();
        let p = params(&[("q", &"a".repeat(201))], &["q"]).unwrap();
        assert!(p.text("q").is_err());
        let p = params(&[("q", "a\u{0}b")], &["q"]).unwrap();
        assert!(p.text("q").is_err());
        let p = params(&[("limit", "100000")], &["limit"]).unwrap();
        assert!(p.limit(20, &c).is_err());
        let p = params(&[("limit", "' OR 1=1 --")], &["limit"]).unwrap();
        assert!(p.limit(20, &c).is_err());
        let p = params(&[("since", "1000d")], &["since"]).unwrap();
        assert!(p.range("1h", &c).is_err());
        let p = params(&[("since", "1h"), ("until", "2h")], &["since", "until"]).unwrap();
        assert!(p.range("1h", &c).is_err());
        let p = params(&[("since", "2h")], &["since"]).unwrap();
        let (s, u) = p.range("1h", &c).unwrap();
        assert_eq!((u - s).num_hours(), 2);
        let p = params(&[("s", "bogus")], &["s"]).unwrap();
        assert!(p.choice("s", &["negative"]).is_err());
    }
}
