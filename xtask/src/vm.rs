//! The VM kernel test: fentry and kprobe capture, backend choice and process identity on
//! stock Debian kernels, one per release line (Debian 11's 5.10, 12's 6.1, 13's 6.12).
//!
//! The CI host's kernel refuses fentry and has no kprobes, so these backends are exercised
//! in a qemu guest running Debian's stock cloud kernel under TCG. The guest also checks
//! `--probe tracepoint` (cgroup programs for TCP and UDP) and `--probe auto`, which must pick
//! fentry there, never a fallback. The guest's /init (xtask/vm/init.sh) runs
//! `monitor run --probe <backend> --events --lifecycle` for each backend, makes one TCP connect and a
//! few UDP sends on loopback with busybox applets, runs the fork probe (a child that
//! connects and sends without exec'ing) and the DNS probe (a DNS server on 127.0.0.1:53 and
//! a client resolving one name over UDP and one over TCP, then connecting to each answer;
//! `vm/dns.rs` checks the `dns-query` records and `destination.domain`) and the lifecycle
//! probe (a UDP bind, a TCP listen, a connect with its accept and known bytes each way, a
//! refused connect and one with no route, then UDP datagrams of known sizes each way from
//! an unconnected and a connected socket; `vm/life.rs` checks the lifecycle hooks, with
//! the UDP flow backend each `--probe` must pick on each kernel, and the result, close,
//! accept, listen and UDP flow records, their ids and byte counts), stops the monitor
//! with SIGTERM and prints its log
//! and JSON output between markers on the serial console. The host then checks, per
//! kernel and backend, that the start-up log names that backend for the hooks, that the
//! traffic came out as connection events, and that each carries the executable the kernel
//! ran: `/bin/busybox` for the applets (busybox re-executes `/proc/self/exe`), the fork
//! probe's file for its forked child. It ends with a table: kernel × `--probe` → the
//! backend each connection hook attached.
//!
//! One file per job: `vm/kernel.rs` (kernel packages through a private apt configuration),
//! `vm/initramfs.rs` (the archive), `vm/elf.rs` (interpreter and libraries of a binary),
//! `vm/host.rs` (qemu, busybox), `vm/boot.rs` (qemu and the console, also used by
//! `cargo xtask debvm`), `vm/checks.rs`, `vm/dns.rs` (the DNS part of the checks),
//! `vm/life.rs` (the lifecycle part).

pub(crate) mod boot;
mod checks;
mod dns;
mod elf;
pub(crate) mod host;
mod initramfs;
mod kernel;
mod life;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};

use checks::{CONNECTION_HOOKS, FORK_PORT, TCP_PORT, Verdict, section};
use dns::{DNS_HOOKS, DNS_PORT};
use life::LIFE_HOOKS;

/// What `cargo xtask vm` runs.
pub struct VmOptions {
    /// The monitor binary to test (a release build of `monitor`).
    pub monitor_bin: PathBuf,
    /// The fork probe (`xtask/src/bin/vm-fork-probe.rs`, a release build).
    pub fork_probe_bin: PathBuf,
    /// The DNS probe (`xtask/src/bin/vm-dns-probe.rs`, a release build).
    pub dns_probe_bin: PathBuf,
    /// The lifecycle probe (`xtask/src/bin/vm-life-probe.rs`, a release build).
    pub life_probe_bin: PathBuf,
    /// Where the downloaded kernels and the private apt state are kept between runs, and
    /// where the initramfs and the console logs of the last run are written.
    pub cache_dir: PathBuf,
    /// `--probe` values to test in the guest: "fentry", "kprobe", "tracepoint", "auto".
    pub probes: Vec<String>,
    /// Kernel lines to boot (`KERNEL_NAMES`).
    pub kernels: Vec<String>,
    /// Limit for each guest run, boot to power-off.
    pub timeout: Duration,
}

/// `--probe` values the guest can run; `checks::expected_backend` says what each must attach.
pub const PROBES: [&str; 4] = ["fentry", "kprobe", "tracepoint", "auto"];
/// `--kernel` values: Debian 11, 12 and 13.
pub const KERNEL_NAMES: [&str; 3] = [
    kernel::KERNELS[0].name,
    kernel::KERNELS[1].name,
    kernel::KERNELS[2].name,
];

