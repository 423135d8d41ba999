//! Replay end to end (issue item 2): generated connection events as JSON lines through
//! `monitor replay` (parse, rules, grouping, beacon detector, JSON out), on one pinned core.
//! Events per second from the wall time, peak RSS and CPU time from wait4. With
//! `--baseline-monitor`, that build runs beside this one, round by round, on the same input
//! (and must raise the same alerts), so the two are compared within one run.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

use super::{Ctx, fmt_rate, median, procfs};
use monitor_workload::{WorkloadConfig, generate};

/// The core replay runs on.
const REPLAY_CPU: usize = 1;

pub fn replay(ctx: &Ctx) -> Result<(Value, String)> {
    let input = ctx
        .out
        .join(format!("replay-{}.jsonl", ctx.plan.replay_events));
    let cfg = WorkloadConfig {
        events: ctx.plan.replay_events,
        ..WorkloadConfig::default()
    };
    let t = Instant::now();
    let mut f = File::create(&input).with_context(|| format!("creating {}", input.display()))?;
    let stats = generate(&cfg, &mut f)?;
    drop(f);
    eprintln!(
        "bench: generated {} events ({} MB) in {:.1} s",
        stats.events,
        stats.bytes / 1_000_000,
        t.elapsed().as_secs_f64()
    );
    // Read once so every timed run starts with the file in the page cache.
    std::io::copy(&mut File::open(&input)?, &mut std::io::sink())?;

    // The builds measured: this one, and `--baseline-monitor` beside it when given.
    let mut subjects: Vec<(String, &std::path::Path)> =
        vec![("this build".to_string(), ctx.monitor_bin.as_path())];
    if let Some((bin, label)) = &ctx.baseline {
        subjects.push((label.clone(), bin.as_path()));
    }
    // Which alerts the mix raises (one untimed run with the output in a file); every build
    // measured must raise the same.
    let mut by_rule: BTreeMap<String, u64> = BTreeMap::new();
    for (i, (label, bin)) in subjects.iter().enumerate() {
        let alerts = alerts_by_rule(ctx, bin, &input)?;
        if i == 0 {
            by_rule = alerts;
        } else {
            ensure!(
                alerts == by_rule,
                "{label} raises other alerts than this build: {alerts:?} against {by_rule:?}"
            );
        }
    }

    let mut md = String::new();
    md.push_str(&format!(
        "Input: {} generated events ({:.0} MB of JSON lines, {:.0} s of event time, {} hits, {} beacon connections, \
         {} UDP, {} IPv6). `monitor replay` pinned to CPU {REPLAY_CPU}, output to /dev/null, input in the page cache; \
         {} run(s) each, median shown. \
         events/s (CPU): events over the process's user + system CPU time, which a busy machine does not inflate.\n\n",
        stats.events,
        stats.bytes as f64 / 1e6,
        stats.span_s,
        stats.hits,
        stats.beacon_events,
        stats.udp,
        stats.ipv6,
        ctx.plan.replay_rounds
    ));
    if subjects.len() > 1 {
        md.push_str("Builds measured in turn, round by round: ");
        md.push_str(
            &subjects
                .iter()
                .map(|(label, bin)| format!("{label} (`{}`)", bin.display()))
                .collect::<Vec<_>>()
                .join(", "),
        );
        md.push_str(".\n\n");
    }
    md.push_str("| build | mode | events/s (wall) | events/s (CPU) | wall | user CPU | sys CPU | peak RSS |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    let mut rows = Vec::new();
    for events in [false, true] {
        let mut rates = vec![Vec::new(); subjects.len()];
        let mut runs: Vec<Vec<_>> = subjects.iter().map(|_| Vec::new()).collect();
        for _ in 0..ctx.plan.replay_rounds {
            for (s, (_, bin)) in subjects.iter().enumerate() {
                let mut cmd = Command::new(bin);
                cmd.args(["replay", "--output", "stdout"]);
                if events {
                    cmd.arg("--events");
                }
                cmd.arg(&input)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit());
                procfs::pin_command(&mut cmd, REPLAY_CPU);
                let started = Instant::now();
                let mut child = cmd.spawn().context("starting monitor replay")?;
                let exit = procfs::wait_with_rusage(&mut child, started)?;
                ensure!(
                    exit.status.success(),
                    "monitor replay failed ({})",
                    exit.status
                );
                let rate = stats.events as f64 / exit.wall.as_secs_f64();
                rates[s].push(rate);
                runs[s].push(exit);
            }
        }
        for (s, (label, _)) in subjects.iter().enumerate() {
            let (rates, runs) = (&rates[s], &runs[s]);
            let rate = median(rates);
            // The run closest to the median, for the other columns.
            let mid = runs
                .iter()
                .zip(rates)
                .min_by(|a, b| (a.1 - rate).abs().total_cmp(&(b.1 - rate).abs()))
                .map(|(e, _)| e)
                .context("no replay runs")?;
            let mode = if events { "--events" } else { "alerts only" };
            let cpu_s = mid.user.as_secs_f64() + mid.system.as_secs_f64();
            md.push_str(&format!(
                "| {label} | {mode} | {} | {} | {:.2} s | {:.2} s | {:.2} s | {:.1} MiB |\n",
                fmt_rate(rate),
                fmt_rate(stats.events as f64 / cpu_s),
                mid.wall.as_secs_f64(),
                mid.user.as_secs_f64(),
                mid.system.as_secs_f64(),
                mid.max_rss_kib as f64 / 1024.0
            ));
            rows.push(json!({
                "build": label, "mode": mode, "rates": rates, "rate_median": rate,
                "rate_cpu": stats.events as f64 / cpu_s,
                "wall_s": mid.wall.as_secs_f64(), "user_s": mid.user.as_secs_f64(),
                "sys_s": mid.system.as_secs_f64(), "max_rss_kib": mid.max_rss_kib,
            }));
        }
    }
    md.push_str("\nAlerts the mix raises (rule name: count): ");
    md.push_str(
        &by_rule
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; "),
    );
    md.push('\n');
    // This build's alerts-only row is the first.
    let alerts_only = rows[0]["rate_median"].as_f64().unwrap_or(0.0);
    md.push_str(&format!(
        "\nTarget: ≥ 1,000,000 events/s on one core end to end → {}/s (alerts only) → **{}**.\n",
        fmt_rate(alerts_only),
        if alerts_only >= 1e6 { "met" } else { "missed" }
    ));
    // The big input is regenerated on every run; do not leave 700 MB behind.
    let _ = std::fs::remove_file(&input);
    Ok((
        json!({
            "events": stats.events, "bytes": stats.bytes, "span_s": stats.span_s,
            "hits": stats.hits, "beacon_events": stats.beacon_events,
            "alerts_by_rule": by_rule, "rows": rows,
        }),
        md,
    ))
}

/// Alerts `bin` raises on `input`, by rule name.
fn alerts_by_rule(
    ctx: &Ctx,
    bin: &std::path::Path,
    input: &std::path::Path,
) -> Result<BTreeMap<String, u64>> {
    let alerts_path = ctx.out.join("replay-alerts.jsonl");
    // `file:` outputs append: a file left by an earlier run would be counted again.
    let _ = std::fs::remove_file(&alerts_path);
    let st = Command::new(bin)
        .args(["replay", "--output"])
        .arg(format!("file:{}", alerts_path.display()))
        .arg(input)
        .stdin(Stdio::null())
        .status()
        .context("running monitor replay")?;
    ensure!(
        st.success(),
        "{} replay {} failed ({st})",
        bin.display(),
        input.display()
    );
    let mut by_rule: BTreeMap<String, u64> = BTreeMap::new();
    for line in BufReader::new(File::open(&alerts_path)?).lines() {
        let v: Value = serde_json::from_str(&line?)?;
        if v["event"]["kind"] == "alert" {
            let id = v["rule"]["name"].as_str().unwrap_or("?").to_string();
            *by_rule.entry(id).or_default() += 1;
        }
    }
    Ok(by_rule)
}
