//! Detectors that look across records rather than at one: the streaming beacon detector.
//!
//! - `beacon`: keys, their tables and eviction, scoring and alerts (`BeaconDetector`).
//! - `series`: one key's check-in history (intervals, destinations, fan-out).
//! - `beacon_config`: the `[beacon]` settings, their defaults and validation.
//! - `allowlist`: allowlist entries and the built-in list (`rules/beacon_allowlist.toml`).
//! - `periodicity`: the interval statistics a key is scored with.
//! - `sizes`: bytes per connection from close records, their statistics, and the join of a
//!   close to its connect's key.
//! - `simulate`: seeded, labelled traces for the evaluation in tests/beacon_eval.rs.

pub mod allowlist;
pub mod beacon;
pub mod beacon_config;
pub mod periodicity;
mod series;
#[cfg(any(test, feature = "test-support"))]
pub mod simulate;
pub mod sizes;

pub use beacon::{
    AllowEntry, AllowTransport, AllowedNet, BeaconConfig, BeaconConfigError, BeaconCounters,
    BeaconDetector,
};
