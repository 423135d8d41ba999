//! Instructions per record for the ECS JSON writer, under valgrind's callgrind: repeatable on
//! a busy machine where timings are not. Run it with 1 and with 3 passes and divide the
//! difference in instructions by the records of the extra passes, so set-up (generating
//! and parsing the workload, running the rules for alerts) cancels out:
//!
//! ```text
//! cargo bench -p monitor --bench ecs_icount --no-run   # prints the binary's path
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/ecs1.cg BIN events 1
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/ecs3.cg BIN events 3
//! ```
//!
//! Usage: `ecs_icount [KIND] [PASSES]`. KIND: `events` (the events of one process share its
//! `Arc<ProcessInfo>`, as in the live pipeline and replay), `events-fresh` (every event has
//! a process of its own, so the writer's process cache never hits), `alerts` (what the
//! default rules raise on the event mix). Each record goes through `OutputRecord`, as every
//! output takes it.

use std::hint::black_box;

use monitor::output::OutputRecord;
use monitor::rules::RuleEngine;

mod common;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let kind = args.next().unwrap_or_else(|| "events".to_string());
    let passes: usize = args
        .next()
        .map(|p| p.parse().expect("PASSES is a number"))
        .unwrap_or(1);
    let mut bytes = 0usize;
    let written = match kind.as_str() {
        "events" | "events-fresh" => {
            let recs = if kind == "events" {
                common::records()
            } else {
                common::records_fresh()
            };
            for _ in 0..passes {
                for r in &recs {
                    bytes += black_box(OutputRecord::from_event(black_box(r)))
                        .json()
                        .len();
                }
            }
            recs.len() * passes
        }
        "alerts" => {
            let mut engine = RuleEngine::new(common::rule_set("rules/default"));
            let mut alerts = Vec::new();
            for r in &common::records() {
                engine.process(r, &mut alerts);
            }
            engine.finish(&mut alerts);
            assert!(!alerts.is_empty(), "the event mix raises alerts");
            for _ in 0..passes {
                for a in &alerts {
                    bytes += black_box(OutputRecord::from_alert(black_box(a)))
                        .json()
                        .len();
                }
            }
            alerts.len() * passes
        }
        other => panic!("unknown KIND {other:?}: events, events-fresh or alerts"),
    };
    println!("{{\"kind\":\"{kind}\",\"passes\":{passes},\"records\":{written},\"bytes\":{bytes}}}");
}
