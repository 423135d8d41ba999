//! Labelled connection traces for evaluating the beacon detector.
//!
//! `generate(class, connections, seed)` returns the records one process would produce for a
//! traffic class: beacons with the jitter models C2 frameworks use, and benign or
//! non-periodic traffic that must not alert. The generator is seeded and self-contained
//! (xoshiro256++ seeded through SplitMix64, both written out here), so a seed gives the same
//! trace on every machine and with every dependency version.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::record::{
    ConnectionRecord, DomainSource, Endpoint, LifeAction, Lifecycle, ProcessInfo, Timestamp,
    Transport,
};

/// Nominal beacon period of every class, seconds.
pub const PERIOD_SECS: f64 = 60.0;
/// Destination port of every trace: non-standard, in the T1571 seed's known C2 list.
pub const PORT: u16 = 8088;
/// Destination of the single-destination classes.
pub const DESTINATION: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));

/// What the detector must do with a class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expectation {
    Detect,
    Ignore,
    /// Reported in the evaluation, no bar.
    Report,
}

/// A kind of traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TraceClass {
    /// Exactly every 60 s (the T1571 seed's beacon test).
    Periodic,
    /// 60 s × (1 + U(−0.2, 0.2)).
    Jitter20,
    /// Cobalt Strike's jitter: 60 s × (1 − U(0, 0.5)), only ever shorter.
    OneSidedJitter50,
    /// 60 s × (1 + U(−0.2, 0.2)), each check-in missed with probability 0.2.
    Jitter20Missed20,
    /// Exponential intervals with a 60 s mean.
    Poisson,
    /// All connections at random within 20 s, then silence.
    Burst,
    /// One connection to each of many destinations (same port), every 60 s ± 20 %.
    ManyDestinations,
    /// 60 s × (1 + U(−0.5, 0.5)).
    Jitter50,
    /// Two beacons on one key: 60 s and 84 s, each ± 10 %, independent phases.
    Interleaved,
    /// 60 s × (1 + U(−0.2, 0.2)), each check-in to one of three addresses at random: C2
    /// behind rotating redirectors (the port key's case).
    Rotating,
    /// Bulk sessions (package downloads, git fetches): n sessions of 5 to 60 connections
    /// 0.2 to 4 s apart, each session to one of four mirrors, separated by 2 to 30 minutes
    /// of silence. n counts sessions.
    DownloadSessions,
    /// Interactive browsing: n active periods of 1 to 10 minutes with exponential gaps of
    /// 3 s mean over 40 sites (popular ones far more often), separated by 1 to 20 minutes
    /// idle. n counts active periods.
    Browsing,
    /// A metrics scraper (`/usr/bin/prometheus`) polling 4 node exporters on 9100 every
    /// 15 s ± 2 %: periodic by design, allowlisted by executable and port. n check-ins per
    /// exporter.
    AllowlistedScraper,
    /// The same scraper from a copy at `/tmp/prometheus`: a renamed binary does not
    /// inherit the allowlist, and its polling is a beacon.
    RenamedScraper,
    /// 60 s × (1 + U(−0.2, 0.2)), each check-in to a new address under one name
    /// (`destination.domain` from the DNS answers: fast flux, a CDN, DNS round robin over
    /// a large pool). By address alone it is the many-destinations class; by name, one
    /// series.
    RotatingByName,
    /// 6 h × (1 + U(−0.2, 0.2)): an implant that sleeps for hours.
    Hours6Jitter20,
    /// 24 h × (1 + U(−0.1, 0.1)): a daily check-in.
    DailyJitter10,
    /// Exponential intervals with a 6 h mean: rare irregular use, the long-period near
    /// miss.
    PoissonHours,
    /// Irregular use first (24 connections, gaps log-uniform from 10 s to 1 h: a proxy
    /// shared with a browser, a service used by hand), then a beacon of 60 s ± 20 %
    /// starting 10 s to 10 min after the last of them. n counts the beacon's check-ins.
    StrayThenBeacon,
    /// 60 s × (1 + U(−0.2, 0.2)), each scheduled check-in missed with probability 0.5
    /// (a laptop asleep half the time, a flaky path). n counts the connections made.
    Jitter20Missed50,
    /// 60 s × (1 + U(−0.2, 0.2)) with the C2 down for 2 to 8 hours after the fifth
    /// check-in: one interval spans hundreds of missed check-ins. n counts connections.
    Outage,
    /// 60 s × (1 + U(−0.5, 0.5)), with close records: each check-in sends 480 to 487
    /// bytes (a heartbeat whose request varies by a counter).
    Jitter50ConstantSize,
    /// Exponential intervals with a 60 s mean, with close records of a constant payload as
    /// above: an irregular client that always sends the same request (the near miss of
    /// the constant-payload reading).
    PoissonConstantSize,
    /// A backup job (`/usr/bin/restic` to port 8000) every 10 minutes ± 0.5 %, with close
    /// records: each run uploads a size log-uniform from 1 MiB to 1 GiB. Periodic, not a
    /// beacon.
    BackupVariedSizes,
    /// 60 s × (1 + U(−0.2, 0.2)), with close records: each check-in posts a result of a
    /// size log-uniform from 200 bytes to 20 kB. A beacon whatever its payload.
    Jitter20VariedSmall,
    /// 60 s × (1 + U(−0.2, 0.2)), with close records: an implant that pads every check-in
    /// to a size log-uniform from 64 KiB to 64 MiB, to pass for a bulk transfer (the
    /// evasion the bulk rule leaves open: DETECTION.md, "Data sizes").
    Jitter20Padded,
}

