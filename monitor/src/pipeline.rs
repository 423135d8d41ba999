//! The detection pipeline: one `ConnectionRecord` in, the record itself (with `--events`) and
//! any alerts out, in a deterministic order.
//!
//! Live capture and replay both feed this same type, so a detection that works in replay
//! works live, and a live run replays to the same alerts. In replay, time only ever comes
//! from the records; live, the daemon also calls `advance` once a second with the wall
//! clock (daemon.rs), so windows close when no event arrives. Kernel timestamps are wall
//! time too, so both clocks agree, and a step of either follows the rule below.
//!
//! The event clock (the latest time accepted) never moves backwards for the detectors, so
//! one time far off could switch detection off: a record from the year 2200 would close
//! every window and leave every later record "in the past". So a time more than
//! [`MAX_CLOCK_STEP`] (1 h) ahead of or behind the event clock does not move it alone: the
//! record is held until a second observation (the next record, or live the next clock
//! tick) says where time is.
//! - The next one is within the step of the clock again: the held record was an outlier. It
//!   is left out of detection (no rule, no detector, not written with `--events`), counted
//!   and reported ([`Pipeline::take_outliers`]), and the clock is unchanged.
//! - The next one agrees with the held record (within the step of it): time really jumped
//!   (a gap in a recording, a suspended machine, a wall-clock step). Forward, the clock
//!   follows and the held records are processed; backward, the detectors' windows are
//!   closed (their summaries written) and detection starts again from the new time. Either
//!   way it is counted as a clock jump.
//!
//! Before any time is known, the first record is held the same way, so a first line from the
//! year 2200 cannot set the clock either. Records within the step are processed at once, in
//! input order, as before: steady recordings and live capture are unaffected.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::detect::{BeaconConfig, BeaconDetector};
use crate::dns::NameTables;
use crate::lifecycle::OutcomeTable;
use crate::output::OutputRecord;
use crate::record::{Alert, ConnectionRecord, LifeAction, Lifecycle, Timestamp};
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
    /// Records left out of detection because their time was more than `MAX_CLOCK_STEP` from
    /// the event clock and nothing after them agreed.
    pub time_outliers: u64,
    /// Times the event clock followed a jump of more than `MAX_CLOCK_STEP`, forward or back.
    pub clock_jumps: u64,
}

/// How far (ns) a time may be from the event clock and still be taken at once: 1 h. Live
/// events arrive within a second or two of the clock and a recording's neighbours within
/// far less, so only a wrong time or a real jump is further.
pub const MAX_CLOCK_STEP: i64 = 3_600 * Timestamp::NANOS_PER_SEC;

/// Observations that must agree on a time more than `MAX_CLOCK_STEP` from the clock before
/// the clock follows: the record (or tick) that jumped and one more.
const JUMP_CONFIRMATIONS: usize = 2;

/// A record left out of detection because of its time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outlier {
    /// What the caller gave with the record (replay: its line number).
    pub tag: u64,
    pub time: Timestamp,
    /// The event clock then (`None` before any time was accepted).
    pub clock: Option<Timestamp>,
}

/// A jump of the event clock the pipeline followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockJump {
    pub from: Timestamp,
    pub to: Timestamp,
    /// The tag of the record that jumped (0 for a clock tick).
    pub tag: u64,
}

/// Something more than `MAX_CLOCK_STEP` from the clock, waiting for a second opinion.
struct Held {
    time: Timestamp,
    /// The record and its tag; `None` for a clock tick (live).
    record: Option<(ConnectionRecord, u64)>,
}

