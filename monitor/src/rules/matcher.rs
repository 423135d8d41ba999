//! Compiled field tests and the per-event scratch space they run in.
//!
//! Every string comparison of every rule on one field (exact, wildcard, contains,
//! startswith, endswith, re) becomes one pattern of that field's string set
//! (`strset.rs`). On an event, a field's set runs at most once (lazily, the first time a
//! rule needs it) and marks every pattern that matched; each test then reads its patterns'
//! bits through a precomputed mask. So adding rules adds patterns, not passes over the
//! data. Numbers use bitsets (ports) or sorted tables, addresses use per-prefix-length
//! sorted tables, and nothing on the evaluation path allocates.

use std::net::IpAddr;
use std::sync::Arc;

use super::field::{Field, FieldValue, TextBuf};
use super::strset::StringSet;
use crate::arc_slots::ArcSlots;
use crate::record::{ConnectionRecord, ProcessInfo};

/// Index of a test in `Tests::tests`.
pub(crate) type TestId = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CmpOp {
    Lt,
    Lte,
    Gt,
    Gte,
}

#[derive(Debug)]
pub(crate) enum Test {
    /// Patterns (ids in the field's string set): any matched, or with `all`, every one
    /// matched (for list fields, each by some element).
    Patterns {
        field: Field,
        patterns: Box<[u32]>,
        all: bool,
        /// `patterns` as a bitmask over words `mask_from..` of the field's string set
        /// (filled in once every rule is compiled): a test is a few word ANDs, whatever the
        /// list length. Only the words its patterns fall in, so that many tests over a huge
        /// set do not cost tests x set size.
        mask_from: u32,
        mask: Box<[u64]>,
    },
    Numbers {
        field: Field,
        set: NumSet,
    },
    Compare {
        field: Field,
        op: CmpOp,
        value: f64,
    },
    Addresses {
        field: Field,
        set: IpSet,
    },
    Bool {
        field: Field,
        value: bool,
    },
    /// Sigma `null`: the field is absent (or an empty list).
    Null {
        field: Field,
    },
    Exists {
        field: Field,
        present: bool,
    },
    /// A value list that expanded to nothing matches nothing.
    Never,
    AnyOf(Box<[TestId]>),
    AllOf(Box<[TestId]>),
}

impl Test {
    /// Rough cost, to run cheap tests first in `and`/`or`.
    pub fn cost(&self, tests: &[Test]) -> u32 {
        match self {
            Test::Patterns { field, .. } => match field.kind() {
                super::field::FieldKind::TextList => 40,
                _ => 20,
            },
            Test::Numbers { .. } | Test::Compare { .. } | Test::Bool { .. } => 1,
            Test::Null { .. } | Test::Exists { .. } | Test::Never => 1,
            Test::Addresses { .. } => 3,
            Test::AnyOf(ids) | Test::AllOf(ids) => {
                ids.iter().map(|&i| tests[i as usize].cost(tests)).sum()
            }
        }
    }
}

impl Test {
    /// Whether the outcome depends only on fields of `ConnectionRecord::process`.
    fn process_only(&self, tests: &[Test]) -> bool {
        match self {
            Test::Patterns { field, .. }
            | Test::Numbers { field, .. }
            | Test::Compare { field, .. }
            | Test::Addresses { field, .. }
            | Test::Bool { field, .. }
            | Test::Null { field }
            | Test::Exists { field, .. } => field.is_process(),
            Test::Never => true,
            Test::AnyOf(ids) | Test::AllOf(ids) => {
                ids.iter().all(|&i| tests[i as usize].process_only(tests))
            }
        }
    }

