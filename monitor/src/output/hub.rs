//! `OutputHub`: every record to every output.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::file::FileSink;
use super::line::LineSink;
use super::output_record::OutputRecord;
use super::spec::OutputSpec;
use super::stdout::StdoutTarget;
use super::syslog::format::{Framer, SyslogFormat};
use super::syslog::sink::SyslogSink;
use super::syslog::tls::TlsClient;
use super::syslog::transport::{MAX_DATAGRAM, Target};
use super::{OutputConfig, OutputError};

/// Counters of one output, for metric records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    /// The output as given (`stdout`, `file:/var/log/m.json`, `syslog+tcp://h:514`).
    pub output: String,
    /// Records written (stdout, file) or handed to the kernel whole (syslog). Total.
    pub sent: u64,
    /// Records waiting in memory now.
    pub queued: u64,
    /// Records written to the spool. Total.
    pub spooled: u64,
    /// Records waiting in the spool now, and their bytes.
    pub spool_records: u64,
    pub spool_bytes: u64,
    /// Records lost: spool full or unwritable, damaged spool records, failed file or stdout
    /// writes. Total.
    pub dropped: u64,
    /// Failed connects, sends and writes. Total.
    pub errors: u64,
    /// Records shortened to fit the syslog message size limit. Total.
    pub truncated: u64,
    /// The last write error of a stdout or file output (not in metric records: the log
    /// has it).
    #[serde(skip)]
    pub last_error: Option<String>,
}

/// Counters of every output, in the order they were given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OutputStats {
    pub outputs: Vec<SinkStats>,
}

impl OutputStats {
    /// Records lost over all outputs.
    pub fn dropped(&self) -> u64 {
        self.outputs.iter().map(|s| s.dropped).sum()
    }
}

enum Sink {
    Line(LineSink),
    Syslog(SyslogSink),
}

/// Sends every record to every configured output. One output failing (a file on a full
/// disk, a syslog receiver that is down) does not hold up or stop the others, except that
/// stdout and file outputs apply backpressure when their reader or disk is slow.
pub struct OutputHub {
    sinks: Vec<Sink>,
    /// Bumped by `reopen_files`; records carry it so each lands in the file that was
    /// current when it was sent.
    generation: AtomicU64,
}

