//! Errors that stop a stage. The supervisor in [`crate::pipeline`] logs them and restarts the
//! stage from its last committed offsets, so nothing acknowledged is lost and nothing unacknowledged
//! is skipped.

use rdkafka::error::KafkaError;

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("Kafka: cannot {action}: {source}")]
    Kafka {
        action: &'static str,
        source: KafkaError,
    },
    #[error("ClickHouse: cannot {action}: {source}")]
    ClickHouse {
        action: &'static str,
        source: clickhouse::error::Error,
    },
    #[error(transparent)]
    Topics(#[from] crate::kafka::topics::TopicError),
    #[error(transparent)]
    Store(#[from] crate::store::client::StoreError),
}

impl StageError {
    pub fn kafka(action: &'static str) -> impl FnOnce(KafkaError) -> StageError {
        move |source| StageError::Kafka { action, source }
    }

    pub fn clickhouse(action: &'static str) -> impl FnOnce(clickhouse::error::Error) -> StageError {
        move |source| StageError::ClickHouse { action, source }
    }
}
