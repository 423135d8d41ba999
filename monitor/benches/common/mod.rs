//! What the rule benchmarks share: the event mix and the rule sets they evaluate.
//!
//! Events: the realistic mix of the `monitor-workload` crate (mostly browsers, package
//! managers and daemons; about 0.5 % hits), parsed with the code replay uses. Rule sets: the
//! default rules, the default rules plus every SigmaHQ rule in monitor/tests/fixtures/sigma-linux-network/,
//! and that set plus generated rules, to see how the cost grows with the number of rules.
//!
//! Two forms of the same events: `records` shares one `Arc<ProcessInfo>` between the events of
//! one process, as the live pipeline (the process table keeps one per process and thread) and
//! replay do, so the rule engine's per-process cache sees what it sees in production;
//! `records_fresh` gives every event a process of its own, so that cache never hits and the
//! full string matching runs on every event.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use monitor::record::{ConnectionRecord, ProcessInfo};
use monitor::rules::RuleSet;

use monitor_workload as workload;

/// Records per batch.
pub const BATCH: usize = 10_000;
/// Generated rules added to default + SigmaHQ for the growth figures.
const SYNTHETIC: [usize; 3] = [0, 90, 990];

/// Suffix of a benchmark id whose events each have a process of their own (`records_fresh`).
pub const FRESH: &str = "-fresh";

/// Every rule set the benchmarks measure, by id. An id ending in `FRESH` is the same rule
/// set as without the suffix, run on `records_fresh`.
pub fn set_ids() -> Vec<String> {
    let mut v = vec![
        "rules/default".to_string(),
        "rules/default+sigmahq".to_string(),
        format!("rules/default+sigmahq{FRESH}"),
    ];
    v.extend(
        SYNTHETIC
            .iter()
            .map(|n| format!("scaling/default+sigmahq+{n}")),
    );
    v
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("monitor/ is in the workspace")
        .to_path_buf()
}

/// The SigmaHQ rule files (not `broken/`, which is invalid on purpose).
fn sigma_files() -> Vec<PathBuf> {
    let dir = repo().join("monitor/tests/fixtures/sigma-linux-network");
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

/// The rule set with this id (see `set_ids`).
pub fn rule_set(id: &str) -> Arc<RuleSet> {
    let id = id.strip_suffix(FRESH).unwrap_or(id);
    if id == "rules/default" {
        return Arc::new(RuleSet::builtin().expect("the built-in rules load"));
    }
    let mut paths = vec![repo().join("rules")];
    paths.extend(sigma_files());
    let extra = match id {
        "rules/default+sigmahq" => 0,
        _ => id
            .strip_prefix("scaling/default+sigmahq+")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("unknown rule set {id:?}; known: {:?}", set_ids())),
    };
    if extra == 0 {
        return load(&paths);
    }
    let dir = std::env::temp_dir().join(format!(
        "monitor-bench-rules-{}-{extra}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("creating the synthetic rule directory");
    for i in 0..extra {
        std::fs::write(dir.join(format!("synthetic_{i}.yml")), synthetic_rule(i))
            .expect("writing a synthetic rule");
    }
    paths.push(dir.clone());
    let set = load(&paths);
    let _ = std::fs::remove_dir_all(&dir);
    set
}

/// One batch of the event mix, the events of one process sharing its `Arc<ProcessInfo>`.
pub fn records() -> Vec<ConnectionRecord> {
    let mut known: Vec<Arc<ProcessInfo>> = Vec::new();
    let mut recs = parsed();
    for r in &mut recs {
        match known.iter().find(|p| **p == r.process) {
            Some(p) => r.process = Arc::clone(p),
            None => known.push(Arc::clone(&r.process)),
        }
    }
    recs
}

/// One batch of the event mix, every event with a process of its own.
pub fn records_fresh() -> Vec<ConnectionRecord> {
    let mut recs = parsed();
    for r in &mut recs {
        r.process = Arc::new(ProcessInfo::clone(&r.process));
    }
    recs
}

fn parsed() -> Vec<ConnectionRecord> {
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
