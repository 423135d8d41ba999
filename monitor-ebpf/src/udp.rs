//! UDP sends: fentry or kprobe on `udp_sendmsg` / `udpv6_sendmsg`, else cgroup programs:
//! `sendmsg4/6` for unconnected sends, and for connected sockets `connect4/6`, which arm the
//! socket, and the `sock_send_length` raw tracepoint (Linux 6.3+; `cgroup_skb` egress before),
//! which reports its first datagram. A UDP `connect()` sends
//! nothing (glibc's getaddrinfo connects one to each candidate address only to sort them), so
//! it is never reported by itself. The unspecified destination (`0.0.0.0`, `::`) is never
//! reported: the kernel sends such datagrams to a local address, not to a remote peer.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_get_socket_cookie},
    macros::{cgroup_skb, cgroup_sock_addr, fentry, kprobe, raw_tracepoint},
    programs::{FEntryContext, ProbeContext, RawTracePointContext, SkBuffContext, SockAddrContext},
};
use monitor_common::{AF_INET, AF_INET6, IPPROTO_UDP, UdpPending, backend, hook, stat};

use crate::{
    dns,
    emit::unspecified_v6,
    emit::{Flow, Identity, Origin, count, emit_connect, emit_connect_as, finish, is_excluded},
    kernel::{current_start_time, read_at, sock_family, sock_flow, sock_source},
    maps::{UDP_EXPLICIT_SEND, UDP_FLOW_DEST, UDP_PENDING, config},
    sock_addr, sock_skb, udp_flow,
};

/// `AF_UNSPEC`: in `msg_name`, "use the connected destination" for IPv6 sockets.
const AF_UNSPEC: u16 = 0;
/// `sizeof(struct sockaddr_in)`; `udp_sendmsg` rejects shorter names.
const SOCKADDR_IN_LEN: i32 = 16;
/// `SIN6_LEN_RFC2133`; `udpv6_sendmsg` rejects shorter IPv6 names.
const SOCKADDR_IN6_MIN_LEN: i32 = 24;
/// `offsetof(struct sockaddr, sa_data)`.
const SA_FAMILY_END: i32 = 2;

/// `int udp_sendmsg(struct sock *sk, struct msghdr *msg, size_t len)` (net/ipv4/udp.c).
#[fentry(function = "udp_sendmsg")]
pub fn udp_fentry_udp_sendmsg(ctx: FEntryContext) -> u32 {
    let sk: *const u8 = ctx.arg(0);
    let msg: *const u8 = ctx.arg(1);
    finish(
        &ctx,
        "udp_fentry_udp_sendmsg",
        try_udp_sendmsg(sk, msg, backend::FENTRY),
    )
}

/// `int udp_sendmsg(struct sock *sk, struct msghdr *msg, size_t len)`, as a kprobe.
#[kprobe]
pub fn udp_kprobe_udp_sendmsg(ctx: ProbeContext) -> u32 {
    let (Some(sk), Some(msg)) = (ctx.arg::<*const u8>(0), ctx.arg::<*const u8>(1)) else {
        count(stat::READ_FAILED);
        return 0;
    };
    finish(
        &ctx,
        "udp_kprobe_udp_sendmsg",
        try_udp_sendmsg(sk, msg, backend::KPROBE),
    )
}

/// `int udpv6_sendmsg(struct sock *sk, struct msghdr *msg, size_t len)` (net/ipv6/udp.c).
#[fentry(function = "udpv6_sendmsg")]
pub fn udp_fentry_udpv6_sendmsg(ctx: FEntryContext) -> u32 {
    let sk: *const u8 = ctx.arg(0);
    let msg: *const u8 = ctx.arg(1);
    finish(
        &ctx,
        "udp_fentry_udpv6_sendmsg",
        try_udpv6_sendmsg(sk, msg, backend::FENTRY),
    )
}

/// `int udpv6_sendmsg(struct sock *sk, struct msghdr *msg, size_t len)`, as a kprobe.
#[kprobe]
pub fn udp_kprobe_udpv6_sendmsg(ctx: ProbeContext) -> u32 {
    let (Some(sk), Some(msg)) = (ctx.arg::<*const u8>(0), ctx.arg::<*const u8>(1)) else {
        count(stat::READ_FAILED);
        return 0;
    };
    finish(
        &ctx,
        "udp_kprobe_udpv6_sendmsg",
        try_udpv6_sendmsg(sk, msg, backend::KPROBE),
    )
}

