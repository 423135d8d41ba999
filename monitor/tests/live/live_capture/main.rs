//! Live capture, as root, at two levels: `kernel` drives the capture library alone
//! (`monitor::capture::Capture`: raw kernel events, backends per hook, UDP flood suppression,
//! wake-ups, detach) and `daemon` the real `monitor run --events` (records field by field for
//! curl and python3 over IPv4 and IPv6, to loopback and a network-namespace host).
//!
//! Run: `sudo -E cargo test --release -p monitor --features host-tests --test live_capture --
//! --test-threads=1`. A test that cannot run (not root, a program missing) fails with the
//! reason; none passes silently.

#[path = "../common/mod.rs"]
mod common;
mod daemon;
mod kernel;
