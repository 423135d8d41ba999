//! Live capture: the kernel programs (monitor-ebpf), their loader, and the ring-buffer source.
//!
//! - `probes`: loads the object and picks a backend per hook (fentry, kprobe, raw
//!   tracepoint, tracepoint or cgroup), falling back automatically.
//! - `btf`, `tracefs`: kernel struct and tracepoint offsets, resolved at load time.
//! - `ringbuf`, `ring_record`: batched reading and checked decoding of records.
//! - `clock`: kernel boot-clock timestamps to wall-clock time.
//!
//! Dropping a `Capture` (or `shutdown`) detaches and unloads every program.

mod btf;
mod capabilities;
mod cgroup;
mod clock;
mod ebpf_log;
mod error;
mod probes;
mod ring_record;
mod ringbuf;
mod tracefs;
mod udp_flows;

use std::time::{Duration, Instant};

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya_log::EbpfLogger;
use monitor_common::{hook, stat};

/// The capability check `Capture::start` runs first, for callers that want to fail before
/// doing anything else.
pub use capabilities::check as check_capabilities;
pub use clock::BootClock;
pub use error::CaptureError;
pub use ring_record::{RingRecordError, decode};

use crate::record::Timestamp;

/// Which kernel mechanism to capture connects with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProbeChoice {
    /// Per hook, the best that works: fentry, then kprobe, then the fallbacks (TCP: cgroup
    /// `connect4/6`, then the raw, then the classic tracepoint; UDP: cgroup).
    #[default]
    Auto,
    /// fentry for every hook, or fail.
    Fentry,
    /// kprobe for every hook, or fail.
    Kprobe,
    /// The fallbacks without fentry/kprobe: for TCP cgroup `connect4/6`, else
    /// `inet_sock_set_state` as a raw tracepoint, else as a classic tracepoint; cgroup
    /// sock_addr programs for UDP.
    Tracepoint,
    /// As `Tracepoint`, but TCP only on the raw tracepoint `inet_sock_set_state`.
    RawTracepoint,
    /// As `Tracepoint`, but TCP only on the classic tracepoint (`sock:inet_sock_set_state`,
    /// the stable-ABI last resort, which needs no kernel BTF).
    ClassicTracepoint,
}

#[derive(Clone, Debug)]
pub struct CaptureConfig {
    pub probe: ProbeChoice,
    /// Ring buffer size: a power of two, at least the page size.
    pub ringbuf_bytes: u32,
    /// UDP sends to one (process, destination, port) closer together than this are counted
    /// in the kernel instead of reported; 0 reports every send.
    pub udp_suppress: Duration,
    /// How often the ring buffer is drained when the kernel does not wake the reader.
    pub poll_interval: Duration,
    /// The monitor itself: its own connections (syslog, ...) are never reported.
    pub exclude_tgid: u32,
    /// Capture DNS answers (`destination.domain`, DNS query events).
    pub dns: bool,
    /// Capture the connection lifecycle: TCP outcomes, closes, accepts, TCP and UDP
    /// listens, and UDP flow summaries (`--lifecycle`).
    pub lifecycle: bool,
    /// A UDP flow with no datagram for this long is summarised and forgotten (its socket
    /// still open); the next datagram begins a new flow.
    pub udp_flow_idle: Duration,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            probe: ProbeChoice::Auto,
            ringbuf_bytes: 4 << 20,
            udp_suppress: Duration::from_secs(1),
            poll_interval: Duration::from_millis(10),
            exclude_tgid: std::process::id(),
            dns: true,
            lifecycle: false,
            udp_flow_idle: Duration::from_secs(60),
        }
    }
}

/// Which backend implements a hook, and why better ones were skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookStatus {
    /// `"tcp_connect"` | `"udp_sendmsg"` | `"udpv6_sendmsg"`, then the DNS hooks
    /// `"dns_answer"` and `"dns_tcp_answer"` when they attached.
    pub hook: &'static str,
    /// `"fentry"` | `"kprobe"` | `"raw_tracepoint"` | `"tracepoint"` | `"cgroup"`.
    pub backend: &'static str,
    /// Better backends tried, each with the one-line aya error.
    pub skipped: Vec<(&'static str, String)>,
}

/// One ring-buffer record.
#[derive(Clone, Debug)]
pub enum RawEvent {
    Connect(monitor_common::ConnectEvent),
    Exec(Box<monitor_common::ExecEvent>),
    Exit(monitor_common::ExitEvent),
    Fork(monitor_common::ForkEvent),
    Dns(Box<monitor_common::DnsEvent>),
    Life(Box<monitor_common::LifeEvent>),
}