impl TraceClass {
    pub const ALL: [TraceClass; 15] = [
        TraceClass::Periodic,
        TraceClass::Jitter20,
        TraceClass::OneSidedJitter50,
        TraceClass::Jitter20Missed20,
        TraceClass::Poisson,
        TraceClass::Burst,
        TraceClass::ManyDestinations,
        TraceClass::Jitter50,
        TraceClass::Interleaved,
        TraceClass::Rotating,
        TraceClass::DownloadSessions,
        TraceClass::Browsing,
        TraceClass::AllowlistedScraper,
        TraceClass::RenamedScraper,
        TraceClass::RotatingByName,
    ];

    /// The classes of long periods and disturbed schedules, each with the count of
    /// connections (check-ins for the stray class) at which it is judged.
    pub const SCHEDULES: [(TraceClass, usize); 9] = [
        (TraceClass::Hours6Jitter20, 10),
        (TraceClass::DailyJitter10, 10),
        (TraceClass::PoissonHours, 10),
        (TraceClass::PoissonHours, 20),
        (TraceClass::StrayThenBeacon, 12),
        (TraceClass::Jitter20Missed50, 30),
        (TraceClass::Outage, 16),
        (TraceClass::Poisson, 30),
        (TraceClass::Burst, 30),
    ];

    /// The classes with close records (`--lifecycle`), each with the count of connections
    /// at which it is judged.
    pub const PAYLOADS: [(TraceClass, usize); 11] = [
        (TraceClass::Jitter50ConstantSize, 10),
        (TraceClass::Jitter50ConstantSize, 15),
        (TraceClass::Jitter50ConstantSize, 20),
        (TraceClass::PoissonConstantSize, 15),
        (TraceClass::PoissonConstantSize, 20),
        (TraceClass::PoissonConstantSize, 30),
        (TraceClass::BackupVariedSizes, 10),
        (TraceClass::BackupVariedSizes, 20),
        (TraceClass::Jitter20VariedSmall, 10),
        (TraceClass::Jitter20Padded, 10),
        (TraceClass::Jitter20Padded, 20),
    ];

