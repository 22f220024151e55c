//! The one stage runner: every stage's Kafka loop, written once.
//!
//! A stage supplies a [`Handler`] (what to do with one message, at the end of a batch, on a timer
//! and at shutdown); [`run`] owns the rest: the consumer in the stage's group, batching, the
//! producer and its full queue, delivery acknowledgements, storing offsets only once everything
//! derived from their messages is acknowledged or written, the commit on shutdown, and the dead
//! letter for an input the stage rejects. [`supervise`] restarts a failed stage with a backoff
//! that resets after a healthy spell, and [`decide`] is the one place that says, per error,
//! whether to retry, dead-letter the input or stop.

pub mod changelog;
mod error;
pub mod memory;
mod output;
mod run;
pub mod state;
mod supervise;

pub use error::{decide, Decision, StageError};
pub use output::Output;
pub use run::{dead_letter, run, BatchPolicy, HandleError, Handler, Io, Origin, Reject, Settled};
pub use supervise::{supervise, HEALTHY_AFTER};
