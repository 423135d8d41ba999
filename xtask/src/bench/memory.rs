//! Memory (issue item 5) on the live daemon.
//!
//! Keys and processes: `loadgen swarm` starts 10,000 real processes (each an exec of the
//! load generator, so the daemon learns them from exec events like any other process) in a
//! private network namespace; each connects to 10 destinations of its own, 100,000 distinct
//! (process, destination, port) keys in all, on non-standard ports of the documentation
//! ranges, and then stays alive. The daemon's RSS is read once it has processed every event.
//! Real processes rather than synthetic exec events fed to `ProcessTable` in a bench binary:
//! the daemon's own RSS, with its real allocator and everything else it holds, is what an
//! operator sees, and 10,000 small processes cost this machine about 3 GB for a minute.
//!
//! Flatness: `loadgen mixed` for 10 minutes (`--soak`; 5 s in smoke mode) with the daemon's
//! RSS sampled every 10 s.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};

use super::Ctx;
use super::live::{LOAD_CPU, TOOL_CPU};
use super::subject::{Monitor, MonitorRun};

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn keys_and_processes(ctx: &Ctx) -> Result<(Value, String)> {
    let run = MonitorRun {
        events: false,
        ringbuf_bytes: None,
        cpu: Some(TOOL_CPU),
    };
    let mut m = Monitor::start(&ctx.monitor_bin, &ctx.out, "memory", &run)?;
    let (c0, s0) = m.settle()?;
    let (rss0, _) = m.rss_kib()?;
    let procs = ctx.plan.swarm_procs;
    let per_proc = ctx.plan.swarm_per_proc;
    let started = Instant::now();
    let mut swarm = Command::new(&ctx.loadgen)
        .args([
            "swarm",
            "--procs",
            &procs.to_string(),
            "--per-proc",
            &per_proc.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting loadgen swarm")?;
    let mut line = String::new();
    BufReader::new(swarm.stdout.take().context("swarm stdout")?)
        .read_line(&mut line)
        .context("reading the swarm's report")?;
    let report: Value = match serde_json::from_str(&line) {
        Ok(v) => v,
        Err(_) => {
            let _ = swarm.kill();
            let _ = swarm.wait();
            bail!("loadgen swarm failed before reporting (output {line:?})");
        }
    };
    let result = (|| -> Result<(Value, String)> {
        let (c1, s1) = m.settle()?;
        let (rss1, hwm1) = m.rss_kib()?;
        let d = c1.since(&c0);
        let entries = s1.sum("monitor_process_table_entries");
        let keys = s1.sum("monitor_beacon_keys");
        // The swarm's addresses open one T1046 port-scan group each: the correlation store
        // at its cap (100,000) while the swarm is alive (under the rules' 60 s timespan).
        let groups = s1.sum("monitor_correlation_groups");
        let alerts: Vec<(String, u64)> = s1
            .labelled("monitor_alerts_total")
            .into_iter()
            .map(|(l, v)| {
                let before = s0
                    .labelled("monitor_alerts_total")
                    .into_iter()
                    .find(|(l0, _)| *l0 == l)
                    .map(|x| x.1)
                    .unwrap_or(0);
                (l, v - before.min(v))
            })
            .filter(|(_, v)| *v > 0)
            .collect();
        let target = 64.0;
        let md = format!(
            "`loadgen swarm --procs {procs} --per-proc {per_proc}`: {} processes alive, {} connects \
             ({} processed by the daemon, {} lost) in {:.0} s.\n\n\
             | measure | value |\n| --- | ---: |\n\
             | daemon RSS before | {:.1} MiB |\n| daemon RSS with the swarm alive, everything processed | {:.1} MiB |\n\
             | daemon peak RSS (VmHWM) | {:.1} MiB |\n| process table entries | {entries} |\n| beacon detector keys | {keys} |\n\
             | correlation groups | {groups} |\n\
             | alerts raised (rule: count) | {} |\n\n\
             Target: RSS < {target:.0} MiB with 100,000 keys and 10,000 processes → {:.1} MiB → **{}**{}.\n",
            report["ready"],
            report["connects"],
            d.processed,
            d.lost,
            started.elapsed().as_secs_f64(),
            mib(rss0),
            mib(rss1),
            mib(hwm1),
            if alerts.is_empty() {
                "none".to_string()
            } else {
                alerts
                    .iter()
                    .map(|(l, v)| format!("{l}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            mib(rss1.max(hwm1)),
            if mib(hwm1) < target { "met" } else { "missed" },
            if procs < 10_000 {
                " (smoke: fewer processes and keys than the target's)"
            } else {
                ""
            },
        );
        ensure!(d.processed > 0, "the daemon processed no swarm connects");
        Ok((
            json!({
                "procs": procs, "per_proc": per_proc, "swarm": report,
                "processed": d.processed, "lost": d.lost,
                "rss_before_kib": rss0, "rss_after_kib": rss1, "hwm_kib": hwm1,
                "process_table_entries": entries, "beacon_keys": keys,
                "correlation_groups": groups,
            }),
            md,
        ))
    })();
    // Closing its standard input ends the swarm and its members.
    drop(swarm.stdin.take());
    let st = swarm.wait()?;
    let stopped = m.stop();
    let r = result?;
    stopped?;
    ensure!(st.success(), "loadgen swarm exited with {st}");
    Ok(r)
}

pub fn flatness(ctx: &Ctx) -> Result<(Value, String)> {
    let secs = ctx.plan.soak_secs;
    let run = MonitorRun {
        events: false,
        ringbuf_bytes: None,
        cpu: Some(TOOL_CPU),
    };
    let mut m = Monitor::start(&ctx.monitor_bin, &ctx.out, "soak", &run)?;
    let mut generator = Command::new(&ctx.loadgen)
        .args([
            "mixed",
            "--duration",
            &secs.to_string(),
            "--rate",
            "2000",
            "--keys",
            "50000",
            "--spawn-every-ms",
            "100",
            "--cpu",
            &LOAD_CPU.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting loadgen mixed")?;
    let every = Duration::from_secs_f64((secs / 60.0).clamp(0.5, 10.0));
    let start = Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    while generator.try_wait()?.is_none() {
        m.ensure_alive()?;
        samples.push((start.elapsed().as_secs_f64(), m.rss_kib()?.0));
        std::thread::sleep(every);
    }
    let mut out = String::new();
    std::io::Read::read_to_string(
        &mut generator.stdout.take().context("mixed stdout")?,
        &mut out,
    )?;
    ensure!(generator.wait()?.success(), "loadgen mixed failed");
    let (c, s) = m.settle()?;
    samples.push((start.elapsed().as_secs_f64(), m.rss_kib()?.0));
    let hwm = m.rss_kib()?.1;
    m.stop()?;
    let gen_report: Value = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
    ensure!(samples.len() >= 2, "too few RSS samples");
    // Least-squares slope, KiB per minute, over the second half (after warm-up).
    let tail: Vec<(f64, u64)> = samples[samples.len() / 2..].to_vec();
    let n = tail.len() as f64;
    let mx = tail.iter().map(|s| s.0).sum::<f64>() / n;
    let my = tail.iter().map(|s| s.1 as f64).sum::<f64>() / n;
    let sxx: f64 = tail.iter().map(|s| (s.0 - mx).powi(2)).sum();
    let sxy: f64 = tail.iter().map(|s| (s.0 - mx) * (s.1 as f64 - my)).sum();
    let slope_kib_min = if sxx > 0.0 { sxy / sxx * 60.0 } else { 0.0 };
    let first = samples[0].1;
    let min_after_warmup = tail.iter().map(|s| s.1).min().unwrap_or(0);
    let last = samples.last().map(|s| s.1).unwrap_or(0);
    let md = format!(
        "`loadgen mixed` for {secs:.0} s: {} operations ({} /s: 3 TCP connects to 1 UDP send, 50,000 rotating destinations), \
         {} short-lived processes; the daemon processed {} events, lost {}, tracks {} processes and {} beacon keys at the end.\n\n\
         RSS: {:.1} MiB at the start, {:.1} MiB at the end, peak {:.1} MiB; second half: min {:.1} MiB, slope {:+.0} KiB/min.\n\n\
         Samples (s: MiB): {}\n",
        gen_report["ops"],
        gen_report["rate"]
            .as_f64()
            .map(|r| format!("{r:.0}"))
            .unwrap_or_default(),
        gen_report["processes"],
        c.processed,
        c.lost,
        s.sum("monitor_process_table_entries"),
        s.sum("monitor_beacon_keys"),
        mib(first),
        mib(last),
        mib(hwm),
        mib(min_after_warmup),
        slope_kib_min,
        samples
            .iter()
            .map(|(t, r)| format!("{t:.0}: {:.1}", mib(*r)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok((
        json!({
            "secs": secs, "generator": gen_report, "samples": samples, "hwm_kib": hwm,
            "slope_kib_per_min_second_half": slope_kib_min, "processed": c.processed, "lost": c.lost,
        }),
        md,
    ))
}
