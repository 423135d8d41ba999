//! Load-time configuration of the kernel programs (the `CONFIG` global) and the indices of the
//! kernel-side counters (the per-CPU `STATS` array).
//!
//! Rust-compiled eBPF gets no CO-RE relocations, so every kernel struct offset the programs use
//! is resolved by user space from `/sys/kernel/btf/vmlinux` (or, for classic tracepoints, from
//! the tracepoint's `format` file) and written into `CONFIG` before the object is loaded.

/// `STATS` indices. Every failure the kernel programs meet is counted here, never swallowed.
pub mod stat {
    /// `bpf_ringbuf_reserve` failed: an event was lost.
    pub const RINGBUF_FULL: u32 = 0;
    /// UDP sends suppressed by flood control.
    pub const UDP_SUPPRESSED: u32 = 1;
    /// A kernel read (`bpf_probe_read_*`) failed. When it was the destination, the event was
    /// dropped; otherwise the event went out with that field unknown (zero).
    pub const READ_FAILED: u32 = 2;
    /// Connect events written, per logical hook (TCP, UDPv4, UDPv6).
    pub const EVENTS_TCP: u32 = 3;
    pub const EVENTS_UDP4: u32 = 4;
    pub const EVENTS_UDP6: u32 = 5;
    /// Exec and exit records written.
    pub const EXECS: u32 = 6;
    pub const EXITS: u32 = 7;
    /// A new UDP flood-control key took the slot of another key still inside its suppression
    /// window (the table is too small for the live keys; the events still went out, the
    /// displaced key's next send is reported instead of suppressed).
    pub const FLOOD_MAP_FULL: u32 = 8;
    /// Records lost to a full ring buffer (also counted in `RINGBUF_FULL`), per logical
    /// hook (TCP, UDPv4, UDPv6: `LOST_TCP + hook`), then exec and exit records.
    pub const LOST_TCP: u32 = 9;
    pub const LOST_UDP4: u32 = 10;
    pub const LOST_UDP6: u32 = 11;
    pub const LOST_EXEC: u32 = 12;
    pub const LOST_EXIT: u32 = 13;
    /// A connected UDP socket could not be recorded as pending (cgroup backend): its first
    /// datagram will not be reported.
    pub const UDP_PENDING_FAILED: u32 = 14;
    /// Fork records written, and lost to a full ring buffer.
    pub const FORKS: u32 = 15;
    pub const LOST_FORK: u32 = 16;
    /// The exec program's walk of the executable's path stopped early (too deep, too long
    /// or a failed read): the record says so (`exe_flag::TRUNCATED`).
    pub const EXE_PATH_TRUNCATED: u32 = 17;
    /// DNS answers (datagrams or TCP segments from a server's port 53) copied into the ring
    /// buffer, and answers lost to a full ring buffer.
    pub const DNS_ANSWERS: u32 = 18;
    pub const LOST_DNS: u32 = 19;
    /// A socket that asked a DNS server (cgroup `connect`/`sendmsg` to port 53) could not be
    /// remembered with its process: its answers are attributed to the host only.
    pub const DNS_OWNER_FAILED: u32 = 20;
    /// An answer longer than `DNS_PAYLOAD_LEN`, or not all in the packet's linear area: the
    /// copy is cut (user space counts it as truncated if the cut loses records).
    pub const DNS_CUT: u32 = 21;
    /// `sk_data_ready` on a DNS socket found its receive queue empty (a reader on another
    /// CPU took the datagram first): the answer was not seen.
    pub const DNS_MISSED: u32 = 22;
    /// DNS answers not copied because the ring buffer was more than half full
    /// (`DnsOffsets::shed_bytes`): connection events keep their room during a DNS flood.
    pub const DNS_SHED: u32 = 23;
    /// A `sock_recvmsg` on a TCP DNS socket could not be remembered from entry to return
    /// (fentry/fexit, or the kprobes, before Linux 6.3): that answer is not read.
    pub const DNS_RECV_FAILED: u32 = 24;
    /// Lifecycle records (TCP outcome, close, accept; TCP and UDP listen) written, and
    /// lost to a full ring buffer.
    pub const LIFE_RECORDS: u32 = 25;
    pub const LOST_LIFE: u32 = 26;
    /// A connection or listener could not be entered in its table (full): its outcome and
    /// close records, or its accepts' owner, are missing.
    pub const LIFE_TABLE_FULL: u32 = 27;
    /// A UDP flow (socket, process, remote end) could not be entered in its table (full):
    /// its datagrams are not counted and it gets no summary.
    pub const UDP_FLOW_TABLE_FULL: u32 = 28;
    /// A UDP datagram whose remote end was not known (`recv()` without an address on an
    /// unconnected socket, or a socket without a cookie) was not counted in any flow.
    pub const UDP_FLOW_PEER_UNKNOWN: u32 = 29;
    /// A UDP flow could not be listed under its socket (more than `UDP_FLOW_SLOTS`
    /// destinations, or the socket table full): it is summarised after the idle period
    /// only, not when the socket closes.
    pub const UDP_FLOW_UNLISTED: u32 = 30;
    /// Size of the array.
    pub const COUNT: u32 = 31;
}

