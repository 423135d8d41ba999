//! UDP flow summaries (`--lifecycle`): bytes and datagrams each way per (socket, process,
//! remote end), reported when the socket is released (`life_cgroup_sock_release`) or, by
//! user space's sweep of `UDP_FLOWS`, after an idle period. The flow table and the release
//! program are shared by the three counting sets (`udp_flow_counting`); this file holds the
//! cgroup set, udp_flow_fn.rs the fexit and kprobe ones.
//!
//! The cgroup set counts at the end of each send and receive call, in the calling task, by the raw
//! tracepoints `sock_send_length` (the program the connected-UDP capture already runs) and
//! `sock_recv_length`: once per call, never per packet, so TCP traffic pays one protocol
//! read per call and nothing else. The remote end is the address the call named, which
//! `sendmsg4/6` and `recvmsg4/6` (cgroup sock_addr programs, earlier in the same call) leave
//! in `UDP_FLOW_DEST` for the thread, else the connected peer.
#![allow(
    clippy::needless_borrows_for_generic_args,
    reason = "map keys and values go by reference: by value, each would be copied again onto \
              the 512-byte BPF stack (a socket entry is 192 bytes)"
)]

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_get_socket_cookie, bpf_ktime_get_boot_ns},
    },
    macros::{cgroup_sock, cgroup_sock_addr, raw_tracepoint},
    programs::{RawTracePointContext, SockAddrContext, SockContext},
};
use monitor_common::{
    AF_INET, AF_INET6, IPPROTO_UDP, LifeEvent, UDP_FLOW_SLOTS, UdpFlow, UdpFlowDest, UdpFlowKey,
    UdpFlowPeer, UdpSockFlows, backend, life_flag, stat, udp_flow_counting, write_flow_summary,
};

use crate::{
    emit::{Flow, Identity, count, finish, is_excluded, unspecified_v6, wakeup_flag, word},
    kernel::{current_start_time, read_at, sock_family, sock_flow, sock_source},
    maps::{EVENTS, UDP_FLOW_DEST, UDP_FLOW_ON, UDP_FLOWS, UDP_SOCKS, config},
    sock_addr,
};

/// `recvmsg` flags whose calls move no datagram off the queue: `MSG_PEEK` reads one
/// without taking it, `MSG_ERRQUEUE` reads the error queue.
pub const MSG_PEEK: i32 = 2;
pub const MSG_ERRQUEUE: i32 = 0x2000;
/// `skc_state` of a connected UDP socket.
const SK_ESTABLISHED: u8 = 1;
/// `-EEXIST`: another CPU entered the flow first.
const EEXIST: i64 = 17;

/// A socket entry with no flows listed, inserted before the first is.
static EMPTY_SOCK: UdpSockFlows = UdpSockFlows {
    peers: [UdpFlowPeer {
        tgid: 0,
        family: 0,
        rport: 0,
        raddr: [0; 16],
    }; UDP_FLOW_SLOTS],
};

/// Whether flows are counted by the set `mode` (`udp_flow_counting`): user space writes
/// `UDP_FLOW_ON` once every program of the set is attached (`--lifecycle`), so that no
/// flow is counted one way only, nor twice. An array lookup, inlined by the verifier.
#[inline(always)]
pub fn counting(mode: u32) -> bool {
    UDP_FLOW_ON.get(0).is_some_and(|on| *on == mode)
}

/// Whether the cgroup set (this file's programs and `sock_send_length`) counts.
#[inline(always)]
pub fn enabled() -> bool {
    counting(udp_flow_counting::CGROUP)
}

