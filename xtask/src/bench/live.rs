//! Live capture cost (issue item 3) and the loss threshold (item 4).
//!
//! Item 3 runs the load generator on CPU 1 against four configurations, interleaved round
//! by round (the order rotates each round, so drift on a shared machine spreads over all of
//! them): nothing watching, the monitor with alerts only, the monitor with `--events` to
//! /dev/null, and bpftrace doing the same capture (xtask/bench/capture.bt). The monitor and
//! bpftrace run on CPU 0. Each configuration runs three workloads: TCP connect+accept+close,
//! UDP sends to a new destination each time (nothing for the kernel's flood control to
//! suppress) and UDP sends to one destination (the flood-control path).
//!
//! Item 4 runs the monitor through 30 s trials at and above the highest rate one core makes
//! and records every loss the daemon reports.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};

use super::stats::RatioSummary;
use super::subject::{Bpftrace, Counters, Monitor, MonitorRun};
use super::{Ctx, fmt_rate, median};

/// CPU the load runs on; the watchers run on the other one.
pub const LOAD_CPU: usize = 1;
pub const TOOL_CPU: usize = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    Bare,
    MonitorAlerts,
    MonitorEvents,
    Bpftrace,
}

impl Config {
    pub const ALL: [Config; 4] = [
        Config::Bare,
        Config::MonitorAlerts,
        Config::MonitorEvents,
        Config::Bpftrace,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Config::Bare => "no monitor",
            Config::MonitorAlerts => "monitor (alerts only)",
            Config::MonitorEvents => "monitor --events >/dev/null",
            Config::Bpftrace => "bpftrace (capture.bt)",
        }
    }
    pub(super) fn key(self) -> &'static str {
        match self {
            Config::Bare => "bare",
            Config::MonitorAlerts => "monitor_alerts",
            Config::MonitorEvents => "monitor_events",
            Config::Bpftrace => "bpftrace",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Tcp,
    UdpDistinct,
    UdpRepeat,
}

impl Workload {
    pub const ALL: [Workload; 3] = [Workload::Tcp, Workload::UdpDistinct, Workload::UdpRepeat];
    pub fn name(self) -> &'static str {
        match self {
            Workload::Tcp => "TCP connect+accept+close",
            Workload::UdpDistinct => "UDP sendto, new destination each",
            Workload::UdpRepeat => "UDP sendto, one destination",
        }
    }
    pub(super) fn key(self) -> &'static str {
        match self {
            Workload::Tcp => "tcp",
            Workload::UdpDistinct => "udp_distinct",
            Workload::UdpRepeat => "udp_repeat",
        }
    }
    fn loadgen_args(self) -> Vec<String> {
        match self {
            Workload::Tcp => vec!["tcp".into()],
            // 1M destinations: a destination comes round again only after seconds, long
            // after any flood-control window.
            Workload::UdpDistinct => vec!["udp".into(), "--destinations".into(), "1000000".into()],
            Workload::UdpRepeat => vec!["udp".into(), "--destinations".into(), "1".into()],
        }
    }
}

/// One loadgen result.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadResult {
    pub ops: u64,
    pub errors: u64,
    pub rate: f64,
}

