//! Reading kernel memory at offsets resolved from BTF by the loader.

use aya_ebpf::helpers::{bpf_probe_read_kernel, generated::bpf_get_current_task};
use monitor_common::{AF_INET, AF_INET6, stat};

use crate::{
    emit::{Flow, count},
    maps::config,
};

/// Reads a `T` at `base + offset` in kernel memory; a failure is counted in `STATS`.
#[inline(always)]
pub fn read_at<T>(base: *const u8, offset: u32) -> Result<T, i64> {
    // SAFETY: bpf_probe_read_kernel copies through the kernel's fault-handling path: any
    // address, valid or not, gives a value or an error, never a fault.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize).cast::<T>()) }.map_err(|e| {
        count(stat::READ_FAILED);
        i64::from(e)
    })
}

/// `current->group_leader->start_boottime`, or 0 when unknown.
#[inline(always)]
pub fn current_start_time() -> u64 {
    if config!(task_valid) == 0 {
        return 0;
    }
    // SAFETY: a helper without arguments; the pointer is only ever read through
    // `read_at` (bpf_probe_read_kernel).
    let task = unsafe { bpf_get_current_task() } as *const u8;
    task_start_time(task)
}

/// `task->group_leader->start_boottime`, or 0 when unknown (the failure is counted).
#[inline(always)]
pub fn task_start_time(task: *const u8) -> u64 {
    let Ok(leader) = read_at::<*const u8>(task, config!(task.group_leader)) else {
        return 0;
    };
    read_at::<u64>(leader, config!(task.start_boottime)).unwrap_or(0)
}

/// `sk->__sk_common.skc_family`.
#[inline(always)]
pub fn sock_family(sk: *const u8) -> Result<u16, i64> {
    read_at::<u16>(sk, config!(sock.skc_family))
}

/// Destination and source of a socket, from `struct sock_common`; `None` for families other
/// than IPv4 and IPv6. The source fields are optional: a failed read leaves them zero (and is
/// counted).
#[inline(always)]
pub fn sock_flow(sk: *const u8, family: u16) -> Result<Option<Flow>, i64> {
    let mut flow = Flow::empty(family);
    if family == AF_INET {
        let daddr = read_at::<[u8; 4]>(sk, config!(sock.skc_daddr))?;
        flow.daddr[..4].copy_from_slice(&daddr);
        if let Ok(saddr) = read_at::<[u8; 4]>(sk, config!(sock.skc_rcv_saddr)) {
            flow.saddr[..4].copy_from_slice(&saddr);
        }
    } else if family == AF_INET6 {
        flow.daddr = read_at::<[u8; 16]>(sk, config!(sock.skc_v6_daddr))?;
        flow.saddr = read_at::<[u8; 16]>(sk, config!(sock.skc_v6_rcv_saddr)).unwrap_or([0; 16]);
    } else {
        return Ok(None);
    }
    flow.dport = u16::from_be(read_at::<u16>(sk, config!(sock.skc_dport))?);
    flow.sport = read_at::<u16>(sk, config!(sock.skc_num)).unwrap_or(0);
    Ok(Some(flow))
}

/// The bound local address and port of a socket (for UDP sends to an explicit destination).
#[inline(always)]
pub fn sock_source(sk: *const u8, flow: &mut Flow, v6_socket: bool) {
    if v6_socket && flow.family == AF_INET6 {
        flow.saddr = read_at::<[u8; 16]>(sk, config!(sock.skc_v6_rcv_saddr)).unwrap_or([0; 16]);
    } else if let Ok(saddr) = read_at::<[u8; 4]>(sk, config!(sock.skc_rcv_saddr)) {
        // An IPv6 socket sending to IPv4 keeps the IPv4 source here too.
        flow.saddr[..4].copy_from_slice(&saddr);
    }
    flow.sport = read_at::<u16>(sk, config!(sock.skc_num)).unwrap_or(0);
}
