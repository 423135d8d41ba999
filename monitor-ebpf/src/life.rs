//! The life of a TCP connection (lifecycle records, `--lifecycle`): the connect's outcome,
//! the connection's end with its bytes and segments, inbound accepts, and listening
//! sockets; UDP binds as listens.
//!
//! One program on `inet_sock_set_state` (a raw tracepoint: no trace record is built, the
//! `struct sock` is read at BTF offsets) follows every TCP state change:
//! - `CLOSE -> SYN_SENT` (in the connecting task): the connection enters `LIFE_CONNS` with
//!   its process, destination and id (the socket's cookie, which the cgroup `connect4/6`
//!   program asked for; else an id drawn here, top bit set so it never equals a cookie);
//! - `SYN_SENT -> ESTABLISHED`: outcome success;
//! - `SYN_SENT -> CLOSE`: outcome failure, with `sk_err` (`ECONNREFUSED` from a reset,
//!   `ETIMEDOUT`, `EHOSTUNREACH`/`ENETUNREACH` from ICMP; 0 when the process closed first);
//! - `-> LISTEN` (in the `listen()` caller): the owner enters `LISTEN_OWNERS` by network
//!   namespace and port, and a listen record goes out;
//! - `SYN_RECV -> ESTABLISHED` (softirq, no process): an accept, attributed to the listening
//!   socket's owner, tracked like a connect from here;
//! - `-> CLOSE` of a tracked connection: the close record, with `tcp_sock`'s counters.
//!
//! UDP: `life_cgroup_post_bind4/6` report a bind to a port (in the binding task); a bind
//! that asked for port 0 (`life_cgroup_bind4/6` note it) is a client's, and is not.
//!
//! A connect the kernel fails before `SYN_SENT` (no route: `ENETUNREACH`; an `unreachable`
//! or `prohibit` route: `EHOSTUNREACH`, `EACCES`; a cgroup program that denies it: `EPERM`)
//! changes no state. `life_cgroup_connect4/6` (which run before the route lookup) note each
//! TCP connect by thread in `LIFE_EARLY`; `SYN_SENT` takes the note; `connect()`'s error
//! return (`life_tp_sys_exit_connect`) that finds one reports it as the failed result.

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_get_prandom_u32, bpf_get_socket_cookie, bpf_ktime_get_boot_ns},
    },
    macros::{cgroup_sock, cgroup_sock_addr, raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, SockAddrContext, SockContext, TracePointContext},
};
use monitor_common::{
    AF_INET, AF_INET6, COMM_LEN, IPPROTO_TCP, IPPROTO_UDP, LifeConn, LifeEvent, ListenKey,
    ListenOwner, OFFSET_ABSENT, backend, kind, life_action, life_flag, stat,
};

use crate::{
    emit::{Identity, count, finish, is_excluded, wakeup_flag},
    kernel::{current_start_time, read_at, sock_family, sock_flow},
    maps::{EPHEMERAL_BINDS, EVENTS, LIFE_CONNS, LIFE_EARLY, LISTEN_OWNERS, config},
    sock_addr,
};

/// `include/net/tcp_states.h`.
const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_SYN_RECV: i32 = 3;
const TCP_CLOSE: i32 = 7;
const TCP_LISTEN: i32 = 10;

/// `inet_sock_set_state`, `TP_PROTO(const struct sock *sk, const int oldstate,
/// const int newstate)`, as a raw tracepoint. Every state change of every TCP (and MPTCP,
/// SCTP) socket lands here: the states this program ignores return before any read.
#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub fn life_raw_tp_inet_sock_set_state(ctx: RawTracePointContext) -> u32 {
    let new: i32 = ctx.arg(2);
    if !matches!(new, TCP_SYN_SENT | TCP_ESTABLISHED | TCP_CLOSE | TCP_LISTEN) {
        return 0;
    }
    finish(
        &ctx,
        "life_raw_tp_inet_sock_set_state",
        try_life_raw_tp_inet_sock_set_state(&ctx, new),
    )
}

