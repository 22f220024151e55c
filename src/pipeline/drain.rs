//! Waiting until every stage has caught up with its input.

use std::time::{Duration, Instant};

use crate::kafka::KafkaConfig;
use crate::kafka::{lag, Group, Topics};

/// Every stage's consumer group and its input topic.
pub fn stage_groups(t: &Topics) -> Vec<(String, String)> {
    Group::ALL
        .into_iter()
        .map(|g| (t.group(g), t.input(g).to_string()))
        .collect()
}

/// Waits until every stage's group has committed everything in its input topic, and it stayed
/// so for `settle` (the trend stage closes its last buckets after a quiet spell, which makes
/// more work).
pub async fn wait_for_drain(
    kafka: &KafkaConfig,
    timeout: Duration,
    settle: Duration,
) -> Result<(), String> {
    let t = kafka.topics();
    let deadline = Instant::now() + timeout;
    let mut quiet_since: Option<Instant> = None;
    loop {
        let mut behind = Vec::new();
        for (group, topic) in stage_groups(&t) {
            let lag = lag::group_lag(kafka, &group, &topic)
                .map_err(|e| format!("reading the lag of {group}: {e}"))?;
            if lag > 0 {
                behind.push(format!("{group} {lag}"));
            }
        }
        if behind.is_empty() {
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= settle {
                return Ok(());
            }
        } else {
            quiet_since = None;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "stages still behind after {timeout:?}: {}",
                behind.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