fn try_udp_sendmsg(sk: *const u8, msg: *const u8, backend: u32) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if is_excluded(pid_tgid) {
        return Ok(());
    }
    // An IPv6 socket reaches udp_sendmsg only through udpv6_sendmsg (IPv4 destination), whose
    // hook has already reported the send: skip it here so it is not counted twice.
    if sock_family(sk)? != AF_INET {
        return Ok(());
    }
    let name = read_at::<*const u8>(msg, config!(sock.msg_name))?;
    let flow = if name.is_null() {
        // Connected socket: the destination is the socket's.
        match sock_flow(sk, AF_INET)? {
            Some(flow) => flow,
            None => return Ok(()),
        }
    } else {
        if read_at::<i32>(msg, config!(sock.msg_namelen))? < SOCKADDR_IN_LEN {
            return Ok(()); // rejected with EINVAL: nothing is sent
        }
        let family = read_at::<u16>(name, config!(sock.sin_family))?;
        if family != AF_INET && family != AF_UNSPEC {
            return Ok(()); // rejected with EAFNOSUPPORT
        }
        let Some(mut flow) = sockaddr_in_flow(name)? else {
            return Ok(());
        };
        sock_source(sk, &mut flow, false);
        flow
    };
    emit_udp(hook::UDP_SEND_V4, backend, &flow, pid_tgid);
    Ok(())
}

fn try_udpv6_sendmsg(sk: *const u8, msg: *const u8, backend: u32) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if is_excluded(pid_tgid) {
        return Ok(());
    }
    let name = read_at::<*const u8>(msg, config!(sock.msg_name))?;
    let mut namelen = 0;
    let mut name_family = AF_UNSPEC;
    if !name.is_null() {
        namelen = read_at::<i32>(msg, config!(sock.msg_namelen))?;
        if namelen < SA_FAMILY_END {
            return Ok(()); // rejected with EINVAL
        }
        name_family = read_at::<u16>(name, config!(sock.sin_family))?;
    }
    let flow = if name_family == AF_INET6 {
        if namelen < SOCKADDR_IN6_MIN_LEN {
            return Ok(());
        }
        let mut flow = Flow::empty(AF_INET6);
        flow.dport = u16::from_be(read_at::<u16>(name, config!(sock.sin6_port))?);
        flow.daddr = read_at::<[u8; 16]>(name, config!(sock.sin6_addr))?;
        if unspecified_v6(&flow.daddr) {
            return Ok(()); // sent to a local address: never a remote peer
        }
        sock_source(sk, &mut flow, true);
        flow
    } else if name_family == AF_INET {
        // udpv6_sendmsg hands this to udp_sendmsg, whose hook skips IPv6 sockets.
        if namelen < SOCKADDR_IN_LEN {
            return Ok(());
        }
        let Some(mut flow) = sockaddr_in_flow(name)? else {
            return Ok(());
        };
        sock_source(sk, &mut flow, true);
        flow
    } else if name_family == AF_UNSPEC {
        // No name, or AF_UNSPEC: the connected destination (an IPv4 peer shows as mapped).
        match sock_flow(sk, AF_INET6)? {
            Some(flow) => flow,
            None => return Ok(()),
        }
    } else {
        return Ok(()); // rejected with EINVAL
    };
    emit_udp(hook::UDP_SEND_V6, backend, &flow, pid_tgid);
    Ok(())
}

/// Destination from a `struct sockaddr_in` in kernel memory (`msg_name` is a kernel copy);
/// `None` for `0.0.0.0`, which the kernel sends to a local address: never a remote peer.
#[inline(always)]
fn sockaddr_in_flow(name: *const u8) -> Result<Option<Flow>, i64> {
    let mut flow = Flow::empty(AF_INET);
    flow.dport = u16::from_be(read_at::<u16>(name, config!(sock.sin_port))?);
    let daddr = read_at::<[u8; 4]>(name, config!(sock.sin_addr))?;
    if u32::from_ne_bytes(daddr) == 0 {
        return Ok(None);
    }
    flow.daddr[..4].copy_from_slice(&daddr);
    Ok(Some(flow))
}