    pub fn name(self) -> &'static str {
        match self {
            TraceClass::Periodic => "periodic 60 s",
            TraceClass::Jitter20 => "jitter ±20 %",
            TraceClass::OneSidedJitter50 => "one-sided jitter 50 % (Cobalt Strike)",
            TraceClass::Jitter20Missed20 => "jitter ±20 %, 20 % missed",
            TraceClass::Poisson => "Poisson, 60 s mean",
            TraceClass::Burst => "burst within 20 s, then silence",
            TraceClass::ManyDestinations => "many destinations once each",
            TraceClass::Jitter50 => "jitter ±50 %",
            TraceClass::Interleaved => "two interleaved beacons, one key",
            TraceClass::Rotating => "jitter ±20 %, 3 rotating addresses",
            TraceClass::DownloadSessions => "download sessions (n sessions), 4 mirrors",
            TraceClass::Browsing => "browsing (n active periods), 40 sites",
            TraceClass::AllowlistedScraper => "scraper every 15 s, allowlisted, 4 targets",
            TraceClass::RenamedScraper => "scraper every 15 s, renamed copy, 4 targets",
            TraceClass::RotatingByName => "jitter ±20 %, a new address each time, one name",
            TraceClass::Hours6Jitter20 => "6 h, jitter ±20 %",
            TraceClass::DailyJitter10 => "24 h, jitter ±10 %",
            TraceClass::PoissonHours => "Poisson, 6 h mean",
            TraceClass::StrayThenBeacon => "irregular use, then a beacon (n check-ins)",
            TraceClass::Jitter20Missed50 => "jitter ±20 %, half missed",
            TraceClass::Outage => "jitter ±20 %, C2 down 2 to 8 h after 5 check-ins",
            TraceClass::Jitter50ConstantSize => "jitter ±50 %, constant payload",
            TraceClass::PoissonConstantSize => "Poisson, constant payload",
            TraceClass::BackupVariedSizes => "backup every 10 min, 1 MiB to 1 GiB",
            TraceClass::Jitter20VariedSmall => "jitter ±20 %, results of 200 B to 20 kB",
            TraceClass::Jitter20Padded => "jitter ±20 %, padded to 64 KiB to 64 MiB",
        }
    }

    pub fn expectation(self) -> Expectation {
        match self {
            TraceClass::Periodic
            | TraceClass::Jitter20
            | TraceClass::OneSidedJitter50
            | TraceClass::Jitter20Missed20
            | TraceClass::Rotating
            | TraceClass::RenamedScraper
            | TraceClass::RotatingByName
            | TraceClass::Hours6Jitter20
            | TraceClass::DailyJitter10
            | TraceClass::StrayThenBeacon
            | TraceClass::Jitter20Missed50
            | TraceClass::Outage
            | TraceClass::Jitter50ConstantSize
            | TraceClass::Jitter20VariedSmall => Expectation::Detect,
            TraceClass::Poisson
            | TraceClass::PoissonHours
            | TraceClass::Burst
            | TraceClass::ManyDestinations
            | TraceClass::DownloadSessions
            | TraceClass::Browsing
            | TraceClass::AllowlistedScraper
            | TraceClass::PoissonConstantSize
            | TraceClass::BackupVariedSizes => Expectation::Ignore,
            TraceClass::Jitter50 | TraceClass::Interleaved | TraceClass::Jitter20Padded => {
                Expectation::Report
            }
        }
    }
}

/// A generated trace: the records in time order and what produced them.
#[derive(Clone, Debug)]
pub struct Trace {
    pub class: TraceClass,
    pub seed: u64,
    pub records: Vec<ConnectionRecord>,
}

