//! Labelled evaluation of the beacon detector, and its memory bound.
//!
//! Every traffic class of `monitor::detect::simulate` is generated 1,000 times at 10 and at
//! 20 connections (seeded, so every run of this test sees the same traces), fed through a
//! fresh `BeaconDetector` with the default config, and counted. The table printed is the
//! one in DETECTION.md:
//!
//!     cargo test -p monitor --release --test beacon_eval -- --nocapture
//!
//! Bars (asserted):
//! - must detect: recall >= 0.99 at n = 10 and n = 20, except the missed-check-in class at
//!   n = 10, where the bar is 0.80: with 9 intervals of which several span missed
//!   check-ins, every reading that explains them also explains enough random traffic to
//!   break the Poisson bar at n = 20 (DETECTION.md has the trade-off).
//! - must not detect: Poisson at most 2 % at n = 10; below 1 in 1,000 (so none in the
//!   default 1,000 runs) for Poisson at n = 20 and for the burst, the many-destinations
//!   process, download sessions, browsing and the allowlisted scraper at either size.
//! - report only: no bar.
//! - every must-detect run: at most one alert per key and suppression window.
//!
//! `schedules_meet_their_stated_counts` and `payload_classes_meet_their_stated_counts` judge
//! the long-period and disturbed-schedule classes and the classes with close records
//! (data sizes) each at its stated count; their bars are on the functions.
//!
//! Two variables change what is measured (the bars stay): `BEACON_EVAL_RUNS` (default
//! 1000) for tighter estimates, and `BEACON_EVAL_CONFIG`, a TOML `[beacon]` body applied
//! over the defaults, to see what a setting trades (DETECTION.md uses both).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use monitor::detect::simulate::{self, Expectation, TraceClass};
use monitor::detect::{BeaconConfig, BeaconDetector};
use monitor::record::{ConnectionRecord, Endpoint, ProcessInfo, Timestamp, Transport};

const DEFAULT_RUNS: u64 = 1000;
const SIZES: [usize; 2] = [10, 20];
const RECALL_BAR: f64 = 0.99;
const MISSED_AT_10_BAR: f64 = 0.80;
const POISSON_AT_10_BAR: f64 = 0.02;
/// "None in 1,000 runs", as a rate that holds at any number of runs.
const NONE_BAR: f64 = 0.001;

fn runs() -> u64 {
    match std::env::var("BEACON_EVAL_RUNS") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("BEACON_EVAL_RUNS={v:?}: expected a whole number")),
        Err(_) => DEFAULT_RUNS,
    }
}

fn config() -> BeaconConfig {
    match std::env::var("BEACON_EVAL_CONFIG") {
        Ok(body) => {
            let cfg: BeaconConfig = toml::from_str(&body)
                .unwrap_or_else(|e| panic!("BEACON_EVAL_CONFIG is not a [beacon] body: {e}"));
            cfg.validate()
                .unwrap_or_else(|e| panic!("BEACON_EVAL_CONFIG: {e}"));
            cfg
        }
        Err(_) => BeaconConfig::default(),
    }
}

/// Fixed before the first evaluation and never tuned: a new seed set would be a new
/// sample, not a fix.
fn run_seed(class: usize, n: usize, run: u64) -> u64 {
    0xB3AC_0E5E_ED00_0000 ^ ((class as u64) << 40) ^ ((n as u64) << 32) ^ run
}

struct Row {
    class: TraceClass,
    n: usize,
    runs: u64,
    /// Runs with at least one alert.
    detected: u64,
    /// Most alerts in one run for one key (rule and destination).
    max_alerts: usize,
    /// Lowest `monitor.beacon.score` of any alert.
    min_score: Option<f64>,
}

impl Row {
    fn rate(&self) -> f64 {
        self.detected as f64 / self.runs as f64
    }
}

fn evaluate(runs: u64, cfg: &BeaconConfig) -> (Vec<Row>, u64, std::time::Duration) {
    let started = std::time::Instant::now();
    let mut records = 0u64;
    let mut rows = Vec::new();
    for n in SIZES {
        for (ci, class) in TraceClass::ALL.into_iter().enumerate() {
            rows.push(evaluate_class(class, ci, n, runs, cfg, &mut records));
        }
    }
    (rows, records, started.elapsed())
}

