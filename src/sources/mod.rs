//! Where mentions come from: the synthetic feed generator, the file replayer and the RSS / Atom
//! connector (the webhook connector is `POST /api/ingest` in [`crate::server::ingest`]).

pub mod replay;
pub mod rss;
pub mod scenario;
pub mod synth;
