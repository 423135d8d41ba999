//! Connection lifecycle capture (`--lifecycle`, issue #14): the `inet_sock_set_state` raw
//! tracepoint program for TCP outcomes, closes, accepts and listens, the cgroup
//! `post_bind4/6` programs for UDP binds, the cgroup `connect4/6` programs with the
//! `sys_exit_connect` tracepoint for connects the kernel fails before `SYN_SENT`, and the UDP
//! flow programs (`attach_udp_flows`: fexit, kprobe or cgroup, best first).

use std::fs::File;

use aya::{
    Ebpf,
    maps::{Array, MapData},
    programs::{CgroupAttachMode, CgroupSock, FExit, KProbe, RawTracePoint, TracePoint},
};
use monitor_common::{KernelConfig, udp_flow_counting};

use super::{
    CGROUP, FENTRY, Failure, HostSupport, KPROBE, RAW_TRACEPOINT, TRACEPOINT, attach_cgroups,
    attach_raw_tracepoint, attach_tracepoint, failure_reasons, first_that_attaches, kernel,
    program_mut, unload_cgroups, unload_quietly,
};
use crate::capture::{
    HookStatus, ProbeChoice,
    btf::{KernelBtf, OffsetError},
};

/// Fills `config.life` from BTF when the lifecycle is asked for; why not otherwise. The
/// program also needs what the raw tracepoints need (`raw_tracepoint`).
pub(super) fn resolve_offsets(
    wanted: bool,
    kernel_btf: &Result<KernelBtf, OffsetError>,
    raw_tracepoint: &Result<(), String>,
    config: &mut KernelConfig,
) -> Result<(), String> {
    match (kernel_btf, raw_tracepoint) {
        _ if !wanted => Err("not asked for (--lifecycle)".to_string()),
        (Ok(btf), Ok(())) => match btf.life_offsets() {
            Ok(offsets) => {
                config.life = offsets;
                Ok(())
            }
            Err(e) => Err(format!("kernel BTF: {e}")),
        },
        (_, Err(e)) => Err(e.clone()),
        (Err(e), _) => Err(format!("kernel BTF: {e}")),
    }
}

/// The TCP program and its raw tracepoint.
pub(super) const LIFE_RAW_TP: (&str, &str) =
    ("life_raw_tp_inet_sock_set_state", "inet_sock_set_state");
/// Connects the kernel fails before `SYN_SENT`: the cgroup programs that note each TCP
/// connect, and the tracepoint on `connect()`'s return that reports a noted one's error.
pub(super) const LIFE_EARLY_PROGRAMS: [&str; 2] = ["life_cgroup_connect4", "life_cgroup_connect6"];
pub(super) const LIFE_EARLY_TP: (&str, &str, &str) =
    ("life_tp_sys_exit_connect", "syscalls", "sys_exit_connect");
/// UDP binds: the `bind4/6` programs note binds to port 0 (a client's, not reported), the
/// `post_bind4/6` ones report the others.
pub(super) const LIFE_BIND_ADDR_PROGRAMS: [&str; 2] = ["life_cgroup_bind4", "life_cgroup_bind6"];
pub(super) const LIFE_BIND_PROGRAMS: [&str; 2] =
    ["life_cgroup_post_bind4", "life_cgroup_post_bind6"];
/// `HookStatus::hook` of each.
pub(super) const LIFE_TCP_HOOK: &str = "tcp_lifecycle";
pub(super) const LIFE_UDP_HOOK: &str = "udp_bind";
pub(super) const LIFE_EARLY_HOOK: &str = "tcp_early_failure";

