//! DNS attribution: kernel-captured answers (`monitor_common::DnsEvent`) become DNS query
//! records, and connection records get the name their process asked for.
//!
//! - `parse`: the answer's bytes through `simple-dns`, to a `DnsQuery` (names as safe text,
//!   the addresses of the name asked through its CNAME chain).
//! - `table`: the bounded per-process and host-wide tables (address → name asked).
//! - `testing`: DNS answers as bytes, for tests and fuzz seeds.
//!
//! `record_of` turns a kernel answer into a record, enriched like a connection to the server
//! (the process that asked, or the host when the asker is unknown); the pipeline feeds such
//! records to `table` and fills `destination.domain` on the connections after them, in
//! replay exactly as live.

pub mod parse;
pub mod table;
#[doc(hidden)]
pub mod testing;

use std::sync::Arc;

use monitor_common::{ConnectEvent, DnsEvent, dns_flag, hook};

pub use parse::{DnsParseError, parse_answer};
pub use table::{AttributionStats, NameTables};

use crate::process::ProcessTable;
use crate::record::{ConnectionRecord, Timestamp};

/// What became of the kernel's answers (metric records, `monitor.stats.dns`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DnsStats {
    /// Answers parsed into DNS query records.
    pub answers: u64,
    /// Answers whose copy was cut (the bound, a non-linear packet, a TCP message split over
    /// segments), or truncated by the server (TC): skipped.
    pub truncated: u64,
    /// Answers `simple-dns` refused (bad labels, compression loops, counts past the end ...),
    /// or without a question: skipped.
    pub malformed: u64,
    /// Queries arriving from port 53 (a DNS server here talking to another): skipped.
    pub not_answers: u64,
}

impl DnsStats {
    fn count(&mut self, err: &DnsParseError) {
        match err {
            DnsParseError::Truncated { .. } | DnsParseError::TruncatedByServer => {
                self.truncated += 1
            }
            DnsParseError::Malformed(_) | DnsParseError::NoQuestion => self.malformed += 1,
            DnsParseError::NotAnAnswer => self.not_answers += 1,
        }
    }
}

/// A kernel DNS answer as a DNS query record, or `None` (counted in `stats`) when it is not
/// a usable answer.
pub fn record_of(
    ev: &DnsEvent,
    ts: Timestamp,
    table: &mut ProcessTable,
    host: &Arc<str>,
    stats: &mut DnsStats,
) -> Option<ConnectionRecord> {
    let len = (ev.payload_len as usize).min(ev.payload.len());
    let query = match parse_answer(
        &ev.payload[..len],
        ev.flags & dns_flag::TCP != 0,
        ev.flags & dns_flag::CUT != 0,
    ) {
        Ok(q) => q,
        Err(e) => {
            stats.count(&e);
            tracing::debug!(error = %e, tgid = ev.tgid, "DNS answer skipped");
            return None;
        }
    };
    stats.answers += 1;
    // Enriched as a connection of the asking process to the server, so the record carries
    // the same process fields as its connections.
    let as_connect = ConnectEvent {
        kind: monitor_common::kind::CONNECT,
        hook: if ev.family == monitor_common::AF_INET6 {
            hook::UDP_SEND_V6
        } else {
            hook::UDP_SEND_V4
        },
        ktime_ns: ev.ktime_ns,
        tgid: ev.tgid,
        tid: ev.tid,
        uid: ev.uid,
        gid: ev.gid,
        cgroup_id: ev.cgroup_id,
        start_time_ns: ev.start_time_ns,
        suppressed: 0,
        family: ev.family,
        protocol: ev.protocol,
        _pad0: 0,
        sport: ev.local_port,
        dport: ev.server_port,
        backend: ev.backend,
        saddr: ev.local,
        daddr: ev.server,
        comm: ev.comm,
        conn_id: 0,
    };
    let mut rec = if ev.flags & dns_flag::OWNER_KNOWN != 0 {
        table.enrich(&as_connect, ts, host)
    } else {
        table.enrich_unknown(&as_connect, ts, host)
    };
    // The local address is not read in the kernel: only the port is known.
    rec.source = None;
    rec.dns = Some(Arc::new(query));
    Some(rec)
}