    /// The outcome when it is the same for every record: tests on fields the monitor never
    /// fills, and on whether `Initiated` exists (every record has it).
    pub fn constant(&self, tests: &[Test]) -> Option<bool> {
        let never = |f: &Field| f.never_filled();
        match self {
            Test::Patterns { field, .. }
            | Test::Numbers { field, .. }
            | Test::Compare { field, .. }
            | Test::Addresses { field, .. }
                if never(field) =>
            {
                Some(false)
            }
            Test::Bool { field, .. } if never(field) => Some(false),
            Test::Null { field } if never(field) => Some(true),
            Test::Null {
                field: Field::Initiated,
            } => Some(false),
            Test::Exists { field, present } if never(field) => Some(!present),
            Test::Exists {
                field: Field::Initiated,
                present,
            } => Some(*present),
            Test::Never => Some(false),
            Test::AnyOf(ids) => {
                let vals: Vec<Option<bool>> = ids
                    .iter()
                    .map(|&i| tests[i as usize].constant(tests))
                    .collect();
                if vals.contains(&Some(true)) {
                    Some(true)
                } else if vals.iter().all(|v| *v == Some(false)) {
                    Some(false)
                } else {
                    None
                }
            }
            Test::AllOf(ids) => {
                let vals: Vec<Option<bool>> = ids
                    .iter()
                    .map(|&i| tests[i as usize].constant(tests))
                    .collect();
                if vals.contains(&Some(false)) {
                    Some(false)
                } else if vals.iter().all(|v| *v == Some(true)) {
                    Some(true)
                } else {
                    None
                }
            }
            _ => None,
        }
    }
}

/// A set of numbers: a 65,536-bit (8 KiB) bitset for longer lists of port-sized values,
/// else a sorted table (a few values are as fast to binary-search and take no memory).
#[derive(Debug)]
pub(crate) enum NumSet {
    Bits(Box<[u64; 1024]>),
    Sorted(Box<[u64]>),
}

impl NumSet {
    pub fn new(mut values: Vec<u64>) -> NumSet {
        if values.len() > 16 && values.iter().all(|&v| v <= u16::MAX as u64) {
            let mut bits = Box::new([0u64; 1024]);
            for v in values {
                bits[(v >> 6) as usize] |= 1 << (v & 63);
            }
            NumSet::Bits(bits)
        } else {
            values.sort_unstable();
            values.dedup();
            NumSet::Sorted(values.into_boxed_slice())
        }
    }

    /// Every member (for the rule index).
    pub fn values(&self) -> Vec<u64> {
        match self {
            NumSet::Bits(b) => (0..=u16::MAX as u64)
                .filter(|&v| b[(v >> 6) as usize] & (1 << (v & 63)) != 0)
                .collect(),
            NumSet::Sorted(s) => s.to_vec(),
        }
    }

    #[inline]
    pub fn contains(&self, v: u64) -> bool {
        match self {
            NumSet::Bits(b) => v <= u16::MAX as u64 && b[(v >> 6) as usize] & (1 << (v & 63)) != 0,
            NumSet::Sorted(s) => s.binary_search(&v).is_ok(),
        }
    }
}

/// Networks grouped by prefix length; each group a sorted table of masked networks.
#[derive(Debug, Default)]
pub(crate) struct PrefixTable<T> {
    groups: Vec<(u32, Vec<T>)>,
}

impl<T: Copy + Ord + std::ops::BitAnd<Output = T>> PrefixTable<T> {
    fn insert(&mut self, len: u32, masked: T) {
        match self.groups.iter_mut().find(|(l, _)| *l == len) {
            Some((_, v)) => v.push(masked),
            None => self.groups.push((len, vec![masked])),
        }
    }
    fn finish(&mut self) {
        for (_, v) in &mut self.groups {
            v.sort_unstable();
            v.dedup();
        }
        self.groups.sort_by_key(|(l, _)| *l);
    }
    #[inline]
    fn contains(&self, addr: T, mask: impl Fn(u32) -> T) -> bool {
        self.groups
            .iter()
            .any(|(len, nets)| nets.binary_search(&(addr & mask(*len))).is_ok())
    }
}

fn mask4(len: u32) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}
fn mask6(len: u32) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    }
}

