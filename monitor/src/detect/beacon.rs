//! The streaming beacon detector.
//!
//! Every connection record updates one or two keys:
//! - the **destination key** (process identity, destination IP, destination port,
//!   transport), which catches an implant checking in with one server;
//! - the **port key** (process identity, destination port, transport), which catches C2
//!   that rotates over a small pool of server addresses.
//!
//! A key holds a `Series`: a few timestamps inline (32 bytes) and, from its first recorded
//! interval on, a heap ring of the last `RING` check-in intervals in milliseconds; most keys
//! never get that far. Sends closer together than the coalescing gap are one check-in. On
//! each new check-in, once enough intervals are held and the key is not in its suppression
//! window, the intervals are scored (`periodicity::analyze`, skipped when a cheap bound shows
//! the share bar cannot be met) and a periodic key raises one alert. Only event timestamps are used, so a replay of a capture raises the same
//! alerts as the live run did.
//!
//! Memory is bounded: each key table is an LRU with a configurable cap, and keys with no
//! check-in for longer than `max(max_interval_secs, suppress_secs)` of event time are
//! dropped. A dropped key is indistinguishable from one whose series was restarted by a long
//! gap, so when `advance` is called does not change which alerts are raised.

use std::collections::BTreeMap;
use std::hash::{BuildHasher as _, DefaultHasher, Hash, Hasher};
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;
use lru::LruCache;
use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

use super::periodicity::{self, Periodicity, RING, ScoreParams, ShareBar};
use crate::arc_slots::ArcSlots;
use crate::record::{
    Alert, BeaconStats, ConnectionRecord, Detector, Level, ProcessInfo, RuleMeta, Timestamp,
    Transport, normalize_ip,
};

/// Ports the T1571 seed query treats as standard (`isStandardPort`).
pub const SEED_STANDARD_PORTS: [u16; 9] = [80, 443, 8080, 8443, 53, 25, 3000, 5000, 9000];

/// Ports the T1571 seed query lists as seen in C2 infrastructure (`isKnownC2Port`).
pub const SEED_KNOWN_C2_PORTS: [u16; 19] = [
    444, 587, 1224, 1337, 2083, 2087, 4443, 4444, 4445, 6666, 6667, 6668, 7777, 8008, 8088, 8888,
    9001, 9090, 31337,
];

/// Rule id of alerts from the destination key.
pub const RULE_ID_DESTINATION: &str = "monitor-beacon";
/// Rule id of alerts from the port key (rotating destinations).
pub const RULE_ID_ROTATING: &str = "monitor-beacon-rotating";

/// The beacon detector's settings: the `[beacon]` table of the config file.
///
/// Every default is explained in DETECTION.md; the short reason is on each field.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BeaconConfig {
    /// Run the detector at all. Default true.
    pub enabled: bool,
    /// Check-ins (coalesced connections) before a key is scored; n check-ins give n − 1
    /// intervals. Default 10: the T1571 seed's beacon tests send 10 connections, and the
    /// evaluation shows 9 intervals keep Poisson false positives under 2 %. Range 3..=33.
    pub min_connections: u32,
    /// Sends to a key closer together than this (after the previous send) are one check-in:
    /// a beacon that opens two connections per check-in, retries, DNS retransmits.
    /// Default 1 s.
    pub coalesce_gap_secs: f64,
    /// Shortest beacon period. A send less than this after the key's previous send is not a
    /// check-in: it continues the current one, so a session of bulk or interactive traffic
    /// (a download, a git fetch, browsing: connections a few seconds apart, then silence)
    /// is one stretch however long it lasts. Default 5 s.
    pub min_interval_secs: f64,
    /// Sends (each more than `coalesce_gap_secs` after the one before) a check-in may hold.
    /// A stretch with more is a session, not a check-in: the interval from it to the next
    /// check-in is kept as one no period explains, so sessions count against a key instead
    /// of being forgotten. Default 5: an implant may fetch a task and post its result a few
    /// seconds apart; a download or a page load makes dozens of connections.
    pub max_session_sends: u32,
    /// An interval longer than this ends the key's series (it starts over), and a key with
    /// no check-in for this long is dropped. Default 3600 s: longer periods need hours of
    /// history that a streaming detector with bounded memory does not keep (RITA's batch
    /// analysis covers those).
    pub max_interval_secs: f64,
    /// Half-width of the band around the period within which an interval is on time, as a
    /// fraction of the period. Default 0.35: a band from 0.65 to 1.35 periods spans a factor
    /// of two, which holds Cobalt Strike's 50 % jitter (0.5 to 1 period) and ±33 %
    /// symmetric jitter.
    pub tolerance: f64,
    /// Half-width, per period, of the bands around 1, 2, 3 ... periods when intervals are
    /// read as spanning missed check-ins. Default 0.22: holds ±20 % jitter per period plus
    /// the error of estimating the period from a few intervals; wider bands around every
    /// multiple would explain random traffic too.
    pub fold_tolerance: f64,
    /// Most consecutive missed check-ins one interval may stand for. Default 3; 0 reads
    /// none.
    pub max_missed: u32,
    /// On-time intervals a reading with missed check-ins needs beyond the number it assumes
    /// missed, at the minimum count; one less for every 4 further intervals, down to 0.
    /// Default 2: with 9 intervals, 3 missed need 5 on time. Lower values catch beacons
    /// that miss more at the price of false positives on random traffic (DETECTION.md has
    /// the trade-off).
    pub missed_margin: u32,
    /// Fraction of the intervals the period must explain. Default 0.93: all of them below
    /// 15 intervals, one stray from 15, two from 29. Early strays are where random
    /// traffic most often passes.
    pub min_share: f64,
    /// Largest median absolute deviation of the explained intervals relative to their
    /// median (RITA's dispersion). Default 0.35, which the default `tolerance` already
    /// implies; it caps dispersion when `tolerance` is widened.
    pub max_jitter: f64,
    /// Smallest combined score: the mean of (1 − |Bowley skew|), (1 − MAD/median) and the
    /// explained share. Default 0.5, a floor: with 9 to 32 intervals the quartile skew is
    /// too noisy to separate beacons from random traffic (DETECTION.md has the figures).
    pub min_score: f64,
    /// After an alert, the key raises no other alert for this long (event time). Default
    /// 3600 s: one alert per beacon per hour, and still a fresh alert if it keeps going.
    pub suppress_secs: f64,
    /// Most destination keys held; the least recently used one is dropped at the cap.
    /// Default 100,000: with this table and the port-key table full the detector holds
    /// 15 MiB of heap (measured in tests/beacon_eval.rs).
    pub max_keys: usize,
    /// Also track the (process, port) key for C2 that rotates destination addresses.
    /// Default true.
    pub rotating_ip_key: bool,
    /// Most port keys held. Default 25,000: a process reaches many destinations on few
    /// ports, so port keys are far fewer than destination keys.
    pub max_port_keys: usize,
    /// A process that reached at least this many destinations on a port within the last
    /// one to two hours (`max(max_interval_secs, suppress_secs)` per epoch) is fanning out
    /// (a browser, a package manager, a crawler): among hundreds of random destination
    /// keys some look periodic by luck, so its destination keys need
    /// `fan_out_min_connections` check-ins instead of `min_connections`. Default 8;
    /// needs `rotating_ip_key` (the port key counts the destinations).
    pub fan_out_destinations: u32,
    /// Check-ins a destination key of a fanning-out process needs before it is scored.
    /// Default 20: random traffic almost never stays within one band for 19 intervals,
    /// and a beacon inside a browser is reported after 20 check-ins instead of 10.
    /// Range `min_connections`..=33.
    pub fan_out_min_connections: u32,
    /// Ports where beaconing is tagged T1071 (application layer protocol) rather than T1571
    /// (non-standard port). Default: the T1571 seed's standard list.
    pub standard_ports: Vec<u16>,
    /// Ports seen in C2 infrastructure; a beacon to one is `high` instead of `medium`.
    /// Default: the T1571 seed's known C2 list.
    pub known_c2_ports: Vec<u16>,
    /// Apply the built-in allowlist (`rules/beacon_allowlist.toml`: time, name resolution,
    /// log forwarding, monitoring, mail, update and container services, each on its own
    /// executable and port). Default true.
    pub builtin_allow: bool,
    /// Benign periodic traffic to ignore, in addition to the built-in entries.
    pub allow: Vec<AllowEntry>,
}