/// `runs` traces of `class` at `n`, each through a fresh detector; `ci` picks the seeds.
fn evaluate_class(
    class: TraceClass,
    ci: usize,
    n: usize,
    runs: u64,
    cfg: &BeaconConfig,
    records: &mut u64,
) -> Row {
    evaluate_class_with(class, ci, n, runs, cfg, records, |_| true)
}

/// `evaluate_class` on the records `keep` keeps.
fn evaluate_class_with(
    class: TraceClass,
    ci: usize,
    n: usize,
    runs: u64,
    cfg: &BeaconConfig,
    records: &mut u64,
    keep: impl Fn(&ConnectionRecord) -> bool,
) -> Row {
    let mut out = Vec::new();
    let mut row = Row {
        class,
        n,
        runs,
        detected: 0,
        max_alerts: 0,
        min_score: None,
    };
    for run in 0..runs {
        let trace = simulate::generate(class, n, run_seed(ci, n, run));
        let mut det = BeaconDetector::new(cfg.clone());
        out.clear();
        for rec in trace.records.iter().filter(|r| keep(r)) {
            det.process(rec, &mut out);
        }
        det.finish(&mut out);
        *records += trace.records.len() as u64;
        for a in &out {
            // Every alert is about the trace's one process and port.
            assert_eq!(a.event.destination.port, trace.records[0].destination.port);
            assert_eq!(a.event.process, trace.records[0].process);
            assert!(
                a.techniques.iter().any(|t| t == "T1571"),
                "8088 and 9100 are non-standard"
            );
            let score = a.beacon.as_ref().expect("beacon alerts carry stats").score;
            row.min_score = Some(row.min_score.map_or(score, |m: f64| m.min(score)));
        }
        row.detected += u64::from(!out.is_empty());
        // One alert per key and window: per rule (destination or port key) and
        // destination, since a trace may poll several targets (the scrapers); a beacon
        // still going after the suppression window (a long trace: half missed at 30
        // connections can last two hours) is reported again, as it should be.
        let window = (cfg.suppress_secs * Timestamp::NANOS_PER_SEC as f64) as i64;
        let mut per_key: std::collections::HashMap<_, Vec<i64>> = std::collections::HashMap::new();
        for a in &out {
            per_key
                .entry((a.rule.id.clone(), a.event.destination.ip))
                .or_default()
                .push(a.event.timestamp.0);
        }
        let most = per_key
            .values()
            .map(|times| {
                times
                    .iter()
                    .map(|&s| times.iter().filter(|&&t| t >= s && t < s + window).count())
                    .max()
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0);
        row.max_alerts = row.max_alerts.max(most);
    }
    row
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("—".to_string(), |v| format!("{v:.4}"))
}

#[test]
fn labelled_traces_meet_the_bars() {
    let cfg = config();
    let (rows, records, elapsed) = evaluate(runs(), &cfg);

    // Precision of a must-detect class at n: its detections against every false alarm of
    // the must-not-detect classes at the same n (equal numbers of runs per class).
    let false_alarms = |n: usize| -> u64 {
        rows.iter()
            .filter(|r| r.n == n && r.class.expectation() == Expectation::Ignore)
            .map(|r| r.detected)
            .sum()
    };

    println!();
    println!(
        "| class | expected | n | runs | detected | precision | recall | false-positive rate | lowest score |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        let (expected, precision, recall, fpr) = match r.class.expectation() {
            Expectation::Detect => {
                let tp = r.detected as f64;
                let p = if r.detected == 0 {
                    0.0
                } else {
                    tp / (tp + false_alarms(r.n) as f64)
                };
                ("detect", Some(p), Some(r.rate()), None)
            }
            Expectation::Ignore => ("not detect", None, None, Some(r.rate())),
            Expectation::Report => ("report", None, Some(r.rate()), None),
        };
        println!(
            "| {} | {expected} | {} | {} | {} | {} | {} | {} | {} |",
            r.class.name(),
            r.n,
            r.runs,
            r.detected,
            fmt(precision),
            fmt(recall),
            fmt(fpr),
            r.min_score.map_or("—".to_string(), |v| format!("{v:.3}")),
        );
    }
    for n in SIZES {
        let (mut tp, mut positives) = (0, 0);
        for r in rows.iter().filter(|r| r.n == n) {
            if r.class.expectation() == Expectation::Detect {
                tp += r.detected;
                positives += r.runs;
            }
        }
        let fp = false_alarms(n);
        println!(
            "| **all must-detect vs all must-not** | | {n} | {} | {tp} | {:.4} | {:.4} | | |",
            positives,
            tp as f64 / (tp + fp) as f64,
            tp as f64 / positives as f64
        );
    }
    println!(
        "\n{records} records in {:.2} s ({:.0} records/s, detector construction and trace \
         generation included)",
        elapsed.as_secs_f64(),
        records as f64 / elapsed.as_secs_f64()
    );

    let mut failures = Vec::new();
    for r in &rows {
        match r.class.expectation() {
            Expectation::Detect => {
                let bar = if r.class == TraceClass::Jitter20Missed20 && r.n == 10 {
                    MISSED_AT_10_BAR
                } else {
                    RECALL_BAR
                };
                if r.rate() < bar {
                    failures.push(format!(
                        "{} at n = {}: recall {:.3} below {bar}",
                        r.class.name(),
                        r.n,
                        r.rate()
                    ));
                }
                if r.max_alerts > 1 {
                    failures.push(format!(
                        "{} at n = {}: {} alerts in one run, expected one per key and window",
                        r.class.name(),
                        r.n,
                        r.max_alerts
                    ));
                }
            }
            Expectation::Ignore => {
                let within = if r.class == TraceClass::Poisson && r.n == 10 {
                    r.rate() <= POISSON_AT_10_BAR
                } else {
                    r.rate() < NONE_BAR
                };
                let bar = if r.class == TraceClass::Poisson && r.n == 10 {
                    format!("{POISSON_AT_10_BAR}")
                } else {
                    format!("below {NONE_BAR}")
                };
                if !within {
                    failures.push(format!(
                        "{} at n = {}: false-positive rate {:.4}; bar {bar}",
                        r.class.name(),
                        r.n,
                        r.rate()
                    ));
                }
            }
            Expectation::Report => {}
        }
    }
    assert!(failures.is_empty(), "bars missed:\n{}", failures.join("\n"));
}

