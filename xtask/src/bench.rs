//! `cargo xtask bench`: the monitor's cost, measured side by side with a baseline and a peer.
//!
//! Stages (BENCHMARKS.md describes each, with the figures):
//! 1. rule evaluation: criterion bench `monitor/benches/rules.rs` (`rules.rs` here);
//! 2. replay end to end: generated events through `monitor replay` (`replay.rs`);
//! 3. live capture cost: the load generator (`src/bin/loadgen.rs`) with no monitor, with the
//!    monitor, with `--events`, and with bpftrace, interleaved (`live.rs`); then the TCP
//!    target alone in short adjacent trials, bare / monitor / bpftrace (`live.rs`);
//!    exec storm: fork + exec of /bin/true per second with and without the monitor, paired
//!    trials (`exec.rs`);
//! 4. loss threshold (`live.rs`);
//! 5. memory with 100,000 keys and 10,000 processes, and flatness over a soak (`memory.rs`).
//!
//! `--smoke` runs every stage briefly to check the harness produces numbers (CI); it never
//! judges the figures. `--soak` adds the 10-minute flatness run. Results go to
//! `<out>/bench.json` and `<out>/bench.md`.

mod exec;
mod kernel_cost;
mod live;
mod memory;
mod procfs;
mod replay;
mod rules;
mod stats;
mod subject;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

/// What `cargo xtask bench` runs.
pub struct BenchOptions {
    /// Short runs that check the harness, not the figures.
    pub smoke: bool,
    /// Add the 10-minute memory flatness run.
    pub soak: bool,
    /// Run only the stages with these keys (all when empty).
    pub only: Vec<String>,
    /// Rounds of the live capture-cost stage instead of the plan's.
    pub live_rounds: Option<usize>,
    /// Rounds of the paired TCP stage instead of the plan's.
    pub paired_rounds: Option<usize>,
    /// Rounds of the exec-storm stage instead of the plan's.
    pub exec_rounds: Option<usize>,
    /// Another monitor binary and its label, measured beside this one in the exec storm.
    pub baseline: Option<(PathBuf, String)>,
    /// The monitor binary under test (a release build).
    pub monitor_bin: PathBuf,
    /// Where results (JSON, markdown) and scratch files go.
    pub out: PathBuf,
}

/// Durations and sizes of each stage.
pub struct Plan {
    smoke: bool,
    live_secs: f64,
    live_rounds: usize,
    paired_secs: f64,
    paired_rounds: usize,
    exec_secs: f64,
    exec_rounds: usize,
    threshold_secs: f64,
    bisect_steps: usize,
    replay_events: u64,
    replay_rounds: usize,
    swarm_procs: u32,
    swarm_per_proc: u32,
    soak_secs: f64,
    criterion_args: Vec<String>,
}

impl Plan {
    fn new(smoke: bool, soak: bool) -> Plan {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        if smoke {
            Plan {
                smoke: true,
                live_secs: 1.0,
                live_rounds: 1,
                paired_secs: 0.5,
                paired_rounds: 1,
                exec_secs: 0.5,
                exec_rounds: 1,
                threshold_secs: 2.0,
                bisect_steps: 1,
                replay_events: 20_000,
                replay_rounds: 1,
                swarm_procs: 200,
                swarm_per_proc: 10,
                soak_secs: 5.0,
                criterion_args: s(&[
                    "--warm-up-time",
                    "0.2",
                    "--measurement-time",
                    "0.5",
                    "--sample-size",
                    "10",
                ]),
            }
        } else {
            Plan {
                smoke: false,
                live_secs: 5.0,
                live_rounds: 3,
                paired_secs: 2.0,
                paired_rounds: 30,
                exec_secs: 2.0,
                exec_rounds: 20,
                threshold_secs: 30.0,
                bisect_steps: 4,
                replay_events: 1_000_000,
                replay_rounds: 3,
                swarm_procs: 10_000,
                swarm_per_proc: 10,
                soak_secs: if soak { 600.0 } else { 0.0 },
                criterion_args: s(&["--warm-up-time", "2", "--measurement-time", "5"]),
            }
        }
    }
}

/// What every stage gets.
pub struct Ctx {
    root: PathBuf,
    monitor_bin: PathBuf,
    baseline: Option<(PathBuf, String)>,
    loadgen: PathBuf,
    out: PathBuf,
    plan: Plan,
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn check(cmd: &mut Command) -> Result<()> {
    eprintln!("bench: {cmd:?}");
    let st = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed ({st})");
    }
    Ok(())
}

/// Median; NaN for an empty list.
fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// 27,431 -> "27,431".
fn fmt_rate(r: f64) -> String {
    if !r.is_finite() {
        return "–".into();
    }
    let n = r.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// The machine, as BENCHMARKS.md reports it.
fn machine(root: &Path) -> Value {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let mem_kib = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:").map(|v| {
                v.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0);
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
        "kernel": first_line("uname", &["-r"]),
        "memory_gib": mem_kib as f64 / 1024.0 / 1024.0,
        "os": fs::read_to_string("/etc/os-release").unwrap_or_default().lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())).unwrap_or_default(),
        "bpftrace": first_line("bpftrace", &["--version"]),
        "rustc": first_line("rustc", &["--version"]),
        "commit": first_line("git", &["-C", &root.display().to_string(), "rev-parse", "--short", "HEAD"]),
        "load_average_at_start": fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    })
}

