//! Sigma correlation rules on the stream: the specification's own examples for each type
//! (with this log source's fields), windows crossing, bounded conditions tested when the
//! window closes, group eviction at the cap, out-of-order input in replay, reload, and load
//! errors for what is not implemented.

#[path = "fixtures/rules/support.rs"]
mod support;

use std::sync::Arc;

use monitor::detect::BeaconConfig;
use monitor::pipeline::{Emitted, Pipeline};
use monitor::record::{Alert, ConnectionRecord, Level};
use monitor::rules::{MAX_CORRELATION_GROUPS, RuleEngine, RuleSet};
use support::ev;

/// A base rule named `name` that matches connections to `port`.
fn base(id: &str, name: &str, port: u16) -> String {
    format!(
        r#"title: base {name}
id: {id}
name: {name}
logsource:
    category: network_connection
    product: linux
detection:
    selection:
        DestinationPort: {port}
    condition: selection
level: low
"#
    )
}

fn load(docs: &[String]) -> Arc<RuleSet> {
    let text = docs.join("---\n");
    match RuleSet::from_texts(&[("corr.yml", &text)]) {
        Ok(r) => Arc::new(r.rules),
        Err(e) => panic!("rules do not load: {e}\n{text}"),
    }
}

fn load_error(docs: &[String]) -> String {
    let text = docs.join("---\n");
    match RuleSet::from_texts(&[("corr.yml", &text)]) {
        Ok(_) => panic!("loaded, but should not:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Runs records through one engine, then closes every window; the alerts of `id`.
fn run(set: &Arc<RuleSet>, recs: &[ConnectionRecord], id: &str) -> Vec<Alert> {
    let mut e = RuleEngine::new(Arc::clone(set));
    let mut out = Vec::new();
    for r in recs {
        e.process(r, &mut out);
    }
    e.finish(&mut out);
    out.retain(|a| a.rule.id == id);
    out
}

/// Through the pipeline (as `monitor replay` runs), every alert as a JSON value.
fn replay(set: &Arc<RuleSet>, recs: &[ConnectionRecord]) -> Vec<serde_json::Value> {
    let mut p = Pipeline::new(Arc::clone(set), BeaconConfig::default(), false);
    let mut out = Vec::new();
    let mut sink = |e: Emitted<'_>| {
        if let Emitted::Alert(a) = e {
            out.push(serde_json::from_str(&a.to_json_line()).expect("an alert is JSON"));
        }
    };
    for r in recs {
        p.process(r, &mut sink);
    }
    p.finish(&mut sink);
    out
}

const EVENT_COUNT: &str = r#"title: Many connections to one port
id: corr-event-count
correlation:
    type: event_count
    rules:
        - 5638f7c0-ac70-491d-8465-2a65075e0d86
    group-by:
        - Computer
    timespan: 1h
    condition:
        gte: 5
level: high
tags:
    - attack.t1046
"#;

fn event_count_set() -> Arc<RuleSet> {
    load(&[
        EVENT_COUNT.to_string(),
        base("5638f7c0-ac70-491d-8465-2a65075e0d86", "to_4444", 4444),
    ])
}

/// The specification's event_count example (ComputerName is `Computer` here).
#[test]
fn event_count_alerts_at_the_count_within_the_timespan_per_group() {
    let set = event_count_set();
    let on = |host: &str, s: i64| ev().host(host).dst("203.0.113.7", 4444).at(s).build();
    // Four on h1, five on h2, all within the hour: only h2's group reaches five.
    let mut recs: Vec<ConnectionRecord> = (0..4).map(|i| on("h1", i * 60)).collect();
    recs.extend((0..5).map(|i| on("h2", i * 60)));
    let alerts = run(&set, &recs, "corr-event-count");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let c = alerts[0].correlation.as_ref().expect("monitor.correlation");
    assert_eq!(c.kind, "event_count");
    assert_eq!(c.count, 5);
    assert_eq!(c.rules, ["5638f7c0-ac70-491d-8465-2a65075e0d86"]);
    assert_eq!(c.group["Computer"], "h2");
    assert_eq!(alerts[0].level, Level::High);
    assert_eq!(alerts[0].timestamp, recs[8].timestamp, "at the fifth event");
    assert_eq!(&*alerts[0].techniques, ["T1046"]);
}

/// Windows crossing: five events, but never five within one hour of each other.
#[test]
fn event_count_over_more_than_the_timespan_does_not_alert() {
    let set = event_count_set();
    let recs: Vec<ConnectionRecord> = (0..5)
        .map(|i| ev().dst("203.0.113.7", 4444).at(i * 1200).build())
        .collect();
    assert!(run(&set, &recs, "corr-event-count").is_empty());
    // Moving the fifth in by a second puts all five inside one hour (0 s .. 3600 s).
    let mut recs = recs;
    recs.insert(4, ev().dst("203.0.113.7", 4444).at(3600).build());
    assert_eq!(run(&set, &recs, "corr-event-count").len(), 1);
}

/// After an alert the group counts afresh, and alerts at most once per timespan.
#[test]
fn event_count_alerts_once_per_timespan_while_it_keeps_holding() {
    let set = event_count_set();
    let recs: Vec<ConnectionRecord> = (0..50)
        .map(|i| ev().dst("203.0.113.7", 4444).at(i * 10).build())
        .collect();
    assert_eq!(run(&set, &recs, "corr-event-count").len(), 1, "500 s < 1 h");
    let recs: Vec<ConnectionRecord> = (0..50)
        .map(|i| ev().dst("203.0.113.7", 4444).at(i * 600).build())
        .collect();
    // Every 10 minutes for 8 h 10 min: the fifth event (at 40 min) alerts, then one alert
    // an hour (at 1 h 40, 2 h 40, ... 7 h 40).
    let alerts = run(&set, &recs, "corr-event-count");
    let minutes: Vec<i64> = alerts
        .iter()
        .map(|a| (a.timestamp.0 - recs[0].timestamp.0) / 60_000_000_000)
        .collect();
    assert_eq!(minutes, [40, 100, 160, 220, 280, 340, 400, 460]);
}

/// `generate: false` (the default): the correlated rule raises no alert of its own.
#[test]
fn correlated_rules_alert_only_with_generate_true() {
    let rec = ev().dst("203.0.113.7", 4444).build();
    let set = event_count_set();
    assert!(
        run(
            &set,
            std::slice::from_ref(&rec),
            "5638f7c0-ac70-491d-8465-2a65075e0d86"
        )
        .is_empty()
    );
    let generating = load(&[
        format!("{EVENT_COUNT}generate: true\n"),
        base("5638f7c0-ac70-491d-8465-2a65075e0d86", "to_4444", 4444),
    ]);
    assert_eq!(
        run(&generating, &[rec], "5638f7c0-ac70-491d-8465-2a65075e0d86").len(),
        1
    );
}

/// The specification's value_count example: distinct `User` per host pair (here the host
/// and the destination), at least 3 in a day.
#[test]
fn value_count_counts_distinct_values_and_lists_them() {
    let set = load(&[
        r#"title: Many users to one destination
id: corr-value-count
correlation:
    type: value_count
    rules:
        - any_4444
    group-by:
        - Computer
        - DestinationIp
    timespan: 1d
    condition:
        field: User
        gte: 3
level: medium
"#
        .to_string(),
        base("b1", "any_4444", 4444),
    ]);
    let by = |user: &str, s: i64| ev().user(user).dst("203.0.113.7", 4444).at(s).build();
    let recs = [
        by("alice", 0),
        by("alice", 10),
        by("bob", 20),
        by("alice", 30),
    ];
    assert!(run(&set, &recs, "corr-value-count").is_empty(), "two users");
    let mut recs = recs.to_vec();
    recs.push(by("carol", 86_000));
    let alerts = run(&set, &recs, "corr-value-count");
    assert_eq!(alerts.len(), 1);
    let c = alerts[0].correlation.as_ref().unwrap();
    assert_eq!(c.count, 3);
    assert_eq!(c.field.as_deref(), Some(&["User".to_string()][..]));
    let values = c.values.as_ref().unwrap();
    assert_eq!(
        values,
        &["bob", "alice", "carol"].map(serde_json::Value::from)
    );
    assert_eq!(c.group["DestinationIp"], "203.0.113.7");
    // A day and a bit later, bob's connection has left the window.
    recs.pop();
    recs.push(by("carol", 86_421));
    assert!(run(&set, &recs, "corr-value-count").is_empty());
}

const RECON: [(&str, u16); 3] = [
    ("recon_cmd_a", 21),
    ("recon_cmd_b", 22),
    ("recon_cmd_c", 23),
];

fn temporal_set(kind: &str) -> Arc<RuleSet> {
    let mut docs = vec![format!(
        r#"title: Recon in {kind} order
id: corr-{kind}
correlation:
    type: {kind}
    rules:
        - recon_cmd_a
        - recon_cmd_b
        - recon_cmd_c
    group-by:
        - Computer
        - User
    timespan: 5m
level: high
"#
    )];
    for (i, (name, port)) in RECON.iter().enumerate() {
        docs.push(base(&format!("recon-{i}"), name, *port));
    }
    load(&docs)
}

/// The specification's temporal example: three rules in any order within 5 minutes, on one
/// host by one user.
#[test]
fn temporal_needs_every_rule_within_the_timespan_in_any_order() {
    let set = temporal_set("temporal");
    let hit =
        |port: u16, user: &str, s: i64| ev().user(user).dst("203.0.113.7", port).at(s).build();
    let alerts = run(
        &set,
        &[hit(23, "bob", 0), hit(21, "bob", 60), hit(22, "bob", 120)],
        "corr-temporal",
    );
    assert_eq!(alerts.len(), 1);
    let c = alerts[0].correlation.as_ref().unwrap();
    assert_eq!((c.kind, c.count), ("temporal", 3));
    assert_eq!(c.rules, ["recon-0", "recon-1", "recon-2"]);
    // Another user's third step does not complete bob's group.
    assert!(
        run(
            &set,
            &[hit(23, "bob", 0), hit(21, "bob", 60), hit(22, "eve", 120)],
            "corr-temporal"
        )
        .is_empty()
    );
    // Spread over more than 5 minutes.
    assert!(
        run(
            &set,
            &[hit(23, "bob", 0), hit(21, "bob", 200), hit(22, "bob", 301)],
            "corr-temporal"
        )
        .is_empty()
    );
}

/// The specification's temporal_ordered example shape: the rules in the order named.
#[test]
fn temporal_ordered_needs_the_order_named() {
    let set = temporal_set("temporal_ordered");
    let hit = |port: u16, s: i64| ev().dst("203.0.113.7", port).at(s).build();
    let id = "corr-temporal_ordered";
    assert_eq!(
        run(&set, &[hit(21, 0), hit(22, 10), hit(23, 20)], id).len(),
        1
    );
    assert!(run(&set, &[hit(23, 0), hit(22, 10), hit(21, 20)], id).is_empty());
    // A late A does not start a sequence after B and C.
    assert!(run(&set, &[hit(22, 0), hit(21, 10), hit(23, 20)], id).is_empty());
    // ... but a B and C that follow it do.
    assert_eq!(
        run(
            &set,
            &[
                hit(22, 0),
                hit(21, 10),
                hit(23, 20),
                hit(22, 30),
                hit(23, 40)
            ],
            id
        )
        .len(),
        1
    );
}

/// The specification's alias example: one address as the destination in one rule's events
/// and as the source in the other's.
#[test]
fn aliases_group_different_fields_of_different_rules() {
    let set = load(&[
        r#"title: Both directions
id: corr-alias
correlation:
    type: temporal
    rules:
        - internal_error
        - new_network_connection
    group-by:
        - internal_ip
    timespan: 10s
    aliases:
        internal_ip:
            internal_error: DestinationIp
            new_network_connection: SourceIp
level: medium
"#
        .to_string(),
        base("a1", "internal_error", 500),
        base("a2", "new_network_connection", 8443),
    ]);
    let err = ev().dst("192.0.2.10", 500).at(0).build();
    let conn = ev()
        .src("192.0.2.10", 5555)
        .dst("198.51.100.1", 8443)
        .at(5)
        .build();
    let other = ev()
        .src("192.0.2.99", 5555)
        .dst("198.51.100.1", 8443)
        .at(5)
        .build();
    let alerts = run(&set, &[err.clone(), conn], "corr-alias");
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].correlation.as_ref().unwrap().group["internal_ip"],
        "192.0.2.10"
    );
    assert!(run(&set, &[err, other], "corr-alias").is_empty());
}