/// Addresses and networks, compared by value. IPv4-mapped IPv6 entries are stored as IPv4,
/// as the record stores such addresses.
#[derive(Debug, Default)]
pub(crate) struct IpSet {
    v4: PrefixTable<u32>,
    v6: PrefixTable<u128>,
}

impl IpSet {
    pub fn insert(&mut self, ip: IpAddr, len: u32) {
        match ip {
            IpAddr::V4(a) => self.v4.insert(len, u32::from(a) & mask4(len)),
            IpAddr::V6(a) => {
                if len >= 96
                    && let Some(v4) = a.to_ipv4_mapped()
                {
                    let l4 = len - 96;
                    self.v4.insert(l4, u32::from(v4) & mask4(l4));
                } else {
                    self.v6.insert(len, u128::from(a) & mask6(len));
                }
            }
        }
    }

    pub fn finish(&mut self) {
        self.v4.finish();
        self.v6.finish();
    }

    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.v4.contains(u32::from(a), mask4),
            IpAddr::V6(a) => self.v6.contains(u128::from(a), mask6),
        }
    }
}

/// Parses `a.b.c.d/n` or `x::/n` (a bare address is a host network).
pub(crate) fn parse_cidr(s: &str) -> Option<(IpAddr, u32)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = addr.trim().parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l.trim().parse::<u32>().ok().filter(|&l| l <= max)?,
        None => max,
    };
    Some((ip, len))
}

/// A Sigma `re` value with its `i`, `m`, `s` sub-modifiers. Sigma regexes are searches
/// (unanchored) and case-sensitive unless `i`.
pub(crate) fn regex_pattern(re: &str, i: bool, m: bool, s: bool) -> String {
    let mut flags = String::new();
    if i {
        flags.push('i');
    }
    if m {
        flags.push('m');
    }
    if s {
        flags.push('s');
    }
    if flags.is_empty() {
        format!("(?:{re})")
    } else {
        format!("(?{flags}:{re})")
    }
}

/// Per-event working memory, owned by the engine and reused for every event.
///
/// Nothing is cleared between events: the memo and the per-set "has run" marks carry the
/// event number (`epoch`) they were written for, so starting an event is one increment,
/// whatever the number of tests.
pub(crate) struct Scratch {
    /// Per test: `epoch << 1 | outcome` once evaluated on the current event.
    memo: Vec<u32>,
    /// Per string set: the epoch of the event it last ran on.
    ran: Vec<u32>,
    /// The current event's number; 0 is never current, so zeroed marks are stale.
    epoch: u32,
    /// Per string set: which of its patterns matched.
    bits: Vec<Vec<u64>>,
    text: TextBuf,
    procs: ProcessCache,
    /// The current event's slot in `procs`, valid when `slot_epoch == epoch`.
    slot: usize,
    slot_epoch: u32,
    /// The slot already held the current event's process (it was seen before).
    slot_hit: bool,
}

impl Scratch {
    pub fn new(tests: usize, sets: &[StringSet], rules: usize) -> Scratch {
        Scratch {
            memo: vec![0; tests],
            ran: vec![0; sets.len()],
            epoch: 1,
            bits: sets.iter().map(|a| vec![0; a.len().div_ceil(64)]).collect(),
            text: TextBuf::new(),
            procs: ProcessCache::new(sets, rules),
            slot: 0,
            slot_epoch: 0,
            slot_hit: false,
        }
    }

    /// Forget the previous event.
    #[inline]
    pub fn reset(&mut self) {
        // The memo keeps the epoch in its upper 31 bits.
        if self.epoch >= u32::MAX >> 1 {
            self.memo.fill(0);
            self.ran.fill(0);
            self.slot_epoch = 0;
            self.epoch = 0;
        }
        self.epoch += 1;
    }

