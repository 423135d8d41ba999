//! Rule evaluation cost (BENCHMARKS.md, item 1): nanoseconds per event on one core for the
//! default rules, the default rules plus every SigmaHQ rule in ../shared/sigma-linux-network/,
//! and that set plus generated rules (to see how the cost grows with the number of rules).
//!
//! The events are the realistic mix of `xtask/src/bench/workload.rs` (mostly browsers,
//! package managers and daemons; about 0.5 % hits), parsed with the same code replay uses.
//! Each iteration runs the rule engine (matching and grouping) over a batch of them.
//!
//! Run through `cargo xtask bench`, or alone: `cargo bench -p monitor --bench rules`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use monitor::record::ConnectionRecord;
use monitor::rules::{RuleEngine, RuleSet};

#[path = "../../xtask/src/bench/workload.rs"]
#[allow(dead_code)]
mod workload;

/// Records per iteration.
const BATCH: usize = 10_000;
/// Generated rules added to default + SigmaHQ for the growth figures.
const SYNTHETIC: [usize; 3] = [0, 90, 990];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("monitor/ is in the workspace")
        .to_path_buf()
}

/// The SigmaHQ rule files (not `broken/`, which is invalid on purpose).
fn sigma_files() -> Vec<PathBuf> {
    let dir = repo().join("../shared/sigma-linux-network");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "reading {}: {e} (the SigmaHQ rules sit beside the repository)",
                dir.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no SigmaHQ rules in {}", dir.display());
    v
}

/// A generated rule that the workload never matches, in one of four shapes that use the
/// fields and modifiers real rules use.
fn synthetic_rule(i: usize) -> String {
    let detection = match i % 4 {
        0 => format!(
            "    selection:\n        Image|endswith: '/synth{i}-agent'\n        DestinationPort:\n            - {}\n            - {}\n    condition: selection\n",
            10_000 + i,
            40_000 + i
        ),
        1 => format!(
            "    selection:\n        DestinationIp|cidr: '10.{}.{}.0/24'\n        DestinationPort: {}\n    condition: selection\n",
            i / 256 % 256,
            i % 256,
            1_000 + i
        ),
        2 => format!(
            "    selection:\n        CommandLine|contains: '--synth-flag-{i}'\n    filter:\n        User: 'root'\n    condition: selection and not filter\n"
        ),
        _ => format!(
            "    selection_img:\n        Image|startswith: '/opt/synth{i}/'\n    selection_port:\n        DestinationPort|gt: 1024\n    condition: all of selection_*\n"
        ),
    };
    format!(
        "title: Synthetic benchmark rule {i}\nid: 00000000-0000-4000-8000-{i:012}\nstatus: test\ndescription: Generated for the rule scaling benchmark.\nlogsource:\n    category: network_connection\n    product: linux\ndetection:\n{detection}level: low\n"
    )
}

fn load(paths: &[PathBuf]) -> Arc<RuleSet> {
    let report = RuleSet::load(paths).unwrap_or_else(|e| panic!("loading {paths:?}: {e}"));
    Arc::new(report.rules)
}

fn records() -> Vec<ConnectionRecord> {
    let mut buf = Vec::new();
    let cfg = workload::WorkloadConfig {
        events: BATCH as u64,
        ..workload::WorkloadConfig::default()
    };
    workload::generate(&cfg, &mut buf).expect("generating the workload");
    let text = String::from_utf8(buf).expect("the workload is UTF-8");
    text.lines()
        .enumerate()
        .map(|(n, l)| {
            ConnectionRecord::from_json_line(l)
                .unwrap_or_else(|e| panic!("workload line {}: {e}", n + 1))
                .expect("workload lines are connection events")
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let recs = records();
    let builtin = Arc::new(RuleSet::builtin().expect("the built-in rules load"));
    let mut base_paths = vec![repo().join("rules")];
    base_paths.extend(sigma_files());
    let with_sigma = load(&base_paths);

    let scratch = std::env::temp_dir().join(format!("monitor-bench-rules-{}", std::process::id()));
    let mut sets: Vec<(String, Arc<RuleSet>)> = vec![
        ("rules/default".into(), builtin),
        ("rules/default+sigmahq".into(), with_sigma.clone()),
    ];
    for &n in &SYNTHETIC {
        if n == 0 {
            sets.push(("scaling/default+sigmahq+0".into(), with_sigma.clone()));
            continue;
        }
        let dir = scratch.join(n.to_string());
        std::fs::create_dir_all(&dir).expect("creating the synthetic rule directory");
        for i in 0..n {
            std::fs::write(dir.join(format!("synthetic_{i}.yml")), synthetic_rule(i))
                .expect("writing a synthetic rule");
        }
        let mut paths = base_paths.clone();
        paths.push(dir);
        sets.push((format!("scaling/default+sigmahq+{n}"), load(&paths)));
    }
    let _ = std::fs::remove_dir_all(&scratch);

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
        group.throughput(Throughput::Elements(recs.len() as u64));
        for (id, set) in sets.iter().filter(|(id, _)| id.starts_with(group_name)) {
            let name = id.split_once('/').map(|x| x.1).unwrap_or(id);
            let mut engine = RuleEngine::new(set.clone());
            let mut alerts = Vec::new();
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    for r in &recs {
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
