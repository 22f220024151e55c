//! Alerts: the rules that raise them, the router that keeps them few and useful, and their
//! delivery (Kafka, ClickHouse through the sink, webhooks).

pub mod alert;
pub mod config;
pub mod incident;
pub mod router;
pub mod rules;
pub mod stage;
pub mod trend;
pub mod webhook;

pub use alert::{Alert, AlertKind, Sample, Severity};
pub use config::AlertsConfig;
pub use incident::{Incident, IncidentStatus};