    /// Finds (or takes) the cache slot of the current event's process.
    #[inline]
    fn enter(&mut self, p: &Arc<ProcessInfo>) {
        if self.slot_epoch != self.epoch {
            (self.slot, self.slot_hit) = self.procs.slot_of(p);
            self.slot_epoch = self.epoch;
        }
    }

    /// Removes from `candidates` (a bitset over rules) the rules this process can never
    /// match, as learned on its earlier events.
    #[inline]
    pub fn drop_excluded(&mut self, p: &Arc<ProcessInfo>, candidates: &mut [u64]) {
        self.enter(p);
        if !self.slot_hit || self.procs.rule_words == 0 {
            return;
        }
        let w = self.procs.rule_words;
        let excluded = &self.procs.excluded[self.slot * w..(self.slot + 1) * w];
        for (c, x) in candidates.iter_mut().zip(excluded) {
            *c &= !x;
        }
    }

    /// Whether rule `rule` should be checked against the process alone now: the process
    /// was seen before and this rule has not been checked for it. Marks it checked.
    /// (Not on a process's first event, so a process seen once costs nothing extra.)
    #[inline]
    pub fn should_learn(&mut self, rule: u32) -> bool {
        if !self.slot_hit || self.slot_epoch != self.epoch {
            return false;
        }
        let i = self.slot * self.procs.rule_words + (rule >> 6) as usize;
        let bit = 1u64 << (rule & 63);
        let new = self.procs.learned[i] & bit == 0;
        self.procs.learned[i] |= bit;
        new
    }

    /// The current process's anchor bits from string sets on process fields (see
    /// `RuleIndex::candidates`), when stored by `store_fired` on an earlier event.
    #[inline]
    pub fn cached_fired(&mut self, p: &Arc<ProcessInfo>) -> Option<&[u64]> {
        self.enter(p);
        let w = self.procs.fired_words;
        (self.slot_hit && self.procs.fired_stored[self.slot])
            .then(|| &self.procs.fired[self.slot * w..(self.slot + 1) * w])
    }

    /// Stores the current process's anchor bits (after `cached_fired` found none).
    #[inline]
    pub fn store_fired(&mut self, bits: &[u64]) {
        let w = self.procs.fired_words;
        if self.slot_epoch != self.epoch || bits.len() != w || self.procs.owners.is_none() {
            return;
        }
        self.procs.fired[self.slot * w..(self.slot + 1) * w].copy_from_slice(bits);
        self.procs.fired_stored[self.slot] = true;
    }

    /// Whether the current process is known to match rule `rule` on every event (its
    /// condition holds on the process's fields alone: a rule that only excludes programs,
    /// such as the base rules of correlations).
    #[inline]
    pub fn included(&self, rule: u32) -> bool {
        self.slot_hit
            && self.slot_epoch == self.epoch
            && self.procs.included[self.slot * self.procs.rule_words + (rule >> 6) as usize]
                & (1u64 << (rule & 63))
                != 0
    }

    /// Records that the current process matches rule `rule` on every event.
    #[inline]
    pub fn include(&mut self, rule: u32) {
        let i = self.slot * self.procs.rule_words + (rule >> 6) as usize;
        self.procs.included[i] |= 1u64 << (rule & 63);
    }

    /// Records that the current process can never match rule `rule`.
    #[inline]
    pub fn exclude(&mut self, rule: u32) {
        let i = self.slot * self.procs.rule_words + (rule >> 6) as usize;
        self.procs.excluded[i] |= 1u64 << (rule & 63);
        // The selection stored for the process no longer drops every rule it should.
        self.procs.selected_port[self.slot] = NO_PORT;
    }

    /// The rules selected for the current process's last event (`RuleEngine::select`, as a
    /// bitset over rules) when that event had destination port `port` and nothing the
    /// selection depends on has changed since: valid only for rule sets whose selection
    /// depends on nothing but the process and the port (`RuleIndex::by_process_and_port`).
    #[inline]
    pub fn cached_selection(&mut self, p: &Arc<ProcessInfo>, port: u16) -> Option<&[u64]> {
        self.enter(p);
        let w = self.procs.rule_words;
        (self.slot_hit && self.procs.selected_port[self.slot] == u32::from(port))
            .then(|| &self.procs.selected[self.slot * w..(self.slot + 1) * w])
    }

