//! Tests of the beacon detector: keys, sessions, fan-out, allowlist, windows, memory.
//!
//! Length: one test module for one detector, over 800 lines because each behaviour (sessions,
//! fan-out, allowlist, windows, caps, memory) has its positive case and near misses.
use super::*;
use crate::record::Endpoint;

const T0: f64 = 1_780_000_000.0;

pub(super) fn process(exe: &str, uid: u32, pid: u32) -> Arc<ProcessInfo> {
    Arc::new(ProcessInfo {
        pid,
        name: exe.rsplit('/').next().map(str::to_string),
        executable: Some(exe.to_string()),
        user_id: Some(uid.into()),
        ..ProcessInfo::default()
    })
}

pub(super) fn rec(
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
        domain: None,
        domain_source: None,
        dns: None,
        connection_id: None,
        life: None,
    }
}

/// `n` TCP connections from `p` to ip:port, `period` seconds apart, from `start`.
pub(super) fn beacon(
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

pub(super) fn run(det: &mut BeaconDetector, recs: &[ConnectionRecord]) -> Vec<Alert> {
    let mut out = Vec::new();
    for r in recs {
        det.process(r, &mut out);
    }
    out
}

pub(super) fn detector() -> BeaconDetector {
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
            // Series gap 800 s × 4 × 1.22 = 3,904 s, so the idle limit is below the
            // 4,000 s jumps.
            max_interval_secs: 800.0,
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

/// The 8088 test with another program resolving the C2's name part-way: from then on the
/// monitor names curl's destination from the host-wide table. The series must not split
/// at that point (the atomic simulations' flake: no alert from 1 + 9 check-ins).
#[test]
fn a_host_wide_name_arriving_mid_beacon_keeps_one_series() {
    let mut out = Vec::new();
    let mut det = detector();
    for i in 0..10u32 {
        let p = process("/usr/bin/curl", 0, 5000 + i);
        let mut r = rec(&p, "203.0.113.7", 8088, Transport::Tcp, f64::from(i) * 6.0);
        if i > 0 {
            r.domain = Some("c2.example".into());
            r.domain_source = Some(DomainSource::Host);
        }
        det.process(&r, &mut out);
    }
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].beacon.as_ref().unwrap().connections, 10);
}

