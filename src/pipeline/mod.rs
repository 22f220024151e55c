//! Assembling and running the pipeline: the library, not the binary, builds the stages and their
//! dependencies, so `gema run`, `gema serve --stages`, `gema demo`, `gema bench`,
//! `gema eval-trends` and the integration tests all call the same functions (as mini-redis's
//! binary and tests both call `server::run`).
//!
//! - [`start`](start()) / [`start_with`]: the chosen stages on tokio tasks, each under the
//!   runner's supervisor, returning a [`Running`] handle (metrics, topics, drain, stop).
//! - [`Namespace`]: a run's own topics, database and state directory, created and dropped in one
//!   place (demo, evaluation, benchmark, tests).
//! - [`wait_for_drain`]: every stage has committed all of its input.

mod drain;
mod namespace;
mod start;

pub use drain::{stage_groups, wait_for_drain};
pub use namespace::Namespace;
pub use start::{
    cancel_on_signal, enricher, migrate, sentiment_model, start, start_with, trend_state, Migrated,
    Parts, PipelineError, Running, Stage,
};
