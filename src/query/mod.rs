//! Read-side queries over ClickHouse for the CLI (and later the HTTP API). Every value from a
//! user is bound on the client with `?`, never pasted into SQL.

pub mod alerts;
pub mod corrections;
pub mod headline;
pub mod incidents;
pub mod mentions;
pub mod table;
pub mod time;
pub mod timeline;
pub mod trends;