/// Attaches what works; each part that does not is a warning (connect capture goes on).
/// Called before the connect hooks, so that on `inet_sock_set_state` the lifecycle program
/// runs first and the connect programs find the connection's id in its table.
pub(super) fn attach_life(
    ebpf: &mut Ebpf,
    host: &HostSupport,
    offsets: &Result<(), String>,
) -> Vec<HookStatus> {
    let mut hooks = Vec::new();
    let tcp = first_that_attaches(LIFE_TCP_HOOK, &[RAW_TRACEPOINT], |_| {
        offsets
            .clone()
            .and_then(|()| host.raw_tracepoint.clone())
            .map_err(Failure::Unsupported)
            .and_then(|()| attach_raw_tracepoint(ebpf, LIFE_RAW_TP.0, LIFE_RAW_TP.1))
    });
    let tcp_attached = report(
        &mut hooks,
        tcp,
        LIFE_TCP_HOOK,
        "TCP lifecycle unavailable: no outcome, close, accept or listen records",
    );
    // Needs the TCP program: its `SYN_SENT` takes the notes of connects that get that far,
    // which would otherwise be reported twice.
    let early = first_that_attaches(LIFE_EARLY_HOOK, &[TRACEPOINT], |_| {
        if !tcp_attached {
            return Err(Failure::Unsupported(format!("needs {LIFE_TCP_HOOK}")));
        }
        host.cgroup_root
            .as_ref()
            .map_err(|e| Failure::Unsupported(e.clone()))
            .and_then(|root| attach_early(ebpf, root))
    });
    report(
        &mut hooks,
        early,
        LIFE_EARLY_HOOK,
        "TCP connects refused before SYN_SENT (no route) unavailable: they get no result record",
    );
    let udp = first_that_attaches(LIFE_UDP_HOOK, &[CGROUP], |_| {
        host.cgroup_root
            .as_ref()
            .map_err(|e| Failure::Unsupported(e.clone()))
            .and_then(|root| attach_binds(ebpf, root))
    });
    report(
        &mut hooks,
        udp,
        LIFE_UDP_HOOK,
        "UDP bind capture unavailable: no UDP listen records",
    );
    hooks
}

