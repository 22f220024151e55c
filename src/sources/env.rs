//! What the connectors of a process share ([`SourceEnv`]) and where their credentials come
//! from: environment variables only (never the config file), read by [`token_from_env`] and
//! never logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::kafka::KafkaConfig;
use crate::metrics::Metrics;
use crate::tracked::TrackedQueryConfig;

pub const MASTODON_TOKEN: &str = "GEMA_MASTODON_TOKEN";
pub const BLUESKY_TOKEN: &str = "GEMA_BLUESKY_TOKEN";
pub const YOUTUBE_API_KEY: &str = "GEMA_YOUTUBE_API_KEY";
pub const REDDIT_CLIENT_ID: &str = "GEMA_REDDIT_CLIENT_ID";
pub const REDDIT_CLIENT_SECRET: &str = "GEMA_REDDIT_CLIENT_SECRET";
pub const X_BEARER_TOKEN: &str = "GEMA_X_BEARER_TOKEN";
pub const META_APP_SECRET: &str = "GEMA_META_APP_SECRET";
pub const META_VERIFY_TOKEN: &str = "GEMA_META_VERIFY_TOKEN";
pub const META_ACCESS_TOKEN: &str = "GEMA_META_ACCESS_TOKEN";

/// A secret from the environment variable `name` (unset or empty: none); never logged.
pub fn token_from_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|t| !t.is_empty())
}

/// What every source of a process shares: Kafka, where state files go, the tracked queries
/// (X rules, the Jetstream filter, Google News presets follow them) and the metrics.
#[derive(Clone)]
pub struct SourceEnv {
    pub kafka: KafkaConfig,
    pub state_dir: PathBuf,
    pub tracked: Vec<TrackedQueryConfig>,
    pub metrics: Arc<Metrics>,
}

impl SourceEnv {
    /// What the sources of a config share: its `kafka`, `state_dir` and `tracked` sections.
    pub fn new(
        kafka: &KafkaConfig,
        state_dir: &Path,
        tracked: &[TrackedQueryConfig],
        metrics: Arc<Metrics>,
    ) -> SourceEnv {
        SourceEnv {
            kafka: kafka.clone(),
            state_dir: state_dir.to_path_buf(),
            tracked: tracked.to_vec(),
            metrics,
        }
    }
}
