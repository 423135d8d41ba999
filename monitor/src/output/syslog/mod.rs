//! Syslog outputs: `syslog` (the local daemon), `syslog+udp://HOST:PORT`,
//! `syslog+tcp://HOST:PORT`, `syslog+tls://HOST:PORT` (RFC 5425: the TCP framing over TLS,
//! see [`tls`]), `syslog+relp://HOST:PORT` and `syslog+relp+tls://HOST:PORT` (RELP, see
//! [`relp`]).
//!
//! # Messages
//! RFC 5424 (default for UDP and TCP):
//! `<PRI>1 TIMESTAMP HOSTNAME monitor PID KIND [monitor@32473 kind=".." level=".."
//! severity=".." rule_id=".." technique="T1571,.." pid=".." process=".." executable=".."
//! dst_ip=".." dst_port=".." transport=".."] {JSON record}`.
//! TIMESTAMP is the record's own time (UTC, microseconds), so a record delivered late from
//! the spool keeps its time; KIND (MSGID) is `event`, `alert` or `metric`; parameters that
//! do not apply are left out. The MSG is the JSON record, the same as the stdout line, with
//! no BOM.
//!
//! RFC 3164: `<PRI>Mmm dd hh:mm:ss HOSTNAME monitor[PID]: {JSON record}` (local time), and
//! on the local socket without HOSTNAME, as syslog(3) writes it; that is also the default
//! there, as the local daemons do not parse RFC 5424 on that socket.
//!
//! PRI is facility * 8 + severity. Facility: `OutputConfig::facility`, default `authpriv`
//! (see there why). Severity: critical alerts 2 (crit), high 3 (err), medium 4 (warning),
//! low 5 (notice), informational 6 (info); events and metrics 6 (info).
//!
//! # Escaping
//! Command lines and process names are attacker-controlled. The JSON is written by
//! serde_json, which escapes `"`, `\` and every control character (newline, CR, NUL, ...),
//! and invalid UTF-8 is already `\xNN` text (`record::text_from_bytes`); so the MSG holds no
//! byte below 0x20 and cannot end a line, a datagram's record or an octet-counted frame
//! early. Structured-data values escape `"`, `\` and `]` as RFC 5424 requires, and write
//! control characters (and Unicode line separators and bidi overrides) as `\xNN` /
//! `\u{NNNN}` text. Header fields keep printable ASCII only.
//!
//! # Size limit
//! A message is at most `OutputConfig::max_message_bytes` (default 8000, under rsyslog's
//! default limit of 8096; rsyslog cuts longer ones, and over TCP reads the rest as another
//! message). A record that does not fit is shortened into valid JSON, longest strings first
//! (command lines), and carries `monitor.truncated: true` and `monitor.original_bytes`; see
//! [`fit`]. Structured-data values are cut at 128 bytes (ending `...`), and the element is
//! kept under a quarter of the limit. stdout and file outputs always get the full record.
//!
//! # Delivery, queue and spool
//! Each syslog output has its own delivery task. [`crate::output::OutputHub::send`] never
//! waits for a receiver: records go to a bounded memory queue
//! (`OutputConfig::queue_capacity`); when it is full, or while anything is spooled, they go
//! to the output's on-disk spool (`spool_dir/<output>`, see [`spool`]), which is delivered
//! in order when the receiver is back and survives restarts (it is delivered first at the
//! next start). Reconnects back off from `reconnect_min` (100 ms) doubling to
//! `reconnect_max` (5 s). Only when the spool reaches `spool_max_bytes` are new records
//! dropped; they are counted (`SinkStats::dropped`, for the metric records) and logged at
//! error level. At shutdown the task delivers until the deadline; what is still in memory is
//! then written to the front of the spool.
//!
//! What "delivered" means per transport:
//! - RELP: a message counts as sent when the collector's `rsp 200` for it came back; the
//!   batch's unacknowledged rest goes back to the front of memory or the spool and is sent
//!   again, in order, on the next session. Nothing is lost; a message the collector stored
//!   but could not acknowledge (it crashed, the connection dropped) arrives twice, with the
//!   same `event.id`. This is the transport to use when every alert counts.
//! - TLS: as TCP; a batch counts once rustls has flushed it to the socket.
//! - TCP (and a stream unix socket): a message counts as sent once the kernel has taken it
//!   whole. Before each batch the socket is checked for the receiver's close or reset
//!   (a zero-byte `MSG_PEEK` read), so a receiver that stopped is noticed before anything
//!   is written into the dead connection; a write error counts the cut message and those
//!   after it as not sent. What remains possible: a receiver that dies after the check with
//!   a batch in its socket buffer loses that batch, and a batch cut by a failing write may
//!   arrive once in part and then again whole.
//! - Unix datagram (`/dev/log`): a datagram is either queued at the daemon's socket or the
//!   send fails (the daemon is down: it is kept and retried), so nothing is lost in
//!   transit; the daemon itself may rate-limit (journald's `RateLimitBurst`).
//! - UDP: best effort. The only failure a sender sees is an ICMP error reported on the
//!   *next* send (ECONNREFUSED), so while a receiver is down, the datagram sent just before
//!   each error is lost (one per retry: at most one every `reconnect_max` once the backoff
//!   has grown); the failed ones are kept and re-sent. Loss in the network, and a burst of
//!   backlog overflowing the receiver's socket buffer, are never seen.

pub mod fit;
pub mod format;
pub(crate) mod relp;
pub(crate) mod sink;
pub mod spool;
pub mod tls;
pub(crate) mod transport;
