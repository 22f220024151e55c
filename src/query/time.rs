//! Parsing `--since` / `--until` values: a duration ago (`90s`, `15m`, `1h`, `7d`, `2w`) or an
//! RFC 3339 time.

use chrono::{DateTime, Duration, Utc};

/// Parses `s` relative to `now`.
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    parse_duration(s).map(|d| now - d).map_err(|_| {
        format!("invalid time {s:?}: use a duration ago such as 15m, 1h, 7d, or an RFC 3339 time")
    })
}

/// Parses `90s`, `15m`, `1h`, `7d`, `2w`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let d = match unit {
        "s" => Duration::seconds(n),
        "m" | "min" => Duration::minutes(n),
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        "w" => Duration::weeks(n),
        _ => {
            return Err(format!(
                "invalid duration {s:?}: the unit must be s, m, h, d or w"
            ))
        }
    };
    Ok(d)
}

/// `until` as whole seconds for an exclusive `< toDateTime(?)` bound, rounded up: ClickHouse's
/// `DateTime` has second resolution, so a row stored at 12:00:05 that happened at 12:00:05.3 is
/// still before an `until` of 12:00:05.4.
pub fn end_secs(until: DateTime<Utc>) -> i64 {
    let s = until.timestamp();
    (if until.timestamp_subsec_nanos() > 0 {
        s + 1
    } else {
        s
    })
    .max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_relative_and_absolute_times() {
        let now: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        assert_eq!(
            parse_time("1h", now).unwrap(),
            "2026-11-26T11:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            parse_time("2026-11-25T00:00:00+07:00", now)
                .unwrap()
                .to_rfc3339(),
            "2026-11-24T17:00:00+00:00"
        );
        assert!(parse_time("yesterday", now)
            .unwrap_err()
            .contains("yesterday"));
        assert!(parse_duration("5y").is_err());
        let t: DateTime<Utc> = "2026-11-26T12:00:05.400Z".parse().unwrap();
        assert_eq!(
            end_secs(t),
            t.timestamp() + 1,
            "a row stored at :05 is before :05.4"
        );
        let whole: DateTime<Utc> = "2026-11-26T12:00:05Z".parse().unwrap();
        assert_eq!(end_secs(whole), whole.timestamp());
    }
}
