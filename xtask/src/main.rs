//! `cargo xtask`: the project's build and test driver.
//!
//! - `bootstrap`: install rust-src, bpf-linker (and with `--test-packages` the Debian packages
//!   the tests drive), once.
//! - `run`: bootstrap, build in release, run the monitor with the built-in rules.
//! - `lint`: `cargo fmt --check` and `cargo clippy -D warnings` per crate.
//! - `test`: bootstrap, then the whole suite: lint, unit and integration tests (live eBPF tests as
//!   root), the VM kernel test, the Debian package in a booted Debian, the attack
//!   simulations, the benchmark smoke run and short fuzz runs.
//! - `deb`: the Debian package (cargo-deb); `debvm`: that package installed and checked in a
//!   booted Debian 12 under qemu.
//! - `fuzz`: the cargo-fuzz targets in fuzz/, each for a fixed time.

mod atomic;
mod bench;
mod bootstrap;
mod deb;
mod debvm;
mod fuzz;
mod lint;
mod vm;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Build and test driver for the monitor")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install rust-src and bpf-linker (and the test suite's Debian packages) if missing.
    Bootstrap {
        /// Also install the Debian packages the tests use (needs root).
        #[arg(long)]
        test_packages: bool,
    },
    /// Build everything in release and run `monitor run` (as root) with the built-in rules.
    Run {
        /// Arguments passed to `monitor run` (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the whole test suite (needs root, like CI).
    Test,
    /// Build the Debian package (target/debian/monitor_*.deb) with cargo-deb: the binary,
    /// the hardened unit, the config and rules.d as conffiles, man pages, completions.
    Deb {
        /// The package's Debian version instead of the crate's (e.g. `0.1.0-2`).
        #[arg(long)]
        deb_version: Option<String>,
    },
    /// Install the package in a booted Debian 12 (debootstrap root file system, systemd as
    /// init, qemu) and check the service there: hardening, the 8088 beacon test to syslog
    /// and journal, reload with a broken rule, upgrade with the spool, stop detaches.
    Debvm {
        /// Seconds between beacon check-ins in the guest.
        #[arg(long, default_value_t = debvm::DEFAULT_INTERVAL_SECS)]
        interval: u64,
        /// qemu accelerator: tcg (default: KVM guests hang on the project's machines) or kvm.
        #[arg(long, default_value = "tcg")]
        accel: String,
        /// Give up on the guest after this many seconds.
        #[arg(long, default_value_t = 900)]
        timeout: u64,
    },
    /// `cargo fmt --check` and `cargo clippy -D warnings`, per crate (the test suite's
    /// first stage).
    Lint,
    /// The seeds' attack simulations, live: a network-namespace test host, the monitor with
    /// its default rules, real curl/python3/wget/nc/dig, alerts asserted.
    Atomic {
        /// Run only this simulation (e.g. `beacon-8088`); default all.
        #[arg(long)]
        only: Option<String>,
        /// Seconds between beacon check-ins (the seed uses 60).
        #[arg(long, default_value_t = 6)]
        interval: u64,
        /// Check-ins per beacon (the seed uses 10).
        #[arg(long, default_value_t = 10)]
        count: u32,
    },
    /// Boot Debian's stock cloud kernels (11, 12, 13) under qemu and check that each
    /// `--probe` backend captures a TCP connect and a UDP send there with the executable
    /// the kernel ran.
    Vm {
        /// Backends to test.
        #[arg(long = "probe", default_values = vm::PROBES)]
        probes: Vec<String>,
        /// Kernel lines to boot: debian11 (5.10), debian12 (6.1), debian13 (6.12).
        #[arg(long = "kernel", default_values = vm::KERNEL_NAMES)]
        kernels: Vec<String>,
        /// Give up on the guest after this many seconds.
        #[arg(long, default_value_t = 240)]
        timeout: u64,
    },
    /// Write the benchmarks' realistic event mix (BENCHMARKS.md, "Method") as JSON lines,
    /// the input `monitor replay` reads: for profiling and replay experiments.
    Workload {
        /// Number of connection events.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Seed of the pseudo-random choices (the benchmarks use the default).
        #[arg(long)]
        seed: Option<u64>,
        /// Output file (`-` for standard output).
        #[arg(long, default_value = "-")]
        out: PathBuf,
        /// Percent of connections preceded by their DNS query record (and named by it).
        #[arg(long, default_value_t = 0)]
        dns_percent: u32,
    },
    /// Run the fuzz targets in fuzz/ (fuzz/README.md) one after another on nightly, each
    /// for a fixed time; fails if any finds a crash, a timeout or runs out of memory.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Run only this target (repeatable): replay_decode, rules_load, rules_condition,
        /// syslog_frame, dns_answer, relp_response. Default all.
        #[arg(long = "target")]
        targets: Vec<String>,
    },
    /// Benchmarks (BENCHMARKS.md): rule evaluation, replay, live capture cost against no
    /// monitor and bpftrace, loss threshold, memory. Needs root.
    Bench {
        /// Short runs that check the harness works, not the figures (CI).
        #[arg(long)]
        smoke: bool,
        /// Add the 10-minute memory flatness run.
        #[arg(long)]
        soak: bool,
        /// Run only these stages (repeatable): rules, replay, live, paired, exec, kernel,
        /// threshold, memory, soak.
        #[arg(long = "only")]
        only: Vec<String>,
        /// Rounds of the live capture-cost stage (default 3; more rounds narrow the median
        /// on a machine whose bare rate drifts).
        #[arg(long)]
        live_rounds: Option<usize>,
        /// Rounds of the paired TCP stage (default 30: bare, monitor and bpftrace trials of
        /// 2 s back to back per round).
        #[arg(long)]
        paired_rounds: Option<usize>,
        /// Measure this monitor binary instead of building this tree's (for instance one
        /// built from an earlier commit, to compare before and after in one session).
        #[arg(long)]
        monitor_bin: Option<PathBuf>,
        /// Rounds of the exec-storm stage (default 20: one trial of 2 s per configuration,
        /// back to back, per round).
        #[arg(long)]
        exec_rounds: Option<usize>,
        /// Another monitor binary (e.g. one built from an older commit) to measure beside
        /// this build in the exec-storm and replay stages, labelled with `--baseline-label`.
        #[arg(long)]
        baseline_monitor: Option<PathBuf>,
        #[arg(long, default_value = "baseline")]
        baseline_label: String,
    },
}

