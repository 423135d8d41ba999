//! Records the kernel programs write into the `EVENTS` ring buffer.
//!
//! Every record starts with a `u32` kind so the reader can dispatch before it knows the
//! record's size.

/// Length of `task_struct::comm`.
pub const COMM_LEN: usize = 16;
/// Bytes of the executable path kept from `sched_process_exec`.
pub const EXE_LEN: usize = 256;
/// Bytes of argv (NUL-separated) read from the new image's memory at exec time.
pub const ARGS_LEN: usize = 512;
/// Bytes of the executable path the kernel resolves from `mm->exe_file` at exec time.
pub const EXE_PATH_LEN: usize = 512;
/// Path components (and mount crossings) the exec program walks at most.
pub const EXE_PATH_STEPS: u32 = 40;

/// `ExecEvent::exe_flags` bits.
pub mod exe_flag {
    /// `exe_path` holds the path of `mm->exe_file`, walked in the kernel.
    pub const RESOLVED: u32 = 1;
    /// The walk stopped before the root (too deep, too long, or a read failed): `exe_path`
    /// holds the components it got, the last ones of the path.
    pub const TRUNCATED: u32 = 2;
    /// The file was unlinked (`d_unlinked`): `/proc/PID/exe` shows ` (deleted)` after it.
    pub const DELETED: u32 = 4;
    /// A file with no place in any directory tree (a memfd, shmem or hugetlbfs pseudo file:
    /// its dentry is its own parent and not a mount root). `exe_path` holds `/` and its name;
    /// `/proc/PID/exe` shows `/NAME (deleted)` (the kernel's `simple_dname`).
    pub const PSEUDO: u32 = 8;
}

/// `RecordHeader::kind` values.
pub mod kind {
    pub const CONNECT: u32 = 1;
    pub const EXEC: u32 = 2;
    pub const EXIT: u32 = 3;
    pub const FORK: u32 = 4;
    pub const DNS: u32 = 5;
    /// `LifeEvent`: a TCP connect's outcome, a connection's end, an accept or a listen.
    pub const LIFE: u32 = 6;
}

/// Logical hook a connect event came from (`ConnectEvent::hook`).
pub mod hook {
    pub const TCP_CONNECT: u32 = 0;
    pub const UDP_SEND_V4: u32 = 1;
    pub const UDP_SEND_V6: u32 = 2;
    /// Number of logical hooks (array sizes).
    pub const COUNT: usize = 3;
}

/// Kernel mechanism that produced an event (`ConnectEvent::backend`).
pub mod backend {
    pub const FENTRY: u32 = 1;
    pub const KPROBE: u32 = 2;
    /// The classic (perf) tracepoint `sock:inet_sock_set_state`.
    pub const TRACEPOINT: u32 = 3;
    pub const CGROUP: u32 = 4;
    /// The raw tracepoint `inet_sock_set_state` (no trace record is built for it).
    pub const RAW_TRACEPOINT: u32 = 5;

    /// `monitor.probe` for a backend id; `None` for an id this build does not know.
    pub const fn name(id: u32) -> Option<&'static str> {
        match id {
            FENTRY => Some("fentry"),
            KPROBE => Some("kprobe"),
            TRACEPOINT => Some("tracepoint"),
            CGROUP => Some("cgroup"),
            RAW_TRACEPOINT => Some("raw_tracepoint"),
            _ => None,
        }
    }
}

/// Address families as the kernel numbers them.
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
/// IP protocol numbers.
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// First field of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RecordHeader {
    pub kind: u32,
}

