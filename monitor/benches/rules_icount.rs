//! Instructions per event for rule evaluation, under valgrind's callgrind: repeatable on a
//! busy machine where timings are not. `cargo xtask bench` runs this binary twice per rule
//! set, with 1 and with 3 passes over the batch, and divides the difference in instructions
//! by the events of the extra passes, so set-up (rule compilation, event parsing) cancels out.
//!
//! Usage: `rules_icount [RULE-SET-ID] [PASSES]` (default: rules/default+sigmahq, 1 pass).
//! `rules/default+sigmahq-fresh` runs that set on events that each have a process of their
//! own, so the engine's per-process cache never hits (`common::records_fresh`).

use std::hint::black_box;

use monitor::rules::RuleEngine;

mod common;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let id = args
        .next()
        .unwrap_or_else(|| "rules/default+sigmahq".to_string());
    let passes: usize = args
        .next()
        .map(|p| p.parse().expect("PASSES is a number"))
        .unwrap_or(1);
    let recs = if id.ends_with(common::FRESH) {
        common::records_fresh()
    } else {
        common::records()
    };
    let set = common::rule_set(&id);
    let mut engine = RuleEngine::new(set.clone());
    let mut alerts = Vec::new();
    let mut fired = 0usize;
    for _ in 0..passes {
        for r in &recs {
            engine.process(black_box(r), &mut alerts);
            fired += alerts.len();
            alerts.clear();
        }
    }
    println!(
        "{{\"set\":\"{id}\",\"rules\":{},\"passes\":{passes},\"events\":{},\"alerts\":{fired}}}",
        set.len(),
        recs.len() * passes
    );
}
