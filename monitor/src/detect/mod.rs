//! Detectors that look across records rather than at one: the streaming beacon detector.
//!
//! - `beacon`: keys, per-key check-in series, alerts (`BeaconDetector`, `BeaconConfig`).
//! - `periodicity`: the interval statistics a key is scored with.
//! - `simulate`: seeded, labelled traces for the evaluation in tests/beacon_eval.rs.

pub mod beacon;
pub mod periodicity;
pub mod simulate;

pub use beacon::{
    AllowEntry, AllowTransport, AllowedNet, BeaconConfig, BeaconConfigError, BeaconCounters,
    BeaconDetector,
};
