//! The streaming beacon detector: its key tables and their eviction, scoring and alerts.
//! A key's check-in history is `series.rs`; settings, allowlist, sizes and tests are apart too.
//!
//! Length: just over 800 lines (829) since the data sizes of close records joined; the
//! settings in hot-path units (`Settings`, with the decision on a series) are the part to
//! move out next.
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
//! check-in for longer than the series gap (the longest interval a reading explains:
//! `max_interval_secs` × (`max_missed` + 1) × (1 + `fold_tolerance`)) or `suppress_secs`,
//! whichever is longer, of event time are dropped. A dropped key is indistinguishable from one whose series was restarted by a long
//! gap, so when `advance` is called does not change which alerts are raised.

use std::collections::BTreeMap;
use std::hash::{BuildHasher as _, DefaultHasher, Hash, Hasher};
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;
use serde::Serialize;

pub use super::allowlist::{
    AllowEntry, AllowTransport, AllowedNet, BUILTIN_ALLOWLIST, builtin_allowlist,
};
use super::allowlist::{Allowlist, PortSet};
use super::beacon_config::MAX_INTERVAL_LIMIT_SECS;
pub use super::beacon_config::{
    BeaconConfig, BeaconConfigError, SEED_KNOWN_C2_PORTS, SEED_STANDARD_PORTS,
};
use super::periodicity::{self, Periodicity, RING, ScoreParams, ShareBar};
use super::series::{
    DestinationRing, IntervalRing, NOT_A_CHECKIN_MS, RotatingSeries, Series, Step,
};
use super::sizes::{Pending, SizeRules, SizeStats};
use crate::arc_slots::ArcSlots;
use crate::record::{
    Alert, BeaconStats, ConnectionRecord, Detector, DomainSource, Level, LifeAction, Lifecycle,
    ProcessInfo, RuleMeta, Timestamp, Transport,
};