fn try_life_raw_tp_inet_sock_set_state(ctx: &RawTracePointContext, new: i32) -> Result<(), i64> {
    let sk: *const u8 = ctx.arg(0);
    let old: i32 = ctx.arg(1);
    if read_at::<u16>(sk, config!(sock.sk_protocol))? != u16::from(IPPROTO_TCP) {
        return Ok(());
    }
    let key = sk as u64;
    match (old, new) {
        (TCP_CLOSE, TCP_SYN_SENT) => on_connect(sk, key),
        (_, TCP_LISTEN) => on_listen(sk, key),
        (TCP_LISTEN, TCP_CLOSE) => on_listen_close(sk, key),
        (TCP_SYN_SENT | TCP_SYN_RECV, TCP_ESTABLISHED) => on_established(sk, key, old),
        (_, TCP_CLOSE) => on_close(sk, key),
        _ => Ok(()),
    }
}

/// A socket's id: its cookie when something asked for one (the cgroup `connect4/6`
/// program does, before this state change), else a random id with the top bit set.
#[inline(always)]
fn connection_id(sk: *const u8) -> u64 {
    let cookie = read_at::<u64>(sk, config!(sock.skc_cookie)).unwrap_or(0);
    if cookie != 0 {
        return cookie;
    }
    // SAFETY: helpers without arguments.
    let (hi, lo) = unsafe { (bpf_get_prandom_u32(), bpf_get_prandom_u32()) };
    (1 << 63) | (u64::from(hi) << 32) | u64::from(lo)
}

/// `CLOSE -> SYN_SENT`, in the connecting task, before the source port is bound.
fn on_connect(sk: *const u8, key: u64) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    // Past the route lookup: this connect's result comes from its state changes. (A missing
    // note is the common case when it was never made, e.g. the monitor's own connects.)
    let _ = LIFE_EARLY.remove(pid_tgid);
    if is_excluded(pid_tgid) {
        return Ok(());
    }
    let family = sock_family(sk)?;
    let Some(flow) = sock_flow(sk, family)? else {
        return Ok(());
    };
    let who = Identity::current();
    let conn = LifeConn {
        conn_id: connection_id(sk),
        // SAFETY: a helper without arguments.
        start_ns: unsafe { bpf_ktime_get_boot_ns() },
        pid_tgid,
        uid_gid: who.uid_gid,
        cgroup_id: who.cgroup_id,
        start_time_ns: current_start_time(),
        family,
        lport: flow.sport,
        rport: flow.dport,
        _pad0: 0,
        flags: life_flag::OWNER_KNOWN,
        _pad1: 0,
        laddr: flow.saddr,
        raddr: flow.daddr,
        comm: who.comm,
    };
    if LIFE_CONNS.insert(key, conn, 0).is_err() {
        count(stat::LIFE_TABLE_FULL);
    }
    Ok(())
}

/// `SYN_SENT -> ESTABLISHED` (a connect succeeded) or `SYN_RECV -> ESTABLISHED` (an accept,
/// or the rare simultaneous open of a tracked connect).
fn on_established(sk: *const u8, key: u64, old: i32) -> Result<(), i64> {
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    if let Some(conn) = LIFE_CONNS.get_ptr_mut(key) {
        // Bound by now: the connect's source port.
        let lport = read_at::<u16>(sk, config!(sock.skc_num)).unwrap_or(0);
        // SAFETY: a value pointer from a successful lookup stays valid for this program run;
        // only this socket's state changes (serialised by the socket lock) write it.
        unsafe {
            (*conn).flags |= life_flag::ESTABLISHED;
            (*conn).lport = lport;
            emit(life_action::OUTCOME, &*conn, now, |_| {});
        }
        return Ok(());
    }
    if old != TCP_SYN_RECV {
        return Ok(());
    }
    let family = sock_family(sk)?;
    let Some(flow) = sock_flow(sk, family)? else {
        return Ok(());
    };
    // The child's local port is the listener's.
    let owner = LISTEN_OWNERS.get_ptr(listen_key(sk, flow.sport));
    let mut conn = LifeConn {
        conn_id: connection_id(sk),
        start_ns: now,
        pid_tgid: 0,
        uid_gid: 0,
        cgroup_id: 0,
        start_time_ns: 0,
        family,
        lport: flow.sport,
        rport: flow.dport,
        _pad0: 0,
        flags: life_flag::INBOUND | life_flag::ESTABLISHED,
        _pad1: 0,
        laddr: flow.saddr,
        raddr: flow.daddr,
        comm: [0; COMM_LEN],
    };
    if let Some(owner) = owner {
        // SAFETY: a value pointer from a successful lookup, valid for this program run; the
        // entry is plain data, copied out field by field.
        unsafe {
            if is_excluded((*owner).pid_tgid) {
                return Ok(());
            }
            conn.pid_tgid = (*owner).pid_tgid;
            conn.uid_gid = (*owner).uid_gid;
            conn.cgroup_id = (*owner).cgroup_id;
            conn.start_time_ns = (*owner).start_time_ns;
            conn.comm = (*owner).comm;
        }
        conn.flags |= life_flag::OWNER_KNOWN;
    }
    if LIFE_CONNS.insert(key, conn, 0).is_err() {
        count(stat::LIFE_TABLE_FULL);
    }
    emit(life_action::ACCEPT, &conn, now, |_| {});
    Ok(())
}

