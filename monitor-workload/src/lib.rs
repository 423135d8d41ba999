//! A realistic, deterministic stream of connection events as JSON lines (the records
//! `monitor run --events` writes), for the replay benchmark (xtask), the rule evaluation
//! benchmarks in monitor/benches/ and the alert-budget test. A crate of its own so tests and
//! benches share it without it shipping in the monitor.
//!
//! The mix is what a Linux workstation or small server makes in a day: browsers to 443 (some
//! QUIC over UDP, some IPv6), package managers and their HTTP methods to 80/443, the
//! resolver and time daemon over UDP, git, ssh, a mail relay, a metrics scraper, the log
//! forwarder. About 0.5 % of events are hits: interactive shells and script interpreters
//! calling out to known bad ports, a cloud metadata probe, and two processes beaconing to
//! port 8088 on a steady period (curl every 60 s, a python3 loop every 30 s), as in the
//! "8088 beacon test". Addresses come from the documentation ranges only.
//!
//! Depends on std and serde_json only.

use std::fmt::Write as _;
use std::io::{self, Write};

mod profiles;

/// What to generate.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    pub events: u64,
    /// Seed for the pseudo-random choices; the same seed gives the same bytes.
    pub seed: u64,
    /// Time of the first event, nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// Mean time between events (exponential gaps): 10 ms is 100 connections per second.
    pub mean_gap_ns: i64,
    /// Percent of (non-beacon) connections preceded by the DNS query record of their
    /// lookup, and so carrying `destination.domain` (0: the mix as before issue #13).
    pub dns_percent: u32,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            events: 1_000_000,
            seed: 0x5eed_2026,
            // 2026-11-23T00:00:00Z
            start_ns: 1_795_392_000 * 1_000_000_000,
            mean_gap_ns: 10_000_000,
            dns_percent: 0,
        }
    }
}

/// Counts of what was generated, for the report.
#[derive(Clone, Debug, Default)]
pub struct WorkloadStats {
    pub events: u64,
    pub bytes: u64,
    pub hits: u64,
    pub beacon_events: u64,
    pub udp: u64,
    pub ipv6: u64,
    /// DNS query records written (besides `events` connections).
    pub dns: u64,
    pub span_s: f64,
}

/// splitmix64: small, fast, and fully determined by its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

use profiles::{BEACONS, Dests, PROFILES, Proto};

/// One process: its JSON fragment (`"process":{...},"user":{...}`), written once.
struct Proc {
    fragment: String,
}

fn process_fragment(
    pid: u32,
    name: &str,
    exe: &str,
    args: &[&str],
    parent: (u32, &str, &str),
    user: (u32, &str),
) -> String {
    let v = serde_json::json!({
        "process": {
            "pid": pid,
            "thread": { "id": pid },
            "name": name,
            "executable": exe,
            "command_line": args.join(" "),
            "args": args,
            "parent": { "pid": parent.0, "name": parent.1, "executable": parent.2 },
        },
        "user": { "id": user.0.to_string(), "name": user.1 },
        "group": { "id": user.0.to_string() },
    });
    // Drop the braces: the fragment is spliced into the event object.
    let s = v.to_string();
    s[1..s.len() - 1].to_string()
}

/// Address number `i` of a spread pool: IPv4 in the documentation ranges, IPv6 in 2001:db8::/32.
fn spread_ip(profile: usize, i: u32, v6: bool) -> String {
    if v6 {
        format!("2001:db8:{:x}::{:x}", profile + 1, i + 1)
    } else {
        let nets = [[203, 0, 113], [198, 51, 100], [192, 0, 2]];
        let k = (profile as u32 * 977 + i) % (3 * 250);
        let n = nets[(k / 250) as usize];
        format!("{}.{}.{}.{}", n[0], n[1], n[2], k % 250 + 2)
    }
}

/// RFC 3339 UTC with nanoseconds, from nanoseconds since the epoch.
pub fn rfc3339(ns: i64, out: &mut String) {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
}