#[inline(always)]
fn emit_udp(hook: u32, backend: u32, flow: &Flow, pid_tgid: u64) {
    // Port 0 is rejected by the kernel (EINVAL, or EDESTADDRREQ when not connected). The
    // unspecified address is checked where an explicit destination is read, not here: a
    // connected socket's never is one (connect() resolved it to a local address), and the
    // check inlined here cost the fentry/kprobe programs a hundred bytes of their 512-byte
    // stack on 6.1 kernels.
    if flow.dport == 0 {
        return;
    }
    let origin = Origin {
        hook,
        backend,
        protocol: IPPROTO_UDP,
    };
    emit_connect(origin, flow, pid_tgid, current_start_time());
}

/// `cgroup/connect4`: `connect()` on an IPv4 socket, before it happens. A UDP socket is
/// only armed here (`UDP_PENDING`, by socket cookie, with the connecting process): its first
/// datagram is reported by `udp_cgroup_skb_egress`, so a connect that sends nothing (as
/// getaddrinfo's) is never reported. Always returns 1: the monitor never blocks or alters
/// traffic.
#[cgroup_sock_addr(connect4)]
pub fn udp_cgroup_connect4(ctx: SockAddrContext) -> i32 {
    finish(
        &ctx,
        "udp_cgroup_connect4",
        try_udp_cgroup_connect(&ctx, false),
    );
    1
}

/// `cgroup/connect6`: as `connect4`, for IPv6 sockets; IPv4-mapped peers are left to
/// `sendmsg4`, which sees each of their sends. Always returns 1.
#[cgroup_sock_addr(connect6)]
pub fn udp_cgroup_connect6(ctx: SockAddrContext) -> i32 {
    finish(
        &ctx,
        "udp_cgroup_connect6",
        try_udp_cgroup_connect(&ctx, true),
    );
    1
}

/// `cgroup/sendmsg4`: `udp_sendmsg` with an explicit destination (unconnected UDP), before
/// routing; the source port is already bound. Always returns 1.
#[cgroup_sock_addr(sendmsg4)]
pub fn udp_cgroup_sendmsg4(ctx: SockAddrContext) -> i32 {
    finish(
        &ctx,
        "udp_cgroup_sendmsg4",
        try_udp_cgroup_sendmsg(&ctx, false),
    );
    1
}

/// `cgroup/sendmsg6`: `udpv6_sendmsg` with an explicit IPv6 destination. Always returns 1.
#[cgroup_sock_addr(sendmsg6)]
pub fn udp_cgroup_sendmsg6(ctx: SockAddrContext) -> i32 {
    finish(
        &ctx,
        "udp_cgroup_sendmsg6",
        try_udp_cgroup_sendmsg(&ctx, true),
    );
    1
}

/// `sock:sock_send_length`, `TP_PROTO(struct sock *sk, int ret, int flags)`, as a raw
/// tracepoint: the end of every `sendmsg` of every socket (`sock_sendmsg_nosec`), in the
/// sending task. The first successful send on a UDP socket that `udp_cgroup_connect4/6` armed
/// writes its event, named after the sender, and disarms the socket. Once per send call, not
/// per packet: TCP connects and their segments never run it, unlike `cgroup_skb` egress,
/// which stays the fallback for kernels before 6.3.
#[raw_tracepoint(tracepoint = "sock_send_length")]
pub fn udp_raw_tp_sock_send_length(ctx: RawTracePointContext) -> u32 {
    finish(
        &ctx,
        "udp_raw_tp_sock_send_length",
        try_udp_raw_tp_sock_send_length(&ctx),
    )
}

/// `TCP_ESTABLISHED`: `skc_state` of a connected UDP socket.
const SK_ESTABLISHED: u8 = 1;