/// The records of `connections` connections of `class` (sessions, active periods or
/// check-ins per target for the classes that say so), from `seed`.
pub fn generate(class: TraceClass, connections: usize, seed: u64) -> Trace {
    let mut rng = Rng::new(seed);
    // Start somewhere in 2026 so timestamps look like real ones.
    let start = 1_767_225_600.0 + rng.uniform(0.0, 365.0 * 86_400.0);
    if let Some(sends) = many_destination_sends(class, connections, &mut rng) {
        return records(class, seed, start, &sends, &mut rng);
    }
    let times: Vec<f64> = match class {
        TraceClass::Periodic => (0..connections).map(|i| i as f64 * PERIOD_SECS).collect(),
        TraceClass::Jitter20 => jittered(&mut rng, connections, -0.2, 0.2, 0.0),
        TraceClass::OneSidedJitter50 => jittered(&mut rng, connections, -0.5, 0.0, 0.0),
        TraceClass::Jitter20Missed20 => jittered(&mut rng, connections, -0.2, 0.2, 0.2),
        TraceClass::Jitter20Missed50 => jittered(&mut rng, connections, -0.2, 0.2, 0.5),
        TraceClass::Hours6Jitter20 => beacon_times(&mut rng, 6.0 * 3600.0, 0.2, connections),
        TraceClass::DailyJitter10 => beacon_times(&mut rng, 86_400.0, 0.1, connections),
        TraceClass::PoissonHours => {
            let mut t = 0.0;
            (0..connections)
                .map(|_| {
                    let now = t;
                    t += rng.exponential(6.0 * 3600.0);
                    now
                })
                .collect()
        }
        TraceClass::StrayThenBeacon => {
            let mut t = 0.0;
            let mut ts = Vec::with_capacity(24 + connections);
            for _ in 0..24 {
                ts.push(t);
                // Log-uniform from 10 s to 1 h.
                t += 10.0 * 360f64.powf(rng.next_f64());
            }
            t += rng.uniform(10.0, 600.0);
            for b in beacon_times(&mut rng, PERIOD_SECS, 0.2, connections) {
                ts.push(t + b);
            }
            ts
        }
        TraceClass::Outage => {
            let mut ts = beacon_times(&mut rng, PERIOD_SECS, 0.2, connections);
            let down = rng.uniform(2.0 * 3600.0, 8.0 * 3600.0);
            ts.iter_mut().skip(5).for_each(|t| *t += down);
            ts
        }
        TraceClass::Jitter50 | TraceClass::Jitter50ConstantSize => {
            jittered(&mut rng, connections, -0.5, 0.5, 0.0)
        }
        TraceClass::Jitter20VariedSmall | TraceClass::Jitter20Padded => {
            jittered(&mut rng, connections, -0.2, 0.2, 0.0)
        }
        TraceClass::BackupVariedSizes => beacon_times(&mut rng, 600.0, 0.005, connections),
        TraceClass::ManyDestinations | TraceClass::Rotating | TraceClass::RotatingByName => {
            jittered(&mut rng, connections, -0.2, 0.2, 0.0)
        }
        TraceClass::Poisson | TraceClass::PoissonConstantSize => {
            let mut t = 0.0;
            (0..connections)
                .map(|_| {
                    let now = t;
                    t += rng.exponential(PERIOD_SECS);
                    now
                })
                .collect()
        }
        TraceClass::Burst => {
            let mut ts: Vec<f64> = (0..connections).map(|_| rng.uniform(0.0, 20.0)).collect();
            ts.sort_by(f64::total_cmp);
            ts
        }
        TraceClass::Interleaved => {
            let mut a = beacon_times(&mut rng, PERIOD_SECS, 0.1, connections);
            let mut b = beacon_times(&mut rng, 84.0, 0.1, connections);
            let phase = rng.uniform(0.0, 84.0);
            b.iter_mut().for_each(|t| *t += phase);
            a.append(&mut b);
            a.sort_by(f64::total_cmp);
            a.truncate(connections);
            a
        }
        TraceClass::DownloadSessions
        | TraceClass::Browsing
        | TraceClass::AllowlistedScraper
        | TraceClass::RenamedScraper => unreachable!("generated above"),
    };
    let sends: Vec<(f64, IpAddr)> = times
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let ip = match class {
                // A new address every time: 198.51.100.1, .2, ... then 192.0.2.x.
                TraceClass::ManyDestinations | TraceClass::RotatingByName => {
                    let i = i as u32;
                    if i < 254 {
                        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1 + i as u8))
                    } else {
                        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + ((i - 254) % 254) as u8))
                    }
                }
                TraceClass::Rotating => {
                    IpAddr::V4(Ipv4Addr::new(203, 0, 113, 20 + (rng.next_u64() % 3) as u8))
                }
                _ => DESTINATION,
            };
            (t, ip)
        })
        .collect();
    records(class, seed, start, &sends, &mut rng)
}

