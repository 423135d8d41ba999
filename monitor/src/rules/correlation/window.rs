//! One correlation group's events within its window, and its condition.
//!
//! Entries are kept in event-time order, so an event that arrives late (out of order) is
//! placed by its own time and counts like it would have in order. A group keeps at most
//! `CorrelationRule::capacity` entries: the count a condition can test saturates there.

use std::net::IpAddr;

use super::{CorrelationRule, Kind};
use crate::record::Timestamp;

/// Recent matches kept per rule of a `temporal_ordered` correlation: enough to find a
/// sequence among interleaved repeats, bounded so one noisy rule cannot grow a group.
pub const ORDERED_PER_RULE: usize = 8;

/// A `value_count` value: exact for numbers and addresses (no hashing, so no two values
/// can be made to count as one), text as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    None,
    Num(u64),
    Ip(IpAddr),
    Bool(bool),
    Text(Box<str>),
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub t: Timestamp,
    /// Position of the matching rule in the correlation's `rules`.
    pub pos: u8,
    pub v: Value,
}

/// A group's window state.
#[derive(Debug)]
pub struct Window {
    /// In time order.
    pub entries: Vec<Entry>,
    /// Newest event time seen by the group.
    pub newest: Timestamp,
    /// Rising conditions: no alert before this time (one alert per timespan).
    pub quiet_until: Timestamp,
}

impl Window {
    pub fn new(t: Timestamp) -> Window {
        Window {
            entries: Vec::new(),
            newest: t,
            quiet_until: Timestamp(i64::MIN),
        }
    }

    /// Adds one match of the rule at `pos` at time `t` (with its value for value_count).
    pub fn add(&mut self, rule: &CorrelationRule, pos: u8, t: Timestamp, v: Value) {
        self.newest = self.newest.max(t);
        match rule.kind {
            // One entry per distinct value (per rule for temporal), at its latest time.
            Kind::ValueCount | Kind::Temporal => {
                let same = |e: &Entry| {
                    if rule.kind == Kind::ValueCount {
                        e.v == v
                    } else {
                        e.pos == pos
                    }
                };
                // Most often the value seen last: search from the back.
                if let Some(i) = self.entries.iter().rposition(same) {
                    if self.entries[i].t < t {
                        self.entries[i].t = t;
                        // Keep time order: move it past the entries now older than it.
                        let end = i + self.entries[i + 1..].partition_point(|e| e.t <= t);
                        self.entries[i..=end].rotate_left(1);
                    }
                    return;
                }
            }
            Kind::TemporalOrdered => {
                let mine = self.entries.iter().filter(|e| e.pos == pos).count();
                if mine >= ORDERED_PER_RULE
                    && let Some(i) = self.entries.iter().position(|e| e.pos == pos)
                {
                    self.entries.remove(i);
                }
            }
            Kind::EventCount => {}
        }
        // Nearly always the newest: search from the back.
        let at = self
            .entries
            .iter()
            .rposition(|e| e.t <= t)
            .map_or(0, |i| i + 1);
        self.entries.insert(at, Entry { t, pos, v });
        if self.entries.len() > rule.capacity() {
            // Past what the condition can tell apart: the oldest goes.
            self.entries.remove(0);
        }
    }

    /// Drops entries more than `timespan` before the newest event (sliding windows).
    pub fn prune(&mut self, timespan_ns: i64) {
        let lo = self.newest.0.saturating_sub(timespan_ns);
        let keep = self.entries.partition_point(|e| e.t.0 < lo);
        if keep > 0 {
            self.entries.drain(..keep);
        }
    }

    /// The number the condition tests: events, distinct values, or rules seen.
    pub fn count(&self, rule: &CorrelationRule) -> u64 {
        match rule.kind {
            Kind::EventCount | Kind::ValueCount | Kind::Temporal => self.entries.len() as u64,
            Kind::TemporalOrdered => {
                if self.ordered_sequence(rule.rules.len()) {
                    rule.rules.len() as u64
                } else {
                    0
                }
            }
        }
    }

    /// Whether the entries hold each rule in order, each strictly after the one before
    /// (the earliest possible match of each step is taken: if any sequence exists in the
    /// window, this one does).
    fn ordered_sequence(&self, n: usize) -> bool {
        let mut step = 0usize;
        let mut after = Timestamp(i64::MIN);
        for e in &self.entries {
            if usize::from(e.pos) == step && (step == 0 || e.t > after) {
                after = e.t;
                step += 1;
                if step == n {
                    return true;
                }
            }
        }
        false
    }

    /// Earliest and latest entry times.
    pub fn span(&self) -> (Timestamp, Timestamp) {
        match (self.entries.first(), self.entries.last()) {
            (Some(a), Some(b)) => (a.t, b.t),
            _ => (self.newest, self.newest),
        }
    }
}