impl Default for BeaconConfig {
    fn default() -> Self {
        BeaconConfig {
            enabled: true,
            min_connections: 10,
            coalesce_gap_secs: 1.0,
            min_interval_secs: 5.0,
            max_session_sends: 5,
            max_interval_secs: 3600.0,
            tolerance: 0.35,
            fold_tolerance: 0.22,
            max_missed: 3,
            missed_margin: 2,
            min_share: 0.93,
            max_jitter: 0.35,
            min_score: 0.5,
            suppress_secs: 3600.0,
            max_keys: 100_000,
            rotating_ip_key: true,
            fan_out_destinations: 8,
            fan_out_min_connections: 20,
            max_port_keys: 25_000,
            standard_ports: SEED_STANDARD_PORTS.to_vec(),
            known_c2_ports: SEED_KNOWN_C2_PORTS.to_vec(),
            builtin_allow: true,
            allow: Vec::new(),
        }
    }
}

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
    fn is_empty(&self) -> bool {
        self.executable.is_none()
            && self.destination.is_none()
            && self.port.is_none()
            && self.transport.is_none()
    }

    fn matches(&self, rec: &ConnectionRecord) -> bool {
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

/// A `[beacon]` setting out of range.
#[derive(Debug, Error, PartialEq)]
pub enum BeaconConfigError {
    #[error("beacon.{field} = {value}: {expected}")]
    OutOfRange {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(
        "beacon.allow[{index}] has none of executable, destination, port, transport; \
         it would allow every connection. Give at least one field or remove the entry"
    )]
    EmptyAllowEntry { index: usize },
}

/// Longest `max_interval_secs`: intervals are held as u32 milliseconds.
const MAX_INTERVAL_LIMIT_SECS: f64 = 7.0 * 86_400.0;

impl BeaconConfig {
    /// Checks every setting; the first problem found is returned, naming the field.
    pub fn validate(&self) -> Result<(), BeaconConfigError> {
        fn bad(
            field: &'static str,
            value: impl ToString,
            expected: &'static str,
        ) -> Result<(), BeaconConfigError> {
            Err(BeaconConfigError::OutOfRange {
                field,
                value: value.to_string(),
                expected,
            })
        }
        let c = self;
        if !(3..=RING as u32 + 1).contains(&c.min_connections) {
            return bad("min_connections", c.min_connections, "expected 3 to 33");
        }
        if !(c.coalesce_gap_secs.is_finite() && c.coalesce_gap_secs >= 0.0) {
            return bad(
                "coalesce_gap_secs",
                c.coalesce_gap_secs,
                "expected 0 or more seconds",
            );
        }
        if !(c.min_interval_secs.is_finite() && c.min_interval_secs > c.coalesce_gap_secs) {
            return bad(
                "min_interval_secs",
                c.min_interval_secs,
                "expected more than coalesce_gap_secs",
            );
        }
        if !(c.max_interval_secs.is_finite()
            && c.max_interval_secs > c.min_interval_secs
            && c.max_interval_secs <= MAX_INTERVAL_LIMIT_SECS)
        {
            return bad(
                "max_interval_secs",
                c.max_interval_secs,
                "expected more than min_interval_secs and at most 604800 (7 days)",
            );
        }
        for (field, v) in [
            ("min_share", c.min_share),
            ("max_jitter", c.max_jitter),
            ("min_score", c.min_score),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(field, v, "expected a fraction from 0 to 1");
            }
        }
        if !(c.tolerance > 0.0 && c.tolerance <= 0.5) {
            return bad(
                "tolerance",
                c.tolerance,
                "expected more than 0 and at most 0.5",
            );
        }
        if !(c.fold_tolerance > 0.0 && c.fold_tolerance <= 0.3) {
            return bad(
                "fold_tolerance",
                c.fold_tolerance,
                "expected more than 0 and at most 0.3",
            );
        }
        if c.max_missed > 10 {
            return bad("max_missed", c.max_missed, "expected 0 to 10");
        }
        if f64::from(c.max_missed + 1) * c.max_interval_secs * 1000.0 >= f64::from(NOT_A_CHECKIN_MS)
        {
            return bad(
                "max_missed",
                c.max_missed,
                "expected (max_missed + 1) x max_interval_secs below 49 days",
            );
        }
        if c.missed_margin > RING as u32 {
            return bad("missed_margin", c.missed_margin, "expected 0 to 32");
        }
        if !(c.suppress_secs.is_finite() && c.suppress_secs >= 0.0) {
            return bad(
                "suppress_secs",
                c.suppress_secs,
                "expected 0 or more seconds",
            );
        }
        if !(1..=10_000).contains(&c.max_session_sends) {
            return bad(
                "max_session_sends",
                c.max_session_sends,
                "expected 1 to 10000",
            );
        }
        if !(2..=64).contains(&c.fan_out_destinations) {
            return bad(
                "fan_out_destinations",
                c.fan_out_destinations,
                "expected 2 to 64",
            );
        }
        if !(c.min_connections..=RING as u32 + 1).contains(&c.fan_out_min_connections) {
            return bad(
                "fan_out_min_connections",
                c.fan_out_min_connections,
                "expected min_connections to 33",
            );
        }
        if c.max_keys == 0 {
            return bad("max_keys", c.max_keys, "expected at least 1");
        }
        if c.rotating_ip_key && c.max_port_keys == 0 {
            return bad(
                "max_port_keys",
                c.max_port_keys,
                "expected at least 1 (or rotating_ip_key = false)",
            );
        }
        if let Some(index) = c.allow.iter().position(AllowEntry::is_empty) {
            return Err(BeaconConfigError::EmptyAllowEntry { index });
        }
        Ok(())
    }
}

/// Counters for metrics records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BeaconCounters {
    /// Records seen.
    pub records: u64,
    /// Records skipped by the allowlist.
    pub allowlisted: u64,
    pub alerts: u64,
    /// Keys dropped after no check-in for the idle limit.
    pub evicted_idle: u64,
    /// Keys dropped because a table was at its cap (least recently used first).
    pub evicted_full: u64,
    pub destination_keys: usize,
    pub port_keys: usize,
}

/// `BeaconConfig` in the units the hot path uses.
struct Settings {
    enabled: bool,
    min_intervals: usize,
    fan_out_destinations: u32,
    fan_out_min_intervals: usize,
    coalesce_ns: i64,
    min_interval_ns: i64,
    max_session_sends: u32,
    max_interval_ns: i64,
    suppress_ns: i64,
    idle_ns: i64,
    min_interval_ms: f64,
    max_interval_ms: f64,
    score: ScoreParams,
    min_share: f64,
    /// `min_share` as the fewest explained intervals per count of intervals.
    share_bar: ShareBar,
    max_jitter: f64,
    min_score: f64,
    standard_ports: PortSet,
    known_c2_ports: PortSet,
    allow: Vec<AllowEntry>,
    /// The ports of `allow` when every entry names one: a record to any other port is not
    /// allowlisted, found without trying each entry.
    allow_ports: Option<PortSet>,
}

fn secs_to_ns(s: f64) -> i64 {
    (s * Timestamp::NANOS_PER_SEC as f64).round() as i64
}

impl Settings {
    /// Builds settings from a config, clamping what `validate` would reject.
    fn new(c: &BeaconConfig) -> Settings {
        let finite = |v: f64, default: f64| if v.is_finite() { v } else { default };
        let d = BeaconConfig::default();
        let coalesce = finite(c.coalesce_gap_secs, d.coalesce_gap_secs).max(0.0);
        let min_iv = finite(c.min_interval_secs, d.min_interval_secs).max(coalesce + 0.001);
        let max_iv = finite(c.max_interval_secs, d.max_interval_secs)
            .clamp(min_iv + 0.001, MAX_INTERVAL_LIMIT_SECS);
        let suppress = finite(c.suppress_secs, d.suppress_secs).max(0.0);
        let fraction = |v: f64, default: f64| finite(v, default).clamp(0.0, 1.0);
        let min_intervals = (c.min_connections.clamp(3, RING as u32 + 1) - 1) as usize;
        let mut allow: Vec<AllowEntry> =
            c.allow.iter().filter(|e| !e.is_empty()).cloned().collect();
        if c.builtin_allow {
            allow.extend(builtin_allowlist());
        }
        let allow_ports = allow
            .iter()
            .map(|e| e.port)
            .collect::<Option<Vec<u16>>>()
            .map(|ports| PortSet::from(&ports));
        let min_share = fraction(c.min_share, d.min_share);
        Settings {
            enabled: c.enabled,
            min_intervals,
            fan_out_destinations: c.fan_out_destinations.clamp(2, 64),
            fan_out_min_intervals: (c.fan_out_min_connections.clamp(3, RING as u32 + 1) - 1)
                .max(min_intervals as u32) as usize,
            coalesce_ns: secs_to_ns(coalesce),
            min_interval_ns: secs_to_ns(min_iv),
            max_session_sends: c.max_session_sends.clamp(1, u32::from(u16::MAX) - 1),
            max_interval_ns: secs_to_ns(max_iv),
            suppress_ns: secs_to_ns(suppress),
            // A dropped key must be indistinguishable from a restarted series, including
            // its suppression window.
            idle_ns: secs_to_ns(max_iv.max(suppress)),
            min_interval_ms: min_iv * 1000.0,
            max_interval_ms: max_iv * 1000.0,
            score: ScoreParams {
                tolerance: finite(c.tolerance, d.tolerance).clamp(0.001, 0.5),
                fold_tolerance: finite(c.fold_tolerance, d.fold_tolerance).clamp(0.001, 0.3),
                max_missed: c.max_missed.min(10),
                missed_margin: c.missed_margin.min(RING as u32),
                min_intervals,
            },
            min_share,
            // The bar as `beacon` applies it.
            share_bar: ShareBar::new(min_share - 1e-9),
            max_jitter: fraction(c.max_jitter, d.max_jitter),
            min_score: fraction(c.min_score, d.min_score),
            standard_ports: PortSet::from(&c.standard_ports),
            known_c2_ports: PortSet::from(&c.known_c2_ports),
            allow,
            allow_ports,
        }
    }

    fn allowed(&self, rec: &ConnectionRecord) -> bool {
        if let Some(ports) = &self.allow_ports
            && !ports.contains(rec.destination.port)
        {
            return false;
        }
        self.allow.iter().any(|e| e.matches(rec))
    }

    /// The periodicity of `series` if it is a beacon by the configured bars.
    fn beacon(&self, series: &Series) -> Option<Periodicity> {
        // Skips the full analysis where the share bar cannot be met (most busy keys).
        let p = periodicity::analyze_if_bar(series.intervals(), &self.score, &self.share_bar)?;
        let is_beacon = p.median_ms >= self.min_interval_ms
            && p.median_ms <= self.max_interval_ms
            && p.share >= self.min_share - 1e-9
            && p.jitter() <= self.max_jitter
            && p.score >= self.min_score;
        is_beacon.then_some(p)
    }
}

/// A set of ports as a bitmap: O(1) membership.
struct PortSet(Box<[u64; 1024]>);

impl PortSet {
    fn from(ports: &[u16]) -> PortSet {
        let mut bits = Box::new([0u64; 1024]);
        for &p in ports {
            bits[usize::from(p / 64)] |= 1 << (p % 64);
        }
        PortSet(bits)
    }

    fn contains(&self, p: u16) -> bool {
        self.0[usize::from(p / 64)] & (1 << (p % 64)) != 0
    }
}

