//! Empty library target: it lets `monitor/build.rs` declare a build-dependency on this crate,
//! so cargo rebuilds the monitor when the programs change.
#![no_std]
