//! TCP connects: fentry or kprobe on `tcp_connect`, else cgroup `connect4/6`, else
//! `inet_sock_set_state` as a raw tracepoint, else as a classic tracepoint
//! (`sock:inet_sock_set_state`).

use aya_ebpf::{
    EbpfContext,
    helpers::bpf_get_current_pid_tgid,
    macros::{cgroup_sock_addr, fentry, kprobe, raw_tracepoint, tracepoint},
    programs::{
        FEntryContext, ProbeContext, RawTracePointContext, SockAddrContext, TracePointContext,
    },
};
use monitor_common::{AF_INET, AF_INET6, IPPROTO_TCP, backend, hook, stat};

use crate::{
    emit::{Flow, Origin, count, emit_connect, finish, is_excluded},
    kernel::{current_start_time, read_at, sock_family, sock_flow},
    life,
    maps::config,
    sock_addr,
};

/// `include/net/tcp_states.h`.
const TCP_SYN_SENT: i32 = 2;
const TCP_CLOSE: i32 = 7;

/// `int tcp_connect(struct sock *sk)` (net/ipv4/tcp_output.c), for IPv4 and IPv6 sockets.
/// Runs in the connecting task, with the source address and port already bound.
#[fentry(function = "tcp_connect")]
pub fn tcp_fentry_tcp_connect(ctx: FEntryContext) -> u32 {
    let sk: *const u8 = ctx.arg(0);
    finish(
        &ctx,
        "tcp_fentry_tcp_connect",
        try_tcp_connect(sk, backend::FENTRY),
    )
}

/// `int tcp_connect(struct sock *sk)`, as a kprobe for kernels that refuse fentry.
#[kprobe]
pub fn tcp_kprobe_tcp_connect(ctx: ProbeContext) -> u32 {
    let Some(sk) = ctx.arg::<*const u8>(0) else {
        count(stat::READ_FAILED);
        return 0;
    };
    finish(
        &ctx,
        "tcp_kprobe_tcp_connect",
        try_tcp_connect(sk, backend::KPROBE),
    )
}

fn try_tcp_connect(sk: *const u8, backend: u32) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if is_excluded(pid_tgid) {
        return Ok(());
    }
    let family = sock_family(sk)?;
    let Some(mut flow) = sock_flow(sk, family)? else {
        return Ok(());
    };
    if config!(life.valid) != 0 {
        // The lifecycle program saw `SYN_SENT` first (it is attached before this one).
        flow.conn_id = life::tracked_id(sk);
    }
    let origin = Origin {
        hook: hook::TCP_CONNECT,
        backend,
        protocol: IPPROTO_TCP,
    };
    emit_connect(origin, &flow, pid_tgid, current_start_time());
    Ok(())
}

/// `cgroup/connect4`: `connect()` (or a TCP Fast Open `sendmsg`) on an IPv4 socket, in the
/// caller's context, once per connect. The tracepoints below run on every state change of
/// every TCP socket (six per loopback connect) to find the one that is a connect; this hook
/// runs only on connects, so it is preferred when fentry and kprobes are unavailable. It sees
/// the destination the caller asked for, before routing: a connect that then fails to route
/// is still reported (as an attempt). The source port is known only if the socket was bound.
/// Always returns 1: the monitor never blocks or alters traffic.
#[cgroup_sock_addr(connect4)]
pub fn tcp_cgroup_connect4(ctx: SockAddrContext) -> i32 {
    finish(&ctx, "tcp_cgroup_connect4", try_tcp_cgroup(&ctx, false));
    1
}

/// `cgroup/connect6`: as `connect4`, for IPv6 sockets. A dual-stack socket's connect to an
/// IPv4-mapped peer is reported here with the mapped address, as the tracepoints and
/// `tcp_connect` report it (the kernel runs no `connect4` for it). Always returns 1.
#[cgroup_sock_addr(connect6)]
pub fn tcp_cgroup_connect6(ctx: SockAddrContext) -> i32 {
    finish(&ctx, "tcp_cgroup_connect6", try_tcp_cgroup(&ctx, true));
    1
}

