//! DNS answers, attributed to the process that asked.
//!
//! Asking: the cgroup `connect4/6` and `sendmsg4/6` programs (`dns_cgroup_*`) run in the
//! asking task for every `connect()` or unconnected `sendmsg()` to port 53 (UDP or TCP), and
//! remember the process by socket cookie in `DNS_OWNERS`. Getting the cookie also makes the
//! kernel store it in the socket (`skc_cookie`), where the answer side reads it.
//!
//! Answering: `sk_data_ready` (`sock_def_readable`, through which UDP and TCP wake a
//! reader) runs once per datagram (TCP: per segment batch) queued to a socket, in softirq
//! context of whatever task. As a raw tracepoint (`sock:sk_data_ready`, Linux 6.5+), or
//! fentry/kprobe on `sock_def_readable` on older kernels. Per call it reads the socket's
//! peer port first (one read); only a socket talking to port 53 (or an unconnected UDP
//! socket) reads on. The skb is the tail of `sk->sk_receive_queue`, just queued by the
//! caller; its first `DNS_PAYLOAD_LEN` bytes of payload go to the ring buffer with the owner
//! found by cookie.
//!
//! The race: the tail is read without the queue's lock. A reader on another CPU may have
//! dequeued (and freed) the skb, or another datagram may have been queued behind it, in the
//! microseconds between the enqueue and this read. Then the program sees an empty queue
//! (counted in `DNS_MISSED`), the newer datagram (this answer is missed, the newer one is
//! reported twice), or the bytes of a freed skb (`bpf_probe_read_kernel` never faults; the
//! bytes are stale: the parse fails and is counted, or repeats an earlier answer of the same
//! socket). It cannot change traffic, block, or crash anything; the only misattribution
//! would need the freed memory to be reused for another socket's DNS answer within that
//! window.

use aya_ebpf::{
    bindings::BPF_RB_AVAIL_DATA,
    cty::c_void,
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{
            bpf_get_current_task_btf, bpf_ktime_get_boot_ns, bpf_probe_read_kernel,
            bpf_probe_read_user, bpf_task_pt_regs,
        },
    },
    macros::{cgroup_sock_addr, fentry, fexit, kprobe, raw_tracepoint},
    programs::{FEntryContext, FExitContext, ProbeContext, RawTracePointContext, SockAddrContext},
};
use monitor_common::{
    AF_INET, AF_INET6, DNS_PAYLOAD_LEN, DnsEvent, DnsOwner, IPPROTO_TCP, IPPROTO_UDP, backend,
    dns_flag, kind, stat,
};

use crate::{
    emit::{Identity, count, finish, is_excluded, wakeup_flag},
    kernel::read_at,
    maps::{DNS_OWNERS, DNS_RECV_ARGS, EVENTS, config},
    sock_addr,
};

/// The DNS server port.
pub const DNS_PORT: u16 = 53;
const _: () = assert!(DNS_PAYLOAD_LEN.is_power_of_two());

/// Source address offsets in the IPv4 and IPv6 headers (the IP version is the header's first
/// nibble).
const IPV4_SADDR: usize = 12;
const IPV6_SADDR: usize = 8;
const UDP_HEADER_LEN: u32 = 8;
/// `include/net/tcp_states.h`: the state of an unconnected (or unbound) UDP socket.
const TCP_CLOSE: u8 = 7;

/// `cgroup/connect4`: remembers a socket connecting to port 53. Always returns 1.
#[cgroup_sock_addr(connect4)]
pub fn dns_cgroup_connect4(ctx: SockAddrContext) -> i32 {
    finish(&ctx, "dns_cgroup_connect4", try_dns_owner(&ctx, false));
    1
}

/// `cgroup/connect6`. Always returns 1.
#[cgroup_sock_addr(connect6)]
pub fn dns_cgroup_connect6(ctx: SockAddrContext) -> i32 {
    finish(&ctx, "dns_cgroup_connect6", try_dns_owner(&ctx, true));
    1
}

