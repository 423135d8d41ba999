//! DNS answer capture (issue #13): the answer programs on `sk_data_ready` (fentry, kprobe
//! or the raw tracepoint), the receive program for TCP answers, and the cgroup programs that
//! remember which process asked through which socket where the UDP cgroup programs do not.

use aya::{
    Ebpf,
    programs::{FEntry, KProbe},
};

use super::{
    FENTRY, Failure, HostSupport, KPROBE, RAW_TRACEPOINT, attach_cgroup, attach_raw_tracepoint,
    kernel, program_mut, unload_quietly,
};
use crate::capture::{HookStatus, ProbeChoice};

/// DNS answers (dns.rs in the eBPF crate): the programs on `sk_data_ready`, best first, and
/// the cgroup programs that remember which process asked through which socket.
pub(super) const DNS_ANSWER_FN: &str = "sock_def_readable";
pub(super) const DNS_FENTRY: &str = "dns_fentry_sock_def_readable";
pub(super) const DNS_KPROBE: &str = "dns_kprobe_sock_def_readable";
pub(super) const DNS_RAW_TP: (&str, &str) = ("dns_raw_tp_sk_data_ready", "sk_data_ready");
/// TCP answers, read where the process receives them (see `KernelConfig::dns`).
pub(super) const DNS_RECV_TP: (&str, &str) = ("dns_raw_tp_sock_recv_length", "sock_recv_length");
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
    let mut skipped = Vec::new();
    for &backend in candidates {
        let result = match backend {
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
        };
        match result {
            Ok(()) => {
                return Ok(HookStatus {
                    hook: DNS_HOOK,
                    backend,
                    skipped,
                });
            }
            Err(failure) => {
                tracing::debug!(backend, error = %failure.detailed(), "DNS answer program");
                skipped.push((backend, failure.one_line()));
            }
        }
    }
    Err(skipped
        .iter()
        .map(|(b, why)| format!("{b}: {why}"))
        .collect::<Vec<_>>()
        .join("; "))
}