/// The interval kept after a session: about 49.7 days, more than `max_missed + 1` periods
/// of the longest allowed period (`validate` checks it; the defaults leave a factor of 300),
/// so no reading explains it and it counts against the key's share.
const NOT_A_CHECKIN_MS: u32 = u32::MAX;

/// What a send did to a key's series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Part of the current check-in (within the coalescing gap, or within the minimum
    /// interval of the previous send: a session).
    Coalesced,
    /// A new check-in after more than `max_interval`: the series starts over.
    Restarted,
    /// A new check-in whose interval was recorded.
    Recorded,
}

/// One key's check-in history: a few times inline, and the ring of intervals on the heap
/// from the first recorded interval on. Most keys never get one (a destination reached
/// once, or only in bursts), and those cost 32 bytes instead of 160.
#[derive(Clone, Debug)]
struct Series {
    /// Start of the current check-in (ns).
    checkin_start: i64,
    /// Latest send seen (ns); the coalescing gap runs from here.
    last_send: i64,
    /// Check-ins since the series (re)started.
    checkins: u32,
    /// Sends in the current check-in, each more than the coalescing gap after the one
    /// before (saturating).
    sends: u16,

    /// Intervals and the last alert, once there is an interval.
    ring: Option<Box<IntervalRing>>,
}

/// A key's recorded intervals. Kept (emptied) when the series restarts, so the last
/// alert's suppression window survives the restart.
#[derive(Clone, Debug)]
struct IntervalRing {
    /// Interval between consecutive check-in starts, milliseconds; a ring, oldest
    /// overwritten. Order does not matter to the statistics.
    intervals: [u32; RING],
    /// Next ring slot to write.
    next: u8,
    /// Filled ring slots.
    len: u8,
    /// Time of the last alert (ns), `i64::MIN` if none.
    last_alert: i64,
}

impl Series {
    fn new(t: i64) -> Series {
        Series {
            checkin_start: t,
            last_send: t,
            checkins: 1,
            sends: 1,
            ring: None,
        }
    }

    fn intervals(&self) -> &[u32] {
        self.ring
            .as_deref()
            .map_or(&[], |r| &r.intervals[..usize::from(r.len)])
    }

    /// Time of the last alert (ns), `i64::MIN` if none.
    fn last_alert(&self) -> i64 {
        self.ring.as_deref().map_or(i64::MIN, |r| r.last_alert)
    }

    /// Records an alert at `t`. Only a key with intervals alerts, so the ring exists.
    fn set_last_alert(&mut self, t: i64) {
        if let Some(r) = self.ring.as_deref_mut() {
            r.last_alert = t;
        }
    }

    #[inline(always)]
    fn observe(&mut self, t: i64, s: &Settings) -> Step {
        // Out-of-order sends (several CPUs feed the ring buffer) land in the current
        // check-in rather than moving time backwards.
        if t <= self.last_send.saturating_add(s.coalesce_ns) {
            self.last_send = self.last_send.max(t);
            return Step::Coalesced;
        }
        // Too soon after the previous send to be the next check-in: the current one goes
        // on (a sleep timer does not wake this often; a session does). Intervals run
        // between check-in starts, so a session's length is part of the next one, and
        // random traffic thinned at the minimum gap does not look periodic.
        if t < self.last_send.saturating_add(s.min_interval_ns) {
            self.last_send = self.last_send.max(t);
            self.sends = self.sends.saturating_add(1);
            return Step::Coalesced;
        }
        let interval = t - self.checkin_start;
        let session = u32::from(self.sends) > s.max_session_sends;
        self.last_send = t;
        self.checkin_start = t;
        self.sends = 1;
        if interval > s.max_interval_ns {
            if let Some(r) = self.ring.as_deref_mut() {
                r.len = 0;
                r.next = 0;
            }
            self.checkins = 1;
            return Step::Restarted;
        }
        self.checkins = self.checkins.saturating_add(1);
        let r = self.ring.get_or_insert_with(|| {
            Box::new(IntervalRing {
                intervals: [0; RING],
                next: 0,
                len: 0,
                last_alert: i64::MIN,
            })
        });
        // max_interval is at most 7 days, so the milliseconds fit a u32 below the mark.
        r.intervals[usize::from(r.next)] = if session {
            NOT_A_CHECKIN_MS
        } else {
            (interval / 1_000_000) as u32
        };
        r.next = ((usize::from(r.next) + 1) % RING) as u8;
        r.len = (usize::from(r.len) + 1).min(RING) as u8;
        Step::Recorded
    }

    /// Within the suppression window of its last alert.
    fn in_window(&self, t: i64, s: &Settings) -> bool {
        let last_alert = self.last_alert();
        last_alert != i64::MIN && t.saturating_sub(last_alert) < s.suppress_ns
    }

    /// Enough intervals to score, and not in a suppression window.
    fn due(&self, t: i64, s: &Settings) -> bool {
        self.intervals().len() >= s.min_intervals && !self.in_window(t, s)
    }
}

/// The port key's series plus which destination each recent check-in went to. Like the
/// intervals, the destination ring is allocated on the second check-in.
#[derive(Clone, Debug)]
struct RotatingSeries {
    series: Series,
    /// Hashes of the destination IPs of the last `RING` check-ins, once there are two.
    destinations: Option<Box<DestinationRing>>,
    /// The destination of the only check-in while `destinations` is `None`.
    first_destination: u32,
    /// Time (ns) a destination key under this port key last alerted, `i64::MIN` if none:
    /// that beacon is reported, so the port key stays quiet for the window.
    destination_alert: i64,
    /// Destinations reached on this port in the current and the previous epoch, one bit
    /// per destination hash (linear counting, so a few collide): the fan-out of `Reach`.
    reach: [u64; 2],
    /// Start of the current epoch (ns).
    reach_epoch: i64,
}

/// How many destinations a process reaches on one port. A browser or a package manager
/// reaching hundreds of addresses gives each destination key a chance to look periodic by
/// luck (the multiple-comparisons problem); an implant talks to one or a few.
impl RotatingSeries {
    /// Notes a send to `dest` at `t`; epochs last `epoch_ns`.
    #[inline(always)]
    fn reach(&mut self, dest: u32, t: i64, epoch_ns: i64) {
        if t.saturating_sub(self.reach_epoch) >= epoch_ns {
            self.reach = [0, self.reach[0]];
            self.reach_epoch = t;
        }
        self.reach[0] |= 1 << (dest % 64);
    }

    /// Distinct destinations (up to collisions) in this epoch and the one before.
    fn fan_out(&self) -> u32 {
        (self.reach[0] | self.reach[1]).count_ones()
    }
}

#[derive(Clone, Debug)]
struct DestinationRing {
    hashes: [u32; RING],
    next: u8,
    len: u8,
}

impl DestinationRing {
    fn push(&mut self, dest: u32) {
        self.hashes[usize::from(self.next)] = dest;
        self.next = ((usize::from(self.next) + 1) % RING) as u8;
        self.len = (usize::from(self.len) + 1).min(RING) as u8;
    }
}

impl RotatingSeries {
    fn new(t: i64, dest: u32) -> Self {
        RotatingSeries {
            series: Series::new(t),
            destinations: None,
            first_destination: dest,
            destination_alert: i64::MIN,
            reach: [1 << (dest % 64), 0],
            reach_epoch: t,
        }
    }

    fn push_destination(&mut self, dest: u32) {
        match self.destinations.as_deref_mut() {
            Some(r) => r.push(dest),
            None => {
                let mut r = Box::new(DestinationRing {
                    hashes: [0; RING],
                    next: 0,
                    len: 0,
                });
                r.push(self.first_destination);
                r.push(dest);
                self.destinations = Some(r);
            }
        }
    }

    /// The series started over: `dest` is its only check-in.
    fn restart_destinations(&mut self, dest: u32) {
        match self.destinations.as_deref_mut() {
            Some(r) => {
                r.len = 0;
                r.next = 0;
                r.push(dest);
            }
            None => self.first_destination = dest,
        }
    }

    fn destinations(&self) -> &[u32] {
        match self.destinations.as_deref() {
            Some(r) => &r.hashes[..usize::from(r.len)],
            None => std::slice::from_ref(&self.first_destination),
        }
    }

    /// Distinct destinations among the recent check-ins, and the most check-ins any one
    /// of them received.
    fn destination_spread(&self) -> (usize, usize) {
        let ds = self.destinations();
        let mut distinct = 0;
        let mut top = 0;
        for (i, d) in ds.iter().enumerate() {
            if ds[..i].contains(d) {
                continue;
            }
            distinct += 1;
            top = top.max(ds.iter().filter(|&x| x == d).count());
        }
        (distinct, top)
    }

    /// A rotation, as opposed to one destination (the destination key's case) or a new
    /// destination each time (a crawler, a scanner, a client of many servers): at least two
    /// destinations, each used twice on average, and no single one that carries enough
    /// check-ins to be judged by its own destination key, unless none dominates (over three
    /// quarters).
    fn rotates(&self, min_checkins: usize) -> Option<usize> {
        let (distinct, top) = self.destination_spread();
        let n = self.destinations().len();
        (distinct >= 2 && distinct * 2 <= n && (top < min_checkins || top * 4 <= n * 3))
            .then_some(distinct)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DestinationKey {
    process: u64,
    ip: IpAddr,
    port: u16,
    transport: Transport,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PortKey {
    process: u64,
    port: u16,
    transport: Transport,
}

/// Process identity, port, transport and address family packed into one word without
/// loss (64 + 16 + 1 + 1 bits), for the key hashes.
fn key_word(process: u64, port: u16, transport: Transport, v6: bool) -> u128 {
    let transport: u128 = match transport {
        Transport::Tcp => 0,
        Transport::Udp => 1,
    };
    u128::from(process) | u128::from(port) << 64 | transport << 80 | u128::from(v6) << 81
}

// The tables' hasher is seeded at random (destinations are chosen by whoever connects).
// These feed it whole words, packed without loss so that distinct keys stay distinct
// inputs, instead of field by field (the derived impls hash each enum's discriminant and
// each small field apart): one 128-bit word per port key and IPv4 destination key, two
// per IPv6 destination key.
impl Hash for DestinationKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self.ip {
            IpAddr::V4(a) => state.write_u128(
                key_word(self.process, self.port, self.transport, false)
                    | u128::from(a.to_bits()) << 96,
            ),
            IpAddr::V6(a) => {
                state.write_u128(a.to_bits());
                state.write_u128(key_word(self.process, self.port, self.transport, true));
            }
        }
    }
}

impl Hash for PortKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(key_word(self.process, self.port, self.transport, false));
    }
}