/// Logs a lifecycle hook's outcome and keeps its status; `true` when it attached.
fn report(
    hooks: &mut Vec<HookStatus>,
    outcome: Result<HookStatus, Vec<(&'static str, Failure)>>,
    hook: &'static str,
    unavailable: &'static str,
) -> bool {
    match outcome {
        Ok(status) => {
            tracing::info!(
                hook = status.hook,
                backend = status.backend,
                "lifecycle hook attached"
            );
            hooks.push(status);
            true
        }
        Err(failures) => {
            tracing::warn!(hook, reason = %failure_reasons(&failures), "{unavailable}");
            false
        }
    }
}

/// A `cgroup_sock` program on the cgroup root (`attach_cgroup` is the `sock_addr` one).
fn attach_cgroup_sock(ebpf: &mut Ebpf, program: &'static str, root: &File) -> Result<(), Failure> {
    let prog: &mut CgroupSock = program_mut(ebpf, program)?;
    prog.load().map_err(kernel(program))?;
    if let Err(error) = prog.attach(root, CgroupAttachMode::default()) {
        unload_quietly(prog.unload(), program);
        return Err(kernel(program)(error));
    }
    Ok(())
}

/// The exit tracepoint, then the cgroup programs that note connects for it: all or nothing.
fn attach_early(ebpf: &mut Ebpf, root: &File) -> Result<(), Failure> {
    let (tp, category, name) = LIFE_EARLY_TP;
    attach_tracepoint(ebpf, tp, category, name)?;
    attach_cgroups(ebpf, &LIFE_EARLY_PROGRAMS, root).inspect_err(|_| {
        if let Ok(p) = program_mut::<TracePoint>(ebpf, tp) {
            unload_quietly(p.unload(), tp);
        }
    })
}

/// The `bind` and `post_bind` programs on the cgroup root, all or none.
fn attach_binds(ebpf: &mut Ebpf, root: &File) -> Result<(), Failure> {
    attach_cgroups(ebpf, &LIFE_BIND_ADDR_PROGRAMS, root)?;
    for (i, program) in LIFE_BIND_PROGRAMS.into_iter().enumerate() {
        if let Err(failure) = attach_cgroup_sock(ebpf, program, root) {
            for earlier in &LIFE_BIND_PROGRAMS[..i] {
                if let Ok(p) = program_mut::<CgroupSock>(ebpf, earlier) {
                    unload_quietly(p.unload(), earlier);
                }
            }
            unload_cgroups(ebpf, &LIFE_BIND_ADDR_PROGRAMS);
            return Err(failure);
        }
    }
    Ok(())
}

/// UDP flow summaries (`HookStatus::hook` `udp_flow`), best first: fexit on the UDP send
/// and receive functions, kprobes on them, then the cgroup set: `recvmsg4/6` and the
/// `sock_recv_length` raw tracepoint, with the UDP capture's `sendmsg4/6` and
/// `sock_send_length` programs as the send side (`udp_flow_send_side`). Each with the
/// release program, which summarises a closing socket's flows.
pub(super) const FLOW_FEXIT: [(&str, &str); 4] = [
    ("udp_flow_fexit_udp_sendmsg", "udp_sendmsg"),
    ("udp_flow_fexit_udpv6_sendmsg", "udpv6_sendmsg"),
    ("udp_flow_fexit_udp_recvmsg", "udp_recvmsg"),
    ("udp_flow_fexit_udpv6_recvmsg", "udpv6_recvmsg"),
];
/// The receive programs for the other parameter lists (`LifeOffsets::udp_recvmsg_args`):
/// 5 (`addr_len` last, Linux 5.19 on) and 6 (`noblock`, before 5.19). They replace the
/// last two of `FLOW_FEXIT` there.
pub(super) const FLOW_FEXIT_ADDR_LEN: [(&str, &str); 2] = [
    ("udp_flow_fexit_udp_recvmsg_addr_len", "udp_recvmsg"),
    ("udp_flow_fexit_udpv6_recvmsg_addr_len", "udpv6_recvmsg"),
];
pub(super) const FLOW_FEXIT_NOBLOCK: [(&str, &str); 2] = [
    ("udp_flow_fexit_udp_recvmsg_noblock", "udp_recvmsg"),
    ("udp_flow_fexit_udpv6_recvmsg_noblock", "udpv6_recvmsg"),
];

/// The fexit programs for a kernel whose receive functions take `recvmsg_args` parameters.
pub(super) fn fexit_set(recvmsg_args: u32) -> [(&'static str, &'static str); 4] {
    let mut set = FLOW_FEXIT;
    match recvmsg_args {
        5 => set[2..].copy_from_slice(&FLOW_FEXIT_ADDR_LEN),
        6 => set[2..].copy_from_slice(&FLOW_FEXIT_NOBLOCK),
        _ => {}
    }
    set
}

/// Entries of the four functions and `skb_consume_udp` (a receive's end), then the two
/// sends' returns.
pub(super) const FLOW_KPROBES: [(&str, &str); 7] = [
    ("udp_flow_kprobe_udp_sendmsg", "udp_sendmsg"),
    ("udp_flow_kprobe_udpv6_sendmsg", "udpv6_sendmsg"),
    ("udp_flow_kprobe_udp_recvmsg", "udp_recvmsg"),
    ("udp_flow_kprobe_udpv6_recvmsg", "udpv6_recvmsg"),
    ("udp_flow_kprobe_skb_consume_udp", "skb_consume_udp"),
    ("udp_flow_kretprobe_udp_sendmsg", "udp_sendmsg"),
    ("udp_flow_kretprobe_udpv6_sendmsg", "udpv6_sendmsg"),
];
pub(super) const FLOW_ADDR_PROGRAMS: [&str; 2] = ["udp_cgroup_recvmsg4", "udp_cgroup_recvmsg6"];
pub(super) const FLOW_RECV_RAW_TP: (&str, &str) =
    ("udp_raw_tp_sock_recv_length", "sock_recv_length");
pub(super) const FLOW_RELEASE_PROGRAM: &str = "life_cgroup_sock_release";
/// The fexit and kprobe sets' program that gives each new UDP socket its cookie.
pub(super) const FLOW_COOKIE_PROGRAM: &str = "udp_flow_cgroup_sock_create";
pub(super) const FLOW_SWITCH_MAP: &str = "UDP_FLOW_ON";
pub(super) const LIFE_FLOW_HOOK: &str = "udp_flow";

/// The receive functions' parameter count, also into `config` (the fexit and kprobe flow
/// programs need it); why not, when BTF does not give it.
pub(super) fn resolve_flow_fn(
    wanted: bool,
    kernel_btf: &Result<KernelBtf, OffsetError>,
    config: &mut KernelConfig,
) -> Result<u32, String> {
    if !wanted {
        return Err("not asked for (--lifecycle)".to_string());
    }
    let btf = kernel_btf
        .as_ref()
        .map_err(|e| format!("kernel BTF: {e}"))?;
    let args = btf
        .udp_recvmsg_args()
        .map_err(|e| format!("kernel BTF: {e}"))?;
    config.life.udp_recvmsg_args = args;
    Ok(args)
}

/// Attaches the best flow programs `choice` allows and turns their counting on
/// (`UDP_FLOW_ON`), or explains in a warning why there are no UDP flow records.
pub(super) fn attach_udp_flows(
    ebpf: &mut Ebpf,
    host: &HostSupport,
    choice: ProbeChoice,
    flow_fn: &Result<u32, String>,
    send_side_ready: Result<(), String>,
) -> Option<HookStatus> {
    let recvmsg_args = flow_fn.as_ref().map_or(0, |n| *n);
    let candidates: &[&'static str] = match choice {
        ProbeChoice::Auto => &[FENTRY, KPROBE, CGROUP],
        ProbeChoice::Fentry => &[FENTRY],
        ProbeChoice::Kprobe => &[KPROBE],
        _ => &[CGROUP],
    };
    let attached = first_that_attaches(LIFE_FLOW_HOOK, candidates, |backend| {
        let root = host
            .cgroup_root
            .as_ref()
            .map_err(|e| Failure::Unsupported(format!("the close program: {e}")))?;
        let sock = || host.sock.clone().map(|_| ()).map_err(Failure::Unsupported);
        let fn_args = || flow_fn.clone().map(|_| ()).map_err(Failure::Unsupported);
        let mode = match backend {
            FENTRY => {
                let btf = host
                    .aya_btf
                    .as_ref()
                    .map_err(|e| Failure::Unsupported(e.clone()))?;
                sock().and_then(|()| fn_args())?;
                let set = fexit_set(recvmsg_args);
                attach_all(ebpf, set.len(), |ebpf, i| attach_fexit(ebpf, set[i], btf))?;
                with_release(ebpf, root, |ebpf| {
                    unload_named(ebpf, &set.map(|(p, _)| p));
                })?;
                udp_flow_counting::KERNEL_FN
            }
            KPROBE => {
                sock().and_then(|()| fn_args())?;
                attach_all(ebpf, FLOW_KPROBES.len(), |ebpf, i| {
                    attach_kprobe(ebpf, FLOW_KPROBES[i])
                })?;
                with_release(ebpf, root, |ebpf| {
                    unload_named(ebpf, &FLOW_KPROBES.map(|(p, _)| p));
                })?;
                udp_flow_counting::KERNEL_FN
            }
            _ => {
                send_side_ready.clone().map_err(Failure::Unsupported)?;
                sock()?;
                host.raw_tracepoint.clone().map_err(Failure::Unsupported)?;
                attach_flow_programs(ebpf, root)?;
                udp_flow_counting::CGROUP
            }
        };
        switch_on(ebpf, mode)
    });
    match attached {
        Ok(status) => {
            tracing::info!(
                hook = status.hook,
                backend = status.backend,
                skipped = %super::skipped_reasons(&status),
                "lifecycle hook attached"
            );
            Some(status)
        }
        Err(failures) => {
            // Detailed: a program the verifier refused comes with the end of its log.
            let reasons: Vec<String> = failures
                .iter()
                .map(|(backend, f)| format!("{backend}: {}", f.detailed()))
                .collect();
            tracing::warn!(
                reason = %reasons.join("; "),
                "UDP flow summaries unavailable: no UDP flow records"
            );
            None
        }
    }
}

/// Attaches `count` programs with `attach(ebpf, i)`, all or none: a failure unloads the
/// ones before it (`attach` leaves nothing behind when it fails).
fn attach_all(
    ebpf: &mut Ebpf,
    count: usize,
    mut attach: impl FnMut(&mut Ebpf, usize) -> Result<&'static str, Failure>,
) -> Result<(), Failure> {
    let mut attached = Vec::with_capacity(count);
    for i in 0..count {
        match attach(ebpf, i) {
            Ok(program) => attached.push(program),
            Err(failure) => {
                for program in attached {
                    unload_any(ebpf, program);
                }
                return Err(failure);
            }
        }
    }
    Ok(())
}

/// The cookie and release programs after a set's counting programs; `undo` unloads the
/// set when they do not attach.
fn with_release(ebpf: &mut Ebpf, root: &File, undo: impl FnOnce(&mut Ebpf)) -> Result<(), Failure> {
    let attached = attach_cgroup_sock(ebpf, FLOW_COOKIE_PROGRAM, root).and_then(|()| {
        attach_cgroup_sock(ebpf, FLOW_RELEASE_PROGRAM, root).inspect_err(|_| {
            if let Ok(p) = program_mut::<CgroupSock>(ebpf, FLOW_COOKIE_PROGRAM) {
                unload_quietly(p.unload(), FLOW_COOKIE_PROGRAM);
            }
        })
    });
    attached.inspect_err(|_| undo(ebpf))
}

fn attach_fexit(
    ebpf: &mut Ebpf,
    (program, function): (&'static str, &'static str),
    btf: &aya::Btf,
) -> Result<&'static str, Failure> {
    let prog: &mut FExit = program_mut(ebpf, program)?;
    prog.load(function, btf).map_err(kernel(program))?;
    if let Err(error) = prog.attach() {
        unload_quietly(prog.unload(), program);
        return Err(kernel(program)(error));
    }
    Ok(program)
}

