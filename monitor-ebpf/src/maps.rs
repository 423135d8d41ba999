//! Maps and the load-time configuration global shared by every program.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use monitor_common::{
    DNS_OWNER_ENTRIES, DnsOwner, KernelConfig, LIFE_CONN_ENTRIES, LIFE_EARLY_ENTRIES,
    LISTEN_OWNER_ENTRIES, LifeConn, ListenKey, ListenOwner, UDP_EXPLICIT_SEND_ENTRIES,
    UDP_FLOOD_SLOTS, UDP_FLOW_CALL_ENTRIES, UDP_FLOW_DEST_ENTRIES, UDP_FLOW_ENTRIES,
    UDP_PENDING_ENTRIES, UDP_SOCK_ENTRIES, UdpFloodSlot, UdpFlow, UdpFlowDest, UdpFlowKey,
    UdpPending, UdpSockFlows, stat,
};

/// Every record for user space. The size here is a placeholder: user space sets the real one
/// at load (`EbpfLoader::map_max_entries("EVENTS", ..)`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Counters, indexed by `monitor_common::stat::*`.
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

/// UDP flood control: last emitted event and sends suppressed since, per (tgid, destination,
/// port), in a direct-mapped table (see `UdpFloodSlot`). An array lookup is inlined by the
/// verifier and a new key is an overwrite: no allocation or eviction on the send path.
#[map]
pub static UDP_FLOOD: Array<UdpFloodSlot> = Array::with_max_entries(UDP_FLOOD_SLOTS, 0);

/// Connected UDP sockets (cgroup backend) that have not sent yet, by socket cookie: armed by
/// `udp_cgroup_connect4/6`, taken at the first datagram by `udp_raw_tp_sock_send_length` (or,
/// on kernels before 6.3, `udp_cgroup_skb_egress`). A socket
/// closed without sending leaves its entry to be evicted (cookies are never reused), so the
/// table only fills with `connect()`s that send nothing, such as getaddrinfo's; an entry is
/// lost only if that many newer ones arrive before its socket sends.
#[map]
pub static UDP_PENDING: LruHashMap<u64, UdpPending> =
    LruHashMap::with_max_entries(UDP_PENDING_ENTRIES, 0);

/// Threads inside an explicit-destination send (`sendto()` with an address) on a socket
/// still in `UDP_PENDING`, with that socket's cookie: set by `udp_cgroup_sendmsg4/6`, which
/// reported that send, and taken by `udp_raw_tp_sock_send_length` when the same send
/// returns, so that it does not also report the connected peer, which received nothing.
#[map]
pub static UDP_EXPLICIT_SEND: LruHashMap<u64, u64> =
    LruHashMap::with_max_entries(UDP_EXPLICIT_SEND_ENTRIES, 0);
/// Sockets that asked a DNS server, by socket cookie, with the process that asked: written by
/// the `dns_cgroup_*` programs, read where the answer arrives (`dns.rs`). Closed sockets
/// leave their entry to be evicted (cookies are never reused).
#[map]
pub static DNS_OWNERS: LruHashMap<u64, DnsOwner> =
    LruHashMap::with_max_entries(DNS_OWNER_ENTRIES, 0);

/// TCP DNS reads in progress (`sock_recvmsg` entry to return, kernels before 6.3), by
/// thread: written by `dns_{fentry,kprobe}_sock_recvmsg` for TCP sockets talking to port 53
/// only, taken at the return. An entry whose return was never seen is evicted.
#[map]
pub static DNS_RECV_ARGS: LruHashMap<u64, crate::dns::RecvArgs> =
    LruHashMap::with_max_entries(1024, 0);

/// Tracked TCP connections by `struct sock` address (`life.rs`): entered at the connect or
/// the accept, removed at `TCP_CLOSE`. Least recently used out, so an entry whose close was
/// missed cannot fill the table.
#[map]
pub static LIFE_CONNS: LruHashMap<u64, LifeConn> =
    LruHashMap::with_max_entries(LIFE_CONN_ENTRIES, 0);

