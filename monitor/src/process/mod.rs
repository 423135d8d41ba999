//! Process tracking and enrichment: who made each connection.
//!
//! `ProcessTable` keeps the processes alive on the host, learned from the kernel's exec and
//! exit events (so a process that exits in milliseconds, like curl, still has its
//! executable, command line and parent) and from /proc at start-up. `enrich` turns a
//! `ConnectEvent` into a `ConnectionRecord` with hash lookups only; /proc is read once per
//! process the table did not know, and the result cached in bounded maps.
//!
//! - `table`: `ProcessTable` and its configuration and counters.
//! - `kernel_fields`: checked decoding of kernel bytes (addresses, argv, comm).
//! - `hash`: SHA-256 of executables, in a worker thread.
//! - `procfs`: bounded readers for /proc/PID/*.
//! - `users`: uid -> name from /etc/passwd.
//! - `nameservers`: the host's configured DNS servers, from /etc/resolv.conf.
//! - `container`: container id from the cgroup path.

mod container;
mod hash;
mod kernel_fields;
mod nameservers;
mod procfs;
mod table;
mod users;

#[cfg(test)]
mod tests;

pub use container::{CgroupMatch, container_id_from_cgroup, container_id_from_path};
pub use hash::HashConfig;
pub use kernel_fields::{ConnectAddrs, ConnectFieldError, decode_connect, probe_name};
pub use nameservers::{Nameservers, parse_resolv_conf};
pub use table::{ProcessStats, ProcessTable, ProcessTableConfig};
