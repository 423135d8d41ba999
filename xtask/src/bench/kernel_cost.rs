//! Item 3, the in-kernel part of the capture cost: run counts and run time of the monitor's
//! programs from the kernel's own accounting.

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

use super::Ctx;
use super::live::{LOAD_CPU, TOOL_CPU, Workload, load_args, run_loadgen};
use super::subject::{Monitor, MonitorRun};

/// Run counts and run time of every BPF program (`bpftool prog show`), by program id.
fn bpf_prog_stats() -> Result<Vec<(u64, String, u64, u64)>> {
    let out = std::process::Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
        .context("running bpftool (Debian package bpftool)")?;
    ensure!(
        out.status.success(),
        "bpftool prog show failed ({})",
        out.status
    );
    let v: Value = serde_json::from_slice(&out.stdout).context("parsing bpftool's JSON")?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["id"].as_u64().unwrap_or(0),
                        p["name"].as_str().unwrap_or("?").to_string(),
                        p["run_cnt"].as_u64().unwrap_or(0),
                        p["run_time_ns"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Restores `kernel.bpf_stats_enabled` when dropped.
struct BpfStatsGuard(String);

impl Drop for BpfStatsGuard {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", &self.0);
    }
}

/// Item 3, the part timings on a shared machine cannot show: what the monitor's kernel
/// programs cost per run and per operation, from the kernel's own accounting
/// (`kernel.bpf_stats_enabled`, which adds a few tens of nanoseconds per run while on).
pub fn kernel_cost(ctx: &Ctx) -> Result<(Value, String)> {
    const STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";
    let before = std::fs::read_to_string(STATS).with_context(|| format!("reading {STATS}"))?;
    let _guard = BpfStatsGuard(before.trim().to_string());
    let known: Vec<u64> = bpf_prog_stats()?.iter().map(|p| p.0).collect();
    std::fs::write(STATS, "1").with_context(|| format!("enabling {STATS}"))?;
    let run = MonitorRun {
        events: false,
        ringbuf_bytes: None,
        cpu: Some(TOOL_CPU),
    };
    let mut m = Monitor::start(&ctx.monitor_bin, &ctx.out, "kernel_cost", &run)?;
    let mut md = String::from(
        "In-kernel cost of the monitor's programs, from the kernel's accounting (`kernel.bpf_stats_enabled=1`, \
         `bpftool prog show`): these run in the generator's context, on CPU 1, and are the part of the monitor's \
         cost that no other core can absorb. On a host without fentry and kprobes TCP connects are caught by \
         `tcp_cgroup_connect4` (once per connect; `udp_cgroup_connect4` runs on them too and returns at once); \
         were a TCP tracepoint chosen, it would run on every state change of both ends (six per op). The kernel's \
         accounting covers the program only: what the kernel does around it (for a classic tracepoint, filling \
         the trace record on every state change) shows in the live ratio instead.\n\n\
         | workload | program | runs per op | ns per run | ns per op |\n| --- | --- | ---: | ---: | ---: |\n",
    );
    let mut rows = Vec::new();
    for workload in Workload::ALL {
        m.settle()?;
        let p0 = bpf_prog_stats()?;
        let load = run_loadgen(
            &ctx.loadgen,
            &load_args(workload, ctx.plan.live_secs, None, LOAD_CPU),
        )?;
        m.settle()?;
        let p1 = bpf_prog_stats()?;
        let mut total = 0.0;
        for (id, name, cnt, ns) in &p1 {
            if known.contains(id) {
                continue;
            }
            let (c0, n0) = p0
                .iter()
                .find(|p| p.0 == *id)
                .map(|p| (p.2, p.3))
                .unwrap_or((0, 0));
            let (runs, time) = (cnt.saturating_sub(c0), ns.saturating_sub(n0));
            // Programs that ran for less than 1 % of the operations are background
            // (exec/exit of other processes), not this workload.
            if load.ops == 0 || runs * 100 < load.ops {
                continue;
            }
            let per_op = time as f64 / load.ops as f64;
            total += per_op;
            md.push_str(&format!(
                "| {} | {name} | {:.2} | {:.0} | {per_op:.0} |\n",
                workload.name(),
                runs as f64 / load.ops as f64,
                time as f64 / runs as f64
            ));
            rows.push(json!({"workload": workload.key(), "program": name, "runs": runs, "run_time_ns": time, "ops": load.ops}));
        }
        md.push_str(&format!(
            "| {} | **all** | | | **{total:.0}** (the generator's own time per op here: {:.0} ns) |\n",
            workload.name(),
            1e9 / load.rate
        ));
    }
    m.stop()?;
    Ok((json!({ "rows": rows }), md))
}