/// An outbound TCP connect or UDP send, as seen by the kernel.
///
/// What "send" means depends on the backend: fentry and kprobe see every `udp_sendmsg` /
/// `udpv6_sendmsg`; the cgroup fallback sees `sendmsg` on unconnected sockets
/// (`cgroup/sendmsg4/6`) and, for a connected UDP socket, its first datagram after each
/// `connect` (`cgroup/connect4/6` arm it, `cgroup_skb` egress reports it, naming the process
/// that connected), not its later sends; a connect that sends nothing is not reported. An
/// IPv6 socket's sends to an IPv4-mapped peer show there as IPv4 sends (`sendmsg4`, hook
/// `UDP_SEND_V4`), each one, connected or not. Repeats are suppressed in the kernel (see
/// `suppressed`). The destination is never the unspecified address (`0.0.0.0`, `::`): such
/// sends are not reported.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ConnectEvent {
    /// `kind::CONNECT`.
    pub kind: u32,
    /// `hook::*`.
    pub hook: u32,
    /// `bpf_ktime_get_boot_ns()`: boot-time clock, so suspend does not skew it.
    pub ktime_ns: u64,
    pub tgid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cgroup_id: u64,
    /// Start time of the thread-group leader (boot-time ns); 0 when the hook cannot read it.
    pub start_time_ns: u64,
    /// UDP sends to the same (tgid, destination, port) suppressed in the kernel since the
    /// previous event for that key.
    pub suppressed: u32,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// `IPPROTO_TCP` or `IPPROTO_UDP`.
    pub protocol: u8,
    pub _pad0: u8,
    /// Host byte order; 0 when unknown.
    pub sport: u16,
    /// Host byte order.
    pub dport: u16,
    /// `backend::*`.
    pub backend: u32,
    /// IPv4 addresses use the first 4 bytes; network byte order. All zero when unknown.
    /// An IPv6 socket talking to an IPv4 peer may report `family == AF_INET6` with an
    /// IPv4-mapped address (`::ffff:a.b.c.d`); user space normalises those to IPv4.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub comm: [u8; COMM_LEN],
    /// TCP: the connection id (`monitor.connection_id`) that joins this connect to its
    /// outcome and close records (`LifeEvent::conn_id`): the socket's cookie, or an id the
    /// lifecycle program drew for a socket without one. 0 when unknown (UDP, or a backend
    /// that could not learn it).
    pub conn_id: u64,
}
const _: () = assert!(core::mem::size_of::<ConnectEvent>() == 120);

/// A successful execve: the new image's path and the first `ARGS_LEN` bytes of its argv.
///
/// Only `filename[..filename_len]`, `exe_path[EXE_PATH_LEN - exe_path_len..]` and
/// `args[..args_len]` are meaningful: the kernel fills the record in place in the ring
/// buffer, so other bytes are left over from earlier records. User space checks every length
/// against its array's size when it decodes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecEvent {
    /// `kind::EXEC`.
    pub kind: u32,
    pub tgid: u32,
    pub ktime_ns: u64,
    /// tgid of `real_parent`; 0 when unknown.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Bytes of `filename` used (without the NUL).
    pub filename_len: u32,
    /// Start time of the process (boot-time ns); 0 when unknown.
    pub start_time_ns: u64,
    pub cgroup_id: u64,
    /// Bytes of `args` used; argv elements are NUL-separated.
    pub args_len: u32,
    /// Non-zero when argv was longer than `ARGS_LEN` and was cut.
    pub args_truncated: u32,
    /// `exe_flag::*` bits; 0 when the kernel could not resolve the executable.
    pub exe_flags: u32,
    /// Bytes of `exe_path` used, at its end.
    pub exe_path_len: u32,
    /// `exe_file->f_inode->i_sb->s_dev` (the kernel's dev_t: major << 20 | minor) and
    /// `i_ino`; 0 when unknown.
    pub exe_dev: u32,
    /// The executable's version when it was exec'd: `i_size` and the inode change time
    /// (`ctime`, which no user can set back, unlike `mtime`), so a hash computed for an earlier
    /// content of the same inode is never attached to this one. `exe_ctime_nsec` is
    /// `u32::MAX` when the kernel gave no version.
    pub exe_ctime_nsec: u32,
    pub exe_ino: u64,
    pub exe_size: u64,
    pub exe_ctime_sec: u64,
    pub comm: [u8; COMM_LEN],
    /// The path execve was given (the tracepoint's `filename`), symlinks not followed.
    pub filename: [u8; EXE_LEN],
    /// The file the process runs, `mm->exe_file`, as `/proc/PID/exe` names it (without the
    /// ` (deleted)` suffix, see `exe_flags`). Written right to left while walking up the
    /// dentries, so the path ends at the end of the array. It lies before `args` on purpose:
    /// the verifier bounds each write by the record, not this array (see the exec program).
    pub exe_path: [u8; EXE_PATH_LEN],
    pub args: [u8; ARGS_LEN],
}
const _: () =
    assert!(core::mem::size_of::<ExecEvent>() == 96 + COMM_LEN + EXE_LEN + EXE_PATH_LEN + ARGS_LEN);

