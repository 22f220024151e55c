//! Alerts: the rules that raise them, the router that keeps them few and useful, and their
//! delivery (Kafka, ClickHouse through the sink, webhooks).

pub mod alert;
pub mod router;
pub mod rules;
pub mod webhook;

pub use alert::{Alert, AlertKind, Sample, Severity};