/// Upper bounds are known only when the window is over: tested at its close (by event
/// time, or at the end of input).
#[test]
fn bounded_conditions_are_tested_when_the_window_closes() {
    let set = load(&[
        r#"title: Only a few
id: corr-range
correlation:
    type: event_count
    rules:
        - to_4444
    group-by:
        - Image
    timespan: 60s
    condition:
        gt: 1
        lte: 3
level: low
"#
        .to_string(),
        base("b1", "to_4444", 4444),
    ]);
    let hit = |img: &str, s: i64| ev().image(img).dst("203.0.113.7", 4444).at(s).build();
    let recs = [
        hit("/usr/bin/a", 0),
        hit("/usr/bin/a", 10),
        hit("/usr/bin/b", 0),
        hit("/usr/bin/b", 1),
        hit("/usr/bin/b", 2),
        hit("/usr/bin/b", 3),
        hit("/usr/bin/c", 5),
        // Moves event time past the first windows' end: they close now.
        hit("/usr/bin/d", 100),
    ];
    let mut e = RuleEngine::new(Arc::clone(&set));
    let mut out = Vec::new();
    for r in &recs[..7] {
        e.process(r, &mut out);
    }
    assert!(out.is_empty(), "nothing is known before the window closes");
    e.process(&recs[7], &mut out);
    assert_eq!(out.len(), 1, "a: 2 in (1, 3]; b: 4; c: 1");
    assert_eq!(
        out[0].correlation.as_ref().unwrap().group["Image"],
        "/usr/bin/a"
    );
    assert_eq!(
        out[0].timestamp,
        ev().at(60).build().timestamp,
        "stamped with the window's end"
    );
    e.finish(&mut out);
    assert_eq!(out.len(), 1, "d: 1 at the end of input");
}