/// The process identity of a key: executable and user, and the container (the same path in
/// two containers is two different programs). Held as a 64-bit hash rather than strings so a
/// key stays small; the alert carries the full process from the triggering record.
/// `DefaultHasher::new()` has fixed keys, so identities are the same in every run.
fn process_identity(p: &ProcessInfo) -> u64 {
    let mut h = DefaultHasher::new();
    match (&p.executable, &p.name) {
        (Some(exe), _) => (0u8, exe).hash(&mut h),
        // Partial enrichment: the name is the best identity left.
        (None, Some(name)) => (1u8, name).hash(&mut h),
        (None, None) => 2u8.hash(&mut h),
    }
    p.user_id.hash(&mut h);
    p.container_id.hash(&mut h);
    h.finish()
}

/// 32 bits of the destination address for the port key's destination ring (fixed seed:
/// the same in every run).
fn destination_hash(ip: IpAddr) -> u32 {
    foldhash::fast::FixedState::with_seed(0x6465_7374).hash_one(ip) as u32
}

/// log2 of the identity cache's sets (two slots each): more than the processes a busy
/// host interleaves.
const IDENTITY_SET_BITS: u32 = 8;

/// `process_identity` per shared `ProcessInfo`: records of one process share one `Arc`
/// (the process table and the replay decoder hand out the same one), so the identity is
/// hashed once per process rather than once per record.
struct IdentityCache {
    slots: ArcSlots<ProcessInfo>,
    ids: Box<[u64]>,
}

impl IdentityCache {
    fn new() -> Self {
        let slots = ArcSlots::new(IDENTITY_SET_BITS);
        let ids = vec![0; slots.len()].into_boxed_slice();
        IdentityCache { slots, ids }
    }

    fn identity(&mut self, p: &Arc<ProcessInfo>) -> u64 {
        let (slot, hit) = self.slots.slot_of(p);
        if !hit {
            self.ids[slot] = process_identity(p);
        }
        self.ids[slot]
    }

    fn clear(&mut self) {
        self.slots.clear();
    }
}

/// Finds periodic check-ins per key in a stream of connection records.
pub struct BeaconDetector {
    s: Settings,
    destinations: LruCache<DestinationKey, Series>,
    ports: Option<LruCache<PortKey, RotatingSeries>>,
    rule_destination: Arc<RuleMeta>,
    rule_rotating: Arc<RuleMeta>,
    identities: IdentityCache,
    counters: BeaconCounters,
    /// Latest event time seen (ns); idle eviction runs when it moves forward.
    latest: i64,
    /// While records come in time order: no key's last send is earlier than this (ns), so
    /// idle eviction has nothing to drop until its cutoff passes it (see `evict_idle`).
    idle_floor: i64,
    /// Every record so far came at or after the one before it. Then each key touched
    /// moves to its table's front with the latest time, so a table's least recently used
    /// key is also the one with the earliest last send, and `idle_floor` holds.
    in_order: bool,
}

impl BeaconDetector {
    /// A detector with `cfg`. Out-of-range settings are clamped into range (with a warning);
    /// call `BeaconConfig::validate` first to reject them instead.
    pub fn new(cfg: BeaconConfig) -> Self {
        if let Err(e) = cfg.validate() {
            tracing::warn!("{e}; using the nearest valid value");
        }
        let s = Settings::new(&cfg);
        let cap = |n: usize| NonZeroUsize::new(n.max(1)).unwrap_or(NonZeroUsize::MIN);
        BeaconDetector {
            // `sparse`: the index grows with use instead of being sized for the cap up front.
            destinations: LruCache::sparse(cap(cfg.max_keys)),
            ports: cfg
                .rotating_ip_key
                .then(|| LruCache::sparse(cap(cfg.max_port_keys))),
            s,
            rule_destination: Arc::new(RuleMeta {
                id: RULE_ID_DESTINATION.into(),
                name: "Periodic beaconing to one destination".into(),
                description: "A process (executable and user) connected to the same \
                    destination address, port and transport at regular intervals, as a \
                    command-and-control implant does when it checks in. Scored from the \
                    check-in intervals: median, MAD relative to the median, quartile skew, \
                    share of check-ins on time."
                    .into(),
                reference: vec![
                    "https://attack.mitre.org/techniques/T1571/".into(),
                    "https://attack.mitre.org/techniques/T1071/".into(),
                    "https://github.com/activecm/rita".into(),
                ],
                ruleset: "detector".into(),
            }),
            rule_rotating: Arc::new(RuleMeta {
                id: RULE_ID_ROTATING.into(),
                name: "Periodic beaconing to one port over rotating destinations".into(),
                description: "A process (executable and user) checked in at regular \
                    intervals on one destination port and transport while rotating over a \
                    small pool of destination addresses, as C2 with several redirectors \
                    does. Each address is used repeatedly; a process reaching a new address \
                    each time is not reported."
                    .into(),
                reference: vec![
                    "https://attack.mitre.org/techniques/T1571/".into(),
                    "https://attack.mitre.org/techniques/T1071/".into(),
                    "https://attack.mitre.org/techniques/T1008/".into(),
                ],
                ruleset: "detector".into(),
            }),
            identities: IdentityCache::new(),
            counters: BeaconCounters::default(),
            latest: i64::MIN,
            idle_floor: i64::MIN,
            in_order: true,
        }
    }

    /// Like `new`, but rejects an invalid config instead of clamping it.
    pub fn try_new(cfg: BeaconConfig) -> Result<Self, BeaconConfigError> {
        cfg.validate()?;
        Ok(BeaconDetector::new(cfg))
    }

    /// Feeds one record; a key that has just become periodic pushes one alert.
    pub fn process(&mut self, rec: &ConnectionRecord, out: &mut Vec<Alert>) {
        if !self.s.enabled {
            return;
        }
        self.counters.records += 1;
        let t = rec.timestamp.0;
        if t < self.latest {
            self.in_order = false;
        }
        // A key added now (to an empty table) has this last send.
        self.idle_floor = self.idle_floor.min(t);
        self.evict_idle(t);
        if self.s.allowed(rec) {
            self.counters.allowlisted += 1;
            return;
        }
        let process = self.identities.identity(&rec.process);
        let dest = rec.destination;
        let key = DestinationKey {
            process,
            ip: dest.ip,
            port: dest.port,
            transport: rec.transport,
        };
        let BeaconDetector {
            s,
            destinations,
            ports,
            rule_destination,
            rule_rotating,
            counters,
            ..
        } = self;
        let mut keys = KeyStep {
            s,
            counters,
            rec,
            t,
            out,
        };
        let Some(ports) = ports.as_mut() else {
            keys.destination(destinations, key, false, false, rule_destination);
            return;
        };
        let port_key = PortKey {
            process,
            port: dest.port,
            transport: rec.transport,
        };
        let dest_hash = destination_hash(dest.ip);
        // One lookup of the port key: `get_mut` moves it to the front of its table before
        // the destination key is handled rather than after, which leaves that table in the
        // same order (nothing else touches it in between).
        match ports.get_mut(&port_key) {
            Some(r) => {
                // One beacon, one alert per window: a rotation the port key has just
                // reported covers the keys of its destinations, and the reverse below.
                let rotation_reported =
                    r.series.in_window(t, s) && r.destinations().contains(&dest_hash);
                r.reach(dest_hash, t, s.idle_ns);
                let fan_out = r.fan_out() >= s.fan_out_destinations;
                let destination_reported = keys.destination(
                    destinations,
                    key,
                    rotation_reported,
                    fan_out,
                    rule_destination,
                );
                keys.rotating(r, dest_hash, destination_reported, rule_rotating);
            }
            None => {
                keys.destination(destinations, key, false, false, rule_destination);
                if ports
                    .push(port_key, RotatingSeries::new(t, dest_hash))
                    .is_some()
                {
                    keys.counters.evicted_full += 1;
                }
            }
        }
    }

    /// Moves event time to `now`, dropping keys idle for longer than the idle limit. Beacon
    /// alerts are raised on check-ins, never held back, so `out` receives nothing.
    pub fn advance(&mut self, now: Timestamp, out: &mut Vec<Alert>) {
        let _ = out;
        self.evict_idle(now.0);
    }

    /// Ends the stream: drops every key. Nothing is pending, so `out` receives nothing.
    pub fn finish(&mut self, out: &mut Vec<Alert>) {
        let _ = out;
        self.destinations.clear();
        if let Some(p) = self.ports.as_mut() {
            p.clear();
        }
        self.identities.clear();
    }

    /// Keys held: destination keys plus port keys.
    pub fn key_count(&self) -> usize {
        self.destinations.len() + self.ports.as_ref().map_or(0, LruCache::len)
    }

    pub fn counters(&self) -> BeaconCounters {
        BeaconCounters {
            destination_keys: self.destinations.len(),
            port_keys: self.ports.as_ref().map_or(0, LruCache::len),
            ..self.counters
        }
    }

    /// Bytes of per-key state held inline for one destination key and one port key (the
    /// values, not counting the LRU's links, key copy and index entry). A key with a
    /// recorded interval also holds the rings of `ring_bytes`.
    pub fn state_bytes() -> (usize, usize) {
        (size_of::<Series>(), size_of::<RotatingSeries>())
    }

    /// Bytes of the heap rings a key allocates from its second check-in on: the interval
    /// ring (destination and port keys) and the destination ring (port keys).
    pub fn ring_bytes() -> (usize, usize) {
        (size_of::<IntervalRing>(), size_of::<DestinationRing>())
    }