/// Writes `cfg.events` JSON lines to `out`.
pub fn generate(cfg: &WorkloadConfig, out: &mut dyn Write) -> io::Result<WorkloadStats> {
    let mut rng = Rng::new(cfg.seed);
    // Processes: every instance of every profile, pids spread like a real host's.
    let mut procs: Vec<Vec<Proc>> = Vec::new();
    let mut next_pid = 1200u32;
    for p in PROFILES {
        let parent_pid = next_pid;
        next_pid += 1 + rng.below(40) as u32;
        let mut v = Vec::new();
        for _ in 0..p.instances {
            v.push(Proc {
                fragment: process_fragment(
                    next_pid,
                    p.name,
                    p.exe,
                    p.args,
                    (parent_pid, p.parent.0, p.parent.1),
                    p.user,
                ),
            });
            next_pid += 1 + rng.below(300) as u32;
        }
        procs.push(v);
    }
    let beacon_procs: Vec<Proc> = BEACONS
        .iter()
        .map(|b| {
            let pid = next_pid;
            next_pid += 17;
            Proc {
                fragment: process_fragment(
                    pid,
                    b.name,
                    b.exe,
                    b.args,
                    (pid - 3, "bash", "/usr/bin/bash"),
                    (1001, "bob"),
                ),
            }
        })
        .collect();
    let total_weight: u32 = PROFILES.iter().map(|p| p.weight).sum();
    let mut next_beacon: Vec<i64> = BEACONS
        .iter()
        .enumerate()
        .map(|(i, _)| cfg.start_ns + (i as i64 + 1) * 7_000_000_000)
        .collect();

    let mut stats = WorkloadStats::default();
    let mut line = String::with_capacity(1024);
    let mut t = cfg.start_ns;
    let mut w = io::BufWriter::with_capacity(1 << 20, out);
    let mut src_port = 32_768u32;
    for _ in 0..cfg.events {
        // Exponential gaps: bursts and lulls like a real host.
        let gap = -(1.0 - rng.unit()).ln() * cfg.mean_gap_ns as f64;
        t += gap.max(1.0) as i64;
        line.clear();
        line.push_str("{\"@timestamp\":\"");
        // A beacon that is due goes first, at its own time.
        let due = next_beacon
            .iter()
            .enumerate()
            .filter(|(_, at)| **at <= t)
            .min_by_key(|(_, at)| **at)
            .map(|(i, _)| i);
        let (ts, fragment, dest_ip, port, proto, hit) = if let Some(b) = due {
            let at = next_beacon[b];
            let beacon = &BEACONS[b];
            let jitter = (rng.unit() * 2.0 - 1.0) * beacon.jitter;
            next_beacon[b] = at + (beacon.period_s * (1.0 + jitter) * 1e9) as i64;
            stats.beacon_events += 1;
            (
                at,
                beacon_procs[b].fragment.as_str(),
                beacon.dest.to_string(),
                beacon.port,
                Proto::Tcp,
                true,
            )
        } else {
            let mut pick = rng.below(total_weight as u64) as u32;
            let (pi, p) = PROFILES
                .iter()
                .enumerate()
                .find(|(_, p)| {
                    if pick < p.weight {
                        true
                    } else {
                        pick -= p.weight;
                        false
                    }
                })
                .expect("weights cover the range");
            let inst = &procs[pi][rng.below(p.instances as u64) as usize];
            let dest_ip = match p.dests {
                Dests::Fixed(ip) => ip.to_string(),
                Dests::Spread { n, v6_percent } => {
                    // Popular destinations get most of the traffic (squared uniform).
                    let u = rng.unit();
                    let i = ((u * u) * n as f64) as u32;
                    spread_ip(pi, i, rng.below(100) < v6_percent as u64)
                }
            };
            let total: u32 = p.ports.iter().map(|x| x.2).sum();
            let mut pk = rng.below(total as u64) as u32;
            let &(port, proto, _) = p
                .ports
                .iter()
                .find(|x| {
                    if pk < x.2 {
                        true
                    } else {
                        pk -= x.2;
                        false
                    }
                })
                .expect("shares cover the range");
            (t, inst.fragment.as_str(), dest_ip, port, proto, p.hit)
        };
        let v6 = dest_ip.contains(':');
        // The lookup before the connection: a DNS query record, then the connection names it.
        let domain = (due.is_none() && rng.below(100) < u64::from(cfg.dns_percent)).then(|| {
            let name = format!("h{}.p{}.example", rng.below(500), port);
            rfc3339(ts, &mut line);
            let (qtype, net) = if v6 { ("AAAA", "ipv6") } else { ("A", "ipv4") };
            let resolver = if v6 { "2001:db8::53" } else { "192.0.2.53" };
            let _ = writeln!(
                line,
                "\",\"event\":{{\"kind\":\"event\",\"category\":[\"network\"],\"type\":[\"protocol\",\"info\"],\"action\":\"dns-query\"}},\"host\":{{\"hostname\":\"bench-host\"}},{fragment},\"destination\":{{\"ip\":\"{resolver}\",\"port\":53}},\"network\":{{\"transport\":\"udp\",\"type\":\"{net}\",\"direction\":\"egress\"}},\"dns\":{{\"type\":\"answer\",\"question\":{{\"name\":\"{name}\",\"type\":\"{qtype}\"}},\"response_code\":\"NOERROR\",\"answers\":[{{\"name\":\"{name}\",\"type\":\"{qtype}\",\"ttl\":300,\"data\":\"{dest_ip}\"}}],\"resolved_ip\":[\"{dest_ip}\"]}},\"monitor\":{{\"enrichment\":\"full\",\"probe\":\"raw_tracepoint\"}}}}"
            );
            line.push_str("{\"@timestamp\":\"");
            stats.dns += 1;
            name
        });
        rfc3339(ts, &mut line);
        let action = if proto == Proto::Tcp {
            "connect"
        } else {
            "send"
        };
        let _ = write!(
            line,
            "\",\"event\":{{\"kind\":\"event\",\"category\":[\"network\"],\"type\":[\"connection\",\"start\"],\"action\":\"{action}\"}},\"host\":{{\"hostname\":\"bench-host\"}},{fragment}"
        );
        src_port = if src_port >= 60_999 {
            32_768
        } else {
            src_port + 1
        };
        let (src_ip, net_type) = if v6 {
            ("2001:db8:ffff::10", "ipv6")
        } else {
            ("192.0.2.200", "ipv4")
        };
        let transport = if proto == Proto::Tcp { "tcp" } else { "udp" };
        let probe = if proto == Proto::Tcp {
            "tracepoint"
        } else {
            "cgroup"
        };
        let (domain, domain_source) = match &domain {
            Some(name) => (
                format!(",\"domain\":\"{name}\""),
                ",\"domain_source\":\"process\"",
            ),
            None => (String::new(), ""),
        };
        let _ = writeln!(
            line,
            ",\"source\":{{\"ip\":\"{src_ip}\",\"port\":{src_port}}},\"destination\":{{\"ip\":\"{dest_ip}\",\"port\":{port}{domain}}},\"network\":{{\"transport\":\"{transport}\",\"type\":\"{net_type}\",\"direction\":\"egress\"}},\"monitor\":{{\"enrichment\":\"full\",\"probe\":\"{probe}\"{domain_source}}}}}"
        );
        w.write_all(line.as_bytes())?;
        stats.events += 1;
        stats.bytes += line.len() as u64;
        stats.hits += u64::from(hit);
        stats.udp += u64::from(proto == Proto::Udp);
        stats.ipv6 += u64::from(v6);
        t = t.max(ts);
    }
    w.flush()?;
    stats.span_s = (t - cfg.start_ns) as f64 / 1e9;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)] // unused where a bench includes this file without its tests
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        let mut s = String::new();
        rfc3339(0, &mut s);
        assert_eq!(s, "1970-01-01T00:00:00.000000000Z");
        s.clear();
        rfc3339(1_795_392_000 * 1_000_000_000 + 5, &mut s);
        assert_eq!(s, "2026-11-23T00:00:00.000000005Z");
        s.clear();
        rfc3339(951_782_400 * 1_000_000_000, &mut s);
        assert_eq!(s, "2000-02-29T00:00:00.000000000Z");
    }

    #[test]
    fn deterministic_valid_json_with_hits_and_beacons() {
        let cfg = WorkloadConfig {
            events: 50_000,
            ..WorkloadConfig::default()
        };
        let mut a = Vec::new();
        let stats = generate(&cfg, &mut a).unwrap();
        let mut b = Vec::new();
        generate(&cfg, &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(stats.events, 50_000);
        let text = String::from_utf8(a).unwrap();
        let mut last = String::new();
        let mut beacon_8088 = 0;
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let ts = v["@timestamp"].as_str().unwrap().to_string();
            assert!(ts >= last, "time goes backwards: {last} then {ts}");
            last = ts;
            if v["destination"]["port"] == 8088 {
                beacon_8088 += 1;
            }
        }
        // 50,000 events at 100/s span about 500 s: about 8 curl and 16 python beacons.
        assert!((15..40).contains(&beacon_8088), "{beacon_8088}");
        let hit_share = stats.hits as f64 / stats.events as f64;
        assert!((0.001..0.02).contains(&hit_share), "{hit_share}");
        assert!(stats.udp > 1000 && stats.ipv6 > 1000);
    }
}