/// `-> CLOSE` of a tracked connection: its outcome if it never established, else its end.
fn on_close(sk: *const u8, key: u64) -> Result<(), i64> {
    let Some(conn) = LIFE_CONNS.get_ptr(key) else {
        return Ok(());
    };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    // SAFETY: a value pointer from a successful lookup, valid for this program run (the
    // entry is removed below, after the last read).
    let conn = unsafe { &*conn };
    if conn.flags & life_flag::ESTABLISHED == 0 {
        // `tcp_reset`, `tcp_write_err` and the ICMP handler set `sk_err` before `tcp_done`.
        // An ICMP error that came while the task held the socket is only in `sk_err_soft`
        // (the task then closes the socket itself, unless it read the error first).
        let mut err = read_at::<i32>(sk, config!(life.sk_err)).unwrap_or(0);
        if err == 0 {
            err = read_at::<i32>(sk, config!(life.sk_err_soft)).unwrap_or(0);
        }
        emit(life_action::OUTCOME, conn, now, |ev| {
            // SAFETY: `ev` is the record `emit` reserved, writable until submitted.
            unsafe { (*ev).error = err as u32 };
        });
    } else {
        let acked = read_at::<u64>(sk, config!(life.bytes_acked)).unwrap_or(0);
        let received = read_at::<u64>(sk, config!(life.bytes_received)).unwrap_or(0);
        let segs_out = read_at::<u32>(sk, config!(life.segs_out)).unwrap_or(0);
        let segs_in = read_at::<u32>(sk, config!(life.segs_in)).unwrap_or(0);
        emit(life_action::CLOSE, conn, now, |ev| {
            // SAFETY: as above.
            unsafe {
                (*ev).bytes_acked = acked;
                (*ev).bytes_received = received;
                (*ev).segs_out = segs_out;
                (*ev).segs_in = segs_in;
            }
        });
    }
    // A failed removal leaves the entry to LRU eviction; nothing else to do.
    let _ = LIFE_CONNS.remove(key);
    Ok(())
}

/// The listeners' key: the socket's network namespace and port.
#[inline(always)]
fn listen_key(sk: *const u8, port: u16) -> ListenKey {
    let inum = config!(life.net_inum);
    let netns = if inum == OFFSET_ABSENT {
        0
    } else {
        read_at::<*const u8>(sk, config!(life.skc_net))
            .and_then(|net| read_at::<u32>(net, inum))
            .unwrap_or(0)
    };
    ListenKey {
        netns,
        port,
        _pad0: 0,
    }
}

/// `-> LISTEN`, in the task calling `listen()`: the port is bound.
fn on_listen(sk: *const u8, key: u64) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let family = sock_family(sk)?;
    if family != AF_INET && family != AF_INET6 {
        return Ok(());
    }
    let port = read_at::<u16>(sk, config!(sock.skc_num))?;
    let who = Identity::current();
    let start_time_ns = current_start_time();
    let owner = ListenOwner {
        sk: key,
        pid_tgid,
        uid_gid: who.uid_gid,
        cgroup_id: who.cgroup_id,
        start_time_ns,
        comm: who.comm,
    };
    if LISTEN_OWNERS
        .insert(listen_key(sk, port), owner, 0)
        .is_err()
    {
        count(stat::LIFE_TABLE_FULL);
    }
    // The monitor's own listeners (`--metrics-listen`) are entered above, so that their
    // accepts are known to be its own and left out, but not reported.
    if is_excluded(pid_tgid) {
        return Ok(());
    }
    let mut conn = LifeConn {
        conn_id: 0,
        // SAFETY: a helper without arguments.
        start_ns: unsafe { bpf_ktime_get_boot_ns() },
        pid_tgid,
        uid_gid: who.uid_gid,
        cgroup_id: who.cgroup_id,
        start_time_ns,
        family,
        lport: port,
        rport: 0,
        _pad0: 0,
        flags: life_flag::OWNER_KNOWN | life_flag::INBOUND,
        _pad1: 0,
        laddr: [0; 16],
        raddr: [0; 16],
        comm: who.comm,
    };
    if family == AF_INET {
        let addr = read_at::<[u8; 4]>(sk, config!(sock.skc_rcv_saddr)).unwrap_or([0; 4]);
        conn.laddr[..4].copy_from_slice(&addr);
    } else {
        conn.laddr = read_at::<[u8; 16]>(sk, config!(sock.skc_v6_rcv_saddr)).unwrap_or([0; 16]);
    }
    emit(life_action::LISTEN, &conn, conn.start_ns, |_| {});
    Ok(())
}

