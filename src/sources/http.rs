//! What every connector does with a platform's HTTP answers: a failure sorted by what to do next
//! ([`Failure`]: wait for the rate limit, stop on a refused credential, back off and retry), the
//! wait a rate-limited answer asks for ([`rate_limit_wait`]: `Retry-After`, `x-ratelimit-*`,
//! `x-rate-limit-*`), and exponential backoff with jitter ([`Backoff`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use reqwest::header::HeaderMap;

/// What a failed request or poll means for the connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// 5xx, a refused connection, a timeout, a dropped stream: back off and try again.
    Transient,
    /// 429 or a spent quota: wait this long before the next request to that platform.
    RateLimited(Duration),
    /// 401 / 403: the credential is missing or wrong; retrying cannot help, the source stops.
    Denied,
    /// An answer that is not what the platform documents (malformed JSON): tried again at the
    /// next poll.
    Malformed,
    /// Kafka did not store a mention: tried again at the next poll (the cursor did not move).
    Kafka,
}

/// Why a request, a poll or a stream failed: the kind decides what happens next, the message
/// names the URL or query and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    /// The HTTP status that caused it, when one did.
    pub status: Option<u16>,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            status: None,
        }
    }

    pub fn transient(message: impl Into<String>) -> Failure {
        Failure::new(FailureKind::Transient, message)
    }

    pub fn malformed(message: impl Into<String>) -> Failure {
        Failure::new(FailureKind::Malformed, message)
    }

    /// The same failure with `what` (a URL, a query) in front of its message.
    pub fn within(self, what: &str) -> Failure {
        Failure {
            message: format!("{what}: {}", self.message),
            ..self
        }
    }

    pub fn is_denied(&self) -> bool {
        self.kind == FailureKind::Denied
    }

    /// Whether it ends a polling round for every followed item (a refused credential, a rate
    /// limit), not just for the one that met it.
    pub fn ends_round(&self) -> bool {
        self.is_denied() || self.rate_limit().is_some()
    }

    /// The wait a rate-limited failure asks for.
    pub fn rate_limit(&self) -> Option<Duration> {
        match self.kind {
            FailureKind::RateLimited(d) => Some(d),
            _ => None,
        }
    }

    /// The failure for an answer with a non-2xx `status` and these `headers`.
    pub fn from_status(status: reqwest::StatusCode, headers: &HeaderMap) -> Failure {
        let code = status.as_u16();
        let kind = match code {
            401 | 403 => FailureKind::Denied,
            429 => FailureKind::RateLimited(
                rate_limit_wait(headers, Utc::now()).unwrap_or(DEFAULT_RATE_LIMIT_WAIT),
            ),
            _ => FailureKind::Transient,
        };
        let mut message = format!("HTTP {status}");
        if let Some(wait) = match kind {
            FailureKind::RateLimited(w) => Some(w),
            _ => None,
        } {
            message.push_str(&format!(" (rate limited; waiting {} s)", wait.as_secs()));
        }
        Failure {
            status: Some(code),
            ..Failure::new(kind, message)
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for Failure {
    /// A failure given only as text is transient.
    fn from(message: String) -> Failure {
        Failure::transient(message)
    }
}

/// How long a 429 without any rate-limit header makes a connector wait.
pub const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// The longest wait a rate-limit header is believed (a bad header cannot park a source for days).
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(3600);

/// The wait the rate-limit headers of an answer ask for, if any:
/// - `Retry-After` in seconds or as an HTTP date (RFC 9110, any 429 or 503);
/// - an exhausted window: `x-ratelimit-remaining` 0 (Reddit; `x-ratelimit-reset` is the seconds
///   left in the window) or `x-rate-limit-remaining` 0 (X API v2; `x-rate-limit-reset` is the
///   Unix time the window resets).
///
/// Capped at [`MAX_RATE_LIMIT_WAIT`].
pub fn rate_limit_wait(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let secs = wait_secs;
    if let Some(v) = get("retry-after") {
        if let Ok(s) = v.parse::<f64>() {
            return Some(secs(s));
        }
        if let Ok(at) = DateTime::parse_from_rfc2822(v) {
            return Some(secs(
                (at.with_timezone(&Utc) - now).num_milliseconds() as f64 / 1e3,
            ));
        }
    }
    let spent = |name: &str| get(name).and_then(|v| v.parse::<f64>().ok()) == Some(0.0);
    if spent("x-ratelimit-remaining") {
        if let Some(s) = get("x-ratelimit-reset").and_then(|v| v.parse::<f64>().ok()) {
            return Some(secs(s));
        }
    }
    if spent("x-rate-limit-remaining") {
        if let Some(at) = get("x-rate-limit-reset").and_then(|v| v.parse::<i64>().ok()) {
            return Some(secs(at.saturating_sub(now.timestamp()) as f64));
        }
    }
    None
}

/// A wait of `secs` seconds from a platform's header: at most [`MAX_RATE_LIMIT_WAIT`], none for
/// a negative or non-finite value (`inf`, `NaN` parse as numbers too).
pub fn wait_secs(secs: f64) -> Duration {
    if !secs.is_finite() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(secs.min(MAX_RATE_LIMIT_WAIT.as_secs_f64()))
}

/// Exponential backoff with jitter: the n-th consecutive failure waits a random time between
/// half and all of `base · 2ⁿ`, at most `max`; [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max: max.max(base),
            failures: 0,
        }
    }

    /// The wait after one more failure.
    pub fn next_wait(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        ceiling.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn rate_limit_headers_of_each_platform_give_the_wait() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T05:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let wait = |pairs: &[(&'static str, &str)]| rate_limit_wait(&headers(pairs), now);
        assert_eq!(wait(&[("retry-after", "7")]), Some(Duration::from_secs(7)));
        assert_eq!(
            wait(&[("retry-after", "Mon, 07 Dec 2026 05:00:30 GMT")]),
            Some(Duration::from_secs(30))
        );
        // Reddit: remaining as a float, reset in seconds.
        assert_eq!(
            wait(&[
                ("x-ratelimit-remaining", "0.0"),
                ("x-ratelimit-reset", "42")
            ]),
            Some(Duration::from_secs(42))
        );
        assert_eq!(
            wait(&[
                ("x-ratelimit-remaining", "57.0"),
                ("x-ratelimit-reset", "42")
            ]),
            None
        );
        // X: reset as a Unix time.
        let at = (now.timestamp() + 90).to_string();
        assert_eq!(
            wait(&[("x-rate-limit-remaining", "0"), ("x-rate-limit-reset", &at)]),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            wait(&[("retry-after", "99999999")]),
            Some(MAX_RATE_LIMIT_WAIT)
        );
        assert_eq!(wait(&[("retry-after", "soon")]), None);
        // Numbers a float parser takes but no wait is: no panic, no endless wait.
        assert_eq!(wait(&[("retry-after", "inf")]), Some(Duration::ZERO));
        assert_eq!(wait(&[("retry-after", "1e300")]), Some(MAX_RATE_LIMIT_WAIT));
        assert_eq!(wait(&[("retry-after", "-5")]), Some(Duration::ZERO));
        assert_eq!(
            wait(&[
                ("x-rate-limit-remaining", "0"),
                ("x-rate-limit-reset", "-9223372036854775808")
            ]),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn statuses_sort_into_kinds() {
        let h = headers(&[("retry-after", "3")]);
        let f = Failure::from_status(reqwest::StatusCode::TOO_MANY_REQUESTS, &h);
        assert_eq!(f.rate_limit(), Some(Duration::from_secs(3)));
        assert!(f.message.contains("429"), "{f}");
        assert_eq!(f.status, Some(429));
        assert!(f.ends_round());
        let none = HeaderMap::new();
        assert!(Failure::from_status(reqwest::StatusCode::UNAUTHORIZED, &none).is_denied());
        assert!(Failure::from_status(reqwest::StatusCode::FORBIDDEN, &none).is_denied());
        assert_eq!(
            Failure::from_status(reqwest::StatusCode::BAD_GATEWAY, &none).kind,
            FailureKind::Transient
        );
        assert_eq!(
            Failure::from_status(reqwest::StatusCode::TOO_MANY_REQUESTS, &none).rate_limit(),
            Some(DEFAULT_RATE_LIMIT_WAIT)
        );
    }

    #[test]
    fn backoff_grows_with_jitter_up_to_its_ceiling_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(2), Duration::from_secs(30));
        let waits: Vec<Duration> = (0..8).map(|_| b.next_wait()).collect();
        for (i, w) in waits.iter().enumerate() {
            let ceiling = Duration::from_secs((2u64 << i).min(30));
            assert!(*w <= ceiling && *w >= ceiling / 2, "{i}: {w:?}");
        }
        assert_eq!(b.failures(), 8);
        b.reset();
        assert!(b.next_wait() <= Duration::from_secs(2));
    }
}