fn main() -> std::process::ExitCode {
    // The error and its causes, without anyhow's backtrace (RUST_BACKTRACE is set for the
    // tests' sake): the last lines of a log are the ones a reader sees.
    match run_cli() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_cli() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    std::env::set_current_dir(&root).with_context(|| format!("cd {}", root.display()))?;
    match cli.cmd {
        Cmd::Bootstrap { test_packages } => bootstrap::run(test_packages),
        Cmd::Run { args } => run_monitor(&root, &args),
        Cmd::Test => test_all(&root),
        Cmd::Deb { deb_version } => deb::build(&root, deb_version.as_deref()).map(|_| ()),
        Cmd::Debvm {
            interval,
            accel,
            timeout,
        } => debvm::run(&root, &debvm::options(interval, &accel, timeout)?),
        Cmd::Lint => {
            bootstrap::run(false)?;
            lint::run()
        }
        Cmd::Atomic {
            only,
            interval,
            count,
        } => {
            bootstrap::run(true)?;
            atomic::run(&atomic::AtomicOptions {
                only,
                interval_secs: interval,
                count,
            })
        }
        Cmd::Vm {
            probes,
            kernels,
            timeout,
        } => {
            bootstrap::run(false)?;
            let bin = build_release(&root)?;
            vm::run(&vm_options(&root, bin, probes, kernels, timeout)?)
        }
        Cmd::Workload {
            events,
            seed,
            out,
            dns_percent,
        } => write_workload(events, seed, dns_percent, &out),
        Cmd::Fuzz { seconds, targets } => {
            // The targets link the monitor crate, whose build compiles the eBPF programs.
            bootstrap::run(false)?;
            fuzz::run(&root, seconds, &targets)
        }
        Cmd::Bench {
            smoke,
            soak,
            only,
            live_rounds,
            paired_rounds,
            monitor_bin,
            exec_rounds,
            baseline_monitor,
            baseline_label,
        } => {
            bootstrap::run(false)?;
            let bin = match monitor_bin {
                Some(bin) => bin,
                None => build_release(&root)?,
            };
            bench::run(&bench::BenchOptions {
                smoke,
                soak,
                only,
                live_rounds,
                paired_rounds,
                exec_rounds,
                baseline: baseline_monitor.map(|b| (b, baseline_label)),
                monitor_bin: bin,
                out: root.join("target/bench"),
            })
        }
    }
}

