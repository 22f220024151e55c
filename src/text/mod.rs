//! Text handling shared by the enrich stage and the sentiment models: deterministic hashing for
//! word tables and feature buckets.

pub mod hash;