impl OutputHub {
    /// Opens every output: files are opened (a wrong path fails here), spools are opened and
    /// locked, delivery tasks start. Must run inside a tokio runtime. Syslog receivers need
    /// not be reachable yet.
    pub async fn open(specs: &[OutputSpec], cfg: &OutputConfig) -> Result<OutputHub, OutputError> {
        cfg.validate()?;
        if specs.is_empty() {
            return Err(OutputError::NoOutputs);
        }
        let mut seen = HashSet::new();
        for s in specs {
            if !seen.insert(s) {
                return Err(OutputError::Duplicate(s.to_string()));
            }
        }
        let hostname = cfg.hostname.clone().unwrap_or_else(system_hostname);
        let mut sinks = Vec::with_capacity(specs.len());
        // One TLS client configuration for every TLS output, built at the first.
        let mut tls: Option<TlsClient> = None;
        for spec in specs {
            let name = spec.to_string();
            let sink = match spec {
                OutputSpec::Stdout => Sink::Line(LineSink::start(
                    name,
                    Box::new(StdoutTarget::new()),
                    cfg.line_queue_capacity,
                )?),
                OutputSpec::File(path) => {
                    let file = FileSink::open(path).map_err(|source| OutputError::OpenFile {
                        path: path.clone(),
                        source,
                    })?;
                    Sink::Line(LineSink::start(
                        name,
                        Box::new(file),
                        cfg.line_queue_capacity,
                    )?)
                }
                OutputSpec::Syslog
                | OutputSpec::SyslogUdp { .. }
                | OutputSpec::SyslogTcp { .. }
                | OutputSpec::SyslogTls { .. }
                | OutputSpec::SyslogRelp { .. } => {
                    let (target, local) = match spec {
                        OutputSpec::SyslogUdp { host, port } => (
                            Target::Udp {
                                host: host.clone(),
                                port: *port,
                            },
                            false,
                        ),
                        OutputSpec::SyslogTcp { host, port } => (
                            Target::Tcp {
                                host: host.clone(),
                                port: *port,
                            },
                            false,
                        ),
                        OutputSpec::SyslogTls { host, port } => (
                            Target::Tls {
                                host: host.clone(),
                                port: *port,
                                tls: tls_client(&mut tls, cfg, &name)?,
                            },
                            false,
                        ),
                        OutputSpec::SyslogRelp { host, port, tls: t } => (
                            Target::Relp {
                                host: host.clone(),
                                port: *port,
                                tls: if *t {
                                    Some(tls_client(&mut tls, cfg, &name)?)
                                } else {
                                    None
                                },
                            },
                            false,
                        ),
                        _ => (Target::Unix(cfg.local_socket.clone()), true),
                    };
                    let format = cfg.syslog_format.unwrap_or(if local {
                        SyslogFormat::Rfc3164
                    } else {
                        SyslogFormat::Rfc5424
                    });
                    let max_message = match target {
                        Target::Tcp { .. } | Target::Tls { .. } | Target::Relp { .. } => {
                            cfg.max_message_bytes
                        }
                        _ => cfg.max_message_bytes.min(MAX_DATAGRAM),
                    };
                    let framer = Framer::new(
                        format,
                        local,
                        cfg.facility,
                        &hostname,
                        &cfg.app_name,
                        &cfg.sd_id,
                        max_message,
                    );
                    let dir = cfg.spool_dir.join(spool_key(spec));
                    tracing::debug!(output = %name, format = %framer.format(), spool = %dir.display(), "syslog output");
                    Sink::Syslog(SyslogSink::start(name, target, framer, cfg, &dir)?)
                }
            };
            sinks.push(sink);
        }
        Ok(OutputHub {
            sinks,
            generation: AtomicU64::new(0),
        })
    }

    /// Sends `rec` to every output. Syslog outputs take it at once (memory queue or spool;
    /// a record is lost only when a spool is full, and that is counted and logged); stdout
    /// and file outputs wait while their queue is full.
    pub async fn send(&self, rec: OutputRecord) {
        for sink in &self.sinks {
            if let Sink::Syslog(s) = sink {
                s.push(&rec);
            }
        }
        let generation = self.generation.load(Ordering::Acquire);
        for sink in &self.sinks {
            if let Sink::Line(l) = sink {
                l.send(rec.clone(), generation).await;
            }
        }
    }

    /// Sends `recs` to every output, in order, as `send` would one by one, but handing
    /// them to each stdout/file writer as one message: one wake-up of its thread for the
    /// lot. The message takes one slot of the writer's queue however many records it holds,
    /// so a caller sending batches of N records opens the hub with `line_queue_capacity`
    /// scaled down by N to keep the same bound on records held in memory.
    pub async fn send_all(&self, recs: Vec<OutputRecord>) {
        for sink in &self.sinks {
            if let Sink::Syslog(s) = sink {
                for rec in &recs {
                    s.push(rec);
                }
            }
        }
        let generation = self.generation.load(Ordering::Acquire);
        let lines: Vec<&LineSink> = self
            .sinks
            .iter()
            .filter_map(|s| match s {
                Sink::Line(l) => Some(l),
                Sink::Syslog(_) => None,
            })
            .collect();
        if let Some((last, rest)) = lines.split_last() {
            for l in rest {
                l.send_all(recs.clone(), generation).await;
            }
            last.send_all(recs, generation).await;
        }
    }

    /// Reopens file outputs (SIGHUP after logrotate moved them). Records sent before this
    /// call go to the old file, records sent after it to the new one.
    pub fn reopen_files(&self) {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        for sink in &self.sinks {
            if let Sink::Line(l) = sink {
                l.reopen(generation);
            }
        }
    }

    pub fn stats(&self) -> OutputStats {
        OutputStats {
            outputs: self
                .sinks
                .iter()
                .map(|s| match s {
                    Sink::Line(l) => l.stats(),
                    Sink::Syslog(s) => s.stats(),
                })
                .collect(),
        }
    }