/// Marks an offset that does not exist on the running kernel (for instance the
/// `sched_process_exit` tracepoint's `group_dead`, which older kernels lack).
pub const OFFSET_ABSENT: u32 = u32::MAX;

/// Byte offsets into `struct sock`, `struct msghdr` and the `sockaddr_in{,6}` the
/// fentry, kprobe and raw tracepoint programs read. From BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockOffsets {
    /// `sock.__sk_common.skc_family` (u16).
    pub skc_family: u32,
    /// `skc_daddr` (be32), `skc_rcv_saddr` (be32).
    pub skc_daddr: u32,
    pub skc_rcv_saddr: u32,
    /// `skc_dport` (be16), `skc_num` (u16, host order: the bound local port).
    pub skc_dport: u32,
    pub skc_num: u32,
    /// `skc_v6_daddr`, `skc_v6_rcv_saddr` (struct in6_addr).
    pub skc_v6_daddr: u32,
    pub skc_v6_rcv_saddr: u32,
    /// `msghdr.msg_name` (pointer), `msghdr.msg_namelen` (int).
    pub msg_name: u32,
    pub msg_namelen: u32,
    /// `sockaddr_in.sin_family` (the same offset as every `sa_family`), `sin_port`, `sin_addr`.
    pub sin_family: u32,
    pub sin_port: u32,
    pub sin_addr: u32,
    /// `sockaddr_in6.sin6_port`, `sin6_addr`.
    pub sin6_port: u32,
    pub sin6_addr: u32,
    /// `sock.sk_protocol` (u16; a bitfield before Linux 5.6, then `OFFSET_ABSENT`). Only the
    /// raw tracepoint needs it: `inet_sock_set_state` also fires for MPTCP and SCTP sockets.
    pub sk_protocol: u32,
    /// `sock.__sk_common.skc_state` (u8) and `skc_cookie` (atomic64): the `sock_send_length`
    /// raw tracepoint finds a connected UDP socket's entry in `UDP_PENDING` by its cookie,
    /// which the cgroup `connect4/6` program generated.
    pub skc_state: u32,
    pub skc_cookie: u32,
    pub _pad0: u32,
}
const _: () = assert!(core::mem::size_of::<SockOffsets>() == 18 * 4);

/// Byte offsets into `struct task_struct` and `struct mm_struct`. From BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskOffsets {
    /// `task_struct.tgid` (pid_t).
    pub tgid: u32,
    /// `task_struct.real_parent`, `group_leader`, `mm` (pointers).
    pub real_parent: u32,
    pub group_leader: u32,
    pub mm: u32,
    /// `task_struct.start_boottime` (u64, boot-clock ns; `real_start_time` before Linux 5.5).
    pub start_boottime: u32,
    /// `mm_struct.arg_start`, `arg_end` (unsigned long, user addresses).
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    /// `task_struct.pid` (pid_t): tells a new process (pid == tgid) from a new thread.
    pub pid: u32,
}
const _: () = assert!(core::mem::size_of::<TaskOffsets>() == 8 * 4);

