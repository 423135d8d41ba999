//! UDP flow counting on the UDP send and receive functions (`--lifecycle`), for kernels
//! without the `sock_send_length`/`sock_recv_length` tracepoints (before Linux 6.3) and
//! wherever fentry or kprobes work: they run for UDP calls only, where the raw tracepoints
//! run for every socket's.
//!
//! fexit on `udp_sendmsg`, `udpv6_sendmsg`, `udp_recvmsg` and `udpv6_recvmsg` sees the
//! call's socket, `msghdr` and result at once. Without fexit, kprobes: the entry of each
//! remembers the socket and `msghdr` for the thread (`UDP_FLOW_CALLS`); a kretprobe ends a
//! send, and `skb_consume_udp`, which both receive functions call once they copied a
//! datagram out, ends a receive. Not a kretprobe there: every reader blocked in a receive
//! holds one of the kernel's few kretprobe instances, and returns past them are dropped.
//!
//! Flows are named by the socket's cookie, which `udp_flow_cgroup_sock_create` makes for
//! every UDP socket created while the monitor runs.
//!
//! The remote end is the call's `msg_name` (a kernel copy: the address a send named, or the
//! one a receive filled in with the sender's), else the connected peer. An IPv6 socket
//! sending to IPv4 goes through `udpv6_sendmsg` into `udp_sendmsg`: only the outer call,
//! the one of the socket's own family, counts.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_get_socket_cookie},
    macros::{cgroup_sock, fexit, kprobe, kretprobe},
    programs::{FExitContext, ProbeContext, RetProbeContext, SockContext},
};
use monitor_common::{AF_INET, AF_INET6, IPPROTO_UDP, backend, stat, udp_flow_counting};

use crate::{
    emit::{count, finish, is_excluded},
    kernel::{read_at, sock_family},
    maps::{UDP_FLOW_CALLS, config},
    udp_flow::{MSG_ERRQUEUE, MSG_PEEK, count_datagram, counting, no_peer},
};

/// Calls that move no datagram off the queue (udp_flow.rs), as `flags` arrives here.
const NOT_TAKEN: u32 = (MSG_PEEK | MSG_ERRQUEUE) as u32;

/// Which function a `UdpFlowCall` entered.
const SEND_V4: u32 = 1;
const SEND_V6: u32 = 2;
const RECV: u32 = 3;

/// A UDP send or receive in progress on a thread (kprobe programs), by `pid_tgid`.
#[repr(C)]
pub struct UdpFlowCall {
    sk: u64,
    msg: u64,
    /// A receive's fourth and fifth arguments, one of which is `flags`
    /// (`LifeOffsets::udp_recvmsg_args`). Picking one at the entry would let the compiler
    /// read the registers at a computed offset, which the verifier refuses.
    args: [u32; 2],
    /// `SEND_V4`, `SEND_V6` or `RECV`.
    func: u32,
    _pad0: u32,
}

#[inline(always)]
fn active() -> bool {
    counting(udp_flow_counting::KERNEL_FN)
}

/// `int udp_sendmsg(struct sock *sk, struct msghdr *msg, size_t len)`; its result follows
/// the three arguments.
#[fexit(function = "udp_sendmsg")]
pub fn udp_flow_fexit_udp_sendmsg(ctx: FExitContext) -> u32 {
    let (sk, msg) = (ctx.arg::<*const u8>(0), ctx.arg::<*const u8>(1));
    let ret = ctx.arg::<u64>(3) as i32;
    finish(
        &ctx,
        "udp_flow_fexit_udp_sendmsg",
        sent(sk, msg, ret, AF_INET),
    )
}

/// `int udpv6_sendmsg(struct sock *sk, struct msghdr *msg, size_t len)`.
#[fexit(function = "udpv6_sendmsg")]
pub fn udp_flow_fexit_udpv6_sendmsg(ctx: FExitContext) -> u32 {
    let (sk, msg) = (ctx.arg::<*const u8>(0), ctx.arg::<*const u8>(1));
    let ret = ctx.arg::<u64>(3) as i32;
    finish(
        &ctx,
        "udp_flow_fexit_udpv6_sendmsg",
        sent(sk, msg, ret, AF_INET6),
    )
}