/// A new process (not a thread): `fork`, `vfork` or `clone` without `CLONE_THREAD`. The child
/// runs the image of the process that forked (`source_tgid`) until it execs.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ForkEvent {
    /// `kind::FORK`.
    pub kind: u32,
    /// The child.
    pub tgid: u32,
    pub ktime_ns: u64,
    /// The process that forked (the caller), whose image and argv the child has.
    pub source_tgid: u32,
    /// The child's `real_parent` (differs from `source_tgid` with `CLONE_PARENT`); 0 when
    /// unknown.
    pub ppid: u32,
    /// Start times (boot-time ns) of the child and of the forking process; 0 when unknown.
    pub start_time_ns: u64,
    pub source_start_time_ns: u64,
}
const _: () = assert!(core::mem::size_of::<ForkEvent>() == 40);

/// A process exited: on kernels whose `sched_process_exit` has `group_dead` (recent kernels), when its
/// last thread exits; on older kernels, when the thread-group leader exits.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitEvent {
    /// `kind::EXIT`.
    pub kind: u32,
    pub tgid: u32,
    pub ktime_ns: u64,
    pub start_time_ns: u64,
}
const _: () = assert!(core::mem::size_of::<ExitEvent>() == 24);

/// Slots of the in-kernel UDP flood-control table (a power of two).
pub const UDP_FLOOD_SLOTS: u32 = 32 * 1024;

/// What UDP flood control counts sends by: (process, destination, port).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpFloodKey {
    pub tgid: u32,
    pub dport: u16,
    pub family: u16,
    pub daddr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<UdpFloodKey>() == 24);

/// One slot of the flood-control table: a direct-mapped cache indexed by a seeded hash of the
/// key, so that a new key costs a hash and an overwrite (an LRU hash map's insert, which
/// evicts under a key storm, cost most of an unsuppressed send). A key that loses its slot
/// to another only means one more event, never a missed one.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UdpFloodSlot {
    pub key: UdpFloodKey,
    /// The key's full 32-bit hash (the index uses its low bits). Written last and compared
    /// with the key, so a slot caught half-written by another CPU reads as a miss.
    pub check: u32,
    /// Sends suppressed since `last_emit_ns`.
    pub suppressed: u32,
    /// ktime of the last event emitted for the key.
    pub last_emit_ns: u64,
}
const _: () = assert!(core::mem::size_of::<UdpFloodSlot>() == 40);

/// Entries of the kernel's table of connected UDP sockets that have not sent yet
/// (`UdpPending`, keyed by socket cookie; least recently used first out).
pub const UDP_PENDING_ENTRIES: u32 = 16 * 1024;

/// Threads in an explicit-destination send on a connected socket not yet reported (see
/// `UDP_EXPLICIT_SEND`): one entry per thread between two hooks of one system call.
pub const UDP_EXPLICIT_SEND_ENTRIES: u32 = 1024;

/// A UDP socket that `connect()`ed on the cgroup backend and has not sent a datagram since:
/// who connected it, for the event its first datagram writes (the egress hook runs without a
/// task context). Keyed by the socket cookie (`bpf_get_socket_cookie`, unique per boot).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UdpPending {
    pub pid_tgid: u64,
    /// `bpf_get_current_uid_gid()`: gid in the high 32 bits, uid in the low.
    pub uid_gid: u64,
    pub cgroup_id: u64,
    /// `hook::UDP_SEND_V4` or `hook::UDP_SEND_V6`.
    pub hook: u32,
    pub _pad0: u32,
    pub comm: [u8; COMM_LEN],
}
const _: () = assert!(core::mem::size_of::<UdpPending>() == 32 + COMM_LEN);

/// Bytes of a DNS answer copied into the ring buffer at most: the classic UDP message limit
/// (RFC 1035 4.2.1; larger answers need EDNS0 or TCP, and are cut here). Over TCP the
/// 2-byte length prefix counts against it.
pub const DNS_PAYLOAD_LEN: usize = 512;

/// Entries of the kernel's table of sockets that asked a DNS server, by socket cookie
/// (least recently used out).
pub const DNS_OWNER_ENTRIES: u32 = 8 * 1024;

