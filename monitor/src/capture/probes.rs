//! Loading the kernel programs and choosing, per hook, the best backend that works here.
//!
//! Order per hook: fentry (cheapest, BTF-typed), kprobe, then the fallbacks: for TCP the
//! cgroup `connect4/6` programs (one run per connect), then the `inet_sock_set_state`
//! tracepoint (one run per state change of any TCP socket), as a raw tracepoint (BTF
//! offsets) and, as the last resort, as a classic tracepoint (stable-ABI record); for UDP the
//! cgroup programs: sock_addr `connect4/6` and `sendmsg4/6`, and the program both UDP hooks
//! share that reports a connected socket's first datagram: the `sock_send_length` raw
//! tracepoint (once per send call), else `cgroup_skb` egress (once per packet of every
//! socket, TCP included: it cost the paired TCP benchmark 5 %). Each failure is kept as a
//! one-line reason in `HookStatus::skipped`.
//!
//! The per-backend attach steps and the attach primitives are in `probes/backends.rs`, the
//! DNS hooks' wiring in `probes/dns.rs`, the lifecycle hooks' (with the UDP flow sets) in
//! `probes/life.rs`.

use std::{fs::File, path::Path};

use aya::{Ebpf, EbpfLoader, programs::ProgramError};
use monitor_common::{KernelConfig, SockOffsets};

use super::{
    CaptureConfig, HookStatus, ProbeChoice,
    btf::{KernelBtf, VMLINUX_BTF},
    cgroup,
    ebpf_log::kernel_log_level,
    error::{CaptureError, detailed, error_chain, one_line},
    tracefs,
};

mod backends;
mod dns;
mod life;

use backends::{
    attach_cgroup, attach_cgroups, attach_raw_tracepoint, attach_tracepoint, kernel, program_mut,
    try_cgroup, try_fentry, try_kprobe, try_raw_tracepoint, try_tracepoint, unload_cgroups,
    unload_quietly,
};

use dns::{attach_dns, attach_dns_recv};
use life::{attach_life, attach_udp_flows, udp_flow_send_side};

/// The kernel programs, built by monitor/build.rs (aya-build names the object after the
/// eBPF crate's bin, `monitor`).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor"));

/// Name of the ring buffer and counter maps in the object.
pub const EVENTS_MAP: &str = "EVENTS";
pub const STATS_MAP: &str = "STATS";
/// The kernel's UDP flow table (`--lifecycle`), swept for idle flows by user space.
pub const UDP_FLOWS_MAP: &str = "UDP_FLOWS";

/// Backend names, as `HookStatus::backend` reports them.
pub const FENTRY: &str = "fentry";
pub const KPROBE: &str = "kprobe";
pub const RAW_TRACEPOINT: &str = "raw_tracepoint";
pub const TRACEPOINT: &str = "tracepoint";
pub const CGROUP: &str = "cgroup";

/// `inet_sock_set_state`, TCP's fallback after the cgroup programs: as a raw tracepoint (no
/// trace record is built, but `struct sock` is read at BTF offsets), then as a classic one
/// (its record is a stable ABI: no kernel offsets needed).
struct TracepointPlan {
    raw_program: &'static str,
    program: &'static str,
    category: &'static str,
    name: &'static str,
}

