//! gema: a streaming social-listening and sentiment pipeline on Kafka and ClickHouse.
//!
//! Stages talk only through Kafka topics (see `README.md` for the data flow):
//! connectors → `mentions.raw` → [`enrich`] → `mentions.enriched` → [`store`] (ClickHouse).

pub mod mention;
pub mod sentiment;