fn try_udp_raw_tp_sock_send_length(ctx: &RawTracePointContext) -> Result<(), i64> {
    let sk: *const u8 = ctx.arg(0);
    // Every send of every socket lands here: one read decides for all but UDP.
    if read_at::<u16>(sk, config!(sock.sk_protocol))? != u16::from(IPPROTO_UDP) {
        return Ok(());
    }
    let ret = ctx.arg::<i32>(1);
    if udp_flow::enabled() {
        // Counted in its flow (`--lifecycle`); a failed send only drops the address that
        // `sendmsg4/6` left for it.
        if ret < 0 {
            let _ = UDP_FLOW_DEST.remove(bpf_get_current_pid_tgid());
        } else {
            let _ = udp_flow::account(sk, ret as u32, true);
        }
    }
    // A failed send left nothing on the wire: the socket stays armed.
    if ret < 0 {
        return Ok(());
    }
    // A socket that dissolved its association (connect to AF_UNSPEC) keeps its entry, unused.
    if read_at::<u8>(sk, config!(sock.skc_state))? != SK_ESTABLISHED {
        return Ok(());
    }
    let cookie = read_at::<u64>(sk, config!(sock.skc_cookie))?;
    let Some(armed) = UDP_PENDING.get_ptr(cookie) else {
        return Ok(());
    };
    // SAFETY: a value pointer from a successful lookup is valid for this program run.
    let hook = unsafe { (*armed).hook };
    let pid_tgid = bpf_get_current_pid_tgid();
    // sendto() with an address on a connected socket went there, not to the peer, and
    // `sendmsg4/6` reported it.
    // SAFETY: as above, for this map's value.
    if let Some(explicit) = unsafe { UDP_EXPLICIT_SEND.get(pid_tgid) }
        && *explicit == cookie
    {
        let _ = UDP_EXPLICIT_SEND.remove(pid_tgid);
        return Ok(());
    }
    // Whoever deletes the entry reports: the first sends of two threads give one event.
    if UDP_PENDING.remove(cookie).is_err() {
        return Ok(());
    }
    let family = sock_family(sk)?;
    let Some(flow) = sock_flow(sk, family)? else {
        return Ok(());
    };
    if flow.dport == 0 || flow.unspecified_destination() {
        return Ok(());
    }
    let origin = Origin {
        hook,
        backend: backend::CGROUP,
        protocol: IPPROTO_UDP,
    };
    emit_connect(origin, &flow, pid_tgid, current_start_time());
    Ok(())
}

/// `cgroup_skb/egress` on the cgroup v2 root: every packet any socket sends, after routing.
/// The first datagram of a UDP socket that `udp_cgroup_connect4/6` armed writes its event
/// (at the datagram's time, named after the process that connected, with the socket's bound
/// source) and disarms the socket; anything but a connected UDP socket passes after a
/// protocol and state check. A socket dissolving its association (connect to `AF_UNSPEC`)
/// runs no hook: its entry stays until evicted, unused (it is no longer connected). Always
/// returns 1: the monitor never drops or alters a packet.
#[cgroup_skb(egress)]
pub fn udp_cgroup_skb_egress(ctx: SkBuffContext) -> i32 {
    finish(
        &ctx,
        "udp_cgroup_skb_egress",
        try_udp_cgroup_skb_egress(&ctx),
    );
    1
}