fn try_tcp_cgroup(ctx: &SockAddrContext, v6: bool) -> Result<(), i64> {
    // The same hooks see UDP connects (`udp_cgroup_connect4/6` report those).
    if sock_addr::protocol(ctx) != u32::from(IPPROTO_TCP) {
        return Ok(());
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    if is_excluded(pid_tgid) {
        return Ok(());
    }
    let mut flow = sock_addr::flow(ctx, v6);
    if config!(life.valid) != 0 {
        // Asking for the cookie stores it in the socket, where the lifecycle program reads
        // it as the connection's id.
        flow.conn_id = sock_addr::cookie(ctx);
    }
    let origin = Origin {
        hook: hook::TCP_CONNECT,
        backend: backend::CGROUP,
        protocol: IPPROTO_TCP,
    };
    emit_connect(origin, &flow, pid_tgid, current_start_time());
    Ok(())
}

/// `inet_sock_set_state` as a raw tracepoint: `args` are `TP_PROTO(const struct sock *sk,
/// const int oldstate, const int newstate)` as passed, so the kernel builds no trace record
/// (the classic tracepoint below copies every field, addresses included, on each of the six
/// state changes of a loopback connect before its program can look at `newstate`). The
/// `struct sock` fields come from BTF offsets, as for fentry/kprobe.
#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub fn tcp_raw_tp_inet_sock_set_state(ctx: RawTracePointContext) -> u32 {
    // Filter on the argument first: every state change of every TCP socket lands here.
    if ctx.arg::<i32>(2) != TCP_SYN_SENT {
        return 0;
    }
    finish(
        &ctx,
        "tcp_raw_tp_inet_sock_set_state",
        try_tcp_raw_tp_inet_sock_set_state(&ctx),
    )
}

fn try_tcp_raw_tp_inet_sock_set_state(ctx: &RawTracePointContext) -> Result<(), i64> {
    if ctx.arg::<i32>(1) != TCP_CLOSE {
        return Ok(());
    }
    let sk: *const u8 = ctx.arg(0);
    // MPTCP (and SCTP) sockets change state through the same tracepoint; an MPTCP connect's
    // TCP subflow is reported on its own.
    if read_at::<u16>(sk, config!(sock.sk_protocol))? != u16::from(IPPROTO_TCP) {
        return Ok(());
    }
    // Like the classic tracepoint, this fires in the caller's context before the source port
    // is bound: `sport` is usually 0 (unknown).
    try_tcp_connect(sk, backend::RAW_TRACEPOINT)
}

/// `sock:inet_sock_set_state`, `TP_PROTO(const struct sock *sk, const int oldstate,
/// const int newstate)`. `TCP_CLOSE -> TCP_SYN_SENT` is a connect, fired from
/// `tcp_v{4,6}_connect` in the caller's context before the source port is bound (so `sport`
/// is usually unknown here). Field offsets come from the tracepoint's `format` file.
#[tracepoint(category = "sock", name = "inet_sock_set_state")]
pub fn tcp_tp_inet_sock_set_state(ctx: TracePointContext) -> u32 {
    finish(
        &ctx,
        "tcp_tp_inet_sock_set_state",
        try_tcp_tp_inet_sock_set_state(&ctx),
    )
}

fn try_tcp_tp_inet_sock_set_state(ctx: &TracePointContext) -> Result<(), i64> {
    let tp = ctx.as_ptr() as *const u8;
    if read_at::<i32>(tp, config!(tp.sk_newstate))? != TCP_SYN_SENT
        || read_at::<i32>(tp, config!(tp.sk_oldstate))? != TCP_CLOSE
        || read_at::<u16>(tp, config!(tp.sk_protocol))? != u16::from(IPPROTO_TCP)
    {
        return Ok(());
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    if is_excluded(pid_tgid) {
        return Ok(());
    }
    let family = read_at::<u16>(tp, config!(tp.sk_family))?;
    let mut flow = Flow::empty(family);
    if family == AF_INET {
        let daddr = read_at::<[u8; 4]>(tp, config!(tp.sk_daddr))?;
        flow.daddr[..4].copy_from_slice(&daddr);
        if let Ok(saddr) = read_at::<[u8; 4]>(tp, config!(tp.sk_saddr)) {
            flow.saddr[..4].copy_from_slice(&saddr);
        }
    } else if family == AF_INET6 {
        flow.daddr = read_at::<[u8; 16]>(tp, config!(tp.sk_daddr_v6))?;
        flow.saddr = read_at::<[u8; 16]>(tp, config!(tp.sk_saddr_v6)).unwrap_or([0; 16]);
    } else {
        return Ok(());
    }
    // The tracepoint stores both ports in host order.
    flow.dport = read_at::<u16>(tp, config!(tp.sk_dport))?;
    flow.sport = read_at::<u16>(tp, config!(tp.sk_sport)).unwrap_or(0);
    let origin = Origin {
        hook: hook::TCP_CONNECT,
        backend: backend::TRACEPOINT,
        protocol: IPPROTO_TCP,
    };
    emit_connect(origin, &flow, pid_tgid, current_start_time());
    Ok(())
}
