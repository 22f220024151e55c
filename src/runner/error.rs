//! Errors that stop a stage, and what to do about each: the supervisor restarts the stage from
//! its last committed offsets (nothing acknowledged is lost, nothing unacknowledged skipped), the
//! runner dead-letters the one input that cannot be processed, or the stage stops for good.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("Kafka: cannot {action}: {source}")]
    Kafka {
        action: &'static str,
        source: KafkaError,
    },
    /// Writing to the stage's store (ClickHouse) failed.
    #[error("ClickHouse: cannot {action}: {source}")]
    Store {
        action: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Topics(#[from] crate::kafka::topics::TopicError),
    /// A stateful stage could not make its state durable.
    #[error("cannot save {what} to {path}: {source}")]
    State {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// A record over the largest the topics accept ([`crate::kafka::limits::record_limit`]).
    #[error("a record for {topic} is {bytes} bytes, over the {limit}-byte limit of the topics")]
    TooLarge {
        topic: String,
        bytes: usize,
        limit: usize,
    },
}

impl StageError {
    pub fn kafka(action: &'static str) -> impl FnOnce(KafkaError) -> StageError {
        move |source| StageError::Kafka { action, source }
    }

    pub fn store<E: std::error::Error + Send + Sync + 'static>(
        action: &'static str,
    ) -> impl FnOnce(E) -> StageError {
        move |source| StageError::Store {
            action,
            source: Box::new(source),
        }
    }
}

/// What to do about a stage error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The environment failed (a broker or ClickHouse away, a timeout): restart the stage from
    /// its committed offsets after a backoff; the work is done again.
    Retry,
    /// The input being handled cannot be turned into output (an output record over the
    /// producer's size limit): send the input to the dead-letter topic with the reason and go
    /// on, so one record never halts the stage. Outside the handling of one input, retried.
    DeadLetterInput,
    /// Retrying cannot help (a client that cannot even be configured): stop the stage and say
    /// why.
    Stop,
}

/// The one place that decides, per error, retry vs dead-letter the input vs stop.
pub fn decide(e: &StageError) -> Decision {
    match e {
        StageError::TooLarge { .. }
        | StageError::Kafka {
            source:
                KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize,
                ),
            ..
        } => Decision::DeadLetterInput,
        StageError::Kafka {
            source: KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_),
            ..
        } => Decision::Stop,
        _ => Decision::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_output_dead_letters_its_input_and_the_rest_is_retried() {
        let too_large = StageError::Kafka {
            action: "queue a record",
            source: KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
        };
        assert_eq!(decide(&too_large), Decision::DeadLetterInput);
        let over_topic_limit = StageError::TooLarge {
            topic: "t".into(),
            bytes: 2_000_000,
            limit: 1_000_000,
        };
        assert_eq!(decide(&over_topic_limit), Decision::DeadLetterInput);
        let away = StageError::Kafka {
            action: "deliver a record",
            source: KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
        };
        assert_eq!(decide(&away), Decision::Retry);
        let config = StageError::Kafka {
            action: "create a stage consumer",
            source: KafkaError::ClientCreation("bad option".into()),
        };
        assert_eq!(decide(&config), Decision::Stop);
    }
}
