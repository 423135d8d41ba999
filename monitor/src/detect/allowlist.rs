//! The beacon detector's allowlist: entries from the config file (`[[beacon.allow]]`) and
//! the built-in list shipped as `rules/beacon_allowlist.toml`, and how a record matches one.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use crate::record::{ConnectionRecord, Transport, normalize_ip};

/// One allowlist entry: traffic matching every field given is ignored by the detector.
///
/// ```toml
/// [[beacon.allow]]
/// executable = "/usr/sbin/chronyd"   # exact path, or a prefix ending in '*'
/// port = 123
/// ```
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowEntry {
    /// `process.executable`, exact, or a prefix when it ends in `*`. The executable path,
    /// unlike the process name, cannot be set by the process itself.
    pub executable: Option<String>,
    /// An IP address or a CIDR block.
    pub destination: Option<AllowedNet>,
    pub port: Option<u16>,
    pub transport: Option<AllowTransport>,
    /// Why the entry is there (documentation only; the built-in entries all give one).
    pub reason: Option<String>,
}

impl AllowEntry {
    pub(crate) fn is_empty(&self) -> bool {
        self.executable.is_none()
            && self.destination.is_none()
            && self.port.is_none()
            && self.transport.is_none()
    }

    pub(crate) fn matches(&self, rec: &ConnectionRecord) -> bool {
        if self.port.is_some_and(|p| p != rec.destination.port) {
            return false;
        }
        if self
            .transport
            .is_some_and(|t| t.transport() != rec.transport)
        {
            return false;
        }
        if self
            .destination
            .is_some_and(|n| !n.0.contains(&rec.destination.ip))
        {
            return false;
        }
        match &self.executable {
            None => true,
            Some(pattern) => rec
                .process
                .executable
                .as_deref()
                .is_some_and(|exe| executable_matches(pattern, exe)),
        }
    }
}

fn executable_matches(pattern: &str, exe: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => exe.starts_with(prefix),
        None => exe == pattern,
    }
}

/// `tcp` or `udp` in an allowlist entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllowTransport {
    Tcp,
    Udp,
}

impl AllowTransport {
    fn transport(self) -> Transport {
        match self {
            AllowTransport::Tcp => Transport::Tcp,
            AllowTransport::Udp => Transport::Udp,
        }
    }
}

/// An allowlisted destination: an address (`192.0.2.7`) or a block (`192.0.2.0/24`).
/// IPv4-mapped IPv6 forms are written as IPv4, like the records' addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowedNet(pub IpNet);

impl FromStr for AllowedNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let net = if s.contains('/') {
            IpNet::from_str(s)
                .map_err(|_| format!("invalid destination {s:?}: expected an IP address or a CIDR block such as 192.0.2.0/24"))?
                .trunc()
        } else {
            let ip = IpAddr::from_str(s).map_err(|_| {
                format!("invalid destination {s:?}: expected an IP address or a CIDR block such as 192.0.2.0/24")
            })?;
            IpNet::from(normalize_ip(ip))
        };
        Ok(AllowedNet(unmap_net(net)))
    }
}

impl<'de> Deserialize<'de> for AllowedNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `::ffff:192.0.2.0/120` -> `192.0.2.0/24`.
fn unmap_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && let Ok(n) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(n);
    }
    net
}

/// The built-in allowlist (`rules/beacon_allowlist.toml`): services whose periodic traffic
/// is their job, each keyed on its executable's full path and a destination port, with a
/// reason. Shipped as a file so operators read it where they read the rule exclusions.
pub const BUILTIN_ALLOWLIST: &str = include_str!("../../../rules/beacon_allowlist.toml");

/// The entries `builtin_allow` adds, parsed from `BUILTIN_ALLOWLIST` once per process.
pub fn builtin_allowlist() -> Vec<AllowEntry> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        allow: Vec<AllowEntry>,
    }
    static PARSED: std::sync::OnceLock<Vec<AllowEntry>> = std::sync::OnceLock::new();
    PARSED
        .get_or_init(|| {
            // A test parses it strictly and checks every entry, so a build that ships a
            // broken file fails there.
            toml::from_str::<File>(BUILTIN_ALLOWLIST)
                .map(|f| f.allow)
                .unwrap_or_default()
        })
        .clone()
}

/// A set of ports as a bitmap: O(1) membership.
#[derive(Debug)]
pub(crate) struct PortSet(Box<[u64; 1024]>);

impl PortSet {
    pub(crate) fn from(ports: &[u16]) -> PortSet {
        let mut bits = Box::new([0u64; 1024]);
        for &p in ports {
            bits[usize::from(p / 64)] |= 1 << (p % 64);
        }
        PortSet(bits)
    }

    pub(crate) fn contains(&self, p: u16) -> bool {
        self.0[usize::from(p / 64)] & (1 << (p % 64)) != 0
    }
}

/// The entries in force, indexed for the per-record check: entries naming an exact
/// executable by that path (one hash lookup; most of them, and every built-in one), the
/// rest (prefixes, address- or port-only entries) tried in turn. A port no entry names
/// is rejected by a bitmap first.
#[derive(Debug, Default)]
pub(crate) struct Allowlist {
    by_executable: std::collections::HashMap<Box<str>, Vec<AllowEntry>, foldhash::fast::FixedState>,
    others: Vec<AllowEntry>,
    /// Ports named by every entry, when all entries name one.
    ports: Option<PortSet>,
}

impl Allowlist {
    pub(crate) fn new(entries: Vec<AllowEntry>) -> Allowlist {
        let ports = entries
            .iter()
            .map(|e| e.port)
            .collect::<Option<Vec<u16>>>()
            .map(|ports| PortSet::from(&ports));
        let mut list = Allowlist {
            ports,
            ..Allowlist::default()
        };
        for e in entries {
            match e.executable.as_deref() {
                Some(exe) if !exe.ends_with('*') => list
                    .by_executable
                    .entry(Box::from(exe))
                    .or_default()
                    .push(e),
                _ => list.others.push(e),
            }
        }
        list
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_executable.is_empty() && self.others.is_empty()
    }

    /// Whether some entry allows `rec`.
    #[inline]
    pub(crate) fn allows(&self, rec: &ConnectionRecord) -> bool {
        let port = rec.destination.port;
        if let Some(ports) = &self.ports
            && !ports.contains(port)
        {
            return false;
        }
        let exact = rec
            .process
            .executable
            .as_deref()
            .and_then(|exe| self.by_executable.get(exe))
            .is_some_and(|es| es.iter().any(|e| e.matches(rec)));
        exact || self.others.iter().any(|e| e.matches(rec))
    }
}
