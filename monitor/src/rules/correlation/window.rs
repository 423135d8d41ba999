//! One correlation group's events within its window, and its condition.
//!
//! Entries are kept in event-time order, so an event that arrives late (out of order) is
//! placed by its own time and counts like it would have in order. A group keeps at most
//! `CorrelationRule::capacity` entries: the count a condition can test saturates there.

use smallvec::SmallVec;

use super::{CorrelationRule, Kind};
use crate::record::Timestamp;

/// Recent matches kept per rule of a `temporal_ordered` correlation: enough to find a
/// sequence among interleaved repeats, bounded so one noisy rule cannot grow a group.
pub const ORDERED_PER_RULE: usize = 8;

/// A `value_count` value in one word: numbers (below 2^62) and IPv4 addresses exactly,
/// booleans exactly, and anything else (IPv6 addresses, text) as a 62-bit digest keyed at
/// random per engine, whose text the window keeps beside it for the alert. Two different
/// values of the last kind count as one with odds of 2^-62 per pair; no input can choose
/// such a pair. A word keeps an entry at 24 bytes (memory per group, mod.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Value(pub u64);

const TAG_SHIFT: u32 = 62;
const PAYLOAD: u64 = (1 << TAG_SHIFT) - 1;

impl Value {
    /// For the types that count no value.
    pub const NONE: Value = Value(0);

    pub fn num(n: u64) -> Option<Value> {
        (n <= PAYLOAD).then_some(Value(n))
    }
    pub fn ipv4(a: std::net::Ipv4Addr) -> Value {
        Value(1 << TAG_SHIFT | u64::from(u32::from(a)))
    }
    pub fn digest(d: u64) -> Value {
        Value(2 << TAG_SHIFT | (d & PAYLOAD))
    }
    pub fn boolean(b: bool) -> Value {
        Value(3 << TAG_SHIFT | u64::from(b))
    }

    /// As JSON for the alert; a digest's text comes from `texts`.
    pub fn to_json(self, texts: &[(u64, Box<str>)]) -> serde_json::Value {
        let payload = self.0 & PAYLOAD;
        match self.0 >> TAG_SHIFT {
            0 => payload.into(),
            1 => std::net::Ipv4Addr::from(payload as u32).to_string().into(),
            3 => (payload != 0).into(),
            _ => texts
                .iter()
                .find(|(v, _)| *v == self.0)
                .map_or(serde_json::Value::Null, |(_, t)| t.to_string().into()),
        }
    }

    /// Whether the alert needs this value's text kept beside it.
    pub fn is_digest(self) -> bool {
        self.0 >> TAG_SHIFT == 2
    }
}

/// Digest values' texts: (the value's word, its text).
pub type Texts = Vec<(u64, Box<str>)>;

/// One match: 16 bytes. `value_count` keeps the value; the other kinds count no value and
/// keep the position of the matching rule in the correlation's `rules` in its place
/// (`Window::add`), which only `temporal` and `temporal_ordered` read.
#[derive(Clone, Debug)]
pub struct Entry {
    pub t: Timestamp,
    pub v: Value,
}

impl Entry {
    /// Position of the matching rule (kinds other than `value_count`).
    fn pos(&self) -> u8 {
        self.v.0 as u8
    }
}

/// A group's window state.
#[derive(Debug)]
pub struct Window {
    /// In time order. Most groups hold one entry: it lives inline, in the group's slot.
    pub entries: SmallVec<[Entry; 1]>,
    /// Newest event time seen by the group.
    pub newest: Timestamp,
}

impl Window {
    pub fn new(t: Timestamp) -> Window {
        Window {
            entries: SmallVec::new(),
            newest: t,
        }
    }

    /// Adds one match of the rule at `pos` at time `t` (with its value for value_count).
    /// True when it added an entry (a value not held before).
    pub fn add(&mut self, rule: &CorrelationRule, pos: u8, t: Timestamp, v: Value) -> bool {
        self.newest = self.newest.max(t);
        let v = if rule.kind == Kind::ValueCount {
            v
        } else {
            Value(u64::from(pos))
        };
        match rule.kind {
            // One entry per distinct value (per rule for temporal), at its latest time.
            Kind::ValueCount | Kind::Temporal => {
                let same = |e: &Entry| {
                    if rule.kind == Kind::ValueCount {
                        e.v == v
                    } else {
                        e.pos() == pos
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
                    return false;
                }
            }
            Kind::TemporalOrdered => {
                let mine = self.entries.iter().filter(|e| e.pos() == pos).count();
                if mine >= ORDERED_PER_RULE
                    && let Some(i) = self.entries.iter().position(|e| e.pos() == pos)
                {
                    self.entries.remove(i);
                }
            }
            Kind::EventCount => {}
        }
        // Most groups hold a few entries: grow one at a time, not by doubling (memory per
        // group, mod.rs); a group holds at most `capacity` entries, so this stays cheap.
        if self.entries.len() == self.entries.capacity() {
            self.entries.reserve_exact(1);
        }
        // Nearly always the newest: search from the back.
        let at = self
            .entries
            .iter()
            .rposition(|e| e.t <= t)
            .map_or(0, |i| i + 1);
        self.entries.insert(at, Entry { t, v });
        if self.entries.len() > rule.capacity() {
            // Past what the condition can tell apart: the oldest goes.
            self.entries.remove(0);
        }
        true
    }

    /// Keeps the text of a digest value just added in `texts` (the group's), and drops
    /// texts of values gone.
    pub fn keep_text(&self, texts: &mut Texts, v: Value, text: impl FnOnce() -> String) {
        if texts.len() >= self.entries.len() * 2 {
            let entries = &self.entries;
            texts.retain(|(x, _)| entries.iter().any(|e| e.v.0 == *x));
        }
        texts.push((v.0, text().into()));
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
            if usize::from(e.pos()) == step && (step == 0 || e.t > after) {
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