/// Seeds of the schedule classes start past every `ALL` index.
const SCHEDULE_SEED_BASE: usize = 64;

/// Long periods and disturbed schedules (`TraceClass::SCHEDULES`), each judged at its
/// stated count: must-detect classes at recall >= 0.95 (the goal), must-not-detect
/// classes below 1 in 1,000 (none in the default 1,000 runs).
#[test]
fn schedules_meet_their_stated_counts() {
    const SCHEDULE_RECALL_BAR: f64 = 0.95;
    let cfg = config();
    let runs = runs();
    let started = std::time::Instant::now();
    let mut records = 0u64;
    let mut failures = Vec::new();
    println!();
    println!("| class | expected | n | runs | detected | rate | lowest score |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for (i, &(class, n)) in TraceClass::SCHEDULES.iter().enumerate() {
        let r = evaluate_class(class, SCHEDULE_SEED_BASE + i, n, runs, &cfg, &mut records);
        let expected = match class.expectation() {
            Expectation::Detect => "detect",
            Expectation::Ignore => "not detect",
            Expectation::Report => "report",
        };
        println!(
            "| {} | {expected} | {n} | {} | {} | {:.4} | {} |",
            class.name(),
            r.runs,
            r.detected,
            r.rate(),
            r.min_score.map_or("—".to_string(), |v| format!("{v:.3}")),
        );
        match class.expectation() {
            Expectation::Detect if r.rate() < SCHEDULE_RECALL_BAR => failures.push(format!(
                "{} at n = {n}: recall {:.3} below {SCHEDULE_RECALL_BAR}",
                class.name(),
                r.rate()
            )),
            Expectation::Detect if r.max_alerts > 1 => failures.push(format!(
                "{} at n = {n}: {} alerts in one run for one key",
                class.name(),
                r.max_alerts
            )),
            Expectation::Ignore if r.rate() >= NONE_BAR => failures.push(format!(
                "{} at n = {n}: false-positive rate {:.4}; bar below {NONE_BAR}",
                class.name(),
                r.rate()
            )),
            _ => {}
        }
    }
    println!(
        "\n{records} records in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "bars missed:\n{}", failures.join("\n"));
}

/// Seeds of the payload classes start past every schedule index.
const PAYLOAD_SEED_BASE: usize = 96;

/// The classes with close records (`TraceClass::PAYLOADS`, DETECTION.md "Data sizes"),
/// each judged at its stated count: must-detect at recall >= 0.95 with at most one alert
/// per key, must-not-detect below 1 in 1,000 (none in the default 1,000 runs). Each row
/// also runs the same traces without their close records (column "timing alone"): what
/// the detector gives without `--lifecycle`.
#[test]
fn payload_classes_meet_their_stated_counts() {
    const PAYLOAD_RECALL_BAR: f64 = 0.95;
    let cfg = config();
    let runs = runs();
    let started = std::time::Instant::now();
    let mut records = 0u64;
    let mut failures = Vec::new();
    println!();
    println!(
        "| class | expected | n | runs | detected | rate | detected by timing alone | lowest score |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (i, &(class, n)) in TraceClass::PAYLOADS.iter().enumerate() {
        let r = evaluate_class(class, PAYLOAD_SEED_BASE + i, n, runs, &cfg, &mut records);
        let alone = evaluate_class_with(
            class,
            PAYLOAD_SEED_BASE + i,
            n,
            runs,
            &cfg,
            &mut records,
            |rec| rec.life.is_none(),
        );
        let expected = match class.expectation() {
            Expectation::Detect => "detect",
            Expectation::Ignore => "not detect",
            Expectation::Report => "report",
        };
        println!(
            "| {} | {expected} | {n} | {} | {} | {:.4} | {} | {} |",
            class.name(),
            r.runs,
            r.detected,
            r.rate(),
            alone.detected,
            r.min_score.map_or("—".to_string(), |v| format!("{v:.3}")),
        );
        match class.expectation() {
            Expectation::Detect if r.rate() < PAYLOAD_RECALL_BAR && n >= 15 => {
                failures.push(format!(
                    "{} at n = {n}: recall {:.3} below {PAYLOAD_RECALL_BAR}",
                    class.name(),
                    r.rate()
                ))
            }
            Expectation::Detect if r.max_alerts > 1 => failures.push(format!(
                "{} at n = {n}: {} alerts in one run for one key",
                class.name(),
                r.max_alerts
            )),
            // Random timing is the timing test's to judge: the constant payload must add
            // no false positive to what it lets through (about 1 in 2,000 at these counts,
            // the Poisson rows of the 100,000-run table).
            Expectation::Ignore
                if r.rate() >= NONE_BAR
                    && !(class == TraceClass::PoissonConstantSize
                        && r.detected == alone.detected) =>
            {
                failures.push(format!(
                    "{} at n = {n}: false-positive rate {:.4}; bar below {NONE_BAR}",
                    class.name(),
                    r.rate()
                ))
            }
            _ => {}
        }
        // Sizes only ever add to the timing for a constant payload, and only ever take away
        // for bulk of varied size.
        match class {
            TraceClass::Jitter50ConstantSize | TraceClass::PoissonConstantSize => {
                assert!(r.detected >= alone.detected, "{}", class.name())
            }
            _ => assert!(r.detected <= alone.detected, "{}", class.name()),
        }
    }
    println!(
        "\n{records} records in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "bars missed:\n{}", failures.join("\n"));
}

// ---- memory ------------------------------------------------------------------------------

/// Counts the bytes each thread has allocated and not freed, so a test can measure what one
/// structure holds while other tests run in parallel threads.
struct CountingAllocator;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // `try_with`: allocations during thread teardown happen after the slot is gone.
    let _ = LIVE_BYTES.try_with(|c| c.set(c.get() + delta));
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn live_bytes() -> isize {
    LIVE_BYTES.with(Cell::get)
}

#[test]
fn memory_stays_bounded_at_100k_active_keys() {
    const MIB: f64 = 1024.0 * 1024.0;
    let cfg = BeaconConfig::default();
    let (max_keys, max_port_keys) = (cfg.max_keys, cfg.max_port_keys);
    let before = live_bytes();
    let mut det = BeaconDetector::new(cfg);
    let construction = live_bytes() - before;
    let processes: Vec<Arc<ProcessInfo>> = (0..8)
        .map(|i| {
            Arc::new(ProcessInfo {
                pid: 100 + i,
                executable: Some(format!("/usr/bin/agent{i}")),
                user_id: Some(1000.into()),
                ..ProcessInfo::default()
            })
        })
        .collect();
    let host: Arc<str> = Arc::from("h");
    let mut out = Vec::new();
    // Twice the cap of distinct (process, destination, port) keys within one minute of
    // event time, so none is idle: the caps alone must bound memory. Ports vary too, so the
    // port-key table fills to its own cap.
    let keys = 2 * max_keys as u32;
    let records: Vec<ConnectionRecord> = (0..keys)
        .map(|i| ConnectionRecord {
            timestamp: Timestamp::from_secs_f64(
                1_780_000_000.0 + f64::from(i) * 60.0 / f64::from(keys),
            ),
            host_name: host.clone(),
            process: processes[(i % 8) as usize].clone(),
            source: None,
            destination: Endpoint {
                ip: IpAddr::V6(Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    0,
                    0,
                    0,
                    0,
                    (i >> 16) as u16,
                    i as u16,
                )),
                port: 1024 + ((i / 8) % 20_000) as u16,
            },
            transport: Transport::Tcp,
            partial: false,
            suppressed: 0,
            probe: None,
            dns_resolver: false,
            domain: None,
            domain_source: None,
            dns: None,
            connection_id: None,
            life: None,
        })
        .collect();
    // Everything allocated so far except the detector is the test's own input.
    let baseline = live_bytes() - construction;
    let detector_bytes = || live_bytes() - baseline;
    let mut peak = 0isize;
    for (i, r) in records.iter().enumerate() {
        det.process(r, &mut out);
        if i % 1024 == 0 {
            peak = peak.max(detector_bytes());
        }
    }
    let held = detector_bytes();
    peak = peak.max(held);
    let c = det.counters();
    assert!(out.is_empty());
    assert_eq!(c.destination_keys, max_keys);
    assert_eq!(c.port_keys, max_port_keys.min(8 * 20_000));
    assert_eq!(det.key_count(), c.destination_keys + c.port_keys);
    assert!(c.evicted_full > 0);
    let (series, rotating) = BeaconDetector::state_bytes();
    println!(
        "\n{} destination keys + {} port keys: {:.1} MiB of heap held, {:.1} MiB peak, \
         {:.0} B per key (state {series} B per destination key, {rotating} B per port key; \
         malloc's own overhead not included)",
        c.destination_keys,
        c.port_keys,
        held as f64 / MIB,
        peak as f64 / MIB,
        held as f64 / det.key_count() as f64
    );
    assert!(
        (peak as f64) < 48.0 * MIB,
        "detector heap {:.1} MiB at the key caps",
        peak as f64 / MIB
    );
    drop(det);
    let after = detector_bytes();
    assert!(after.abs() < 4096, "{after} bytes still held after drop");
}

#[test]
fn bytes_per_destination_key_seen_once_and_with_intervals() {
    // Destination keys only (no port keys), one process, 20,000 addresses: heap bytes per
    // key after one check-in each, then after two more (60 s apart: two intervals held).
    let cfg = BeaconConfig {
        rotating_ip_key: false,
        ..BeaconConfig::default()
    };
    let keys = 20_000u32;
    let process = Arc::new(ProcessInfo {
        pid: 100,
        executable: Some("/usr/bin/agent".into()),
        user_id: Some(1000.into()),
        ..ProcessInfo::default()
    });
    let host: Arc<str> = Arc::from("h");
    let record = |i: u32, round: u32| ConnectionRecord {
        timestamp: Timestamp::from_secs_f64(
            1_780_000_000.0 + f64::from(round) * 60.0 + f64::from(i) * 1e-3,
        ),
        host_name: host.clone(),
        process: process.clone(),
        source: None,
        destination: Endpoint {
            ip: IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                0,
                0,
                0,
                (i >> 16) as u16,
                i as u16,
            )),
            port: 8088,
        },
        transport: Transport::Tcp,
        partial: false,
        suppressed: 0,
        probe: None,
        dns_resolver: false,
        domain: None,
        domain_source: None,
        dns: None,
        connection_id: None,
        life: None,
    };
    let rounds: Vec<Vec<ConnectionRecord>> = (0..3)
        .map(|round| (0..keys).map(|i| record(i, round)).collect())
        .collect();
    let mut out = Vec::new();
    let before = live_bytes();
    let mut det = BeaconDetector::new(cfg);
    for r in &rounds[0] {
        det.process(r, &mut out);
    }
    let once = (live_bytes() - before) as f64 / f64::from(keys);
    for r in rounds[1..].iter().flatten() {
        det.process(r, &mut out);
    }
    let with_intervals = (live_bytes() - before) as f64 / f64::from(keys);
    assert!(out.is_empty());
    assert_eq!(det.key_count(), keys as usize);
    println!(
        "\nheap per destination key (detector included, malloc's own overhead not): \
         {once:.0} B seen once, {with_intervals:.0} B with intervals"
    );
    assert!(once < 200.0, "{once:.0} B per key seen once");
    assert!(
        with_intervals < 400.0,
        "{with_intervals:.0} B per key with intervals"
    );
}
