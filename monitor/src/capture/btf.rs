//! Kernel struct offsets from BTF (`/sys/kernel/btf/vmlinux`), for the `CONFIG` global.
//!
//! Rust-compiled eBPF gets no CO-RE relocations, so the fentry/kprobe programs and the exec
//! program read `struct sock`, `task_struct` and `mm_struct` at offsets resolved here, on the
//! running kernel, never at offsets copied from one build.

use std::path::Path;

use btf_rs::{Backend, Btf, Struct, Type};
use monitor_common::{
    DnsOffsets, DnsRecvOffsets, FileOffsets, LifeOffsets, OFFSET_ABSENT, SockOffsets, TaskOffsets,
};

/// Where the running kernel publishes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// A field that could not be resolved, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct OffsetError {
    what: String,
    reason: String,
}

impl OffsetError {
    fn new(what: impl Into<String>, reason: impl Into<String>) -> Self {
        OffsetError {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// The running kernel's type information.
pub struct KernelBtf {
    btf: Btf,
}

impl KernelBtf {
    /// Maps the file rather than parsing every type into the heap: a handful of structs is
    /// looked up, once, at start-up, and the parsed form (tens of MiB for vmlinux) would be the
    /// daemon's peak RSS. Where the kernel refuses to mmap /sys/kernel/btf/vmlinux (older
    /// kernels, e.g. Debian's 6.1 in `cargo xtask vm`), the file is parsed instead.
    pub fn load(path: &Path) -> Result<KernelBtf, OffsetError> {
        let btf = Btf::from_file_with_backend(path, Backend::Mmap)
            .or_else(|_| Btf::from_file(path))
            .map_err(|e| OffsetError::new(path.display().to_string(), e.to_string()))?;
        Ok(KernelBtf { btf })
    }

    /// `struct sock.sk_protocol`, which the raw tracepoint checks. A bitfield before Linux
    /// 5.6: then this fails and the classic tracepoint is used.
    pub fn sock_protocol_offset(&self) -> Result<u32, OffsetError> {
        self.field("sock", &["sk_protocol"], 2)
    }

    /// Offsets the socket hooks (fentry/kprobe on `tcp_connect`, `udp*_sendmsg`) read.
    pub fn sock_offsets(&self) -> Result<SockOffsets, OffsetError> {
        let sk = |field: &str, size: usize| self.field("sock", &["__sk_common", field], size);
        Ok(SockOffsets {
            skc_family: sk("skc_family", 2)?,
            skc_daddr: sk("skc_daddr", 4)?,
            skc_rcv_saddr: sk("skc_rcv_saddr", 4)?,
            skc_dport: sk("skc_dport", 2)?,
            skc_num: sk("skc_num", 2)?,
            skc_v6_daddr: sk("skc_v6_daddr", 16)?,
            skc_v6_rcv_saddr: sk("skc_v6_rcv_saddr", 16)?,
            msg_name: self.field("msghdr", &["msg_name"], 8)?,
            msg_namelen: self.field("msghdr", &["msg_namelen"], 4)?,
            sin_family: self.field("sockaddr_in", &["sin_family"], 2)?,
            sin_port: self.field("sockaddr_in", &["sin_port"], 2)?,
            sin_addr: self.field("sockaddr_in", &["sin_addr"], 4)?,
            sin6_port: self.field("sockaddr_in6", &["sin6_port"], 2)?,
            sin6_addr: self.field("sockaddr_in6", &["sin6_addr"], 16)?,
            // Resolved on its own (`sock_protocol_offset`): only the raw tracepoint needs it,
            // and older kernels cannot give it.
            sk_protocol: OFFSET_ABSENT,
            skc_state: sk("skc_state", 1)?,
            skc_cookie: sk("skc_cookie", 8)?,
            _pad0: 0,
        })
    }

    /// Offsets the process programs read (and the connect hooks, for the start time).
    pub fn task_offsets(&self) -> Result<TaskOffsets, OffsetError> {
        let task = |field: &str, size: usize| self.field("task_struct", &[field], size);
        // `start_boottime` since Linux 5.5; `real_start_time` (the same clock) before.
        let start_boottime =
            task("start_boottime", 8).or_else(|e| task("real_start_time", 8).map_err(|_| e))?;
        Ok(TaskOffsets {
            tgid: task("tgid", 4)?,
            real_parent: task("real_parent", 8)?,
            group_leader: task("group_leader", 8)?,
            mm: task("mm", 8)?,
            start_boottime,
            mm_arg_start: self.field("mm_struct", &["arg_start"], 8)?,
            mm_arg_end: self.field("mm_struct", &["arg_end"], 8)?,
            pid: task("pid", 4)?,
        })
    }

    /// Offsets the exec program walks `mm->exe_file` to its path with (`d_path`'s walk).
    pub fn file_offsets(&self) -> Result<FileOffsets, OffsetError> {
        let dentry = |path: &[&str], size: usize| self.field("dentry", path, size);
        let (i_ctime_sec, i_ctime_nsec) = self.inode_ctime();
        Ok(FileOffsets {
            mm_exe_file: self.field("mm_struct", &["exe_file"], 8)?,
            f_path_mnt: self.field("file", &["f_path", "mnt"], 8)?,
            f_path_dentry: self.field("file", &["f_path", "dentry"], 8)?,
            f_inode: self.field("file", &["f_inode"], 8)?,
            d_parent: dentry(&["d_parent"], 8)?,
            d_name_len: dentry(&["d_name", "len"], 4)?,
            d_name_name: dentry(&["d_name", "name"], 8)?,
            d_hash_pprev: dentry(&["d_hash", "pprev"], 8)?,
            mount_mnt: self.member_offset("mount", &["mnt"])?,
            mount_parent: self.field("mount", &["mnt_parent"], 8)?,
            mount_mountpoint: self.field("mount", &["mnt_mountpoint"], 8)?,
            vfsmount_root: self.field("vfsmount", &["mnt_root"], 8)?,
            i_ino: self.field("inode", &["i_ino"], 8)?,
            i_sb: self.field("inode", &["i_sb"], 8)?,
            s_dev: self.field("super_block", &["s_dev"], 4)?,
            i_size: self.field("inode", &["i_size"], 8).unwrap_or(OFFSET_ABSENT),
            i_ctime_sec,
            i_ctime_nsec,
        })
    }

    /// The inode change time: `i_ctime_sec` and `i_ctime_nsec` (u32) since Linux 6.11,
    /// `__i_ctime` (6.6) or `i_ctime` (a `timespec64`) before; the nanoseconds are read as
    /// a u32, the low half of `tv_nsec` on a little-endian kernel. `OFFSET_ABSENT` for both
    /// when none of these is there.
    fn inode_ctime(&self) -> (u32, u32) {
        let split = self
            .field("inode", &["i_ctime_sec"], 8)
            .and_then(|s| Ok((s, self.field("inode", &["i_ctime_nsec"], 4)?)));
        let timespec = |name: &str| {
            Ok::<_, OffsetError>((
                self.field("inode", &[name, "tv_sec"], 8)?,
                self.field("inode", &[name, "tv_nsec"], 8)?,
            ))
        };
        split
            .or_else(|_| timespec("__i_ctime"))
            .or_else(|_| timespec("i_ctime"))
            .unwrap_or((OFFSET_ABSENT, OFFSET_ABSENT))
    }

    /// The offsets the DNS answer program reads (`DnsOffsets`), `valid` set.
    pub fn dns_offsets(&self) -> Result<DnsOffsets, OffsetError> {
        let rcvq_head = self.member_offset("sock", &["sk_receive_queue"])?;
        let skb = |field: &str, size: usize| self.field("sk_buff", &[field], size);
        Ok(DnsOffsets {
            valid: 1,
            skc_cookie: self.field("sock", &["__sk_common", "skc_cookie"], 8)?,
            rcvq_tail: rcvq_head + self.field("sk_buff_head", &["prev"], 8)?,
            skb_head: skb("head", 8)?,
            skb_data: skb("data", 8)?,
            skb_len: skb("len", 4)?,
            skb_data_len: skb("data_len", 4)?,
            skb_transport_header: skb("transport_header", 2)?,
            skb_network_header: skb("network_header", 2)?,
            rcvq_head,
            // Set by the loader when the receive tracepoint exists (x86_64).
            tcp_on_recv: 0,
            // x86_64's names; elsewhere TCP answers stay on `sk_data_ready`.
            regs_orig_ax: self
                .field("pt_regs", &["orig_ax"], 8)
                .unwrap_or(OFFSET_ABSENT),
            regs_si: self.field("pt_regs", &["si"], 8).unwrap_or(OFFSET_ABSENT),
            ports_word: u32::from(self.ports_word()),
            // Set by the loader from the ring buffer's size.
            shed_bytes: 0,
            _pad0: 0,
            // Resolved on its own (`dns_recv_offsets`): only kernels before 6.3 need them.
            recv: DnsOffsets::UNSET_RECV,
        })
    }

    /// What the `sock_recvmsg` entry programs read (`DnsRecvOffsets`), `valid` set. The
    /// iterator's layout changed in 5.14 (`type` became the byte `iter_type`), 6.0 (`ubuf`)
    /// and 6.4 (`iov` became `__iov`); `enum iter_type`'s values with it.
    pub fn dns_recv_offsets(&self) -> Result<DnsRecvOffsets, OffsetError> {
        let iter = |names: &[&str], size: usize| {
            let mut last = None;
            for name in names {
                match self.field("iov_iter", &[name], size) {
                    Ok(offset) => return Ok(offset),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| OffsetError::new("struct iov_iter", "no field named")))
        };
        let iter_type = iter(&["iter_type"], 1).or_else(|_| iter(&["type"], 4))?;
        let ubuf = iter(&["ubuf"], 8).ok();
        let type_ubuf = self.enum_value("iter_type", "ITER_UBUF")?;
        // Without `ITER_UBUF` the type never matches; the offset stays 0 all the same, since
        // the 5.10 verifier rejects even dead arithmetic of a BTF pointer with `u32::MAX`.
        let (iter_ubuf, type_ubuf) = match (ubuf, type_ubuf) {
            (Some(offset), Some(value)) => (offset, value),
            _ => (0, OFFSET_ABSENT),
        };
        let type_iovec = self
            .enum_value("iter_type", "ITER_IOVEC")?
            .ok_or_else(|| OffsetError::new("enum iter_type", "no ITER_IOVEC"))?;
        Ok(DnsRecvOffsets {
            valid: 1,
            socket_sk: self.field("socket", &["sk"], 8)?,
            msg_iter: self.member_offset("msghdr", &["msg_iter"])?,
            iter_type,
            iter_offset: iter(&["iov_offset"], 8)?,
            iter_iov: iter(&["__iov", "iov"], 8)?,
            iter_ubuf,
            type_iovec,
            type_ubuf,
            iter_count: iter(&["count"], 8)?,
        })
    }

    /// The value of `enum name`'s member `member` (`None` when the enum lacks it); it must
    /// fit the byte the programs compare it with.
    fn enum_value(&self, name: &str, member: &str) -> Result<Option<u32>, OffsetError> {
        let what = format!("enum {name}");
        let types = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|e| OffsetError::new(&what, e.to_string()))?;
        let Some(e) = types.into_iter().find_map(|t| match t {
            Type::Enum(e) => Some(e),
            _ => None,
        }) else {
            return Err(OffsetError::new(&what, "not in the kernel's BTF"));
        };
        for m in &e.members {
            let n = self
                .btf
                .resolve_name(m)
                .map_err(|err| OffsetError::new(&what, err.to_string()))?;
            if n == member {
                return match u8::try_from(m.val()) {
                    Ok(v) => Ok(Some(u32::from(v))),
                    Err(_) => Err(OffsetError::new(
                        format!("{what}.{member}"),
                        format!("value {} does not fit a byte", m.val()),
                    )),
                };
            }
        }
        Ok(None)
    }

    /// The offsets the lifecycle program reads (`LifeOffsets`), `valid` set. `tcp_sock`
    /// starts with its `struct sock`, so its fields' offsets are from the socket's address.
    /// The network namespace's inode number is optional (`OFFSET_ABSENT`).
    pub fn life_offsets(&self) -> Result<LifeOffsets, OffsetError> {
        let tcp = |field: &str, size: usize| self.field("tcp_sock", &[field], size);
        let net_inum = self
            .field("net", &["ns", "inum"], 4)
            .unwrap_or(OFFSET_ABSENT);
        let skc_net = self
            .field("sock", &["__sk_common", "skc_net", "net"], 8)
            .unwrap_or(0);
        Ok(LifeOffsets {
            valid: 1,
            sk_err: self.field("sock", &["sk_err"], 4)?,
            bytes_acked: tcp("bytes_acked", 8)?,
            bytes_received: tcp("bytes_received", 8)?,
            segs_out: tcp("segs_out", 4)?,
            segs_in: tcp("segs_in", 4)?,
            skc_net,
            net_inum: if skc_net == 0 {
                OFFSET_ABSENT
            } else {
                net_inum
            },
            sk_err_soft: self.field("sock", &["sk_err_soft"], 4)?,
            // Set by the loader where UDP flows want it (`udp_recvmsg_args`).
            udp_recvmsg_args: 0,
        })
    }

    /// How many parameters `udp_recvmsg` and `udpv6_recvmsg` take, when both have one of the
    /// shapes the flow programs know: `(sk, msg, len, noblock, flags, addr_len)` before
    /// Linux 5.19, `(sk, msg, len, flags, addr_len)` since, `(sk, msg, len, flags)` on
    /// recent kernels (this host's 6.18). The UDP flow programs on these functions find
    /// `flags` and the result by it (`LifeOffsets::udp_recvmsg_args`).
    pub fn udp_recvmsg_args(&self) -> Result<u32, OffsetError> {
        const SHAPES: [&[&str]; 3] = [
            &["sk", "msg", "len", "flags"],
            &["sk", "msg", "len", "flags", "addr_len"],
            &["sk", "msg", "len", "noblock", "flags", "addr_len"],
        ];
        let mut found: Option<usize> = None;
        for func in ["udp_recvmsg", "udpv6_recvmsg"] {
            let names = self.parameter_names(func)?;
            if !SHAPES.iter().any(|shape| names == *shape) {
                return Err(OffsetError::new(
                    func,
                    format!(
                        "parameters ({}) are none of the known lists (sk, msg, len, [noblock,] \
                         flags[, addr_len])",
                        names.join(", ")
                    ),
                ));
            }
            if found.is_some_and(|earlier| earlier != names.len()) {
                return Err(OffsetError::new(
                    func,
                    "takes another number of parameters than udp_recvmsg",
                ));
            }
            found = Some(names.len());
        }
        Ok(found.map_or(0, |n| n as u32))
    }

    /// The parameter names of a kernel function, in order.
    fn parameter_names(&self, func: &str) -> Result<Vec<String>, OffsetError> {
        let err = |reason: String| OffsetError::new(func, reason);
        let found = self
            .btf
            .resolve_types_by_name(func)
            .map_err(|e| err(e.to_string()))?
            .into_iter()
            .find_map(|t| match t {
                Type::Func(f) => Some(f),
                _ => None,
            })
            .ok_or_else(|| err("no such function in BTF".to_string()))?;
        let Type::FuncProto(proto) = self
            .btf
            .resolve_chained_type(&found)
            .map_err(|e| err(e.to_string()))?
        else {
            return Err(err("not a function prototype".to_string()));
        };
        proto
            .parameters
            .iter()
            .map(|p| self.btf.resolve_name(p).map_err(|e| err(e.to_string())))
            .collect()
    }

    /// Whether `skc_dport` (2 bytes), `skc_num` (2), `skc_family` (2) and `skc_state` (1)
    /// are consecutive in `struct sock_common`.
    fn ports_word(&self) -> bool {
        let sk = |field: &str, size: usize| self.field("sock", &["__sk_common", field], size);
        match (
            sk("skc_dport", 2),
            sk("skc_num", 2),
            sk("skc_family", 2),
            sk("skc_state", 1),
        ) {
            (Ok(d), Ok(n), Ok(f), Ok(s)) => n == d + 2 && f == d + 4 && s == d + 6,
            _ => false,
        }
    }

    /// Byte offset of a member of any width (an embedded struct).
    pub fn member_offset(&self, root: &str, path: &[&str]) -> Result<u32, OffsetError> {
        self.locate(root, path).map(|(offset, _)| offset)
    }

    /// Byte offset of `root.path[0].path[1]...`, looking through anonymous structs and unions,
    /// checking that the field is `size` bytes wide and not a bitfield.
    pub fn field(&self, root: &str, path: &[&str], size: usize) -> Result<u32, OffsetError> {
        let what = format!("struct {root}.{}", path.join("."));
        let (offset, field_type) = self.locate(root, path)?;
        let actual = self
            .size_of(&field_type)
            .map_err(|r| OffsetError::new(&what, r))?;
        if actual != size {
            return Err(OffsetError::new(
                &what,
                format!("is {actual} bytes wide, the programs read {size}"),
            ));
        }
        Ok(offset)
    }

    /// Byte offset and type of `root.path[0].path[1]...`.
    fn locate(&self, root: &str, path: &[&str]) -> Result<(u32, Type), OffsetError> {
        let what = format!("struct {root}.{}", path.join("."));
        let mut current = self
            .named_struct(root)
            .map_err(|r| OffsetError::new(&what, r))?;
        let mut bits = 0u32;
        let mut field_type = None;
        for (i, name) in path.iter().enumerate() {
            let (offset, ty) = self
                .find_member(&current, name)
                .map_err(|r| OffsetError::new(&what, r))?
                .ok_or_else(|| OffsetError::new(&what, format!("no member `{name}`")))?;
            bits += offset;
            let ty = self.strip(ty).map_err(|r| OffsetError::new(&what, r))?;
            if i + 1 < path.len() {
                current = match ty {
                    Type::Struct(s) | Type::Union(s) => s,
                    other => {
                        return Err(OffsetError::new(
                            &what,
                            format!("`{name}` is a {}, not a struct", other.name()),
                        ));
                    }
                };
            } else {
                field_type = Some(ty);
            }
        }
        if !bits.is_multiple_of(8) {
            return Err(OffsetError::new(
                &what,
                format!("bit offset {bits} is not byte aligned"),
            ));
        }
        let field_type = field_type.ok_or_else(|| OffsetError::new(&what, "empty path"))?;
        Ok((bits / 8, field_type))
    }

    fn named_struct(&self, name: &str) -> Result<Struct, String> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|e| e.to_string())?;
        types
            .into_iter()
            .find_map(|t| match t {
                Type::Struct(s) => Some(s),
                _ => None,
            })
            .ok_or_else(|| format!("no struct `{name}` in the kernel's BTF"))
    }

