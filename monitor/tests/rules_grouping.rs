//! Alert grouping (`monitor.group_by` / `monitor.window`): first alert at once, further
//! matches counted, a summary with `monitor.aggregate.*` when the window closes by event
//! time, all windows closed at the end of input.

#[path = "fixtures/rules/support.rs"]
mod support;

use std::sync::Arc;

use monitor::record::{Alert, Level, Timestamp};
use monitor::rules::{RuleEngine, RuleSet};
use support::ev;

const RULE: &str = r#"
title: grouped test rule
id: grouped-1
logsource:
    category: network_connection
    product: linux
detection:
    selection:
        DestinationPort|gt: 1000
    c2:
        DestinationPort: 4444
    condition: selection
level: high
tags:
    - attack.t1571
monitor:
    group_by:
        - host.hostname
        - Image
    window: 60s
    level:
        - when: c2
          value: high
        - value: low
    risk_score:
        - when: c2
          value: 3
        - value: 1
    labels:
        kind: grouped
"#;

fn engine() -> RuleEngine {
    let set = RuleSet::from_texts(&[("g.yml", RULE)]).unwrap().rules;
    RuleEngine::new(Arc::new(set))
}

fn t(secs: i64) -> Timestamp {
    Timestamp(Timestamp::parse_rfc3339("2026-11-23T10:00:00Z").unwrap().0 + secs * 1_000_000_000)
}

fn curl(at: i64, ip: &str, port: u16) -> monitor::record::ConnectionRecord {
    ev().image("/usr/bin/curl").dst(ip, port).at(at).build()
}

#[test]
fn first_alert_at_once_then_counted_then_summarized_at_window_end() {
    let mut e = engine();
    let mut out: Vec<Alert> = Vec::new();
    e.process(&curl(0, "203.0.113.1", 5000), &mut out);
    assert_eq!(out.len(), 1, "the first match is alerted at once");
    assert!(out[0].aggregate.is_none());
    assert_eq!(out[0].labels["kind"], "grouped");
    e.process(&curl(10, "203.0.113.2", 5001), &mut out);
    e.process(&curl(20, "203.0.113.2", 5000), &mut out);
    assert_eq!(
        out.len(),
        1,
        "further matches in the window are only counted"
    );
    e.advance(t(59), &mut out);
    assert_eq!(out.len(), 1, "the window is still open");
    e.advance(t(60), &mut out);
    assert_eq!(out.len(), 2);
    let s = &out[1];
    let agg = s.aggregate.as_ref().expect("summary has an aggregate");
    assert_eq!(agg.count, 3);
    assert_eq!(agg.first_seen, "2026-11-23T10:00:00Z");
    assert_eq!(agg.last_seen, "2026-11-23T10:00:20Z");
    assert_eq!(agg.destination_ips, vec!["203.0.113.1", "203.0.113.2"]);
    assert_eq!(agg.destination_ports, vec![5000, 5001]);
    assert_eq!(
        s.timestamp,
        t(60),
        "a summary is stamped with the window's end"
    );
    assert_eq!(s.rule.id, "grouped-1");
    let j: serde_json::Value = serde_json::from_str(&s.to_json_line()).unwrap();
    assert_eq!(j["monitor"]["aggregate"]["count"], 3);
    assert_eq!(
        j["monitor"]["aggregate"]["destination_ports"],
        serde_json::json!([5000, 5001])
    );
    assert_eq!(e.open_groups(), 0);
}

#[test]
fn groups_are_separate_per_key_and_windows_restart() {
    let mut e = engine();
    let mut out = Vec::new();
    e.process(&curl(0, "203.0.113.1", 5000), &mut out);
    e.process(
        &ev()
            .image("/usr/bin/wget")
            .dst("203.0.113.1", 5000)
            .at(1)
            .build(),
        &mut out,
    );
    e.process(
        &ev()
            .image("/usr/bin/curl")
            .host("h2")
            .dst("203.0.113.1", 5000)
            .at(2)
            .build(),
        &mut out,
    );
    assert_eq!(out.len(), 3, "image and host are part of the key");
    assert_eq!(e.open_groups(), 3);
    // A match after the window's end (event time) closes the old window first.
    e.process(&curl(30, "203.0.113.1", 5000), &mut out);
    e.process(&curl(100, "203.0.113.9", 5000), &mut out);
    let tail: Vec<_> = out[3..]
        .iter()
        .map(|a| a.aggregate.as_ref().map(|g| g.count))
        .collect();
    // h1/curl summary (count 2), then wget and h2/curl windows closed without a summary
    // (a single match each), then a new h1/curl first alert.
    assert_eq!(tail, vec![Some(2), None]);
    assert_eq!(
        out.last().unwrap().event.destination.ip.to_string(),
        "203.0.113.9"
    );
}