/// `cgroup/sendmsg4`: an unconnected UDP send to port 53 (musl's resolver). Always returns 1.
#[cgroup_sock_addr(sendmsg4)]
pub fn dns_cgroup_sendmsg4(ctx: SockAddrContext) -> i32 {
    finish(&ctx, "dns_cgroup_sendmsg4", try_dns_owner(&ctx, false));
    1
}

/// `cgroup/sendmsg6`. Always returns 1.
#[cgroup_sock_addr(sendmsg6)]
pub fn dns_cgroup_sendmsg6(ctx: SockAddrContext) -> i32 {
    finish(&ctx, "dns_cgroup_sendmsg6", try_dns_owner(&ctx, true));
    1
}

/// The port check first: every `connect()` of the host runs this. Attached only where the
/// UDP cgroup programs do not already remember askers (`remember_owner`), or for TCP when
/// TCP answers are not read at the receiver.
fn try_dns_owner(ctx: &SockAddrContext, v6: bool) -> Result<(), i64> {
    let flow = sock_addr::flow(ctx, v6);
    if flow.dport != DNS_PORT {
        return Ok(());
    }
    let proto = sock_addr::protocol(ctx);
    let tcp_needed = proto == u32::from(IPPROTO_TCP) && config!(dns.tcp_on_recv) == 0;
    if proto != u32::from(IPPROTO_UDP) && !tcp_needed {
        return Ok(());
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    if is_excluded(pid_tgid) {
        return Ok(());
    }
    remember_owner(ctx, pid_tgid, &Identity::current())
}

/// Remembers the process asking a DNS server through this socket (by cookie, which also
/// makes the kernel store the cookie in the socket for the answer side to read). Called by
/// the UDP cgroup programs for a destination port 53, and by `try_dns_owner`.
#[inline(always)]
pub fn remember_owner(ctx: &SockAddrContext, pid_tgid: u64, who: &Identity) -> Result<(), i64> {
    if config!(dns.valid) == 0 {
        return Ok(());
    }
    let owner = DnsOwner {
        pid_tgid,
        uid_gid: who.uid_gid,
        cgroup_id: who.cgroup_id,
        comm: who.comm,
    };
    if let Err(err) = DNS_OWNERS.insert(sock_addr::cookie(ctx), owner, 0) {
        count(stat::DNS_OWNER_FAILED);
        return Err(i64::from(err));
    }
    Ok(())
}

/// `sock:sk_data_ready`, `TP_PROTO(const struct sock *sk)` (Linux 6.5+), as a raw
/// tracepoint: no trace record is built.
#[raw_tracepoint(tracepoint = "sk_data_ready")]
pub fn dns_raw_tp_sk_data_ready(ctx: RawTracePointContext) -> u32 {
    let sk: *const u8 = ctx.arg(0);
    finish(
        &ctx,
        "dns_raw_tp_sk_data_ready",
        try_dns_answer(sk, backend::RAW_TRACEPOINT),
    )
}

/// `void sock_def_readable(struct sock *sk)` (net/core/sock.c): every inet socket's
/// `sk_data_ready`, for kernels without the tracepoint.
#[fentry(function = "sock_def_readable")]
pub fn dns_fentry_sock_def_readable(ctx: FEntryContext) -> u32 {
    let sk: *const u8 = ctx.arg(0);
    finish(
        &ctx,
        "dns_fentry_sock_def_readable",
        try_dns_answer(sk, backend::FENTRY),
    )
}

/// `void sock_def_readable(struct sock *sk)`, as a kprobe.
#[kprobe]
pub fn dns_kprobe_sock_def_readable(ctx: ProbeContext) -> u32 {
    let Some(sk) = ctx.arg::<*const u8>(0) else {
        count(stat::READ_FAILED);
        return 0;
    };
    finish(
        &ctx,
        "dns_kprobe_sock_def_readable",
        try_dns_answer(sk, backend::KPROBE),
    )
}

/// `sock:sock_recv_length`, `TP_PROTO(struct sock *sk, int ret, int flags)` (Linux 6.3+),
/// as a raw tracepoint: every `recvmsg` of every socket, in the receiving task, after the
/// data was copied to the caller's buffer. TCP answers are read here, from that buffer
/// (found through the syscall's saved registers: `read`, `readv`, `recvfrom`, `recvmsg`,
/// `recvmmsg`), because the kernel keeps TCP payload in page fragments `sk_data_ready`
/// cannot read. The reader is the process that asked, so no owner lookup is needed.
#[raw_tracepoint(tracepoint = "sock_recv_length")]
pub fn dns_raw_tp_sock_recv_length(ctx: RawTracePointContext) -> u32 {
    let sk: *const u8 = ctx.arg(0);
    let ret = ctx.arg::<u64>(1) as i32;
    let flags = ctx.arg::<u64>(2) as i32;
    finish(
        &ctx,
        "dns_raw_tp_sock_recv_length",
        try_dns_recv(sk, ret, flags),
    )
}

/// `MSG_PEEK`: the data stays queued and is read again.
const MSG_PEEK: i32 = 2;
/// A DNS header: anything shorter (glibc reads the 2-byte TCP length on its own) is no
/// message.
const DNS_HEADER_LEN: i32 = 12;
/// x86_64 syscall numbers (`arch/x86/entry/syscalls/syscall_64.tbl`, a stable ABI).
const NR_READ: u64 = 0;
const NR_READV: u64 = 19;
const NR_RECVFROM: u64 = 45;
const NR_RECVMSG: u64 = 47;
const NR_RECVMMSG: u64 = 299;
/// `offsetof(struct msghdr, msg_iov)` in the x86_64 UAPI (and of `mmsghdr.msg_hdr.msg_iov`).
const MSGHDR_IOV: usize = 16;

#[inline(always)]
fn try_dns_recv(sk: *const u8, ret: i32, flags: i32) -> Result<(), i64> {
    if ret < DNS_HEADER_LEN || flags & MSG_PEEK != 0 || config!(dns.tcp_on_recv) == 0 {
        return Ok(());
    }
    if !is_tcp_dns(sk)? {
        return Ok(());
    }
    // SAFETY: helpers without preconditions beyond a task pointer, which the first gives;
    // the registers are only read through bpf_probe_read_kernel.
    let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as *const u8;
    let nr = read_at::<u64>(regs, config!(dns.regs_orig_ax))?;
    let arg = read_at::<u64>(regs, config!(dns.regs_si))? as *const u8;
    let buf: *const u8 = match nr {
        NR_READ | NR_RECVFROM => arg,
        // The first iovec's base (ret bytes may span more iovecs: only the first is read).
        NR_READV => read_user::<u64>(arg)? as *const u8,
        NR_RECVMSG | NR_RECVMMSG => {
            let iov = read_user::<u64>(arg.wrapping_add(MSGHDR_IOV))? as *const u8;
            read_user::<u64>(iov)? as *const u8
        }
        _ => return Ok(()), // io_uring and others: not seen
    };
    tcp_answer(sk, buf, ret, backend::RAW_TRACEPOINT)
}

/// Whether `sk` is a TCP socket talking to a server's port 53 (UDP answers are read in
/// `sk_data_ready`).
#[inline(always)]
fn is_tcp_dns(sk: *const u8) -> Result<bool, i64> {
    if u16::from_be(read_at::<u16>(sk, config!(sock.skc_dport))?) != DNS_PORT {
        return Ok(false);
    }
    Ok(read_at::<u16>(sk, config!(sock.sk_protocol))? == u16::from(IPPROTO_TCP))
}

/// `int sock_recvmsg(struct socket *sock, struct msghdr *msg, int flags)` (net/socket.c):
/// every `read`, `readv`, `recv`, `recvfrom` and `recvmsg` of a socket (not `recvmmsg`'s
/// second and later messages, which take `sock_recvmsg_nosec`), for kernels without the
/// `sock_recv_length` tracepoint. The entry remembers where the data will go, the return
/// (`dns_fexit_sock_recvmsg`) how much came: fexit sees `msg` after the copy advanced it.
#[fentry(function = "sock_recvmsg")]
pub fn dns_fentry_sock_recvmsg(ctx: FEntryContext) -> u32 {
    let sock: *const u8 = ctx.arg(0);
    let msg: *const u8 = ctx.arg(1);
    let flags = ctx.arg::<u64>(2) as i32;
    finish(
        &ctx,
        "dns_fentry_sock_recvmsg",
        try_dns_recv_enter(sock, msg, flags),
    )
}

/// `sock_recvmsg`'s return (its fourth BTF argument): reads the answer the entry program
/// armed for this thread.
#[fexit(function = "sock_recvmsg")]
pub fn dns_fexit_sock_recvmsg(ctx: FExitContext) -> u32 {
    let ret = ctx.arg::<u64>(3) as i32;
    finish(
        &ctx,
        "dns_fexit_sock_recvmsg",
        try_dns_recv_return(ret, backend::FENTRY),
    )
}

/// `sock_recvmsg`, as a kprobe (see `dns_fentry_sock_recvmsg`).
#[kprobe]
pub fn dns_kprobe_sock_recvmsg(ctx: ProbeContext) -> u32 {
    let (Some(sock), Some(msg), Some(flags)) = (
        ctx.arg::<*const u8>(0),
        ctx.arg::<*const u8>(1),
        ctx.arg::<u64>(2),
    ) else {
        count(stat::READ_FAILED);
        return 0;
    };
    finish(
        &ctx,
        "dns_kprobe_sock_recvmsg",
        try_dns_recv_enter(sock, msg, flags as i32),
    )
}

/// `void tcp_rcv_space_adjust(struct sock *sk)` (net/ipv4/tcp_input.c), which
/// `tcp_recvmsg` calls after each chunk it copied to the caller: the kprobe backend's "return"
/// of `dns_kprobe_sock_recvmsg`. A kretprobe on `sock_recvmsg` would be simpler, but every
/// blocked reader of the host holds one of its few instances (as many as CPUs on a kernel
/// without preemption), and returns past that are dropped: Debian 11's 5.10 missed every
/// TCP answer so in `cargo xtask vm`.
#[kprobe]
pub fn dns_kprobe_tcp_rcv_space_adjust(ctx: ProbeContext) -> u32 {
    let Some(sk) = ctx.arg::<*const u8>(0) else {
        count(stat::READ_FAILED);
        return 0;
    };
    finish(
        &ctx,
        "dns_kprobe_tcp_rcv_space_adjust",
        try_dns_recv_copied(sk),
    )
}

/// What a `sock_recvmsg` on a TCP DNS socket needs at its return, by thread
/// (`DNS_RECV_ARGS`).
#[repr(C)]
pub struct RecvArgs {
    sk: u64,
    /// The user buffer the data is copied to.
    buf: u64,
    /// `&msg->msg_iter`, and its `count` (bytes wanted) at entry: the kprobe backend learns
    /// how much was copied from the difference.
    iter: u64,
    want: u64,
}

/// Entry of `sock_recvmsg`: on a TCP socket talking to port 53, remembers the socket and the
/// first user buffer of `msg->msg_iter` (untouched until the copy) for this thread.
#[inline(always)]
fn try_dns_recv_enter(sock: *const u8, msg: *const u8, flags: i32) -> Result<(), i64> {
    if flags & MSG_PEEK != 0 || config!(dns.tcp_on_recv) == 0 || config!(dns.recv.valid) == 0 {
        return Ok(());
    }
    let sk = read_at::<*const u8>(sock, config!(dns.recv.socket_sk))?;
    if sk.is_null() || !is_tcp_dns(sk)? {
        return Ok(());
    }
    let iter = msg.wrapping_add(config!(dns.recv.msg_iter) as usize);
    let ty = u32::from(read_at::<u8>(iter, config!(dns.recv.iter_type))?);
    let base = if ty == config!(dns.recv.type_ubuf) {
        read_at::<u64>(iter, config!(dns.recv.iter_ubuf))?
    } else if ty == config!(dns.recv.type_iovec) {
        // The first `struct iovec` (kernel memory: the syscall copied the array in); its
        // first field is `iov_base`.
        let iov = read_at::<*const u8>(iter, config!(dns.recv.iter_iov))?;
        read_at::<u64>(iov, 0)?
    } else {
        return Ok(()); // a kernel-internal read (kvec, bvec): no user buffer
    };
    let offset = read_at::<u64>(iter, config!(dns.recv.iter_offset))?;
    let args = RecvArgs {
        sk: sk as u64,
        buf: base.wrapping_add(offset),
        iter: iter as u64,
        want: read_at::<u64>(iter, config!(dns.recv.iter_count))?,
    };
    if let Err(err) = DNS_RECV_ARGS.insert(bpf_get_current_pid_tgid(), args, 0) {
        count(stat::DNS_RECV_FAILED);
        return Err(i64::from(err));
    }
    Ok(())
}

/// Return of `sock_recvmsg` (fexit): `ret` bytes of the answer are in the buffer the entry
/// found.
#[inline(always)]
fn try_dns_recv_return(ret: i32, backend: u32) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the value is copied out at once, before anything else touches the map.
    let Some((sk, buf)) =
        (unsafe { DNS_RECV_ARGS.get(pid_tgid) }).map(|a| (a.sk as *const u8, a.buf as *const u8))
    else {
        return Ok(()); // not a DNS socket: nearly every call
    };
    // Already gone only if evicted meanwhile; nothing to do then.
    let _ = DNS_RECV_ARGS.remove(pid_tgid);
    if ret < DNS_HEADER_LEN {
        return Ok(());
    }
    tcp_answer(sk, buf, ret, backend)
}