/// Byte offsets for walking `mm->exe_file` to its path, as `d_path` does. From BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileOffsets {
    /// `mm_struct.exe_file` (pointer).
    pub mm_exe_file: u32,
    /// `file.f_path.mnt`, `file.f_path.dentry`, `file.f_inode` (pointers).
    pub f_path_mnt: u32,
    pub f_path_dentry: u32,
    pub f_inode: u32,
    /// `dentry.d_parent` (pointer), `d_name.len` (u32), `d_name.name` (pointer),
    /// `d_hash.pprev` (pointer; NULL when the dentry is unhashed).
    pub d_parent: u32,
    pub d_name_len: u32,
    pub d_name_name: u32,
    pub d_hash_pprev: u32,
    /// `struct mount.mnt` (the embedded `vfsmount`), `mnt_parent` (pointer),
    /// `mnt_mountpoint` (pointer); `vfsmount.mnt_root` (pointer).
    pub mount_mnt: u32,
    pub mount_parent: u32,
    pub mount_mountpoint: u32,
    pub vfsmount_root: u32,
    /// `inode.i_ino` (unsigned long), `inode.i_sb` (pointer), `super_block.s_dev` (dev_t).
    pub i_ino: u32,
    pub i_sb: u32,
    pub s_dev: u32,
    /// `inode.i_size` (loff_t), and the inode change time's seconds (time64_t) and
    /// nanoseconds (read as a u32: `i_ctime_nsec` since Linux 6.11, the low half of
    /// `timespec64.tv_nsec` before). Any of them `OFFSET_ABSENT` when the kernel's BTF
    /// lacks it: the exec record then carries no file version.
    pub i_size: u32,
    pub i_ctime_sec: u32,
    pub i_ctime_nsec: u32,
}
const _: () = assert!(core::mem::size_of::<FileOffsets>() == 18 * 4);

/// Byte offsets of classic tracepoint fields, from
/// `/sys/kernel/tracing/events/<category>/<name>/format`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracepointOffsets {
    /// `sock:inet_sock_set_state`.
    pub sk_oldstate: u32,
    pub sk_newstate: u32,
    pub sk_sport: u32,
    pub sk_dport: u32,
    pub sk_family: u32,
    pub sk_protocol: u32,
    pub sk_saddr: u32,
    pub sk_daddr: u32,
    pub sk_saddr_v6: u32,
    pub sk_daddr_v6: u32,
    /// `sched:sched_process_exec`: `__data_loc char[] filename`.
    pub exec_filename: u32,
    /// `sched:sched_process_exit`: `bool group_dead`, or `OFFSET_ABSENT` on kernels without it.
    pub exit_group_dead: u32,
}
const _: () = assert!(core::mem::size_of::<TracepointOffsets>() == 12 * 4);

/// Byte offsets the DNS answer program reads: the socket's cookie and the tail of its
/// receive queue, and in the `sk_buff` found there the payload and headers. From BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsOffsets {
    /// Non-zero when every offset below was resolved (and `SockOffsets::sk_protocol` too).
    pub valid: u32,
    /// `sock.__sk_common.skc_cookie` (atomic64_t; 0 until a cookie was asked for).
    pub skc_cookie: u32,
    /// `sock.sk_receive_queue` + `sk_buff_head.prev`: the last skb queued (pointer).
    pub rcvq_tail: u32,
    /// `sk_buff.head`, `sk_buff.data` (pointers), `sk_buff.len`, `sk_buff.data_len` (u32),
    /// `sk_buff.transport_header`, `sk_buff.network_header` (u16, offsets from `head`).
    pub skb_head: u32,
    pub skb_data: u32,
    pub skb_len: u32,
    pub skb_data_len: u32,
    pub skb_transport_header: u32,
    pub skb_network_header: u32,
    /// `sock.sk_receive_queue` itself: an empty queue's `prev` points here.
    pub rcvq_head: u32,
    /// Non-zero when TCP answers are read where the process receives them
    /// (`sock:sock_recv_length`, from the user buffer), so `sk_data_ready` leaves TCP alone:
    /// TCP segments are non-linear (page fragments), which that hook cannot read.
    pub tcp_on_recv: u32,
    /// `pt_regs.orig_ax` (the syscall number) and `pt_regs.si` (its second argument), the
    /// user registers the receive hook finds the user buffer by (x86_64 only).
    pub regs_orig_ax: u32,
    pub regs_si: u32,
    /// Non-zero when `skc_dport`, `skc_num`, `skc_family` and `skc_state` lie in the 8 bytes
    /// from `skc_dport` (as on every kernel since 4.x): `sk_data_ready` then decides most
    /// calls with one read.
    pub ports_word: u32,
    /// DNS answers are dropped (`stat::DNS_SHED`) while more than this many bytes wait in
    /// the ring buffer, so a DNS flood cannot take the room connection events need.
    pub shed_bytes: u32,
    pub _pad0: u32,
    /// Where TCP answers are read on kernels without `sock:sock_recv_length` (before 6.3).
    pub recv: DnsRecvOffsets,
}
const _: () = assert!(core::mem::size_of::<DnsOffsets>() == 16 * 4 + 40);

