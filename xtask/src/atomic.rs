//! `cargo xtask atomic`: the attack simulations (monitor/tests/live/atomic.rs) run live against a
//! test host in a network namespace, with the monitor's default rules.
//!
//! Examples:
//! - `cargo xtask atomic`: every simulation, beacons 10 x every 6 s (about 1-2 minutes).
//! - `cargo xtask atomic --only beacon-8088 --interval 60 --count 10`: the 8088 beacon test
//!   at the seed's pace (about 10 minutes).
//!
//! Each simulation's connection events are saved under `<target>/atomic-fixtures/`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// Seconds between beacons: the seed's tests beacon every 60 s at most.
const INTERVAL_RANGE: std::ops::RangeInclusive<u64> = 1..=60;
/// Beacons per process: the detector needs a few intervals to judge regularity.
const COUNT_RANGE: std::ops::RangeInclusive<u32> = 3..=100;

pub struct AtomicOptions {
    /// Comma-separated simulation names (e.g. `beacon-8088,t1571-netcat-4444`); all if `None`.
    pub only: Option<String>,
    /// Seconds between beacons.
    pub interval_secs: u64,
    /// Beacons per beaconing process.
    pub count: u32,
}

pub fn run(opts: &AtomicOptions) -> Result<()> {
    if !INTERVAL_RANGE.contains(&opts.interval_secs) {
        bail!(
            "--interval {}: expected {} to {} seconds",
            opts.interval_secs,
            INTERVAL_RANGE.start(),
            INTERVAL_RANGE.end()
        );
    }
    if !COUNT_RANGE.contains(&opts.count) {
        bail!(
            "--count {}: expected {} to {} beacons",
            opts.count,
            COUNT_RANGE.start(),
            COUNT_RANGE.end()
        );
    }
    if !crate::bootstrap::is_root() {
        bail!(
            "the attack simulations load eBPF programs and create a network namespace: run them \
             as root (`sudo -E cargo xtask atomic`)"
        );
    }
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args([
        "test",
        "--release",
        "-p",
        "monitor",
        "--features",
        "host-tests",
        "--test",
        "atomic",
        "--",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("MONITOR_ATOMIC_INTERVAL", opts.interval_secs.to_string())
    .env("MONITOR_ATOMIC_COUNT", opts.count.to_string())
    .env("RUST_BACKTRACE", "1");
    match &opts.only {
        Some(only) => cmd.env("MONITOR_ATOMIC_ONLY", only),
        None => cmd.env_remove("MONITOR_ATOMIC_ONLY"),
    };
    let fixtures = target_dir().join("atomic-fixtures");
    // Written by the test when a simulation fails; a stale one would name old problems.
    let problems_file = fixtures.join("problems.txt");
    match std::fs::remove_file(&problems_file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("remove {}", problems_file.display())),
    }
    eprintln!("xtask: {cmd:?}");
    let st = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !st.success() {
        let problems = match std::fs::read_to_string(&problems_file) {
            Ok(p) if !p.trim().is_empty() => summarize(&p),
            _ => {
                "no simulation verdicts were written (the test stopped before them; see its output)"
                    .to_string()
            }
        };
        bail!(
            "attack simulations failed ({st}); the events each one produced are in {}:\n{problems}",
            fixtures.display()
        );
    }
    eprintln!(
        "xtask: attack simulations passed; their events are in {}",
        fixtures.display()
    );
    Ok(())
}

/// The first lines of the problems, each cut short: the details are in the test's output.
fn summarize(problems: &str) -> String {
    const LINES: usize = 20;
    const WIDTH: usize = 300;
    let mut out: Vec<String> = problems
        .lines()
        .take(LINES)
        .map(|l| match l.char_indices().nth(WIDTH) {
            Some((i, _)) => format!("  {}…", &l[..i]),
            None => format!("  {l}"),
        })
        .collect();
    let more = problems.lines().count().saturating_sub(LINES);
    if more > 0 {
        out.push(format!("  … and {more} more line(s)"));
    }
    out.join("\n")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
}
