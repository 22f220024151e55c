//! The enrich stage: `mentions.raw` → parse and validate → language, sentiment, entities →
//! `mentions.enriched`, or the dead-letter topic with the reason.

pub mod cascade;
pub mod config;
pub mod enricher;
pub mod extract;
pub mod stage;
pub mod stopwords;

pub use enricher::Enricher;