    #[inline]
    fn evict_idle(&mut self, now: i64) {
        if now <= self.latest {
            return;
        }
        self.latest = now;
        // In time order nothing is dropped until the cutoff passes the earliest last send:
        // skip the scan (time moves forward on nearly every record, and the scan's peeks
        // cost more than the rest of a record's key upkeep).
        let cutoff = now.saturating_sub(self.s.idle_ns);
        if !self.in_order || cutoff > self.idle_floor {
            self.evict_idle_before(cutoff);
        }
    }

    /// Drops the keys, least recently used first, whose last send is before `cutoff`.
    fn evict_idle_before(&mut self, cutoff: i64) {
        while let Some((_, s)) = self.destinations.peek_lru() {
            if s.last_send >= cutoff {
                break;
            }
            self.destinations.pop_lru();
            self.counters.evicted_idle += 1;
        }
        if let Some(ports) = self.ports.as_mut() {
            while let Some((_, r)) = ports.peek_lru() {
                if r.series.last_send >= cutoff {
                    break;
                }
                ports.pop_lru();
                self.counters.evicted_idle += 1;
            }
        }
        // In time order the least recently used keys have the earliest last sends.
        let oldest = |t: Option<i64>| t.unwrap_or(i64::MAX);
        self.idle_floor =
            oldest(self.destinations.peek_lru().map(|(_, s)| s.last_send)).min(oldest(
                self.ports
                    .as_ref()
                    .and_then(|p| p.peek_lru())
                    .map(|(_, r)| r.series.last_send),
            ));
    }

    /// Idle eviction without the skip: the reference it is tested against.
    #[cfg(test)]
    fn disable_idle_skip(&mut self) {
        self.in_order = false;
    }
}

/// One record's work on its keys: what the key steps share.
struct KeyStep<'a> {
    s: &'a Settings,
    counters: &'a mut BeaconCounters,
    rec: &'a ConnectionRecord,
    t: i64,
    out: &'a mut Vec<Alert>,
}

