//! `cargo xtask lint`, and the lint stage of `cargo xtask test`: `cargo fmt --check` on the
//! workspace, then `cargo clippy -D warnings` per crate. Per crate, as aya-template does:
//! feature unification across a workspace-wide run would lint `monitor-common` only with the
//! `user` feature and cannot build `monitor-ebpf` for the host at all.

use std::process::Command;

use anyhow::{Context as _, Result};

use crate::{cargo, check};

/// Every check, in order; all run, and the first failure is reported after the rest.
pub fn run() -> Result<()> {
    let mut failures = Vec::new();
    let mut step = |name: &str, args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = cargo();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Err(e) = check(&mut cmd) {
            failures.push(format!("{name}: {e:#}"));
        }
    };
    step("format", &["fmt", "--all", "--check"], &[]);
    let deny = ["--", "-D", "warnings"];
    let clippy = |crate_args: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["clippy"];
        v.extend_from_slice(crate_args);
        v.extend_from_slice(&deny);
        v
    };
    // Release, so the build script's eBPF object and the dependencies are the ones the
    // test stage builds anyway.
    step(
        "clippy monitor",
        &clippy(&["--release", "-p", "monitor", "--all-targets"]),
        &[],
    );
    step(
        "clippy monitor-common",
        &clippy(&["-p", "monitor-common", "--all-targets"]),
        &[],
    );
    step(
        "clippy monitor-common (user)",
        &clippy(&[
            "-p",
            "monitor-common",
            "--features",
            "user",
            "--all-targets",
        ]),
        &[],
    );
    step(
        "clippy monitor-workload",
        &clippy(&["-p", "monitor-workload", "--all-targets"]),
        &[],
    );
    step(
        "clippy xtask",
        &clippy(&["-p", "xtask", "--all-targets"]),
        &[],
    );
    // The kernel programs, for their own target, on nightly as aya-build builds them; a
    // separate target directory keeps the build-std artefacts apart from the host's.
    let mut ebpf = Command::new("rustup");
    ebpf.args([
        "run",
        "nightly",
        "cargo",
        "clippy",
        "-p",
        "monitor-ebpf",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--",
        "-D",
        "warnings",
    ])
    .env("CARGO_TARGET_DIR", "target/lint-ebpf");
    if let Err(e) = ensure_nightly_clippy().and_then(|()| check(&mut ebpf)) {
        failures.push(format!("clippy monitor-ebpf: {e:#}"));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", failures.join("\n"))
    }
}

/// `rustup toolchain install nightly --profile minimal` (the bootstrap's fallback) has no
/// clippy; add it once.
fn ensure_nightly_clippy() -> Result<()> {
    let out = Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output()
        .context("running rustup")?;
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with("clippy"))
    {
        return Ok(());
    }
    eprintln!("lint: adding clippy to nightly (for the eBPF crate)");
    check(Command::new("rustup").args(["component", "add", "clippy", "--toolchain", "nightly"]))
}