#[test]
fn a_window_with_one_match_has_no_summary() {
    let mut e = engine();
    let mut out = Vec::new();
    e.process(&curl(0, "203.0.113.1", 5000), &mut out);
    e.advance(t(3600), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(e.open_groups(), 0);
}

#[test]
fn finish_closes_every_open_window_at_the_last_event_time() {
    let mut e = engine();
    let mut out = Vec::new();
    e.process(&curl(0, "203.0.113.1", 5000), &mut out);
    e.process(&curl(5, "203.0.113.1", 5000), &mut out);
    e.process(
        &ev()
            .image("/usr/bin/wget")
            .dst("203.0.113.1", 5000)
            .at(6)
            .build(),
        &mut out,
    );
    e.process(
        &ev()
            .image("/usr/bin/wget")
            .dst("203.0.113.1", 5000)
            .at(7)
            .build(),
        &mut out,
    );
    out.clear();
    e.finish(&mut out);
    assert_eq!(out.len(), 2);
    assert!(
        out.iter().all(|a| a.timestamp == t(7)),
        "end of input, not the window end"
    );
    assert_eq!(e.open_groups(), 0);
}

#[test]
fn aggregates_keep_at_most_10_addresses_and_20_ports() {
    let mut e = engine();
    let mut out = Vec::new();
    for i in 0..30u16 {
        e.process(
            &curl(i as i64, &format!("203.0.113.{}", i + 1), 5000 + i),
            &mut out,
        );
    }
    e.finish(&mut out);
    let agg = out.last().unwrap().aggregate.as_ref().unwrap();
    assert_eq!(agg.count, 30);
    assert_eq!(agg.destination_ips.len(), 10);
    assert_eq!(agg.destination_ports.len(), 20);
    assert_eq!(agg.destination_ips[0], "203.0.113.1");
}

#[test]
fn escalation_in_a_window_is_alerted_at_once_and_the_summary_has_the_highest_tier() {
    let mut e = engine();
    let mut out = Vec::new();
    e.process(&curl(0, "203.0.113.1", 5000), &mut out);
    assert_eq!((out[0].level, out[0].risk_score), (Level::Low, Some(1)));
    e.process(&curl(1, "203.0.113.1", 4444), &mut out);
    assert_eq!(
        out.len(),
        2,
        "a higher level is not held back until the window ends"
    );
    assert_eq!((out[1].level, out[1].risk_score), (Level::High, Some(3)));
    e.process(&curl(2, "203.0.113.1", 5002), &mut out);
    e.process(&curl(3, "203.0.113.1", 4444), &mut out);
    assert_eq!(out.len(), 2);
    e.finish(&mut out);
    let s = out.last().unwrap();
    assert_eq!(s.aggregate.as_ref().unwrap().count, 4);
    assert_eq!((s.level, s.risk_score), (Level::High, Some(3)));
    assert_eq!(
        s.event.destination.port, 4444,
        "the summary shows the latest match"
    );
}

#[test]
fn replay_is_deterministic() {
    let run = || {
        let mut e = engine();
        let mut out = Vec::new();
        for i in 0..50i64 {
            let exe = if i % 3 == 0 {
                "/usr/bin/curl"
            } else {
                "/usr/bin/python3.11"
            };
            let rec = ev()
                .image(exe)
                .dst("203.0.113.5", 4000 + (i % 7) as u16)
                .at(i * 17)
                .build();
            e.process(&rec, &mut out);
        }
        e.finish(&mut out);
        out.iter().map(|a| a.to_json_line()).collect::<Vec<_>>()
    };
    let a = run();
    assert_eq!(a, run());
    assert!(a.iter().any(|l| l.contains("\"aggregate\"")));
}

#[test]
fn reloading_rules_keeps_open_windows() {
    let mut e = engine();
    let mut out = Vec::new();
    e.process(&curl(0, "203.0.113.1", 5000), &mut out);
    e.set_rules(Arc::new(
        RuleSet::from_texts(&[("g.yml", RULE)]).unwrap().rules,
    ));
    e.process(&curl(1, "203.0.113.1", 5000), &mut out);
    assert_eq!(out.len(), 1, "the reloaded rule joins the open group");
    e.finish(&mut out);
    assert_eq!(out.last().unwrap().aggregate.as_ref().unwrap().count, 2);
}

#[test]
fn ungrouped_rules_alert_every_match() {
    let set = Arc::new(
        RuleSet::from_texts(&[(
            "u.yml",
            "title: u\nid: 00000000-0000-4000-8000-0000000000aa\nlevel: low\n\
             logsource:\n  category: network_connection\n\
             detection:\n  sel:\n    DestinationPort: 443\n  condition: sel\n",
        )])
        .unwrap()
        .rules,
    );
    let mut e = RuleEngine::new(set);
    let mut out = Vec::new();
    for i in 0..3 {
        e.process(
            &ev()
                .image("/usr/bin/python3.11")
                .dst("203.0.113.7", 443)
                .at(i)
                .build(),
            &mut out,
        );
    }
    assert_eq!(out.len(), 3, "a rule without group_by alerts every match");
}

#[test]
fn t1043_groups_like_the_t1571_seed() {
    // One alert per program, user and parent per hour; the rest is counted into a summary.
    let set = Arc::new(RuleSet::builtin().unwrap());
    let mut e = RuleEngine::new(set);
    let mut out = Vec::new();
    for i in 0..50 {
        e.process(
            &ev()
                .image("/usr/bin/python3.11")
                .parent("/usr/bin/bash")
                .user("alice")
                .dst(&format!("198.51.100.{}", 1 + i % 30), 443)
                .at(i64::from(i) * 10)
                .build(),
            &mut out,
        );
    }
    // Another user's python3 is its own group: alerted at once.
    e.process(
        &ev()
            .image("/usr/bin/python3.11")
            .parent("/usr/bin/bash")
            .user("mallory")
            .dst("203.0.113.9", 443)
            .at(600)
            .build(),
        &mut out,
    );
    assert_eq!(out.len(), 2, "one alert per group");
    e.finish(&mut out);
    let summaries: Vec<_> = out.iter().filter(|a| a.aggregate.is_some()).collect();
    assert_eq!(summaries.len(), 1);
    let agg = summaries[0].aggregate.as_ref().unwrap();
    assert_eq!(agg.count, 50);
    assert_eq!(agg.destination_ips.len(), 10, "at most 10 addresses");
}
