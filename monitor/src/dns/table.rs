//! Attribution: which name a process asked for before it connected to an address.
//!
//! Two bounded tables, both fed by every DNS query record (live, and in replay from the
//! recorded ones, so replay rebuilds them):
//! - per process (pid and executable): address → name asked, at most
//!   `PROCESS_ENTRIES` addresses per process and `PROCESSES` processes, least recently used
//!   out;
//! - host-wide: address → name asked, at most `HOST_ENTRIES`, least recently used out.
//!
//! A process's own entry is used while the host table still holds the address (it holds
//! every address any process learned, least recently used out first).
//!
//! An entry lives for the answer's TTL, raised to `MIN_TTL` (a program connects right after
//! its lookup, and stub resolvers hand out cached answers with TTLs counting down to 0) and
//! capped at `MAX_TTL`. When two names share an address, the latest answer for it wins in
//! each table: `destination.domain` is the name most recently resolved to that address by
//! this process (or, host-wide, by anyone).

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;

use crate::arc_slots::ArcSlots;
use crate::record::{ConnectionRecord, DomainSource, ProcessInfo, Timestamp, normalize_ip};

/// Processes with a table at most.
pub const PROCESSES: usize = 1024;
/// Addresses per process at most.
pub const PROCESS_ENTRIES: usize = 256;
/// Addresses in the host-wide table at most.
pub const HOST_ENTRIES: usize = 65_536;
/// Shortest and longest time (s) an answer attributes its addresses.
pub const MIN_TTL: u32 = 60;
pub const MAX_TTL: u32 = 3_600;

#[derive(Clone, Debug)]
struct Entry {
    name: Arc<str>,
    expires: Timestamp,
}

/// Counters for the metric records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AttributionStats {
    /// Connection records given a domain from the process's own answers, and host-wide.
    pub process_hits: u64,
    pub host_hits: u64,
    /// Connection records with no name for their destination.
    pub misses: u64,
}

/// Both tables.
/// The tables' hasher: foldhash, seeded at random per start (the addresses come from DNS
/// answers, which others choose); the tables' contents never depend on hash order.
type Hasher = foldhash::fast::RandomState;

pub struct NameTables {
    processes: LruCache<u64, LruCache<IpAddr, Entry, Hasher>, Hasher>,
    host: LruCache<IpAddr, Entry, Hasher>,
    hasher: foldhash::fast::FixedState,
    /// Process keys by the record's shared `Arc<ProcessInfo>` (hashed once per process).
    keys: ArcSlots<ProcessInfo>,
    key_of_slot: Box<[Option<u64>]>,
    stats: AttributionStats,
}

/// log2 of the key cache's sets (two slots each).
const KEY_SET_BITS: u32 = 8;

impl Default for NameTables {
    fn default() -> Self {
        Self::new()
    }
}

impl NameTables {
    pub fn new() -> Self {
        let keys = ArcSlots::new(KEY_SET_BITS);
        NameTables {
            processes: LruCache::with_hasher(nonzero(PROCESSES), Hasher::default()),
            host: LruCache::with_hasher(nonzero(HOST_ENTRIES), Hasher::default()),
            hasher: foldhash::fast::FixedState::with_seed(0x646e_7331),
            key_of_slot: vec![None; keys.len()].into_boxed_slice(),
            keys,
            stats: AttributionStats::default(),
        }
    }

    pub fn stats(&self) -> AttributionStats {
        self.stats
    }