fn attach_kprobe(
    ebpf: &mut Ebpf,
    (program, function): (&'static str, &'static str),
) -> Result<&'static str, Failure> {
    let prog: &mut KProbe = program_mut(ebpf, program)?;
    prog.load().map_err(kernel(program))?;
    if let Err(error) = prog.attach(function, 0) {
        unload_quietly(prog.unload(), program);
        return Err(kernel(program)(error));
    }
    Ok(program)
}

/// Unloads an attached fexit or kprobe program (detaching it).
fn unload_any(ebpf: &mut Ebpf, program: &'static str) {
    if let Ok(p) = program_mut::<FExit>(ebpf, program) {
        unload_quietly(p.unload(), program);
    } else if let Ok(p) = program_mut::<KProbe>(ebpf, program) {
        unload_quietly(p.unload(), program);
    }
}

fn unload_named(ebpf: &mut Ebpf, programs: &[&'static str]) {
    for &program in programs {
        unload_any(ebpf, program);
    }
}

/// The cgroup set's receive programs and the release program, all or none.
fn attach_flow_programs(ebpf: &mut Ebpf, root: &File) -> Result<(), Failure> {
    attach_cgroups(ebpf, &FLOW_ADDR_PROGRAMS, root)?;
    if let Err(failure) = attach_raw_tracepoint(ebpf, FLOW_RECV_RAW_TP.0, FLOW_RECV_RAW_TP.1) {
        unload_cgroups(ebpf, &FLOW_ADDR_PROGRAMS);
        return Err(failure);
    }
    if let Err(failure) = attach_cgroup_sock(ebpf, FLOW_RELEASE_PROGRAM, root) {
        unload_cgroups(ebpf, &FLOW_ADDR_PROGRAMS);
        if let Ok(p) = program_mut::<RawTracePoint>(ebpf, FLOW_RECV_RAW_TP.0) {
            unload_quietly(p.unload(), FLOW_RECV_RAW_TP.0);
        }
        return Err(failure);
    }
    Ok(())
}

/// Turns counting by `mode` on in the kernel (`UDP_FLOW_ON[0] = mode`).
fn switch_on(ebpf: &mut Ebpf, mode: u32) -> Result<(), Failure> {
    let map = ebpf
        .map_mut(FLOW_SWITCH_MAP)
        .ok_or(Failure::Missing(FLOW_SWITCH_MAP))?;
    let mut on: Array<&mut MapData, u32> = Array::try_from(map)
        .map_err(|e| Failure::Unsupported(format!("{FLOW_SWITCH_MAP}: {e}")))?;
    on.set(0, mode, 0)
        .map_err(|e| Failure::Unsupported(format!("{FLOW_SWITCH_MAP}: {e}")))
}

/// Whether the UDP capture attached what counts a flow's sends: the cgroup programs for
/// both UDP hooks (`sendmsg4/6` name the destination) and the `sock_send_length` raw
/// tracepoint (the length); why not otherwise.
pub(super) fn udp_flow_send_side(ebpf: &mut Ebpf, hooks: &[HookStatus]) -> Result<(), String> {
    if let Some(h) = hooks.iter().find(|h| {
        h.hook != "tcp_connect"
            && h.backend != CGROUP
            && super::PLANS.iter().any(|p| p.hook == h.hook)
    }) {
        return Err(format!(
            "{} is captured with {}: UDP flows count sends in the cgroup programs",
            h.hook, h.backend
        ));
    }
    let program = super::UDP_FIRST_DATAGRAM.raw_program;
    match program_mut::<RawTracePoint>(ebpf, program) {
        Ok(p) if p.fd().is_ok() => Ok(()),
        _ => Err(format!(
            "{program} is not attached (Linux 6.3+ has its tracepoint): UDP flows count sends \
             there"
        )),
    }
}