/// From `sendmsg4/6` and `recvmsg4/6`: the address this thread's UDP send goes to, or its
/// receive came from, for the tracepoint at the end of the same call. A failed insert
/// leaves the datagram to the connected peer, or uncounted (`UDP_FLOW_PEER_UNKNOWN`).
#[inline(always)]
pub fn remember_dest(ctx: &SockAddrContext, v6: bool) {
    if !enabled() || sock_addr::protocol(ctx) != u32::from(IPPROTO_UDP) {
        return;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    if is_excluded(pid_tgid) {
        return;
    }
    let flow = sock_addr::flow(ctx, v6);
    let dest = UdpFlowDest {
        cookie: sock_addr::cookie(ctx),
        family: flow.family,
        port: flow.dport,
        _pad0: 0,
        addr: flow.daddr,
    };
    if UDP_FLOW_DEST.insert(pid_tgid, dest, 0).is_err() {
        count(stat::UDP_FLOW_PEER_UNKNOWN);
    }
}

/// `cgroup/recvmsg4`: a UDP receive that asked for the sender's address, which the
/// context holds. Always returns 1: the monitor never alters what a process receives.
#[cgroup_sock_addr(recvmsg4)]
pub fn udp_cgroup_recvmsg4(ctx: SockAddrContext) -> i32 {
    remember_dest(&ctx, false);
    1
}

/// `cgroup/recvmsg6`: as `recvmsg4`, for IPv6 sockets (IPv4 senders appear mapped).
/// Always returns 1.
#[cgroup_sock_addr(recvmsg6)]
pub fn udp_cgroup_recvmsg6(ctx: SockAddrContext) -> i32 {
    remember_dest(&ctx, true);
    1
}

/// `sock:sock_recv_length`, `TP_PROTO(struct sock *sk, int ret, int flags)`, as a raw
/// tracepoint: the end of every `recvmsg` of every socket (`sock_recvmsg_nosec`, Linux
/// 6.3+), in the receiving task.
#[raw_tracepoint(tracepoint = "sock_recv_length")]
pub fn udp_raw_tp_sock_recv_length(ctx: RawTracePointContext) -> u32 {
    finish(
        &ctx,
        "udp_raw_tp_sock_recv_length",
        try_udp_raw_tp_sock_recv_length(&ctx),
    )
}

fn try_udp_raw_tp_sock_recv_length(ctx: &RawTracePointContext) -> Result<(), i64> {
    if !enabled() {
        return Ok(());
    }
    let sk: *const u8 = ctx.arg(0);
    if read_at::<u16>(sk, config!(sock.sk_protocol))? != u16::from(IPPROTO_UDP) {
        return Ok(());
    }
    let ret: i32 = ctx.arg(1);
    let flags: i32 = ctx.arg(2);
    if ret < 0 || flags & (MSG_PEEK | MSG_ERRQUEUE) != 0 {
        // Nothing taken; a stale address would only be overwritten by the next call.
        let _ = UDP_FLOW_DEST.remove(bpf_get_current_pid_tgid());
        return Ok(());
    }
    account(sk, ret as u32, false)
}

/// The end of a send (`out`) or receive of `len` bytes on UDP socket `sk`, in the calling
/// task (cgroup set): one datagram and its bytes in the flow of (socket, process, remote
/// end), the remote end being the one `remember_dest` left for this call.
#[inline(always)]
pub fn account(sk: *const u8, len: u32, out: bool) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if is_excluded(pid_tgid) {
        return Ok(());
    }
    let cookie = read_at::<u64>(sk, config!(sock.skc_cookie))?;
    let mut peer = no_peer(pid_tgid);
    if let Some(dest) = UDP_FLOW_DEST.get_ptr(pid_tgid) {
        // SAFETY: a value pointer from a successful lookup, valid for this program run;
        // copied out before the entry is removed.
        let dest = unsafe { core::ptr::read(dest) };
        let _ = UDP_FLOW_DEST.remove(pid_tgid);
        if dest.cookie == cookie {
            peer.family = dest.family;
            peer.rport = dest.port;
            peer.raddr = dest.addr;
        }
    }
    count_datagram(sk, pid_tgid, cookie, peer, len, out, backend::CGROUP)
}

/// The calling process with no remote end yet.
#[inline(always)]
pub fn no_peer(pid_tgid: u64) -> UdpFlowPeer {
    UdpFlowPeer {
        tgid: (pid_tgid >> 32) as u32,
        family: 0,
        rport: 0,
        raddr: [0; 16],
    }
}