    /// Names of the outputs, in order.
    pub fn outputs(&self) -> Vec<String> {
        self.sinks
            .iter()
            .map(|s| match s {
                Sink::Line(l) => l.name().to_string(),
                Sink::Syslog(s) => s.name().to_string(),
            })
            .collect()
    }

    /// Delivers what every output still holds, for at most `deadline`; syslog records not
    /// delivered by then stay in the spool for the next start. Errors name the output that
    /// could not finish (a blocked stdout reader, a spool that could not be written).
    pub async fn shutdown(self, deadline: Duration) -> Result<(), OutputError> {
        self.close(deadline).await.map(|_| ())
    }

    /// `shutdown`, then the outputs' final counters: what a caller that must not end quietly
    /// after a lost record (replay) checks.
    pub async fn close(self, deadline: Duration) -> Result<OutputStats, OutputError> {
        let at = tokio::time::Instant::now() + deadline;
        let mut tasks = tokio::task::JoinSet::new();
        let mut finals = Vec::with_capacity(self.sinks.len());
        for sink in self.sinks {
            match sink {
                Sink::Line(l) => {
                    finals.push(FinalStats::Line(l.stats_handle()));
                    tasks.spawn(l.shutdown(at))
                }
                Sink::Syslog(s) => {
                    finals.push(FinalStats::Syslog(s.stats_handle()));
                    tasks.spawn(s.shutdown(at))
                }
            };
        }
        let mut first = None;
        while let Some(r) = tasks.join_next().await {
            let r = r.unwrap_or_else(|e| {
                Err(OutputError::Shutdown {
                    output: "output".into(),
                    detail: format!("shutdown task failed: {e}"),
                })
            });
            if let Err(e) = r {
                tracing::error!(error = %e, "output shutdown");
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(OutputStats {
                outputs: finals.into_iter().map(FinalStats::read).collect(),
            }),
        }
    }
}

/// Where an output's counters are read once it has shut down (final then).
enum FinalStats {
    Line(super::line::StatsHandle),
    Syslog(super::syslog::sink::SyslogStatsHandle),
}

impl FinalStats {
    fn read(self) -> SinkStats {
        match self {
            FinalStats::Line(h) => h.stats(),
            FinalStats::Syslog(h) => h.stats(),
        }
    }
}

/// Spool subdirectory of a syslog output: its spec with anything but letters, digits and
/// `.+-` replaced, e.g. `syslog+tcp_127.0.0.1_514`.
/// The TLS client of the TLS outputs, built once from `cfg.tls`; an error names the output.
fn tls_client(
    tls: &mut Option<TlsClient>,
    cfg: &OutputConfig,
    output: &str,
) -> Result<TlsClient, OutputError> {
    if let Some(t) = tls {
        return Ok(t.clone());
    }
    let t = TlsClient::new(&cfg.tls).map_err(|source| OutputError::Tls {
        output: output.to_string(),
        source,
    })?;
    *tls = Some(t.clone());
    Ok(t)
}

fn spool_key(spec: &OutputSpec) -> String {
    spec.to_string()
        .replace("://", "_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "-".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_can_be_shared_between_tasks() {
        fn shared<T: Send + Sync>() {}
        shared::<OutputHub>();
        shared::<OutputRecord>();
    }

    #[test]
    fn spool_keys_are_file_names() {
        assert_eq!(
            spool_key(&"syslog+tcp://127.0.0.1:514".parse().unwrap()),
            "syslog+tcp_127.0.0.1_514"
        );
        assert_eq!(
            spool_key(&"syslog+udp://[2001:db8::1]:514".parse().unwrap()),
            "syslog+udp__2001_db8__1__514"
        );
        assert_eq!(spool_key(&OutputSpec::Syslog), "syslog");
        assert_eq!(
            spool_key(&"syslog+relp+tls://h.example:2514".parse().unwrap()),
            "syslog+relp+tls_h.example_2514"
        );
    }
}