impl KeyStep<'_> {
    /// Updates the destination key (adding it if new) and alerts if it has become
    /// periodic; a key of a process fanning out on the port needs more check-ins. Returns
    /// the key's last alert if its window is open.
    fn destination(
        &mut self,
        table: &mut LruCache<DestinationKey, Series>,
        key: DestinationKey,
        rotation_reported: bool,
        fan_out: bool,
        rule: &Arc<RuleMeta>,
    ) -> Option<i64> {
        let (s, t) = (self.s, self.t);
        let Some(series) = table.get_mut(&key) else {
            if table.push(key, Series::new(t)).is_some() {
                self.counters.evicted_full += 1;
            }
            return None;
        };
        if series.observe(t, s) == Step::Recorded
            && series.due(t, s)
            && (!fan_out || series.intervals().len() >= s.fan_out_min_intervals)
            && !rotation_reported
            && let Some(p) = s.beacon(series)
        {
            series.set_last_alert(t);
            let labels = BTreeMap::from([("beacon_key".into(), "destination".into())]);
            self.alert(rule.clone(), &p, series.checkins, labels);
            Some(t)
        } else {
            series.in_window(t, s).then_some(series.last_alert())
        }
    }

    /// Updates a held port key and alerts if it has become a periodic rotation.
    fn rotating(
        &mut self,
        r: &mut RotatingSeries,
        dest_hash: u32,
        destination_reported: Option<i64>,
        rule: &Arc<RuleMeta>,
    ) {
        let (s, t) = (self.s, self.t);
        let step = r.series.observe(t, s);
        match step {
            Step::Coalesced => {}
            Step::Restarted => r.restart_destinations(dest_hash),
            Step::Recorded => r.push_destination(dest_hash),
        }
        if let Some(at) = destination_reported {
            r.destination_alert = r.destination_alert.max(at);
        }
        let destination_quiet = r.destination_alert == i64::MIN
            || t.saturating_sub(r.destination_alert) >= s.suppress_ns;
        if step == Step::Recorded
            && r.series.due(t, s)
            && destination_quiet
            && let Some(distinct) = r.rotates(s.min_intervals + 1)
            && let Some(p) = s.beacon(&r.series)
        {
            r.series.set_last_alert(t);
            let labels = BTreeMap::from([
                ("beacon_key".into(), "process_port".into()),
                ("beacon_destinations".into(), distinct.to_string()),
            ]);
            self.alert(rule.clone(), &p, r.series.checkins, labels);
        }
    }

    fn alert(
        &mut self,
        rule: Arc<RuleMeta>,
        p: &Periodicity,
        checkins: u32,
        labels: BTreeMap<String, String>,
    ) {
        let rec = self.rec;
        self.counters.alerts += 1;
        let port = rec.destination.port;
        let technique = if self.s.standard_ports.contains(port) {
            "T1071"
        } else {
            "T1571"
        };
        let level = if self.s.known_c2_ports.contains(port) {
            Level::High
        } else {
            Level::Medium
        };
        let round3 = |v: f64| (v * 1000.0).round() / 1000.0;
        self.out.push(Alert {
            timestamp: rec.timestamp,
            event: rec.clone(),
            rule,
            techniques: Arc::from([technique.to_string()]),
            detector: Detector::Beacon,
            level,
            risk_score: None,
            labels,
            aggregate: None,
            beacon: Some(BeaconStats {
                connections: u64::from(checkins),
                median_interval_s: round3(p.median_ms / 1000.0),
                mean_interval_s: round3(p.mean_ms / 1000.0),
                jitter: round3(p.jitter()),
                score: round3(p.score),
            }),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Endpoint;

    const T0: f64 = 1_780_000_000.0;

    fn process(exe: &str, uid: u32, pid: u32) -> Arc<ProcessInfo> {
        Arc::new(ProcessInfo {
            pid,
            name: exe.rsplit('/').next().map(str::to_string),
            executable: Some(exe.to_string()),
            user_id: Some(uid.into()),
            ..ProcessInfo::default()
        })
    }

    fn rec(
        p: &Arc<ProcessInfo>,
        ip: &str,
        port: u16,
        transport: Transport,
        t: f64,
    ) -> ConnectionRecord {
        ConnectionRecord {
            timestamp: Timestamp::from_secs_f64(T0 + t),
            host_name: "h".into(),
            process: p.clone(),
            source: None,
            destination: Endpoint {
                ip: ip.parse().unwrap(),
                port,
            },
            transport,
            partial: false,
            suppressed: 0,
            probe: None,
            dns_resolver: false,
        }
    }

    /// `n` TCP connections from `p` to ip:port, `period` seconds apart, from `start`.
    fn beacon(
        p: &Arc<ProcessInfo>,
        ip: &str,
        port: u16,
        period: f64,
        n: usize,
    ) -> Vec<ConnectionRecord> {
        (0..n)
            .map(|i| rec(p, ip, port, Transport::Tcp, i as f64 * period))
            .collect()
    }

    fn run(det: &mut BeaconDetector, recs: &[ConnectionRecord]) -> Vec<Alert> {
        let mut out = Vec::new();
        for r in recs {
            det.process(r, &mut out);
        }
        out
    }

    fn detector() -> BeaconDetector {
        BeaconDetector::try_new(BeaconConfig::default()).unwrap()
    }

    /// Skipping idle eviction while records are in time order drops the same keys at the
    /// same records as scanning every time: on streams with idle gaps, beacons, tables at
    /// their caps, and records out of order (which turn the skip off).
    #[test]
    fn idle_skip_evicts_as_the_full_scan_does() {
        for (seed, out_of_order) in [(1u64, false), (2, false), (3, true), (4, true)] {
            let cfg = BeaconConfig {
                max_keys: 300,
                max_port_keys: 40,
                ..BeaconConfig::default()
            };
            let mut fast = BeaconDetector::try_new(cfg.clone()).unwrap();
            let mut full = BeaconDetector::try_new(cfg).unwrap();
            full.disable_idle_skip();
            let procs: Vec<_> = (0..12)
                .map(|i| process(&format!("/usr/bin/p{i}"), 1000, 100 + i))
                .collect();
            let mut x = 0x2545_f491_4f6c_dd1d_u64 ^ seed;
            let mut next = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let implant = process("/tmp/.x", 0, 7);
            let mut next_beacon = 0.0;
            let mut t = 0.0;
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for n in 0..30_000 {
                let r = next();
                t += match r % 100 {
                    0 => 4_000.0,                // longer than the idle limit
                    1..=5 => 600.0,              // some keys go idle
                    _ => (r >> 8) as f64 % 30.0, // busy
                };
                // An implant checking in every 60 s, between the other records.
                while next_beacon <= t {
                    let rec = rec(&implant, "203.0.113.9", 4444, Transport::Tcp, next_beacon);
                    fast.process(&rec, &mut a);
                    full.process(&rec, &mut b);
                    next_beacon += 60.0;
                }
                let at = if out_of_order && r % 7 == 0 {
                    t - ((r >> 20) % 50) as f64
                } else {
                    t
                };
                let p = &procs[(r >> 12) as usize % procs.len()];
                let ip = format!("198.51.100.{}", (r >> 24) % 40);
                let port = [443, 8088, 9001, 53][(r >> 32) as usize % 4];
                let rec = rec(p, &ip, port, Transport::Tcp, at);
                fast.process(&rec, &mut a);
                full.process(&rec, &mut b);
                if n % 97 == 0 {
                    let now = Timestamp::from_secs_f64(T0 + t + 1_000.0);
                    fast.advance(now, &mut a);
                    full.advance(now, &mut b);
                }
                assert_eq!(
                    fast.key_count(),
                    full.key_count(),
                    "seed {seed}, record {n}"
                );
            }
            assert_eq!(a, b, "seed {seed}");
            assert_eq!(fast.counters(), full.counters(), "seed {seed}");
            assert!(
                fast.counters().evicted_idle > 100,
                "seed {seed}: too few evictions"
            );
            assert!(
                !a.is_empty() || out_of_order,
                "seed {seed}: no beacon found"
            );
        }
    }

    #[test]
    fn seed_test_ten_connections_every_60s_to_9001_alert_once() {
        // T1571 seed, test 4: 10 connections to port 9001 at 60 s intervals.
        let p = process("/usr/bin/pwsh", 1000, 4242);
        let recs = beacon(&p, "203.0.113.9", 9001, 60.0, 10);
        let mut det = detector();
        let alerts = run(&mut det, &recs[..9]);
        assert!(
            alerts.is_empty(),
            "9 connections are below the minimum count"
        );
        let alerts = run(&mut det, &recs[9..]);
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!(a.detector, Detector::Beacon);
        assert_eq!(a.rule.id, RULE_ID_DESTINATION);
        assert_eq!(a.rule.ruleset, "detector");
        assert_eq!(a.techniques[..], ["T1571".to_string()]);
        assert_eq!(a.level, Level::High, "9001 is in the seed's known C2 ports");
        assert_eq!(a.event, recs[9]);
        assert_eq!(a.timestamp, recs[9].timestamp);
        assert_eq!(
            a.labels.get("beacon_key").map(String::as_str),
            Some("destination")
        );
        let b = a.beacon.as_ref().unwrap();
        assert_eq!(b.connections, 10);
        assert_eq!(b.median_interval_s, 60.0);
        assert_eq!(b.mean_interval_s, 60.0);
        assert_eq!(b.jitter, 0.0);
        assert_eq!(b.score, 1.0);
        let line = a.to_json_line();
        assert!(line.contains(r#""detector":"beacon""#), "{line}");
        assert!(line.contains(r#""beacon":{"connections":10"#), "{line}");
    }

    #[test]
    fn curl_every_6s_to_8088_alerts_although_each_run_is_a_new_process() {
        // The live 8088 test: a new curl process (new pid) per connection, small start-up
        // delays, one key because the key is executable and user, not pid.
        let mut out = Vec::new();
        let mut det = detector();
        for i in 0..10u32 {
            let p = process("/usr/bin/curl", 0, 5000 + i);
            let t = f64::from(i) * 6.0 + [0.012, 0.031, 0.008][i as usize % 3];
            det.process(&rec(&p, "127.0.0.1", 8088, Transport::Tcp, t), &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].level, Level::High);
        assert_eq!(out[0].event.process.pid, 5009);
        let b = out[0].beacon.as_ref().unwrap();
        assert!((b.median_interval_s - 6.0).abs() < 0.05, "{b:?}");
    }

    #[test]
    fn technique_and_level_follow_the_port() {
        let p = process("/usr/bin/python3", 1000, 1);
        let cases = [
            (443, "T1071", Level::Medium),
            (53, "T1071", Level::Medium),
            (7000, "T1571", Level::Medium),
            (4444, "T1571", Level::High),
        ];
        for (port, technique, level) in cases {
            let alerts = run(&mut detector(), &beacon(&p, "198.51.100.4", port, 30.0, 10));
            assert_eq!(alerts.len(), 1, "port {port}");
            assert_eq!(
                alerts[0].techniques[..],
                [technique.to_string()],
                "port {port}"
            );
            assert_eq!(alerts[0].level, level, "port {port}");
        }
    }

    #[test]
    fn sends_within_the_coalescing_gap_are_one_check_in() {
        let p = process("/opt/agent", 0, 1);
        // Each check-in is three connections within 0.6 s.
        let recs: Vec<_> = (0..10)
            .flat_map(|i| {
                let t = f64::from(i) * 60.0;
                [t, t + 0.3, t + 0.6].map(|t| rec(&p, "192.0.2.1", 8443, Transport::Tcp, t))
            })
            .collect();
        let alerts = run(&mut detector(), &recs);
        assert_eq!(alerts.len(), 1);
        let b = alerts[0].beacon.as_ref().unwrap();
        assert_eq!(b.connections, 10);
        assert_eq!(b.median_interval_s, 60.0);
        assert_eq!(
            alerts[0].event, recs[27],
            "alert on the check-in's first send"
        );
    }

    #[test]
    fn chatter_closer_than_the_gap_never_becomes_check_ins() {
        // A send every 0.9 s for 10 minutes: one long check-in, no intervals.
        let p = process("/usr/bin/ssh", 0, 1);
        let recs: Vec<_> = (0..667)
            .map(|i| rec(&p, "192.0.2.2", 22, Transport::Tcp, f64::from(i) * 0.9))
            .collect();
        assert!(run(&mut detector(), &recs).is_empty());
    }

    #[test]
    fn intervals_below_the_minimum_are_not_beacons() {
        let p = process("/usr/bin/python3", 0, 1);
        for period in [2.0, 4.9] {
            let alerts = run(&mut detector(), &beacon(&p, "192.0.2.3", 8088, period, 40));
            assert!(alerts.is_empty(), "period {period}");
        }
        let alerts = run(&mut detector(), &beacon(&p, "192.0.2.3", 8088, 5.5, 10));
        assert_eq!(alerts.len(), 1, "5.5 s is above the 5 s minimum");
    }

    #[test]
    fn intervals_above_the_maximum_restart_the_series() {
        let p = process("/usr/bin/python3", 0, 1);
        let alerts = run(&mut detector(), &beacon(&p, "192.0.2.3", 8088, 7200.0, 12));
        assert!(alerts.is_empty());
        let alerts = run(&mut detector(), &beacon(&p, "192.0.2.3", 8088, 3000.0, 10));
        assert_eq!(alerts.len(), 1, "a 50 min period is within the 1 h maximum");
    }

    #[test]
    fn allowlist_by_builtin_entry_executable_destination_and_port() {
        let chrony = process("/usr/sbin/chronyd", 108, 1);
        let ntp: Vec<_> = (0..12)
            .map(|i| {
                rec(
                    &chrony,
                    "192.0.2.123",
                    123,
                    Transport::Udp,
                    f64::from(i) * 64.0,
                )
            })
            .collect();
        let mut det = detector();
        assert!(run(&mut det, &ntp).is_empty());
        assert_eq!(det.counters().allowlisted, 12);
        assert_eq!(det.key_count(), 0, "allowlisted traffic holds no keys");
        let no_builtin = BeaconConfig {
            builtin_allow: false,
            ..BeaconConfig::default()
        };
        assert_eq!(run(&mut BeaconDetector::new(no_builtin), &ntp).len(), 1);
        // The built-in entry is for the NTP port only: chronyd elsewhere is still watched.
        let other: Vec<_> = (0..10)
            .map(|i| {
                rec(
                    &chrony,
                    "192.0.2.123",
                    8088,
                    Transport::Tcp,
                    f64::from(i) * 60.0,
                )
            })
            .collect();
        assert_eq!(run(&mut detector(), &other).len(), 1);

        let cfg: BeaconConfig = toml::from_str(
            r#"
            [[allow]]
            executable = "/opt/updater/*"
            [[allow]]
            destination = "198.51.100.0/24"
            [[allow]]
            port = 9443
            transport = "tcp"
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        let updater = process("/opt/updater/bin/check", 0, 1);
        let python = process("/usr/bin/python3", 0, 2);
        let allowed = [
            beacon(&updater, "192.0.2.50", 8088, 60.0, 10),
            beacon(&python, "198.51.100.77", 8088, 60.0, 10),
            beacon(&python, "192.0.2.50", 9443, 60.0, 10),
        ];
        for recs in &allowed {
            assert!(run(&mut BeaconDetector::new(cfg.clone()), recs).is_empty());
        }
        let watched = beacon(&python, "192.0.2.50", 8088, 60.0, 10);
        assert_eq!(run(&mut BeaconDetector::new(cfg), &watched).len(), 1);
    }

    #[test]
    fn builtin_allowlist_entries_name_executable_port_and_reason() {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            allow: Vec<AllowEntry>,
        }
        // Parsed strictly here: `builtin_allowlist` must never fall back to empty.
        let file: File = toml::from_str(BUILTIN_ALLOWLIST).expect("beacon_allowlist.toml");
        assert_eq!(file.allow, builtin_allowlist());
        assert!(file.allow.len() >= 30, "{}", file.allow.len());
        for (i, e) in file.allow.iter().enumerate() {
            let exe = e.executable.as_deref().unwrap_or_default();
            // Full paths only: a prefix or a bare name would let a renamed binary in.
            assert!(
                exe.starts_with('/') && !exe.ends_with('*'),
                "entry {i}: executable {exe:?}"
            );
            assert!(e.port.is_some(), "entry {i} ({exe}) has no port");
            assert!(e.destination.is_none(), "entry {i} ({exe}) pins an address");
            assert!(
                e.reason.as_deref().is_some_and(|r| r.len() > 10),
                "entry {i} ({exe}) gives no reason"
            );
        }
        let cfg = BeaconConfig::default();
        cfg.validate().unwrap();
    }

    #[test]
    fn builtin_allowlist_is_keyed_on_executable_and_port() {
        // Prometheus scraping node exporters every 15 s: its job.
        let prom = process("/usr/bin/prometheus", 108, 1);
        let scrape = beacon(&prom, "192.0.2.31", 9100, 15.0, 20);
        let mut det = detector();
        assert!(run(&mut det, &scrape).is_empty());
        assert_eq!(det.counters().allowlisted, 20);
        // The same binary to a known C2 port, or a copy elsewhere to 9100, is still watched.
        let c2 = beacon(&prom, "203.0.113.9", 8088, 15.0, 10);
        assert_eq!(run(&mut detector(), &c2).len(), 1);
        let copy = process("/tmp/prometheus", 108, 2);
        let renamed = beacon(&copy, "192.0.2.31", 9100, 15.0, 10);
        assert_eq!(run(&mut detector(), &renamed).len(), 1);
        // rsyslog forwarding over UDP 514, postfix retrying on 25: allowlisted.
        let rsyslog = process("/usr/sbin/rsyslogd", 0, 3);
        let fwd: Vec<_> = (0..12)
            .map(|i| {
                rec(
                    &rsyslog,
                    "192.0.2.10",
                    514,
                    Transport::Udp,
                    f64::from(i) * 10.0,
                )
            })
            .collect();
        assert!(run(&mut detector(), &fwd).is_empty());
    }

    #[test]
    fn a_session_is_not_a_check_in_but_a_two_request_check_in_is() {
        let p = process("/usr/bin/python3", 1000, 1);
        // Every 60 s a session of 12 connections 2 s apart (a script that downloads a
        // batch): periodic starts, but each stretch is a session, not a check-in.
        let sessions: Vec<_> = (0..15)
            .flat_map(|k| {
                let p = &p;
                (0..12).map(move |i| {
                    rec(
                        p,
                        "203.0.113.9",
                        8088,
                        Transport::Tcp,
                        f64::from(k) * 60.0 + f64::from(i) * 2.0,
                    )
                })
            })
            .collect();
        assert!(run(&mut detector(), &sessions).is_empty());
        // An implant that fetches a task, then posts the result 2 s later, every 60 s.
        let two: Vec<_> = (0..10)
            .flat_map(|k| {
                let p = &p;
                [0.0, 2.0].map(move |d| {
                    rec(
                        p,
                        "203.0.113.9",
                        8088,
                        Transport::Tcp,
                        f64::from(k) * 60.0 + d,
                    )
                })
            })
            .collect();
        assert_eq!(run(&mut detector(), &two).len(), 1);
    }

    #[test]
    fn dense_random_traffic_thinned_at_the_minimum_gap_is_not_periodic() {
        // Exponential gaps of 2 s mean to one destination for an hour: the gaps longer
        // than 5 s are 5 s plus a short exponential, which looked periodic (6 to 8 s)
        // when shorter gaps were simply dropped.
        let p = process("/usr/lib/firefox-esr/firefox-esr", 1000, 1);
        let mut rng = crate::detect::simulate::Rng::new(42);
        let mut t = 0.0;
        let mut recs = Vec::new();
        while t < 3600.0 {
            recs.push(rec(&p, "203.0.113.7", 443, Transport::Tcp, t));
            t += rng.exponential(2.0);
        }
        assert!(run(&mut detector(), &recs).is_empty());
    }

    #[test]
    fn a_process_fanning_out_on_a_port_needs_more_check_ins() {
        let p = process("/usr/bin/python3", 1000, 1);
        let beacon_at = |k: u32| rec(&p, "203.0.113.9", 443, Transport::Tcp, f64::from(k) * 60.0);
        // Alone: alerted at the 10th check-in.
        let alone: Vec<_> = (0..10).map(beacon_at).collect();
        assert_eq!(run(&mut detector(), &alone).len(), 1);
        // The same process also reaches 12 other addresses on 443 (a pip install): the
        // periodic key needs 20 check-ins.
        let mut mixed: Vec<_> = (0..12)
            .map(|i| {
                rec(
                    &p,
                    &format!("198.51.100.{}", 10 + i),
                    443,
                    Transport::Tcp,
                    1.0 + f64::from(i) * 0.3,
                )
            })
            .collect();
        mixed.extend((0..19).map(beacon_at));
        mixed.sort_by_key(|r| r.timestamp);
        let mut det = detector();
        assert!(run(&mut det, &mixed).is_empty(), "19 check-ins");
        assert_eq!(run(&mut det, &[beacon_at(19)]).len(), 1, "the 20th");
        // Another port of the same process is not fanning out.
        let other: Vec<_> = (0..10)
            .map(|k| {
                rec(
                    &p,
                    "203.0.113.9",
                    8088,
                    Transport::Tcp,
                    2000.0 + f64::from(k) * 60.0,
                )
            })
            .collect();
        assert_eq!(run(&mut det, &other).len(), 1);
    }

    #[test]
    fn one_alert_per_suppression_window() {
        let p = process("/usr/bin/python3", 0, 1);
        let recs = beacon(&p, "192.0.2.4", 8088, 60.0, 30);
        assert_eq!(
            run(&mut detector(), &recs).len(),
            1,
            "29 min of beaconing, 1 h window"
        );
        let cfg = BeaconConfig {
            suppress_secs: 600.0,
            ..BeaconConfig::default()
        };
        let alerts = run(&mut BeaconDetector::new(cfg), &recs);
        let at: Vec<u64> = alerts
            .iter()
            .map(|a| a.beacon.as_ref().unwrap().connections)
            .collect();
        assert_eq!(at, vec![10, 20, 30], "again once 600 s have passed");
    }

    #[test]
    fn key_cap_drops_the_least_recently_used_key() {
        let cfg = BeaconConfig {
            max_keys: 3,
            rotating_ip_key: false,
            ..BeaconConfig::default()
        };
        let mut det = BeaconDetector::new(cfg);
        let p = process("/usr/bin/python3", 0, 1);
        let mut out = Vec::new();
        for (i, ip) in [
            "192.0.2.1",
            "192.0.2.2",
            "192.0.2.3",
            "192.0.2.4",
            "192.0.2.5",
        ]
        .iter()
        .enumerate()
        {
            det.process(&rec(&p, ip, 8088, Transport::Tcp, i as f64), &mut out);
            assert!(det.key_count() <= 3);
        }
        assert_eq!(det.key_count(), 3);
        assert_eq!(det.counters().evicted_full, 2);
    }

    #[test]
    fn port_key_cap_drops_the_least_recently_used_port_key() {
        // The port key is looked up once, before the destination key: the port table must
        // keep the order a lookup after the destination key gave it.
        let cfg = BeaconConfig {
            max_port_keys: 2,
            ..BeaconConfig::default()
        };
        let mut det = BeaconDetector::new(cfg);
        let p = process("/usr/bin/python3", 0, 1);
        let mut out = Vec::new();
        // (port, evictions after the record): 1001 and 1002 fill the table, 1001 again
        // makes 1002 the least recently used, 1003 evicts it, 1001 is still held, 1002
        // comes back by evicting 1003.
        let steps = [
            (1001, 0),
            (1002, 0),
            (1001, 0),
            (1003, 1),
            (1001, 1),
            (1002, 2),
        ];
        for (i, (port, evicted)) in steps.into_iter().enumerate() {
            det.process(
                &rec(&p, "192.0.2.60", port, Transport::Tcp, i as f64),
                &mut out,
            );
            assert_eq!(det.counters().evicted_full, evicted, "after port {port}");
            assert!(det.counters().port_keys <= 2);
        }
        assert!(out.is_empty());
    }

    #[test]
    fn key_hash_words_keep_every_field() {
        // The key hashes feed packed words to a seeded hasher: distinct keys must stay
        // distinct words, or an attacker could make them collide whatever the seed.
        let mut words = std::collections::HashSet::new();
        for process in [0, 1, u64::MAX] {
            for port in [0, 1, 8088, u16::MAX] {
                for transport in [Transport::Tcp, Transport::Udp] {
                    for v6 in [false, true] {
                        assert!(words.insert(key_word(process, port, transport, v6)));
                    }
                }
            }
        }
        let v4 = |ip: &str| {
            let a: std::net::Ipv4Addr = ip.parse().unwrap();
            key_word(7, 443, Transport::Tcp, false) | u128::from(a.to_bits()) << 96
        };
        assert_ne!(v4("192.0.2.1"), v4("192.0.2.2"));
        assert_ne!(v4("0.0.0.1"), key_word(7, 443, Transport::Tcp, false));
    }

    #[test]
    fn idle_keys_are_dropped_by_event_time() {
        let mut det = detector();
        let p = process("/usr/bin/python3", 0, 1);
        let mut out = Vec::new();
        let recs = beacon(&p, "192.0.2.5", 8088, 60.0, 5);
        for r in &recs {
            det.process(r, &mut out);
        }
        assert_eq!(det.key_count(), 2, "one destination key, one port key");
        // An hour after the last check-in the keys are still held ...
        det.advance(Timestamp::from_secs_f64(T0 + 240.0 + 3600.0), &mut out);
        assert_eq!(det.key_count(), 2);
        // ... and gone just after.
        det.advance(Timestamp::from_secs_f64(T0 + 240.0 + 3601.0), &mut out);
        assert_eq!(det.key_count(), 0);
        assert_eq!(det.counters().evicted_idle, 2);
        // Time never moves back: an older `advance` is a no-op.
        det.advance(Timestamp::from_secs_f64(T0), &mut out);
        assert!(out.is_empty());
        // Other keys' records drive eviction too, without any `advance`.
        let mut det = detector();
        for r in &recs {
            det.process(r, &mut out);
        }
        let q = process("/usr/bin/curl", 0, 2);
        det.process(
            &rec(&q, "192.0.2.6", 80, Transport::Tcp, 240.0 + 3700.0),
            &mut out,
        );
        assert_eq!(det.key_count(), 2, "only the new record's keys remain");
    }

    #[test]
    fn same_input_same_alerts_whenever_advance_is_called() {
        let mut recs = Vec::new();
        for (i, ip) in ["192.0.2.7", "192.0.2.8", "192.0.2.9"].iter().enumerate() {
            let p = process("/usr/bin/python3", i as u32, 1);
            let period = 40.0 + 10.0 * i as f64;
            recs.extend(beacon(&p, ip, 8088, period, 15));
        }
        recs.sort_by_key(|r| r.timestamp);
        let plain: Vec<String> = run(&mut detector(), &recs)
            .iter()
            .map(Alert::to_json_line)
            .collect();
        assert_eq!(plain.len(), 3);
        let again: Vec<String> = run(&mut detector(), &recs)
            .iter()
            .map(Alert::to_json_line)
            .collect();
        assert_eq!(plain, again);
        // Advancing time after every record, as the live pipeline does, changes nothing.
        let mut det = detector();
        let mut out = Vec::new();
        for r in &recs {
            det.process(r, &mut out);
            det.advance(r.timestamp, &mut out);
        }
        let advanced: Vec<String> = out.iter().map(Alert::to_json_line).collect();
        assert_eq!(plain, advanced);
    }

    #[test]
    fn rotating_destinations_alert_on_the_port_key() {
        let p = process("/tmp/.x/implant", 1000, 1);
        let pool = ["203.0.113.10", "203.0.113.11", "203.0.113.12"];
        let recs: Vec<_> = (0..12)
            .map(|i| rec(&p, pool[i % 3], 8088, Transport::Tcp, i as f64 * 60.0))
            .collect();
        let alerts = run(&mut detector(), &recs);
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!(a.rule.id, RULE_ID_ROTATING);
        assert_eq!(
            a.labels.get("beacon_key").map(String::as_str),
            Some("process_port")
        );
        assert_eq!(
            a.labels.get("beacon_destinations").map(String::as_str),
            Some("3")
        );
        assert_eq!(a.beacon.as_ref().unwrap().median_interval_s, 60.0);
        let off = BeaconConfig {
            rotating_ip_key: false,
            ..BeaconConfig::default()
        };
        assert!(run(&mut BeaconDetector::new(off), &recs).is_empty());
    }

    #[test]
    fn a_new_destination_each_time_is_not_a_rotation() {
        let p = process("/usr/bin/python3", 1000, 1);
        let recs: Vec<_> = (0..30)
            .map(|i| {
                rec(
                    &p,
                    &format!("198.51.100.{}", i + 1),
                    443,
                    Transport::Tcp,
                    f64::from(i) * 60.0,
                )
            })
            .collect();
        assert!(run(&mut detector(), &recs).is_empty());
    }

    #[test]
    fn one_destination_does_not_alert_twice_through_the_port_key() {
        let p = process("/usr/bin/python3", 1000, 1);
        let recs = beacon(&p, "203.0.113.20", 8088, 60.0, 32);
        let alerts = run(&mut detector(), &recs);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].rule.id, RULE_ID_DESTINATION);
    }

    #[test]
    fn a_reported_destination_keeps_its_port_key_quiet() {
        // Ten check-ins to A (its destination key alerts), then twenty alternating B and A:
        // the port key sees a balanced two-address rotation every 60 s, but that beacon is
        // already reported. B's own key, every 120 s, is a second destination and alerts.
        let p = process("/tmp/.x/implant", 1000, 1);
        let recs: Vec<_> = (0..30)
            .map(|i| {
                let ip = if i >= 10 && i % 2 == 0 {
                    "203.0.113.31"
                } else {
                    "203.0.113.30"
                };
                rec(&p, ip, 8088, Transport::Tcp, f64::from(i) * 60.0)
            })
            .collect();
        let alerts = run(&mut detector(), &recs);
        let got: Vec<(&str, String)> = alerts
            .iter()
            .map(|a| (a.rule.id.as_str(), a.event.destination.ip.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                (RULE_ID_DESTINATION, "203.0.113.30".to_string()),
                (RULE_ID_DESTINATION, "203.0.113.31".to_string()),
            ]
        );
    }

    #[test]
    fn identity_is_executable_user_and_container_not_pid() {
        let mut det = detector();
        let mut out = Vec::new();
        let recs: Vec<_> = (0..10)
            .map(|i| {
                // Alternate users: two keys with 5 check-ins each, no alert.
                let p = process("/usr/bin/curl", i % 2, 100 + i);
                rec(&p, "192.0.2.30", 8088, Transport::Tcp, f64::from(i) * 30.0)
            })
            .collect();
        for r in &recs {
            det.process(r, &mut out);
        }
        assert!(out.is_empty());
        assert_eq!(det.counters().destination_keys, 2);
        let a = ProcessInfo {
            container_id: Some("abc".into()),
            ..(*process("/usr/bin/curl", 0, 1)).clone()
        };
        let b = ProcessInfo {
            container_id: Some("def".into()),
            ..a.clone()
        };
        assert_ne!(process_identity(&a), process_identity(&b));
        let c = ProcessInfo {
            pid: 99,
            ..a.clone()
        };
        assert_eq!(process_identity(&a), process_identity(&c));
    }

    #[test]
    fn out_of_order_records_join_the_current_check_in() {
        let p = process("/usr/bin/python3", 0, 1);
        let mut recs = beacon(&p, "192.0.2.40", 8088, 60.0, 10);
        // A late record from another CPU, stamped before the last check-in.
        recs.insert(5, rec(&p, "192.0.2.40", 8088, Transport::Tcp, 100.0));
        let alerts = run(&mut detector(), &recs);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].beacon.as_ref().unwrap().median_interval_s, 60.0);
    }

    #[test]
    fn udp_and_tcp_are_separate_keys() {
        let p = process("/usr/bin/python3", 0, 1);
        let recs: Vec<_> = (0..10)
            .map(|i| {
                let t = if i % 2 == 0 {
                    Transport::Tcp
                } else {
                    Transport::Udp
                };
                rec(&p, "192.0.2.41", 8088, t, f64::from(i) * 30.0)
            })
            .collect();
        let mut det = detector();
        assert!(run(&mut det, &recs).is_empty());
        assert_eq!(det.counters().destination_keys, 2);
    }

    #[test]
    fn disabled_detector_holds_nothing() {
        let cfg = BeaconConfig {
            enabled: false,
            ..BeaconConfig::default()
        };
        let p = process("/usr/bin/python3", 0, 1);
        let mut det = BeaconDetector::new(cfg);
        assert!(run(&mut det, &beacon(&p, "192.0.2.42", 8088, 60.0, 20)).is_empty());
        assert_eq!(det.key_count(), 0);
    }

    #[test]
    fn finish_drops_every_key() {
        let p = process("/usr/bin/python3", 0, 1);
        let mut det = detector();
        run(&mut det, &beacon(&p, "192.0.2.43", 8088, 60.0, 5));
        let mut out = Vec::new();
        det.finish(&mut out);
        assert!(out.is_empty());
        assert_eq!(det.key_count(), 0);
    }

    #[test]
    fn per_key_state_is_a_few_hundred_bytes() {
        // Inline: what a key seen once holds.
        let (series, rotating) = BeaconDetector::state_bytes();
        assert!(series <= 32, "Series is {series} bytes");
        assert!(rotating <= 80, "RotatingSeries is {rotating} bytes");
        let (intervals, destinations) = BeaconDetector::ring_bytes();
        assert!(intervals <= 144, "IntervalRing is {intervals} bytes");
        assert!(
            destinations <= 136,
            "DestinationRing is {destinations} bytes"
        );
        assert!(size_of::<DestinationKey>() <= 32);
        assert!(size_of::<PortKey>() <= 16);
    }

    #[test]
    fn config_reads_from_a_toml_table_and_rejects_unknown_fields() {
        let cfg: BeaconConfig = toml::from_str(
            r#"
            min_connections = 12
            suppress_secs = 600
            known_c2_ports = [4444]
            [[allow]]
            destination = "2001:db8::/32"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.min_connections, 12);
        assert_eq!(cfg.suppress_secs, 600.0);
        assert_eq!(cfg.known_c2_ports, vec![4444]);
        assert_eq!(cfg.max_keys, 100_000, "unset fields keep their defaults");
        assert!(
            cfg.allow[0]
                .destination
                .unwrap()
                .0
                .contains(&"2001:db8::1".parse::<IpAddr>().unwrap())
        );
        let err = toml::from_str::<BeaconConfig>("min_conections = 3").unwrap_err();
        assert!(err.to_string().contains("min_conections"), "{err}");
        let err =
            toml::from_str::<BeaconConfig>("[[allow]]\ndestination = \"10.0.0.300\"").unwrap_err();
        assert!(err.to_string().contains("invalid destination"), "{err}");
    }

    #[test]
    fn validate_names_the_bad_field() {
        let bad = |c: BeaconConfig| c.validate().unwrap_err().to_string();
        let d = BeaconConfig::default;
        assert!(
            bad(BeaconConfig {
                min_connections: 2,
                ..d()
            })
            .starts_with("beacon.min_connections = 2")
        );
        assert!(
            bad(BeaconConfig {
                min_interval_secs: 0.5,
                ..d()
            })
            .contains("min_interval_secs")
        );
        assert!(
            bad(BeaconConfig {
                max_interval_secs: 1e9,
                ..d()
            })
            .contains("max_interval_secs")
        );
        assert!(
            bad(BeaconConfig {
                min_share: 1.5,
                ..d()
            })
            .contains("min_share")
        );
        assert!(bad(BeaconConfig { max_keys: 0, ..d() }).contains("max_keys"));
        assert!(
            bad(BeaconConfig {
                allow: vec![AllowEntry::default()],
                ..d()
            })
            .contains("beacon.allow[0]")
        );
        assert!(
            BeaconDetector::try_new(BeaconConfig {
                tolerance: f64::NAN,
                ..d()
            })
            .is_err()
        );
        // `new` clamps instead of failing.
        let p = process("/usr/bin/python3", 0, 1);
        let mut det = BeaconDetector::new(BeaconConfig {
            min_connections: 1,
            max_keys: 0,
            ..d()
        });
        run(&mut det, &beacon(&p, "192.0.2.44", 8088, 60.0, 3));
        assert_eq!(det.counters().destination_keys, 1);
    }

    #[test]
    fn allowed_net_accepts_addresses_blocks_and_mapped_forms() {
        let n: AllowedNet = "192.0.2.7".parse().unwrap();
        assert!(n.0.contains(&"192.0.2.7".parse::<IpAddr>().unwrap()));
        assert!(!n.0.contains(&"192.0.2.8".parse::<IpAddr>().unwrap()));
        let n: AllowedNet = "::ffff:192.0.2.0/120".parse().unwrap();
        assert_eq!(n.0.to_string(), "192.0.2.0/24");
        let n: AllowedNet = "192.0.2.77/24".parse().unwrap();
        assert_eq!(n.0.to_string(), "192.0.2.0/24");
        assert!("192.0.2.0/33".parse::<AllowedNet>().is_err());
        assert!("example.com".parse::<AllowedNet>().is_err());
    }
}