fn write_workload(events: u64, seed: Option<u64>, dns_percent: u32, out: &Path) -> Result<()> {
    let mut cfg = monitor_workload::WorkloadConfig {
        events,
        dns_percent: dns_percent.min(100),
        ..Default::default()
    };
    if let Some(seed) = seed {
        cfg.seed = seed;
    }
    let stats = if out == Path::new("-") {
        let mut w = std::io::BufWriter::new(std::io::stdout().lock());
        let stats = monitor_workload::generate(&cfg, &mut w)?;
        std::io::Write::flush(&mut w)?;
        stats
    } else {
        let mut w = std::io::BufWriter::new(
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?,
        );
        let stats = monitor_workload::generate(&cfg, &mut w)
            .with_context(|| format!("writing {}", out.display()))?;
        std::io::Write::flush(&mut w).with_context(|| format!("writing {}", out.display()))?;
        stats
    };
    eprintln!(
        "workload: {} events, {} DNS records, {} bytes, {:.0} s of event time, {} hits, {} \
         beacon connections",
        stats.events, stats.dns, stats.bytes, stats.span_s, stats.hits, stats.beacon_events
    );
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn check(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {cmd:?}");
    let st = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed ({st})");
    }
    Ok(())
}

/// Like `check`, but passes the command's output through while keeping the lines that say
/// what failed (failed tests, panics, errors), which the error then repeats.
fn check_noting_failures(cmd: &mut Command) -> Result<()> {
    use std::io::{BufRead as _, Write as _};
    const KEEP: usize = 30;
    fn notable(line: &str) -> bool {
        (line.starts_with("test ") && line.ends_with("FAILED"))
            || line.contains("panicked at")
            || line.starts_with("error")
            || line.trim_start().starts_with("problem:")
    }
    fn pass(
        from: impl std::io::Read,
        mut to: impl std::io::Write,
        kept: &std::sync::Mutex<Vec<String>>,
    ) {
        for line in std::io::BufReader::new(from).split(b'\n') {
            let Ok(line) = line else { break };
            let _ = to.write_all(&line);
            let _ = to.write_all(b"\n");
            let text = String::from_utf8_lossy(&line);
            if notable(&text) {
                let mut k = kept.lock().unwrap_or_else(|e| e.into_inner());
                if k.len() < KEEP {
                    k.push(text.chars().take(300).collect());
                }
            }
        }
    }
    eprintln!("xtask: {cmd:?}");
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    let kept = std::sync::Mutex::new(Vec::new());
    let (out, err) = (child.stdout.take(), child.stderr.take());
    std::thread::scope(|s| {
        if let Some(o) = out {
            s.spawn(|| pass(o, std::io::stdout(), &kept));
        }
        if let Some(e) = err {
            s.spawn(|| pass(e, std::io::stderr(), &kept));
        }
    });
    let st = child
        .wait()
        .with_context(|| format!("waiting for {cmd:?}"))?;
    let _ = std::io::stdout().flush();
    if !st.success() {
        let kept = kept.into_inner().unwrap_or_else(|e| e.into_inner());
        bail!("{cmd:?} failed ({st}):\n  {}", kept.join("\n  "));
    }
    Ok(())
}