/// `DnsEvent::flags` bits.
pub mod dns_flag {
    /// The socket's owner is known (`DnsOwner` found by cookie): `tgid`.. `comm` are the
    /// process that asked. Otherwise they are zero and the answer is attributed to the host.
    pub const OWNER_KNOWN: u32 = 1;
    /// The answer came over TCP (the payload starts with the 2-byte length prefix).
    pub const TCP: u32 = 2;
    /// The copy is shorter than the answer (`DNS_PAYLOAD_LEN`, or a non-linear skb).
    pub const CUT: u32 = 4;
}

/// A DNS answer arriving at a socket from a server's port 53: read in `sk_data_ready` from
/// the tail of the socket's receive queue, with the process that asked (remembered by the
/// cgroup `connect`/`sendmsg` programs by socket cookie). Only `payload[..payload_len]` is
/// meaningful (the record is filled in place in the ring buffer).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DnsEvent {
    /// `kind::DNS`.
    pub kind: u32,
    /// `dns_flag::*`.
    pub flags: u32,
    pub ktime_ns: u64,
    /// The process that asked (see `dns_flag::OWNER_KNOWN`).
    pub tgid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cgroup_id: u64,
    pub start_time_ns: u64,
    /// The socket's cookie (0 when it never had one).
    pub cookie: u64,
    /// `AF_INET` or `AF_INET6` (of the addresses below).
    pub family: u16,
    /// `IPPROTO_TCP` or `IPPROTO_UDP`.
    pub protocol: u8,
    pub _pad0: u8,
    /// The server's port (53) and the local port, host byte order.
    pub server_port: u16,
    pub local_port: u16,
    /// Bytes of `payload` used.
    pub payload_len: u32,
    /// The answer's length on the wire (UDP payload, or TCP segment data), when known.
    pub wire_len: u32,
    /// `backend::*` of the program that read it.
    pub backend: u32,
    pub _pad1: u32,
    /// Network byte order; IPv4 in the first 4 bytes.
    pub server: [u8; 16],
    pub local: [u8; 16],
    pub comm: [u8; COMM_LEN],
    pub payload: [u8; DNS_PAYLOAD_LEN],
}
const _: () = assert!(core::mem::size_of::<DnsEvent>() == 80 + 32 + COMM_LEN + DNS_PAYLOAD_LEN);

/// The process that last asked a DNS server through a socket (value of the kernel's table,
/// keyed by socket cookie): written by the cgroup `connect4/6` and `sendmsg4/6` programs,
/// which run in the asking task, and read where the answer arrives (softirq, no task).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DnsOwner {
    pub pid_tgid: u64,
    /// `bpf_get_current_uid_gid()`: gid in the high 32 bits, uid in the low.
    pub uid_gid: u64,
    pub cgroup_id: u64,
    pub comm: [u8; COMM_LEN],
}
const _: () = assert!(core::mem::size_of::<DnsOwner>() == 24 + COMM_LEN);

/// `LifeEvent::action` values.
pub mod life_action {
    /// A TCP connect's result: `error == 0` and `LifeEvent::flags & ESTABLISHED` for
    /// success, else the socket's error (`sk_err`: `ECONNREFUSED`, `ETIMEDOUT`, ...; 0 when
    /// the socket was closed before either).
    pub const OUTCOME: u32 = 1;
    /// An established TCP connection ended (entered `TCP_CLOSE`): duration, bytes, segments.
    pub const CLOSE: u32 = 2;
    /// An inbound TCP connection was established (`SYN_RECV -> ESTABLISHED`), attributed to
    /// the process that made the listening socket listen.
    pub const ACCEPT: u32 = 3;
    /// A TCP socket started listening, or a UDP socket was bound to a port.
    pub const LISTEN: u32 = 4;
    /// A UDP flow's summary (socket, process, remote end): `bytes_acked`/`bytes_received`
    /// are the bytes sent/received, `segs_out`/`segs_in` the datagrams (saturating),
    /// `duration_ns` first to last datagram. At the socket's release, or after the idle
    /// period (`life_flag::IDLE`, written by user space's sweep of `UDP_FLOWS`).
    pub const FLOW: u32 = 5;
}

