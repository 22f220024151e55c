//! Where a newest-first listing's polling stands when the platform gives only item times to
//! resume from (YouTube comments, Reddit listings): the newest time sent and the ids sent at that
//! time, so a restart neither repeats an item nor skips one posted in the same second.

use serde::{Deserialize, Serialize};

/// The newest item time sent (Unix seconds) and the ids sent at that second.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeCursor {
    pub since: i64,
    pub ids: Vec<String>,
}

impl TimeCursor {
    /// Whether the item `id` posted at `at` has not been sent: newer than the cursor, or at its
    /// second and not among its ids.
    pub fn is_new(&self, at: i64, id: &str) -> bool {
        at > self.since || (at == self.since && !self.ids.iter().any(|i| i == id))
    }

    /// Records that `id` posted at `at` was stored (items are recorded oldest first).
    pub fn record(&mut self, at: i64, id: &str) {
        if at > self.since {
            self.since = at;
            self.ids.clear();
        }
        if at == self.since && !self.ids.iter().any(|i| i == id) {
            self.ids.push(id.to_string());
        }
    }
}

/// Where each of several listings stands, for `gema sources`: `key since <time>` per entry
/// (`key (nothing yet)` before the first item), joined by `; `.
pub fn describe<'a>(
    entries: impl Iterator<Item = (&'a String, Option<chrono::DateTime<chrono::Utc>>)>,
) -> String {
    entries
        .map(|(k, t)| match t {
            Some(t) => format!("{k} since {}", t.to_rfc3339()),
            None => format!("{k} (nothing yet)"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl TimeCursor {
    /// The newest item time sent, `None` before the first.
    pub fn newest(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        (self.since > 0)
            .then(|| chrono::DateTime::from_timestamp(self.since, 0))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_at_the_cursor_second_are_told_apart_by_id() {
        let mut c = TimeCursor::default();
        assert!(c.is_new(100, "a"));
        c.record(100, "a");
        c.record(100, "b");
        assert!(!c.is_new(100, "a") && !c.is_new(100, "b") && !c.is_new(99, "z"));
        assert!(c.is_new(100, "c") && c.is_new(101, "a"));
        c.record(101, "c");
        assert_eq!(c.ids, vec!["c".to_string()]);
        // An older item recorded late does not move the cursor back.
        c.record(90, "old");
        assert_eq!((c.since, c.ids.len()), (101, 1));
    }
}