/// `int udp_recvmsg(struct sock *sk, struct msghdr *msg, size_t len, int flags)` (recent
/// kernels). One program per parameter list, each with constant argument indices: choosing
/// the index at run time lets the compiler read the context at a computed offset, which the
/// verifier refuses. User space loads the one that fits (`LifeOffsets::udp_recvmsg_args`).
#[fexit(function = "udp_recvmsg")]
pub fn udp_flow_fexit_udp_recvmsg(ctx: FExitContext) -> u32 {
    let (flags, ret) = (ctx.arg::<u64>(3), ctx.arg::<u64>(4));
    finish(
        &ctx,
        "udp_flow_fexit_udp_recvmsg",
        fexit_received(&ctx, flags, ret, AF_INET),
    )
}

/// `int udp_recvmsg(struct sock *sk, struct msghdr *msg, size_t len, int flags, int
/// *addr_len)` (Linux 5.19 on).
#[fexit(function = "udp_recvmsg")]
pub fn udp_flow_fexit_udp_recvmsg_addr_len(ctx: FExitContext) -> u32 {
    let (flags, ret) = (ctx.arg::<u64>(3), ctx.arg::<u64>(5));
    finish(
        &ctx,
        "udp_flow_fexit_udp_recvmsg_addr_len",
        fexit_received(&ctx, flags, ret, AF_INET),
    )
}

/// `int udp_recvmsg(struct sock *sk, struct msghdr *msg, size_t len, int noblock, int
/// flags, int *addr_len)` (before Linux 5.19).
#[fexit(function = "udp_recvmsg")]
pub fn udp_flow_fexit_udp_recvmsg_noblock(ctx: FExitContext) -> u32 {
    let (flags, ret) = (ctx.arg::<u64>(4), ctx.arg::<u64>(6));
    finish(
        &ctx,
        "udp_flow_fexit_udp_recvmsg_noblock",
        fexit_received(&ctx, flags, ret, AF_INET),
    )
}

/// `udpv6_recvmsg`, as `udp_flow_fexit_udp_recvmsg`.
#[fexit(function = "udpv6_recvmsg")]
pub fn udp_flow_fexit_udpv6_recvmsg(ctx: FExitContext) -> u32 {
    let (flags, ret) = (ctx.arg::<u64>(3), ctx.arg::<u64>(4));
    finish(
        &ctx,
        "udp_flow_fexit_udpv6_recvmsg",
        fexit_received(&ctx, flags, ret, AF_INET6),
    )
}

/// `udpv6_recvmsg`, as `udp_flow_fexit_udp_recvmsg_addr_len`.
#[fexit(function = "udpv6_recvmsg")]
pub fn udp_flow_fexit_udpv6_recvmsg_addr_len(ctx: FExitContext) -> u32 {
    let (flags, ret) = (ctx.arg::<u64>(3), ctx.arg::<u64>(5));
    finish(
        &ctx,
        "udp_flow_fexit_udpv6_recvmsg_addr_len",
        fexit_received(&ctx, flags, ret, AF_INET6),
    )
}

/// `udpv6_recvmsg`, as `udp_flow_fexit_udp_recvmsg_noblock`.
#[fexit(function = "udpv6_recvmsg")]
pub fn udp_flow_fexit_udpv6_recvmsg_noblock(ctx: FExitContext) -> u32 {
    let (flags, ret) = (ctx.arg::<u64>(4), ctx.arg::<u64>(6));
    finish(
        &ctx,
        "udp_flow_fexit_udpv6_recvmsg_noblock",
        fexit_received(&ctx, flags, ret, AF_INET6),
    )
}

#[inline(always)]
fn fexit_received(ctx: &FExitContext, flags: u64, ret: u64, family: u16) -> Result<(), i64> {
    let (sk, msg) = (ctx.arg::<*const u8>(0), ctx.arg::<*const u8>(1));
    received(sk, msg, flags as u32, ret as i32, family)
}

/// The end of a send of `ret` bytes (or an error) on `sk`, in the function of `family`.
#[inline(always)]
fn sent(sk: *const u8, msg: *const u8, ret: i32, family: u16) -> Result<(), i64> {
    if !active() || ret < 0 || sock_family(sk)? != family {
        return Ok(());
    }
    count_named(sk, msg, ret as u32, true, backend::FENTRY)
}

/// The end of a receive of `ret` bytes (or an error) on `sk`.
#[inline(always)]
fn received(sk: *const u8, msg: *const u8, flags: u32, ret: i32, family: u16) -> Result<(), i64> {
    if !active() || ret < 0 || flags & NOT_TAKEN != 0 {
        return Ok(());
    }
    if sock_family(sk)? != family {
        return Ok(());
    }
    count_named(sk, msg, ret as u32, false, backend::FENTRY)
}