    /// A member's bit offset and type, searching anonymous members recursively.
    fn find_member(&self, st: &Struct, name: &str) -> Result<Option<(u32, Type)>, String> {
        for member in &st.members {
            let member_name = self.btf.resolve_name(member).map_err(|e| e.to_string())?;
            if member_name == name {
                if member.bitfield_size().is_some_and(|b| b != 0) {
                    return Err(format!("`{name}` is a bitfield"));
                }
                let ty = self
                    .btf
                    .resolve_chained_type(member)
                    .map_err(|e| e.to_string())?;
                return Ok(Some((member.bit_offset(), ty)));
            }
            if member_name.is_empty() {
                let ty = self
                    .btf
                    .resolve_chained_type(member)
                    .map_err(|e| e.to_string())?;
                if let Type::Struct(inner) | Type::Union(inner) = self.strip(ty)?
                    && let Some((offset, ty)) = self.find_member(&inner, name)?
                {
                    return Ok(Some((member.bit_offset() + offset, ty)));
                }
            }
        }
        Ok(None)
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn strip(&self, mut ty: Type) -> Result<Type, String> {
        for _ in 0..32 {
            ty = match ty {
                Type::Typedef(t) => self.btf.resolve_chained_type(&t),
                Type::Const(t) | Type::Volatile(t) | Type::Restrict(t) => {
                    self.btf.resolve_chained_type(&t)
                }
                Type::TypeTag(t) => self.btf.resolve_chained_type(&t),
                other => return Ok(other),
            }
            .map_err(|e| e.to_string())?;
        }
        Err("type chain too long".to_string())
    }

    fn size_of(&self, ty: &Type) -> Result<usize, String> {
        Ok(match ty {
            Type::Int(i) => i.size(),
            Type::Ptr(_) => std::mem::size_of::<u64>(),
            Type::Struct(s) | Type::Union(s) => s.size(),
            Type::Enum(e) => e.size(),
            Type::Enum64(e) => e.size(),
            Type::Array(a) => {
                let elem = self.strip(
                    self.btf
                        .resolve_chained_type(a)
                        .map_err(|e| e.to_string())?,
                )?;
                a.len() * self.size_of(&elem)?
            }
            other => return Err(format!("cannot size a {}", other.name())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel() -> KernelBtf {
        KernelBtf::load(Path::new(VMLINUX_BTF))
            .unwrap_or_else(|e| panic!("this test reads the running kernel's BTF: {e}"))
    }

    #[test]
    fn resolves_every_sock_and_task_offset() {
        let btf = kernel();
        let sock = btf.sock_offsets().expect("sock offsets");
        // The same layout facts hold on every kernel: the address pair and port pair open
        // sock_common, IPv4 destination first; sockaddr_in is UAPI.
        assert_eq!(sock.skc_daddr, 0);
        assert_eq!(sock.skc_rcv_saddr, 4);
        assert_eq!(sock.skc_num, sock.skc_dport + 2);
        assert_eq!((sock.sin_family, sock.sin_port, sock.sin_addr), (0, 2, 4));
        assert_eq!((sock.sin6_port, sock.sin6_addr), (2, 8));
        assert_eq!(sock.msg_name, 0);
        let task = btf.task_offsets().expect("task offsets");
        assert!(task.tgid > 0 && task.real_parent > 0 && task.mm > 0);
        assert!(task.mm_arg_end == task.mm_arg_start + 8, "{task:?}");
        assert!(task.pid > 0 && task.pid != task.tgid, "{task:?}");
        let file = btf.file_offsets().expect("file offsets");
        // qstr: the length follows the 32-bit hash, the name pointer the pair.
        assert_eq!(file.d_name_name, file.d_name_len + 4);
        assert_eq!(file.f_path_dentry, file.f_path_mnt + 8);
        assert!(file.mount_mnt > 0 && file.vfsmount_root == 0, "{file:?}");
        // Every kernel since 5.x has the file version fields in one of their spellings.
        assert!(file.i_size > 0 && file.i_size != OFFSET_ABSENT, "{file:?}");
        assert!(
            file.i_ctime_sec > 0 && file.i_ctime_sec != OFFSET_ABSENT,
            "{file:?}"
        );
        assert!(file.i_ctime_nsec > file.i_ctime_sec, "{file:?}");
        // sk_protocol is in struct sock proper, after the embedded sock_common.
        let protocol = btf.sock_protocol_offset().expect("sk_protocol");
        assert!(protocol > sock.skc_v6_rcv_saddr, "{protocol}");
    }

    /// The `sock_recvmsg` programs' offsets on this kernel (6.4+: `__iov`, `ITER_UBUF`); the
    /// 5.10 and 6.1 layouts are exercised by `cargo xtask vm`.
    #[test]
    fn resolves_the_receive_iterator() {
        let recv = kernel_btf_recv();
        assert_eq!(recv.valid, 1);
        // struct iov_iter opens with its type byte; the user buffer (ITER_UBUF) and the
        // iovec array (ITER_IOVEC) share one union slot.
        assert_eq!(recv.iter_type, 0);
        assert_eq!(recv.iter_ubuf, recv.iter_iov, "{recv:?}");
        assert!(recv.iter_offset > 0 && recv.iter_count > 0, "{recv:?}");
        assert_ne!(recv.type_ubuf, OFFSET_ABSENT, "{recv:?}");
        assert_ne!(recv.type_iovec, recv.type_ubuf, "{recv:?}");
        assert!(recv.msg_iter > 0 && recv.socket_sk > 0, "{recv:?}");
    }

    fn kernel_btf_recv() -> DnsRecvOffsets {
        kernel().dns_recv_offsets().expect("receive offsets")
    }

    /// This kernel (6.18) has the 4-parameter receive functions; the 5- and 6-parameter
    /// ones (Debian 12 and 13, Debian 11) are exercised by `cargo xtask vm`.
    #[test]
    fn reads_the_udp_receive_functions_parameters() {
        let btf = kernel();
        assert_eq!(btf.udp_recvmsg_args().expect("udp_recvmsg"), 4);
        let names = btf.parameter_names("udp_sendmsg").expect("udp_sendmsg");
        assert_eq!(names, ["sk", "msg", "len"]);
        let err = btf
            .parameter_names("no_such_function_anywhere")
            .unwrap_err();
        assert!(
            err.to_string().contains("no_such_function_anywhere"),
            "{err}"
        );
    }

    #[test]
    fn reports_missing_members_and_wrong_widths() {
        let btf = kernel();
        let err = btf
            .field("sock", &["__sk_common", "no_such_field"], 2)
            .unwrap_err();
        assert!(
            err.to_string().contains("no member `no_such_field`"),
            "{err}"
        );
        let err = btf.field("task_struct", &["tgid"], 8).unwrap_err();
        assert!(err.to_string().contains("is 4 bytes wide"), "{err}");
        let err = btf.field("no_such_struct_anywhere", &["x"], 1).unwrap_err();
        assert!(err.to_string().contains("no struct"), "{err}");
    }
}
