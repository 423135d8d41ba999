//! Which rules can match an event, without evaluating them all.
//!
//! At load, each rule gets up to two anchors: necessary conditions taken from different
//! operands of its top-level `and`. An anchor is a set of alternatives, one of which must
//! hold for the rule to match: destination ports (looked up by the event's port) and string
//! patterns (found by their field's string set). A single test gives one (its port list or
//! its patterns); `or`, `1 of` and lists of selections give the union of their operands'
//! anchors when every operand has one (`1 of selection*` over selections that each test
//! `Image`); `and` gives its best operand's. A rule is a candidate when all its anchors
//! fired; rules without an anchor are always evaluated. So adding a thousand rules on other
//! ports or executables adds lookups and bit operations, not a thousand evaluations per
//! event, and a rule on a common port (443) is still skipped for processes its executable
//! test rules out.

use std::collections::HashMap;

use super::compile::Rule;
use super::condition::Cond;
use super::field::{Field, FieldValue};
use super::matcher::{Scratch, Test, Tests};
use crate::record::ConnectionRecord;

/// Port lists longer than this are weak anchors (and would bloat the index).
const MAX_ANCHOR_PORTS: usize = 256;

#[derive(Debug, Default)]
pub(crate) struct RuleIndex {
    /// Rules evaluated on every event, as a bitset over rule indexes.
    always: Vec<u64>,
    /// Rules with a single anchor (the second counts as fired).
    single: Vec<u64>,
    /// Anchored destination ports, sorted, with their (rule, anchor) entries.
    by_port: Vec<(u16, Box<[Entry]>)>,
    /// (string set, per pattern id: the (rule, anchor) entries of anchors holding it), for
    /// sets on fields of the process, whose outcome is cached per process, and the rest.
    by_pattern: Vec<(usize, Vec<Vec<Entry>>)>,
    by_pattern_event: Vec<(usize, Vec<Vec<Entry>>)>,
}

/// A rule index and which of its two anchors (0 or 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry(u32);

impl Entry {
    fn new(rule: u32, anchor: usize) -> Entry {
        Entry(rule << 1 | anchor as u32)
    }
}

/// One necessary condition: the rule can match only if one of these holds.
#[derive(Clone, Debug, Default)]
struct Anchor {
    ports: Vec<u16>,
    /// (string set, pattern id).
    patterns: Vec<(usize, u32)>,
}

impl Anchor {
    /// Lower is better: ports need no string matching; `Image`'s set runs for nearly every
    /// event anyway; other fields' sets may not. Then the fewer alternatives the better.
    fn rank(&self, tests: &Tests) -> (u32, usize) {
        let image = tests.set_of[Field::Image as usize].map(usize::from);
        let class = self
            .patterns
            .iter()
            .map(|&(set, _)| if Some(set) == image { 1 } else { 2 })
            .max()
            .unwrap_or(0);
        (class, self.ports.len() + self.patterns.len())
    }
}

fn test_anchor(id: u32, tests: &Tests) -> Option<Anchor> {
    match &tests.tests[id as usize] {
        Test::Numbers {
            field: Field::DestinationPort,
            set,
        } => {
            let ports: Vec<u16> = set
                .values()
                .into_iter()
                .filter_map(|v| u16::try_from(v).ok())
                .collect();
            (ports.len() <= MAX_ANCHOR_PORTS).then_some(Anchor {
                ports,
                patterns: Vec::new(),
            })
        }
        Test::Patterns {
            field,
            patterns,
            all,
            ..
        } => {
            let set = usize::from(tests.set_of[*field as usize]?);
            // With `all`, every pattern must be found: any one of them is necessary.
            let chosen: &[u32] = if *all { patterns.get(..1)? } else { patterns };
            Some(Anchor {
                ports: Vec::new(),
                patterns: chosen.iter().map(|&p| (set, p)).collect(),
            })
        }
        Test::AnyOf(ids) => union(ids.iter().map(|&i| test_anchor(i, tests))),
        Test::AllOf(ids) => best(ids.iter().filter_map(|&i| test_anchor(i, tests)), tests),
        _ => None,
    }
}

/// The union of the operands' anchors, `None` when one has none. Sorted and de-duplicated
/// once at the end: doing it per operand was quadratic in the number of operands (a
/// selection of 10,000 maps took seconds).
fn union(anchors: impl Iterator<Item = Option<Anchor>>) -> Option<Anchor> {
    let mut acc: Option<Anchor> = None;
    for a in anchors {
        let a = a?;
        let x = acc.get_or_insert_with(Anchor::default);
        x.ports.extend(a.ports);
        x.patterns.extend(a.patterns);
        // Ports only grow: past the bound after de-duplication, never back under it.
        if x.ports.len() > 2 * MAX_ANCHOR_PORTS {
            x.ports.sort_unstable();
            x.ports.dedup();
            if x.ports.len() > MAX_ANCHOR_PORTS {
                return None;
            }
        }
    }
    let mut x = acc?;
    x.ports.sort_unstable();
    x.ports.dedup();
    x.patterns.sort_unstable();
    x.patterns.dedup();
    (x.ports.len() <= MAX_ANCHOR_PORTS).then_some(x)
}

fn best(anchors: impl Iterator<Item = Anchor>, tests: &Tests) -> Option<Anchor> {
    anchors.min_by_key(|a| a.rank(tests))
}

/// A necessary condition of `cond`, if one can be read from it.
fn cond_anchor(cond: &Cond, tests: &Tests) -> Option<Anchor> {
    match cond {
        Cond::Test(id) => test_anchor(*id, tests),
        Cond::And(c) => best(c.iter().filter_map(|x| cond_anchor(x, tests)), tests),
        // `n of` with n >= 1 (the parser refuses `0 of`): at least one operand holds.
        Cond::Or(c) | Cond::AtLeast(_, c) => union(c.iter().map(|x| cond_anchor(x, tests))),
        Cond::Not(_) | Cond::Const(_) => None,
    }
}

