//! The window's bookkeeping: order by event time, capacity, pruning, ordered sequences.
//! Behaviour on the stream is tested in tests/rules_correlation.rs.

use std::sync::Arc;

use super::window::{Value, Window};
use super::{Bounds, CorrelationRule, Kind};
use crate::record::{Level, RuleMeta, Timestamp};

fn rule(kind: Kind, bounds: Bounds, rules: usize) -> CorrelationRule {
    CorrelationRule {
        meta: Arc::new(RuleMeta {
            id: "c".into(),
            name: "c".into(),
            description: String::new(),
            reference: Vec::new(),
            ruleset: "inline".into(),
        }),
        level: Level::High,
        techniques: Arc::from([]),
        tags: Vec::new(),
        status: None,
        falsepositives: Vec::new(),
        file: "c.yml".into(),
        line: 1,
        kind,
        rules: (0..rules).collect(),
        rule_ids: (0..rules).map(|i| i.to_string()).collect(),
        group_by: Vec::new(),
        group_fields: vec![Vec::new(); rules],
        split_fields: vec![(Vec::new(), Vec::new()); rules],
        value_names: Vec::new(),
        value_fields: vec![Vec::new(); rules],
        timespan_ns: 10 * Timestamp::NANOS_PER_SEC,
        timespan: "10s".into(),
        bounds,
        generate: false,
        fingerprint: String::new(),
    }
}

fn at(s: i64) -> Timestamp {
    Timestamp(s * Timestamp::NANOS_PER_SEC)
}

fn gte(n: u64) -> Bounds {
    Bounds {
        min: n,
        max: None,
        neq: None,
    }
}

#[test]
fn bounds_hold_as_the_specification_compares() {
    let range = Bounds {
        min: 101,
        max: Some(200),
        neq: None,
    };
    assert!(!range.holds(100) && range.holds(101) && range.holds(200) && !range.holds(201));
    assert!(!range.rising());
    assert_eq!(range.needed(), 201);
    let neq = Bounds {
        min: 0,
        max: None,
        neq: Some(3),
    };
    assert!(neq.holds(2) && !neq.holds(3) && neq.holds(4) && !neq.rising());
    assert!(gte(5).rising() && gte(5).holds(5) && !gte(5).holds(4));
    assert_eq!(gte(5).needed(), 5);
}

#[test]
fn late_events_are_placed_by_their_time_and_pruned_by_the_newest() {
    let r = rule(Kind::EventCount, gte(100), 1);
    let mut w = Window::new(at(0));
    for s in [5, 1, 9, 3, 20] {
        w.add(&r, 0, at(s), Value::NONE);
    }
    let times: Vec<i64> = w.entries.iter().map(|e| e.t.0 / 1_000_000_000).collect();
    assert_eq!(times, [1, 3, 5, 9, 20]);
    w.prune(r.timespan_ns);
    let times: Vec<i64> = w.entries.iter().map(|e| e.t.0 / 1_000_000_000).collect();
    assert_eq!(
        times,
        [20],
        "only what is within 10 s of the newest (20 s) stays"
    );
}

#[test]
fn value_count_keeps_one_entry_per_value_at_its_latest_time_and_its_capacity() {
    let r = rule(Kind::ValueCount, gte(3), 1);
    let mut w = Window::new(at(0));
    w.add(&r, 0, at(1), Value::num(22).unwrap());
    w.add(&r, 0, at(2), Value::num(80).unwrap());
    w.add(&r, 0, at(3), Value::num(22).unwrap());
    assert_eq!(w.count(&r), 2);
    assert_eq!(
        w.entries[1].v,
        Value::num(22).unwrap(),
        "22 moved to its latest time"
    );
    w.add(&r, 0, at(4), Value::num(443).unwrap());
    w.add(&r, 0, at(5), Value::num(8080).unwrap());
    assert_eq!(w.count(&r), 3, "capacity is what the condition needs");
    assert_eq!(
        w.entries[0].v,
        Value::num(22).unwrap(),
        "the oldest value (80) went"
    );
}

#[test]
fn ordered_sequences_need_each_step_strictly_after_the_one_before() {
    let r = rule(Kind::TemporalOrdered, gte(3), 3);
    let mut w = Window::new(at(0));
    w.add(&r, 2, at(1), Value::NONE);
    w.add(&r, 0, at(2), Value::NONE);
    w.add(&r, 1, at(3), Value::NONE);
    assert_eq!(w.count(&r), 0, "C came before A");
    w.add(&r, 2, at(4), Value::NONE);
    assert_eq!(w.count(&r), 3);
    let mut same = Window::new(at(0));
    for pos in 0..3 {
        same.add(&r, pos, at(7), Value::NONE);
    }
    assert_eq!(same.count(&r), 0, "one instant is not an order");
}

#[test]
fn temporal_counts_each_rule_once() {
    let r = rule(Kind::Temporal, gte(3), 3);
    let mut w = Window::new(at(0));
    for s in 0..10 {
        w.add(&r, 0, at(s), Value::NONE);
    }
    assert_eq!(w.count(&r), 1);
    w.add(&r, 2, at(3), Value::NONE);
    w.add(&r, 1, at(4), Value::NONE);
    assert_eq!(w.count(&r), 3);
}