/// Runs the load generator to completion and parses its JSON line.
pub fn run_loadgen(loadgen: &Path, args: &[String]) -> Result<LoadResult> {
    let out = Command::new(loadgen)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} {args:?}", loadgen.display()))?;
    if !out.status.success() {
        bail!(
            "loadgen {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "loadgen {args:?} printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    Ok(LoadResult {
        ops: v["ops"].as_u64().unwrap_or(0),
        errors: v["errors"].as_u64().unwrap_or(0),
        rate: v["rate"].as_f64().unwrap_or(0.0),
    })
}

pub(super) fn load_args(w: Workload, secs: f64, rate: Option<f64>, cpu: usize) -> Vec<String> {
    let mut a = w.loadgen_args();
    a.extend([
        "--duration".into(),
        format!("{secs}"),
        "--cpu".into(),
        cpu.to_string(),
    ]);
    if let Some(r) = rate {
        a.extend(["--rate".into(), format!("{r:.0}")]);
    }
    a
}

/// One (configuration, workload, round) measurement.
#[derive(Clone, Debug)]
struct Trial {
    config: Config,
    workload: Workload,
    round: usize,
    load: LoadResult,
    /// What the watcher saw: events, losses, CPU time (zero for the bare run).
    seen: u64,
    lost: u64,
    suppressed: u64,
    cpu_ns: u64,
}

enum Watcher {
    None,
    Monitor(Monitor),
    Bpftrace(Bpftrace),
}

impl Watcher {
    fn start(ctx: &Ctx, c: Config) -> Result<Watcher> {
        Ok(match c {
            Config::Bare => Watcher::None,
            Config::MonitorAlerts | Config::MonitorEvents => {
                let run = MonitorRun {
                    events: c == Config::MonitorEvents,
                    ringbuf_bytes: None,
                    cpu: Some(TOOL_CPU),
                };
                Watcher::Monitor(Monitor::start(&ctx.monitor_bin, &ctx.out, c.key(), &run)?)
            }
            Config::Bpftrace => Watcher::Bpftrace(Bpftrace::start(
                &ctx.root.join("xtask/bench/capture.bt"),
                &ctx.out,
                Some(TOOL_CPU),
            )?),
        })
    }

    fn before(&mut self) -> Result<Counters> {
        Ok(match self {
            Watcher::None => Counters::default(),
            Watcher::Monitor(m) => m.settle()?.0,
            Watcher::Bpftrace(b) => {
                b.take()?;
                Counters {
                    cpu_ns: b.cpu_ns()?,
                    ..Counters::default()
                }
            }
        })
    }

    fn after(&mut self, before: &Counters) -> Result<Counters> {
        Ok(match self {
            Watcher::None => Counters::default(),
            Watcher::Monitor(m) => m.settle()?.0.since(before),
            Watcher::Bpftrace(b) => {
                let c = b.take()?;
                Counters {
                    kernel_events: c.events + c.lost,
                    processed: c.events,
                    lost: c.lost,
                    cpu_ns: b.cpu_ns()?.saturating_sub(before.cpu_ns),
                    ..Counters::default()
                }
            }
        })
    }

    /// Stops the watcher; a note when it had to be forced (bpftrace only: the monitor must
    /// stop on SIGTERM, or it is an error).
    fn stop(self) -> Result<Option<String>> {
        match self {
            Watcher::None => Ok(None),
            Watcher::Monitor(m) => m.stop().map(|()| None),
            Watcher::Bpftrace(b) => b.stop(),
        }
    }
}

/// Item 3: the interleaved comparison.
pub fn capture_cost(ctx: &Ctx) -> Result<(Value, String)> {
    let mut trials: Vec<Trial> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for round in 0..ctx.plan.live_rounds {
        for i in 0..Config::ALL.len() {
            let config = Config::ALL[(i + round) % Config::ALL.len()];
            eprintln!(
                "bench: live round {} / {}: {}",
                round + 1,
                ctx.plan.live_rounds,
                config.name()
            );
            let mut w = Watcher::start(ctx, config)?;
            for workload in Workload::ALL {
                let before = w.before()?;
                let load = run_loadgen(
                    &ctx.loadgen,
                    &load_args(workload, ctx.plan.live_secs, None, LOAD_CPU),
                )?;
                let d = w.after(&before)?;
                trials.push(Trial {
                    config,
                    workload,
                    round,
                    load,
                    seen: d.processed,
                    lost: d.lost,
                    suppressed: d.udp_suppressed,
                    cpu_ns: d.cpu_ns,
                });
            }
            notes.extend(w.stop()?.map(|n| format!("round {}: {n}", round + 1)));
        }
    }

    let mut json_rows = Vec::new();
    let mut md = String::new();
    md.push_str(&format!(
        "Load on CPU {LOAD_CPU}, watchers on CPU {TOOL_CPU}; {} rounds of {} s per configuration and workload, interleaved. \
         Rate: median over rounds. Ratio: median over rounds of (rate / no-monitor rate of the same round). \
         Watcher CPU per op: the watcher's own CPU time (all threads, user + kernel, from /proc/PID/task/*/schedstat) over the generator's operations; the BPF programs run in the generator's context and show up in its rate instead. \
         Seen: events the watcher reported (monitor: processed by the pipeline; bpftrace: lines printed), summed over rounds.\n\n",
        ctx.plan.live_rounds, ctx.plan.live_secs
    ));
    for workload in Workload::ALL {
        md.push_str(&format!("**{}**\n\n", workload.name()));
        md.push_str("| configuration | rate (ops/s) | ratio to no monitor | watcher CPU per op | seen | lost | suppressed in kernel |\n");
        md.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for config in Config::ALL {
            let ts: Vec<&Trial> = trials
                .iter()
                .filter(|t| t.config == config && t.workload == workload)
                .collect();
            let rates: Vec<f64> = ts.iter().map(|t| t.load.rate).collect();
            let ratios: Vec<f64> = ts
                .iter()
                .filter_map(|t| {
                    trials
                        .iter()
                        .find(|b| {
                            b.config == Config::Bare && b.workload == workload && b.round == t.round
                        })
                        .map(|b| t.load.rate / b.load.rate)
                })
                .collect();
            let seen: u64 = ts.iter().map(|t| t.seen).sum();
            let lost: u64 = ts.iter().map(|t| t.lost).sum();
            let suppressed: u64 = ts.iter().map(|t| t.suppressed).sum();
            let cpu_ns: u64 = ts.iter().map(|t| t.cpu_ns).sum();
            let ops: u64 = ts.iter().map(|t| t.load.ops).sum();
            let cpu_per_event = (seen > 0).then(|| cpu_ns as f64 / seen as f64);
            // Per operation of the generator: comparable across watchers even when the
            // kernel suppresses repeats and the daemon sees few events.
            let cpu_per_op = (ops > 0).then(|| cpu_ns as f64 / ops as f64);
            let rate = median(&rates);
            let ratio = median(&ratios);
            md.push_str(&format!(
                "| {} | {} | {:.3} | {} | {} | {} | {} |\n",
                config.name(),
                fmt_rate(rate),
                ratio,
                match (config, cpu_per_op) {
                    (Config::Bare, _) => "–".to_string(),
                    (_, Some(ns)) => format!("{:.2} µs", ns / 1000.0),
                    (_, None) => "no events".to_string(),
                },
                if config == Config::Bare {
                    "–".into()
                } else {
                    seen.to_string()
                },
                if config == Config::Bare {
                    "–".into()
                } else {
                    lost.to_string()
                },
                match config {
                    Config::MonitorAlerts | Config::MonitorEvents => suppressed.to_string(),
                    _ => "–".into(),
                },
            ));
            json_rows.push(json!({
                "workload": workload.key(),
                "config": config.key(),
                "rates": rates,
                "ratios": ratios,
                "rate_median": rate,
                "ratio_median": ratio,
                "seen": seen,
                "lost": lost,
                "udp_suppressed": suppressed,
                "watcher_cpu_ns": cpu_ns,
                "watcher_cpu_ns_per_event": cpu_per_event,
                "watcher_cpu_ns_per_op": cpu_per_op,
                "ops": ops,
                "errors": ts.iter().map(|t| t.load.errors).sum::<u64>(),
            }));
        }
        md.push('\n');
    }
    ensure!(
        trials.iter().all(|t| t.load.ops > 0),
        "a live trial made no operations"
    );
    ensure!(
        trials
            .iter()
            .filter(|t| t.config != Config::Bare && t.workload == Workload::Tcp)
            .all(|t| t.seen > 0),
        "a watcher saw no TCP connects during a live trial"
    );
    let tcp_ratio = |c: Config| {
        json_rows
            .iter()
            .find(|r| r["workload"] == "tcp" && r["config"] == c.key())
            .and_then(|r| r["ratio_median"].as_f64())
            .unwrap_or(0.0)
    };
    let (alerts, events, bt) = (
        tcp_ratio(Config::MonitorAlerts),
        tcp_ratio(Config::MonitorEvents),
        tcp_ratio(Config::Bpftrace),
    );
    md.push_str(&format!(
        "Target: TCP connect rate with the monitor (alerts only) ≥ 0.95 of the rate without it, and closer to it than bpftrace: \
         {alerts:.3} vs bpftrace {bt:.3} → **{}**. (`--events`: {events:.3}.)\n",
        if alerts >= 0.95 && alerts > bt { "met" } else { "missed" }
    ));
    md.push_str(&notes_md(&notes));
    Ok((json!({ "rows": json_rows, "notes": notes }), md))
}

/// Item 4: the highest connect rate the monitor keeps up with over a full trial, and what
/// happens above it.
pub fn loss_threshold(ctx: &Ctx) -> Result<(Value, String)> {
    let secs = ctx.plan.threshold_secs;
    let mut rows = Vec::new();
    let mut md = String::new();
    md.push_str(&format!(
        "{secs} s per trial; TCP connect+accept+close; monitor on CPU {TOOL_CPU} unless noted. \
         Lost: the daemon's own `monitor_ringbuf_lost_total` over the trial; seen: events its pipeline processed.\n\n"
    ));
    md.push_str("| trial | monitor | load | rate (connects/s) | seen | lost | daemon after |\n");
    md.push_str("| --- | --- | --- | ---: | ---: | ---: | --- |\n");

    // One trial: start the monitor, run the load (one or two generators), settle, record.
    let mut trial = |label: &str, run: MonitorRun, loads: Vec<Vec<String>>| -> Result<Value> {
        let mut m = Monitor::start(&ctx.monitor_bin, &ctx.out, "threshold", &run)?;
        let before = m.settle()?.0;
        let handles: Vec<_> = loads
            .iter()
            .map(|a| {
                let lg = ctx.loadgen.clone();
                let a = a.clone();
                std::thread::spawn(move || run_loadgen(&lg, &a))
            })
            .collect();
        let mut rate = 0.0;
        for h in handles {
            rate += h
                .join()
                .map_err(|_| anyhow::anyhow!("loadgen thread panicked"))??
                .rate;
        }
        let d = m.settle()?.0.since(&before);
        // The daemon must still answer after the overload, and say what it lost.
        let alive = m.scrape().is_ok();
        let warned = m.loss_log_lines();
        m.stop()?;
        let desc = format!(
            "{}{}",
            if run.events {
                "--events"
            } else {
                "alerts only"
            },
            run.ringbuf_bytes
                .map(|b| format!(", --ringbuf-bytes {b}"))
                .unwrap_or_default()
        );
        let load_desc = loads
            .iter()
            .map(|a| {
                let rate = a
                    .iter()
                    .position(|x| x == "--rate")
                    .map(|i| format!("{}/s", a[i + 1]))
                    .unwrap_or_else(|| "max".into());
                let cpu = a
                    .iter()
                    .position(|x| x == "--cpu")
                    .map(|i| a[i + 1].clone())
                    .unwrap_or_default();
                format!("{rate} on CPU {cpu}")
            })
            .collect::<Vec<_>>()
            .join(" + ");
        md.push_str(&format!(
            "| {label} | {desc} | {load_desc} | {} | {} | {} | {} |\n",
            fmt_rate(rate),
            d.processed,
            d.lost,
            if alive && d.lost == 0 {
                "up".to_string()
            } else if alive {
                format!(
                    "up; logged: {}",
                    if warned.is_empty() {
                        "NOTHING (silent loss)".to_string()
                    } else {
                        format!("{} warning(s)", warned.len())
                    }
                )
            } else {
                "NOT answering".to_string()
            }
        ));
        let v = json!({
            "trial": label, "events": run.events, "ringbuf_bytes": run.ringbuf_bytes,
            "loads": loads, "rate": rate, "seen": d.processed, "lost": d.lost,
            "kernel_events": d.kernel_events, "alive_after": alive, "loss_warnings": warned.len(),
        });
        rows.push(v.clone());
        Ok(v)
    };

    let alerts = MonitorRun {
        events: false,
        ringbuf_bytes: None,
        cpu: Some(TOOL_CPU),
    };
    let events = MonitorRun {
        events: true,
        ..alerts.clone()
    };
    let one_core = |rate: Option<f64>| vec![load_args(Workload::Tcp, secs, rate, LOAD_CPU)];

    // 1. The most one core makes, alerts only.
    let max = trial("one core, unpaced", alerts.clone(), one_core(None))?;
    let r_max = max["rate"].as_f64().unwrap_or(0.0);
    let mut threshold_note;
    if max["lost"].as_u64() == Some(0) {
        threshold_note = format!(
            "No loss at the highest rate one core makes ({}/s, alerts only): the threshold is above what this machine sustains on one core.",
            fmt_rate(r_max)
        );
    } else {
        // Bisect below the maximum for the highest paced rate without loss.
        let (mut lo, mut hi) = (0.0f64, r_max);
        for step in 0..ctx.plan.bisect_steps {
            let mid = (lo + hi) / 2.0;
            let v = trial(
                &format!("bisect {}", step + 1),
                alerts.clone(),
                one_core(Some(mid)),
            )?;
            if v["lost"].as_u64() == Some(0) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        threshold_note = format!(
            "Losses at the one-core maximum ({}/s); highest paced rate without loss found: {}/s (bisection, {} steps).",
            fmt_rate(r_max),
            fmt_rate(lo),
            ctx.plan.bisect_steps
        );
    }
    // 2. Above it: a generator on each core (the monitor now competes for CPU 0).
    let both = vec![
        load_args(Workload::Tcp, secs, None, LOAD_CPU),
        load_args(Workload::Tcp, secs, None, TOOL_CPU),
    ];
    let two = trial(
        "two cores, unpaced",
        MonitorRun {
            cpu: None,
            ..alerts.clone()
        },
        both,
    )?;
    // 3. --events at half the one-core maximum (target: no loss), and at the maximum.
    let half = trial(
        "--events at half of max",
        events.clone(),
        one_core(Some(r_max / 2.0)),
    )?;
    trial("--events, unpaced", events.clone(), one_core(None))?;
    // 4. A deliberately small ring buffer: the overflow path, which must be counted and
    //    reported while the daemon stays up.
    let small = trial(
        "4 KiB ring buffer, unpaced",
        MonitorRun {
            ringbuf_bytes: Some(4096),
            ..events.clone()
        },
        one_core(None),
    )?;
    threshold_note.push_str(&format!(
        " Two generators (one per core, {}/s together): {} lost. `--events` at half the maximum: {} lost (target 0 → **{}**). \
         With a 4 KiB ring buffer: {} lost, counted in the metrics, {} warning line(s) in the daemon's log, daemon {}.",
        fmt_rate(two["rate"].as_f64().unwrap_or(0.0)),
        two["lost"],
        half["lost"],
        if half["lost"].as_u64() == Some(0) { "met" } else { "missed" },
        small["lost"],
        small["loss_warnings"],
        if small["alive_after"] == true { "still up and stopped cleanly" } else { "NOT answering" },
    ));
    md.push('\n');
    md.push_str(&threshold_note);
    md.push('\n');
    Ok((
        json!({ "rows": rows, "one_core_max_rate": r_max, "note": threshold_note }),
        md,
    ))
}

/// Item 3, the TCP target alone, with adjacent short trials: each round runs the bare
/// generator, the monitor (alerts only) and bpftrace back to back, a few seconds apart, in
/// an order that cycles through all six permutations. A round's ratio compares trials
/// seconds apart, so the host's drift (the bare rate moves by a third within an hour here)
/// cancels; the interleaved stage above puts 15-20 s and two other workloads between them.
pub fn paired_tcp(ctx: &Ctx) -> Result<(Value, String)> {
    const CONFIGS: [Config; 3] = [Config::Bare, Config::MonitorAlerts, Config::Bpftrace];
    const ORDERS: [[usize; 3]; 6] = [
        [0, 1, 2],
        [1, 2, 0],
        [2, 0, 1],
        [0, 2, 1],
        [2, 1, 0],
        [1, 0, 2],
    ];
    let rounds = ctx.plan.paired_rounds;
    let secs = ctx.plan.paired_secs;
    let mut trials: Vec<Trial> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for round in 0..rounds {
        for &i in &ORDERS[round % ORDERS.len()] {
            let config = CONFIGS[i];
            eprintln!(
                "bench: paired round {} / {rounds}: {}",
                round + 1,
                config.name()
            );
            let mut w = Watcher::start(ctx, config)?;
            let before = w.before()?;
            let load = run_loadgen(
                &ctx.loadgen,
                &load_args(Workload::Tcp, secs, None, LOAD_CPU),
            )?;
            let d = w.after(&before)?;
            notes.extend(w.stop()?.map(|n| format!("round {}: {n}", round + 1)));
            trials.push(Trial {
                config,
                workload: Workload::Tcp,
                round,
                load,
                seen: d.processed,
                lost: d.lost,
                suppressed: d.udp_suppressed,
                cpu_ns: d.cpu_ns,
            });
        }
    }
    ensure!(
        trials.iter().all(|t| t.load.ops > 0),
        "a paired trial made no operations"
    );
    ensure!(
        trials
            .iter()
            .filter(|t| t.config != Config::Bare)
            .all(|t| t.seen > 0),
        "a watcher saw no TCP connects during a paired trial"
    );

    let bare_rate = |round: usize| {
        trials
            .iter()
            .find(|t| t.config == Config::Bare && t.round == round)
            .map(|t| t.load.rate)
    };
    let mut md = format!(
        "TCP connect+accept+close on CPU {LOAD_CPU}, watchers on CPU {TOOL_CPU}; {rounds} rounds, each one trial of {secs} s \
         per configuration back to back, the order cycling through all six permutations. \
         Ratio: a trial's rate over the bare rate of its own round. \
         95 % interval: the distribution-free confidence interval of the median ratio (order statistics, binomial).\n\n\
         | configuration | rate (median) | ratio: median | 95 % interval of the median | quartiles | rounds ≥ 0.95 | watcher CPU per op | seen | lost |\n\
         | --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: |\n"
    );
    let mut rows = Vec::new();
    let mut medians = Vec::new();
    for config in CONFIGS {
        let ts: Vec<&Trial> = trials.iter().filter(|t| t.config == config).collect();
        let rates: Vec<f64> = ts.iter().map(|t| t.load.rate).collect();
        let summary = RatioSummary::of(
            ts.iter()
                .filter_map(|t| bare_rate(t.round).map(|b| t.load.rate / b))
                .collect(),
            0.95,
        );
        let (ratio, (lo, hi)) = (summary.median, summary.ci95);
        let [ratio_cell, interval_cell, quartile_cell, goal_cell] = summary.cells();
        let seen: u64 = ts.iter().map(|t| t.seen).sum();
        let lost: u64 = ts.iter().map(|t| t.lost).sum();
        let cpu_ns: u64 = ts.iter().map(|t| t.cpu_ns).sum();
        let ops: u64 = ts.iter().map(|t| t.load.ops).sum();
        let bare = config == Config::Bare;
        let dash = |s: String| if bare { "–".to_string() } else { s };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            config.name(),
            fmt_rate(median(&rates)),
            dash(ratio_cell),
            dash(interval_cell),
            dash(quartile_cell),
            dash(goal_cell),
            dash(format!(
                "{:.2} µs",
                cpu_ns as f64 / ops.max(1) as f64 / 1000.0
            )),
            dash(seen.to_string()),
            dash(lost.to_string()),
        ));
        medians.push((config, ratio, lo));
        rows.push(json!({
            "config": config.key(),
            "rates": rates,
            "ratios_sorted": summary.sorted,
            "ratio_median": ratio,
            "ratio_median_ci95": [lo, hi],
            "rounds_at_least_0_95": summary.at_least_goal,
            "seen": seen,
            "lost": lost,
            "watcher_cpu_ns": cpu_ns,
            "ops": ops,
        }));
    }
    let get = |c: Config| {
        medians
            .iter()
            .find(|(k, _, _)| *k == c)
            .map(|&(_, m, lo)| (m, lo))
            .unwrap_or((f64::NAN, None))
    };
    let ((alerts, alerts_lo), (bt, _)) = (get(Config::MonitorAlerts), get(Config::Bpftrace));
    md.push_str(&format!(
        "\nTarget: TCP connect rate with the monitor (alerts only) ≥ 0.95 of the rate without it, and closer to it than bpftrace: \
         median {alerts:.3} (lower end of its 95 % interval: {}) vs bpftrace {bt:.3} → **{}**.\n",
        alerts_lo.map_or("–".into(), |v| format!("{v:.3}")),
        if alerts >= 0.95 && alerts > bt {
            "met"
        } else {
            "missed"
        }
    ));
    md.push_str(&notes_md(&notes));
    Ok((
        json!({ "rounds": rounds, "secs": secs, "rows": rows, "notes": notes }),
        md,
    ))
}

/// The report's lines for watchers that had to be forced to stop (none in a clean run).
fn notes_md(notes: &[String]) -> String {
    notes.iter().map(|n| format!("\nNote: {n}.\n")).collect()
}