fn vm_options(
    root: &Path,
    monitor_bin: PathBuf,
    probes: Vec<String>,
    kernels: Vec<String>,
    timeout: u64,
) -> Result<vm::VmOptions> {
    // The guest's fork and DNS probes (xtask/src/bin/vm-{fork,dns}-probe.rs).
    check(cargo().args([
        "build",
        "--release",
        "-p",
        "xtask",
        "--bin",
        "vm-fork-probe",
        "--bin",
        "vm-dns-probe",
    ]))?;
    Ok(vm::VmOptions {
        monitor_bin,
        fork_probe_bin: target_dir(root).join("release/vm-fork-probe"),
        dns_probe_bin: target_dir(root).join("release/vm-dns-probe"),
        // Kept across runs (the kernel package downloads), outside `target/` so `cargo clean`
        // does not throw it away.
        cache_dir: root.join(".cache/vm"),
        probes,
        kernels,
        timeout: std::time::Duration::from_secs(timeout),
    })
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn build_release(root: &Path) -> Result<PathBuf> {
    check(cargo().args(["build", "--release", "-p", "monitor"]))?;
    Ok(target_dir(root).join("release/monitor"))
}

fn run_monitor(root: &Path, args: &[String]) -> Result<()> {
    bootstrap::run(false)?;
    let bin = build_release(root)?;
    let mut cmd = if bootstrap::is_root() {
        Command::new(&bin)
    } else {
        // Loading eBPF programs needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN).
        let mut c = Command::new("sudo");
        c.arg(&bin);
        c
    };
    cmd.arg("run").args(args);
    eprintln!("xtask: {cmd:?}");
    let st = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    std::process::exit(st.code().unwrap_or(1));
}

/// Runs every suite even when one fails, then reports them all.
fn test_all(root: &Path) -> Result<()> {
    if !bootstrap::is_root() {
        bail!(
            "the test suite loads eBPF programs and creates network namespaces: run it as root (`sudo -E cargo xtask test`)"
        );
    }
    bootstrap::run(true)?;
    let mut results: Vec<(&str, Result<()>, f64)> = Vec::new();
    let mut stage = |name: &'static str, f: &mut dyn FnMut() -> Result<()>| {
        let t = Instant::now();
        eprintln!("\n==== xtask test: {name} ====");
        let r = f();
        if let Err(e) = &r {
            eprintln!("==== {name} FAILED: {e:#}");
        }
        results.push((name, r, t.elapsed().as_secs_f64()));
    };
    stage(
        "lint (cargo fmt --check, cargo clippy -D warnings per crate)",
        &mut || lint::run(),
    );
    stage("cargo tests (unit, integration, live eBPF)", &mut || {
        // One test thread: live tests share the kernel's hooks and the network namespaces.
        check_noting_failures(
            cargo()
                .args([
                    "test",
                    "--release",
                    "--workspace",
                    // The tests that need root and the test packages (monitor/Cargo.toml).
                    "--features",
                    "monitor/host-tests",
                    // Every test binary runs, so one failure does not hide another.
                    "--no-fail-fast",
                    "--",
                    "--test-threads=1",
                    // The live simulations run in their own stage below.
                    "--skip",
                    "attack_simulations_raise_the_expected_alerts_live_and_in_replay",
                ])
                .env("RUST_BACKTRACE", "1"),
        )
    });
    stage(
        "VM kernel test (Debian 11, 12, 13 kernels; fentry, kprobe, tracepoint, auto)",
        &mut || {
            let bin = build_release(root)?;
            vm::run(&vm_options(
                root,
                bin,
                vm::PROBES.iter().map(|p| p.to_string()).collect(),
                vm::KERNEL_NAMES.iter().map(|k| k.to_string()).collect(),
                240,
            )?)
        },
    );
    stage(
        "Debian package in a booted Debian 12 (cargo xtask debvm)",
        &mut || {
            debvm::run(
                root,
                &debvm::options(debvm::DEFAULT_INTERVAL_SECS, "tcg", 900)?,
            )
        },
    );
    stage("attack simulations (cargo xtask atomic)", &mut || {
        atomic::run(&atomic::AtomicOptions {
            only: None,
            interval_secs: 6,
            count: 10,
        })
    });
    stage(
        "benchmark harness smoke run (cargo xtask bench --smoke)",
        &mut || {
            let bin = build_release(root)?;
            bench::run(&bench::BenchOptions {
                smoke: true,
                soak: false,
                only: Vec::new(),
                live_rounds: None,
                paired_rounds: None,
                exec_rounds: None,
                baseline: None,
                monitor_bin: bin,
                out: root.join("target/bench-smoke"),
            })
        },
    );
    stage("fuzz targets (cargo xtask fuzz, 20 s each)", &mut || {
        let targets: Vec<String> = fuzz::CI_TARGETS.iter().map(|t| t.to_string()).collect();
        fuzz::run(root, fuzz::CI_SECONDS, &targets)
    });
    eprintln!("\n==== xtask test summary ====");
    let mut failed = 0;
    for (name, r, secs) in &results {
        let verdict = if r.is_ok() { "ok" } else { "FAILED" };
        if r.is_err() {
            failed += 1;
        }
        eprintln!("{verdict:>6}  {name} ({secs:.0} s)");
    }
    // Why, after the table: a CI log may keep only the end of the output.
    for (name, r, _) in &results {
        if let Err(e) = r {
            eprintln!("\n{name} failed: {e:#}");
        }
    }
    println!("suites: {} passed, {failed} failed", results.len() - failed);
    if failed > 0 {
        bail!("{failed} suite(s) failed");
    }
    Ok(())
}
