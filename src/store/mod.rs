//! ClickHouse: connection and server-version detection, migrations, the sinks, rollups.

pub mod client;
pub mod config;
pub mod failover;
pub mod keys;
pub mod migrate;
pub mod rollup;
pub mod row;
pub mod sink;

pub use client::{connect, Store};
