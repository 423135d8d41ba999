//! DNS answer capture (issue #13): the answer programs on `sk_data_ready` (fentry, kprobe
//! or the raw tracepoint), the receive programs for TCP answers (the `sock_recv_length` raw
//! tracepoint, else fentry/fexit on `sock_recvmsg` or kprobes on it and on
//! `tcp_rcv_space_adjust`), and the
//! cgroup programs that remember which process asked through which socket where the UDP
//! cgroup programs do not.

use std::path::Path;

use aya::{
    Ebpf,
    programs::{FEntry, FExit, KProbe},
};
use monitor_common::{DnsOffsets, OFFSET_ABSENT};

use super::{
    FENTRY, Failure, HostSupport, KPROBE, RAW_TRACEPOINT, attach_cgroup, attach_raw_tracepoint,
    failure_reasons, first_that_attaches, kernel, program_mut, unload_quietly,
};
use crate::capture::{CaptureConfig, HookStatus, ProbeChoice, btf::KernelBtf};

/// DNS answers (dns.rs in the eBPF crate): the programs on `sk_data_ready`, best first, and
/// the cgroup programs that remember which process asked through which socket.
pub(super) const DNS_ANSWER_FN: &str = "sock_def_readable";
pub(super) const DNS_FENTRY: &str = "dns_fentry_sock_def_readable";
pub(super) const DNS_KPROBE: &str = "dns_kprobe_sock_def_readable";
pub(super) const DNS_RAW_TP: (&str, &str) = ("dns_raw_tp_sk_data_ready", "sk_data_ready");
/// TCP answers, read where the process receives them (see `KernelConfig::dns`).
pub(super) const DNS_RECV_TP: (&str, &str) = ("dns_raw_tp_sock_recv_length", "sock_recv_length");
/// Kernels before 6.3: entry and return of `sock_recvmsg`, attached as a pair; for kprobes,
/// entry of `sock_recvmsg` and of `tcp_rcv_space_adjust` (after each chunk copied; a
/// kretprobe misses returns while readers elsewhere block, see the eBPF program).
pub(super) const DNS_RECV_FN: &str = "sock_recvmsg";
pub(super) const DNS_RECV_COPIED_FN: &str = "tcp_rcv_space_adjust";
pub(super) const DNS_RECV_FENTRY: [&str; 2] = ["dns_fentry_sock_recvmsg", "dns_fexit_sock_recvmsg"];
pub(super) const DNS_RECV_KPROBE: [&str; 2] =
    ["dns_kprobe_sock_recvmsg", "dns_kprobe_tcp_rcv_space_adjust"];
/// `HookStatus::hook` of the TCP answer capture.
pub(super) const DNS_RECV_HOOK: &str = "dns_tcp_answer";
pub(super) const DNS_OWNER_PROGRAMS: [&str; 4] = [
    "dns_cgroup_connect4",
    "dns_cgroup_connect6",
    "dns_cgroup_sendmsg4",
    "dns_cgroup_sendmsg6",
];
/// `HookStatus::hook` of the DNS answer capture.
pub(super) const DNS_HOOK: &str = "dns_answer";