/// Offsets and constants the `sock_recvmsg` entry programs (fentry and kprobe, before Linux
/// 6.3) read the caller's buffer with: `sock->sk`, and the first user buffer of
/// `msg->msg_iter` before the copy advances it. From BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsRecvOffsets {
    /// Non-zero when every offset below was resolved (`type_ubuf` may be `OFFSET_ABSENT`,
    /// `iter_ubuf` then 0: kernels before 6.0 have no `ITER_UBUF`).
    pub valid: u32,
    /// `socket.sk` (pointer).
    pub socket_sk: u32,
    /// `msghdr.msg_iter` (an embedded `struct iov_iter`).
    pub msg_iter: u32,
    /// `iov_iter.iter_type` (u8, 5.14+) or `iov_iter.type` (u32 with the direction in bit
    /// 0, which is 0 for a read): its first byte is read (little-endian).
    pub iter_type: u32,
    /// `iov_iter.iov_offset` (usize).
    pub iter_offset: u32,
    /// `iov_iter.iov` (`__iov` since 6.4): the first `struct iovec` (pointer).
    pub iter_iov: u32,
    /// `iov_iter.ubuf`: the user buffer of an `ITER_UBUF` iterator (6.0+).
    pub iter_ubuf: u32,
    /// `ITER_IOVEC` and `ITER_UBUF` from `enum iter_type` (their values changed in 5.14,
    /// 6.0 and 6.5).
    pub type_iovec: u32,
    pub type_ubuf: u32,
    /// `iov_iter.count` (usize): the bytes still wanted, which the kprobe backend compares
    /// with the count at entry to learn how much was copied.
    pub iter_count: u32,
}
const _: () = assert!(core::mem::size_of::<DnsRecvOffsets>() == 40);

impl DnsOffsets {
    /// Nothing resolved: the `sock_recvmsg` programs do nothing.
    pub const UNSET_RECV: DnsRecvOffsets = DnsRecvOffsets {
        valid: 0,
        socket_sk: 0,
        msg_iter: 0,
        iter_type: 0,
        iter_offset: 0,
        iter_iov: 0,
        iter_ubuf: 0,
        type_iovec: OFFSET_ABSENT,
        type_ubuf: OFFSET_ABSENT,
        iter_count: 0,
    };
}

/// Byte offsets the lifecycle program reads (`struct sock`, `struct tcp_sock`, `struct net`),
/// relative to the socket's address. From BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LifeOffsets {
    /// Non-zero when every offset below (but `net_inum`) was resolved, with
    /// `SockOffsets` and its `sk_protocol`.
    pub valid: u32,
    /// `sock.sk_err` (int).
    pub sk_err: u32,
    /// `tcp_sock.bytes_acked`, `bytes_received` (u64), `segs_out`, `segs_in` (u32).
    pub bytes_acked: u32,
    pub bytes_received: u32,
    pub segs_out: u32,
    pub segs_in: u32,
    /// `sock.__sk_common.skc_net` (a `struct net *`) and `net.ns.inum` (u32), the network
    /// namespace listeners are keyed by; `net_inum` is `OFFSET_ABSENT` when unknown (then
    /// every namespace shares one key space).
    pub skc_net: u32,
    pub net_inum: u32,
    /// `sock.sk_err_soft` (int): an ICMP error that arrived while the connecting task held
    /// the socket (it then gives up on its own, and `sk_err` stays 0).
    pub sk_err_soft: u32,
    /// Parameters of `udp_recvmsg` and `udpv6_recvmsg`: 6 before Linux 5.19 (`noblock`
    /// before `flags`), 5 since (`flags, addr_len`), 4 on recent kernels (`flags` last); 0
    /// when BTF shows none of these (then UDP flows cannot use the fexit/kprobe programs).
    /// The kprobes find `flags` by it, user space picks the fexit programs by it.
    pub udp_recvmsg_args: u32,
}
const _: () = assert!(core::mem::size_of::<LifeOffsets>() == 10 * 4);