pub struct Pipeline {
    rules: RuleEngine,
    beacon: BeaconDetector,
    emit_events: bool,
    /// Scratch buffer reused for every record, so alerts cost no allocation when none fire.
    alerts: Vec<Alert>,
    counters: PipelineCounters,
    /// The event clock: latest event time accepted; it never moves backwards for the
    /// detectors. `None` until two observations agreed on a time.
    clock: Option<Timestamp>,
    /// Observations too far from the clock, all within `MAX_CLOCK_STEP` of the first.
    held: Vec<Held>,
    /// Reported to the caller by `take_outliers` / `take_clock_jumps`.
    outliers: Vec<Outlier>,
    jumps: Vec<ClockJump>,
    /// For new detectors after a backward jump.
    beacon_config: BeaconConfig,
    /// Correlation groups evicted by rule engines replaced after a backward jump.
    correlation_evictions_before: u64,
    /// Address → name asked, from the DNS query records seen (`crate::dns::table`).
    names: NameTables,
    /// Connect outcomes per (process, destination), for beacon alerts (`--lifecycle`).
    outcomes: OutcomeTable,
}

impl Pipeline {
    pub fn new(rules: Arc<RuleSet>, beacon: BeaconConfig, emit_events: bool) -> Self {
        Pipeline {
            rules: RuleEngine::new(rules),
            beacon: BeaconDetector::new(beacon.clone()),
            emit_events,
            alerts: Vec::new(),
            counters: PipelineCounters::default(),
            clock: None,
            held: Vec::new(),
            outliers: Vec::new(),
            jumps: Vec::new(),
            beacon_config: beacon,
            correlation_evictions_before: 0,
            names: NameTables::new(),
            outcomes: OutcomeTable::default(),
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

    /// The DNS attribution tables (`destination.domain`).
    pub fn names(&self) -> &NameTables {
        &self.names
    }

    pub fn beacon_keys(&self) -> usize {
        self.beacon.key_count()
    }

    /// Open Sigma correlation groups.
    pub fn correlation_groups(&self) -> usize {
        self.rules.correlation_groups()
    }

    /// Correlation groups dropped since start because the store was full
    /// (`rules::MAX_CORRELATION_GROUPS`).
    pub fn correlation_evictions(&self) -> u64 {
        self.correlation_evictions_before + self.rules.correlation_evictions()
    }

    /// The event clock (`None` before any time was accepted).
    pub fn clock(&self) -> Option<Timestamp> {
        self.clock
    }

    /// Records left out of detection since the last call (see the module comment).
    pub fn take_outliers(&mut self) -> Vec<Outlier> {
        std::mem::take(&mut self.outliers)
    }

    /// Clock jumps followed since the last call.
    pub fn take_clock_jumps(&mut self) -> Vec<ClockJump> {
        std::mem::take(&mut self.jumps)
    }

    /// `process_tagged` with no tag.
    pub fn process(&mut self, rec: &ConnectionRecord, out: &mut dyn FnMut(Emitted<'_>)) {
        self.process_tagged(rec, 0, out);
    }

    /// Runs one record through the rules and detectors, or holds it when its time is more
    /// than `MAX_CLOCK_STEP` from the event clock (see the module comment). `tag` comes back
    /// with the record if it turns out an outlier (replay gives the line number).
    #[inline]
    pub fn process_tagged(
        &mut self,
        rec: &ConnectionRecord,
        tag: u64,
        out: &mut dyn FnMut(Emitted<'_>),
    ) {
        if self.held.is_empty() && self.in_step(rec.timestamp) {
            self.run(rec, out);
            return;
        }
        self.observe(rec.timestamp, Some((rec, tag)), out);
    }

    /// Whether `t` is within `MAX_CLOCK_STEP` of the event clock.
    #[inline]
    fn in_step(&self, t: Timestamp) -> bool {
        self.clock
            .is_some_and(|c| t.0.abs_diff(c.0) <= MAX_CLOCK_STEP as u64)
    }

    /// A record (or a tick, without one) that is far from the clock or comes while others
    /// are held.
    fn observe(
        &mut self,
        t: Timestamp,
        record: Option<(&ConnectionRecord, u64)>,
        out: &mut dyn FnMut(Emitted<'_>),
    ) {
        if self.in_step(t) {
            // Back near the clock: what was held was off.
            self.reject_held();
            match record {
                Some((rec, _)) => self.run(rec, out),
                None => self.move_clock(t, out),
            }
            return;
        }
        if let Some(first) = self.held.first()
            && first.time.0.abs_diff(t.0) > MAX_CLOCK_STEP as u64
        {
            self.reject_held();
        }
        self.held.push(Held {
            time: t,
            record: record.map(|(rec, tag)| (rec.clone(), tag)),
        });
        if self.held.len() >= JUMP_CONFIRMATIONS {
            self.follow_held(out);
        }
    }

    /// The held records are outliers.
    fn reject_held(&mut self) {
        for h in self.held.drain(..) {
            if let Some((rec, tag)) = h.record {
                self.counters.time_outliers += 1;
                self.outliers.push(Outlier {
                    tag,
                    time: rec.timestamp,
                    clock: self.clock,
                });
            }
        }
    }

    /// The held observations agree: the clock goes to them. Backwards, the detectors close
    /// their windows and start again, since their state is keyed on a time that is gone.
    fn follow_held(&mut self, out: &mut dyn FnMut(Emitted<'_>)) {
        let held = std::mem::take(&mut self.held);
        let to = held[0].time;
        if let Some(from) = self.clock {
            self.counters.clock_jumps += 1;
            self.jumps.push(ClockJump {
                from,
                to,
                tag: held[0].record.as_ref().map_or(0, |(_, tag)| *tag),
            });
            if to < from {
                self.restart_detectors(out);
            }
        }
        for h in held {
            match h.record {
                Some((rec, _)) => self.run(&rec, out),
                None => self.move_clock(h.time, out),
            }
        }
    }

    /// Closes every window (summaries go out) and starts the detectors afresh, clock unset.
    fn restart_detectors(&mut self, out: &mut dyn FnMut(Emitted<'_>)) {
        self.finish_detectors(out);
        self.correlation_evictions_before += self.rules.correlation_evictions();
        self.rules = RuleEngine::new(Arc::clone(self.rules.rules()));
        self.beacon = BeaconDetector::new(self.beacon_config.clone());
        self.clock = None;
    }

    /// Runs one accepted record through the rules and detectors. Windows that end before the
    /// record's time are closed first, so summaries come out in time order.
    ///
    /// A DNS query record feeds the attribution tables; a connection record without a
    /// `destination.domain` gets one from them (a recorded one keeps its own, so a replay
    /// of `run --events` output names what the live run named).
    fn run(&mut self, rec: &ConnectionRecord, out: &mut dyn FnMut(Emitted<'_>)) {
        if rec.dns.is_some() {
            self.names.learn(rec);
        } else if rec.domain.is_none()
            && let Some((name, source)) = self.names.lookup(rec)
        {
            let mut named = rec.clone();
            named.domain = Some(name);
            named.domain_source = Some(source);
            self.run_named(&named, out);
            return;
        }
        self.run_named(rec, out);
    }

    fn run_named(&mut self, rec: &ConnectionRecord, out: &mut dyn FnMut(Emitted<'_>)) {
        self.move_clock(rec.timestamp, out);
        self.counters.events += 1;
        if rec.partial {
            self.counters.partial_events += 1;
        }
        if self.emit_events {
            out(Emitted::Event(rec));
        }
        self.rules.process(rec, &mut self.alerts);
        // Check-ins are connects and sends; a connect's outcome, close, and inbound records
        // are not (an outcome only flags the beacon's alert, a close adds its bytes to the
        // key of its connect).
        match rec.life.as_deref().map(Lifecycle::action) {
            None | Some(LifeAction::Close) => self.beacon.process(rec, &mut self.alerts),
            Some(_) => self.outcomes.learn(rec),
        }
        self.drain(out);
    }

    /// Moves event time forward on a clock tick (live, once a second). The tick is held to
    /// the same rule as records: more than `MAX_CLOCK_STEP` from the event clock, it moves
    /// the clock only when the next tick or record agrees, so a wall-clock step back and
    /// forth does not close every window or stall them.
    pub fn advance(&mut self, now: Timestamp, out: &mut dyn FnMut(Emitted<'_>)) {
        if self.held.is_empty() && self.in_step(now) {
            self.move_clock(now, out);
            return;
        }
        self.observe(now, None, out);
    }

    /// Moves the event clock to `now` if that is later, closing the windows due.
    fn move_clock(&mut self, now: Timestamp, out: &mut dyn FnMut(Emitted<'_>)) {
        if self.clock.is_some_and(|c| now <= c) {
            return;
        }
        self.clock = Some(now);
        self.rules.advance(now, &mut self.alerts);
        self.beacon.advance(now, &mut self.alerts);
        self.drain(out);
    }

    /// End of input (replay) or shutdown (live): close every open window. Records still held
    /// are outliers when a clock was set (nothing after them agreed); with no clock they are
    /// all there was, and are processed.
    pub fn finish(&mut self, out: &mut dyn FnMut(Emitted<'_>)) {
        if self.clock.is_some() {
            self.reject_held();
        } else {
            for h in std::mem::take(&mut self.held) {
                if let Some((rec, _)) = h.record {
                    self.run(&rec, out);
                }
            }
        }
        self.finish_detectors(out);
    }

    fn finish_detectors(&mut self, out: &mut dyn FnMut(Emitted<'_>)) {
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
        for mut alert in self.alerts.drain(..) {
            if alert.detector == crate::record::Detector::Beacon
                && let Some(summary) = self.outcomes.summary(&alert.event)
            {
                alert.event.life = Some(Arc::new(summary));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2026-11-23T10:00:00Z";
    const MIN: i64 = 60 * Timestamp::NANOS_PER_SEC;

    /// curl to 203.0.113.7:8088 (the built-in T1571 rule, grouped by 1 h windows) at `t`.
    fn curl(t: Timestamp, port: u16) -> ConnectionRecord {
        let line = format!(
            r#"{{"@timestamp":"{}","event":{{"kind":"event"}},"host":{{"hostname":"h"}},"process":{{"pid":7,"name":"curl","executable":"/usr/bin/curl"}},"destination":{{"ip":"203.0.113.7","port":{port}}},"network":{{"transport":"tcp"}}}}"#,
            t.to_rfc3339()
        );
        ConnectionRecord::from_json_line(&line).unwrap().unwrap()
    }

    fn t0() -> Timestamp {
        Timestamp::parse_rfc3339(T0).unwrap()
    }

    /// What came out: (kind, @timestamp) of each record, events as "event".
    #[derive(Default)]
    struct Seen(Vec<(&'static str, Timestamp, Option<u64>)>);

    impl Seen {
        fn push(&mut self, e: Emitted<'_>) {
            match e {
                Emitted::Event(r) => self.0.push(("event", r.timestamp, None)),
                Emitted::Alert(a) => {
                    self.0
                        .push(("alert", a.timestamp, a.aggregate.as_ref().map(|g| g.count)))
                }
            }
        }

        fn events(&self) -> Vec<Timestamp> {
            self.0
                .iter()
                .filter(|s| s.0 == "event")
                .map(|s| s.1)
                .collect()
        }
    }

    fn pipeline() -> Pipeline {
        Pipeline::new(
            Arc::new(RuleSet::builtin().unwrap()),
            BeaconConfig::default(),
            true,
        )
    }

    /// Feeds records tagged with their index + 1 (as line numbers).
    fn feed(p: &mut Pipeline, seen: &mut Seen, times: &[Timestamp]) {
        for (i, &t) in times.iter().enumerate() {
            p.process_tagged(&curl(t, 8088), i as u64 + 1, &mut |e| seen.push(e));
        }
    }

    #[test]
    fn one_record_far_ahead_or_behind_is_left_out_and_the_clock_stays() {
        let t = t0();
        for (far, name) in [
            (Timestamp(t.0 + 150 * 365 * 24 * 60 * MIN), "ahead"),
            (Timestamp(t.0 - 50 * 365 * 24 * 60 * MIN), "behind"),
            // The clock is then at t + 1 min.
            (Timestamp(t.0 + 62 * MIN), "just over 1 h ahead"),
        ] {
            let mut p = pipeline();
            let mut seen = Seen::default();
            let times = [
                t,
                Timestamp(t.0 + MIN),
                far,
                Timestamp(t.0 + 2 * MIN),
                Timestamp(t.0 + 3 * MIN),
            ];
            feed(&mut p, &mut seen, &times);
            p.finish(&mut |e| seen.push(e));
            assert_eq!(
                seen.events(),
                vec![times[0], times[1], times[3], times[4]],
                "{name}"
            );
            assert_eq!(p.clock(), Some(times[4]), "{name}");
            assert_eq!(
                p.take_outliers(),
                vec![Outlier {
                    tag: 3,
                    time: far,
                    clock: Some(times[1])
                }],
                "{name}"
            );
            assert_eq!(p.counters().time_outliers, 1, "{name}");
            assert_eq!(p.counters().clock_jumps, 0, "{name}");
            // One grouped T1571 window for the four records: alerted once, summarized
            // once with all four, at the last event's time.
            let alerts: Vec<_> = seen.0.iter().filter(|s| s.0 == "alert").collect();
            let summaries: Vec<_> = alerts.iter().filter(|s| s.2.is_some()).collect();
            assert_eq!(summaries.len(), 1, "{name}: {alerts:?}");
            assert_eq!(summaries[0].2, Some(4), "{name}");
            assert_eq!(summaries[0].1, times[4], "{name}");
        }
    }

    #[test]
    fn a_first_record_far_off_cannot_set_the_clock() {
        let t = t0();
        let far = Timestamp(t.0 + 100 * 365 * 24 * 60 * MIN);
        let mut p = pipeline();
        let mut seen = Seen::default();
        feed(&mut p, &mut seen, &[far, t, Timestamp(t.0 + MIN)]);
        assert_eq!(seen.events(), vec![t, Timestamp(t.0 + MIN)]);
        assert_eq!(p.take_outliers().len(), 1);
        assert_eq!(p.clock(), Some(Timestamp(t.0 + MIN)));
    }

    #[test]
    fn a_gap_two_records_agree_on_is_followed() {
        let t = t0();
        let later = Timestamp(t.0 + 8 * 60 * MIN);
        let mut p = pipeline();
        let mut seen = Seen::default();
        feed(
            &mut p,
            &mut seen,
            &[t, Timestamp(t.0 + MIN), later, Timestamp(later.0 + MIN)],
        );
        assert_eq!(seen.events().len(), 4, "nothing left out");
        assert_eq!(p.clock(), Some(Timestamp(later.0 + MIN)));
        assert!(p.take_outliers().is_empty());
        let jumps = p.take_clock_jumps();
        assert_eq!(jumps.len(), 1);
        assert_eq!(
            (jumps[0].from, jumps[0].to, jumps[0].tag),
            (Timestamp(t.0 + MIN), later, 3)
        );
        // The first window closed when the clock moved past its end: its summary is stamped
        // with the window's end, before the later records.
        let summary = seen.0.iter().position(|s| s.2.is_some()).unwrap();
        assert_eq!(seen.0[summary].1, Timestamp(t.0 + 60 * MIN));
        assert!(seen.0[summary + 1..].iter().any(|s| s.1 == later));
    }

    #[test]
    fn a_jump_back_two_records_agree_on_restarts_detection() {
        let t = t0();
        let earlier = Timestamp(t.0 - 24 * 60 * MIN);
        let mut p = pipeline();
        let mut seen = Seen::default();
        feed(
            &mut p,
            &mut seen,
            &[t, Timestamp(t.0 + MIN), earlier, Timestamp(earlier.0 + MIN)],
        );
        assert_eq!(seen.events().len(), 4);
        assert_eq!(p.clock(), Some(Timestamp(earlier.0 + MIN)));
        assert_eq!(p.counters().clock_jumps, 1);
        // The open window was summarized at the jump (at its last event), and a new one
        // opened at the new time.
        let summaries: Vec<_> = seen.0.iter().filter(|s| s.2.is_some()).collect();
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].1, Timestamp(t.0 + MIN));
        p.finish(&mut |e| seen.push(e));
        let summaries: Vec<_> = seen.0.iter().filter(|s| s.2.is_some()).collect();
        assert_eq!(summaries.len(), 2);
        assert_eq!(summaries[1].1, Timestamp(earlier.0 + MIN));
    }

    #[test]
    fn a_single_record_is_processed_and_a_last_one_far_off_is_not() {
        let t = t0();
        let mut p = pipeline();
        let mut seen = Seen::default();
        feed(&mut p, &mut seen, &[t]);
        assert!(seen.events().is_empty(), "held until a second opinion");
        p.finish(&mut |e| seen.push(e));
        assert_eq!(seen.events(), vec![t]);

        let mut p = pipeline();
        let mut seen = Seen::default();
        let far = Timestamp(t.0 + 2 * 60 * MIN);
        feed(&mut p, &mut seen, &[t, Timestamp(t.0 + MIN), far]);
        p.finish(&mut |e| seen.push(e));
        assert_eq!(seen.events(), vec![t, Timestamp(t.0 + MIN)]);
        assert_eq!(p.take_outliers()[0].tag, 3);
    }

    #[test]
    fn clock_ticks_follow_the_same_rule() {
        let t = t0();
        let mut p = pipeline();
        let seen = std::cell::RefCell::new(Seen::default());
        let mut out = |e: Emitted<'_>| seen.borrow_mut().push(e);
        p.advance(t, &mut out);
        p.advance(Timestamp(t.0 + Timestamp::NANOS_PER_SEC), &mut out);
        assert_eq!(p.clock(), Some(Timestamp(t.0 + Timestamp::NANOS_PER_SEC)));
        p.process(&curl(t, 8088), &mut out);
        p.process(
            &curl(Timestamp(t.0 + 2 * Timestamp::NANOS_PER_SEC), 8088),
            &mut out,
        );
        // A wall-clock step 75 years ahead for one tick, then back: the clock does not
        // move, the window stays open.
        let step = Timestamp(t.0 + 75 * 365 * 24 * 60 * MIN);
        p.advance(step, &mut out);
        p.advance(Timestamp(t.0 + 3 * Timestamp::NANOS_PER_SEC), &mut out);
        assert_eq!(
            p.clock(),
            Some(Timestamp(t.0 + 3 * Timestamp::NANOS_PER_SEC))
        );
        assert_eq!(p.counters().clock_jumps, 0);
        // A step that stays (two ticks agree): the clock follows and the window closes.
        p.advance(step, &mut out);
        p.advance(Timestamp(step.0 + Timestamp::NANOS_PER_SEC), &mut out);
        assert_eq!(
            p.clock(),
            Some(Timestamp(step.0 + Timestamp::NANOS_PER_SEC))
        );
        assert_eq!(p.counters().clock_jumps, 1);
        assert_eq!(seen.borrow().0.iter().filter(|s| s.2.is_some()).count(), 1);
    }

    #[test]
    fn a_summary_at_shutdown_carries_the_last_event_time_not_the_clock() {
        // Live, ticks move the clock past the last event; the summary of a window still
        // open at shutdown must carry what replay gives it: the last event's time.
        let t = t0();
        let mut p = pipeline();
        let seen = std::cell::RefCell::new(Seen::default());
        let mut out = |e: Emitted<'_>| seen.borrow_mut().push(e);
        p.advance(t, &mut out);
        p.process(&curl(t, 8088), &mut out);
        let last = Timestamp(t.0 + MIN);
        p.process(&curl(last, 8088), &mut out);
        p.advance(Timestamp(t.0 + 10 * MIN), &mut out);
        p.finish(&mut out);
        let seen = seen.borrow();
        let summaries: Vec<_> = seen.0.iter().filter(|s| s.2.is_some()).collect();
        assert_eq!(summaries.len(), 1, "{:?}", seen.0);
        assert_eq!(summaries[0].1, last);
    }
}
