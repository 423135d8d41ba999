//! Counters about the monitor itself: what the kernel saw and lost, what enrichment missed,
//! which rules fired, how deep the output queues and spools are, and which probe backend each
//! hook uses. Written as `event.kind: "metric"` records (every N seconds and on SIGUSR1) and,
//! optionally, as Prometheus text on a loopback address.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::capture::{Capture, KernelStats};
use crate::output::{OutputHub, SinkStats};
use crate::pipeline::Pipeline;
use crate::process::{ProcessStats, ProcessTable};
use crate::record::Timestamp;

/// One reading of every counter.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MetricsSnapshot {
    /// hook -> backend.
    pub probes: BTreeMap<String, String>,
    /// hook -> events seen in the kernel.
    pub events_by_hook: BTreeMap<String, u64>,
    pub ringbuf_lost: u64,
    /// `ringbuf_lost` per hook (`LOSS_HOOKS`): connect hooks, exec and exit records.
    pub ringbuf_lost_by_hook: BTreeMap<String, u64>,
    pub udp_suppressed: u64,
    pub kernel_read_failed: u64,
    pub execs: u64,
    pub exits: u64,
    pub forks: u64,
    /// Exec records whose executable path the kernel could not walk to the root (marked
    /// partial).
    pub exe_path_truncated: u64,
    /// A new key in the kernel's UDP flood-control table displaced one still inside its
    /// suppression window (that destination's next send is reported, not suppressed).
    pub flood_map_full: u64,
    /// Connected UDP sockets the cgroup backend could not arm (their first datagram went
    /// unreported).
    pub udp_pending_failed: u64,
    /// Ring-buffer records user space could not decode (counted, skipped).
    pub decode_errors: u64,
    /// DNS answers the kernel copied (`dns_answers_kernel`), cut to the copy bound or to a
    /// packet's linear part (`dns_cut`), missed because the socket's queue was already
    /// empty (`dns_missed`), and sockets whose asking process could not be remembered
    /// (`dns_owner_failed`); losses are in `ringbuf_lost_by_hook.dns`.
    pub dns_answers_kernel: u64,
    pub dns_cut: u64,
    pub dns_missed: u64,
    pub dns_owner_failed: u64,
    /// Answers dropped in the kernel because the ring buffer was more than half full (a DNS
    /// flood gives way to connection events).
    pub dns_shed: u64,
    /// TCP answer reads (`sock_recvmsg`, kernels before 6.3) not carried from the call's
    /// entry to its return, so not read.
    pub dns_recv_failed: u64,
    /// Lifecycle records (`--lifecycle`: connect results, closes, accepts, listens) the
    /// kernel wrote (their losses are in `ringbuf_lost_by_hook.life`), and connections or
    /// listeners its tables could not hold (`life_table_full`: those connections get no
    /// result or close record, or those listeners' accepts no process).
    pub life_records_kernel: u64,
    pub life_table_full: u64,
    /// What user space made of them: parsed, truncated, malformed, not answers.
    pub dns: crate::dns::DnsStats,
    /// Connection records named from the process's own answers, host-wide, or not at all;
    /// and the attribution tables' entries (host-wide, over all processes).
    pub domains: crate::dns::AttributionStats,
    pub domain_entries_host: u64,
    pub domain_entries_process: u64,
    pub events_processed: u64,
    pub enrichment_partial: u64,
    pub process_table_entries: u64,
    pub proc_reads: u64,
    /// Every process-table counter (misses, evictions, stale entries, ...).
    pub process: ProcessStats,
    pub beacon_keys: u64,
    /// Open Sigma correlation groups, and groups dropped because the store was full
    /// (rules/README.md, "Correlation rules").
    pub correlation_groups: u64,
    pub correlation_evictions: u64,
    /// Records left out of detection for a time more than 1 h from the event clock, and
    /// jumps of the event clock followed (wall-clock steps; see `pipeline`).
    pub time_outliers: u64,
    pub clock_jumps: u64,
    pub alerts: u64,
    pub alerts_by_rule: BTreeMap<String, u64>,
    /// Rule sets swapped in by SIGHUP.
    pub rules_reloaded: u64,
    /// SIGHUP reloads rejected (invalid rules, a budget exceeded): the old set stayed.
    pub rules_reload_failed: u64,
    pub outputs: Vec<SinkStats>,
}

