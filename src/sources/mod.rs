//! Where mentions come from: the synthetic feed generator and the file replayer.

pub mod replay;
pub mod scenario;
pub mod synth;
