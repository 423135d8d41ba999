//! Alert delivery: every record (event, alert, metric) goes to every configured output.
//!
//! Outputs (`--output SPEC`, see [`OutputSpec`]):
//! - `stdout` and `file:PATH` write one JSON object per line. Each has its own writer thread
//!   fed by a bounded channel: when the reader or the disk is slow, [`OutputHub::send`] waits
//!   (backpressure) rather than dropping. Lines already queued are written together and
//!   flushed at once, so `monitor run | jq` sees every record as soon as it exists. Files are
//!   opened in append mode (created `0640`, as command lines may hold secrets) and reopened
//!   by [`OutputHub::reopen_files`] (SIGHUP, for logrotate).
//! - `syslog` (the local daemon's socket, `/dev/log`), `syslog+udp://HOST:PORT`,
//!   `syslog+tcp://HOST:PORT` (RFC 6587 octet counting), `syslog+tls://HOST:PORT` (RFC
//!   5425), `syslog+relp://HOST:PORT` and `syslog+relp+tls://HOST:PORT` (RELP: every
//!   message acknowledged by the collector). See [`syslog`] for the framing,
//!   facility, severity, size limit, queue, spool and what "no loss" means per transport.
//!
//! One failing output does not stop the others: a file that cannot be written counts the
//! error, logs it (at most every 10 s) and retries opening on the next record; a syslog
//! output that cannot deliver queues and spools.

pub mod event_id;
mod file;
mod hub;
mod line;
mod output_record;
mod spec;
mod stdout;
pub mod syslog;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

pub use hub::{OutputHub, OutputStats, SinkStats};
pub use output_record::{OutputRecord, RecordKind};
pub use spec::{OutputSpec, OutputSpecError};
pub use syslog::format::{Facility, SyslogFormat};
pub use syslog::tls::{TlsSettings, TlsSetupError};

/// How outputs behave. `Default` gives the documented defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputConfig {
    /// Syslog message format. `None` (the default): RFC 5424 for `syslog+udp`/`syslog+tcp`,
    /// and the traditional local RFC 3164 form (`<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG`, no
    /// hostname) for the local socket, because the local daemons read only that form there
    /// (rsyslog's imuxsock with its default parser, systemd-journald). `Some(f)` forces `f`
    /// on every syslog output.
    pub syslog_format: Option<SyslogFormat>,
    /// Syslog facility. Default `authpriv` (10): the records carry command lines, which can
    /// hold credentials, and distributions route `authpriv` to a root-only file
    /// (`/var/log/auth.log` on Debian/Ubuntu, `/var/log/secure` on RHEL) and keep it out of
    /// the world-readable general log (`*.*;auth,authpriv.none`).
    pub facility: Facility,
    /// APP-NAME (RFC 5424) and TAG (RFC 3164). Default `monitor`.
    pub app_name: String,
    /// HOSTNAME in the syslog header. Default: this machine's host name (gethostname).
    pub hostname: Option<String>,
    /// SD-ID of the structured-data element. Default `monitor@32473` (32473 is the private
    /// enterprise number RFC 5612 reserves for documentation; use your own PEN if you have
    /// one).
    pub sd_id: String,
    /// The local syslog socket for the `syslog` output. Default `/dev/log`.
    pub local_socket: PathBuf,
    /// Largest syslog message (header, structured data and JSON) in bytes, 2048 to 1 MiB
    /// (datagram outputs use at most 65,000).
    /// Default 8000: a little under rsyslog's default `maxMessageSize` (8096 bytes, the
    /// smallest default among common receivers; syslog-ng's is 64 KiB), leaving room for a
    /// relay that rewrites the header. A receiver cuts a longer message, and over TCP
    /// rsyslog even reads the rest as a second message, so records that do not fit are
    /// shortened into valid JSON here instead (see [`syslog`]). Raise it together with the
    /// receiver's limit to keep more of very long command lines.
    pub max_message_bytes: usize,
    /// Records each syslog output holds in memory while its receiver is down or slow
    /// before writing them to the spool. Default 1024.
    pub queue_capacity: usize,
    /// Spool directory; each syslog output gets a subdirectory named after it. Default
    /// `/var/spool/monitor`.
    pub spool_dir: PathBuf,
    /// Spool size limit per syslog output, in bytes. Default 256 MiB. Past it, new records
    /// are dropped, counted (`dropped`) and logged.
    pub spool_max_bytes: u64,
    /// How often the spool's newest segment is fsync'ed while records are spooled. Default
    /// 1 s; zero syncs after every write. Records are written (not synced) to the spool file
    /// at once, so a crash of the monitor alone loses nothing spooled; a power loss can lose
    /// up to this interval of spooled records.
    pub spool_fsync_interval: Duration,
    /// Reconnect backoff: first delay, doubled per failure up to `reconnect_max`.
    /// Defaults 100 ms and 5 s.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// TCP connect timeout. Default 5 s.
    pub connect_timeout: Duration,
    /// Records each stdout/file writer thread holds before `send` waits. Default 1024.
    pub line_queue_capacity: usize,
    /// TLS of `syslog+tls://` and `syslog+relp+tls://` (`[output.tls]`): CA (default the
    /// system trust store), client certificate and key, server name.
    pub tls: TlsSettings,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            syslog_format: None,
            facility: Facility::AuthPriv,
            app_name: "monitor".into(),
            hostname: None,
            sd_id: "monitor@32473".into(),
            local_socket: PathBuf::from("/dev/log"),
            max_message_bytes: 8000,
            queue_capacity: 1024,
            spool_dir: PathBuf::from("/var/spool/monitor"),
            spool_max_bytes: 256 * 1024 * 1024,
            spool_fsync_interval: Duration::from_secs(1),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            line_queue_capacity: 1024,
            tls: TlsSettings::default(),
        }
    }
}