impl MetricsSnapshot {
    pub fn collect(
        capture: &Capture,
        table: &ProcessTable,
        pipeline: &Pipeline,
        hub: &OutputHub,
    ) -> Self {
        let mut s = MetricsSnapshot::default();
        for h in capture.hooks() {
            s.probes.insert(h.hook.to_string(), h.backend.to_string());
        }
        match capture.kernel_stats() {
            Ok(k) => s.add_kernel(&k),
            Err(e) => tracing::warn!(error = %e, "reading kernel counters failed"),
        }
        let p = table.stats();
        s.process_table_entries = p.entries as u64;
        s.proc_reads = p.proc_reads;
        s.process = p;
        let c = pipeline.counters();
        s.events_processed = c.events;
        s.enrichment_partial = c.partial_events;
        s.alerts = c.alerts;
        s.time_outliers = c.time_outliers;
        s.clock_jumps = c.clock_jumps;
        s.alerts_by_rule = c.alerts_by_rule.clone();
        s.beacon_keys = pipeline.beacon_keys() as u64;
        s.correlation_groups = pipeline.correlation_groups() as u64;
        s.correlation_evictions = pipeline.correlation_evictions();
        s.domains = pipeline.names().stats();
        let (host, per_process) = pipeline.names().len();
        s.domain_entries_host = host as u64;
        s.domain_entries_process = per_process as u64;
        s.outputs = hub.stats().outputs;
        s
    }

    /// The kernel programs' counters.
    fn add_kernel(&mut self, k: &KernelStats) {
        for (h, n) in ["tcp_connect", "udp_sendmsg", "udpv6_sendmsg"]
            .iter()
            .zip(k.events_per_hook)
        {
            self.events_by_hook.insert(h.to_string(), n);
        }
        self.ringbuf_lost = k.ringbuf_lost;
        let lost = [
            k.lost_per_hook[0],
            k.lost_per_hook[1],
            k.lost_per_hook[2],
            k.lost_execs,
            k.lost_exits,
            k.lost_forks,
            k.lost_dns,
            k.lost_life,
        ];
        for (h, n) in LOSS_HOOKS.iter().zip(lost) {
            self.ringbuf_lost_by_hook.insert(h.to_string(), n);
        }
        self.udp_suppressed = k.udp_suppressed;
        self.kernel_read_failed = k.read_failed;
        self.execs = k.execs;
        self.exits = k.exits;
        self.forks = k.forks;
        self.exe_path_truncated = k.exe_path_truncated;
        self.flood_map_full = k.flood_map_full;
        self.udp_pending_failed = k.udp_pending_failed;
        self.decode_errors = k.decode_errors;
        self.dns_answers_kernel = k.dns_answers;
        self.dns_cut = k.dns_cut;
        self.dns_missed = k.dns_missed;
        self.dns_owner_failed = k.dns_owner_failed;
        self.dns_shed = k.dns_shed;
        self.dns_recv_failed = k.dns_recv_failed;
        self.life_records_kernel = k.life_records;
        self.life_table_full = k.life_table_full;
    }

    /// Spool drops since the snapshot currently published, if any.
    pub fn output_dropped_new(&self, published: &SharedMetrics) -> Option<u64> {
        let now: u64 = self.outputs.iter().map(|o| o.dropped).sum();
        let before: u64 = published.get().outputs.iter().map(|o| o.dropped).sum();
        (now > before).then_some(now - before)
    }
}

/// The names under `monitor.lost` (and `ringbuf_lost_by_hook`): the three connect hooks as
/// `events_by_hook` names them, then exec, exit and fork records, DNS answers and
/// lifecycle records.
pub const LOSS_HOOKS: [&str; 8] = [
    "tcp_connect",
    "udp_sendmsg",
    "udpv6_sendmsg",
    "exec",
    "exit",
    "fork",
    "dns",
    "life",
];