    /// Stores the current process's selection for destination port `port`.
    #[inline]
    pub fn store_selection(&mut self, port: u16, rules: &[u64]) {
        let w = self.procs.rule_words;
        if self.slot_epoch != self.epoch || rules.len() != w || self.procs.owners.is_none() {
            return;
        }
        self.procs.selected[self.slot * w..(self.slot + 1) * w].copy_from_slice(rules);
        self.procs.selected_port[self.slot] = u32::from(port);
    }
}

/// `ProcessCache::selected_port` of a slot with no selection stored.
const NO_PORT: u32 = u32::MAX;

/// log2 of the per-process cache's sets (two slots each): more than the processes a host
/// has talking at once, so evictions of live processes are rare.
const PROCESS_SET_BITS: u32 = 8;

/// What is known per process. Every field of `ConnectionRecord::process` is the same for
/// all events that share the `Arc<ProcessInfo>` (the process table and replay hand out one
/// per process), so
/// - a string set on such a field runs once per process, not once per event;
/// - a rule whose condition is false on the process's fields alone (a browser for a rule on
///   shells) is dropped from the process's later events without being evaluated.
///
/// Slots are found by the `Arc`'s address (`ArcSlots`: an equal address is the same
/// process); `None` when nothing is cached per process (no sets on process fields, no
/// rules).
struct ProcessCache {
    owners: Option<ArcSlots<ProcessInfo>>,
    /// Per slot: bit `a` set when string set `a`'s outcome is stored.
    stored: Box<[u32]>,
    /// Per string set on a process field: where its words start in a slot; `u32::MAX` for
    /// sets on other fields.
    offset: Box<[u32]>,
    /// Words per slot.
    words: usize,
    bits: Box<[u64]>,
    /// Words of a bitset over rules.
    rule_words: usize,
    /// Per slot, bitsets over rules: checked against the process alone; never matches it.
    learned: Box<[u64]>,
    excluded: Box<[u64]>,
    /// Per slot, bitset over rules: matches on every event of the process.
    included: Box<[u64]>,
    /// Words of the index's anchor bits (two bitsets over rules), and per slot: those bits
    /// as set by the process's own fields, and whether they are stored.
    fired_words: usize,
    fired: Box<[u64]>,
    fired_stored: Box<[bool]>,
    /// Per slot: the rules selected for the process's last event and that event's
    /// destination port (`NO_PORT`: none stored). Most events of a process go to the port
    /// its previous one did, and then the whole selection is this copy.
    selected: Box<[u64]>,
    selected_port: Box<[u32]>,
}

impl ProcessCache {
    fn new(sets: &[StringSet], rules: usize) -> ProcessCache {
        let mut words = 0usize;
        let offset: Box<[u32]> = sets
            .iter()
            .enumerate()
            .map(|(i, set)| {
                // `stored` is a u32 mask over sets; there is one set per field.
                if set.field.is_process() && i < 32 {
                    let o = words;
                    words += set.len().div_ceil(64);
                    o as u32
                } else {
                    u32::MAX
                }
            })
            .collect();
        let rule_words = rules.div_ceil(64);
        let owners = (words != 0 || rule_words != 0).then(|| ArcSlots::new(PROCESS_SET_BITS));
        let slots = owners.as_ref().map_or(0, ArcSlots::len);
        ProcessCache {
            owners,
            stored: vec![0; slots].into_boxed_slice(),
            offset,
            words,
            bits: vec![0; slots * words].into_boxed_slice(),
            rule_words,
            learned: vec![0; slots * rule_words].into_boxed_slice(),
            excluded: vec![0; slots * rule_words].into_boxed_slice(),
            included: vec![0; slots * rule_words].into_boxed_slice(),
            fired_words: 2 * rule_words,
            fired: vec![0; slots * 2 * rule_words].into_boxed_slice(),
            fired_stored: vec![false; slots].into_boxed_slice(),
            selected: vec![0; slots * rule_words].into_boxed_slice(),
            selected_port: vec![NO_PORT; slots].into_boxed_slice(),
        }
    }