/// Up to two anchors from different operands of the top-level `and`, best first.
fn rule_anchors(cond: &Cond, tests: &Tests) -> Vec<Anchor> {
    let mut found: Vec<Anchor> = match cond {
        Cond::And(c) => c.iter().filter_map(|x| cond_anchor(x, tests)).collect(),
        other => cond_anchor(other, tests).into_iter().collect(),
    };
    found.sort_by_key(|a| a.rank(tests));
    found.truncate(2);
    found
}

impl RuleIndex {
    pub fn build(rules: &[Rule], tests: &Tests) -> RuleIndex {
        let words = rules.len().div_ceil(64);
        let mut idx = RuleIndex {
            always: vec![0; words],
            single: vec![0; words],
            ..RuleIndex::default()
        };
        let mut by_set: HashMap<usize, Vec<Vec<Entry>>> = HashMap::new();
        let mut by_port: HashMap<u16, Vec<Entry>> = HashMap::new();
        for (i, r) in rules.iter().enumerate() {
            let bit = |v: &mut Vec<u64>| v[i >> 6] |= 1 << (i & 63);
            if matches!(r.condition, Cond::Const(false)) {
                continue; // can never match
            }
            let anchors = rule_anchors(&r.condition, tests);
            match anchors.len() {
                0 => bit(&mut idx.always),
                1 => bit(&mut idx.single),
                _ => {}
            }
            for (k, a) in anchors.into_iter().enumerate() {
                let e = Entry::new(i as u32, k);
                for p in a.ports {
                    by_port.entry(p).or_default().push(e);
                }
                for (set, p) in a.patterns {
                    let per = by_set
                        .entry(set)
                        .or_insert_with(|| vec![Vec::new(); tests.sets[set].len()]);
                    per[p as usize].push(e);
                }
            }
        }
        idx.by_port = by_port
            .into_iter()
            .map(|(p, mut es)| {
                es.dedup();
                (p, es.into_boxed_slice())
            })
            .collect();
        idx.by_port.sort_by_key(|(p, _)| *p);
        let (mut process, mut event): (Vec<_>, Vec<_>) = by_set
            .into_iter()
            .partition(|(set, _)| tests.sets[*set].field.is_process());
        process.sort_by_key(|(s, _)| *s);
        event.sort_by_key(|(s, _)| *s);
        idx.by_pattern = process;
        idx.by_pattern_event = event;
        idx
    }

    /// Whether `candidates` depends on nothing but the record's process and destination
    /// port (no anchor on a string field outside the process), so that a process's
    /// selection can be reused for its next event to the same port.
    pub fn by_process_and_port(&self) -> bool {
        self.by_pattern_event.is_empty()
    }

    /// Fills `seen` with the rules to evaluate for `rec`, as a bitset over rule indexes;
    /// `fired` is working space.
    pub fn candidates(
        &self,
        tests: &Tests,
        rec: &ConnectionRecord,
        s: &mut Scratch,
        seen: &mut Vec<u64>,
        fired: &mut Vec<u64>,
    ) {
        let words = self.always.len();
        // fired[..words]: first anchor fired; fired[words..]: second anchor fired. Both
        // buffers keep their length from event to event (`resize` does nothing then), and
        // every word is written below.
        fired.resize(2 * words, 0);
        seen.resize(words, 0);
        let mark = |fired: &mut Vec<u64>, es: &[Entry]| {
            for &Entry(e) in es {
                let (rule, anchor) = ((e >> 1) as usize, (e & 1) as usize);
                fired[anchor * words + (rule >> 6)] |= 1 << (rule & 63);
            }
        };
        let mark_set = |fired: &mut Vec<u64>, s: &mut Scratch, set: usize, per: &[Vec<Entry>]| {
            let bits = tests.set_bits(set, rec, s);
            for (w, &word) in bits.iter().enumerate() {
                let mut word = word;
                while word != 0 {
                    let p = w * 64 + word.trailing_zeros() as usize;
                    word &= word - 1;
                    mark(fired, &per[p]);
                }
            }
        };
        // What the process's own fields fire is the same on each of its events.
        let cached = match self.by_pattern.is_empty() {
            true => None,
            false => s.cached_fired(&rec.process),
        };
        match cached {
            // Word by word: a copy of a slice of unknown length is a call to memcpy.
            Some(c) => fired.iter_mut().zip(c).for_each(|(f, &c)| *f = c),
            None => {
                fired.fill(0);
                for (set, per) in &self.by_pattern {
                    mark_set(fired, s, *set, per);
                }
                if !self.by_pattern.is_empty() {
                    s.store_fired(fired);
                }
            }
        }
        for (set, per) in &self.by_pattern_event {
            mark_set(fired, s, *set, per);
        }
        if !self.by_port.is_empty()
            && let FieldValue::Number(p) = FieldValue::of(rec, Field::DestinationPort)
            && let Ok(i) = self.by_port.binary_search_by_key(&(p as u16), |(q, _)| *q)
        {
            mark(fired, &self.by_port[i].1);
        }
        let (first, second) = fired.split_at(words);
        // Zipped slices: no bounds checks, and the compiler vectorizes it.
        for ((s, (&always, &single)), (&f1, &f2)) in seen
            .iter_mut()
            .zip(self.always.iter().zip(&self.single))
            .zip(first.iter().zip(second))
        {
            *s = always | (f1 & (f2 | single));
        }
    }
}