/// Turns the kernel's loss counters into `events-lost` records: the daemon checks every
/// second, so a loss is in the output stream within a second of being counted, next to the
/// alerts it may have cost.
#[derive(Default)]
pub struct LossReporter {
    /// Totals as of the last record (or the first check).
    seen: BTreeMap<String, u64>,
    total: u64,
}

impl LossReporter {
    /// An `event.kind: "metric"`, `event.action: "events-lost"` record with the losses per
    /// hook since the last one, or `None` when nothing new was lost.
    pub fn check(
        &mut self,
        s: &MetricsSnapshot,
        host: &str,
        now: Timestamp,
    ) -> Option<serde_json::Value> {
        if s.ringbuf_lost <= self.total {
            return None;
        }
        let mut lost = serde_json::Map::new();
        for h in LOSS_HOOKS {
            let n = s.ringbuf_lost_by_hook.get(h).copied().unwrap_or(0);
            let before = self.seen.insert(h.to_string(), n).unwrap_or(0);
            lost.insert(h.to_string(), json!(n.saturating_sub(before)));
        }
        lost.insert("total".into(), json!(s.ringbuf_lost - self.total));
        self.total = s.ringbuf_lost;
        Some(json!({
            "@timestamp": now.to_rfc3339(),
            "event": {
                "kind": "metric",
                "category": ["host"],
                "action": "events-lost",
                "dataset": "monitor.loss",
            },
            "host": { "hostname": host },
            "monitor": { "lost": lost, "ringbuf_lost_total": s.ringbuf_lost },
        }))
    }
}

/// The latest snapshot, shared with the Prometheus endpoint.
#[derive(Clone, Default)]
pub struct SharedMetrics(Arc<Mutex<MetricsSnapshot>>);

