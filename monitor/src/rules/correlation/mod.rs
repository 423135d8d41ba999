//! Sigma correlation rules (specification v2): `event_count`, `value_count`, `temporal` and
//! `temporal_ordered`, evaluated on the stream by event time.
//!
//! - `parse.rs` reads a `correlation:` document and resolves the rules it names (by `id` or
//!   `name`) and its `aliases`; anything of the specification it does not implement is a
//!   load error naming file, line and construct.
//! - `window.rs` is one group's state and the test of its condition (pure, no I/O).
//! - `store.rs` holds the groups: a slab with an index-linked least-recently-used list.
//! - `engine.rs` keeps the groups (least recently used out past [`MAX_GROUPS`]), closes
//!   windows as event time moves, and builds the alerts (`monitor.correlation.*`).
//!
//! Semantics (rules/README.md, "Correlation rules"): a condition with only a lower bound
//! (`gt`, `gte`) is tested on the group's events within `timespan` of its newest one, at
//! every event, and alerts as soon as it holds; the group then starts counting afresh and
//! alerts at most once per `timespan`. A condition with an upper bound (`lt`, `lte`, `eq`,
//! `neq`, a range) can only be known when the window is over: the group's window opens at
//! its first event, lasts `timespan`, and its condition is tested when it closes.
//!
//! Memory per group: the default rules feed every connection to two correlations, so
//! groups are many and must be small. A group is one 64-byte slot of `store.rs` (a 64-bit
//! digest key, two 32-bit LRU links, the window's newest time and its first 16-byte entry
//! inline, further entries on the heap up to what the condition can tell apart) plus 5
//! bytes of index; a box for what few groups need (bounded conditions, groups that alerted,
//! values kept as digests). Measured (BENCHMARKS.md, section 2).

mod engine;
mod parse;
mod prefix;
mod store;
mod window;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use super::field::Field;
use crate::record::{Level, RuleMeta};

pub(crate) use engine::CorrelationEngine;
pub use engine::MAX_GROUPS;
pub(crate) use parse::{Pending, parse, resolve};

/// Most distinct values a `value_count` alert lists (the count is exact beyond it).
pub const MAX_ALERT_VALUES: usize = 100;

/// The correlation types of the specification this engine evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    EventCount,
    ValueCount,
    Temporal,
    TemporalOrdered,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::EventCount => "event_count",
            Kind::ValueCount => "value_count",
            Kind::Temporal => "temporal",
            Kind::TemporalOrdered => "temporal_ordered",
        }
    }
}

/// A condition as inclusive bounds on the count: `gt: 4` is `min 5`, `lte: 9` is `max 9`,
/// `eq: 3` is both, `neq` an excluded value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub min: u64,
    pub max: Option<u64>,
    pub neq: Option<u64>,
}

impl Bounds {
    pub fn holds(&self, n: u64) -> bool {
        n >= self.min && self.max.is_none_or(|m| n <= m) && self.neq != Some(n)
    }

    /// Only a lower bound: once it holds, more events cannot undo it, so it is tested at
    /// every event rather than when the window closes.
    pub fn rising(&self) -> bool {
        self.max.is_none() && self.neq.is_none()
    }

    /// Entries a group needs to keep to decide: the count saturates there.
    pub fn needed(&self) -> u64 {
        if self.rising() {
            self.min.max(1)
        } else {
            let top = self
                .max
                .unwrap_or(0)
                .max(self.min)
                .max(self.neq.unwrap_or(0));
            top.saturating_add(1)
        }
    }
}

/// One compiled correlation rule.
#[derive(Debug)]
pub(crate) struct CorrelationRule {
    pub meta: Arc<RuleMeta>,
    pub level: Level,
    pub techniques: Arc<[String]>,
    pub tags: Vec<String>,
    pub status: Option<String>,
    pub falsepositives: Vec<String>,
    pub file: String,
    pub line: u32,
    pub kind: Kind,
    /// Indices of the correlated rules in the rule set, in the order `rules` names them.
    pub rules: Vec<usize>,
    /// Their ids (`monitor.correlation.rules`).
    pub rule_ids: Vec<String>,
    /// `group-by` as written (alias or field name).
    pub group_by: Vec<String>,
    /// Per correlated rule (position in `rules`), the field of each `group-by` entry
    /// (aliases resolved for that rule).
    pub group_fields: Vec<Vec<Field>>,
    /// The same, split into the fields of the process (hashed once per process) and the
    /// others (hashed per event): the group key is built from both.
    pub split_fields: Vec<(Vec<Field>, Vec<Field>)>,
    /// `value_count`: the `field` names as written, and per correlated rule their fields.
    pub value_names: Vec<String>,
    pub value_fields: Vec<Vec<Field>>,
    pub timespan_ns: i64,
    pub timespan: String,
    pub bounds: Bounds,
    /// `generate: true`: the correlated rules also alert on their own.
    pub generate: bool,
    /// The definition, for a reload: state is kept for a rule whose id and fingerprint
    /// are unchanged.
    pub fingerprint: String,
}

impl CorrelationRule {
    /// Entries one group keeps at most (bounded by `limits::max_correlation_count`).
    pub fn capacity(&self) -> usize {
        match self.kind {
            Kind::EventCount | Kind::ValueCount => self.bounds.needed() as usize,
            Kind::Temporal => self.rules.len(),
            Kind::TemporalOrdered => self.rules.len() * window::ORDERED_PER_RULE,
        }
    }
}
