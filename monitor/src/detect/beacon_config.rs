//! The beacon detector's settings: the `[beacon]` table of the config file, its defaults
//! (each explained in DETECTION.md) and their validation.

use serde::Deserialize;
use thiserror::Error;

use super::allowlist::AllowEntry;
use super::periodicity::RING;
use super::series::NOT_A_CHECKIN_MS;
use super::sizes::SIZE_RING;

/// Ports the T1571 seed query treats as standard (`isStandardPort`).
pub const SEED_STANDARD_PORTS: [u16; 9] = [80, 443, 8080, 8443, 53, 25, 3000, 5000, 9000];

/// Ports the T1571 seed query lists as seen in C2 infrastructure (`isKnownC2Port`).
pub const SEED_KNOWN_C2_PORTS: [u16; 19] = [
    444, 587, 1224, 1337, 2083, 2087, 4443, 4444, 4445, 6666, 6667, 6668, 7777, 8008, 8088, 8888,
    9001, 9090, 31337,
];

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
    /// no check-in for this long is dropped. Default 86,400 s (a day): implants that sleep
    /// for hours, and a beacon whose C2 was down or whose laptop slept for hours, keep
    /// their series. A key's memory does not depend on it (32 intervals at most), only
    /// how long an idle key is held (the LRU caps bound the total). At most 7 days.
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
    /// A key whose full history is not periodic is also scored on its most recent
    /// `recovery_connections − 1` intervals, so irregular traffic before a beacon starts
    /// (a proxy shared with a browser, a service used by hand now and then) does not hide
    /// it until the interval ring has filled with beacon intervals. Default 12: a beacon is
    /// reported within 12 check-ins of its start whatever came before. Range
    /// `min_connections`..=33; 33 turns it off.
    pub recovery_connections: u32,
    /// From this many check-ins on, a key is also read as a sparse schedule: one that
    /// misses many of its check-ins (a laptop asleep half the time, a C2 down for hours),
    /// so that most intervals span several periods. Default 20. Range
    /// `min_connections`..=34; 34 turns it off.
    pub sparse_connections: u32,
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
    /// 15.7 MiB of heap (measured in tests/beacon_eval.rs).
    pub max_keys: usize,
    /// Also track the (process, port) key for C2 that rotates destination addresses.
    /// Default true.
    pub rotating_ip_key: bool,
    /// Most port keys held. Default 25,000: a process reaches many destinations on few
    /// ports, so port keys are far fewer than destination keys.
    pub max_port_keys: usize,
    /// A process that reached at least this many destinations on a port within the last
    /// one to two hours (`max(min(max_interval_secs, 3600), suppress_secs)` per epoch) is
    /// fanning out
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
    /// Use the bytes each connection sent (`source.bytes` of the close records that
    /// `--lifecycle` adds, joined to their connect by `monitor.connection_id`) alongside the
    /// timing. Without close records nothing changes. Default true.
    pub size_scoring: bool,
    /// Sizes a key needs before they count, either way. Default 8: a median and a spread
    /// that one odd connection does not move. Range 3..=16.
    pub size_min_known: u32,
    /// Largest MAD / median of the sizes that counts as a constant payload. Default 0.1: a
    /// check-in's request varies by a few bytes (a counter, a timestamp), a person's or a
    /// service's requests by far more.
    pub size_max_jitter: f64,
    /// Half-width of the steady band, as a fraction of the period, for a key whose payload
    /// is constant and small (below 65,535 bytes): the timing may be noisier when the sizes
    /// say check-in. Default 0.5: a band from 0.5 to 1.5 periods, a factor of three, which
    /// holds ±50 % jitter. At least `tolerance`, at most 0.6.
    pub size_tolerance: f64,
    /// Check-ins a key needs before the wider band applies. Default 15: random traffic
    /// fits a factor of three far more often than a factor of two, so it needs more
    /// intervals to be told apart (DETECTION.md has the figures).
    /// Range `min_connections`..=33.
    pub size_min_connections: u32,
    /// A key whose median size is bulk (65,535 bytes or more) and whose largest size is at
    /// least this many times its smallest is a periodic bulk transfer (a backup job), not
    /// reported whatever its timing. Default 4.0; 0 turns the rule off, else at least 1.
    pub bulk_size_spread: f64,
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
            max_interval_secs: 86_400.0,
            tolerance: 0.35,
            fold_tolerance: 0.22,
            max_missed: 3,
            missed_margin: 2,
            recovery_connections: 12,
            sparse_connections: 20,
            min_share: 0.93,
            max_jitter: 0.35,
            min_score: 0.5,
            suppress_secs: 3600.0,
            max_keys: 100_000,
            rotating_ip_key: true,
            fan_out_destinations: 8,
            fan_out_min_connections: 20,
            max_port_keys: 25_000,
            size_scoring: true,
            size_min_known: 8,
            size_max_jitter: 0.1,
            size_tolerance: 0.5,
            size_min_connections: 15,
            bulk_size_spread: 4.0,
            standard_ports: SEED_STANDARD_PORTS.to_vec(),
            known_c2_ports: SEED_KNOWN_C2_PORTS.to_vec(),
            builtin_allow: true,
            allow: Vec::new(),
        }
    }
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
pub(super) const MAX_INTERVAL_LIMIT_SECS: f64 = 7.0 * 86_400.0;

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
        if !(c.min_connections..=RING as u32 + 1).contains(&c.recovery_connections) {
            return bad(
                "recovery_connections",
                c.recovery_connections,
                "expected min_connections to 33",
            );
        }
        if !(3..=SIZE_RING as u32).contains(&c.size_min_known) {
            return bad("size_min_known", c.size_min_known, "expected 3 to 16");
        }
        if !(0.0..=1.0).contains(&c.size_max_jitter) {
            return bad(
                "size_max_jitter",
                c.size_max_jitter,
                "expected a fraction from 0 to 1",
            );
        }
        if !(c.size_tolerance >= c.tolerance && c.size_tolerance <= 0.6) {
            return bad(
                "size_tolerance",
                c.size_tolerance,
                "expected tolerance to 0.6",
            );
        }
        if !(c.min_connections..=RING as u32 + 1).contains(&c.size_min_connections) {
            return bad(
                "size_min_connections",
                c.size_min_connections,
                "expected min_connections to 33",
            );
        }
        if !(c.bulk_size_spread == 0.0
            || (c.bulk_size_spread.is_finite() && c.bulk_size_spread >= 1.0))
        {
            return bad(
                "bulk_size_spread",
                c.bulk_size_spread,
                "expected 0 (off) or 1 or more",
            );
        }
        if !(c.min_connections..=RING as u32 + 2).contains(&c.sparse_connections) {
            return bad(
                "sparse_connections",
                c.sparse_connections,
                "expected min_connections to 34",
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