/// One datagram in the flow of the caller and the remote end `msg` names (else the
/// connected peer).
#[inline(always)]
fn count_named(
    sk: *const u8,
    msg: *const u8,
    len: u32,
    out: bool,
    backend: u32,
) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if is_excluded(pid_tgid) {
        return Ok(());
    }
    let cookie = read_at::<u64>(sk, config!(sock.skc_cookie))?;
    let mut peer = no_peer(pid_tgid);
    let name = read_at::<*const u8>(msg, config!(sock.msg_name))?;
    if !name.is_null() {
        let family = read_at::<u16>(name, config!(sock.sin_family))?;
        if family == AF_INET {
            peer.family = AF_INET;
            peer.rport = u16::from_be(read_at::<u16>(name, config!(sock.sin_port))?);
            let addr = read_at::<[u8; 4]>(name, config!(sock.sin_addr))?;
            peer.raddr[..4].copy_from_slice(&addr);
        } else if family == AF_INET6 {
            peer.family = AF_INET6;
            peer.rport = u16::from_be(read_at::<u16>(name, config!(sock.sin6_port))?);
            peer.raddr = read_at::<[u8; 16]>(name, config!(sock.sin6_addr))?;
        }
        // Any other family (`AF_UNSPEC` on an IPv6 send): the connected peer.
    }
    count_datagram(sk, pid_tgid, cookie, peer, len, out, backend)
}

/// Entry of `udp_sendmsg` (kprobe).
#[kprobe]
pub fn udp_flow_kprobe_udp_sendmsg(ctx: ProbeContext) -> u32 {
    finish(
        &ctx,
        "udp_flow_kprobe_udp_sendmsg",
        enter(&ctx, [0; 2], SEND_V4, AF_INET),
    )
}

/// Entry of `udpv6_sendmsg` (kprobe).
#[kprobe]
pub fn udp_flow_kprobe_udpv6_sendmsg(ctx: ProbeContext) -> u32 {
    finish(
        &ctx,
        "udp_flow_kprobe_udpv6_sendmsg",
        enter(&ctx, [0; 2], SEND_V6, AF_INET6),
    )
}

/// Entry of `udp_recvmsg` (kprobe): `flags` is two arguments before the end.
#[kprobe]
pub fn udp_flow_kprobe_udp_recvmsg(ctx: ProbeContext) -> u32 {
    finish(
        &ctx,
        "udp_flow_kprobe_udp_recvmsg",
        enter_recv(&ctx, AF_INET),
    )
}

/// Entry of `udpv6_recvmsg` (kprobe).
#[kprobe]
pub fn udp_flow_kprobe_udpv6_recvmsg(ctx: ProbeContext) -> u32 {
    finish(
        &ctx,
        "udp_flow_kprobe_udpv6_recvmsg",
        enter_recv(&ctx, AF_INET6),
    )
}

/// `flags` is the fourth argument, or the fifth before Linux 5.19 (after `noblock`): both
/// registers are kept and the choice is made at the end, on values (see `UdpFlowCall`).
#[inline(always)]
fn enter_recv(ctx: &ProbeContext, family: u16) -> Result<(), i64> {
    let (Some(arg3), Some(arg4)) = (ctx.arg::<u64>(3), ctx.arg::<u64>(4)) else {
        count(stat::READ_FAILED);
        return Ok(());
    };
    enter(ctx, [arg3 as u32, arg4 as u32], RECV, family)
}