impl SharedMetrics {
    pub fn update(&self, s: MetricsSnapshot) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    pub fn get(&self) -> MetricsSnapshot {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The ECS metric record.
    pub fn record(&self, host: &str) -> serde_json::Value {
        let s = self.get();
        json!({
            "@timestamp": Timestamp::now().to_rfc3339(),
            "event": { "kind": "metric", "category": ["host"], "dataset": "monitor.stats" },
            "host": { "hostname": host },
            "monitor": { "stats": s },
        })
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn prometheus_text(&self) -> String {
        use std::fmt::Write as _;
        let s = self.get();
        let mut t = String::new();
        let family =
            |t: &mut String, kind: &str, name: &str, help: &str, samples: &[(String, u64)]| {
                let _ = writeln!(t, "# HELP monitor_{name} {help}");
                let _ = writeln!(t, "# TYPE monitor_{name} {kind}");
                for (labels, v) in samples {
                    let _ = writeln!(t, "monitor_{name}{labels} {v}");
                }
            };
        let counter = |t: &mut String, name: &str, help: &str, samples: &[(String, u64)]| {
            family(t, "counter", name, help, samples)
        };
        let gauge = |t: &mut String, name: &str, help: &str, samples: &[(String, u64)]| {
            family(t, "gauge", name, help, samples)
        };
        let lbl = |k: &str, v: &str| format!("{{{k}=\"{}\"}}", prom_escape(v));
        counter(
            &mut t,
            "kernel_events_total",
            "Connect events written by the kernel programs, per hook.",
            &s.events_by_hook
                .iter()
                .map(|(h, n)| (lbl("hook", h), *n))
                .collect::<Vec<_>>(),
        );
        counter(
            &mut t,
            "process_events_total",
            "Process records written by the kernel programs, per kind.",
            &[
                (lbl("kind", "exec"), s.execs),
                (lbl("kind", "fork"), s.forks),
                (lbl("kind", "exit"), s.exits),
            ],
        );
        let p = &s.process;
        counter(
            &mut t,
            "exe_hashes_total",
            "Executable hashes: requests to the worker, hashes known without it, and the worker's answers.",
            &[
                (lbl("result", "requested"), p.hashes_requested),
                (lbl("result", "queue_full"), p.hash_queue_full),
                (lbl("result", "known"), p.hashes_known),
                (lbl("result", "computed"), p.hashes_computed),
                (lbl("result", "cached"), p.hashes_cached),
                (lbl("result", "too_big"), p.hash_too_big),
                (lbl("result", "failed"), p.hash_failed),
            ],
        );
        counter(
            &mut t,
            "lifecycle_records_total",
            "Lifecycle records (connect results, closes, accepts, listens) written by the kernel programs.",
            &[(String::new(), s.life_records_kernel)],
        );
        counter(
            &mut t,
            "lifecycle_table_full_total",
            "Connections or listeners the kernel's lifecycle tables could not hold.",
            &[(String::new(), s.life_table_full)],
        );
        counter(
            &mut t,
            "ringbuf_lost_total",
            "Events lost because the ring buffer was full.",
            &[(String::new(), s.ringbuf_lost)],
        );
        counter(
            &mut t,
            "ringbuf_lost_by_hook_total",
            "Events lost because the ring buffer was full, per hook or record kind.",
            &s.ringbuf_lost_by_hook
                .iter()
                .map(|(h, n)| (lbl("hook", h), *n))
                .collect::<Vec<_>>(),
        );
        counter(
            &mut t,
            "udp_suppressed_total",
            "UDP sends suppressed in the kernel by flood control.",
            &[(String::new(), s.udp_suppressed)],
        );
        counter(
            &mut t,
            "kernel_read_failed_total",
            "Kernel reads that failed (field left unknown).",
            &[(String::new(), s.kernel_read_failed)],
        );
        counter(
            &mut t,
            "events_processed_total",
            "Connection records through the pipeline.",
            &[(String::new(), s.events_processed)],
        );
        counter(
            &mut t,
            "enrichment_partial_total",
            "Records with monitor.enrichment=partial.",
            &[(String::new(), s.enrichment_partial)],
        );
        counter(
            &mut t,
            "proc_reads_total",
            "Process lookups that read /proc.",
            &[(String::new(), s.proc_reads)],
        );
        counter(
            &mut t,
            "decode_errors_total",
            "Ring-buffer records that could not be decoded.",
            &[(String::new(), s.decode_errors)],
        );
        counter(
            &mut t,
            "process_evictions_total",
            "Process-table entries evicted at the size cap.",
            &[(String::new(), s.process.evictions)],
        );
        counter(
            &mut t,
            "rules_reloaded_total",
            "Rule sets swapped in on SIGHUP.",
            &[(String::new(), s.rules_reloaded)],
        );
        counter(
            &mut t,
            "rules_reload_failed_total",
            "Rule reloads rejected (the previous set stayed active).",
            &[(String::new(), s.rules_reload_failed)],
        );
        counter(
            &mut t,
            "correlation_evictions_total",
            "Correlation groups dropped because the store was full.",
            &[(String::new(), s.correlation_evictions)],
        );
        counter(
            &mut t,
            "alerts_total",
            "Alerts raised, per rule.",
            &s.alerts_by_rule
                .iter()
                .map(|(r, n)| (lbl("rule", r), *n))
                .collect::<Vec<_>>(),
        );
        let per_sink = |f: fn(&SinkStats) -> u64| {
            s.outputs
                .iter()
                .map(|o| (lbl("output", &o.output), f(o)))
                .collect::<Vec<_>>()
        };
        counter(
            &mut t,
            "output_sent_total",
            "Records delivered, per output.",
            &per_sink(|o| o.sent),
        );
        counter(
            &mut t,
            "output_dropped_total",
            "Records dropped because the spool was full.",
            &per_sink(|o| o.dropped),
        );
        counter(
            &mut t,
            "output_errors_total",
            "Delivery errors, per output.",
            &per_sink(|o| o.errors),
        );
        gauge(
            &mut t,
            "output_queue_depth",
            "Records waiting in memory, per output.",
            &per_sink(|o| o.queued),
        );
        gauge(
            &mut t,
            "output_spool_records",
            "Records waiting in the on-disk spool, per output.",
            &per_sink(|o| o.spool_records),
        );
        gauge(
            &mut t,
            "process_table_entries",
            "Processes tracked.",
            &[(String::new(), s.process_table_entries)],
        );
        gauge(
            &mut t,
            "beacon_keys",
            "Keys tracked by the beacon detector.",
            &[(String::new(), s.beacon_keys)],
        );
        gauge(
            &mut t,
            "correlation_groups",
            "Open Sigma correlation groups.",
            &[(String::new(), s.correlation_groups)],
        );
        gauge(
            &mut t,
            "probe_backend",
            "1 for the backend each hook uses.",
            &s.probes
                .iter()
                .map(|(h, b)| {
                    (
                        format!(
                            "{{hook=\"{}\",backend=\"{}\"}}",
                            prom_escape(h),
                            prom_escape(b)
                        ),
                        1,
                    )
                })
                .collect::<Vec<_>>(),
        );
        t
    }
}

fn prom_escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A minimal HTTP/1.0 responder for `GET /metrics` on a loopback address. It reads one
/// request, answers, and closes: enough for Prometheus, with no HTTP framework to audit.
pub struct PrometheusServer {
    task: tokio::task::JoinHandle<()>,
    pub addr: SocketAddr,
}

impl PrometheusServer {
    pub async fn start(addr: SocketAddr, metrics: SharedMetrics) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    continue;
                };
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let n = match tokio::time::timeout(
                        std::time::Duration::from_secs(5),
                        sock.read(&mut buf),
                    )
                    .await
                    {
                        Ok(Ok(n)) => n,
                        _ => return,
                    };
                    let req = String::from_utf8_lossy(&buf[..n]);
                    let resp = if req.starts_with("GET /metrics") {
                        let body = metrics.prometheus_text();
                        format!(
                            "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    } else {
                        "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
                    };
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        Ok(PrometheusServer { task, addr })
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_counters_and_escapes_labels() {
        let m = SharedMetrics::default();
        let mut s = MetricsSnapshot {
            ringbuf_lost: 3,
            rules_reload_failed: 2,
            correlation_groups: 7,
            correlation_evictions: 5,
            ..Default::default()
        };
        s.alerts_by_rule.insert("rule\"x".into(), 2);
        s.probes.insert("tcp_connect".into(), "tracepoint".into());
        m.update(s);
        let t = m.prometheus_text();
        assert!(t.contains("monitor_ringbuf_lost_total 3\n"), "{t}");
        assert!(
            t.contains("monitor_alerts_total{rule=\"rule\\\"x\"} 2\n"),
            "{t}"
        );
        assert!(
            t.contains("monitor_probe_backend{hook=\"tcp_connect\",backend=\"tracepoint\"} 1"),
            "{t}"
        );
        let rec = m.record("h");
        assert_eq!(rec["event"]["kind"], "metric");
        assert_eq!(rec["monitor"]["stats"]["ringbuf_lost"], 3);
        assert!(t.contains("monitor_rules_reload_failed_total 2\n"), "{t}");
        assert_eq!(rec["monitor"]["stats"]["rules_reload_failed"], 2);
        assert_eq!(rec["monitor"]["stats"]["rules_reloaded"], 0);
        assert!(t.contains("monitor_correlation_evictions_total 5\n"), "{t}");
        assert!(t.contains("monitor_correlation_groups 7\n"), "{t}");
        assert_eq!(rec["monitor"]["stats"]["correlation_evictions"], 5);
        assert_eq!(rec["monitor"]["stats"]["correlation_groups"], 7);
    }

    /// The lifecycle's kernel counters (`stat::LIFE_RECORDS`, `LOST_LIFE`,
    /// `LIFE_TABLE_FULL`) reach the metric record, the Prometheus text and the loss records.
    #[test]
    fn lifecycle_kernel_counters_are_reported() {
        let mut s = MetricsSnapshot::default();
        s.add_kernel(&KernelStats {
            ringbuf_lost: 4,
            lost_dns: 1,
            life_records: 11,
            lost_life: 3,
            life_table_full: 2,
            ..KernelStats::default()
        });
        let m = SharedMetrics::default();
        m.update(s.clone());
        let rec = m.record("h");
        let stats = &rec["monitor"]["stats"];
        assert_eq!(stats["life_records_kernel"], 11);
        assert_eq!(stats["life_table_full"], 2);
        assert_eq!(stats["ringbuf_lost_by_hook"]["life"], 3);
        assert_eq!(stats["ringbuf_lost_by_hook"]["dns"], 1);
        let t = m.prometheus_text();
        assert!(t.contains("monitor_lifecycle_records_total 11\n"), "{t}");
        assert!(t.contains("monitor_lifecycle_table_full_total 2\n"), "{t}");
        assert!(
            t.contains("monitor_ringbuf_lost_by_hook_total{hook=\"life\"} 3\n"),
            "{t}"
        );
        let loss = LossReporter::default()
            .check(
                &s,
                "h",
                Timestamp::parse_rfc3339("2026-11-23T10:00:00Z").unwrap(),
            )
            .unwrap();
        assert_eq!(loss["monitor"]["lost"]["life"], 3);
        assert_eq!(loss["monitor"]["lost"]["total"], 4);
    }

    fn lost(tcp: u64, udp: u64, udp6: u64, exec: u64, exit: u64) -> MetricsSnapshot {
        let mut s = MetricsSnapshot {
            ringbuf_lost: tcp + udp + udp6 + exec + exit,
            ..Default::default()
        };
        for (h, n) in LOSS_HOOKS.iter().zip([tcp, udp, udp6, exec, exit]) {
            s.ringbuf_lost_by_hook.insert(h.to_string(), n);
        }
        s
    }

    #[test]
    fn lost_events_become_a_record_with_the_counts_since_the_last_one() {
        let mut r = LossReporter::default();
        let now = Timestamp::parse_rfc3339("2026-11-23T10:00:00Z").unwrap();
        assert!(r.check(&lost(0, 0, 0, 0, 0), "h", now).is_none());
        let rec = r.check(&lost(5, 0, 2, 1, 0), "h\"x", now).unwrap();
        assert_eq!(rec["event"]["kind"], "metric");
        assert_eq!(rec["event"]["action"], "events-lost");
        assert_eq!(rec["@timestamp"], "2026-11-23T10:00:00Z");
        assert_eq!(rec["host"]["hostname"], "h\"x");
        let l = &rec["monitor"]["lost"];
        assert_eq!(
            (
                &l["tcp_connect"],
                &l["udp_sendmsg"],
                &l["udpv6_sendmsg"],
                &l["exec"],
                &l["exit"]
            ),
            (&json!(5), &json!(0), &json!(2), &json!(1), &json!(0))
        );
        assert_eq!(l["total"], 8);
        // Nothing new: no record; more lost: only the new ones.
        assert!(r.check(&lost(5, 0, 2, 1, 0), "h", now).is_none());
        let rec = r.check(&lost(7, 3, 2, 1, 0), "h", now).unwrap();
        let l = &rec["monitor"]["lost"];
        assert_eq!(
            (&l["tcp_connect"], &l["udp_sendmsg"], &l["total"]),
            (&json!(2), &json!(3), &json!(5))
        );
        assert_eq!(rec["monitor"]["ringbuf_lost_total"], 13);
        // It is one line of JSON as the outputs write it.
        let line = crate::output::OutputRecord::from_metric(rec)
            .json()
            .to_string();
        assert!(!line.contains('\n'));
    }

    #[tokio::test]
    async fn endpoint_serves_metrics_on_loopback() {
        let m = SharedMetrics::default();
        m.update(MetricsSnapshot {
            alerts: 1,
            ..Default::default()
        });
        let srv = PrometheusServer::start("127.0.0.1:0".parse().unwrap(), m)
            .await
            .unwrap();
        let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).await.unwrap();
        assert!(resp.starts_with("HTTP/1.0 200 OK"), "{resp}");
        assert!(resp.contains("# TYPE monitor_ringbuf_lost_total counter"));
    }
}
