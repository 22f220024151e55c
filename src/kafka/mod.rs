//! Kafka plumbing shared by every stage: topic names, client construction, offset tracking.

pub mod client;
pub mod delivery;
pub mod lag;
pub mod offsets;
pub mod progress;
pub mod topics;

pub use client::{consumer, producer, stage_clients};
pub use offsets::OffsetTracker;
pub use topics::Topics;
