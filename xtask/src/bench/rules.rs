//! Rule evaluation (issue item 1): runs the criterion bench `monitor/benches/rules.rs` and
//! reads its estimates back as nanoseconds per event.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

use super::{Ctx, cargo, check};

struct Estimate {
    id: String,
    rules: Option<u64>,
    ns_per_event: f64,
    ci: (f64, f64),
}

fn collect(dir: &Path, out: &mut Vec<Estimate>) -> Result<()> {
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "new") {
                let bench: Value =
                    serde_json::from_str(&fs::read_to_string(p.join("benchmark.json"))?)?;
                let est: Value =
                    serde_json::from_str(&fs::read_to_string(p.join("estimates.json"))?)?;
                let elements = bench["throughput"]["Elements"].as_f64().unwrap_or(1.0);
                let mean = &est["mean"];
                out.push(Estimate {
                    id: bench["full_id"].as_str().unwrap_or("?").to_string(),
                    rules: None,
                    ns_per_event: mean["point_estimate"].as_f64().unwrap_or(f64::NAN) / elements,
                    ci: (
                        mean["confidence_interval"]["lower_bound"]
                            .as_f64()
                            .unwrap_or(f64::NAN)
                            / elements,
                        mean["confidence_interval"]["upper_bound"]
                            .as_f64()
                            .unwrap_or(f64::NAN)
                            / elements,
                    ),
                });
            } else {
                collect(&p, out)?;
            }
        }
    }
    Ok(())
}

pub fn rule_evaluation(ctx: &Ctx) -> Result<(Value, String)> {
    let home = ctx.out.join("criterion");
    let _ = fs::remove_dir_all(&home);
    let mut cmd = cargo();
    cmd.args([
        "bench", "-p", "monitor", "--bench", "rules", "--", "--noplot",
    ]);
    cmd.args(&ctx.plan.criterion_args);
    // The bench prints the rule counts of each set here, for the table.
    let counts_path = ctx.out.join("rule-counts.json");
    cmd.env("CRITERION_HOME", &home)
        .env("MONITOR_BENCH_RULE_COUNTS", &counts_path);
    check(&mut cmd)?;
    let counts: Value = fs::read_to_string(&counts_path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    let mut est = Vec::new();
    collect(&home, &mut est)
        .with_context(|| format!("reading criterion results in {}", home.display()))?;
    ensure!(
        !est.is_empty(),
        "criterion wrote no estimates under {}",
        home.display()
    );
    for e in &mut est {
        e.rules = counts[&e.id].as_u64();
    }
    est.sort_by(|a, b| a.rules.cmp(&b.rules).then(a.id.cmp(&b.id)));

    let mut md = String::from(
        "Criterion, one thread; per iteration the rule engine (rules + grouping) processes a batch of records from the \
         realistic mix (see the `monitor-workload` crate); figures are the mean per event with criterion's 95 % \
         confidence interval.\n\n| rule set | rules | ns per event | 95 % CI |\n| --- | ---: | ---: | ---: |\n",
    );
    for e in &est {
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.0}–{:.0} |\n",
            e.id,
            e.rules.map(|r| r.to_string()).unwrap_or_else(|| "?".into()),
            e.ns_per_event,
            e.ci.0,
            e.ci.1
        ));
    }
    // The target, for events that share their process's record as in the pipeline and for
    // events that each bring a new process (no per-process cache hit).
    for (suffix, what) in [
        ("default+sigmahq", "events of the mix's processes"),
        ("default+sigmahq-fresh", "a new process on every event"),
    ] {
        if let Some(f) = est.iter().find(|e| e.id.ends_with(suffix)) {
            md.push_str(&format!(
                "\nTarget: < 1 µs per event with the default plus SigmaHQ rules ({what}) → {:.0} ns → **{}**.\n",
                f.ns_per_event,
                if f.ns_per_event < 1000.0 {
                    "met"
                } else {
                    "missed"
                }
            ));
        }
    }
    // Growth with the number of rules: the synthetic sets.
    let scaling: Vec<&Estimate> = est
        .iter()
        .filter(|e| e.id.starts_with("scaling/"))
        .collect();
    if let (Some(first), Some(last)) = (scaling.first(), scaling.last())
        && let (Some(r0), Some(r1)) = (first.rules, last.rules)
        && r1 > r0
    {
        let rule_factor = r1 as f64 / r0 as f64;
        let time_factor = last.ns_per_event / first.ns_per_event;
        md.push_str(&format!(
            "Growth: {r0} → {r1} rules (×{rule_factor:.0}) costs ×{time_factor:.1} per event → **{}** (sub-linear means less than ×{rule_factor:.0}).\n",
            if time_factor < rule_factor { "sub-linear" } else { "NOT sub-linear" }
        ));
    }
    let rows: Vec<Value> = est
        .iter()
        .map(|e| json!({"id": e.id, "rules": e.rules, "ns_per_event": e.ns_per_event, "ci_low": e.ci.0, "ci_high": e.ci.1}))
        .collect();
    let (icount, icount_md) = instruction_counts(ctx)?;
    md.push('\n');
    md.push_str(&icount_md);
    Ok((json!({ "rows": rows, "instructions": icount }), md))
}

