//! Checked decoding of ring-buffer records into `RawEvent`s.
//!
//! The kernel is trusted to write the layouts in `monitor_common`, but a reader never reads
//! past a record: lengths are checked before every read, reads are unaligned-safe, and
//! unknown kinds are reported, never transmuted. A connect record to the unspecified address
//! (`0.0.0.0`, `::`) is refused whatever its transport: that is never a remote peer (the
//! kernel programs do not write such records; this is the safety net).

use monitor_common::{
    AF_INET, AF_INET6, ARGS_LEN, ConnectEvent, DNS_PAYLOAD_LEN, DnsEvent, EXE_LEN, EXE_PATH_LEN,
    ExecEvent, ExitEvent, ForkEvent, LifeEvent, RecordHeader, kind,
};

use super::RawEvent;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RingRecordError {
    #[error("record of {len} bytes is shorter than its {need}-byte header")]
    NoHeader { len: usize, need: usize },
    #[error("record kind {kind} is {len} bytes, shorter than the {need} bytes expected")]
    Short { kind: u32, len: usize, need: usize },
    #[error("unknown record kind {kind} ({len} bytes)")]
    UnknownKind { kind: u32, len: usize },
    #[error(
        "connect record of tgid {tgid} to the unspecified address, port {port} (protocol \
         {protocol}): never a remote peer, dropped"
    )]
    UnspecifiedDestination { tgid: u32, port: u16, protocol: u8 },
    #[error("record of tgid {tgid} claims {field} of {claimed} bytes (at most {max})")]
    BadLength {
        tgid: u32,
        field: &'static str,
        claimed: u32,
        max: usize,
    },
}

/// Decodes one record.
pub fn decode(buf: &[u8]) -> Result<RawEvent, RingRecordError> {
    let header: RecordHeader = read(buf).map_err(|_| RingRecordError::NoHeader {
        len: buf.len(),
        need: size_of::<RecordHeader>(),
    })?;
    let short = |need| RingRecordError::Short {
        kind: header.kind,
        len: buf.len(),
        need,
    };
    match header.kind {
        kind::CONNECT => {
            let ev = read::<ConnectEvent>(buf).map_err(short)?;
            if unspecified_destination(&ev) {
                return Err(RingRecordError::UnspecifiedDestination {
                    tgid: ev.tgid,
                    port: ev.dport,
                    protocol: ev.protocol,
                });
            }
            Ok(RawEvent::Connect(ev))
        }
        kind::EXEC => {
            let ev = Box::new(read::<ExecEvent>(buf).map_err(short)?);
            check_len(ev.tgid, "filename_len", ev.filename_len, EXE_LEN)?;
            check_len(ev.tgid, "args_len", ev.args_len, ARGS_LEN)?;
            check_len(ev.tgid, "exe_path_len", ev.exe_path_len, EXE_PATH_LEN)?;
            Ok(RawEvent::Exec(ev))
        }
        kind::EXIT => read::<ExitEvent>(buf).map(RawEvent::Exit).map_err(short),
        kind::FORK => read::<ForkEvent>(buf).map(RawEvent::Fork).map_err(short),
        kind::DNS => {
            let ev = Box::new(read::<DnsEvent>(buf).map_err(short)?);
            check_len(ev.tgid, "payload_len", ev.payload_len, DNS_PAYLOAD_LEN)?;
            Ok(RawEvent::Dns(ev))
        }
        kind::LIFE => read::<LifeEvent>(buf)
            .map(|ev| RawEvent::Life(Box::new(ev)))
            .map_err(short),
        other => Err(RingRecordError::UnknownKind {
            kind: other,
            len: buf.len(),
        }),
    }
}

/// The destination is `0.0.0.0`, `::` or `::ffff:0.0.0.0`. Other families are left to
/// enrichment, which reports them as malformed.
fn unspecified_destination(ev: &ConnectEvent) -> bool {
    let d = &ev.daddr;
    match ev.family {
        AF_INET => d[..4] == [0; 4],
        AF_INET6 => {
            d[..10] == [0; 10]
                && (d[10..12] == [0; 2] || d[10..12] == [0xff; 2])
                && d[12..] == [0; 4]
        }
        _ => false,
    }
}

fn check_len(
    tgid: u32,
    field: &'static str,
    claimed: u32,
    max: usize,
) -> Result<(), RingRecordError> {
    if claimed as usize > max {
        return Err(RingRecordError::BadLength {
            tgid,
            field,
            claimed,
            max,
        });
    }
    Ok(())
}

/// Copies a `T` out of the front of `buf`; `Err(size_of::<T>())` when `buf` is too short.
fn read<T: aya::Pod>(buf: &[u8]) -> Result<T, usize> {
    if buf.len() < size_of::<T>() {
        return Err(size_of::<T>());
    }
    // SAFETY: the length is checked above; `T: Pod` is valid for any bit pattern; the ring
    // buffer only guarantees 8-byte alignment, so read unaligned.
    Ok(unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<T>()) })
}