    /// The slot of `p`, and whether it already held `p`; emptied first if it held another
    /// process.
    #[inline]
    fn slot_of(&mut self, p: &Arc<ProcessInfo>) -> (usize, bool) {
        let Some(owners) = self.owners.as_mut() else {
            return (0, false);
        };
        let (i, hit) = owners.slot_of(p);
        if hit {
            return (i, true);
        }
        self.stored[i] = 0;
        self.fired_stored[i] = false;
        self.selected_port[i] = NO_PORT;
        let w = self.rule_words;
        self.learned[i * w..(i + 1) * w].fill(0);
        self.excluded[i * w..(i + 1) * w].fill(0);
        self.included[i * w..(i + 1) * w].fill(0);
        (i, false)
    }
}

/// What a compiled rule set evaluates against: its tests and per-field string sets.
#[derive(Debug)]
pub(crate) struct Tests {
    pub tests: Vec<Test>,
    pub sets: Vec<StringSet>,
    /// String set index per field.
    pub set_of: [Option<u16>; Field::COUNT],
    /// Per test: its outcome depends on `ConnectionRecord::process` alone (filled by
    /// `find_process_only`).
    pub process_only: Vec<bool>,
}

// By hand: `Default` is derived for arrays of at most 32 elements.
impl Default for Tests {
    fn default() -> Self {
        Tests {
            tests: Vec::new(),
            sets: Vec::new(),
            set_of: [None; Field::COUNT],
            process_only: Vec::new(),
        }
    }
}

impl Tests {
    /// Fills `process_only`, once every test is compiled.
    pub fn find_process_only(&mut self) {
        self.process_only = self
            .tests
            .iter()
            .map(|t| t.process_only(&self.tests))
            .collect();
    }

    #[inline]
    pub fn eval(&self, id: TestId, rec: &ConnectionRecord, s: &mut Scratch) -> bool {
        let m = s.memo[id as usize];
        if m >> 1 == s.epoch {
            return m & 1 != 0;
        }
        let r = self.eval_uncached(id, rec, s);
        s.memo[id as usize] = s.epoch << 1 | u32::from(r);
        r
    }

    #[inline(never)]
    fn eval_uncached(&self, id: TestId, rec: &ConnectionRecord, s: &mut Scratch) -> bool {
        match &self.tests[id as usize] {
            Test::Patterns {
                field,
                all,
                mask_from,
                mask,
                ..
            } => {
                let Some(a) = self.set_of[*field as usize] else {
                    return false;
                };
                let bits = &self.set_bits(a as usize, rec, s)[*mask_from as usize..];
                if *all {
                    bits.iter().zip(mask.iter()).all(|(b, m)| b & m == *m)
                } else {
                    bits.iter().zip(mask.iter()).any(|(b, m)| b & m != 0)
                }
            }
            Test::Numbers { field, set } => match FieldValue::of(rec, *field) {
                FieldValue::Number(n) => set.contains(n),
                _ => false,
            },
            Test::Compare { field, op, value } => match FieldValue::of(rec, *field) {
                FieldValue::Number(n) => {
                    let n = n as f64;
                    match op {
                        CmpOp::Lt => n < *value,
                        CmpOp::Lte => n <= *value,
                        CmpOp::Gt => n > *value,
                        CmpOp::Gte => n >= *value,
                    }
                }
                _ => false,
            },
            Test::Addresses { field, set } => match FieldValue::of(rec, *field) {
                FieldValue::Ip(ip) => set.contains(ip),
                _ => false,
            },
            Test::Bool { field, value } => {
                matches!(FieldValue::of(rec, *field), FieldValue::Bool(b) if b == *value)
            }
            Test::Null { field } => matches!(FieldValue::of(rec, *field), FieldValue::Missing),
            Test::Exists { field, present } => {
                !matches!(FieldValue::of(rec, *field), FieldValue::Missing) == *present
            }
            Test::Never => false,
            Test::AnyOf(ids) => ids.iter().any(|&i| self.eval(i, rec, s)),
            Test::AllOf(ids) => ids.iter().all(|&i| self.eval(i, rec, s)),
        }
    }