/// The kernel programs' counters (summed over CPUs) since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Records dropped because the ring buffer was full.
    pub ringbuf_lost: u64,
    /// The same per connect hook (indexed by `monitor_common::hook::*`), then exec and exit
    /// records.
    pub lost_per_hook: [u64; 3],
    pub lost_execs: u64,
    pub lost_exits: u64,
    pub lost_forks: u64,
    /// UDP sends suppressed by flood control.
    pub udp_suppressed: u64,
    /// Failed kernel reads.
    pub read_failed: u64,
    /// Connect events written, indexed by `monitor_common::hook::*`.
    pub events_per_hook: [u64; 3],
    pub execs: u64,
    pub exits: u64,
    pub forks: u64,
    /// Exec records whose executable path the kernel could not walk to the root.
    pub exe_path_truncated: u64,
    /// New UDP flood-control keys that displaced a key still inside its suppression window
    /// (that destination's next send is reported, not folded).
    pub flood_map_full: u64,
    /// Connected UDP sockets (cgroup backend) that could not be armed: their first datagram
    /// goes unreported.
    pub udp_pending_failed: u64,
    /// DNS answers copied by the kernel, lost to a full ring buffer, cut to the copy bound,
    /// missed (queue already empty), and sockets whose asking process could not be stored.
    pub dns_answers: u64,
    pub lost_dns: u64,
    pub dns_cut: u64,
    pub dns_missed: u64,
    pub dns_owner_failed: u64,
    pub dns_shed: u64,
    /// `sock_recvmsg` calls on TCP DNS sockets not carried from entry to return (the
    /// fentry/fexit or kprobe pairs): those answers were not read.
    pub dns_recv_failed: u64,
    /// Lifecycle records written, lost to a full ring buffer, and connections or listeners
    /// the kernel's tables could not hold.
    pub life_records: u64,
    pub lost_life: u64,
    pub life_table_full: u64,
    /// UDP flows the kernel's table could not hold, datagrams whose remote end was unknown,
    /// and flows summarised only after their idle period (not listed under their socket).
    pub udp_flow_table_full: u64,
    pub udp_flow_peer_unknown: u64,
    pub udp_flow_unlisted: u64,
    /// Records user space could not decode (or would not: an unspecified destination) and
    /// skipped.
    pub decode_errors: u64,
}

/// A running capture: programs attached, ring buffer mapped.
pub struct Capture {
    source: ringbuf::EventSource,
    stats: PerCpuArray<MapData, u64>,
    logger: Option<EbpfLogger<ebpf_log::TracingLog>>,
    clock: BootClock,
    hooks: Vec<HookStatus>,
    program_ids: Vec<u32>,
    /// The UDP flow table's idle sweep, when flows are counted (`--lifecycle`).
    flows: Option<udp_flows::FlowSweeper>,
    /// Owns every program and link: dropping it detaches and unloads them.
    #[expect(
        dead_code,
        reason = "held for ownership; its drop detaches the programs"
    )]
    ebpf: aya::Ebpf,
}

impl Capture {
    /// Loads the kernel programs and attaches them, choosing backends per `cfg.probe`.
    /// Needs root (or the capabilities the error names) and a tokio runtime with I/O.
    pub fn start(cfg: &CaptureConfig) -> Result<Capture, CaptureError> {
        capabilities::check()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(CaptureError::NoRuntime);
        }
        let probes::LoadedProbes {
            mut ebpf,
            hooks,
            program_ids,
            udp_flows,
        } = probes::load(cfg)?;

