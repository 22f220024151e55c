//! Text handling shared by the enrich stage and the sentiment models: language identification
//! (a fastText reader and the lid.176 model),
//! normalisation of social text, and deterministic hashing for word tables and feature buckets.

pub mod fasttext;
pub mod hash;
pub mod lang;
pub mod normalize;
