//! gema: a streaming social-listening and sentiment pipeline on Kafka and ClickHouse.
//!
//! Stages talk only through Kafka topics (see `README.md` for the data flow):
//! connectors ([`sources`]) → `mentions.raw` → [`enrich`] → `mentions.enriched` → [`store`]
//! (ClickHouse) → [`query`].

pub mod alerts;
pub mod config;
pub mod display;
pub mod enrich;
pub mod kafka;
pub mod mention;
pub mod metrics;
pub mod pipeline;
pub mod query;
pub mod report;
pub mod runner;
pub mod sentiment;
pub mod server;
pub mod setting;
pub mod sources;
pub mod store;
pub mod text;
pub mod tracked;
pub mod trends;