/// `LifeEvent::flags` bits.
pub mod life_flag {
    /// `tgid` .. `comm` name a process (the caller, or the listening socket's owner).
    /// Otherwise they are zero: an accept on a socket whose `listen()` was not seen.
    pub const OWNER_KNOWN: u32 = 1;
    /// The connection reached `ESTABLISHED` (an outcome's success).
    pub const ESTABLISHED: u32 = 2;
    /// The connection came in (accepted): the local end is the destination. For a UDP
    /// flow: its first datagram was received, not sent.
    pub const INBOUND: u32 = 4;
    /// A UDP flow summarised because it was idle (the socket is still open), not closed.
    pub const IDLE: u32 = 8;
}

/// Entries of the kernel's table of tracked TCP connections (`LifeConn`, by socket address):
/// connects from `SYN_SENT` and accepts from `ESTABLISHED`, until `TCP_CLOSE`.
pub const LIFE_CONN_ENTRIES: u32 = 64 * 1024;
/// Entries of the kernel's table of TCP connects between the cgroup `connect4/6` hook and
/// `SYN_SENT` (`LifeConn`, by thread): one per thread inside `connect()` at a time.
pub const LIFE_EARLY_ENTRIES: u32 = 8 * 1024;
/// Entries of the kernel's table of listening TCP sockets' owners (`ListenOwner`).
pub const LISTEN_OWNER_ENTRIES: u32 = 8 * 1024;

/// One record of a TCP connection's life (`kind::LIFE`), or a listen. Addresses are the
/// local and remote ends (network byte order, IPv4 in the first 4 bytes); ports host order.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LifeEvent {
    /// `kind::LIFE`.
    pub kind: u32,
    /// `life_action::*`.
    pub action: u32,
    pub ktime_ns: u64,
    /// The connection id (see `ConnectEvent::conn_id`); 0 for a listen.
    pub conn_id: u64,
    pub tgid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cgroup_id: u64,
    pub start_time_ns: u64,
    /// CLOSE: from the connect (`SYN_SENT`) or the accept to the close; OUTCOME: from the
    /// connect to the result.
    pub duration_ns: u64,
    /// CLOSE: `tcp_sock.bytes_acked` (sent and acknowledged) and `bytes_received`.
    pub bytes_acked: u64,
    pub bytes_received: u64,
    /// CLOSE: `tcp_sock.segs_out` and `segs_in` (every segment, handshake and pure ACKs
    /// included).
    pub segs_out: u32,
    pub segs_in: u32,
    /// OUTCOME: `sk->sk_err` when the connect failed (0: closed before a result).
    pub error: u32,
    /// `backend::*` of the program that wrote it.
    pub backend: u32,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// `IPPROTO_TCP` or `IPPROTO_UDP` (a UDP listen).
    pub protocol: u8,
    pub _pad0: u8,
    /// Local and remote ports (0 when unknown).
    pub lport: u16,
    pub rport: u16,
    /// `life_flag::*`.
    pub flags: u32,
    pub _pad1: u32,
    pub laddr: [u8; 16],
    pub raddr: [u8; 16],
    pub comm: [u8; COMM_LEN],
}
const _: () = assert!(core::mem::size_of::<LifeEvent>() == 112 + 32 + COMM_LEN);

/// A tracked TCP connection (value of the kernel's table, keyed by the `struct sock`
/// address, which stays the socket's until it is freed after `TCP_CLOSE`, where the entry
/// is removed).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LifeConn {
    pub conn_id: u64,
    /// ktime of the connect (`SYN_SENT`) or the accept.
    pub start_ns: u64,
    pub pid_tgid: u64,
    /// `bpf_get_current_uid_gid()`: gid in the high 32 bits, uid in the low.
    pub uid_gid: u64,
    pub cgroup_id: u64,
    pub start_time_ns: u64,
    pub family: u16,
    pub lport: u16,
    pub rport: u16,
    pub _pad0: u16,
    /// `life_flag::*`.
    pub flags: u32,
    pub _pad1: u32,
    pub laddr: [u8; 16],
    pub raddr: [u8; 16],
    pub comm: [u8; COMM_LEN],
}
const _: () = assert!(core::mem::size_of::<LifeConn>() == 64 + 32 + COMM_LEN);

/// Key of the listening sockets' owners: the network namespace (its inode number, 0 when
/// the kernel's BTF does not give it) and the port.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenKey {
    pub netns: u32,
    pub port: u16,
    pub _pad0: u16,
}
const _: () = assert!(core::mem::size_of::<ListenKey>() == 8);