/// TCP connects between the cgroup `connect4/6` hook and `SYN_SENT`, by thread (`life.rs`):
/// written by `life_cgroup_connect4/6`, taken at `SYN_SENT`, or at the `connect()` call's
/// error return when the kernel refused it before (no route, a prohibit route, a policy):
/// then that entry is the connect's failed result.
#[map]
pub static LIFE_EARLY: LruHashMap<u64, LifeConn> =
    LruHashMap::with_max_entries(LIFE_EARLY_ENTRIES, 0);

/// UDP binds that asked for port 0 (the kernel picks one: a client, not a listener), by
/// thread, from `bind4/6` to `post_bind4/6` in the same `bind()` (`life.rs`).
#[map]
pub static EPHEMERAL_BINDS: LruHashMap<u64, u64> = LruHashMap::with_max_entries(1024, 0);

/// Owners of listening TCP sockets, by network namespace and port (`life.rs`): written at
/// `listen()`, read by the accepts that complete in softirq.
#[map]
pub static LISTEN_OWNERS: LruHashMap<ListenKey, ListenOwner> =
    LruHashMap::with_max_entries(LISTEN_OWNER_ENTRIES, 0);

/// UDP flows (`udp_flow.rs`) by (socket cookie, process, remote end): entered at a flow's
/// first datagram, removed at the socket's release or by user space's idle sweep. A plain
/// hash map: when it is full, new flows are counted as lost (`UDP_FLOW_TABLE_FULL`) rather
/// than live ones evicted unseen.
#[map]
pub static UDP_FLOWS: HashMap<UdpFlowKey, UdpFlow> = HashMap::with_max_entries(UDP_FLOW_ENTRIES, 0);

/// The flows of each UDP socket that has some, by cookie, for the release program; removed
/// at the release.
#[map]
pub static UDP_SOCKS: HashMap<u64, UdpSockFlows> = HashMap::with_max_entries(UDP_SOCK_ENTRIES, 0);

/// Threads between `sendmsg4/6` or `recvmsg4/6` and the end of the same call, with the
/// address the call named; taken at the end (`udp_flow.rs`).
#[map]
pub static UDP_FLOW_DEST: LruHashMap<u64, UdpFlowDest> =
    LruHashMap::with_max_entries(UDP_FLOW_DEST_ENTRIES, 0);

/// Threads inside `udp_sendmsg`, `udpv6_sendmsg`, `udp_recvmsg` or `udpv6_recvmsg`, for
/// the kprobe flow programs: the call's socket and `msghdr`, from entry to its end
/// (`udp_flow_fn.rs`). An entry whose end was never seen is overwritten by the thread's next
/// call, or evicted.
#[map]
pub static UDP_FLOW_CALLS: LruHashMap<u64, crate::udp_flow_fn::UdpFlowCall> =
    LruHashMap::with_max_entries(UDP_FLOW_CALL_ENTRIES, 0);

/// Entry 0: which programs count UDP flows (`udp_flow_counting`), written by user space
/// after attaching them.
#[map]
pub static UDP_FLOW_ON: Array<u32> = Array::with_max_entries(1, 0);

/// Offsets and settings, written by the loader (`EbpfLoader::override_global("CONFIG", ..)`).
#[unsafe(no_mangle)]
pub static CONFIG: KernelConfig = KernelConfig::UNSET;

/// Reads one `CONFIG` field. Volatile so the compiler cannot fold in the compiled-in default;
/// the verifier still sees a constant, since `.rodata` is frozen at load.
macro_rules! config {
    ($($field:ident).+) => {
        // SAFETY: CONFIG is a static the loader writes before the program runs and nothing
        // writes after (frozen .rodata); the read is of a field of it, in bounds.
        unsafe { core::ptr::read_volatile(&raw const $crate::maps::CONFIG.$($field).+) }
    };
}
pub(crate) use config;
