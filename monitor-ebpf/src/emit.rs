//! Writing records: counters, ring-buffer wake-up batching, connect events, flood control.

use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    cty::c_void,
    helpers::{
        bpf_get_current_comm, bpf_get_current_uid_gid,
        generated::{
            bpf_get_current_cgroup_id, bpf_get_current_comm as bpf_get_current_comm_raw,
            bpf_ktime_get_boot_ns,
        },
    },
};
use aya_log_ebpf::debug;
use monitor_common::{
    AF_INET6, COMM_LEN, ConnectEvent, IPPROTO_UDP, UDP_FLOOD_SLOTS, UdpFloodKey, kind, stat,
};

use crate::maps::{EVENTS, STATS, UDP_FLOOD, config};

/// `*dst += value`, atomically. The BPF target has no Rust atomics (`atomic-cas: false`), so
/// this uses the intrinsic; with the result unused LLVM emits a plain `BPF_XADD`, which every
/// kernel and BPF CPU version supports (fetching variants would need cpu v3).
#[cfg(target_arch = "bpf")]
#[inline(always)]
pub fn atomic_add<T: Copy>(dst: *mut T, value: T) {
    use core::intrinsics::{AtomicOrdering, atomic_xadd};
    // SAFETY: callers pass pointers to map values, valid for this program run.
    let _ = unsafe { atomic_xadd::<T, T, { AtomicOrdering::Relaxed }>(dst, value) };
}

/// Host build (`cargo test --workspace` compiles this crate for the host too; it never runs).
#[cfg(not(target_arch = "bpf"))]
#[inline(always)]
pub fn atomic_add<T: Copy + core::ops::Add<Output = T>>(dst: *mut T, value: T) {
    // SAFETY: as above.
    unsafe { *dst = *dst + value };
}

/// Adds one to a `STATS` counter.
#[inline(always)]
pub fn count(index: u32) {
    if let Some(slot) = STATS.get_ptr_mut(index) {
        // Per-CPU, but a preemptible cgroup program can be interrupted on its CPU by another
        // program touching the same slot: keep it atomic.
        atomic_add(slot, 1u64);
    }
}