/// One datagram of `len` bytes in the flow of (`cookie`, the caller, `peer`); a `peer`
/// without a family stands for the connected peer, if the socket has one. `backend` is the
/// counting programs' (`backend::*`), kept with a new flow.
#[inline(always)]
pub fn count_datagram(
    sk: *const u8,
    pid_tgid: u64,
    cookie: u64,
    mut peer: UdpFlowPeer,
    len: u32,
    out: bool,
    backend: u32,
) -> Result<(), i64> {
    let family = sock_family(sk)?;
    if peer.family == 0
        && read_at::<u8>(sk, config!(sock.skc_state))? == SK_ESTABLISHED
        && let Some(flow) = sock_flow(sk, family)?
    {
        peer.family = flow.family;
        peer.rport = flow.dport;
        peer.raddr = flow.daddr;
    }
    if peer.family == 0 || cookie == 0 {
        count(stat::UDP_FLOW_PEER_UNKNOWN);
        return Ok(());
    }
    normalise(&mut peer);
    if peer.rport == 0 || unspecified(&peer) {
        return Ok(()); // rejected by the kernel, or a local address: no remote end
    }
    let key = UdpFlowKey { cookie, peer };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    if let Some(flow) = UDP_FLOWS.get_ptr_mut(&key) {
        add(flow, len, out, now);
        return Ok(());
    }
    let who = Identity::current();
    let mut local = Flow::empty(peer.family);
    sock_source(sk, &mut local, family == AF_INET6);
    let (bytes, packets) = (u64::from(len), 1);
    let flow = UdpFlow {
        first_ns: now,
        last_ns: now,
        bytes_out: if out { bytes } else { 0 },
        bytes_in: if out { 0 } else { bytes },
        packets_out: if out { packets } else { 0 },
        packets_in: if out { 0 } else { packets },
        pid_tgid,
        uid_gid: who.uid_gid,
        cgroup_id: who.cgroup_id,
        start_time_ns: current_start_time(),
        lport: local.sport,
        backend: backend as u16,
        flags: if out { 0 } else { life_flag::INBOUND },
        laddr: local.saddr,
        comm: who.comm,
    };
    match UDP_FLOWS.insert(&key, &flow, u64::from(BPF_NOEXIST)) {
        Ok(()) => list(cookie, &key.peer),
        Err(e) if i64::from(e) == -EEXIST => {
            // Another thread's first datagram won the race: count this one in its entry.
            if let Some(flow) = UDP_FLOWS.get_ptr_mut(&key) {
                add(flow, len, out, now);
            }
        }
        Err(_) => count(stat::UDP_FLOW_TABLE_FULL),
    }
    Ok(())
}

#[inline(always)]
fn add(flow: *mut UdpFlow, len: u32, out: bool, now: u64) {
    // SAFETY: a value pointer from a successful lookup, valid for this program run; the
    // counters are added atomically (threads of one socket may run on several CPUs).
    unsafe {
        if out {
            crate::emit::atomic_add(&raw mut (*flow).bytes_out, u64::from(len));
            crate::emit::atomic_add(&raw mut (*flow).packets_out, 1u64);
        } else {
            crate::emit::atomic_add(&raw mut (*flow).bytes_in, u64::from(len));
            crate::emit::atomic_add(&raw mut (*flow).packets_in, 1u64);
        }
        (*flow).last_ns = now;
    }
}