    /// Entries held (host-wide, and over every process).
    pub fn len(&self) -> (usize, usize) {
        (
            self.host.len(),
            self.processes.iter().map(|(_, t)| t.len()).sum(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.host.is_empty()
    }

    /// The process key: pid and executable (a reused pid running another program is
    /// another process). Records without a pid (an answer whose asker was not known) have
    /// none and only feed the host table.
    fn key(&mut self, rec: &ConnectionRecord) -> Option<u64> {
        use std::hash::{BuildHasher, Hash, Hasher};
        let (slot, hit) = self.keys.slot_of(&rec.process);
        if hit {
            return self.key_of_slot[slot];
        }
        let p = &rec.process;
        let key = (p.pid != 0).then(|| {
            let mut h = self.hasher.build_hasher();
            p.pid.hash(&mut h);
            p.executable.hash(&mut h);
            h.finish()
        });
        self.key_of_slot[slot] = key;
        key
    }

    /// Learns a DNS query record's addresses (nothing for other records).
    pub fn learn(&mut self, rec: &ConnectionRecord) {
        let Some(q) = &rec.dns else {
            return;
        };
        if q.resolved_ip.is_empty() || q.question_name.is_empty() {
            return;
        }
        let ttl = i64::from(q.ttl.clamp(MIN_TTL, MAX_TTL));
        let entry = Entry {
            name: Arc::from(q.question_name.as_str()),
            expires: Timestamp(
                rec.timestamp
                    .0
                    .saturating_add(ttl * Timestamp::NANOS_PER_SEC),
            ),
        };
        let key = self.key(rec);
        for ip in &q.resolved_ip {
            let ip = normalize_ip(*ip);
            self.host.put(ip, entry.clone());
            if let Some(key) = key {
                self.processes
                    .get_or_insert_mut(key, || {
                        LruCache::with_hasher(nonzero(PROCESS_ENTRIES), Hasher::default())
                    })
                    .put(ip, entry.clone());
            }
        }
    }

    /// The name for a connection record's destination at its time: the process's own
    /// answer first, else the host's.
    pub fn lookup(&mut self, rec: &ConnectionRecord) -> Option<(Arc<str>, DomainSource)> {
        if self.host.is_empty() {
            return None;
        }
        let ip = normalize_ip(rec.destination.ip);
        let now = rec.timestamp;
        // Every learned address enters the host table too, so an address it does not hold
        // (most connections') has no name: one hash, no process lookup.
        if !self.host.contains(&ip) {
            self.stats.misses += 1;
            return None;
        }
        if let Some(key) = self.key(rec)
            && let Some(table) = self.processes.get_mut(&key)
            && let Some(e) = table.get(&ip)
            && e.expires >= now
        {
            self.stats.process_hits += 1;
            return Some((e.name.clone(), DomainSource::Process));
        }
        match self.host.get(&ip) {
            Some(e) if e.expires >= now => {
                self.stats.host_hits += 1;
                Some((e.name.clone(), DomainSource::Host))
            }
            _ => {
                self.stats.misses += 1;
                None
            }
        }
    }
}

fn nonzero(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).expect("table sizes are constants above zero")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::sample;
    use crate::record::{DnsAnswerRecord, DnsQuery, Endpoint};

    fn answer(pid: u32, exe: &str, name: &str, ips: &[&str], ttl: u32, t: i64) -> ConnectionRecord {
        let mut r = sample();
        r.timestamp = Timestamp(t * Timestamp::NANOS_PER_SEC);
        r.process = Arc::new(ProcessInfo {
            pid,
            executable: Some(exe.into()),
            ..ProcessInfo::default()
        });
        let answers = ips
            .iter()
            .map(|ip| DnsAnswerRecord {
                name: name.into(),
                kind: "A".into(),
                ttl,
                data: (*ip).into(),
            })
            .collect();
        r.dns = Some(Arc::new(DnsQuery::new(
            name.into(),
            "A".into(),
            "NOERROR".into(),
            answers,
            ips.iter().map(|ip| ip.parse().unwrap()).collect(),
        )));
        r
    }

    fn connect(pid: u32, exe: &str, ip: &str, t: i64) -> ConnectionRecord {
        let mut r = sample();
        r.timestamp = Timestamp(t * Timestamp::NANOS_PER_SEC);
        r.process = Arc::new(ProcessInfo {
            pid,
            executable: Some(exe.into()),
            ..ProcessInfo::default()
        });
        r.destination = Endpoint {
            ip: ip.parse().unwrap(),
            port: 443,
        };
        r
    }

    #[test]
    fn own_answer_first_then_the_hosts() {
        let mut t = NameTables::new();
        assert_eq!(t.lookup(&connect(1, "/usr/bin/curl", "192.0.2.1", 0)), None);
        t.learn(&answer(
            1,
            "/usr/bin/curl",
            "a.example",
            &["192.0.2.1"],
            30,
            0,
        ));
        t.learn(&answer(
            2,
            "/usr/bin/dig",
            "b.example",
            &["192.0.2.1"],
            30,
            1,
        ));
        let (name, src) = t
            .lookup(&connect(1, "/usr/bin/curl", "192.0.2.1", 2))
            .unwrap();
        assert_eq!((&*name, src), ("a.example", DomainSource::Process));
        // Another process: the host table, latest answer wins.
        let (name, src) = t
            .lookup(&connect(3, "/usr/bin/wget", "192.0.2.1", 2))
            .unwrap();
        assert_eq!((&*name, src), ("b.example", DomainSource::Host));
        // The same pid running another program is another process.
        let (_, src) = t
            .lookup(&connect(1, "/usr/bin/nc", "192.0.2.1", 2))
            .unwrap();
        assert_eq!(src, DomainSource::Host);
        // Mapped IPv6 is the IPv4 address.
        assert!(
            t.lookup(&connect(1, "/usr/bin/curl", "::ffff:192.0.2.1", 2))
                .is_some()
        );
    }

    #[test]
    fn ttl_is_floored_and_capped() {
        let mut t = NameTables::new();
        t.learn(&answer(1, "/x", "zero.example", &["192.0.2.2"], 0, 0));
        assert!(t.lookup(&connect(1, "/x", "192.0.2.2", 59)).is_some());
        assert!(t.lookup(&connect(1, "/x", "192.0.2.2", 61)).is_none());
        t.learn(&answer(1, "/x", "long.example", &["192.0.2.3"], 86_400, 0));
        assert!(t.lookup(&connect(1, "/x", "192.0.2.3", 3_599)).is_some());
        assert!(t.lookup(&connect(1, "/x", "192.0.2.3", 3_601)).is_none());
    }

    #[test]
    fn tables_stay_bounded() {
        let mut t = NameTables::new();
        for i in 0..(HOST_ENTRIES as u32 + 10) {
            let ip = std::net::Ipv4Addr::from(0xc600_0000 + i).to_string();
            t.learn(&answer(1 + i % 2000, "/x", "n.example", &[&ip], 60, 0));
        }
        let (host, per_process) = t.len();
        assert_eq!(host, HOST_ENTRIES);
        assert!(per_process <= PROCESSES * PROCESS_ENTRIES);
        assert!(t.processes.len() <= PROCESSES);
    }

    #[test]
    fn unknown_asker_feeds_the_host_table_only() {
        let mut t = NameTables::new();
        t.learn(&answer(0, "", "h.example", &["192.0.2.4"], 60, 0));
        let (_, src) = t.lookup(&connect(5, "/y", "192.0.2.4", 1)).unwrap();
        assert_eq!(src, DomainSource::Host);
    }
}