/// Times and destinations of the classes that reach several destinations on their own
/// schedule; `None` for the single-series classes.
fn many_destination_sends(
    class: TraceClass,
    n: usize,
    rng: &mut Rng,
) -> Option<Vec<(f64, IpAddr)>> {
    let mut sends = Vec::new();
    match class {
        TraceClass::DownloadSessions => {
            let mut t = 0.0;
            for _ in 0..n {
                let mirror = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 80 + (rng.next_u64() % 4) as u8));
                let len = 5 + rng.next_u64() % 56;
                for _ in 0..len {
                    sends.push((t, mirror));
                    t += rng.uniform(0.2, 4.0);
                }
                t += rng.uniform(120.0, 1800.0);
            }
        }
        TraceClass::Browsing => {
            let mut t = 0.0;
            for _ in 0..n {
                let end = t + rng.uniform(60.0, 600.0);
                while t < end {
                    // Squared uniform: a few sites get most of the visits.
                    let u = rng.next_f64();
                    let site = (u * u * 40.0) as u8;
                    sends.push((t, IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10 + site))));
                    t += rng.exponential(3.0);
                }
                t += rng.uniform(60.0, 1200.0);
            }
        }
        TraceClass::AllowlistedScraper | TraceClass::RenamedScraper => {
            for target in 0..4u8 {
                let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100 + target));
                let mut t = rng.uniform(0.0, 15.0);
                for _ in 0..n {
                    sends.push((t, ip));
                    t += 15.0 * (1.0 + rng.uniform(-0.02, 0.02));
                }
            }
        }
        _ => return None,
    }
    sends.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(sends)
}

/// The process each class runs as, and its destination port.
fn process_and_port(class: TraceClass, rng: &mut Rng) -> (Arc<ProcessInfo>, u16) {
    let pid = 1000 + (rng.next_u64() % 30_000) as u32;
    let (exe, args, port): (&str, &[&str], u16) = match class {
        TraceClass::AllowlistedScraper => (
            "/usr/bin/prometheus",
            &[
                "/usr/bin/prometheus",
                "--config.file=/etc/prometheus/prometheus.yml",
            ],
            9100,
        ),
        TraceClass::RenamedScraper => (
            "/tmp/prometheus",
            &[
                "/tmp/prometheus",
                "--config.file=/etc/prometheus/prometheus.yml",
            ],
            9100,
        ),
        TraceClass::BackupVariedSizes => (
            "/usr/bin/restic",
            &[
                "restic",
                "-r",
                "rest:http://192.0.2.5:8000/",
                "backup",
                "/home",
            ],
            8000,
        ),
        TraceClass::DownloadSessions => (
            "/usr/bin/python3.11",
            &["python3", "-m", "pip", "install", "-r", "requirements.txt"],
            PORT,
        ),
        TraceClass::Browsing => (
            "/usr/lib/firefox-esr/firefox-esr",
            &["/usr/lib/firefox-esr/firefox-esr", "-contentproc"],
            PORT,
        ),
        _ => (
            "/usr/bin/python3.11",
            &["python3", "/tmp/.cache/agent.py"],
            PORT,
        ),
    };
    let process = Arc::new(ProcessInfo {
        pid,
        name: exe.rsplit('/').next().map(str::to_string),
        executable: Some(exe.into()),
        command_line: Some(args.join(" ")),
        args: args.iter().map(|a| a.to_string()).collect(),
        user_id: Some(1000.into()),
        user_name: Some("alice".into()),
        ..ProcessInfo::default()
    });
    (process, port)
}