/// Events per pass of `rules_icount` (common::BATCH in monitor/benches).
const ICOUNT_BATCH: u64 = 10_000;

/// Builds `monitor/benches/rules_icount.rs` and returns its path.
fn icount_binary() -> Result<PathBuf> {
    let out = cargo()
        .args([
            "bench",
            "-p",
            "monitor",
            "--bench",
            "rules_icount",
            "--no-run",
            "--message-format=json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("building the rules_icount bench")?;
    ensure!(
        out.status.success(),
        "building the rules_icount bench failed ({})",
        out.status
    );
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact"
            && v["target"]["name"] == "rules_icount"
            && let Some(exe) = v["executable"].as_str()
        {
            return Ok(PathBuf::from(exe));
        }
    }
    anyhow::bail!("cargo did not report the rules_icount executable")
}

/// Instructions callgrind counts for `rules_icount SET PASSES`.
fn callgrind_instructions(exe: &Path, set: &str, passes: u32) -> Result<u64> {
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(exe)
        .args([set, &passes.to_string()])
        .stdin(Stdio::null())
        .output()
        .context("running valgrind (Debian package valgrind)")?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "valgrind rules_icount {set} {passes} failed ({}): {err}",
        out.status
    );
    err.lines()
        .find_map(|l| l.split_once("Collected :").map(|x| x.1.trim().to_string()))
        .and_then(|n| n.parse::<u64>().ok())
        .with_context(|| format!("no \"Collected :\" line in callgrind's output: {err}"))
}

/// Instructions per event under callgrind: (3 passes - 1 pass) / (2 batches), so set-up
/// cancels out. Repeatable where timings on a shared machine are not.
fn instruction_counts(ctx: &Ctx) -> Result<(Value, String)> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        if ctx.plan.smoke {
            return Ok((Value::Null, "Instruction counts: skipped, valgrind is not installed (the full run requires it: Debian package valgrind).\n".into()));
        }
        anyhow::bail!(
            "valgrind is missing (Debian package valgrind); the full run counts instructions with callgrind"
        );
    }
    let exe = icount_binary()?;
    let sets: Vec<&str> = if ctx.plan.smoke {
        vec!["rules/default+sigmahq"]
    } else {
        vec![
            "rules/default",
            "rules/default+sigmahq",
            "rules/default+sigmahq-fresh",
            "scaling/default+sigmahq+90",
            "scaling/default+sigmahq+990",
        ]
    };
    let mut md = String::from(
        "Instructions per event (valgrind callgrind, `monitor/benches/rules_icount.rs`: (3 passes − 1 pass) / 20,000 events, so rule compilation and event parsing cancel out):\n\n| rule set | instructions per event |\n| --- | ---: |\n",
    );
    let mut rows = Vec::new();
    for set in sets {
        eprintln!("bench: callgrind {set}");
        let one = callgrind_instructions(&exe, set, 1)?;
        let three = callgrind_instructions(&exe, set, 3)?;
        let per_event = three.saturating_sub(one) as f64 / (2 * ICOUNT_BATCH) as f64;
        md.push_str(&format!("| {set} | {per_event:.0} |\n"));
        rows.push(json!({ "set": set, "instructions_per_event": per_event }));
    }
    Ok((Value::Array(rows), md))
}
