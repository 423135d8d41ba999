//! Tests of the allowlist (built-in and configured) and of the `[beacon]` settings, apart
//! from `beacon_tests.rs` (keys, series, scoring, alerts), whose helpers they share.

use super::tests::{beacon, detector, process, rec, run};
use super::*;
use serde::Deserialize;

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
    assert!(
        bad(BeaconConfig {
            sparse_connections: 35,
            ..d()
        })
        .starts_with("beacon.sparse_connections = 35")
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