/// The kernel programs' load-time configuration, the `CONFIG` global in `monitor-ebpf`.
///
/// User space fills it and hands it over with `EbpfLoader::override_global("CONFIG", ..)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelConfig {
    /// UDP sends to one (tgid, destination, port) closer together than this are suppressed.
    pub udp_suppress_ns: u64,
    /// Submit with `BPF_RB_FORCE_WAKEUP` once this many bytes wait in the ring buffer;
    /// otherwise `BPF_RB_NO_WAKEUP` (user space polls on a timer).
    pub wakeup_bytes: u64,
    /// The monitor's own tgid: its connections are never reported.
    pub exclude_tgid: u32,
    /// Non-zero when `sock` holds offsets resolved from BTF (fentry, kprobe and the raw
    /// tracepoint need them).
    pub sock_valid: u32,
    /// Non-zero when `task` holds offsets resolved from BTF. Without them, exec events carry no
    /// ppid, argv or start time, connect events no start time, and no fork events are sent.
    pub task_valid: u32,
    /// Seed of the flood-control hash, random per start, so that nobody can pick keys that
    /// collide in the table on purpose.
    pub flood_seed: u32,
    /// Non-zero when `file` holds offsets resolved from BTF (and `task_valid` is set): exec
    /// events then carry the executable's path, device and inode.
    pub file_valid: u32,
    pub _pad0: u32,
    pub sock: SockOffsets,
    pub task: TaskOffsets,
    pub file: FileOffsets,
    pub tp: TracepointOffsets,
    pub dns: DnsOffsets,
    pub life: LifeOffsets,
}
const _: () = assert!(core::mem::size_of::<KernelConfig>() == 40 + 72 + 32 + 72 + 48 + 104 + 40);

impl KernelConfig {
    /// The value compiled into the object: nothing resolved, nothing excluded. The non-zero
    /// suppression interval also keeps the global out of `.bss`, which the loader cannot patch.
    pub const UNSET: KernelConfig = KernelConfig {
        udp_suppress_ns: 1_000_000_000,
        wakeup_bytes: 0,
        exclude_tgid: 0,
        sock_valid: 0,
        task_valid: 0,
        flood_seed: 0,
        file_valid: 0,
        _pad0: 0,
        sock: SockOffsets {
            skc_family: 0,
            skc_daddr: 0,
            skc_rcv_saddr: 0,
            skc_dport: 0,
            skc_num: 0,
            skc_v6_daddr: 0,
            skc_v6_rcv_saddr: 0,
            msg_name: 0,
            msg_namelen: 0,
            sin_family: 0,
            sin_port: 0,
            sin_addr: 0,
            sin6_port: 0,
            sin6_addr: 0,
            sk_protocol: OFFSET_ABSENT,
            skc_state: 0,
            skc_cookie: 0,
            _pad0: 0,
        },
        task: TaskOffsets {
            tgid: 0,
            real_parent: 0,
            group_leader: 0,
            mm: 0,
            start_boottime: 0,
            mm_arg_start: 0,
            mm_arg_end: 0,
            pid: 0,
        },
        file: FileOffsets {
            mm_exe_file: 0,
            f_path_mnt: 0,
            f_path_dentry: 0,
            f_inode: 0,
            d_parent: 0,
            d_name_len: 0,
            d_name_name: 0,
            d_hash_pprev: 0,
            mount_mnt: 0,
            mount_parent: 0,
            mount_mountpoint: 0,
            vfsmount_root: 0,
            i_ino: 0,
            i_sb: 0,
            s_dev: 0,
            i_size: OFFSET_ABSENT,
            i_ctime_sec: OFFSET_ABSENT,
            i_ctime_nsec: OFFSET_ABSENT,
        },
        tp: TracepointOffsets {
            sk_oldstate: 0,
            sk_newstate: 0,
            sk_sport: 0,
            sk_dport: 0,
            sk_family: 0,
            sk_protocol: 0,
            sk_saddr: 0,
            sk_daddr: 0,
            sk_saddr_v6: 0,
            sk_daddr_v6: 0,
            exec_filename: 0,
            exit_group_dead: OFFSET_ABSENT,
        },
        dns: DnsOffsets {
            valid: 0,
            skc_cookie: 0,
            rcvq_tail: 0,
            skb_head: 0,
            skb_data: 0,
            skb_len: 0,
            skb_data_len: 0,
            skb_transport_header: 0,
            skb_network_header: 0,
            rcvq_head: 0,
            tcp_on_recv: 0,
            regs_orig_ax: 0,
            regs_si: 0,
            ports_word: 0,
            shed_bytes: 0,
            _pad0: 0,
            recv: DnsOffsets::UNSET_RECV,
        },
        life: LifeOffsets {
            valid: 0,
            sk_err: 0,
            bytes_acked: 0,
            bytes_received: 0,
            segs_out: 0,
            segs_in: 0,
            skc_net: 0,
            net_inum: OFFSET_ABSENT,
            sk_err_soft: 0,
            udp_recvmsg_args: 0,
        },
    };
}

#[cfg(feature = "user")]
mod user {
    use super::KernelConfig;
    unsafe impl aya::Pod for KernelConfig {}
}