/// A chunk of a TCP read was copied (kprobe backend): once the read armed for this thread
/// on this socket holds a DNS header or more, the answer is reported from the caller's
/// buffer, so an answer that arrived in several segments may be reported cut (the parser
/// counts it). A read that stops short of that leaves its entry to the next read.
#[inline(always)]
fn try_dns_recv_copied(sk: *const u8) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the values are copied out at once, before anything else touches the map.
    let Some((armed, buf, iter, want)) = (unsafe { DNS_RECV_ARGS.get(pid_tgid) }).map(|a| {
        (
            a.sk as *const u8,
            a.buf as *const u8,
            a.iter as *const u8,
            a.want,
        )
    }) else {
        return Ok(()); // no DNS read in progress in this thread: nearly every call
    };
    if armed != sk {
        return Ok(());
    }
    let left = read_at::<u64>(iter, config!(dns.recv.iter_count))?;
    let copied = want.saturating_sub(left);
    if copied < DNS_HEADER_LEN as u64 {
        return Ok(());
    }
    let _ = DNS_RECV_ARGS.remove(pid_tgid);
    let copied = if copied > i32::MAX as u64 {
        i32::MAX
    } else {
        copied as i32
    };
    tcp_answer(sk, buf, copied, backend::KPROBE)
}

