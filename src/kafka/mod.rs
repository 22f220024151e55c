//! Kafka plumbing shared by every stage: topic and group names, client construction, offset
//! tracking, event-time progress, consumer lag, reading a topic to its end and the dead-letter
//! record format.

pub mod client;
pub mod config;
pub mod dlq;
pub mod lag;
pub mod limits;
pub mod offsets;
pub mod progress;
pub mod read;
pub mod topics;

pub use client::{consumer, producer};
pub use config::KafkaConfig;
pub use offsets::OffsetTracker;
pub use topics::{Group, Topics};