        let logger = match EbpfLogger::init_with_logger(&mut ebpf, ebpf_log::TracingLog) {
            Ok(logger) => Some(logger),
            Err(e) => {
                tracing::warn!(error = %e, "kernel program logs unavailable");
                None
            }
        };
        let ring = take_map(&mut ebpf, probes::EVENTS_MAP, RingBuf::try_from)?;
        let stats = take_map(&mut ebpf, probes::STATS_MAP, PerCpuArray::try_from)?;
        let flows = if udp_flows {
            let map = take_map(
                &mut ebpf,
                probes::UDP_FLOWS_MAP,
                aya::maps::HashMap::try_from,
            )?;
            Some(udp_flows::FlowSweeper::new(map, cfg.udp_flow_idle))
        } else {
            None
        };
        let source =
            ringbuf::EventSource::new(ring, cfg.poll_interval).map_err(|e| CaptureError::Map {
                map: probes::EVENTS_MAP,
                detail: format!("registering with the tokio reactor: {e}"),
            })?;
        Ok(Capture {
            source,
            stats,
            logger,
            clock: BootClock::new(),
            hooks,
            program_ids,
            flows,
            ebpf,
        })
    }

    /// Per hook, the backend in use and the better ones skipped.
    pub fn hooks(&self) -> &[HookStatus] {
        &self.hooks
    }

    /// Kernel ids of the programs this capture loaded (as `bpftool prog show` lists them).
    pub fn program_ids(&self) -> &[u32] {
        &self.program_ids
    }

    /// Waits until data is available or the poll interval passes, then drains everything.
    pub async fn read_batch(&mut self, out: &mut Vec<RawEvent>) -> Result<(), CaptureError> {
        self.source
            .read_batch(out)
            .await
            .map_err(CaptureError::Ring)?;
        if let Some(flows) = &mut self.flows
            && let Err(e) = flows.sweep_if_due(clock::boot_now_ns(), out)
        {
            tracing::warn!(error = %e, "UDP flow idle sweep failed; retried at the next");
        }
        if let Some(logger) = &mut self.logger {
            logger.flush();
        }
        self.clock.recalibrate();
        Ok(())
    }

    /// The kernel counters, summed over CPUs.
    pub fn kernel_stats(&self) -> Result<KernelStats, CaptureError> {
        let read = |index: u32| -> Result<u64, CaptureError> {
            let per_cpu = self.stats.get(&index, 0).map_err(|e| CaptureError::Map {
                map: probes::STATS_MAP,
                detail: format!("reading index {index}: {e}"),
            })?;
            Ok(per_cpu.iter().copied().fold(0u64, u64::wrapping_add))
        };
        Ok(KernelStats {
            ringbuf_lost: read(stat::RINGBUF_FULL)?,
            lost_per_hook: [
                read(stat::LOST_TCP + hook::TCP_CONNECT)?,
                read(stat::LOST_TCP + hook::UDP_SEND_V4)?,
                read(stat::LOST_TCP + hook::UDP_SEND_V6)?,
            ],
            lost_execs: read(stat::LOST_EXEC)?,
            lost_exits: read(stat::LOST_EXIT)?,
            lost_forks: read(stat::LOST_FORK)?,
            udp_suppressed: read(stat::UDP_SUPPRESSED)?,
            read_failed: read(stat::READ_FAILED)?,
            events_per_hook: [
                read(stat::EVENTS_TCP + hook::TCP_CONNECT)?,
                read(stat::EVENTS_TCP + hook::UDP_SEND_V4)?,
                read(stat::EVENTS_TCP + hook::UDP_SEND_V6)?,
            ],
            execs: read(stat::EXECS)?,
            exits: read(stat::EXITS)?,
            forks: read(stat::FORKS)?,
            exe_path_truncated: read(stat::EXE_PATH_TRUNCATED)?,
            flood_map_full: read(stat::FLOOD_MAP_FULL)?,
            udp_pending_failed: read(stat::UDP_PENDING_FAILED)?,
            dns_answers: read(stat::DNS_ANSWERS)?,
            lost_dns: read(stat::LOST_DNS)?,
            dns_cut: read(stat::DNS_CUT)?,
            dns_missed: read(stat::DNS_MISSED)?,
            dns_owner_failed: read(stat::DNS_OWNER_FAILED)?,
            dns_shed: read(stat::DNS_SHED)?,
            dns_recv_failed: read(stat::DNS_RECV_FAILED)?,
            life_records: read(stat::LIFE_RECORDS)?,
            lost_life: read(stat::LOST_LIFE)?,
            life_table_full: read(stat::LIFE_TABLE_FULL)?,
            udp_flow_table_full: read(stat::UDP_FLOW_TABLE_FULL)?,
            udp_flow_peer_unknown: read(stat::UDP_FLOW_PEER_UNKNOWN)?,
            udp_flow_unlisted: read(stat::UDP_FLOW_UNLISTED)?,
            decode_errors: self.source.decode_errors(),
        })
    }

    /// Kernel boot-time ns -> wall clock.
    pub fn timestamp_of(&self, ktime_ns: u64) -> Timestamp {
        self.clock.to_wall(ktime_ns)
    }

    /// Detaches and unloads everything, then waits (up to 5 s) until the kernel has released
    /// the programs (link release is deferred to a kernel work queue).
    pub fn shutdown(self) -> Result<(), CaptureError> {
        let ids = self.program_ids.clone();
        drop(self);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let remaining = loaded_among(&ids);
            if remaining.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(CaptureError::StillLoaded { ids: remaining });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Hands freed heap back to the kernel. Start-up parses the kernel's BTF twice (aya's loader,
/// then aya again for fentry; about 20 MiB each) and frees it; glibc keeps freed memory below
/// the top of the heap mapped, so without this the daemon would carry that much idle RSS for
/// its whole life. Called at those two points of start-up only: never on a hot path.
fn release_freed_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim has no preconditions; it only returns free pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Which of `ids` the kernel still has loaded.
fn loaded_among(ids: &[u32]) -> Vec<u32> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|info| info.id())
        .filter(|id| ids.contains(id))
        .collect()
}

fn take_map<T>(
    ebpf: &mut aya::Ebpf,
    name: &'static str,
    convert: impl FnOnce(aya::maps::Map) -> Result<T, aya::maps::MapError>,
) -> Result<T, CaptureError> {
    let map = ebpf.take_map(name).ok_or(CaptureError::Map {
        map: name,
        detail: "missing from the object".to_string(),
    })?;
    convert(map).map_err(|e| CaptureError::Map {
        map: name,
        detail: e.to_string(),
    })
}
