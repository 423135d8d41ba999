//! Reading `struct bpf_sock_addr`, the context of cgroup `connect4/6` and `sendmsg4/6`
//! programs: a stable ABI, so no kernel offsets are needed.

use aya_ebpf::{helpers::generated::bpf_get_socket_cookie, programs::SockAddrContext};
use monitor_common::{AF_INET, AF_INET6};

use crate::emit::Flow;

/// `ctx->protocol` (`IPPROTO_*`).
#[inline(always)]
pub fn protocol(ctx: &SockAddrContext) -> u32 {
    // SAFETY: `sock_addr` is the program's context; the kernel checks every field access.
    unsafe { core::ptr::read_volatile(&raw const (*ctx.sock_addr).protocol) }
}

/// The socket's cookie (unique per boot), the key `cgroup_skb` programs find it by.
#[inline(always)]
pub fn cookie(ctx: &SockAddrContext) -> u64 {
    // SAFETY: the helper takes the program's context (`struct bpf_sock_addr *`).
    unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) }
}

/// The destination the caller passed (`user_ip4`/`user_ip6`, `user_port`) and, when the socket
/// is already bound, its source port (and IPv4 source address).
#[inline(always)]
pub fn flow(ctx: &SockAddrContext, v6: bool) -> Flow {
    let sa = ctx.sock_addr;
    let mut flow = Flow::empty(if v6 { AF_INET6 } else { AF_INET });
    // SAFETY: as above; `sk` is checked for null before use.
    unsafe {
        // `user_port` holds the port in network order in its low 16 bits.
        flow.dport = u16::from_be(core::ptr::read_volatile(&raw const (*sa).user_port) as u16);
        if v6 {
            let w0 = core::ptr::read_volatile(&raw const (*sa).user_ip6[0]).to_ne_bytes();
            let w1 = core::ptr::read_volatile(&raw const (*sa).user_ip6[1]).to_ne_bytes();
            let w2 = core::ptr::read_volatile(&raw const (*sa).user_ip6[2]).to_ne_bytes();
            let w3 = core::ptr::read_volatile(&raw const (*sa).user_ip6[3]).to_ne_bytes();
            flow.daddr = [
                w0[0], w0[1], w0[2], w0[3], w1[0], w1[1], w1[2], w1[3], w2[0], w2[1], w2[2], w2[3],
                w3[0], w3[1], w3[2], w3[3],
            ];
        } else {
            let w = core::ptr::read_volatile(&raw const (*sa).user_ip4).to_ne_bytes();
            flow.daddr = [w[0], w[1], w[2], w[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        }
        let sk = core::ptr::read_volatile(&raw const (*sa).__bindgen_anon_1.sk);
        if !sk.is_null() {
            // `struct bpf_sock::src_port` is in host order; 0 until the socket is bound.
            flow.sport = core::ptr::read_volatile(&raw const (*sk).src_port) as u16;
            if !v6 {
                let w = core::ptr::read_volatile(&raw const (*sk).src_ip4).to_ne_bytes();
                flow.saddr = [w[0], w[1], w[2], w[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            }
        }
    }
    flow
}

/// `::ffff:a.b.c.d`.
#[inline(always)]
pub fn is_v4_mapped(addr: &[u8; 16]) -> bool {
    addr[..10] == [0; 10] && addr[10] == 0xff && addr[11] == 0xff
}
