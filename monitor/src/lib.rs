//! The monitor's user side, as a library so integration tests and benchmarks can drive the
//! same pipeline the binary runs.
//!
//! Data flows one way: a source (`capture` live, `replay` from JSON lines) yields
//! `ConnectionRecord`s; `pipeline` runs the rules (`rules`) and detectors (`detect`) on them;
//! `output` delivers events, alerts and metrics.

pub mod capture;
pub mod detect;
pub mod output;
pub mod pipeline;
pub mod process;
pub mod record;
pub mod replay;
pub mod rules;
