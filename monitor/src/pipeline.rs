//! The detection pipeline: one `ConnectionRecord` in, the record itself (with `--events`) and
//! any alerts out, in a deterministic order.
//!
//! Live capture and replay both feed this same type, so a detection that works in replay
//! works live, and a live run replays to the same alerts. Time only ever comes from the
//! records (`advance` is called with event time), never from the wall clock.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::detect::{BeaconConfig, BeaconDetector};
use crate::output::OutputRecord;
use crate::record::{Alert, ConnectionRecord, Timestamp};
use crate::rules::{RuleEngine, RuleSet};

/// What the pipeline hands to the outputs, borrowed so nothing is cloned per event.
pub enum Emitted<'a> {
    Event(&'a ConnectionRecord),
    Alert(&'a Alert),
}

impl Emitted<'_> {
    /// The record the outputs deliver.
    pub fn to_output(&self) -> OutputRecord {
        match self {
            Emitted::Event(r) => OutputRecord::from_event(r),
            Emitted::Alert(a) => OutputRecord::from_alert(a),
        }
    }
}

/// Counters the metric records report.
#[derive(Clone, Debug, Default)]
pub struct PipelineCounters {
    pub events: u64,
    pub partial_events: u64,
    pub alerts: u64,
    /// Alerts per rule id (beacon alerts under the detector's id).
    pub alerts_by_rule: BTreeMap<String, u64>,
}

pub struct Pipeline {
    rules: RuleEngine,
    beacon: BeaconDetector,
    emit_events: bool,
    /// Scratch buffer reused for every record, so alerts cost no allocation when none fire.
    alerts: Vec<Alert>,
    counters: PipelineCounters,
    /// Latest event time seen; time never moves backwards for the detectors.
    now: Timestamp,
}

impl Pipeline {
    pub fn new(rules: Arc<RuleSet>, beacon: BeaconConfig, emit_events: bool) -> Self {
        Pipeline {
            rules: RuleEngine::new(rules),
            beacon: BeaconDetector::new(beacon),
            emit_events,
            alerts: Vec::new(),
            counters: PipelineCounters::default(),
            now: Timestamp(i64::MIN),
        }
    }

    /// Replaces the rule set (SIGHUP). The record after this call sees the new rules; none
    /// is evaluated against a mix of old and new.
    pub fn set_rules(&mut self, rules: Arc<RuleSet>) {
        self.rules.set_rules(rules);
    }

    pub fn counters(&self) -> &PipelineCounters {
        &self.counters
    }

    pub fn beacon_keys(&self) -> usize {
        self.beacon.key_count()
    }

    /// Runs one record through the rules and detectors. Windows that end before the record's
    /// time are closed first, so summaries come out in time order.
    pub fn process(&mut self, rec: &ConnectionRecord, out: &mut dyn FnMut(Emitted<'_>)) {
        self.advance(rec.timestamp, out);
        self.counters.events += 1;
        if rec.partial {
            self.counters.partial_events += 1;
        }
        if self.emit_events {
            out(Emitted::Event(rec));
        }
        self.rules.process(rec, &mut self.alerts);
        self.beacon.process(rec, &mut self.alerts);
        self.drain(out);
    }

    /// Moves event time forward (live: on a timer; replay: from each record).
    pub fn advance(&mut self, now: Timestamp, out: &mut dyn FnMut(Emitted<'_>)) {
        if now <= self.now {
            return;
        }
        self.now = now;
        self.rules.advance(now, &mut self.alerts);
        self.beacon.advance(now, &mut self.alerts);
        self.drain(out);
    }

    /// End of input (replay) or shutdown (live): close every open window.
    pub fn finish(&mut self, out: &mut dyn FnMut(Emitted<'_>)) {
        self.rules.finish(&mut self.alerts);
        self.beacon.finish(&mut self.alerts);
        self.drain(out);
    }

    /// Hands the alerts raised so far to `out`. Called twice per record and nearly always
    /// with none, so that case is a length test, not a `Vec::drain` set up and dropped.
    #[inline]
    fn drain(&mut self, out: &mut dyn FnMut(Emitted<'_>)) {
        if !self.alerts.is_empty() {
            self.drain_alerts(out);
        }
    }

    fn drain_alerts(&mut self, out: &mut dyn FnMut(Emitted<'_>)) {
        for alert in self.alerts.drain(..) {
            self.counters.alerts += 1;
            // The id is copied only the first time a rule fires.
            match self.counters.alerts_by_rule.get_mut(alert.rule.id.as_str()) {
                Some(n) => *n += 1,
                None => {
                    self.counters
                        .alerts_by_rule
                        .insert(alert.rule.id.clone(), 1);
                }
            }
            out(Emitted::Alert(&alert));
        }
    }
}
