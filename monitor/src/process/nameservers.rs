//! The nameservers the host is configured to use, from resolv.conf, re-read when the file
//! changes: a connection to port 53 of one of them is a program resolving a name for
//! itself (`monitor.dns_resolver`), which T1043 tells apart from DNS used as a channel.
//!
//! Read like /etc/passwd in `users`: on the event path, so no NSS and no network, and the
//! file is checked for changes at most once per `recheck` interval. Only the host's file is
//! read: a container with its own resolv.conf is judged by the host's.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::record::normalize_ip;

/// What identifies one version of the file: (inode, size, mtime ns).
type FileStamp = (u64, u64, i128);

/// Most `nameserver` lines kept; resolvers use the first three (glibc's and musl's MAXNS),
/// the rest are kept for tools that read more.
const MAX_NAMESERVERS: usize = 16;

/// Addresses of the `nameserver` lines of a resolv.conf. A link-local IPv6 address may
/// carry a zone (`fe80::1%eth0`), which is dropped; malformed lines are skipped, as the
/// resolver skips them.
pub fn parse_resolv_conf(contents: &[u8]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in contents.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let mut words = line.split_ascii_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = words.next() else {
            continue;
        };
        let addr = addr.split('%').next().unwrap_or(addr);
        if let Ok(ip) = addr.parse::<IpAddr>()
            && !out.contains(&normalize_ip(ip))
            && out.len() < MAX_NAMESERVERS
        {
            out.push(normalize_ip(ip));
        }
    }
    out
}

/// The configured nameservers, cached over one resolv.conf.
#[derive(Debug)]
pub struct Nameservers {
    path: PathBuf,
    recheck: Duration,
    addrs: Vec<IpAddr>,
    stamp: Option<FileStamp>,
    last_check: Option<Instant>,
}

impl Nameservers {
    pub fn new(path: impl Into<PathBuf>, recheck: Duration) -> Self {
        Nameservers {
            path: path.into(),
            recheck,
            addrs: Vec::new(),
            stamp: None,
            last_check: None,
        }
    }

    /// Whether `ip:port` is the DNS port of a configured nameserver.
    pub fn is_resolver(&mut self, ip: IpAddr, port: u16) -> bool {
        if port != 53 {
            return false;
        }
        if self.last_check.is_none_or(|t| t.elapsed() >= self.recheck) {
            self.refresh();
        }
        self.addrs.contains(&normalize_ip(ip))
    }

    /// The addresses as last read.
    pub fn addresses(&self) -> &[IpAddr] {
        &self.addrs
    }

    fn refresh(&mut self) {
        self.last_check = Some(Instant::now());
        let Ok(meta) = std::fs::metadata(&self.path) else {
            // No file: the resolver then asks the local host (127.0.0.1 and ::1).
            self.stamp = None;
            self.addrs = vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ];
            return;
        };
        let stamp = (
            meta.ino(),
            meta.size(),
            i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        );
        if self.stamp == Some(stamp) {
            return;
        }
        if let Ok(contents) = std::fs::read(&self.path) {
            self.addrs = parse_resolv_conf(&contents);
            self.stamp = Some(stamp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_lines_only_zones_dropped_mapped_unmapped() {
        let text = b"# written by NetworkManager\nsearch example.org\n\
            nameserver 192.0.2.53\n  nameserver   2001:db8::53  # trailing\n\
            nameserver fe80::1%eth0\nnameserver not-an-address\nnameserver\n\
            options edns0\n;nameserver 203.0.113.1\nnameserver ::ffff:198.51.100.53\n\
            nameserver 192.0.2.53\n";
        let got = parse_resolv_conf(text);
        let want: Vec<IpAddr> = ["192.0.2.53", "2001:db8::53", "fe80::1", "198.51.100.53"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(got, want);
        // Bytes that are not UTF-8 skip their line only.
        assert_eq!(
            parse_resolv_conf(b"nameserver \xff\nnameserver 127.0.0.53\n"),
            vec!["127.0.0.53".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn port_53_of_a_configured_server_and_the_file_followed_when_it_changes() {
        let dir = std::env::temp_dir().join(format!("monitor-ns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("resolv.conf");
        std::fs::write(&path, "nameserver 127.0.0.53\n").unwrap();
        let mut ns = Nameservers::new(&path, Duration::ZERO);
        let stub: IpAddr = "127.0.0.53".parse().unwrap();
        let other: IpAddr = "203.0.113.53".parse().unwrap();
        assert!(ns.is_resolver(stub, 53));
        assert!(!ns.is_resolver(stub, 443));
        assert!(!ns.is_resolver(other, 53));
        std::fs::write(&path, "nameserver 203.0.113.53\nnameserver 2001:db8::35\n").unwrap();
        assert!(ns.is_resolver(other, 53));
        assert!(!ns.is_resolver(stub, 53));
        assert_eq!(ns.addresses().len(), 2);
        // No file: the resolver's own default, the local host.
        std::fs::remove_file(&path).unwrap();
        assert!(ns.is_resolver("127.0.0.1".parse().unwrap(), 53));
        assert!(!ns.is_resolver(other, 53));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