/// `LISTEN -> CLOSE`: the owner entry goes, if it is still this socket's.
fn on_listen_close(sk: *const u8, key: u64) -> Result<(), i64> {
    let port = read_at::<u16>(sk, config!(sock.skc_num))?;
    let lk = listen_key(sk, port);
    if let Some(owner) = LISTEN_OWNERS.get_ptr(lk) {
        // SAFETY: a value pointer from a successful lookup, valid for this program run.
        if unsafe { (*owner).sk } == key {
            let _ = LISTEN_OWNERS.remove(lk);
        }
    }
    Ok(())
}

/// Writes one `LifeEvent` from a connection's entry; `extra` fills the action's fields.
#[inline(always)]
fn emit(action: u32, conn: &LifeConn, now: u64, extra: impl FnOnce(*mut LifeEvent)) {
    let Some(mut entry) = EVENTS.reserve::<LifeEvent>(0) else {
        count(stat::RINGBUF_FULL);
        count(stat::LOST_LIFE);
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points at the record just reserved, valid for writes until it is
    // submitted; every field is written here (the action's own ones by `extra` after).
    unsafe {
        (*ev).kind = kind::LIFE;
        (*ev).action = action;
        (*ev).ktime_ns = now;
        (*ev).conn_id = conn.conn_id;
        (*ev).tgid = (conn.pid_tgid >> 32) as u32;
        (*ev).tid = conn.pid_tgid as u32;
        (*ev).uid = conn.uid_gid as u32;
        (*ev).gid = (conn.uid_gid >> 32) as u32;
        (*ev).cgroup_id = conn.cgroup_id;
        (*ev).start_time_ns = conn.start_time_ns;
        (*ev).duration_ns = now.wrapping_sub(conn.start_ns);
        (*ev).bytes_acked = 0;
        (*ev).bytes_received = 0;
        (*ev).segs_out = 0;
        (*ev).segs_in = 0;
        (*ev).error = 0;
        (*ev).backend = backend::RAW_TRACEPOINT;
        (*ev).family = conn.family;
        (*ev).protocol = IPPROTO_TCP;
        (*ev)._pad0 = 0;
        (*ev).lport = conn.lport;
        (*ev).rport = conn.rport;
        (*ev).flags = conn.flags;
        (*ev)._pad1 = 0;
        (*ev).laddr = conn.laddr;
        (*ev).raddr = conn.raddr;
        (*ev).comm = conn.comm;
    }
    extra(ev);
    entry.submit(wakeup_flag());
    count(stat::LIFE_RECORDS);
}

/// `cgroup/bind4`: a `bind()` before the kernel does it. A UDP bind to port 0 (any free
/// port: a client choosing its address, not a service) is noted for `post_bind4`, which
/// sees only the port the kernel picked. Always returns 1: the bind is never changed.
#[cgroup_sock_addr(bind4)]
pub fn life_cgroup_bind4(ctx: SockAddrContext) -> i32 {
    note_ephemeral_bind(&ctx);
    1
}

/// `cgroup/bind6`: as `bind4`, for IPv6 sockets. Always returns 1.
#[cgroup_sock_addr(bind6)]
pub fn life_cgroup_bind6(ctx: SockAddrContext) -> i32 {
    note_ephemeral_bind(&ctx);
    1
}

#[inline(always)]
fn note_ephemeral_bind(ctx: &SockAddrContext) {
    if sock_addr::protocol(ctx) != u32::from(IPPROTO_UDP) {
        return;
    }
    // SAFETY: `sock_addr` is the program's context; the kernel checks the field access.
    let port = unsafe { core::ptr::read_volatile(&raw const (*ctx.sock_addr).user_port) };
    if port != 0 {
        return;
    }
    // A failed insert leaves the bind reported as a listen (the cautious side).
    let _ = EPHEMERAL_BINDS.insert(bpf_get_current_pid_tgid(), sock_addr::cookie(ctx), 0);
}

/// `cgroup/post_bind4`: a socket was bound (in the binding task). UDP binds to a port are
/// listens; TCP ones are reported when they `listen()`. Always returns 1.
#[cgroup_sock(post_bind4)]
pub fn life_cgroup_post_bind4(ctx: SockContext) -> i32 {
    finish(
        &ctx,
        "life_cgroup_post_bind4",
        try_life_post_bind(&ctx, false),
    );
    1
}

/// `cgroup/post_bind6`: as `post_bind4`, for IPv6 sockets. Always returns 1.
#[cgroup_sock(post_bind6)]
pub fn life_cgroup_post_bind6(ctx: SockContext) -> i32 {
    finish(
        &ctx,
        "life_cgroup_post_bind6",
        try_life_post_bind(&ctx, true),
    );
    1
}

fn try_life_post_bind(ctx: &SockContext, v6: bool) -> Result<(), i64> {
    let sock = ctx.sock;
    // SAFETY: `sock` is the program's context (`struct bpf_sock *`); the kernel checks
    // every field access.
    let (protocol, port) = unsafe {
        (
            core::ptr::read_volatile(&raw const (*sock).protocol),
            core::ptr::read_volatile(&raw const (*sock).src_port),
        )
    };
    if protocol != u32::from(IPPROTO_UDP) || port == 0 {
        return Ok(());
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: a value copied out at once; the helper takes the program's context.
    if let Some(cookie) = unsafe { EPHEMERAL_BINDS.get(pid_tgid) }.copied() {
        let _ = EPHEMERAL_BINDS.remove(pid_tgid);
        // SAFETY: as above.
        if cookie == unsafe { bpf_get_socket_cookie(ctx.sock.cast()) } {
            return Ok(()); // the kernel picked the port: a client's bind
        }
    }
    if is_excluded(pid_tgid) {
        return Ok(());
    }
    let who = Identity::current();
    let mut conn = LifeConn {
        conn_id: 0,
        // SAFETY: a helper without arguments.
        start_ns: unsafe { bpf_ktime_get_boot_ns() },
        pid_tgid,
        uid_gid: who.uid_gid,
        cgroup_id: who.cgroup_id,
        start_time_ns: current_start_time(),
        family: if v6 { AF_INET6 } else { AF_INET },
        lport: port as u16,
        rport: 0,
        _pad0: 0,
        flags: life_flag::OWNER_KNOWN | life_flag::INBOUND,
        _pad1: 0,
        laddr: [0; 16],
        raddr: [0; 16],
        comm: who.comm,
    };
    // SAFETY: as above.
    unsafe {
        if v6 {
            for i in 0..4 {
                let w = core::ptr::read_volatile(&raw const (*sock).src_ip6[i]).to_ne_bytes();
                conn.laddr[i * 4..i * 4 + 4].copy_from_slice(&w);
            }
        } else {
            let w = core::ptr::read_volatile(&raw const (*sock).src_ip4).to_ne_bytes();
            conn.laddr[..4].copy_from_slice(&w);
        }
    }
    let start = conn.start_ns;
    emit(life_action::LISTEN, &conn, start, |ev| {
        // SAFETY: the record `emit` reserved, writable until submitted.
        unsafe {
            (*ev).protocol = IPPROTO_UDP;
            (*ev).backend = backend::CGROUP;
        }
    });
    Ok(())
}

/// `-EINPROGRESS`: a non-blocking connect that sent its SYN.
const EINPROGRESS: i64 = 115;
/// A note in `LIFE_EARLY` older than this at `connect()`'s return is not that call's: the
/// kernel fails a connect before `SYN_SENT` within microseconds of the cgroup hook.
const EARLY_NOTE_NS: u64 = 1_000_000_000;

/// `cgroup/connect4`: notes a TCP connect by thread before the kernel looks up its route
/// (`LIFE_EARLY`). Always returns 1: the monitor never blocks or alters traffic.
#[cgroup_sock_addr(connect4)]
pub fn life_cgroup_connect4(ctx: SockAddrContext) -> i32 {
    finish(&ctx, "life_cgroup_connect4", try_life_connect(&ctx, false));
    1
}

/// `cgroup/connect6`: as `connect4`, for IPv6 sockets. Always returns 1.
#[cgroup_sock_addr(connect6)]
pub fn life_cgroup_connect6(ctx: SockAddrContext) -> i32 {
    finish(&ctx, "life_cgroup_connect6", try_life_connect(&ctx, true));
    1
}

fn try_life_connect(ctx: &SockAddrContext, v6: bool) -> Result<(), i64> {
    if sock_addr::protocol(ctx) != u32::from(IPPROTO_TCP) {
        return Ok(());
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    if is_excluded(pid_tgid) {
        return Ok(());
    }
    let flow = sock_addr::flow(ctx, v6);
    // The process fields are filled at the error return, in the same task: the common
    // case (the connect goes on to `SYN_SENT`) pays for no more than this entry.
    let conn = LifeConn {
        // The cookie, as the connect programs report it (`tcp_cgroup_connect4/6`).
        conn_id: sock_addr::cookie(ctx),
        // SAFETY: a helper without arguments.
        start_ns: unsafe { bpf_ktime_get_boot_ns() },
        pid_tgid,
        uid_gid: 0,
        cgroup_id: 0,
        start_time_ns: 0,
        family: flow.family,
        lport: flow.sport,
        rport: flow.dport,
        _pad0: 0,
        flags: life_flag::OWNER_KNOWN,
        _pad1: 0,
        laddr: flow.saddr,
        raddr: flow.daddr,
        comm: [0; COMM_LEN],
    };
    if LIFE_EARLY.insert(pid_tgid, conn, 0).is_err() {
        count(stat::LIFE_TABLE_FULL);
    }
    Ok(())
}

/// `syscalls:sys_exit_connect`: a `connect()` returning an error while its thread's note from
/// the cgroup hook is still there never reached `SYN_SENT`: its failed result.
#[tracepoint(category = "syscalls", name = "sys_exit_connect")]
pub fn life_tp_sys_exit_connect(ctx: TracePointContext) -> u32 {
    // `struct syscall_trace_exit`: the 8-byte common header, `int nr`, then `long ret` at
    // 16 (the same on every kernel since the syscall tracepoints exist).
    // SAFETY: the offset is inside the record the kernel passes.
    let ret: i64 = unsafe { ctx.read_at(16) }.unwrap_or(0);
    // Successes and connects in progress: their notes were taken at `SYN_SENT`.
    if ret >= 0 || ret == -EINPROGRESS {
        return 0;
    }
    finish(
        &ctx,
        "life_tp_sys_exit_connect",
        try_life_tp_sys_exit_connect(ret),
    )
}

fn try_life_tp_sys_exit_connect(ret: i64) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(note) = LIFE_EARLY.get_ptr(pid_tgid) else {
        return Ok(());
    };
    // SAFETY: a value pointer from a successful lookup, valid for this program run; copied
    // before the entry is removed.
    let mut conn = unsafe { *note };
    let _ = LIFE_EARLY.remove(pid_tgid);
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    if now.wrapping_sub(conn.start_ns) > EARLY_NOTE_NS {
        return Ok(());
    }
    let who = Identity::current();
    conn.uid_gid = who.uid_gid;
    conn.cgroup_id = who.cgroup_id;
    conn.comm = who.comm;
    conn.start_time_ns = current_start_time();
    emit(life_action::OUTCOME, &conn, now, |ev| {
        // SAFETY: the record `emit` reserved, writable until submitted.
        unsafe {
            (*ev).error = (-ret) as u32;
            (*ev).backend = backend::TRACEPOINT;
        }
    });
    Ok(())
}

/// The connection id of a socket tracked here, for the connect programs that see the socket
/// after `SYN_SENT` (fentry/kprobe on `tcp_connect`, the tracepoints): 0 when not tracked.
#[inline(always)]
pub fn tracked_id(sk: *const u8) -> u64 {
    match LIFE_CONNS.get_ptr(sk as u64) {
        // SAFETY: a value pointer from a successful lookup, valid for this program run.
        Some(conn) => unsafe { (*conn).conn_id },
        None => 0,
    }
}