/// An IPv4-mapped IPv6 peer (`::ffff:a.b.c.d`) as IPv4, so that a dual-stack socket's
/// sends (`sendmsg4` sees IPv4) and receives (`recvmsg6` sees it mapped) are one flow.
#[inline(always)]
fn normalise(peer: &mut UdpFlowPeer) {
    if peer.family == AF_INET6
        && word(&peer.raddr, 0) == 0
        && word(&peer.raddr, 1) == 0
        && word(&peer.raddr, 2) == u32::from_ne_bytes([0, 0, 0xff, 0xff])
    {
        let v4 = word(&peer.raddr, 3).to_ne_bytes();
        peer.family = AF_INET;
        peer.raddr = [
            v4[0], v4[1], v4[2], v4[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
    } else if peer.family == AF_INET {
        // Only the first 4 bytes are an IPv4 address: the rest must not split a flow.
        let v4 = word(&peer.raddr, 0).to_ne_bytes();
        peer.raddr = [
            v4[0], v4[1], v4[2], v4[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
    }
}

#[inline(always)]
fn unspecified(peer: &UdpFlowPeer) -> bool {
    if peer.family == AF_INET6 {
        unspecified_v6(&peer.raddr)
    } else {
        word(&peer.raddr, 0) == 0
    }
}

/// Lists a new flow under its socket, for the release program. A socket with more than
/// `UDP_FLOW_SLOTS` flows, or none listed because its table is full, leaves the others to
/// the idle sweep (counted).
#[inline(always)]
fn list(cookie: u64, peer: &UdpFlowPeer) {
    let mut sock = UDP_SOCKS.get_ptr_mut(&cookie);
    if sock.is_none() {
        // EEXIST (another CPU made it) is fine: looked up again below.
        let _ = UDP_SOCKS.insert(&cookie, &EMPTY_SOCK, u64::from(BPF_NOEXIST));
        sock = UDP_SOCKS.get_ptr_mut(&cookie);
    }
    let Some(sock) = sock else {
        count(stat::UDP_FLOW_UNLISTED);
        return;
    };
    // The flow's slot: where it is already (a flow summarised after an idle period and
    // begun again), else the first free one.
    for i in 0..UDP_FLOW_SLOTS {
        // SAFETY: a value pointer from a successful lookup, valid for this program run; `i`
        // is below the array's length.
        let slot = unsafe { &raw mut (*sock).peers[i] };
        // SAFETY: as above.
        let (family, same) = unsafe { ((*slot).family, same_peer(&*slot, peer)) };
        if same {
            return;
        }
        if family == 0 {
            // SAFETY: as above.
            unsafe { *slot = *peer };
            return;
        }
    }
    count(stat::UDP_FLOW_UNLISTED);
}

/// Compared word by word (the BPF target has no `memcmp`).
#[inline(always)]
fn same_peer(a: &UdpFlowPeer, b: &UdpFlowPeer) -> bool {
    a.tgid == b.tgid
        && a.family == b.family
        && a.rport == b.rport
        && word(&a.raddr, 0) == word(&b.raddr, 0)
        && word(&a.raddr, 1) == word(&b.raddr, 1)
        && word(&a.raddr, 2) == word(&b.raddr, 2)
        && word(&a.raddr, 3) == word(&b.raddr, 3)
}

/// `cgroup/sock_release`: a socket is being released (`inet_release`, in the closing task
/// or at its exit). A UDP socket's listed flows are summarised and forgotten. Always
/// returns 1.
#[cgroup_sock(sock_release)]
pub fn life_cgroup_sock_release(ctx: SockContext) -> i32 {
    finish(
        &ctx,
        "life_cgroup_sock_release",
        try_life_cgroup_sock_release(&ctx),
    );
    1
}

fn try_life_cgroup_sock_release(ctx: &SockContext) -> Result<(), i64> {
    if counting(udp_flow_counting::OFF) {
        return Ok(());
    }
    // SAFETY: `sock` is the program's context (`struct bpf_sock *`); the kernel checks
    // the field access.
    let protocol = unsafe { core::ptr::read_volatile(&raw const (*ctx.sock).protocol) };
    if protocol != u32::from(IPPROTO_UDP) {
        return Ok(());
    }
    // SAFETY: the helper takes the program's context. A socket that never had a cookie
    // gets a new one here, which lists nothing: it had no flow either.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.sock.cast()) };
    let Some(sock) = UDP_SOCKS.get_ptr(&cookie) else {
        return Ok(());
    };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    for i in 0..UDP_FLOW_SLOTS {
        let key = UdpFlowKey {
            cookie,
            // SAFETY: a value pointer from a successful lookup, valid for this program run
            // (the entry is removed after the loop); `i` is below the array's length.
            peer: unsafe { (*sock).peers[i] },
        };
        if key.peer.family == 0 {
            break; // slots fill in order: the rest are free
        }
        if let Some(flow) = UDP_FLOWS.get_ptr(&key) {
            // SAFETY: as above, for this map's value.
            emit_summary(&key, unsafe { &*flow }, now);
            let _ = UDP_FLOWS.remove(&key);
        }
    }
    let _ = UDP_SOCKS.remove(&cookie);
    Ok(())
}

/// Writes a flow's summary at the socket's release.
#[inline(always)]
fn emit_summary(key: &UdpFlowKey, flow: &UdpFlow, now: u64) {
    let Some(mut entry) = EVENTS.reserve::<LifeEvent>(0) else {
        count(stat::RINGBUF_FULL);
        count(stat::LOST_LIFE);
        return;
    };
    // SAFETY: the record just reserved, valid for writes until it is submitted; every
    // field is written by `write_flow_summary`.
    unsafe { write_flow_summary(&mut *entry.as_mut_ptr(), key, flow, now, 0) };
    entry.submit(wakeup_flag());
    count(stat::LIFE_RECORDS);
}