    /// The patterns of string set `a` that match `rec` (running the set if it has not run
    /// on this event yet).
    #[inline]
    pub fn set_bits<'s>(&self, a: usize, rec: &ConnectionRecord, s: &'s mut Scratch) -> &'s [u64] {
        if s.ran[a] != s.epoch {
            self.run_set(a, rec, s);
        }
        &s.bits[a]
    }

    #[inline(never)]
    fn run_set(&self, a: usize, rec: &ConnectionRecord, s: &mut Scratch) {
        s.ran[a] = s.epoch;
        let off = s.procs.offset[a];
        if off == u32::MAX {
            self.match_set(a, rec, s);
            return;
        }
        // A set on a process field: its outcome is the process's, cached per process.
        s.enter(&rec.process);
        let (slot, words) = (s.slot, s.procs.words);
        let at = slot * words + off as usize;
        let n = s.bits[a].len();
        if s.procs.stored[slot] & (1 << a) != 0 {
            s.bits[a].copy_from_slice(&s.procs.bits[at..at + n]);
        } else {
            self.match_set(a, rec, s);
            s.procs.bits[at..at + n].copy_from_slice(&s.bits[a]);
            s.procs.stored[slot] |= 1 << a;
        }
    }

    /// Runs string set `a` on `rec`'s field into `s.bits[a]`.
    fn match_set(&self, a: usize, rec: &ConnectionRecord, s: &mut Scratch) {
        let set = &self.sets[a];
        let bits = &mut s.bits[a];
        bits.fill(0);
        match FieldValue::of(rec, set.field) {
            FieldValue::Missing => {}
            FieldValue::Text(t) => set.run(t, bits),
            FieldValue::List(items) => {
                for t in items {
                    set.run(t, bits);
                }
            }
            other => {
                if let Some(t) = s.text.format(&other) {
                    set.run(t, bits);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_tables_compare_by_value() {
        let mut s = IpSet::default();
        for c in [
            "10.0.0.0/8",
            "fc00::/7",
            "::ffff:192.168.0.0/112",
            "203.0.113.7",
        ] {
            let (ip, len) = parse_cidr(c).unwrap();
            s.insert(ip, len);
        }
        s.finish();
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        assert!(s.contains(ip("10.1.2.3")));
        assert!(!s.contains(ip("11.1.2.3")));
        assert!(s.contains(ip("fd12::1")));
        assert!(s.contains(ip("192.168.4.4")));
        assert!(s.contains(ip("203.0.113.7")));
        assert!(!s.contains(ip("203.0.113.8")));
        assert!(parse_cidr("10.0.0.0/33").is_none());
    }

    #[test]
    fn num_sets() {
        let s = NumSet::new(vec![22, 8088, 65535]);
        assert!(s.contains(8088) && s.contains(65535) && !s.contains(8089));
        assert!(!s.contains(70000));
        let many = NumSet::new((1000..1020).collect());
        assert!(matches!(many, NumSet::Bits(_)) && many.contains(1019) && !many.contains(1020));
        assert_eq!(many.values().len(), 20);
        let big = NumSet::new(vec![1, 100_000]);
        assert!(big.contains(100_000) && !big.contains(2));
    }
}