/// Submit flag: no wake-up (user space polls on a timer) until `wakeup_bytes` are waiting.
/// Per-event wake-ups cost about 40% of the connect rate (ENVIRONMENT.md).
#[inline(always)]
pub fn wakeup_flag() -> u64 {
    if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= config!(wakeup_bytes) {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// `true` for the monitor's own threads: their traffic (syslog, ...) is never reported.
#[inline(always)]
pub fn is_excluded(pid_tgid: u64) -> bool {
    (pid_tgid >> 32) as u32 == config!(exclude_tgid)
}

/// One side of a connection, as the hook saw it.
#[derive(Clone, Copy)]
pub struct Flow {
    /// `AF_INET` or `AF_INET6` (of the addresses below).
    pub family: u16,
    /// Host byte order.
    pub dport: u16,
    /// Host byte order; 0 when unknown.
    pub sport: u16,
    /// Network byte order; IPv4 in the first 4 bytes.
    pub daddr: [u8; 16],
    /// Network byte order; all zero when unknown.
    pub saddr: [u8; 16],
    /// TCP: the connection id (`ConnectEvent::conn_id`); 0 when unknown.
    pub conn_id: u64,
}

impl Flow {
    #[inline(always)]
    pub const fn empty(family: u16) -> Flow {
        Flow {
            family,
            dport: 0,
            sport: 0,
            daddr: [0; 16],
            saddr: [0; 16],
            conn_id: 0,
        }
    }

    /// The destination is `0.0.0.0`, `::` or `::ffff:0.0.0.0`: never a remote peer (the
    /// kernel sends such datagrams to a local address).
    #[inline(always)]
    pub fn unspecified_destination(&self) -> bool {
        if self.family == AF_INET6 {
            unspecified_v6(&self.daddr)
        } else {
            word(&self.daddr, 0) == 0
        }
    }
}

/// `::` or `::ffff:0.0.0.0`.
#[inline(always)]
pub fn unspecified_v6(addr: &[u8; 16]) -> bool {
    let w2 = word(addr, 2);
    word(addr, 0) == 0
        && word(addr, 1) == 0
        && (w2 == 0 || w2 == u32::from_ne_bytes([0, 0, 0xff, 0xff]))
        && word(addr, 3) == 0
}

/// The `i`-th 32-bit word of an address, in memory order (compared without memcmp, which the
/// BPF target lacks).
#[inline(always)]
pub fn word(addr: &[u8; 16], i: usize) -> u32 {
    u32::from_ne_bytes([
        addr[i * 4],
        addr[i * 4 + 1],
        addr[i * 4 + 2],
        addr[i * 4 + 3],
    ])
}

/// Which hook and mechanism produced an event.
#[derive(Clone, Copy)]
pub struct Origin {
    /// `monitor_common::hook::*`.
    pub hook: u32,
    /// `monitor_common::backend::*`.
    pub backend: u32,
    pub protocol: u8,
}

/// Who an event is about, besides the tgid/tid, captured by a hook that runs in the task's
/// context for an event written later by one that does not (`UdpPending`).
#[derive(Clone, Copy)]
pub struct Identity {
    /// `bpf_get_current_uid_gid()`: gid in the high 32 bits, uid in the low.
    pub uid_gid: u64,
    pub cgroup_id: u64,
    pub comm: [u8; COMM_LEN],
}

impl Identity {
    /// The current task's; a failed `comm` read is counted and left empty. Only for hooks
    /// that run in a task context (not `cgroup_skb`, which has none of these helpers).
    #[inline(always)]
    pub fn current() -> Identity {
        let comm = match bpf_get_current_comm() {
            Ok(comm) => comm,
            Err(_) => {
                count(stat::READ_FAILED);
                [0; COMM_LEN]
            }
        };
        Identity {
            uid_gid: bpf_get_current_uid_gid(),
            // SAFETY: a helper without arguments, valid in every program type that calls this.
            cgroup_id: unsafe { bpf_get_current_cgroup_id() },
            comm,
        }
    }
}

/// Writes one `ConnectEvent` about the current task (after UDP flood control). Failures are
/// counted in `STATS`.
#[inline(always)]
pub fn emit_connect(origin: Origin, flow: &Flow, pid_tgid: u64, start_time_ns: u64) {
    emit_with(origin, flow, pid_tgid, start_time_ns, |ev| {
        let uid_gid = bpf_get_current_uid_gid();
        // SAFETY: `ev` is the record `emit_with` reserved, writable until it is submitted.
        // The comm helper writes the field in place (NUL-padded, zeroed on failure).
        unsafe {
            (*ev).uid = uid_gid as u32;
            (*ev).gid = (uid_gid >> 32) as u32;
            (*ev).cgroup_id = bpf_get_current_cgroup_id();
            let comm = (&raw mut (*ev).comm).cast::<c_void>();
            if bpf_get_current_comm_raw(comm, COMM_LEN as u32) != 0 {
                count(stat::READ_FAILED);
            }
        }
    });
}

/// As `emit_connect`, for a task identity captured earlier (a hook without a task context).
#[inline(always)]
pub fn emit_connect_as(origin: Origin, flow: &Flow, pid_tgid: u64, who: &Identity) {
    emit_with(origin, flow, pid_tgid, 0, |ev| {
        // SAFETY: as above.
        unsafe {
            (*ev).uid = who.uid_gid as u32;
            (*ev).gid = (who.uid_gid >> 32) as u32;
            (*ev).cgroup_id = who.cgroup_id;
            (*ev).comm = who.comm;
        }
    });
}

/// Flood control, then the record, written field by field in the ring buffer (no copy of it
/// on the stack); `identity` writes `uid`, `gid`, `cgroup_id` and `comm`.
#[inline(always)]
fn emit_with(
    origin: Origin,
    flow: &Flow,
    pid_tgid: u64,
    start_time_ns: u64,
    identity: impl FnOnce(*mut ConnectEvent),
) {
    // SAFETY: a helper without arguments, available to every program type.
    let ktime_ns = unsafe { bpf_ktime_get_boot_ns() };
    let tgid = (pid_tgid >> 32) as u32;
    let suppressed = if origin.protocol == IPPROTO_UDP {
        match admit_udp(tgid, flow, ktime_ns) {
            Some(n) => n,
            None => return,
        }
    } else {
        0
    };
    let Some(mut entry) = EVENTS.reserve::<ConnectEvent>(0) else {
        count(stat::RINGBUF_FULL);
        count(stat::LOST_TCP + origin.hook);
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points at the record just reserved, valid for writes until it is
    // submitted; every field is written here or by `identity`.
    unsafe {
        (*ev).kind = kind::CONNECT;
        (*ev).hook = origin.hook;
        (*ev).ktime_ns = ktime_ns;
        (*ev).tgid = tgid;
        (*ev).tid = pid_tgid as u32;
        (*ev).start_time_ns = start_time_ns;
        (*ev).suppressed = suppressed;
        (*ev).family = flow.family;
        (*ev).protocol = origin.protocol;
        (*ev)._pad0 = 0;
        (*ev).sport = flow.sport;
        (*ev).dport = flow.dport;
        (*ev).backend = origin.backend;
        (*ev).saddr = flow.saddr;
        (*ev).daddr = flow.daddr;
        (*ev).conn_id = flow.conn_id;
    }
    identity(ev);
    entry.submit(wakeup_flag());
    count(stat::EVENTS_TCP + origin.hook);
}

/// UDP flood control. `None`: suppress this send (counted). `Some(n)`: emit it, carrying the
/// `n` sends suppressed for the same key since the previous event.
#[inline(always)]
fn admit_udp(tgid: u32, flow: &Flow, now: u64) -> Option<u32> {
    let interval = config!(udp_suppress_ns);
    if interval == 0 {
        return Some(0);
    }
    let words = key_words(&UdpFloodKey {
        tgid,
        dport: flow.dport,
        family: flow.family,
        daddr: flow.daddr,
    });
    let hash = flood_hash(&words);
    let Some(slot) = UDP_FLOOD.get_ptr_mut(hash & (UDP_FLOOD_SLOTS - 1)) else {
        return Some(0); // unreachable: the index is masked to the array's size
    };
    // SAFETY: a value pointer from a successful lookup stays valid for this program run.
    // Other CPUs may write the slot meanwhile: volatile accesses, and a torn read only ever
    // looks like a different key (a miss), see `UdpFloodSlot::check`.
    unsafe {
        let last = core::ptr::read_volatile(&raw const (*slot).last_emit_ns);
        let suppressed = &raw mut (*slot).suppressed;
        // The key as 32-bit words (UdpFloodKey is 4-byte aligned): compared and written word
        // by word, since the BPF target has no memcmp.
        let slot_key = (&raw mut (*slot).key).cast::<[u32; 6]>();
        let stored = core::ptr::read_volatile(slot_key);
        let mut same = core::ptr::read_volatile(&raw const (*slot).check) == hash;
        for i in 0..6 {
            same &= stored[i] == words[i];
        }
        if same {
            if now.wrapping_sub(last) < interval {
                atomic_add(suppressed, 1u32);
                count(stat::UDP_SUPPRESSED);
                return None;
            }
            // Read-then-reset, not an atomic exchange: BPF_XCHG needs cpu v3, and the object
            // is built for the generic BPF CPU. Two threads of one process emitting for the
            // same key at the same instant could lose a few counts here; STATS holds them all.
            let carried = core::ptr::read_volatile(suppressed);
            core::ptr::write_volatile(suppressed, 0);
            core::ptr::write_volatile(&raw mut (*slot).last_emit_ns, now);
            return Some(carried);
        }
        // A new key (or one displaced earlier): take the slot. Displacing a key still inside
        // its window costs it one extra event later; count it so an operator can see the table
        // is too small.
        if core::ptr::read_volatile(&raw const (*slot).check) != 0
            && now.wrapping_sub(last) < interval
        {
            count(stat::FLOOD_MAP_FULL);
        }
        core::ptr::write_volatile(&raw mut (*slot).check, 0);
        core::ptr::write_volatile(slot_key, words);
        core::ptr::write_volatile(suppressed, 0);
        core::ptr::write_volatile(&raw mut (*slot).last_emit_ns, now);
        core::ptr::write_volatile(&raw mut (*slot).check, hash);
    }
    Some(0)
}

/// A key as the six 32-bit words of its memory layout (`#[repr(C)]`, no padding).
#[inline(always)]
fn key_words(key: &UdpFloodKey) -> [u32; 6] {
    // SAFETY: UdpFloodKey is 24 bytes of plain integers, 4-byte aligned.
    unsafe { core::mem::transmute::<UdpFloodKey, [u32; 6]>(*key) }
}

/// 32-bit hash of a flood-control key, seeded per start (`KernelConfig::flood_seed`): one
/// multiply-xorshift round per 32-bit word of the key, then a final mix.
#[inline(always)]
fn flood_hash(words: &[u32; 6]) -> u32 {
    let mut h = config!(flood_seed) ^ 0x9e37_79b9;
    for &w in words {
        h = (h ^ w).wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
    }
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Ends a program run: a failure (already counted in `STATS` where it happened) is also logged
/// through aya-log at debug level, which the loader disables in the kernel unless tracing's
/// level asks for it, so a hot failing path costs no log traffic by default.
#[inline(always)]
pub fn finish<C: EbpfContext>(ctx: &C, program: &'static str, result: Result<(), i64>) -> u32 {
    if let Err(err) = result {
        debug!(ctx, "{}: kernel read failed ({})", program, err);
    }
    0
}