/// Rule id of alerts from the destination key.
pub const RULE_ID_DESTINATION: &str = "monitor-beacon";
/// Rule id of alerts from the port key (rotating destinations).
pub const RULE_ID_ROTATING: &str = "monitor-beacon-rotating";
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
pub(super) struct Settings {
    pub(super) enabled: bool,
    pub(super) min_intervals: usize,
    pub(super) fan_out_destinations: u32,
    pub(super) fan_out_min_intervals: usize,
    pub(super) coalesce_ns: i64,
    pub(super) min_interval_ns: i64,
    pub(super) max_session_sends: u32,
    /// An interval longer than this ends a key's series: no reading could explain it.
    pub(super) series_gap_ns: i64,
    /// Recent intervals a key is also scored on when its whole history is not periodic.
    pub(super) recovery_intervals: usize,
    /// Length of a fan-out epoch.
    pub(super) fan_out_epoch_ns: i64,
    pub(super) suppress_ns: i64,
    pub(super) idle_ns: i64,
    pub(super) min_interval_ms: f64,
    pub(super) max_interval_ms: f64,
    pub(super) score: ScoreParams,
    pub(super) min_share: f64,
    /// `min_share` as the fewest explained intervals per count of intervals.
    pub(super) share_bar: ShareBar,
    pub(super) max_jitter: f64,
    pub(super) min_score: f64,
    /// What the sizes from close records say (`sizes.rs`).
    pub(super) sizes: SizeRules,
    /// The steady reading for a key whose payload is constant and small.
    pub(super) size_band: ScoreParams,
    pub(super) size_min_intervals: usize,
    pub(super) standard_ports: PortSet,
    known_c2_ports: PortSet,
    pub(super) allow: Allowlist,
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
        let max_missed = c.max_missed.min(10);
        let fold_tolerance = finite(c.fold_tolerance, d.fold_tolerance).clamp(0.001, 0.3);
        // The longest interval a reading can explain: the longest period, jittered, with
        // `max_missed` check-ins missed; below the session mark in milliseconds.
        let series_gap = (max_iv * f64::from(max_missed + 1) * (1.0 + fold_tolerance))
            .min(f64::from(NOT_A_CHECKIN_MS - 1) / 1000.0);
        let fraction = |v: f64, default: f64| finite(v, default).clamp(0.0, 1.0);
        let min_intervals = (c.min_connections.clamp(3, RING as u32 + 1) - 1) as usize;
        let mut allow: Vec<AllowEntry> =
            c.allow.iter().filter(|e| !e.is_empty()).cloned().collect();
        if c.builtin_allow {
            allow.extend(builtin_allowlist());
        }
        let min_share = fraction(c.min_share, d.min_share);
        let tolerance = finite(c.tolerance, d.tolerance).clamp(0.001, 0.5);
        let score = ScoreParams {
            tolerance,
            fold_tolerance,
            max_missed,
            missed_margin: c.missed_margin.min(RING as u32),
            min_intervals,
            sparse_min_intervals: (c.sparse_connections.clamp(3, RING as u32 + 2) - 1)
                .max(min_intervals as u32) as usize,
            floor_ms: min_iv * 1000.0,
        };
        Settings {
            enabled: c.enabled,
            min_intervals,
            fan_out_destinations: c.fan_out_destinations.clamp(2, 64),
            fan_out_min_intervals: (c.fan_out_min_connections.clamp(3, RING as u32 + 1) - 1)
                .max(min_intervals as u32) as usize,
            coalesce_ns: secs_to_ns(coalesce),
            min_interval_ns: secs_to_ns(min_iv),
            max_session_sends: c.max_session_sends.clamp(1, u32::from(u16::MAX) - 1),
            series_gap_ns: secs_to_ns(series_gap),
            recovery_intervals: (c.recovery_connections.clamp(3, RING as u32 + 1) - 1)
                .max(min_intervals as u32) as usize,
            // An hour or the suppression window, as before day-long periods: how many
            // addresses a process reaches in an hour or two says whether it fans out,
            // whatever the longest period.
            fan_out_epoch_ns: secs_to_ns(max_iv.min(3600.0).max(suppress)),
            suppress_ns: secs_to_ns(suppress),
            // A dropped key must be indistinguishable from a restarted series, including
            // its suppression window.
            idle_ns: secs_to_ns(series_gap.max(suppress)),
            min_interval_ms: min_iv * 1000.0,
            max_interval_ms: max_iv * 1000.0,
            score,
            sizes: SizeRules::new(c),
            // Steady only, as the recovery window: a second test on every check-in.
            size_band: ScoreParams {
                tolerance: finite(c.size_tolerance, d.size_tolerance).clamp(tolerance, 0.6),
                max_missed: 0,
                sparse_min_intervals: usize::MAX,
                ..score
            },
            size_min_intervals: (c.size_min_connections.clamp(3, RING as u32 + 1) - 1)
                .max(min_intervals as u32) as usize,
            min_share,
            // The bar as `beacon` applies it.
            share_bar: ShareBar::new(min_share - 1e-9),
            max_jitter: fraction(c.max_jitter, d.max_jitter),
            min_score: fraction(c.min_score, d.min_score),
            standard_ports: PortSet::from(&c.standard_ports),
            known_c2_ports: PortSet::from(&c.known_c2_ports),
            allow: Allowlist::new(allow),
        }
    }

    fn allowed(&self, rec: &ConnectionRecord) -> bool {
        !self.allow.is_empty() && self.allow.allows(rec)
    }

    /// The periodicity of `series` if it is a beacon by the configured bars, with the
    /// statistics of its sizes when enough are known: its whole history, or else (with
    /// `recover`) its most recent `recovery_intervals`, so stray traffic before a beacon
    /// started does not hide it until the ring has filled with beacon intervals.
    ///
    /// With sizes (close records, DETECTION.md "Data sizes"): a key moving bulk data of
    /// widely varied size is never a beacon; a key whose payload is constant and small is
    /// also read in the wider `size_band` (with `recover`, from `size_min_intervals` on).
    /// Without them the answer is the timing's alone, as before.
    fn beacon(&self, series: &Series, recover: bool) -> Option<(Periodicity, Option<SizeStats>)> {
        let sizes = self.sizes.stats(series.sizes());
        if let Some(z) = &sizes
            && self.sizes.bulk_varied(z)
        {
            return None;
        }
        let all = series.intervals();
        if let Some(p) = self.periodic(all) {
            return Some((p, sizes));
        }
        if recover
            && all.len() >= self.size_min_intervals
            && let Some(z) = &sizes
            && self.sizes.constant_small(z)
            && let Some(p) = self.periodic_with(all, &self.size_band)
            // Every interval, no stray: a second test on every check-in, in a band random
            // traffic fits more often.
            && p.explained == p.intervals
        {
            return Some((p, sizes));
        }
        let recent = self.recovery_intervals;
        if !recover || all.len() <= recent {
            return None;
        }
        let mut buf = [0u32; RING];
        // Steady readings only, in the narrower band of on-time check-ins (±20 % jitter
        // fits; Cobalt Strike's 50 % waits for the full ring): the recent window is a
        // second test on every check-in, and random traffic passes the wide band and the
        // readings with missed check-ins most often.
        let steady = ScoreParams {
            max_missed: 0,
            tolerance: self.score.fold_tolerance.min(self.score.tolerance),
            sparse_min_intervals: usize::MAX,
            ..self.score
        };
        self.periodic_with(series.recent(recent, &mut buf), &steady)
            .map(|p| (p, sizes))
    }

    /// The periodicity of `intervals` if it passes the configured bars.
    fn periodic(&self, intervals: &[u32]) -> Option<Periodicity> {
        self.periodic_with(intervals, &self.score)
    }

    fn periodic_with(&self, intervals: &[u32], score: &ScoreParams) -> Option<Periodicity> {
        // Skips the full analysis where the share bar cannot be met (most busy keys).
        let p = periodicity::analyze_if_bar(intervals, score, &self.share_bar)?;
        let is_beacon = p.median_ms >= self.min_interval_ms
            && p.median_ms <= self.max_interval_ms * (1.0 + self.score.tolerance)
            && p.share >= self.min_share - 1e-9
            && p.jitter() <= self.max_jitter
            && p.score >= self.min_score;
        is_beacon.then_some(p)
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

/// The destination key's address for a `destination.domain`: a 64-bit hash of the name in
/// the IPv6 discard-only prefix `100::/64` (RFC 6666), which no real destination uses, so a
/// name never shares a key with an address.
fn name_key(name: &str) -> IpAddr {
    let h = foldhash::fast::FixedState::with_seed(0x6e61_6d65).hash_one(name);
    IpAddr::V6(std::net::Ipv6Addr::from(
        (0x0100u128 << 112) | u128::from(h),
    ))
}

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
    /// Destination keys of recent connects by connection id, for their close records.
    pending: Pending<DestinationKey>,
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
            pending: Pending::new(),
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

    /// Feeds one record; a key that has just become periodic pushes one alert. A close
    /// record (`--lifecycle`) adds the bytes its connection sent to the key of its
    /// connect; other lifecycle records (results, accepts, listens) are not check-ins.
    pub fn process(&mut self, rec: &ConnectionRecord, out: &mut Vec<Alert>) {
        // DNS query records are lookups, not check-ins (their connections to the server
        // are the send records).
        if !self.s.enabled || rec.dns.is_some() {
            return;
        }
        if let Some(life) = &rec.life {
            if life.action() == LifeAction::Close {
                self.close(rec, life);
            }
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
        let mut dest = rec.destination;
        // By name when the process itself asked for it: addresses rotating under one name
        // (DNS round robin, fast flux, a CDN) are one series, as RITA groups by FQDN. Not
        // by a host-wide name: whether one is known depends on other processes' lookups
        // and their timing, and a key that changes with them splits one beacon's series.
        if let Some(name) = &rec.domain
            && rec.domain_source == Some(DomainSource::Process)
        {
            dest.ip = name_key(name);
        }
        let key = DestinationKey {
            process,
            ip: dest.ip,
            port: dest.port,
            transport: rec.transport,
        };
        if self.s.sizes.on
            && let Some(id) = rec.connection_id
        {
            self.pending.insert(id, key);
        }
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
                r.reach(dest_hash, t, s.fan_out_epoch_ns);
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

    /// A close record: the bytes its connection sent join its connect's destination key,
    /// found by connection id (so whatever the close's own process fields say), without
    /// touching the key's place in its table (eviction follows check-ins only). Port keys
    /// are judged by timing alone.
    fn close(&mut self, rec: &ConnectionRecord, life: &Lifecycle) {
        // Outbound only: `source.bytes` of an accepted connection is the peer's.
        let (true, false, Some(id), Some(bytes)) = (
            self.s.sizes.on,
            life.ingress,
            rec.connection_id,
            life.source_bytes,
        ) else {
            return;
        };
        if let Some(key) = self.pending.take(id)
            && let Some(series) = self.destinations.peek_mut(&key)
        {
            series.push_size(bytes);
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
        self.pending.clear();
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
        let least = if fan_out { s.fan_out_min_intervals } else { 0 };
        if series.observe(t, s) == Step::Recorded
            && series.due(t, s)
            && series.intervals().len() >= least
            && !rotation_reported
            // Not for a fanning-out process: each of its many keys would get a second
            // test per check-in, and random series pass one of them by luck (the
            // multiple-comparisons problem the fan-out rule exists for).
            && let Some((p, sizes)) = s.beacon(series, !fan_out)
        {
            series.set_last_alert(t);
            let labels = BTreeMap::from([("beacon_key".into(), "destination".into())]);
            self.alert(rule.clone(), &p, sizes.as_ref(), series.checkins, labels);
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
            // The port key reads its whole history only: a rotation is judged over the
            // destinations of its recent check-ins, all of them.
            && let Some((p, sizes)) = s.beacon(&r.series, false)
        {
            r.series.set_last_alert(t);
            let labels = BTreeMap::from([
                ("beacon_key".into(), "process_port".into()),
                ("beacon_destinations".into(), distinct.to_string()),
            ]);
            self.alert(rule.clone(), &p, sizes.as_ref(), r.series.checkins, labels);
        }
    }

    fn alert(
        &mut self,
        rule: Arc<RuleMeta>,
        p: &Periodicity,
        sizes: Option<&SizeStats>,
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
                sizes: sizes.map(|z| z.count as u64),
                median_bytes: sizes.map(|z| z.median),
                size_jitter: sizes.map(|z| round3(z.jitter())),
                size_score: sizes.map(|z| round3(z.score)),
            }),
            correlation: None,
        });
    }
}

#[cfg(test)]
#[path = "beacon_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "beacon_allow_config_tests.rs"]
mod allow_config_tests;

#[cfg(test)]
#[path = "beacon_size_tests.rs"]
mod size_tests;