/// At `MAX_CORRELATION_GROUPS` open groups the least recently matched one goes, counted.
#[test]
fn groups_past_the_cap_evict_the_least_recently_matched() {
    let set = load(&[
        r#"title: Two per process
id: corr-cap
correlation:
    type: event_count
    rules:
        - to_4444
    group-by:
        - ProcessId
    timespan: 1h
    condition:
        gte: 2
level: low
"#
        .to_string(),
        base("b1", "to_4444", 4444),
    ]);
    let mut e = RuleEngine::new(Arc::clone(&set));
    let mut out = Vec::new();
    let pid = |pid: u32| {
        let mut r = ev().dst("203.0.113.7", 4444).at(1).build();
        let mut p = (*r.process).clone();
        p.pid = pid;
        r.process = Arc::new(p);
        r
    };
    let recs: Vec<ConnectionRecord> = (1..=MAX_CORRELATION_GROUPS as u32 + 1).map(pid).collect();
    for r in &recs[..MAX_CORRELATION_GROUPS] {
        e.process(r, &mut out);
    }
    assert_eq!(e.correlation_groups(), MAX_CORRELATION_GROUPS);
    assert_eq!(e.correlation_evictions(), 0);
    // One more group: pid 1's, the least recently matched, goes.
    e.process(&recs[MAX_CORRELATION_GROUPS], &mut out);
    assert_eq!(e.correlation_groups(), MAX_CORRELATION_GROUPS);
    assert_eq!(e.correlation_evictions(), 1);
    // pid 1 was evicted: its second event starts a new count (no alert; pid 2 goes to make
    // room); pid 3's second event alerts.
    e.process(&recs[0], &mut out);
    assert!(out.is_empty(), "{out:?}");
    e.process(&recs[2], &mut out);
    assert_eq!(out.len(), 1);
}