/// The process that made a TCP socket listen, recorded in its context (`listen()`), for the
/// accepts that complete in softirq, where no process is current.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ListenOwner {
    /// The listening socket, so that closing another socket of the same port (an old
    /// listener, a `SO_REUSEPORT` sibling) does not remove this entry.
    pub sk: u64,
    pub pid_tgid: u64,
    pub uid_gid: u64,
    pub cgroup_id: u64,
    pub start_time_ns: u64,
    pub comm: [u8; COMM_LEN],
}
const _: () = assert!(core::mem::size_of::<ListenOwner>() == 40 + COMM_LEN);

/// Entries of the kernel's UDP flow table (`UdpFlow` by `UdpFlowKey`; a plain hash map: a
/// full table is counted, never an active flow silently evicted). Entries go at the
/// socket's release and at user space's idle sweep.
pub const UDP_FLOW_ENTRIES: u32 = 32 * 1024;
/// Entries of the kernel's table of sockets with flows (`UdpSockFlows` by cookie).
pub const UDP_SOCK_ENTRIES: u32 = 16 * 1024;
/// Flows of one socket the release program summarises (`UdpSockFlows::peers`); a socket
/// talking to more destinations has the others summarised after the idle period.
pub const UDP_FLOW_SLOTS: usize = 8;
/// Threads between a UDP `sendmsg4/6` or `recvmsg4/6` hook and the send or receive's end
/// (`UdpFlowDest`, by thread).
pub const UDP_FLOW_DEST_ENTRIES: u32 = 4096;

/// `UDP_FLOW_ON[0]`: which programs count UDP flows, so that only one set does even where
/// both are attached. User space writes it once every program of the set is attached.
pub mod udp_flow_counting {
    /// Not counted (the default).
    pub const OFF: u32 = 0;
    /// `sendmsg4/6` and `recvmsg4/6` name the remote end, the `sock_send_length` and
    /// `sock_recv_length` raw tracepoints count (Linux 6.3+).
    pub const CGROUP: u32 = 1;
    /// The fexit or kprobe programs on `udp_sendmsg`, `udpv6_sendmsg`, `udp_recvmsg` and
    /// `udpv6_recvmsg` count, with the remote end from the call's `msghdr`.
    pub const KERNEL_FN: u32 = 2;
}
/// Threads inside a UDP send or receive for the kprobe flow programs (entry to return).
pub const UDP_FLOW_CALL_ENTRIES: u32 = 4096;

/// The process and remote end of a UDP flow (within a socket). The address is normalised:
/// an IPv4-mapped IPv6 peer is `AF_INET`, so a dual-stack socket's sends and receives meet.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpFlowPeer {
    pub tgid: u32,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Host byte order.
    pub rport: u16,
    /// Network byte order; IPv4 in the first 4 bytes, the rest zero.
    pub raddr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<UdpFlowPeer>() == 24);

/// Key of the kernel's UDP flow table: (socket cookie, process, remote end).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpFlowKey {
    pub cookie: u64,
    pub peer: UdpFlowPeer,
}
const _: () = assert!(core::mem::size_of::<UdpFlowKey>() == 32);

/// One UDP flow's counters and owner (value of `UDP_FLOWS`). Counters are added atomically
/// (several threads may share the socket); `last_ns` is a plain store (any recent value
/// will do).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UdpFlow {
    /// ktime of the first and last datagram counted.
    pub first_ns: u64,
    pub last_ns: u64,
    /// Bytes (UDP payload, as the send or receive call returned them) and datagrams sent to
    /// and received from the remote end.
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub packets_in: u64,
    /// The process that sent or received the flow's first datagram (in its own context).
    pub pid_tgid: u64,
    /// `bpf_get_current_uid_gid()`: gid in the high 32 bits, uid in the low.
    pub uid_gid: u64,
    pub cgroup_id: u64,
    pub start_time_ns: u64,
    /// The socket's bound local port (host order) and address, when the flow began.
    pub lport: u16,
    /// `backend::*` of the programs that counted it (`monitor.probe`).
    pub backend: u16,
    /// `life_flag::INBOUND` when the first datagram was received.
    pub flags: u32,
    pub laddr: [u8; 16],
    pub comm: [u8; COMM_LEN],
}
const _: () = assert!(core::mem::size_of::<UdpFlow>() == 88 + 16 + COMM_LEN);