/// Reports `ret` bytes a TCP DNS client just received into `buf` (its own memory): the
/// reader is the process that asked, so no owner lookup is needed.
#[inline(always)]
fn tcp_answer(sk: *const u8, buf: *const u8, ret: i32, backend: u32) -> Result<(), i64> {
    let family = read_at::<u16>(sk, config!(sock.skc_family))?;
    let mut server = [0u8; 16];
    if family == AF_INET {
        let a = read_at::<[u8; 4]>(sk, config!(sock.skc_daddr))?;
        server[..4].copy_from_slice(&a);
    } else if family == AF_INET6 {
        server = read_at::<[u8; 16]>(sk, config!(sock.skc_v6_daddr))?;
    } else {
        return Ok(());
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let who = Identity::current();
    let wire_len = ret as u32;
    let mut dflags = dns_flag::TCP | dns_flag::OWNER_KNOWN;
    if wire_len > DNS_PAYLOAD_LEN as u32 {
        dflags |= dns_flag::CUT;
        count(stat::DNS_CUT);
    }
    let local_port = read_at::<u16>(sk, config!(sock.skc_num)).unwrap_or(0);
    if shed() {
        return Ok(());
    }
    let Some(mut entry) = EVENTS.reserve::<DnsEvent>(0) else {
        count(stat::RINGBUF_FULL);
        count(stat::LOST_DNS);
        return Ok(());
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: as in `try_dns_answer`.
    unsafe {
        (*ev).kind = kind::DNS;
        (*ev).flags = dflags;
        (*ev).ktime_ns = bpf_ktime_get_boot_ns();
        (*ev).tgid = (pid_tgid >> 32) as u32;
        (*ev).tid = pid_tgid as u32;
        (*ev).uid = who.uid_gid as u32;
        (*ev).gid = (who.uid_gid >> 32) as u32;
        (*ev).cgroup_id = who.cgroup_id;
        (*ev).start_time_ns = 0;
        (*ev).cookie = 0;
        (*ev).family = family;
        (*ev).protocol = IPPROTO_TCP;
        (*ev)._pad0 = 0;
        (*ev).server_port = DNS_PORT;
        (*ev).local_port = local_port;
        (*ev).payload_len = 0;
        (*ev).wire_len = wire_len;
        (*ev).backend = backend;
        (*ev)._pad1 = 0;
        (*ev).server = server;
        (*ev).local = [0; 16];
        (*ev).comm = who.comm;
        let copy = if wire_len > DNS_PAYLOAD_LEN as u32 {
            DNS_PAYLOAD_LEN as u32
        } else {
            wire_len
        };
        let raw = core::ptr::read_volatile(&copy);
        let n = ((raw.wrapping_sub(1)) & (DNS_PAYLOAD_LEN as u32 - 1)) + 1;
        let rc = bpf_probe_read_user(
            (&raw mut (*ev).payload).cast::<c_void>(),
            n,
            buf.cast::<c_void>(),
        );
        if rc == 0 {
            (*ev).payload_len = n;
        } else {
            count(stat::READ_FAILED);
        }
    }
    entry.submit(wakeup_flag());
    count(stat::DNS_ANSWERS);
    Ok(())
}

/// Whether to drop this answer: the ring buffer is more than `shed_bytes` full, and what is
/// left belongs to connection events (a DNS flood must not cost a connect). Counted.
#[inline(always)]
fn shed() -> bool {
    if EVENTS.query(BPF_RB_AVAIL_DATA as u64) > u64::from(config!(dns.shed_bytes)) {
        count(stat::DNS_SHED);
        return true;
    }
    false
}

/// A `T` from the current task's user memory.
#[inline(always)]
fn read_user<T>(at: *const u8) -> Result<T, i64> {
    // SAFETY: bpf_probe_read_user never faults; a bad address is an error.
    unsafe { aya_ebpf::helpers::bpf_probe_read_user(at.cast::<T>()) }.map_err(|e| {
        count(stat::READ_FAILED);
        i64::from(e)
    })
}

/// One datagram (or TCP segment) queued to `sk`: reported when it comes from port 53.
#[inline(always)]
fn try_dns_answer(sk: *const u8, backend: u32) -> Result<(), i64> {
    if config!(dns.valid) == 0 {
        return Ok(());
    }
    // One read decides for nearly every call: the peer port (network order) of a connected
    // socket, 0 for listeners, unconnected UDP sockets and non-inet sockets; with the state
    // in the same word, a listener (every accepted connection) stops here too.
    let dport = if config!(dns.ports_word) != 0 {
        let w = read_at::<[u8; 8]>(sk, config!(sock.skc_dport))?;
        let dport = u16::from_be_bytes([w[0], w[1]]);
        // Unconnected UDP sockets are TCP_CLOSE; anything else without a peer port is not
        // a DNS client (a listener, a unix socket's zeroed inet fields).
        if dport == 0 && w[6] != TCP_CLOSE {
            return Ok(());
        }
        dport
    } else {
        u16::from_be(read_at::<u16>(sk, config!(sock.skc_dport))?)
    };
    if dport != DNS_PORT && dport != 0 {
        return Ok(());
    }
    let protocol = read_at::<u16>(sk, config!(sock.sk_protocol))?;
    let tcp = protocol == u16::from(IPPROTO_TCP);
    if !tcp && protocol != u16::from(IPPROTO_UDP) {
        return Ok(());
    }
    if tcp && (dport == 0 || config!(dns.tcp_on_recv) != 0) {
        // A listener (a connection, not data), or TCP read at the receiver instead.
        return Ok(());
    }
    let family = read_at::<u16>(sk, config!(sock.skc_family))?;
    if family != AF_INET && family != AF_INET6 {
        return Ok(());
    }
    let skb = read_at::<*const u8>(sk, config!(dns.rcvq_tail))?;
    // An empty queue is a list head pointing at itself.
    let queue_head = sk.wrapping_add(config!(dns.rcvq_head) as usize);
    if skb.is_null() || skb == queue_head {
        count(stat::DNS_MISSED);
        return Ok(());
    }
    let head = read_at::<*const u8>(skb, config!(dns.skb_head))?;
    let data = read_at::<*const u8>(skb, config!(dns.skb_data))?;
    let len = read_at::<u32>(skb, config!(dns.skb_len))?;
    let data_len = read_at::<u32>(skb, config!(dns.skb_data_len))?;
    let linear = len.saturating_sub(data_len);

    let mut server = [0u8; 16];
    let (server_family, payload, wire_len, avail) = if tcp {
        // TCP: the header is pulled before the segment is queued; `data` is the stream.
        let server_family = family;
        if family == AF_INET {
            let a = read_at::<[u8; 4]>(sk, config!(sock.skc_daddr))?;
            server[..4].copy_from_slice(&a);
        } else {
            server = read_at::<[u8; 16]>(sk, config!(sock.skc_v6_daddr))?;
        }
        (server_family, data, len, linear)
    } else {
        // UDP: from the headers, so unconnected sockets (dport 0) are covered alike.
        let th = read_at::<u16>(skb, config!(dns.skb_transport_header))?;
        let nh = read_at::<u16>(skb, config!(dns.skb_network_header))?;
        let udp = head.wrapping_add(th as usize);
        let sport = u16::from_be(read_at::<u16>(udp, 0)?);
        if sport != DNS_PORT {
            return Ok(());
        }
        let udp_len = u32::from(u16::from_be(read_at::<u16>(udp, 4)?));
        let ip = head.wrapping_add(nh as usize);
        let version = read_at::<u8>(ip, 0)? >> 4;
        let server_family = if version == 4 {
            let a = read_at::<[u8; 4]>(ip, IPV4_SADDR as u32)?;
            server[..4].copy_from_slice(&a);
            AF_INET
        } else {
            server = read_at::<[u8; 16]>(ip, IPV6_SADDR as u32)?;
            AF_INET6
        };
        let payload = udp.wrapping_add(UDP_HEADER_LEN as usize);
        // Linear bytes from the payload on: from `data` (where the linear part is counted
        // from) to its end, less what lies between `data` and the payload.
        let skipped = (payload as usize).wrapping_sub(data as usize) as u32;
        let avail = linear.saturating_sub(skipped);
        (
            server_family,
            payload,
            udp_len.saturating_sub(UDP_HEADER_LEN),
            avail,
        )
    };
    let mut copy: u32 = if wire_len < avail { wire_len } else { avail };
    let mut flags = if tcp { dns_flag::TCP } else { 0 };
    if copy < wire_len {
        flags |= dns_flag::CUT;
    }
    if copy > DNS_PAYLOAD_LEN as u32 {
        copy = DNS_PAYLOAD_LEN as u32;
        flags |= dns_flag::CUT;
    }
    if flags & dns_flag::CUT != 0 {
        count(stat::DNS_CUT);
    }
    if copy == 0 {
        return Ok(());
    }
    let cookie = read_at::<u64>(sk, config!(dns.skc_cookie)).unwrap_or(0);
    let local_port = read_at::<u16>(sk, config!(sock.skc_num)).unwrap_or(0);

    if shed() {
        return Ok(());
    }
    let Some(mut entry) = EVENTS.reserve::<DnsEvent>(0) else {
        count(stat::RINGBUF_FULL);
        count(stat::LOST_DNS);
        return Ok(());
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points at the record just reserved, valid for writes until it is
    // submitted; every field but the unused tail of `payload` is written below.
    unsafe {
        (*ev).kind = kind::DNS;
        (*ev).ktime_ns = bpf_ktime_get_boot_ns();
        (*ev).cookie = cookie;
        (*ev).family = server_family;
        (*ev).protocol = if tcp { IPPROTO_TCP } else { IPPROTO_UDP };
        (*ev)._pad0 = 0;
        (*ev).server_port = DNS_PORT;
        (*ev).local_port = local_port;
        (*ev).wire_len = wire_len;
        (*ev).backend = backend;
        (*ev)._pad1 = 0;
        (*ev).server = server;
        (*ev).local = [0; 16];
        (*ev).start_time_ns = 0;
        (*ev).payload_len = 0;
        match DNS_OWNERS.get(cookie) {
            Some(owner) if cookie != 0 => {
                flags |= dns_flag::OWNER_KNOWN;
                (*ev).tgid = (owner.pid_tgid >> 32) as u32;
                (*ev).tid = owner.pid_tgid as u32;
                (*ev).uid = owner.uid_gid as u32;
                (*ev).gid = (owner.uid_gid >> 32) as u32;
                (*ev).cgroup_id = owner.cgroup_id;
                (*ev).comm = owner.comm;
            }
            _ => {
                (*ev).tgid = 0;
                (*ev).tid = 0;
                (*ev).uid = 0;
                (*ev).gid = 0;
                (*ev).cgroup_id = 0;
                (*ev).comm = [0; 16];
            }
        }
        (*ev).flags = flags;
        // 1..=DNS_PAYLOAD_LEN by a mask the verifier tracks through spills (a compare-based
        // bound was lost on the way to the call); `copy` is already in that range.
        // The volatile read keeps LLVM from folding the mask away (it knows the range).
        let raw = core::ptr::read_volatile(&copy);
        let n = ((raw.wrapping_sub(1)) & (DNS_PAYLOAD_LEN as u32 - 1)) + 1;
        let rc = bpf_probe_read_kernel(
            (&raw mut (*ev).payload).cast::<c_void>(),
            n,
            payload.cast::<c_void>(),
        );
        if rc == 0 {
            (*ev).payload_len = n;
        } else {
            count(stat::READ_FAILED);
        }
    }
    entry.submit(wakeup_flag());
    count(stat::DNS_ANSWERS);
    Ok(())
}