/// The cgroup hooks' destination for a UDP socket, or `None` when there is nothing to
/// report: another protocol, the monitor itself, port 0 (rejected by the kernel), the
/// unspecified address, or (IPv6) an IPv4-mapped peer, whose sends are diverted to
/// `udp_sendmsg` and run `sendmsg4` each, connected or not (`sendmsg6` never sees them).
#[inline(always)]
fn udp_destination(ctx: &SockAddrContext, v6: bool) -> Option<(Flow, u64)> {
    if sock_addr::protocol(ctx) != u32::from(IPPROTO_UDP) {
        return None;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    if is_excluded(pid_tgid) {
        return None;
    }
    let flow = sock_addr::flow(ctx, v6);
    if flow.dport == 0
        || flow.unspecified_destination()
        || (v6 && sock_addr::is_v4_mapped(&flow.daddr))
    {
        return None;
    }
    Some((flow, pid_tgid))
}

#[inline(always)]
const fn udp_hook(v6: bool) -> u32 {
    if v6 {
        hook::UDP_SEND_V6
    } else {
        hook::UDP_SEND_V4
    }
}

/// Arms a connecting UDP socket: its first datagram will be reported with this identity.
/// A re-connect re-arms it (the entry is overwritten). Start time is left unknown (the
/// process table fills it from /proc), as for every cgroup hook.
fn try_udp_cgroup_connect(ctx: &SockAddrContext, v6: bool) -> Result<(), i64> {
    let Some((flow, pid_tgid)) = udp_destination(ctx, v6) else {
        return Ok(());
    };
    let who = Identity::current();
    if flow.dport == dns::DNS_PORT {
        // The asker of the DNS answers this socket will receive (dns.rs). A failure is
        // counted there; the connect is still armed below.
        let _ = dns::remember_owner(ctx, pid_tgid, &who);
    }
    let pending = UdpPending {
        pid_tgid,
        uid_gid: who.uid_gid,
        cgroup_id: who.cgroup_id,
        hook: udp_hook(v6),
        _pad0: 0,
        comm: who.comm,
    };
    if let Err(err) = UDP_PENDING.insert(sock_addr::cookie(ctx), pending, 0) {
        count(stat::UDP_PENDING_FAILED);
        return Err(i64::from(err));
    }
    Ok(())
}

/// Unconnected sends, from `sendmsg4/6`. Start time is left unknown (the process table fills
/// it from /proc): reading `task_struct` would cost every send.
fn try_udp_cgroup_sendmsg(ctx: &SockAddrContext, v6: bool) -> Result<(), i64> {
    // The flow this datagram counts in (`--lifecycle`), whether or not it is reported.
    udp_flow::remember_dest(ctx, v6);
    let Some((flow, pid_tgid)) = udp_destination(ctx, v6) else {
        return Ok(());
    };
    let cookie = sock_addr::cookie(ctx);
    if UDP_PENDING.get_ptr(cookie).is_some() {
        // A connected socket not yet reported: tell the send tracepoint that this send is
        // not to the peer. Losing this entry can only report the peer early.
        let _ = UDP_EXPLICIT_SEND.insert(pid_tgid, cookie, 0);
    }
    if flow.dport == dns::DNS_PORT {
        let _ = dns::remember_owner(ctx, pid_tgid, &Identity::current());
    }
    let origin = Origin {
        hook: udp_hook(v6),
        backend: backend::CGROUP,
        protocol: IPPROTO_UDP,
    };
    emit_connect(origin, &flow, pid_tgid, 0);
    Ok(())
}

/// Every egress packet runs this: the filter before the map lookup is a helper call and two
/// loads (TCP, the bulk of traffic, and unconnected UDP stop there).
fn try_udp_cgroup_skb_egress(ctx: &SkBuffContext) -> Result<(), i64> {
    let Some(sk) = sock_skb::connected_udp_socket(ctx) else {
        return Ok(());
    };
    // SAFETY: the helper takes the program's context (`struct __sk_buff *`).
    let cookie = unsafe { bpf_get_socket_cookie(ctx.skb.skb.cast()) };
    let Some(armed) = UDP_PENDING.get_ptr(cookie) else {
        return Ok(());
    };
    // SAFETY: a value pointer from a successful lookup is valid for this program run; the
    // entry is copied before it is deleted below. A re-connect on another CPU overwriting it
    // meanwhile could mix two identities of the same socket's owners: harmless.
    let pending = unsafe { core::ptr::read(armed) };
    let Some(flow) = sock_skb::flow(sk) else {
        return Ok(());
    };
    // Only a datagram to the connected peer disarms the socket: a sendto() to another
    // address on a connected socket was reported by sendmsg4/6.
    if !sock_skb::packet_goes_to(ctx, &flow)? {
        return Ok(());
    }
    // Whoever deletes the entry reports: the first datagrams of two threads give one event.
    if UDP_PENDING.remove(cookie).is_err() {
        return Ok(());
    }
    if flow.dport == 0 || flow.unspecified_destination() {
        return Ok(());
    }
    let origin = Origin {
        hook: pending.hook,
        backend: backend::CGROUP,
        protocol: IPPROTO_UDP,
    };
    let who = Identity {
        uid_gid: pending.uid_gid,
        cgroup_id: pending.cgroup_id,
        comm: pending.comm,
    };
    emit_connect_as(origin, &flow, pending.pid_tgid, &who);
    Ok(())
}
