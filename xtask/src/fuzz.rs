//! `cargo xtask fuzz`: the cargo-fuzz targets in fuzz/ (see fuzz/README.md), each for a
//! fixed time, one after another (they share the machine's cores with everything else), on
//! nightly with libFuzzer. Fails when any target finds a crash, a timeout or runs out of
//! memory; libFuzzer leaves the input in fuzz/artifacts/<target>/.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use crate::bootstrap;

/// Every target, in the order they run.
pub const TARGETS: &[&str] = &[
    "replay_decode",
    "rules_load",
    "rules_condition",
    "syslog_frame",
    "dns_answer",
    "relp_response",
];

/// The targets `cargo xtask test` runs: those that have run 10 minutes clean (BENCHMARKS.md,
/// "Fuzzing"): all of them.
pub const CI_TARGETS: &[&str] = TARGETS;

/// Seconds per target in `cargo xtask test`: enough to replay the seed corpus and mutate a
/// while, short enough for every run of the suite.
pub const CI_SECONDS: u64 = 20;

/// One input may take this long before libFuzzer reports it as a timeout (a hang is a
/// finding, not a stuck run).
const TIMEOUT_SECS: u64 = 10;
/// Memory libFuzzer allows the process before it reports the input (ASan included).
const RSS_LIMIT_MB: u64 = 2048;

/// Runs `targets` (all when empty) for `seconds` each; every one runs even after one fails.
pub fn run(root: &Path, seconds: u64, targets: &[String]) -> Result<()> {
    for t in targets {
        if !TARGETS.contains(&t.as_str()) {
            bail!("unknown fuzz target `{t}`; targets: {}", TARGETS.join(", "));
        }
    }
    let targets: Vec<&str> = if targets.is_empty() {
        TARGETS.to_vec()
    } else {
        targets.iter().map(String::as_str).collect()
    };
    bootstrap::ensure_cargo_fuzz()?;
    let mut failed = Vec::new();
    for target in &targets {
        let t = Instant::now();
        if let Err(e) = run_one(root, target, seconds) {
            eprintln!("xtask fuzz: {target} FAILED: {e:#}");
            failed.push(*target);
        } else {
            eprintln!(
                "xtask fuzz: {target} ran clean ({:.0} s)",
                t.elapsed().as_secs_f64()
            );
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzz target(s) {} failed; the inputs are in fuzz/artifacts/<target>/ (fuzz/README.md says how to reproduce)",
            failed.join(", ")
        );
    }
    Ok(())
}

fn run_one(root: &Path, target: &str, seconds: u64) -> Result<()> {
    // libFuzzer adds the inputs it finds to the first corpus directory: a scratch one, so
    // the committed seeds (read from the second) stay as they are.
    let work = root.join("fuzz/corpus-work").join(target);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let seeds = root.join("fuzz/corpus").join(target);
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root)
        // `cargo xtask` runs under the stable toolchain; `+nightly` must win over the
        // toolchain rustup recorded for this process.
        .env_remove("RUSTUP_TOOLCHAIN")
        .args(["+nightly", "fuzz", "run", target])
        .arg(&work)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={TIMEOUT_SECS}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"));
    eprintln!("xtask: {cmd:?}");
    let st = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed ({st})");
    }
    Ok(())
}
