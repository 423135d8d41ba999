//! The monitor's kernel programs.
//!
//! Connect capture, best backend first (user space picks per hook at load):
//! - TCP: `tcp_fentry_tcp_connect`, `tcp_kprobe_tcp_connect`, `tcp_cgroup_connect{4,6}`,
//!   `tcp_raw_tp_inet_sock_set_state`, `tcp_tp_inet_sock_set_state`.
//! - UDP: `udp_{fentry,kprobe}_udp_sendmsg`, `udp_{fentry,kprobe}_udpv6_sendmsg`, else
//!   `udp_cgroup_{connect,sendmsg}{4,6}` with `udp_cgroup_skb_egress` (a connected socket
//!   is reported at its first datagram, not at `connect()`).
//!
//! DNS answers: `dns_raw_tp_sk_data_ready`, else `dns_{fentry,kprobe}_sock_def_readable`,
//! with the asking process remembered by `dns_cgroup_{connect,sendmsg}{4,6}` (dns.rs).
//!
//! Connection lifecycle (`--lifecycle`): `life_raw_tp_inet_sock_set_state` (outcome, close,
//! accept, TCP listen), `life_cgroup_post_bind{4,6}` (UDP listen) (life.rs); UDP flow
//! summaries: `udp_flow_fexit_*` on the UDP send and receive functions, else
//! `udp_flow_kprobe_*` with `udp_flow_kretprobe_*` (udp_flow_fn.rs), else
//! `udp_cgroup_recvmsg{4,6}` and `udp_raw_tp_sock_recv_length` with the send side in the UDP
//! capture's `sendmsg4/6` and `sock_send_length` programs; `life_cgroup_sock_release` for
//! the close (udp_flow.rs).
//!
//! Process tracking: `proc_tp_sched_process_exec`, `proc_tp_sched_process_exit`.
//!
//! Kernel struct offsets come from the `CONFIG` global, which the loader fills from BTF
//! (Rust eBPF gets no CO-RE relocations). Every failure is counted in `STATS`.
#![no_std]
#![no_main]
// `core::intrinsics::atomic_xadd`: the BPF target has no Rust atomics (see `emit::atomic_add`).
// Only for BPF: `cargo test --workspace` also compiles this crate for the host on stable.
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]

mod dns;
mod emit;
mod kernel;
mod life;
mod maps;
mod process;
mod sock_addr;
mod sock_skb;
mod tcp;
mod udp;
mod udp_flow;
mod udp_flow_fn;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
