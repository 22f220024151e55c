//! Text handling shared by the enrich stage and the sentiment models: language identification,
//! normalisation of social text, and deterministic hashing for word tables and feature buckets.

pub mod hash;
pub mod lang;
pub mod normalize;