/// Replay with records out of order (within the pipeline's clock step): events count by
/// their own time, so the alert is the one in-order input gives.
#[test]
fn out_of_order_records_in_replay_give_the_in_order_alerts() {
    let set = load(&[
        r#"title: Port sweep
id: corr-sweep
correlation:
    type: value_count
    rules:
        - any
    group-by:
        - Image
        - DestinationIp
    timespan: 60s
    condition:
        field: DestinationPort
        gte: 10
level: high
"#
        .to_string(),
        r#"title: any
id: any-conn
name: any
logsource:
    category: network_connection
detection:
    selection:
        DestinationPort|gte: 1
    condition: selection
"#
        .to_string(),
    ]);
    let hit = |port: u16, s: i64| {
        ev().image("/usr/bin/nmap")
            .dst("203.0.113.7", port)
            .at(s)
            .build()
    };
    let ordered: Vec<ConnectionRecord> = (0..10).map(|i| hit(1000 + i, i as i64 * 5)).collect();
    let mut shuffled = ordered.clone();
    shuffled.swap(0, 7);
    shuffled.swap(2, 9);
    shuffled.swap(4, 5);
    let a = replay(&set, &ordered);
    let b = replay(&set, &shuffled);
    assert_eq!(a.len(), 1);
    assert_eq!(b.len(), 1);
    let c = |v: &serde_json::Value| v["monitor"]["correlation"].clone();
    assert_eq!(c(&a[0])["count"], 10);
    assert_eq!(c(&a[0])["first_seen"], c(&b[0])["first_seen"]);
    assert_eq!(c(&a[0])["last_seen"], c(&b[0])["last_seen"]);
    let mut va: Vec<u64> = c(&a[0])["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let mut vb: Vec<u64> = c(&b[0])["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    va.sort_unstable();
    vb.sort_unstable();
    assert_eq!(va, vb);
    assert_eq!(c(&a[0])["group"]["Image"], "/usr/bin/nmap");
    assert_eq!(c(&a[0])["timespan"], "60s");
    assert_eq!(a[0]["rule"]["id"], "corr-sweep");
    // A tenth port more than 60 s after the first nine is not a sweep of ten.
    let mut late = ordered.clone();
    late[9] = hit(1009, 120);
    assert!(replay(&set, &late).is_empty());
}

/// Reload (SIGHUP): a correlation whose id and definition are unchanged keeps its groups;
/// a changed one starts again.
#[test]
fn reload_keeps_unchanged_correlations_and_resets_changed_ones() {
    let set = event_count_set();
    let hit = |s: i64| ev().dst("203.0.113.7", 4444).at(s).build();
    let feed = |e: &mut RuleEngine, range: std::ops::Range<i64>| {
        let mut out = Vec::new();
        for s in range {
            e.process(&hit(s), &mut out);
        }
        out.retain(|a| a.rule.id == "corr-event-count");
        out
    };
    let mut e = RuleEngine::new(Arc::clone(&set));
    assert!(feed(&mut e, 0..3).is_empty());
    e.set_rules(event_count_set());
    assert_eq!(feed(&mut e, 3..5).len(), 1, "3 before the reload + 2 after");

    let mut e = RuleEngine::new(Arc::clone(&set));
    assert!(feed(&mut e, 0..3).is_empty());
    let changed = load(&[
        EVENT_COUNT.replace("timespan: 1h", "timespan: 2h"),
        base("5638f7c0-ac70-491d-8465-2a65075e0d86", "to_4444", 4444),
    ]);
    e.set_rules(changed);
    assert_eq!(
        e.correlation_groups(),
        0,
        "the changed correlation's groups are gone"
    );
    assert!(feed(&mut e, 3..7).is_empty(), "4 after the reload");
    assert_eq!(feed(&mut e, 7..8).len(), 1, "the fifth after the reload");
}

fn error_with(corr: &str) -> String {
    load_error(&[corr.to_string(), base("b1", "to_4444", 4444)])
}

/// What the engine does not implement is a load error naming the file, the line and the
/// construct.
#[test]
fn unsupported_constructs_are_load_errors_with_file_and_line() {
    let head = "title: c\nid: c1\ncorrelation:\n";
    let cases: &[(&str, &str, &str)] = &[
        (
            "    type: value_sum\n    rules: [to_4444]\n    group-by: [Image]\n    timespan: 1h\n    condition:\n        field: DestinationPort\n        gt: 5\n",
            "corr.yml:4: rule c1: type value_sum",
            "not supported",
        ),
        (
            "    type: event_count\n    rules: [to_4444]\n    group-by: [Image]\n    timespan: 1h\n    condition:\n        gte: 5\n    timeframe: 1h\n",
            "corr.yml:10: rule c1: timeframe",
            "not a key",
        ),
        (
            "    type: temporal_ordered\n    rules: [to_4444]\n    group-by: [Image]\n    timespan: 1h\n    condition:\n        gte: 1\n",
            "corr.yml:8: rule c1: condition",
            "not supported",
        ),
        (
            "    type: event_count\n    rules: [to_4444]\n    group-by: [Image]\n    timespan: 1w\n    condition:\n        gte: 5\n",
            "corr.yml:7: rule c1: timespan",
            "not a duration",
        ),
        (
            "    type: event_count\n    rules: [nosuchrule]\n    group-by: [Image]\n    timespan: 1h\n    condition:\n        gte: 5\n",
            "corr.yml:5: rule c1: rules: nosuchrule",
            "no loaded rule",
        ),
        (
            "    type: event_count\n    rules: [to_4444]\n    group-by: [Imagee]\n    timespan: 1h\n    condition:\n        gte: 5\n",
            "corr.yml:6: rule c1: field Imagee",
            "unknown field",
        ),
        (
            "    type: event_count\n    rules: [to_4444]\n    group-by: [Image]\n    timespan: 1h\n    condition:\n        gte: 5000000\n",
            "corr.yml:9: rule c1: condition.gte",
            "Limits",
        ),
        (
            "    type: event_count\n    rules: [to_4444]\n    group-by: [Image]\n    timespan: 1h\n    condition:\n        gte: 5\nmonitor:\n    window: 1h\n",
            "corr.yml:10: rule c1: monitor",
            "not correlation rules",
        ),
    ];
    for (body, want, words) in cases {
        let e = error_with(&format!("{head}{body}"));
        assert!(
            e.contains(want) && e.contains(words),
            "want {want:?} / {words:?}, got:\n{e}"
        );
    }
}

/// The specification's complete example chains a correlation to another; chaining is not
/// implemented, so it is refused at the line of the reference.
#[test]
fn chained_correlations_are_refused_at_their_reference() {
    let e = load_error(&[
        r#"title: Many failed then one success
id: outer
correlation:
    type: temporal_ordered
    rules:
        - multiple_failed
        - success
    group-by:
        - User
    timespan: 10m
level: high
"#
        .to_string(),
        r#"title: Multiple failed
id: inner
name: multiple_failed
correlation:
    type: event_count
    rules:
        - failed
    group-by:
        - User
    timespan: 10m
    condition:
        gte: 10
"#
        .to_string(),
        base("f1", "failed", 4444),
        base("s1", "success", 443),
    ]);
    assert!(
        e.contains("corr.yml:6: rule outer: rules: multiple_failed") && e.contains("chained"),
        "{e}"
    );
}

/// Group values come from the process (its path, its user): in the alert line they are
/// escaped like every other string, so none can end the line or forge a field.
#[test]
fn hostile_group_values_stay_inside_their_json_string() {
    let set = event_count_set();
    let hostile = "/tmp/x\n{\"event\":{\"kind\":\"alert\"}}\u{1b}[2J\"";
    let recs: Vec<ConnectionRecord> = (0..5)
        .map(|i| ev().host(hostile).dst("203.0.113.7", 4444).at(i).build())
        .collect();
    let alerts = run(&set, &recs, "corr-event-count");
    assert_eq!(alerts.len(), 1);
    let line = alerts[0].to_json_line();
    assert_eq!(line.matches('\n').count(), 1, "{line}");
    let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON object");
    assert_eq!(v["monitor"]["correlation"]["group"]["Computer"], hostile);
    assert_eq!(v["monitor"]["correlation"]["count"], 5);
}