/// The trace's records: `sends` (seconds from `start`, destination) in time order.
fn records(
    class: TraceClass,
    seed: u64,
    start: f64,
    sends: &[(f64, IpAddr)],
    rng: &mut Rng,
) -> Trace {
    let (process, port) = process_and_port(class, rng);
    let domain: Option<Arc<str>> =
        (class == TraceClass::RotatingByName).then(|| Arc::from("cdn.c2.example"));

    let host: Arc<str> = Arc::from("sim-host");
    let mut records: Vec<ConnectionRecord> = sends
        .iter()
        .map(|&(t, ip)| ConnectionRecord {
            timestamp: Timestamp::from_secs_f64(start + t),
            host_name: host.clone(),
            process: process.clone(),
            source: Some(Endpoint {
                ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
                port: 32_768 + (rng.next_u64() % 28_000) as u16,
            }),
            destination: Endpoint { ip, port },
            transport: Transport::Tcp,
            partial: false,
            suppressed: 0,
            probe: None,
            dns_resolver: false,
            domain: domain.clone(),
            domain_source: domain.as_ref().map(|_| DomainSource::Process),
            dns: None,
            connection_id: None,
            life: None,
        })
        .collect();
    if let Some(payload) = Payload::of(class) {
        add_closes(&mut records, payload, rng);
    }
    Trace {
        class,
        seed,
        records,
    }
}

/// What each connection of a class with close records sends.
#[derive(Clone, Copy)]
enum Payload {
    /// 480 to 487 bytes.
    Constant,
    /// Log-uniform between two sizes (bytes).
    LogUniform(f64, f64),
}

impl Payload {
    fn of(class: TraceClass) -> Option<Payload> {
        Some(match class {
            TraceClass::Jitter50ConstantSize | TraceClass::PoissonConstantSize => Payload::Constant,
            TraceClass::BackupVariedSizes => Payload::LogUniform(1_048_576.0, 1_073_741_824.0),
            TraceClass::Jitter20VariedSmall => Payload::LogUniform(200.0, 20_000.0),
            TraceClass::Jitter20Padded => Payload::LogUniform(65_536.0, 67_108_864.0),
            _ => return None,
        })
    }

    fn bytes(self, rng: &mut Rng) -> u64 {
        match self {
            Payload::Constant => 480 + rng.next_u64() % 8,
            Payload::LogUniform(lo, hi) => (lo * (hi / lo).powf(rng.next_f64())) as u64,
        }
    }
}

/// Gives every connect a connection id and adds its close record (`--lifecycle`): the
/// bytes sent, a small response, and a duration of 50 to 350 ms plus the upload at
/// 40 MB/s; then puts the records back in time order.
fn add_closes(records: &mut Vec<ConnectionRecord>, payload: Payload, rng: &mut Rng) {
    let first_id = rng.next_u64() >> 1;
    let mut closes = Vec::with_capacity(records.len());
    for (i, rec) in records.iter_mut().enumerate() {
        let id = first_id + i as u64;
        rec.connection_id = Some(id);
        let sent = payload.bytes(rng);
        let received = 220 + rng.next_u64() % 8;
        let secs = rng.uniform(0.05, 0.35) + sent as f64 / 40e6;
        let duration_ns = (secs * 1e9) as u64;
        let mut close = rec.clone();
        close.timestamp = Timestamp(rec.timestamp.0 + duration_ns as i64);
        close.life = Some(Arc::new(Lifecycle {
            action: Some(LifeAction::Close),
            duration_ns: Some(duration_ns),
            source_bytes: Some(sent),
            destination_bytes: Some(received),
            source_packets: Some(sent / 1448 + 3),
            destination_packets: Some(4),
            ..Lifecycle::default()
        }));
        closes.push(close);
    }
    records.append(&mut closes);
    // Stable: a close never precedes its connect.
    records.sort_by_key(|r| r.timestamp);
}

