//! The monitor's user side, as a library so integration tests and benchmarks drive the same
//! pipeline the binary runs.
//!
//! Data flows one way: a source (`capture` live, `replay` from JSON lines) yields
//! `ConnectionRecord`s (`record`), enriched by `process` when live; `pipeline` runs the rules
//! (`rules`) and detectors (`detect`) on them, with `dns` naming destinations; `output`
//! delivers events, alerts and `metrics`; `replay` reads recorded files (through memory
//! maps) and runs them through the pipeline as the `replay` command; `arc_slots` are the
//! caches keyed by a shared value. `daemon` wires the live path, `cli` and `config` say how it is set up, and
//! `privileges` sheds capabilities after attach.

pub(crate) mod arc_slots;
pub mod capture;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod dns;
#[doc(hidden)]
pub mod fuzzing;
pub mod lifecycle;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod privileges;
pub mod process;
pub mod record;
pub mod replay;
pub mod rules;