#[cfg(test)]
mod tests {
    use monitor_common::{AF_INET, COMM_LEN, IPPROTO_TCP, backend, hook};

    use super::*;

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a plain-old-data value.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    fn connect() -> ConnectEvent {
        ConnectEvent {
            kind: kind::CONNECT,
            hook: hook::TCP_CONNECT,
            ktime_ns: 5,
            tgid: 42,
            tid: 43,
            uid: 1000,
            gid: 1000,
            cgroup_id: 7,
            start_time_ns: 3,
            suppressed: 0,
            family: AF_INET,
            protocol: IPPROTO_TCP,
            _pad0: 0,
            sport: 40000,
            dport: 8088,
            backend: backend::TRACEPOINT,
            saddr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            daddr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            comm: *b"curl\0\0\0\0\0\0\0\0\0\0\0\0",
            conn_id: 9,
        }
    }

    #[test]
    fn decodes_a_connect_record_at_any_alignment() {
        let mut buf = vec![0u8];
        buf.extend(bytes_of(&connect()));
        let Ok(RawEvent::Connect(ev)) = decode(&buf[1..]) else {
            panic!("not a connect event");
        };
        assert_eq!((ev.tgid, ev.dport, ev.family), (42, 8088, AF_INET));
        assert_eq!(&ev.comm[..4], b"curl");
        assert_eq!(ev.comm.len(), COMM_LEN);
    }

    #[test]
    fn short_records_and_unknown_kinds_are_errors() {
        let full = bytes_of(&connect());
        assert_eq!(
            decode(&full[..100]).unwrap_err(),
            RingRecordError::Short {
                kind: kind::CONNECT,
                len: 100,
                need: 120
            }
        );
        assert!(matches!(
            decode(&full[..3]),
            Err(RingRecordError::NoHeader { len: 3, .. })
        ));
        let mut other = full.clone();
        other[..4].copy_from_slice(&99u32.to_ne_bytes());
        assert_eq!(
            decode(&other).unwrap_err(),
            RingRecordError::UnknownKind { kind: 99, len: 120 }
        );
    }

    #[test]
    fn connect_records_to_the_unspecified_address_are_refused_for_any_transport() {
        use monitor_common::{AF_INET6, IPPROTO_UDP};
        let mapped_any: std::net::Ipv6Addr = "::ffff:0.0.0.0".parse().unwrap();
        for (family, daddr, protocol) in [
            (AF_INET, [0; 16], IPPROTO_TCP),
            (AF_INET, [0; 16], IPPROTO_UDP),
            (AF_INET6, [0; 16], IPPROTO_UDP),
            (AF_INET6, [0; 16], IPPROTO_TCP),
            (AF_INET6, mapped_any.octets(), IPPROTO_UDP),
        ] {
            let mut ev = connect();
            (ev.family, ev.daddr, ev.protocol, ev.dport) = (family, daddr, protocol, 9090);
            assert_eq!(
                decode(&bytes_of(&ev)).unwrap_err(),
                RingRecordError::UnspecifiedDestination {
                    tgid: 42,
                    port: 9090,
                    protocol
                },
                "family {family}, {daddr:?}"
            );
        }
        // Bytes past an IPv4 address do not count; `::1` and `::ffff:127.0.0.1` are peers.
        let mut ev = connect();
        ev.daddr = [127, 0, 0, 1, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9];
        assert!(decode(&bytes_of(&ev)).is_ok());
        for peer in ["::1", "::ffff:127.0.0.1"] {
            let ip: std::net::Ipv6Addr = peer.parse().unwrap();
            (ev.family, ev.daddr) = (AF_INET6, ip.octets());
            assert!(decode(&bytes_of(&ev)).is_ok(), "{peer}");
        }
    }

    #[test]
    fn exec_lengths_are_checked() {
        // SAFETY: all-zero is a valid ExecEvent (integers and byte arrays only).
        let mut ev: ExecEvent = unsafe { std::mem::zeroed() };
        ev.kind = kind::EXEC;
        ev.tgid = 9;
        ev.filename_len = 9;
        ev.filename[..9].copy_from_slice(b"/bin/true");
        let Ok(RawEvent::Exec(decoded)) = decode(&bytes_of(&ev)) else {
            panic!("not an exec event");
        };
        assert_eq!(
            &decoded.filename[..decoded.filename_len as usize],
            b"/bin/true"
        );
        ev.args_len = ARGS_LEN as u32 + 1;
        assert!(matches!(
            decode(&bytes_of(&ev)),
            Err(RingRecordError::BadLength {
                field: "args_len",
                ..
            })
        ));
    }

    #[test]
    fn decodes_exit_records() {
        let ev = ExitEvent {
            kind: kind::EXIT,
            tgid: 77,
            ktime_ns: 1,
            start_time_ns: 2,
        };
        let Ok(RawEvent::Exit(decoded)) = decode(&bytes_of(&ev)) else {
            panic!("not an exit event");
        };
        assert_eq!(decoded.tgid, 77);
    }
}