/// `connections` check-in times: each interval is PERIOD × (1 + U(lo, hi)); each scheduled
/// check-in is missed with probability `miss` (the first is always made).
fn jittered(rng: &mut Rng, connections: usize, lo: f64, hi: f64, miss: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(connections);
    let mut t = 0.0;
    while out.len() < connections {
        if out.is_empty() || rng.next_f64() >= miss {
            out.push(t);
        }
        t += PERIOD_SECS * (1.0 + rng.uniform(lo, hi));
    }
    out
}

fn beacon_times(rng: &mut Rng, period: f64, jitter: f64, n: usize) -> Vec<f64> {
    let mut t = 0.0;
    (0..n)
        .map(|_| {
            let now = t;
            t += period * (1.0 + rng.uniform(-jitter, jitter));
            now
        })
        .collect()
}

/// xoshiro256++ (Blackman and Vigna), seeded through SplitMix64: small, fast, and fixed
/// here so traces never change with a dependency update.
pub struct Rng([u64; 4]);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.next_f64()).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_trace() {
        for class in TraceClass::ALL {
            let a = generate(class, 20, 7);
            let b = generate(class, 20, 7);
            assert_eq!(a.records, b.records, "{}", class.name());
            // n counts connections, or sessions, periods or check-ins per target.
            assert!(a.records.len() >= 20, "{}", class.name());
            let c = generate(class, 20, 8);
            assert_ne!(a.records, c.records, "{}", class.name());
        }
    }

    #[test]
    fn payload_classes_close_every_connect_once() {
        for (class, n) in TraceClass::PAYLOADS {
            let t = generate(class, n, 5);
            assert_eq!(t.records, generate(class, n, 5).records, "{}", class.name());
            let connects: Vec<_> = t.records.iter().filter(|r| r.life.is_none()).collect();
            let closes: Vec<_> = t.records.iter().filter(|r| r.life.is_some()).collect();
            assert_eq!(connects.len(), n, "{}", class.name());
            assert_eq!(closes.len(), n, "{}", class.name());
            for c in &connects {
                let close = closes
                    .iter()
                    .find(|x| x.connection_id == c.connection_id)
                    .unwrap();
                assert!(close.timestamp > c.timestamp);
                assert!(close.life.as_ref().unwrap().source_bytes.unwrap() >= 200);
            }
        }
    }

    #[test]
    fn traces_are_in_time_order() {
        for class in TraceClass::ALL {
            let t = generate(class, 20, 3);
            assert!(
                t.records
                    .windows(2)
                    .all(|w| w[0].timestamp <= w[1].timestamp),
                "{}",
                class.name()
            );
        }
    }

    #[test]
    fn xoshiro_matches_the_reference_sequence() {
        // SplitMix64 from seed 0 gives 0xe220a8397b1dcdaf first (Vigna's reference).
        let mut sm = Rng::new(0);
        assert_eq!(sm.0[0], 0xe220_a839_7b1d_cdaf);
        // xoshiro256++ outputs from that state, computed independently (Python).
        let xs: Vec<u64> = (0..3).map(|_| sm.next_u64()).collect();
        assert_eq!(
            xs,
            [
                0x5317_5d61_490b_23df,
                0x61da_6f3d_c380_d507,
                0x5c0f_df91_ec9a_7bfc
            ]
        );
        let u = Rng::new(1).next_f64();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn jitter_classes_stay_in_their_bands() {
        let t = generate(TraceClass::OneSidedJitter50, 30, 11);
        for w in t.records.windows(2) {
            let d = (w[1].timestamp.0 - w[0].timestamp.0) as f64 / 1e9;
            assert!((29.9..=60.1).contains(&d), "{d}");
        }
        let t = generate(TraceClass::ManyDestinations, 30, 11);
        let mut ips: Vec<_> = t.records.iter().map(|r| r.destination.ip).collect();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), 30);
    }
}
