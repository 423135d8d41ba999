//! Reading `struct __sk_buff` and its socket (`struct bpf_sock`) in `cgroup_skb` programs: a
//! stable ABI whose every access the verifier checks, so no kernel offsets are needed.

use aya_ebpf::{bindings::bpf_sock, helpers::generated::bpf_sk_fullsock, programs::SkBuffContext};
use monitor_common::{AF_INET, AF_INET6, IPPROTO_UDP, stat};

use crate::emit::{Flow, count, word};

/// `BPF_TCP_ESTABLISHED`: `bpf_sock::state` of a connected UDP socket (`TCP_CLOSE` otherwise).
const ESTABLISHED: u32 = 1;
/// `ETH_P_IP`, `ETH_P_IPV6`: `__sk_buff::protocol` holds them in network order.
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// Offset of the destination address in the IPv4 and in the IPv6 header. A `cgroup_skb`
/// program's packet data starts at the network header.
const IPV4_DADDR: usize = 16;
const IPV6_DADDR: usize = 24;

/// The packet's socket when it is a connected UDP socket; `None` for anything else (no
/// socket, request and time-wait sockets, other protocols, unconnected UDP sockets). One
/// helper call and two loads: no map is touched for TCP or for `sendto()` traffic.
#[inline(always)]
pub fn connected_udp_socket(ctx: &SkBuffContext) -> Option<*mut bpf_sock> {
    let skb = ctx.skb.skb;
    // SAFETY: `skb` is the program's context; the verifier checks the access and types the
    // value as a possibly-null socket pointer.
    let sk = unsafe { core::ptr::read_volatile(&raw const (*skb).__bindgen_anon_2.sk) };
    if sk.is_null() {
        return None;
    }
    // SAFETY: a non-null socket pointer from the context, as the helper requires.
    let sk = unsafe { bpf_sk_fullsock(sk) };
    if sk.is_null() {
        return None;
    }
    // SAFETY: a full socket from `bpf_sk_fullsock`; the verifier checks the field access.
    let protocol = unsafe { core::ptr::read_volatile(&raw const (*sk).protocol) };
    if protocol != u32::from(IPPROTO_UDP) {
        return None;
    }
    // SAFETY: as above.
    let state = unsafe { core::ptr::read_volatile(&raw const (*sk).state) };
    (state == ESTABLISHED).then_some(sk)
}

/// The socket's peer and bound source, as the kernel sends to them (after `connect()`
/// resolved the destination); `None` for families other than IPv4 and IPv6.
#[inline(always)]
pub fn flow(sk: *mut bpf_sock) -> Option<Flow> {
    // SAFETY: `sk` is a full socket from `connected_udp_socket`; the verifier checks every access.
    unsafe {
        let family = core::ptr::read_volatile(&raw const (*sk).family);
        let mut flow;
        if family == u32::from(AF_INET) {
            flow = Flow::empty(AF_INET);
            let d = core::ptr::read_volatile(&raw const (*sk).dst_ip4).to_ne_bytes();
            let s = core::ptr::read_volatile(&raw const (*sk).src_ip4).to_ne_bytes();
            flow.daddr[..4].copy_from_slice(&d);
            flow.saddr[..4].copy_from_slice(&s);
        } else if family == u32::from(AF_INET6) {
            flow = Flow::empty(AF_INET6);
            for i in 0..4 {
                let d = core::ptr::read_volatile(&raw const (*sk).dst_ip6[i]).to_ne_bytes();
                let s = core::ptr::read_volatile(&raw const (*sk).src_ip6[i]).to_ne_bytes();
                flow.daddr[i * 4..i * 4 + 4].copy_from_slice(&d);
                flow.saddr[i * 4..i * 4 + 4].copy_from_slice(&s);
            }
        } else {
            return None;
        }
        // `dst_port` is network order; `src_port` host order (the bound local port).
        flow.dport = u16::from_be(core::ptr::read_volatile(&raw const (*sk).dst_port));
        flow.sport = core::ptr::read_volatile(&raw const (*sk).src_port) as u16;
        Some(flow)
    }
}

/// Whether the packet's destination address is `flow`'s (its IP header, read from the
/// packet; a failed read is counted).
#[inline(always)]
pub fn packet_goes_to(ctx: &SkBuffContext, flow: &Flow) -> Result<bool, i64> {
    // SAFETY: `skb` is the program's context; the verifier checks the access.
    let protocol = unsafe { core::ptr::read_volatile(&raw const (*ctx.skb.skb).protocol) };
    let want = word(&flow.daddr, 0);
    if flow.family == AF_INET {
        if protocol != u32::from(ETH_P_IP.to_be()) {
            return Ok(false);
        }
        let got = ctx.load::<u32>(IPV4_DADDR).map_err(read_failed)?;
        return Ok(got == want);
    }
    if protocol != u32::from(ETH_P_IPV6.to_be()) {
        return Ok(false);
    }
    let got = ctx.load::<[u32; 4]>(IPV6_DADDR).map_err(read_failed)?;
    Ok(got[0] == want
        && got[1] == word(&flow.daddr, 1)
        && got[2] == word(&flow.daddr, 2)
        && got[3] == word(&flow.daddr, 3))
}

#[inline(always)]
fn read_failed(err: i64) -> i64 {
    count(stat::READ_FAILED);
    err
}