/// One kernel's outcome.
struct KernelRun {
    line: &'static str,
    /// `uname -r` in the guest.
    release: String,
    verdicts: Vec<Verdict>,
    /// Why the guest could not be booted or read at all.
    error: Option<String>,
    secs: f64,
}

pub fn run(opts: &VmOptions) -> Result<()> {
    ensure!(!opts.probes.is_empty(), "no probe backends to test");
    for p in &opts.probes {
        ensure!(
            PROBES.contains(&p.as_str()),
            "unknown probe backend {p:?} for the VM test; expected one of {PROBES:?}"
        );
    }
    let lines = opts
        .kernels
        .iter()
        .map(|k| {
            kernel::line(k).with_context(|| {
                format!("unknown kernel line {k:?}; expected one of {KERNEL_NAMES:?}")
            })
        })
        .collect::<Result<Vec<_>>>()?;
    ensure!(!lines.is_empty(), "no kernels to test");
    for (bin, what) in [
        (&opts.monitor_bin, "cargo build --release -p monitor"),
        (
            &opts.fork_probe_bin,
            "cargo build --release -p xtask --bin vm-fork-probe",
        ),
        (
            &opts.dns_probe_bin,
            "cargo build --release -p xtask --bin vm-dns-probe",
        ),
        (
            &opts.life_probe_bin,
            "cargo build --release -p xtask --bin vm-life-probe",
        ),
    ] {
        ensure!(
            bin.is_file(),
            "{} not found; build it first ({what})",
            bin.display()
        );
    }
    fs::create_dir_all(&opts.cache_dir)
        .with_context(|| format!("creating cache dir {}", opts.cache_dir.display()))?;

    let started = Instant::now();
    let qemu = host::ensure_qemu()?;
    let busybox = host::ensure_static_busybox()?;
    let initrd = opts.cache_dir.join("vm-initrd.cpio");
    initramfs::build(
        &initrd,
        &initramfs::Contents {
            busybox: &busybox,
            monitor: &opts.monitor_bin,
            fork_probe: &opts.fork_probe_bin,
            dns_probe: &opts.dns_probe_bin,
            life_probe: &opts.life_probe_bin,
            env: format!(
                "PROBES=\"{}\"\nTCP_PORT={TCP_PORT}\nFORK_PORT={FORK_PORT}\nFORK_PROBE={}\n\
                 DNS_PORT={DNS_PORT}\nDNS_PROBE={}\nLIFE_PROBE={}\nLIFE_PORTS=\"{}\"\n",
                opts.probes.join(" "),
                initramfs::FORK_PROBE_PATH,
                initramfs::DNS_PROBE_PATH,
                initramfs::LIFE_PROBE_PATH,
                life::PORTS.map(|p| p.to_string()).join(" ")
            ),
        },
    )?;
    eprintln!(
        "vm: initramfs {} ({} MiB) ready in {:.1} s",
        initrd.display(),
        fs::metadata(&initrd)?.len() >> 20,
        started.elapsed().as_secs_f64()
    );

    let mut runs = Vec::new();
    for line in &lines {
        let t = Instant::now();
        let mut run = KernelRun {
            line: line.name,
            release: String::new(),
            verdicts: Vec::new(),
            error: None,
            secs: 0.0,
        };
        let outcome = kernel::ensure(&opts.cache_dir, line).and_then(|vmlinuz| {
            eprintln!("vm: {}: booting {}", line.name, vmlinuz.display());
            let console = boot::boot(&qemu, &vmlinuz, &initrd, opts.timeout)?;
            let log = opts.cache_dir.join(format!("vm-console-{}.log", line.name));
            fs::write(&log, &console).with_context(|| format!("writing {}", log.display()))?;
            eprintln!(
                "vm: {}: guest ran {:.1} s; console saved to {}",
                line.name,
                t.elapsed().as_secs_f64(),
                log.display()
            );
            Ok(console)
        });
        match outcome.and_then(|console| {
            let verdicts = checks::check_console(&console, &opts.probes)?;
            Ok((console, verdicts))
        }) {
            Ok((console, verdicts)) => {
                run.release = console
                    .lines()
                    .find_map(|l| l.strip_prefix("=== VM READY kernel="))
                    .map(|r| r.trim_end_matches(" ===").trim().to_string())
                    .unwrap_or_default();
                report(line.name, &console, &verdicts);
                run.verdicts = verdicts;
            }
            Err(e) => {
                eprintln!("vm: {}: FAILED: {e:#}", line.name);
                run.error = Some(format!("{e:#}"));
            }
        }
        run.secs = t.elapsed().as_secs_f64();
        runs.push(run);
    }

    eprintln!("\n{}", table(&runs));
    let mut failed = Vec::new();
    for r in &runs {
        if let Some(e) = &r.error {
            failed.push(format!("{}: {e}", r.line));
        }
        for v in &r.verdicts {
            for p in &v.problems {
                failed.push(format!("{} --probe {}: {p}", r.line, v.probe));
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "VM kernel test failed:\n  {}\n(consoles: {}/vm-console-*.log)",
            failed.join("\n  "),
            opts.cache_dir.display()
        );
    }
    eprintln!(
        "vm: all kernels and backends passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Per backend: OK with the hook lines and the records, or FAILED with the console section.
fn report(kernel: &str, console: &str, verdicts: &[Verdict]) {
    for v in verdicts {
        let start = format!("START {}", v.probe);
        let end = format!("END {}", v.probe);
        if v.problems.is_empty() {
            eprintln!("vm: {kernel} {}: OK", v.probe);
            for line in section(console, &start, &end).unwrap_or_default() {
                if line.starts_with("uptime ") {
                    eprintln!("vm:   guest {line}");
                }
            }
            for line in &v.hook_lines {
                eprintln!("vm:   log: {line}");
            }
            for rec in [&v.tcp_record, &v.udp_record]
                .into_iter()
                .flatten()
                .chain(&v.fork_records)
                .chain(&v.dns_records)
                .chain(&v.life_records)
            {
                eprintln!("vm:   record: {rec}");
            }
        } else {
            eprintln!("vm: {kernel} {}: FAILED; console section:", v.probe);
            for line in section(console, &start, &end).unwrap_or_default() {
                eprintln!("vm| {line}");
            }
            for line in section(console, "BEGIN dmesg", "END dmesg").unwrap_or_default() {
                eprintln!("vm| dmesg: {line}");
            }
        }
    }
}

/// kernel × `--probe` → the backend each connection and DNS hook attached, and the verdict.
fn table(runs: &[KernelRun]) -> String {
    let cols: Vec<&str> = CONNECTION_HOOKS
        .iter()
        .chain(&DNS_HOOKS)
        .copied()
        .chain(LIFE_HOOKS.iter().map(|(h, _)| *h))
        .chain([life::FLOW_HOOK])
        .collect();
    let mut out = format!(
        "| kernel | --probe | {} | result |\n| --- | --- |{} --- |\n",
        cols.join(" | "),
        " --- |".repeat(cols.len())
    );
    for r in runs {
        let kernel = format!("{} ({})", r.line, r.release);
        if let Some(e) = &r.error {
            let first = e.lines().next().unwrap_or_default();
            out.push_str(&format!(
                "| {kernel} | – |{} FAILED: {first} ({:.0} s) |\n",
                " – |".repeat(cols.len()),
                r.secs
            ));
            continue;
        }
        for v in &r.verdicts {
            let hooks: BTreeMap<&str, String> = cols
                .iter()
                .map(|h| {
                    let b = v.hooks.get(*h).map_or("not attached".to_string(), |set| {
                        set.iter().cloned().collect::<Vec<_>>().join(", ")
                    });
                    (*h, b)
                })
                .collect();
            out.push_str(&format!(
                "| {kernel} | {} | {} | {} |\n",
                v.probe,
                cols.iter()
                    .map(|h| hooks[h].as_str())
                    .collect::<Vec<_>>()
                    .join(" | "),
                if v.problems.is_empty() {
                    "ok (capture, identity, DNS, lifecycle)".to_string()
                } else {
                    format!("FAILED ({} problems)", v.problems.len())
                }
            ));
        }
        out.push_str(&format!(
            "| {kernel} | (boot to power-off) |{} {:.0} s |\n",
            " |".repeat(cols.len()),
            r.secs
        ));
    }
    out
}