/// One logical hook and the programs that can implement it.
struct HookPlan {
    hook: &'static str,
    /// Kernel function for fentry/kprobe.
    kernel_fn: &'static str,
    fentry: &'static str,
    kprobe: &'static str,
    /// The `connect` and the `sendmsg` (UDP) or second `connect` (TCP) cgroup programs,
    /// attached together.
    cgroup: [&'static str; 2],
    /// UDP only: the program attached with them (all or nothing) that reports the first
    /// datagram of the sockets the `connect` program arms. Both UDP hooks share it: whichever
    /// attaches first loads it, the other finds it attached.
    first_datagram: Option<FirstDatagramPlan>,
    /// TCP only: the tracepoints after the cgroup programs.
    tracepoint: Option<TracepointPlan>,
}

/// Connected UDP sockets' first datagram, for both UDP hooks (see `HookPlan`): the raw
/// tracepoint where the kernel has it (6.3+) and `struct sock` offsets are known, else the
/// `cgroup_skb` egress program.
struct FirstDatagramPlan {
    raw_program: &'static str,
    tracepoint: &'static str,
    egress_program: &'static str,
}

const UDP_FIRST_DATAGRAM: FirstDatagramPlan = FirstDatagramPlan {
    raw_program: "udp_raw_tp_sock_send_length",
    tracepoint: "sock_send_length",
    egress_program: "udp_cgroup_skb_egress",
};

/// Indexed like `monitor_common::hook::*`.
const PLANS: [HookPlan; 3] = [
    HookPlan {
        hook: "tcp_connect",
        kernel_fn: "tcp_connect",
        fentry: "tcp_fentry_tcp_connect",
        kprobe: "tcp_kprobe_tcp_connect",
        cgroup: ["tcp_cgroup_connect4", "tcp_cgroup_connect6"],
        first_datagram: None,
        tracepoint: Some(TracepointPlan {
            raw_program: "tcp_raw_tp_inet_sock_set_state",
            program: "tcp_tp_inet_sock_set_state",
            category: "sock",
            name: "inet_sock_set_state",
        }),
    },
    HookPlan {
        hook: "udp_sendmsg",
        kernel_fn: "udp_sendmsg",
        fentry: "udp_fentry_udp_sendmsg",
        kprobe: "udp_kprobe_udp_sendmsg",
        cgroup: ["udp_cgroup_connect4", "udp_cgroup_sendmsg4"],
        first_datagram: Some(UDP_FIRST_DATAGRAM),
        tracepoint: None,
    },
    HookPlan {
        hook: "udpv6_sendmsg",
        kernel_fn: "udpv6_sendmsg",
        fentry: "udp_fentry_udpv6_sendmsg",
        kprobe: "udp_kprobe_udpv6_sendmsg",
        cgroup: ["udp_cgroup_connect6", "udp_cgroup_sendmsg6"],
        first_datagram: Some(UDP_FIRST_DATAGRAM),
        tracepoint: None,
    },
];

/// Process tracking: always classic tracepoints (program, category, name).
const PROCESS_PROGRAMS: [(&str, &str, &str); 2] = [
    ("proc_tp_sched_process_exec", "sched", "sched_process_exec"),
    ("proc_tp_sched_process_exit", "sched", "sched_process_exit"),
];

/// Fork tracking (program, raw tracepoint): needs the `task_struct` offsets from BTF. Without
/// it a child that never execs is learned from /proc when it first connects.
const FORK_PROGRAM: (&str, &str) = ("proc_raw_tp_sched_process_fork", "sched_process_fork");

/// The loaded object with every chosen program attached.
pub struct LoadedProbes {
    pub ebpf: Ebpf,
    pub hooks: Vec<HookStatus>,
    pub program_ids: Vec<u32>,
    /// UDP flows are counted (`--lifecycle`): `UDP_FLOWS_MAP` wants its idle sweep.
    pub udp_flows: bool,
}

/// What the host offers, found before the object is loaded.
struct HostSupport {
    /// aya's parse of the kernel BTF: fentry needs it to find the target function.
    aya_btf: Result<aya::Btf, String>,
    /// fentry/kprobe need the `struct sock` offsets.
    sock: Result<SockOffsets, String>,
    /// The raw tracepoint needs them too, `sk_protocol` included.
    raw_tracepoint: Result<(), String>,
    /// The classic TCP tracepoint needs its format.
    tcp_tracepoint: Result<(), String>,
    /// The cgroup fallbacks need the cgroup v2 root.
    cgroup_root: Result<File, String>,
}

pub fn load(cfg: &CaptureConfig) -> Result<LoadedProbes, CaptureError> {
    let ring_bytes = ring_size(cfg.ringbuf_bytes)?;
    let tracefs_dir = tracefs::ensure_mounted()?;

    let mut config = KernelConfig::UNSET;
    config.udp_suppress_ns = u64::try_from(cfg.udp_suppress.as_nanos()).unwrap_or(u64::MAX);
    // Wake the reader early only when a quarter of the buffer is waiting; the poll timer
    // collects everything else.
    config.wakeup_bytes = u64::from(ring_bytes / 4);
    config.exclude_tgid = cfg.exclude_tgid;
    config.flood_seed = flood_seed();

    let log_level = kernel_log_level();
    // `EbpfLoader::new` parses all of /sys/kernel/btf/vmlinux (tens of MiB of heap) for CO-RE
    // relocations, which Rust-built programs do not have. Drop that copy before anything else
    // is parsed, so that start-up holds one parsed kernel BTF at a time (the peak RSS).
    let mut loader = EbpfLoader::new();
    loader.btf(None);
    // Give those pages back before the next parse (aya's, for fentry) rather than let the two
    // parses' heaps interleave.
    super::release_freed_heap();

    // Offsets first, from a memory-mapped BTF (no parse of every type); dropped at the end
    // of this block.
    let (sock, raw_tracepoint, dns, dns_recv, life, flow_fn) = {
        let kernel_btf = KernelBtf::load(Path::new(VMLINUX_BTF));
        let sock = match &kernel_btf {
            Ok(btf) => btf.sock_offsets().map_err(|e| format!("kernel BTF: {e}")),
            Err(e) => Err(format!("kernel BTF: {e}")),
        };
        match kernel_btf
            .as_ref()
            .map_err(ToString::to_string)
            .and_then(|btf| btf.task_offsets().map_err(|e| e.to_string()))
        {
            Ok(task) => {
                config.task = task;
                config.task_valid = 1;
                // The exec program walks the executable's path only with both sets.
                match kernel_btf.as_ref().map(|btf| btf.file_offsets()) {
                    Ok(Ok(file)) => {
                        config.file = file;
                        config.file_valid = 1;
                    }
                    Ok(Err(e)) => tracing::warn!(
                        error = %e,
                        "no file/dentry offsets from BTF: executables come from /proc/PID/exe"
                    ),
                    Err(_) => {}
                }
            }
            Err(e) => tracing::warn!(
                error = %e,
                "no task_struct offsets from BTF: exec events will lack ppid, argv and start time"
            ),
        }
        if let Ok(sock) = &sock {
            config.sock = *sock;
            config.sock_valid = 1;
        }
        let raw_tracepoint = match (&kernel_btf, &sock) {
            (Ok(btf), Ok(_)) => match btf.sock_protocol_offset() {
                Ok(offset) => {
                    config.sock.sk_protocol = offset;
                    Ok(())
                }
                Err(e) => Err(format!("kernel BTF: {e}")),
            },
            (_, Err(e)) => Err(e.clone()),
            (Err(e), _) => Err(format!("kernel BTF: {e}")),
        };
        let dns = match (&kernel_btf, &raw_tracepoint) {
            (Ok(btf), Ok(())) => match btf.dns_offsets() {
                Ok(offsets) => {
                    config.dns = offsets;
                    Ok(())
                }
                Err(e) => Err(format!("kernel BTF: {e}")),
            },
            (_, Err(e)) => Err(e.clone()),
            (Err(e), _) => Err(format!("kernel BTF: {e}")),
        };
        let dns_recv = dns::recv_offsets(kernel_btf.as_ref(), &dns, &mut config.dns);
        let life = life::resolve_offsets(cfg.lifecycle, &kernel_btf, &raw_tracepoint, &mut config);
        let flow_fn = life::resolve_flow_fn(cfg.lifecycle, &kernel_btf, &mut config);
        (sock, raw_tracepoint, dns, dns_recv, life, flow_fn)
    };
    // DNS answers give way to connection events once half the ring buffer is waiting (set
    // after the offsets, which replace the whole `dns` block).
    config.dns.shed_bytes = ring_bytes / 2;
    // TCP answers at the receiver (`dns::RecvSupport`).
    let dns_recv = dns::RecvSupport::new(cfg, &config.dns, &dns, dns_recv, &tracefs_dir);
    if dns_recv.any() {
        config.dns.tcp_on_recv = 1;
    }
    tracefs::process_offsets(&tracefs_dir, &mut config.tp)?;
    let tcp_tracepoint =
        tracefs::sock_state_offsets(&tracefs_dir, &mut config.tp).map_err(|e| e.to_string());

    // aya's own parse of the kernel BTF is only for loading fentry programs (the target
    // function's BTF id); it is dropped with `host` once every hook is attached.
    let aya_btf = if matches!(cfg.probe, ProbeChoice::Auto | ProbeChoice::Fentry) {
        aya::Btf::from_sys_fs().map_err(|e| format!("kernel BTF: {}", error_chain(&e)))
    } else {
        Err("not tried (--probe excludes fentry)".to_string())
    };
    let host = HostSupport {
        aya_btf,
        sock,
        raw_tracepoint,
        tcp_tracepoint,
        cgroup_root: cgroup::cgroup2_root()
            .and_then(|path| {
                File::open(&path).map_err(|source| CaptureError::CgroupOpen { path, source })
            })
            .map_err(|e| e.to_string()),
    };

    loader
        .override_global("CONFIG", &config, true)
        .override_global("AYA_LOG_LEVEL", &log_level, false)
        .map_max_entries(EVENTS_MAP, ring_bytes);
    let mut ebpf = loader
        .load(OBJECT)
        .map_err(|e| CaptureError::Object(error_chain(&e)))?;

    for (program, category, name) in PROCESS_PROGRAMS {
        attach_tracepoint(&mut ebpf, program, category, name).map_err(|e| e.into_error(program))?;
    }
    if config.task_valid != 0 {
        let (program, name) = FORK_PROGRAM;
        if let Err(e) = attach_raw_tracepoint(&mut ebpf, program, name) {
            tracing::warn!(
                program,
                error = %e.one_line(),
                "fork tracking unavailable: children that do not exec are learned from /proc"
            );
        }
    }

    let mut hooks = Vec::with_capacity(PLANS.len() + 3);
    if cfg.lifecycle {
        hooks.extend(attach_life(&mut ebpf, &host, &life));
    }
    for plan in &PLANS {
        let status = attach_hook(&mut ebpf, plan, cfg.probe, &host)?;
        tracing::info!(
            hook = status.hook,
            backend = status.backend,
            skipped = %skipped_reasons(&status),
            "capture hook attached"
        );
        hooks.push(status);
    }
    let mut udp_flows = false;
    if cfg.lifecycle {
        let send_side = udp_flow_send_side(&mut ebpf, &hooks);
        if let Some(status) = attach_udp_flows(&mut ebpf, &host, cfg.probe, &flow_fn, send_side) {
            hooks.push(status);
            udp_flows = true;
        }
    }
    if cfg.dns {
        let udp_on_cgroup = hooks
            .iter()
            .filter(|h| h.hook != "tcp_connect")
            .all(|h| h.backend == CGROUP);
        let owners_needed = !udp_on_cgroup || config.dns.tcp_on_recv == 0;
        match attach_dns(&mut ebpf, cfg.probe, &host, &dns, owners_needed) {
            Ok(status) => {
                tracing::info!(
                    hook = status.hook,
                    backend = status.backend,
                    skipped = %skipped_reasons(&status),
                    "DNS answer capture attached"
                );
                hooks.push(status);
            }
            Err(why) => tracing::warn!(
                reason = %why,
                "DNS answer capture unavailable: connections carry no destination.domain"
            ),
        }
    }
    if dns_recv.any() {
        match attach_dns_recv(&mut ebpf, cfg.probe, &host, &dns_recv) {
            Ok(status) => {
                tracing::info!(
                    hook = status.hook,
                    backend = status.backend,
                    skipped = %skipped_reasons(&status),
                    "TCP DNS answer capture attached"
                );
                hooks.push(status);
            }
            Err(why) => tracing::warn!(
                reason = %why,
                "TCP DNS answers unavailable (UDP answers are read in sk_data_ready)"
            ),
        }
    }
    // aya's parsed BTF goes now, and its pages back to the kernel before the ring buffer is
    // mapped: otherwise both count in the daemon's peak RSS.
    drop(host);
    super::release_freed_heap();
    release_object_pages();

    let program_ids = ebpf
        .programs()
        .filter_map(|(_, program)| program.info().ok().map(|info| info.id()))
        .collect();
    Ok(LoadedProbes {
        ebpf,
        hooks,
        program_ids,
        udp_flows,
    })
}

/// Takes the object's pages out of the resident set once every program is loaded: aya read
/// all of it (several MiB with its BTF), and nothing reads it again. They are this binary's
/// read-only data, a private file mapping, so a later read (none is made) would fault them
/// back in from the file unchanged. Only whole pages inside the object are released.
fn release_object_pages() {
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let start = (OBJECT.as_ptr() as usize).next_multiple_of(page);
    let end = (OBJECT.as_ptr() as usize + OBJECT.len()) / page * page;
    if end > start {
        // SAFETY: the range is page-aligned and inside `OBJECT`, read-only data of this
        // binary that no Rust reference writes through; MADV_DONTNEED on a private file
        // mapping only drops pages that are re-read from the file on the next access.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// A random seed for the kernel's flood-control hash. From getrandom(2); should that fail (it
/// does not block for 4 bytes once the pool is initialised), the clock and pid still make it
/// differ per start.
fn flood_seed() -> u32 {
    let mut seed = [0u8; 4];
    // SAFETY: the buffer is valid for 4 bytes.
    let n = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
    if n == 4 {
        return u32::from_ne_bytes(seed);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    now ^ std::process::id().rotate_left(16)
}

/// The kernel wants a power-of-two multiple of the page size.
fn ring_size(bytes: u32) -> Result<u32, CaptureError> {
    // SAFETY: sysconf has no preconditions.
    let page = u32::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    if !bytes.is_power_of_two() || bytes < page {
        return Err(CaptureError::Map {
            map: EVENTS_MAP,
            detail: format!(
                "ring buffer size {bytes} must be a power of two of at least the page size \
                 ({page} bytes)"
            ),
        });
    }
    Ok(bytes)
}

/// The backends `choice` allows for one hook, best first.
fn candidates(plan: &HookPlan, choice: ProbeChoice) -> &'static [&'static str] {
    let tcp = plan.tracepoint.is_some();
    match (tcp, choice) {
        (_, ProbeChoice::Fentry) => &[FENTRY],
        (_, ProbeChoice::Kprobe) => &[KPROBE],
        (true, ProbeChoice::Auto) => &[FENTRY, KPROBE, CGROUP, RAW_TRACEPOINT, TRACEPOINT],
        (true, ProbeChoice::Tracepoint) => &[CGROUP, RAW_TRACEPOINT, TRACEPOINT],
        (true, ProbeChoice::RawTracepoint) => &[RAW_TRACEPOINT],
        (true, ProbeChoice::ClassicTracepoint) => &[TRACEPOINT],
        (false, ProbeChoice::Auto) => &[FENTRY, KPROBE, CGROUP],
        (
            false,
            ProbeChoice::Tracepoint | ProbeChoice::RawTracepoint | ProbeChoice::ClassicTracepoint,
        ) => &[CGROUP],
    }
}

/// Tries the backends `choice` allows for one hook, best first; every one but the last may
/// fail (it is listed in `skipped`), the last one's failure is the error.
fn attach_hook(
    ebpf: &mut Ebpf,
    plan: &HookPlan,
    choice: ProbeChoice,
    host: &HostSupport,
) -> Result<HookStatus, CaptureError> {
    first_that_attaches(
        plan.hook,
        candidates(plan, choice),
        |backend| match backend {
            FENTRY => try_fentry(ebpf, plan, host),
            KPROBE => try_kprobe(ebpf, plan, host),
            RAW_TRACEPOINT => try_raw_tracepoint(ebpf, plan, host),
            CGROUP => try_cgroup(ebpf, plan, host),
            _ => try_tracepoint(ebpf, plan, host),
        },
    )
    .map_err(|mut failures| {
        let (backend, last) = failures.pop().expect("at least one candidate was tried");
        let mut reason = last.detailed();
        for (earlier, why) in &failures {
            reason.push_str(&format!("; before it, {earlier}: {}", why.one_line()));
        }
        CaptureError::BackendUnavailable {
            hook: plan.hook,
            backend,
            reason,
        }
    })
}

/// The one loop behind every hook's backend choice: tries `candidates` in order with
/// `attempt` and stops at the first that attaches, which is the hook's backend, the ones
/// before it listed in `skipped` with their one-line reasons. When none attaches, every
/// candidate's failure, in order (never empty unless `candidates` is).
fn first_that_attaches(
    hook: &'static str,
    candidates: &[&'static str],
    mut attempt: impl FnMut(&'static str) -> Result<(), Failure>,
) -> Result<HookStatus, Vec<(&'static str, Failure)>> {
    let mut failures = Vec::new();
    for &backend in candidates {
        match attempt(backend) {
            Ok(()) => {
                return Ok(HookStatus {
                    hook,
                    backend,
                    skipped: failures
                        .iter()
                        .map(|(b, f): &(&'static str, Failure)| (*b, f.one_line()))
                        .collect(),
                });
            }
            Err(failure) => {
                tracing::debug!(hook, backend, error = %failure.detailed(), "backend not usable");
                failures.push((backend, failure));
            }
        }
    }
    Err(failures)
}

/// `backend: reason; ...`, one line: a hook's failures, or the backends it skipped.
fn reasons<'a>(items: impl IntoIterator<Item = (&'a str, String)>) -> String {
    items
        .into_iter()
        .map(|(b, why)| format!("{b}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The one-line reasons of `first_that_attaches`'s failures.
fn failure_reasons(failures: &[(&'static str, Failure)]) -> String {
    reasons(failures.iter().map(|(b, f)| (*b, f.one_line())))
}

/// The skipped backends of a hook that attached.
fn skipped_reasons(status: &HookStatus) -> String {
    reasons(status.skipped.iter().map(|(b, why)| (*b, why.clone())))
}

/// Why a backend could not be used.
enum Failure {
    /// The host lacks something the backend needs (BTF, a cgroup v2 mount, ...).
    Unsupported(String),
    /// The object lacks the program, or it has another type: a build problem.
    Missing(&'static str),
    /// The kernel refused to load or attach the program.
    Kernel {
        program: &'static str,
        error: ProgramError,
    },
}

impl Failure {
    fn one_line(&self) -> String {
        match self {
            Failure::Unsupported(why) => why.clone(),
            Failure::Missing(program) => format!("program {program} missing from the object"),
            Failure::Kernel { error, .. } => one_line(error),
        }
    }

    fn detailed(&self) -> String {
        match self {
            Failure::Kernel { program, error } => format!("{program}: {}", detailed(error)),
            other => other.one_line(),
        }
    }

    fn into_error(self, program: &'static str) -> CaptureError {
        match self {
            Failure::Missing(program) => CaptureError::MissingProgram { program },
            Failure::Kernel { program, error } => CaptureError::Program {
                program,
                detail: detailed(&error),
            },
            Failure::Unsupported(why) => CaptureError::Program {
                program,
                detail: why,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::dns::{
        DNS_FENTRY, DNS_KPROBE, DNS_OWNER_PROGRAMS, DNS_RAW_TP, DNS_RECV_FENTRY, DNS_RECV_KPROBE,
        DNS_RECV_TP,
    };
    use super::life::{
        FLOW_ADDR_PROGRAMS, FLOW_COOKIE_PROGRAM, FLOW_FEXIT, FLOW_FEXIT_ADDR_LEN,
        FLOW_FEXIT_NOBLOCK, FLOW_KPROBES, FLOW_RECV_RAW_TP, FLOW_RELEASE_PROGRAM, FLOW_SWITCH_MAP,
        LIFE_BIND_ADDR_PROGRAMS, LIFE_BIND_PROGRAMS, LIFE_EARLY_PROGRAMS, LIFE_EARLY_TP,
        LIFE_RAW_TP,
    };
    use super::*;

    #[test]
    fn ring_size_must_be_a_power_of_two_of_pages() {
        assert_eq!(ring_size(1 << 20).unwrap(), 1 << 20);
        let err = ring_size(5000).unwrap_err().to_string();
        assert!(
            err.contains("EVENTS") && err.contains("power of two"),
            "{err}"
        );
        assert!(ring_size(1024).is_err());
    }

    #[test]
    fn plans_follow_the_hook_indices() {
        use monitor_common::hook;
        assert_eq!(PLANS[hook::TCP_CONNECT as usize].hook, "tcp_connect");
        assert_eq!(PLANS[hook::UDP_SEND_V4 as usize].hook, "udp_sendmsg");
        assert_eq!(PLANS[hook::UDP_SEND_V6 as usize].hook, "udpv6_sendmsg");
        assert_eq!(PLANS.len(), hook::COUNT);
        // Connected UDP sockets are reported at their first datagram by one program that
        // both UDP hooks attach with their sock_addr programs; TCP needs none.
        assert!(PLANS[hook::TCP_CONNECT as usize].first_datagram.is_none());
        for h in [hook::UDP_SEND_V4, hook::UDP_SEND_V6] {
            let first = PLANS[h as usize].first_datagram.as_ref().unwrap();
            assert_eq!(first.raw_program, "udp_raw_tp_sock_send_length");
            assert_eq!(first.egress_program, "udp_cgroup_skb_egress");
        }
    }

    #[test]
    fn the_fexit_flow_set_fits_the_receive_functions_parameters() {
        use super::life::fexit_set;
        let names = |n| fexit_set(n).map(|(p, _)| p);
        // The sends are the same everywhere; each list of receive parameters has its own
        // pair of receive programs, on the same functions.
        for n in [4, 5, 6] {
            assert_eq!(names(n)[..2], FLOW_FEXIT.map(|(p, _)| p)[..2]);
            assert_eq!(
                fexit_set(n).map(|(_, f)| f),
                [
                    "udp_sendmsg",
                    "udpv6_sendmsg",
                    "udp_recvmsg",
                    "udpv6_recvmsg"
                ]
            );
        }
        assert!(
            names(4)[2..]
                .iter()
                .all(|p| !p.contains("noblock") && !p.contains("addr_len"))
        );
        assert!(names(5)[2..].iter().all(|p| p.ends_with("_addr_len")));
        assert!(names(6)[2..].iter().all(|p| p.ends_with("_noblock")));
    }

    /// Creates the object's maps (root) without loading any program.
    #[test]
    #[cfg_attr(
        not(feature = "host-tests"),
        ignore = "needs root: cargo test --features host-tests, as root"
    )]
    fn every_planned_program_is_in_the_object() {
        let ebpf = EbpfLoader::new()
            .load(OBJECT)
            .unwrap_or_else(|e| panic!("parsing the object needs root: {}", error_chain(&e)));
        let mut names: Vec<&str> = PROCESS_PROGRAMS.iter().map(|p| p.0).collect();
        names.push(FORK_PROGRAM.0);
        for plan in &PLANS {
            names.extend([plan.fentry, plan.kprobe]);
            names.extend(plan.cgroup);
            if let Some(first) = &plan.first_datagram {
                names.extend([first.raw_program, first.egress_program]);
            }
            if let Some(tp) = &plan.tracepoint {
                names.extend([tp.raw_program, tp.program]);
            }
        }
        names.extend([DNS_FENTRY, DNS_KPROBE, DNS_RAW_TP.0, DNS_RECV_TP.0]);
        names.extend(DNS_RECV_FENTRY);
        names.extend(DNS_RECV_KPROBE);
        names.extend(DNS_OWNER_PROGRAMS);
        names.push(LIFE_RAW_TP.0);
        names.extend(LIFE_BIND_PROGRAMS);
        names.extend(LIFE_BIND_ADDR_PROGRAMS);
        names.extend(LIFE_EARLY_PROGRAMS);
        names.push(LIFE_EARLY_TP.0);
        names.extend(FLOW_ADDR_PROGRAMS);
        names.extend([
            FLOW_RECV_RAW_TP.0,
            FLOW_RELEASE_PROGRAM,
            FLOW_COOKIE_PROGRAM,
        ]);
        names.extend(FLOW_FEXIT.map(|(p, _)| p));
        names.extend(FLOW_FEXIT_ADDR_LEN.map(|(p, _)| p));
        names.extend(FLOW_FEXIT_NOBLOCK.map(|(p, _)| p));
        names.extend(FLOW_KPROBES.map(|(p, _)| p));
        for name in names {
            assert!(
                ebpf.program(name).is_some(),
                "{name} missing from the object"
            );
        }
        assert_eq!(
            ebpf.programs().count(),
            59,
            "an unplanned program is in the object"
        );
        assert!(ebpf.map(EVENTS_MAP).is_some() && ebpf.map(STATS_MAP).is_some());
        assert!(ebpf.map(UDP_FLOWS_MAP).is_some() && ebpf.map(FLOW_SWITCH_MAP).is_some());
    }
}
