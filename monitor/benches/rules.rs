//! Rule evaluation cost (BENCHMARKS.md, item 1): nanoseconds per event on one core, for each
//! rule set of `common::set_ids` (default; default + SigmaHQ; plus generated rules).
//! Each iteration runs the rule engine (matching and grouping) over one batch of the mix.
//! The `-fresh` row gives every event a process of its own, so the engine's per-process
//! cache of string verdicts never hits (see `common::records_fresh`).
//!
//! Run through `cargo xtask bench`, or alone: `cargo bench -p monitor --bench rules`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use monitor::rules::RuleEngine;

mod common;

fn bench(c: &mut Criterion) {
    let shared = common::records();
    let fresh = common::records_fresh();
    let sets: Vec<_> = common::set_ids()
        .into_iter()
        .map(|id| {
            let set = common::rule_set(&id);
            (id, set)
        })
        .collect();

    // The harness reads the rule count of each set from here.
    if let Some(p) = std::env::var_os("MONITOR_BENCH_RULE_COUNTS") {
        let counts: serde_json::Map<String, serde_json::Value> = sets
            .iter()
            .map(|(id, s)| (id.clone(), serde_json::Value::from(s.len())))
            .collect();
        std::fs::write(p, serde_json::Value::Object(counts).to_string())
            .expect("writing the rule counts");
    }

    for group_name in ["rules", "scaling"] {
        let mut group = c.benchmark_group(group_name);
        group.throughput(Throughput::Elements(shared.len() as u64));
        for (id, set) in sets.iter().filter(|(id, _)| id.starts_with(group_name)) {
            let name = id.split_once('/').map(|x| x.1).unwrap_or(id);
            let recs = if id.ends_with(common::FRESH) {
                &fresh
            } else {
                &shared
            };
            let mut engine = RuleEngine::new(set.clone());
            let mut alerts = Vec::new();
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    for r in recs {
                        engine.process(black_box(r), &mut alerts);
                        alerts.clear();
                    }
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