/// DNS answer capture: the socket-owner programs on the cgroup root (without them answers
/// are attributed to the host only), then the best answer program that attaches.
pub(super) fn attach_dns(
    ebpf: &mut Ebpf,
    choice: ProbeChoice,
    host: &HostSupport,
    offsets: &Result<(), String>,
    owners_needed: bool,
) -> Result<HookStatus, String> {
    offsets.clone()?;
    match host.cgroup_root.as_ref() {
        // The UDP cgroup programs remember askers themselves; TCP answers read at the
        // receiver need no asker.
        _ if !owners_needed => {}
        Ok(root) => {
            for program in DNS_OWNER_PROGRAMS {
                if let Err(e) = attach_cgroup(ebpf, program, root) {
                    tracing::warn!(
                        program,
                        error = %e.one_line(),
                        "DNS answers will not name the process that asked (host-wide only)"
                    );
                }
            }
        }
        Err(e) => tracing::warn!(
            error = %e,
            "no cgroup v2 root: DNS answers will not name the process that asked"
        ),
    }
    let candidates: &[&'static str] = match choice {
        ProbeChoice::Auto => &[FENTRY, KPROBE, RAW_TRACEPOINT],
        ProbeChoice::Fentry => &[FENTRY],
        ProbeChoice::Kprobe => &[KPROBE],
        _ => &[RAW_TRACEPOINT],
    };
    first_that_attaches(DNS_HOOK, candidates, |backend| match backend {
        FENTRY => host
            .aya_btf
            .as_ref()
            .map_err(|e| Failure::Unsupported(e.clone()))
            .and_then(|btf| {
                let program: &mut FEntry = program_mut(ebpf, DNS_FENTRY)?;
                program
                    .load(DNS_ANSWER_FN, btf)
                    .map_err(kernel(DNS_FENTRY))?;
                if let Err(error) = program.attach() {
                    unload_quietly(program.unload(), DNS_FENTRY);
                    return Err(kernel(DNS_FENTRY)(error));
                }
                Ok(())
            }),
        KPROBE => program_mut::<KProbe>(ebpf, DNS_KPROBE).and_then(|program| {
            program.load().map_err(kernel(DNS_KPROBE))?;
            if let Err(error) = program.attach(DNS_ANSWER_FN, 0) {
                unload_quietly(program.unload(), DNS_KPROBE);
                return Err(kernel(DNS_KPROBE)(error));
            }
            Ok(())
        }),
        _ => attach_raw_tracepoint(ebpf, DNS_RAW_TP.0, DNS_RAW_TP.1),
    })
    .map_err(|failures| failure_reasons(&failures))
}

/// The `sock_recvmsg` programs' offsets into `config`; why not, when they cannot be had.
pub(super) fn recv_offsets(
    btf: Result<&KernelBtf, &crate::capture::btf::OffsetError>,
    dns: &Result<(), String>,
    config: &mut DnsOffsets,
) -> Result<(), String> {
    dns.clone()?;
    let btf = btf.map_err(|e| format!("kernel BTF: {e}"))?;
    config.recv = btf
        .dns_recv_offsets()
        .map_err(|e| format!("kernel BTF: {e}"))?;
    Ok(())
}

/// Which TCP answer programs can work here, decided before the object is loaded (the
/// answer programs on `sk_data_ready` leave TCP alone when any can: `tcp_on_recv`).
pub(super) struct RecvSupport {
    /// The raw tracepoint: Linux 6.3+, x86_64's syscall registers, a tracepoint `--probe`.
    tracepoint: Result<(), String>,
    /// The `sock_recvmsg` pairs: their offsets, and `--probe auto|fentry|kprobe`.
    pairs: Result<(), String>,
}

impl RecvSupport {
    pub(super) fn new(
        cfg: &CaptureConfig,
        offsets: &DnsOffsets,
        dns: &Result<(), String>,
        recv_offsets: Result<(), String>,
        tracefs: &Path,
    ) -> RecvSupport {
        if !cfg.dns {
            let off = || Err("DNS capture is off".to_string());
            return RecvSupport {
                tracepoint: off(),
                pairs: off(),
            };
        }
        let tracepoint = dns.clone().and_then(|()| {
            if offsets.regs_si == OFFSET_ABSENT || offsets.regs_orig_ax == OFFSET_ABSENT {
                Err("no x86_64 pt_regs in the kernel BTF".to_string())
            } else if !tracefs.join("events/sock/sock_recv_length").is_dir() {
                Err("no sock:sock_recv_length tracepoint (Linux 6.3+)".to_string())
            } else {
                Ok(())
            }
        });
        let pairs = recv_offsets;
        let (tracepoint, pairs) = match cfg.probe {
            ProbeChoice::Auto => (tracepoint, pairs),
            ProbeChoice::Fentry | ProbeChoice::Kprobe => {
                (Err("not tried (--probe)".to_string()), pairs)
            }
            _ => (tracepoint, Err("not tried (--probe)".to_string())),
        };
        RecvSupport { tracepoint, pairs }
    }

