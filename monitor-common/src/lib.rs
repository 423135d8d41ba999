//! Types shared by the kernel programs (`monitor-ebpf`) and user space (`monitor`).
//!
//! Every type that crosses the ring buffer or a map is `#[repr(C)]`, holds only fixed-width
//! integers and byte arrays, has explicit padding fields, and has its size pinned by a
//! `const` assert so that a change on one side cannot silently desynchronise the other.
//! User space decodes discriminants with checked conversions (`TryFrom`), never by
//! transmuting kernel bytes into enums or bools.
#![no_std]

pub mod config;
pub mod event;

pub use config::*;
pub use event::*;