pub fn run(opts: &BenchOptions) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "the benchmark loads eBPF programs and creates network namespaces: run it as root (`sudo -E cargo xtask bench`)"
        );
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask lives in the workspace")?
        .to_path_buf();
    if !opts.monitor_bin.is_file() {
        bail!(
            "monitor binary {} not found; build it first (cargo build --release -p monitor)",
            opts.monitor_bin.display()
        );
    }
    for (tool, package) in [
        ("bpftrace", "bpftrace"),
        ("bpftool", "bpftool"),
        ("ip", "iproute2"),
    ] {
        if Command::new(tool).arg("-V").output().is_err() {
            bail!(
                "`{tool}` is missing (Debian package {package}; `cargo xtask bootstrap --test-packages` installs it)"
            );
        }
    }
    fs::create_dir_all(&opts.out).with_context(|| format!("creating {}", opts.out.display()))?;
    check(cargo().args(["build", "--release", "-p", "xtask", "--bin", "loadgen"]))?;
    let mut plan = Plan::new(
        opts.smoke,
        opts.soak || opts.only.iter().any(|k| k == "soak"),
    );
    if let Some(n) = opts.live_rounds {
        plan.live_rounds = n.max(1);
    }
    if let Some(n) = opts.paired_rounds {
        plan.paired_rounds = n.max(1);
    }
    if let Some(n) = opts.exec_rounds {
        plan.exec_rounds = n.max(1);
    }
    if let Some((bin, _)) = &opts.baseline
        && !bin.is_file()
    {
        bail!("baseline monitor binary {} not found", bin.display());
    }
    let ctx = Ctx {
        loadgen: target_dir(&root).join("release/loadgen"),
        monitor_bin: opts.monitor_bin.clone(),
        baseline: opts.baseline.clone(),
        out: opts.out.clone(),
        plan,
        root,
    };
    let started = Instant::now();
    let mut results = serde_json::Map::new();
    let machine = machine(&ctx.root);
    let mut md = format!(
        "# Benchmark results ({})\n\nMachine: {} × {}, {:.1} GiB, kernel {}, {}; {}; {}; commit {}; load average at start {}.\n\n",
        if opts.smoke {
            "smoke run: harness check only, figures not meaningful"
        } else {
            "full run"
        },
        machine["nproc"],
        machine["cpu_model"].as_str().unwrap_or(""),
        machine["memory_gib"].as_f64().unwrap_or(0.0),
        machine["kernel"].as_str().unwrap_or(""),
        machine["os"].as_str().unwrap_or(""),
        machine["rustc"].as_str().unwrap_or(""),
        machine["bpftrace"].as_str().unwrap_or(""),
        machine["commit"].as_str().unwrap_or(""),
        machine["load_average_at_start"].as_str().unwrap_or(""),
    );
    results.insert("machine".into(), machine);
    results.insert("smoke".into(), json!(opts.smoke));

    type Stage = fn(&Ctx) -> Result<(Value, String)>;
    let mut stages: Vec<(&str, &str, Stage)> = vec![
        ("rules", "1. Rule evaluation", rules::rule_evaluation),
        ("replay", "2. Replay end to end", replay::replay),
        ("live", "3. Live capture cost", live::capture_cost),
        (
            "paired",
            "3c. Live TCP cost in paired trials",
            live::paired_tcp,
        ),
        ("exec", "3d. Exec storm in paired trials", exec::exec_storm),
        (
            "kernel",
            "3b. Live capture cost in the kernel",
            kernel_cost::kernel_cost,
        ),
        ("threshold", "4. Loss threshold", live::loss_threshold),
        (
            "memory",
            "5. Memory: 100,000 keys and 10,000 processes",
            memory::keys_and_processes,
        ),
    ];
    if ctx.plan.soak_secs > 0.0 {
        stages.push((
            "soak",
            "5b. Memory over a mixed-traffic soak",
            memory::flatness,
        ));
    }
    if let Some(unknown) = opts
        .only
        .iter()
        .find(|k| *k != "soak" && !stages.iter().any(|(key, _, _)| key == k))
    {
        bail!(
            "unknown bench stage `{unknown}` (rules, replay, live, paired, exec, kernel, threshold, memory, soak)"
        );
    }
    stages.retain(|(key, _, _)| opts.only.is_empty() || opts.only.iter().any(|k| k == key));
    let mut failed = Vec::new();
    for (key, title, f) in stages {
        eprintln!("\n==== bench: {title} ====");
        let t = Instant::now();
        match f(&ctx) {
            Ok((v, text)) => {
                results.insert(key.into(), v);
                md.push_str(&format!("## {title}\n\n{text}\n"));
            }
            Err(e) => {
                eprintln!("==== bench: {title} FAILED: {e:#}");
                results.insert(key.into(), json!({ "error": format!("{e:#}") }));
                md.push_str(&format!("## {title}\n\nFAILED: {e:#}\n\n"));
                failed.push(title);
            }
        }
        eprintln!("==== bench: {title}: {:.0} s", t.elapsed().as_secs_f64());
    }
    results.insert("elapsed_s".into(), json!(started.elapsed().as_secs_f64()));
    let json_path = ctx.out.join("bench.json");
    let md_path = ctx.out.join("bench.md");
    fs::write(
        &json_path,
        serde_json::to_string_pretty(&Value::Object(results))?,
    )?;
    fs::write(&md_path, &md)?;
    println!("{md}");
    eprintln!(
        "bench: results in {} and {} ({:.0} s)",
        md_path.display(),
        json_path.display(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        bail!("benchmark stage(s) failed: {}", failed.join(", "));
    }
    Ok(())
}
