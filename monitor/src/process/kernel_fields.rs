//! Checked decoding of the kernel's fixed-size records into addresses, ports and text.
//!
//! Every length and discriminant the kernel writes is treated as untrusted: lengths are
//! clamped to the array they index, unknown families and protocols are errors (never
//! transmuted), and bytes become text only through `record::text_from_bytes`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use monitor_common::{
    AF_INET, AF_INET6, ConnectEvent, EXE_PATH_LEN, IPPROTO_TCP, IPPROTO_UDP, backend, exe_flag,
    hook,
};
use thiserror::Error;

use crate::record::{Endpoint, Transport, UNSPECIFIED_V4, normalize_ip, text_from_bytes};

/// A connect event whose discriminants user space does not know.
///
/// This means the kernel programs and user space were built from different versions of
/// `monitor-common`, or the kernel wrote garbage. `ProcessTable::enrich` still produces a
/// record (marked partial, counted in `ProcessStats::malformed`); callers that would rather
/// drop such events call `decode_connect` first and count the error as a malformed event.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum ConnectFieldError {
    #[error(
        "connect event has unknown address family {0} (expected AF_INET=2 or AF_INET6=10); \
         rebuild the monitor so kernel programs and user space share one monitor-common"
    )]
    UnknownFamily(u16),
    #[error(
        "connect event has unknown IP protocol {0} (expected TCP=6 or UDP=17); \
         rebuild the monitor so kernel programs and user space share one monitor-common"
    )]
    UnknownProtocol(u8),
}

/// The network half of a connect event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectAddrs {
    /// `None` when the hook did not know the source (all-zero address).
    pub source: Option<Endpoint>,
    pub destination: Endpoint,
    pub transport: Transport,
}

/// Decodes addresses, ports and transport; fails on an unknown family or protocol.
pub fn decode_connect(ev: &ConnectEvent) -> Result<ConnectAddrs, ConnectFieldError> {
    let dst =
        ip_from_bytes(ev.family, &ev.daddr).ok_or(ConnectFieldError::UnknownFamily(ev.family))?;
    let transport =
        transport_of(ev.protocol).ok_or(ConnectFieldError::UnknownProtocol(ev.protocol))?;
    Ok(ConnectAddrs {
        source: source_of(ev),
        destination: Endpoint {
            ip: dst,
            port: ev.dport,
        },
        transport,
    })
}

/// Like `decode_connect`, but never fails: an unknown family gives the unspecified IPv4
/// destination, an unknown protocol falls back to the hook's transport (TCP when the hook
/// is unknown too). Use only for a record that is marked partial.
pub fn decode_connect_lossy(ev: &ConnectEvent) -> ConnectAddrs {
    let transport = transport_of(ev.protocol).unwrap_or(match ev.hook {
        hook::UDP_SEND_V4 | hook::UDP_SEND_V6 => Transport::Udp,
        _ => Transport::Tcp,
    });
    ConnectAddrs {
        source: source_of(ev),
        destination: Endpoint {
            ip: ip_from_bytes(ev.family, &ev.daddr).unwrap_or(UNSPECIFIED_V4),
            port: ev.dport,
        },
        transport,
    }
}

fn transport_of(protocol: u8) -> Option<Transport> {
    match protocol {
        IPPROTO_TCP => Some(Transport::Tcp),
        IPPROTO_UDP => Some(Transport::Udp),
        _ => None,
    }
}

/// IPv4 uses the first 4 bytes; IPv4-mapped IPv6 is written as IPv4.
fn ip_from_bytes(family: u16, bytes: &[u8; 16]) -> Option<IpAddr> {
    match family {
        AF_INET => {
            let [a, b, c, d, ..] = *bytes;
            Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
        }
        AF_INET6 => Some(normalize_ip(IpAddr::V6(Ipv6Addr::from(*bytes)))),
        _ => None,
    }
}

fn source_of(ev: &ConnectEvent) -> Option<Endpoint> {
    let used = match ev.family {
        AF_INET => &ev.saddr[..4],
        AF_INET6 => &ev.saddr[..],
        _ => return None,
    };
    if used.iter().all(|&b| b == 0) {
        return None;
    }
    Some(Endpoint {
        ip: ip_from_bytes(ev.family, &ev.saddr)?,
        port: ev.sport,
    })
}

/// `monitor.probe` for a `backend::*` id; `None` for an id this build does not know.
pub fn probe_name(backend_id: u32) -> Option<&'static str> {
    backend::name(backend_id)
}