/// Remembers a call on a socket of the function's own family for its end.
#[inline(always)]
fn enter(ctx: &ProbeContext, args: [u32; 2], func: u32, family: u16) -> Result<(), i64> {
    if !active() {
        return Ok(());
    }
    let (Some(sk), Some(msg)) = (ctx.arg::<*const u8>(0), ctx.arg::<*const u8>(1)) else {
        count(stat::READ_FAILED);
        return Ok(());
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    if is_excluded(pid_tgid) || sock_family(sk)? != family {
        // Not counted, or `udp_sendmsg` inside `udpv6_sendmsg`, whose entry stays.
        return Ok(());
    }
    let call = UdpFlowCall {
        sk: sk as u64,
        msg: msg as u64,
        args,
        func,
        _pad0: 0,
    };
    // Overwrites an entry whose end was missed. A failure only leaves this call uncounted.
    let _ = UDP_FLOW_CALLS.insert(pid_tgid, call, 0);
    Ok(())
}

/// Return of `udp_sendmsg` (kretprobe).
#[kretprobe]
pub fn udp_flow_kretprobe_udp_sendmsg(ctx: RetProbeContext) -> u32 {
    let ret = ctx.ret::<i64>() as i32;
    finish(
        &ctx,
        "udp_flow_kretprobe_udp_sendmsg",
        leave_send(SEND_V4, ret),
    )
}

/// Return of `udpv6_sendmsg` (kretprobe).
#[kretprobe]
pub fn udp_flow_kretprobe_udpv6_sendmsg(ctx: RetProbeContext) -> u32 {
    let ret = ctx.ret::<i64>() as i32;
    finish(
        &ctx,
        "udp_flow_kretprobe_udpv6_sendmsg",
        leave_send(SEND_V6, ret),
    )
}

/// The end of a send this thread entered in `func`; any other entry (the outer
/// `udpv6_sendmsg`'s, seen from the inner `udp_sendmsg`'s return) stays.
#[inline(always)]
fn leave_send(func: u32, ret: i32) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the fields are copied out at once, before the entry is removed.
    let Some((sk, msg)) = (unsafe { UDP_FLOW_CALLS.get(pid_tgid) })
        .filter(|c| c.func == func)
        .map(|c| (c.sk as *const u8, c.msg as *const u8))
    else {
        return Ok(());
    };
    let _ = UDP_FLOW_CALLS.remove(pid_tgid);
    if ret < 0 {
        return Ok(());
    }
    count_named(sk, msg, ret as u32, true, backend::KPROBE)
}

/// `void skb_consume_udp(struct sock *sk, struct sk_buff *skb, int len)`: a receive
/// function took a datagram of `len` bytes (negative when only peeking) off `sk`'s queue,
/// after filling in the sender's address. The end of the receive this thread entered.
#[kprobe]
pub fn udp_flow_kprobe_skb_consume_udp(ctx: ProbeContext) -> u32 {
    let (Some(sk), Some(len)) = (ctx.arg::<*const u8>(0), ctx.arg::<u64>(2)) else {
        count(stat::READ_FAILED);
        return 0;
    };
    finish(
        &ctx,
        "udp_flow_kprobe_skb_consume_udp",
        consumed(sk, len as i32),
    )
}

#[inline(always)]
fn consumed(sk: *const u8, len: i32) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the fields are copied out at once, before the entry is removed.
    let Some((msg, args)) = (unsafe { UDP_FLOW_CALLS.get(pid_tgid) })
        .filter(|c| c.func == RECV && c.sk == sk as u64)
        .map(|c| (c.msg as *const u8, (c.args[0], c.args[1])))
    else {
        return Ok(()); // a receive not counted, or another caller (sockmap)
    };
    let _ = UDP_FLOW_CALLS.remove(pid_tgid);
    let flags = match config!(life.udp_recvmsg_args) {
        4 | 5 => args.0,
        6 => args.1,
        _ => return Ok(()),
    };
    if len < 0 || flags & NOT_TAKEN != 0 {
        return Ok(());
    }
    count_named(sk, msg, len as u32, false, backend::KPROBE)
}

/// `cgroup/sock_create`: gives every new UDP socket its cookie, which names its flows
/// (the flow table's key, and the release program's lookup). The cgroup set's programs
/// get one for each socket they see; these programs run where a tracing program cannot
/// make one (before Linux 5.12, and never from a kprobe), and a socket without a cookie is
/// not counted (`stat::UDP_FLOW_PEER_UNKNOWN`). Always returns 1.
#[cgroup_sock(sock_create)]
pub fn udp_flow_cgroup_sock_create(ctx: SockContext) -> i32 {
    if active() {
        // SAFETY: `sock` is the program's context (`struct bpf_sock *`); the kernel checks
        // the field access.
        let protocol = unsafe { core::ptr::read_volatile(&raw const (*ctx.sock).protocol) };
        if protocol == u32::from(IPPROTO_UDP) {
            // SAFETY: the helper takes the program's context; it makes the cookie.
            let _ = unsafe { bpf_get_socket_cookie(ctx.sock.cast()) };
        }
    }
    1
}