/// Smallest `max_message_bytes`: RFC 5426 asks receivers to accept 2048-octet messages, and
/// a record shortened to the essentials still fits.
pub const MIN_MESSAGE_BYTES: usize = 2048;
/// Largest `max_message_bytes`. UDP and unix datagram outputs use at most 65,000 whatever
/// the setting (a datagram's limit); TCP uses the setting.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

impl OutputConfig {
    /// Checks the values that would otherwise fail later, naming the field.
    pub fn validate(&self) -> Result<(), OutputError> {
        let bad = |field: &'static str, reason: String| Err(OutputError::Config { field, reason });
        if !(MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES).contains(&self.max_message_bytes) {
            return bad(
                "max_message_bytes",
                format!(
                    "{} is outside {MIN_MESSAGE_BYTES}..={MAX_MESSAGE_BYTES}",
                    self.max_message_bytes
                ),
            );
        }
        if self.queue_capacity == 0 {
            return bad("queue_capacity", "must be at least 1".into());
        }
        if self.line_queue_capacity == 0 {
            return bad("line_queue_capacity", "must be at least 1".into());
        }
        if self.spool_max_bytes < self.max_message_bytes as u64 * 4 {
            return bad(
                "spool_max_bytes",
                format!(
                    "{} cannot hold even four records of max_message_bytes ({})",
                    self.spool_max_bytes, self.max_message_bytes
                ),
            );
        }
        if self.reconnect_min.is_zero() || self.reconnect_max < self.reconnect_min {
            return bad(
                "reconnect_min/reconnect_max",
                format!(
                    "need 0 < reconnect_min <= reconnect_max, got {:?} and {:?}",
                    self.reconnect_min, self.reconnect_max
                ),
            );
        }
        if let Err(reason) = syslog::format::check_sd_id(&self.sd_id) {
            return bad("sd_id", reason);
        }
        if self.app_name.is_empty() {
            return bad("app_name", "must not be empty".into());
        }
        Ok(())
    }
}

#[derive(Debug, Error)]
pub enum OutputError {
    #[error("invalid output setting `{field}`: {reason}")]
    Config { field: &'static str, reason: String },
    #[error("output `{0}` is given twice; give each output once")]
    Duplicate(String),
    #[error("no output given; give at least one --output")]
    NoOutputs,
    #[error(
        "cannot open output file {path}: {source}; check that the directory exists and is writable"
    )]
    OpenFile { path: PathBuf, source: io::Error },
    #[error(
        "cannot use spool directory {dir} for output `{output}`: {source}; set a writable spool directory"
    )]
    Spool {
        output: String,
        dir: PathBuf,
        source: io::Error,
    },
    #[error(
        "spool directory {dir} for output `{output}` is locked by another monitor process; give each instance its own spool directory"
    )]
    SpoolLocked { output: String, dir: PathBuf },
    #[error("output `{output}`: {source}")]
    Tls {
        output: String,
        source: TlsSetupError,
    },
    #[error("cannot start the writer thread for output `{output}`: {source}")]
    Thread { output: String, source: io::Error },
    #[error("output `{output}` did not finish within the shutdown deadline: {detail}")]
    Shutdown { output: String, detail: String },
}

/// Rate limit for repeated log lines: at most one per `every`, reporting how many events
/// were behind it.
pub(crate) struct LogEvery {
    every: Duration,
    state: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

impl LogEvery {
    pub fn new(every: Duration) -> Self {
        LogEvery {
            every,
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    /// Counts `n` events; returns the count since the last log line when it is time for one.
    pub fn ready(&self, n: u64) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.1 += n;
        let now = std::time::Instant::now();
        if s.0
            .is_none_or(|last| now.duration_since(last) >= self.every)
        {
            s.0 = Some(now);
            Some(std::mem::take(&mut s.1))
        } else {
            None
        }
    }

    /// The next event logs at once.
    pub fn reset(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *s = (None, 0);
    }
}