/// A fixed-size kernel string (`comm`, a path) up to its first NUL, or `None` when empty.
pub fn c_text(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    if end == 0 {
        None
    } else {
        Some(text_from_bytes(&bytes[..end]))
    }
}

/// `bytes[..len]` with `len` clamped to the array, for kernel-written lengths.
pub fn used(bytes: &[u8], len: u32) -> &[u8] {
    let len = usize::try_from(len).unwrap_or(usize::MAX).min(bytes.len());
    &bytes[..len]
}

/// Splits a NUL-separated argv (as in the exec event and /proc/PID/cmdline) into text.
///
/// One trailing NUL ends the last element; empty elements in the middle are real empty
/// arguments and are kept. An empty buffer gives no arguments.
pub fn split_argv(bytes: &[u8]) -> Vec<String> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let body = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    body.split(|&b| b == 0).map(text_from_bytes).collect()
}

/// The executable the kernel resolved at exec (`mm->exe_file`), as `/proc/PID/exe` would name
/// it then, and whether the path is incomplete. `None` when the kernel did not resolve it.
///
/// The path sits at the end of `path` (`len` bytes, clamped). A deleted file and a pseudo
/// file (memfd) get ` (deleted)` as `d_path` appends it. A walk that stopped before the root
/// gives the components it got behind `...`, so that it can never pass for a whole path:
/// `.../bin/firefox`, never `/bin/firefox`.
pub fn kernel_exe_path(path: &[u8; EXE_PATH_LEN], len: u32, flags: u32) -> Option<(String, bool)> {
    if flags & exe_flag::RESOLVED == 0 {
        return None;
    }
    let len = usize::try_from(len).unwrap_or(usize::MAX).min(EXE_PATH_LEN);
    let bytes = &path[EXE_PATH_LEN - len..];
    let truncated = flags & exe_flag::TRUNCATED != 0;
    let mut text = String::with_capacity(len + 16);
    if truncated {
        text.push_str("...");
    }
    text.push_str(&text_from_bytes(bytes));
    if text.is_empty() {
        text.push('/');
    }
    if flags & (exe_flag::DELETED | exe_flag::PSEUDO) != 0 {
        text.push_str(" (deleted)");
    }
    Some((text, truncated))
}

