//! ClickHouse: connection and server-version detection, migrations, the mentions sink, queries.

pub mod client;
pub mod migrate;
pub mod rollup;
pub mod row;
pub mod sink;

pub use client::{connect, Store};