/// Names the process asked for still group rotating addresses into one series (DNS round
/// robin), and the same addresses under a host-wide name do not.
#[test]
fn a_name_the_process_asked_for_groups_rotating_addresses() {
    let run = |source: DomainSource| {
        let mut out = Vec::new();
        let mut det = BeaconDetector::try_new(BeaconConfig {
            // The destination key alone: the port key would also see the rotation.
            rotating_ip_key: false,
            ..BeaconConfig::default()
        })
        .unwrap();
        let p = process("/usr/bin/python3", 1000, 7);
        for i in 0..10u32 {
            let ip = format!("192.0.2.{}", 10 + i % 3);
            let mut r = rec(&p, &ip, 443, Transport::Tcp, f64::from(i) * 60.0);
            r.domain = Some("cdn.example".into());
            r.domain_source = Some(source);
            det.process(&r, &mut out);
        }
        out.len()
    };
    assert_eq!(run(DomainSource::Process), 1);
    assert_eq!(run(DomainSource::Host), 0);
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

/// The longest interval a reading explains: a day, with `max_missed` (3) check-ins
/// missed, at the fold tolerance (1.22 periods per period).
const SERIES_GAP_SECS: f64 = 86_400.0 * 4.0 * 1.22;

#[test]
fn intervals_above_the_series_gap_restart_the_series() {
    let p = process("/usr/bin/python3", 0, 1);
    let alerts = run(
        &mut detector(),
        &beacon(&p, "192.0.2.3", 8088, SERIES_GAP_SECS + 1.0, 12),
    );
    assert!(alerts.is_empty());
    let alerts = run(&mut detector(), &beacon(&p, "192.0.2.3", 8088, 7200.0, 10));
    assert_eq!(alerts.len(), 1, "a 2 h period is within the 24 h maximum");
    let alerts = run(
        &mut detector(),
        &beacon(&p, "192.0.2.3", 8088, 86_000.0, 10),
    );
    assert_eq!(alerts.len(), 1, "so is a daily one");
    // Periods above the maximum (with its tolerance) are not beacons, even when held.
    let alerts = run(
        &mut detector(),
        &beacon(&p, "192.0.2.3", 8088, 86_400.0 * 1.4, 10),
    );
    assert!(alerts.is_empty());
}

#[test]
fn stray_traffic_before_a_beacon_does_not_hide_it() {
    // Irregular use of the key first (30 intervals from 7 s to 50 min), then a beacon
    // every 60 s: reported by its 12th check-in (`recovery_connections`), long before
    // the ring of 32 intervals holds beacon intervals only.
    let p = process("/usr/bin/python3", 0, 1);
    let mut recs = Vec::new();
    let mut t = 0.0;
    for i in 0..31u32 {
        recs.push(rec(&p, "192.0.2.4", 8088, Transport::Tcp, t));
        t += [7.0, 3000.0, 41.0, 900.0, 13.0, 222.0][i as usize % 6];
    }
    let start = t + 300.0;
    let checkins: Vec<_> = (0..12)
        .map(|i| {
            rec(
                &p,
                "192.0.2.4",
                8088,
                Transport::Tcp,
                start + f64::from(i) * 60.0,
            )
        })
        .collect();
    let mut det = detector();
    let mut out = Vec::new();
    for r in recs.iter().chain(&checkins[..11]) {
        det.process(r, &mut out);
    }
    assert!(out.is_empty(), "11 check-ins: 10 beacon intervals");
    det.process(&checkins[11], &mut out);
    assert_eq!(out.len(), 1, "the 12th check-in");
    // Without the recovery window the full ring decides, and it is mostly strays.
    let cfg = BeaconConfig {
        recovery_connections: 33,
        ..BeaconConfig::default()
    };
    let alerts = run(
        &mut BeaconDetector::try_new(cfg).unwrap(),
        &recs.iter().chain(&checkins).cloned().collect::<Vec<_>>(),
    );
    assert!(alerts.is_empty());
}

#[test]
fn a_beacon_missing_half_its_check_ins_is_reported_by_its_sparse_count() {
    // 60 s ± 20 %, about half the check-ins missed (up to 7 in a row): 30 connections.
    let intervals = [
        61.2, 118.9, 55.3, 181.7, 124.8, 124.8, 49.8, 179.0, 243.1, 58.1, 107.6, 63.7, 112.0,
        196.5, 69.3, 131.9, 57.7, 424.0, 64.8, 112.3, 50.9, 301.8, 71.6, 126.4, 59.9, 168.2, 54.4,
        239.7, 62.3,
    ];
    let p = process("/usr/bin/python3", 0, 1);
    let mut t = 0.0;
    let mut recs = vec![rec(&p, "192.0.2.5", 8088, Transport::Tcp, t)];
    for dt in intervals {
        t += dt;
        recs.push(rec(&p, "192.0.2.5", 8088, Transport::Tcp, t));
    }
    let alerts = run(&mut detector(), &recs);
    assert_eq!(alerts.len(), 1);
    let stats = alerts[0].beacon.as_ref().unwrap();
    // Not before `sparse_connections` (20), by the 30th.
    assert!((20..=30).contains(&stats.connections), "{stats:?}");
    assert!((stats.median_interval_s - 60.0).abs() < 3.0, "{stats:?}");
    // Without the sparse reading, the missed check-ins hide it.
    let cfg = BeaconConfig {
        sparse_connections: 34,
        ..BeaconConfig::default()
    };
    assert!(run(&mut BeaconDetector::try_new(cfg).unwrap(), &recs).is_empty());
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
    // The series gap after the last check-in the keys are still held ...
    det.advance(
        Timestamp::from_secs_f64(T0 + 240.0 + SERIES_GAP_SECS - 1.0),
        &mut out,
    );
    assert_eq!(det.key_count(), 2);
    // ... and gone just after.
    det.advance(
        Timestamp::from_secs_f64(T0 + 240.0 + SERIES_GAP_SECS + 1.0),
        &mut out,
    );
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
        &rec(
            &q,
            "192.0.2.6",
            80,
            Transport::Tcp,
            240.0 + SERIES_GAP_SECS + 100.0,
        ),
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
    // 128 bytes of intervals, the last alert, and the pointer to the sizes (close
    // records), allocated only once one joins.
    assert!(intervals <= 152, "IntervalRing is {intervals} bytes");
    assert!(
        destinations <= 136,
        "DestinationRing is {destinations} bytes"
    );
    assert!(size_of::<DestinationKey>() <= 32);
    assert!(size_of::<PortKey>() <= 16);
}