/// The last path component of an executable path, without a ` (deleted)` suffix that
/// /proc/PID/exe adds for a replaced binary.
pub fn exe_basename(exe: &str) -> &str {
    let base = exe.rsplit('/').next().unwrap_or(exe);
    base.strip_suffix(" (deleted)").unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(family: u16, protocol: u8, daddr: [u8; 16], dport: u16) -> ConnectEvent {
        ConnectEvent {
            kind: monitor_common::kind::CONNECT,
            hook: hook::TCP_CONNECT,
            ktime_ns: 1,
            tgid: 1,
            tid: 1,
            uid: 0,
            gid: 0,
            cgroup_id: 0,
            start_time_ns: 0,
            suppressed: 0,
            family,
            protocol,
            _pad0: 0,
            sport: 0,
            dport,
            backend: backend::TRACEPOINT,
            saddr: [0; 16],
            daddr,
            comm: [0; 16],
            conn_id: 0,
        }
    }

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut b = [0; 16];
        b[..4].copy_from_slice(&a);
        b
    }

    #[test]
    fn ipv4_uses_first_four_bytes_and_zero_source_is_unknown() {
        let mut ev = connect(AF_INET, IPPROTO_TCP, v4([203, 0, 113, 7]), 8088);
        ev.daddr[4..].fill(0xee); // bytes past the IPv4 address are ignored
        let a = decode_connect(&ev).unwrap();
        assert_eq!(a.destination.ip.to_string(), "203.0.113.7");
        assert_eq!(a.destination.port, 8088);
        assert_eq!(a.transport, Transport::Tcp);
        assert_eq!(a.source, None);

        ev.saddr = v4([192, 0, 2, 1]);
        ev.sport = 40000;
        let a = decode_connect(&ev).unwrap();
        assert_eq!(a.source.unwrap().ip.to_string(), "192.0.2.1");
        assert_eq!(a.source.unwrap().port, 40000);
    }

    #[test]
    fn ipv6_and_mapped_ipv6() {
        let ip: Ipv6Addr = "2001:db8::5".parse().unwrap();
        let ev = connect(AF_INET6, IPPROTO_UDP, ip.octets(), 53);
        let a = decode_connect(&ev).unwrap();
        assert_eq!(a.destination.ip, IpAddr::V6(ip));
        assert_eq!(a.transport, Transport::Udp);

        let mapped: Ipv6Addr = "::ffff:198.51.100.3".parse().unwrap();
        let a = decode_connect(&connect(AF_INET6, IPPROTO_TCP, mapped.octets(), 80)).unwrap();
        assert_eq!(a.destination.ip.to_string(), "198.51.100.3");
    }

    #[test]
    fn unknown_family_and_protocol_are_errors_and_lossy_never_fails() {
        let ev = connect(99, IPPROTO_TCP, [1; 16], 1);
        assert_eq!(
            decode_connect(&ev),
            Err(ConnectFieldError::UnknownFamily(99))
        );
        assert_eq!(decode_connect_lossy(&ev).destination.ip, UNSPECIFIED_V4);
        assert!(
            ConnectFieldError::UnknownFamily(99)
                .to_string()
                .contains("99")
        );

        let mut ev = connect(AF_INET, 250, v4([192, 0, 2, 9]), 1);
        ev.hook = hook::UDP_SEND_V4;
        assert_eq!(
            decode_connect(&ev),
            Err(ConnectFieldError::UnknownProtocol(250))
        );
        let lossy = decode_connect_lossy(&ev);
        assert_eq!(lossy.transport, Transport::Udp);
        assert_eq!(lossy.destination.ip.to_string(), "192.0.2.9");
    }

    fn path_at_end(p: &[u8]) -> [u8; EXE_PATH_LEN] {
        let mut buf = [0xaa; EXE_PATH_LEN]; // stale bytes before the path
        buf[EXE_PATH_LEN - p.len()..].copy_from_slice(p);
        buf
    }

    #[test]
    fn kernel_exe_paths_as_proc_pid_exe_names_them() {
        use exe_flag::*;
        let buf = path_at_end(b"/usr/bin/bash");
        assert_eq!(kernel_exe_path(&buf, 13, 0), None, "not resolved");
        assert_eq!(
            kernel_exe_path(&buf, 13, RESOLVED),
            Some(("/usr/bin/bash".to_string(), false))
        );
        assert_eq!(
            kernel_exe_path(&buf, 13, RESOLVED | DELETED),
            Some(("/usr/bin/bash (deleted)".to_string(), false))
        );
        // A walk cut short: the tail it got, marked so it cannot pass for a whole path.
        assert_eq!(
            kernel_exe_path(&buf, 9, RESOLVED | TRUNCATED),
            Some((".../bin/bash".to_string(), true))
        );
        assert_eq!(
            kernel_exe_path(&buf, 0, RESOLVED | TRUNCATED),
            Some(("...".to_string(), true))
        );
        let memfd = path_at_end(b"/memfd:payload");
        assert_eq!(
            kernel_exe_path(&memfd, 14, RESOLVED | PSEUDO),
            Some(("/memfd:payload (deleted)".to_string(), false))
        );
        // A length past the array is clamped; bytes are escaped, never trusted as UTF-8.
        let (all, _) = kernel_exe_path(&buf, 9999, RESOLVED).unwrap();
        assert_eq!(all.len(), (EXE_PATH_LEN - 13) * 4 + 13);
        let odd = path_at_end(b"/tmp/\xff\n");
        assert_eq!(
            kernel_exe_path(&odd, 7, RESOLVED).unwrap().0,
            "/tmp/\\xff\n"
        );
        assert_eq!(exe_basename("/memfd:payload (deleted)"), "memfd:payload");
    }

    #[test]
    fn argv_splitting_keeps_empty_args_and_escapes_bytes() {
        assert_eq!(split_argv(b"curl\0-s\0\0x\0"), ["curl", "-s", "", "x"]);
        assert_eq!(split_argv(b"cut-off"), ["cut-off"]);
        assert_eq!(split_argv(b"a\xff\nb\0"), ["a\\xff\nb"]);
        assert!(split_argv(b"").is_empty());
        assert_eq!(used(&[1, 2, 3], 99), &[1, 2, 3]);
        assert_eq!(used(&[1, 2, 3], 2), &[1, 2]);
        assert_eq!(c_text(b"curl\0\0garbage"), Some("curl".to_string()));
        assert_eq!(c_text(&[0; 16]), None);
        assert_eq!(exe_basename("/usr/bin/python3"), "python3");
        assert_eq!(exe_basename("/tmp/x (deleted)"), "x");
        assert_eq!(exe_basename("curl"), "curl");
        assert_eq!(probe_name(backend::CGROUP), Some("cgroup"));
        assert_eq!(probe_name(backend::RAW_TRACEPOINT), Some("raw_tracepoint"));
        assert_eq!(probe_name(77), None);
    }
}
