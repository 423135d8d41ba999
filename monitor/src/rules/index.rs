//! Which rules can match an event, without evaluating them all.
//!
//! A rule whose condition is `A and ...` cannot match unless `A` holds. At load, each rule
//! gets such an anchor when it has one: a destination-port list (looked up by the event's
//! port), or a string test (the rule becomes a candidate when one of its patterns is among
//! those its field's string set found). Rules without an anchor are always evaluated. So
//! adding a thousand rules on other ports or executables adds hash lookups and bit scans,
//! not a thousand evaluations per event.

use std::collections::HashMap;

use super::compile::{Cond, Rule};
use super::field::{Field, FieldValue};
use super::matcher::{Scratch, Test, Tests};
use crate::record::ConnectionRecord;

#[derive(Debug, Default)]
pub(crate) struct RuleIndex {
    /// Rules evaluated on every event, as a bitset over rule indexes: each event's
    /// candidate set starts as a copy of it.
    always: Vec<u64>,
    /// Anchored destination ports, sorted, with their rules.
    by_port: Vec<(u16, Box<[u32]>)>,
    /// (string set, per pattern id: the rules anchored on a test holding it).
    by_pattern: Vec<(usize, Vec<Vec<u32>>)>,
}

enum Anchor {
    Ports(Vec<u16>),
    Patterns { set: usize, patterns: Vec<u32> },
}

fn anchor_of(cond: &Cond, tests: &Tests) -> Option<Anchor> {
    let conjuncts: &[Cond] = match cond {
        Cond::And(c) => c,
        c @ Cond::Test(_) => std::slice::from_ref(c),
        _ => return None,
    };
    let mut best: Option<(u32, Anchor)> = None;
    for c in conjuncts {
        let Cond::Test(id) = c else { continue };
        let candidate = match &tests.tests[*id as usize] {
            Test::Numbers {
                field: Field::DestinationPort,
                set,
            } => {
                let ports: Vec<u16> = set
                    .values()
                    .into_iter()
                    .filter_map(|v| u16::try_from(v).ok())
                    .collect();
                // A long port list is a weak anchor; keep the index small.
                (ports.len() <= 256).then_some((0, Anchor::Ports(ports)))
            }
            Test::Patterns {
                field,
                patterns,
                all: false,
                ..
            } => tests.set_of[*field as usize].map(|set| {
                let rank = if *field == Field::Image { 1 } else { 2 };
                (
                    rank,
                    Anchor::Patterns {
                        set: set as usize,
                        patterns: patterns.to_vec(),
                    },
                )
            }),
            _ => None,
        };
        if let Some((rank, a)) = candidate
            && best.as_ref().is_none_or(|(r, _)| rank < *r)
        {
            best = Some((rank, a));
        }
    }
    best.map(|(_, a)| a)
}

impl RuleIndex {
    pub fn build(rules: &[Rule], tests: &Tests) -> RuleIndex {
        let mut idx = RuleIndex {
            always: vec![0; rules.len().div_ceil(64)],
            ..RuleIndex::default()
        };
        let mut by_set: HashMap<usize, Vec<Vec<u32>>> = HashMap::new();
        let mut by_port: HashMap<u16, Vec<u32>> = HashMap::new();
        for (i, r) in rules.iter().enumerate() {
            let i = i as u32;
            if matches!(r.condition, Cond::Const(false)) {
                continue; // can never match
            }
            match anchor_of(&r.condition, tests) {
                None => idx.always[(i >> 6) as usize] |= 1 << (i & 63),
                Some(Anchor::Ports(ports)) => {
                    for p in ports {
                        by_port.entry(p).or_default().push(i);
                    }
                }
                Some(Anchor::Patterns { set, patterns }) => {
                    let per = by_set
                        .entry(set)
                        .or_insert_with(|| vec![Vec::new(); tests.sets[set].len()]);
                    for p in patterns {
                        per[p as usize].push(i);
                    }
                }
            }
        }
        idx.by_port = by_port
            .into_iter()
            .map(|(p, rs)| (p, rs.into_boxed_slice()))
            .collect();
        idx.by_port.sort_by_key(|(p, _)| *p);
        idx.by_pattern = by_set.into_iter().collect();
        idx.by_pattern.sort_by_key(|(s, _)| *s);
        idx
    }

    /// Fills `seen` with the rules to evaluate for `rec`, as a bitset over rule indexes.
    pub fn candidates(
        &self,
        tests: &Tests,
        rec: &ConnectionRecord,
        s: &mut Scratch,
        seen: &mut Vec<u64>,
    ) {
        seen.clear();
        seen.extend_from_slice(&self.always);
        let mut mark = |rs: &[u32]| {
            for &r in rs {
                seen[(r >> 6) as usize] |= 1 << (r & 63);
            }
        };
        if !self.by_port.is_empty()
            && let FieldValue::Number(p) = FieldValue::of(rec, Field::DestinationPort)
            && let Ok(i) = self.by_port.binary_search_by_key(&(p as u16), |(q, _)| *q)
        {
            mark(&self.by_port[i].1);
        }
        for (set, per) in &self.by_pattern {
            let bits = tests.set_bits(*set, rec, s);
            for (w, &word) in bits.iter().enumerate() {
                let mut word = word;
                while word != 0 {
                    let p = w * 64 + word.trailing_zeros() as usize;
                    word &= word - 1;
                    mark(&per[p]);
                }
            }
        }
    }
}