/// The flows of one UDP socket (value of `UDP_SOCKS`, by cookie), for the release program,
/// which cannot search `UDP_FLOWS` by cookie. A slot is free while its `family` is 0. Filled
/// first free slot first, without a lock (the BPF target has no fetching atomics): two
/// threads opening new flows on one socket at the same instant may take the same slot, and
/// the flow that loses it is summarised after its idle period instead of at the close.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UdpSockFlows {
    pub peers: [UdpFlowPeer; UDP_FLOW_SLOTS],
}
const _: () = assert!(core::mem::size_of::<UdpSockFlows>() == 24 * UDP_FLOW_SLOTS);

/// Where a thread's current UDP send goes or receive came from, as `sendmsg4/6` or
/// `recvmsg4/6` saw it (value of `UDP_FLOW_DEST`, by thread), for the `sock_send_length`
/// and `sock_recv_length` programs at the end of the same call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UdpFlowDest {
    pub cookie: u64,
    pub family: u16,
    pub port: u16,
    pub _pad0: u32,
    pub addr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<UdpFlowDest>() == 32);

#[cfg(feature = "user")]
mod user {
    unsafe impl aya::Pod for UdpFlowPeer {}
    unsafe impl aya::Pod for UdpFlowKey {}
    unsafe impl aya::Pod for UdpFlow {}
    unsafe impl aya::Pod for UdpSockFlows {}
    unsafe impl aya::Pod for UdpFlowDest {}
    unsafe impl aya::Pod for DnsEvent {}
    unsafe impl aya::Pod for DnsOwner {}
    use super::*;
    unsafe impl aya::Pod for RecordHeader {}
    unsafe impl aya::Pod for ConnectEvent {}
    unsafe impl aya::Pod for ExecEvent {}
    unsafe impl aya::Pod for ExitEvent {}
    unsafe impl aya::Pod for ForkEvent {}
    unsafe impl aya::Pod for UdpFloodKey {}
    unsafe impl aya::Pod for UdpFloodSlot {}
    unsafe impl aya::Pod for UdpPending {}
    unsafe impl aya::Pod for LifeEvent {}
    unsafe impl aya::Pod for LifeConn {}
    unsafe impl aya::Pod for ListenKey {}
    unsafe impl aya::Pod for ListenOwner {}
}

/// Writes the summary record (`life_action::FLOW`) of a UDP flow into `ev`, field by field
/// (the kernel writes it in place in the ring buffer; user space's idle sweep into a value
/// of its own), so both paths give the same record. `now` is the record's time; `flags`
/// adds `life_flag::IDLE` for the sweep.
#[inline(always)]
pub fn write_flow_summary(
    ev: &mut LifeEvent,
    key: &UdpFlowKey,
    flow: &UdpFlow,
    now: u64,
    flags: u32,
) {
    ev.kind = kind::LIFE;
    ev.action = life_action::FLOW;
    ev.ktime_ns = now;
    // The socket's cookie: a socket's flows share it (with the remote end, they name one).
    ev.conn_id = key.cookie;
    ev.tgid = (flow.pid_tgid >> 32) as u32;
    ev.tid = flow.pid_tgid as u32;
    ev.uid = flow.uid_gid as u32;
    ev.gid = (flow.uid_gid >> 32) as u32;
    ev.cgroup_id = flow.cgroup_id;
    ev.start_time_ns = flow.start_time_ns;
    ev.duration_ns = flow.last_ns.saturating_sub(flow.first_ns);
    ev.bytes_acked = flow.bytes_out;
    ev.bytes_received = flow.bytes_in;
    ev.segs_out = saturate_u32(flow.packets_out);
    ev.segs_in = saturate_u32(flow.packets_in);
    ev.error = 0;
    ev.backend = u32::from(flow.backend);
    ev.family = key.peer.family;
    ev.protocol = IPPROTO_UDP;
    ev._pad0 = 0;
    ev.lport = flow.lport;
    ev.rport = key.peer.rport;
    ev.flags = flow.flags | life_flag::OWNER_KNOWN | flags;
    ev._pad1 = 0;
    ev.laddr = flow.laddr;
    ev.raddr = key.peer.raddr;
    ev.comm = flow.comm;
}

#[inline(always)]
fn saturate_u32(n: u64) -> u32 {
    if n > u32::MAX as u64 {
        u32::MAX
    } else {
        n as u32
    }
}