    /// Whether any TCP answer program may attach.
    pub(super) fn any(&self) -> bool {
        self.tracepoint.is_ok() || self.pairs.is_ok()
    }
}

/// TCP answers, read where the process receives them: the `sock_recv_length` raw tracepoint
/// where the kernel has it, else the fentry/fexit pair on `sock_recvmsg`, else the kprobe
/// pair, within what `choice` allows.
pub(super) fn attach_dns_recv(
    ebpf: &mut Ebpf,
    choice: ProbeChoice,
    host: &HostSupport,
    support: &RecvSupport,
) -> Result<HookStatus, String> {
    let candidates: &[&'static str] = match choice {
        ProbeChoice::Auto => &[RAW_TRACEPOINT, FENTRY, KPROBE],
        ProbeChoice::Fentry => &[FENTRY],
        ProbeChoice::Kprobe => &[KPROBE],
        _ => &[RAW_TRACEPOINT],
    };
    first_that_attaches(DNS_RECV_HOOK, candidates, |backend| match backend {
        RAW_TRACEPOINT => support
            .tracepoint
            .clone()
            .map_err(Failure::Unsupported)
            .and_then(|()| attach_raw_tracepoint(ebpf, DNS_RECV_TP.0, DNS_RECV_TP.1)),
        FENTRY => support
            .pairs
            .clone()
            .map_err(Failure::Unsupported)
            .and_then(|()| {
                host.aya_btf
                    .as_ref()
                    .map_err(|e| Failure::Unsupported(e.clone()))
            })
            .and_then(|btf| attach_recv_fentry(ebpf, btf)),
        _ => support
            .pairs
            .clone()
            .map_err(Failure::Unsupported)
            .and_then(|()| attach_recv_kprobe(ebpf)),
    })
    .map_err(|failures| failure_reasons(&failures))
}

/// The fexit program first, then the fentry: an entry is never remembered without its
/// return to take it. Both or neither stay attached.
fn attach_recv_fentry(ebpf: &mut Ebpf, btf: &aya::Btf) -> Result<(), Failure> {
    let [entry, exit] = DNS_RECV_FENTRY;
    let program: &mut FExit = program_mut(ebpf, exit)?;
    program.load(DNS_RECV_FN, btf).map_err(kernel(exit))?;
    if let Err(error) = program.attach() {
        unload_quietly(program.unload(), exit);
        return Err(kernel(exit)(error));
    }
    let attached = program_mut::<FEntry>(ebpf, entry).and_then(|program| {
        program.load(DNS_RECV_FN, btf).map_err(kernel(entry))?;
        if let Err(error) = program.attach() {
            unload_quietly(program.unload(), entry);
            return Err(kernel(entry)(error));
        }
        Ok(())
    });
    if attached.is_err()
        && let Ok(program) = program_mut::<FExit>(ebpf, exit)
    {
        unload_quietly(program.unload(), exit);
    }
    attached
}

/// The copy side first, then the entry (as `attach_recv_fentry`).
fn attach_recv_kprobe(ebpf: &mut Ebpf) -> Result<(), Failure> {
    let [entry, copied] = DNS_RECV_KPROBE;
    let mut attached = Vec::new();
    for (program_name, function) in [(copied, DNS_RECV_COPIED_FN), (entry, DNS_RECV_FN)] {
        let result = program_mut::<KProbe>(ebpf, program_name).and_then(|program| {
            program.load().map_err(kernel(program_name))?;
            if let Err(error) = program.attach(function, 0) {
                unload_quietly(program.unload(), program_name);
                return Err(kernel(program_name)(error));
            }
            Ok(())
        });
        if let Err(failure) = result {
            for earlier in attached {
                if let Ok(program) = program_mut::<KProbe>(ebpf, earlier) {
                    unload_quietly(program.unload(), earlier);
                }
            }
            return Err(failure);
        }
        attached.push(program_name);
    }
    Ok(())
}
