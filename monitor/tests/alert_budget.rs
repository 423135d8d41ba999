//! The alert budget (README, "What volume to expect"): one hour of the benchmark's realistic
//! host (`cargo xtask workload --events 360000`, the fixed default seed: browsers, package
//! managers, a resolver, a log forwarder, a metrics scraper, mail, git, ssh, downloads, and
//! about 0.6 % designed attacks) replayed with the built-in rules and detectors must give at
//! most `BENIGN_BUDGET` alert records on benign programs, and every designed attack must
//! still alert. Runs the real binary on the generated file; needs no root.

use monitor_workload as workload;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

/// Benign alert records allowed in the hour (README documents it).
const BENIGN_BUDGET: usize = 20;

/// One hour of event time at the workload's 100 events per second.
const HOUR_EVENTS: u64 = 360_000;

/// The designed attacks' destinations (the workload's hit profiles and beacons): an alert
/// to one of these is an attack alert, any other is benign.
const ATTACK_DESTINATIONS: &[&str] = &[
    "203.0.113.66",    // bash -i to 4444 (www-data)
    "198.51.100.23",   // python3 reverse shell to 9001
    "203.0.113.67",    // nc -e /bin/sh to 2222
    "169.254.169.254", // python3 credential collection from cloud metadata
    "203.0.113.99",    // xmrig to a mining pool on 3333
    "203.0.113.88",    // curl beaconing to 8088 every 60 s
    "198.51.100.88",   // python3 beaconing to 8088 every 30 s
];

fn replay_hour() -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hour.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let stats = workload::generate(
        &workload::WorkloadConfig {
            events: HOUR_EVENTS,
            ..workload::WorkloadConfig::default()
        },
        &mut file,
    )
    .unwrap();
    drop(file);
    assert!(
        (3500.0..3700.0).contains(&stats.span_s),
        "the workload no longer spans an hour: {} s",
        stats.span_s
    );
    let out = Command::new(env!("CARGO_BIN_EXE_monitor"))
        .arg("replay")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["event"]["kind"] == "alert")
        .collect()
}

fn brief(a: &Value) -> String {
    format!(
        "{} {} {} {}:{} {}",
        a["rule"]["id"].as_str().unwrap_or("?"),
        a["monitor"]["level"].as_str().unwrap_or("?"),
        a["process"]["executable"].as_str().unwrap_or("?"),
        a["destination"]["ip"].as_str().unwrap_or("?"),
        a["destination"]["port"],
        if a["monitor"]["aggregate"].is_object() {
            "(summary)"
        } else {
            ""
        }
    )
}

fn is_attack(a: &Value) -> bool {
    let ip = a["destination"]["ip"].as_str().unwrap_or_default();
    ATTACK_DESTINATIONS.contains(&ip)
}

#[test]
fn benchmark_hour_stays_within_the_alert_budget_and_every_attack_alerts() {
    let alerts = replay_hour();
    let (attack, benign): (Vec<&Value>, Vec<&Value>) = alerts.iter().partition(|a| is_attack(a));

    let mut by_rule: BTreeMap<String, usize> = BTreeMap::new();
    for a in &alerts {
        let key = format!(
            "{} ({})",
            a["rule"]["name"].as_str().unwrap_or("?"),
            if is_attack(a) { "attack" } else { "benign" }
        );
        *by_rule.entry(key).or_default() += 1;
    }
    println!("alerts in the benchmark hour, by rule:");
    for (rule, n) in &by_rule {
        println!("  {n:>5}  {rule}");
    }
    println!("benign alerts:");
    for a in &benign {
        println!("  {}", brief(a));
    }

    assert!(
        benign.len() <= BENIGN_BUDGET,
        "{} benign alert records in the benchmark hour (budget {BENIGN_BUDGET}):\n{}",
        benign.len(),
        benign
            .iter()
            .map(|a| brief(a))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Every designed attack still alerts, at the level an operator must see.
    let has = |exe: &str, ip: &str, rule: &str, level: Option<&str>| {
        attack.iter().any(|a| {
            a["process"]["executable"] == exe
                && a["destination"]["ip"] == ip
                && a["rule"]["id"] == rule
                && level.is_none_or(|l| a["monitor"]["level"] == l)
        })
    };
    const T1571: &str = "5e084fc2-22bb-4e3d-a8f4-8f75414a6e3a";
    const T1043: &str = "a15ce2a2-d60b-4b3f-98ec-13a85ec9311c";
    let required: &[(&str, &str, &str, Option<&str>, &str)] = &[
        (
            "/usr/bin/curl",
            "203.0.113.88",
            T1571,
            Some("high"),
            "curl 8088: T1571 high",
        ),
        (
            "/usr/bin/python3.11",
            "198.51.100.88",
            T1571,
            Some("high"),
            "python3 8088: T1571 high",
        ),
        (
            "/usr/bin/curl",
            "203.0.113.88",
            "monitor-beacon",
            Some("high"),
            "curl 8088: beacon",
        ),
        (
            "/usr/bin/python3.11",
            "198.51.100.88",
            "monitor-beacon",
            Some("high"),
            "python3 8088: beacon",
        ),
        (
            "/usr/bin/bash",
            "203.0.113.66",
            T1571,
            Some("high"),
            "bash -i to 4444",
        ),
        (
            "/usr/bin/python3.11",
            "198.51.100.23",
            T1571,
            Some("high"),
            "python3 reverse shell to 9001",
        ),
        (
            "/usr/bin/nc.traditional",
            "203.0.113.67",
            T1571,
            None,
            "nc -e to 2222",
        ),
        (
            "/usr/bin/python3.11",
            "169.254.169.254",
            T1043,
            None,
            "python3 to the cloud metadata service",
        ),
    ];
    let missing: Vec<&str> = required
        .iter()
        .filter(|(exe, ip, rule, level, _)| !has(exe, ip, rule, *level))
        .map(|r| r.4)
        .collect();
    assert!(
        missing.is_empty(),
        "designed attacks that no longer alert: {missing:?}\nattack alerts:\n{}",
        attack
            .iter()
            .map(|a| brief(a))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
