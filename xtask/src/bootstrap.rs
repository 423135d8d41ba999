//! Installs what building and testing the monitor needs on a fresh Debian machine, once:
//! the nightly toolchain's `rust-src` (aya-build compiles the eBPF crate with
//! `-Z build-std=core`), `bpf-linker` built against the Rust toolchain's own libLLVM (no system
//! LLVM needed), and, for the test suite, the Debian packages the tests drive.
//!
//! Each step checks first and does nothing when the piece is already there, so the README's
//! commands can call it every time.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// Debian packages the test suite drives for real (see README "Tests").
pub const TEST_PACKAGES: &[(&str, &str)] = &[
    // (package, a file it installs, used to see whether it is present)
    ("curl", "/usr/bin/curl"),
    ("wget", "/usr/bin/wget"),
    ("python3", "/usr/bin/python3"),
    ("iproute2", "/usr/sbin/ip"),
    ("rsyslog", "/usr/sbin/rsyslogd"),
    // RELP and TLS outputs (monitor/tests/live/syslog_relp.rs): imrelp, the gtls stream driver,
    // and the openssl command that makes the test CA.
    (
        "rsyslog-relp",
        "/usr/lib/x86_64-linux-gnu/rsyslog/imrelp.so",
    ),
    (
        "rsyslog-gnutls",
        "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so",
    ),
    ("openssl", "/usr/bin/openssl"),
    ("socat", "/usr/bin/socat"),
    ("ncat", "/usr/bin/ncat"),
    ("netcat-openbsd", "/usr/bin/nc.openbsd"),
    ("dnsutils", "/usr/bin/dig"),
    ("bpftool", "/usr/sbin/bpftool"),
    ("bpftrace", "/usr/bin/bpftrace"),
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    ("busybox-static", "/bin/busybox"),
    ("libcap2-bin", "/usr/sbin/capsh"),
    // `cargo xtask debvm`: the guest's Debian root file system, made into an image without
    // mounting (`mkfs.ext4 -d`).
    ("debootstrap", "/usr/sbin/debootstrap"),
    ("e2fsprogs", "/usr/sbin/mkfs.ext4"),
    // Benchmarks: instruction counts (callgrind), repeatable on a busy machine.
    ("valgrind", "/usr/bin/valgrind"),
];

pub fn run(with_test_packages: bool) -> Result<()> {
    ensure_nightly_rust_src()?;
    ensure_bpf_linker()?;
    if with_test_packages {
        ensure_debian_packages(TEST_PACKAGES)?;
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn status(cmd: &mut Command) -> Result<()> {
    let st = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed ({st})");
    }
    Ok(())
}

/// aya-build runs `rustup run nightly cargo build -Z build-std=core` for the eBPF crate.
fn ensure_nightly_rust_src() -> Result<()> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"])).context(
        "rustup is needed to build the eBPF programs; install it from the rustup package or https://rustup.rs",
    )?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        eprintln!("bootstrap: installing the nightly toolchain (for the eBPF build)");
        status(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))
        .context(
            "installing nightly failed; run `rustup toolchain install nightly --profile minimal`",
        )?;
    }
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        "nightly",
    ]))?;
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("bootstrap: adding rust-src to nightly (for -Z build-std=core)");
        status(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))
        .context(
            "could not obtain rust-src; run `rustup component add rust-src --toolchain nightly`",
        )?;
    }
    Ok(())
}

fn home() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .context("HOME is not set")
}

fn cargo_bin_dir() -> Result<PathBuf> {
    Ok(match std::env::var_os("CARGO_HOME") {
        Some(h) => PathBuf::from(h).join("bin"),
        None => home()?.join(".cargo/bin"),
    })
}

fn bpf_linker_works(path: &Path) -> bool {
    Command::new(path)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Builds bpf-linker against the stable toolchain's libLLVM, as the build environment needs: a
/// directory whose lib/ holds `libLLVM.so` and the file's own name, both linked to the
/// sysroot's library, given to the build as LLVM_PREFIX. bpf-linker's RUNPATH points there, so
/// the directory lives under $HOME, not /tmp.
fn ensure_bpf_linker() -> Result<()> {
    let linker = cargo_bin_dir()?.join("bpf-linker");
    if bpf_linker_works(&linker) {
        return Ok(());
    }
    let sysroot = output(Command::new("rustc").args(["--print", "sysroot"]))?;
    let sysroot_lib = PathBuf::from(sysroot.trim()).join("lib");
    let verbose = output(Command::new("rustc").arg("-vV"))?;
    let llvm_version = verbose
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .context("`rustc -vV` does not report an LLVM version")?;
    let major = llvm_version
        .split('.')
        .next()
        .context("unexpected LLVM version")?;
    let lib_name = std::fs::read_dir(&sysroot_lib)
        .with_context(|| format!("reading {}", sysroot_lib.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(&format!("libLLVM.so.{major}")))
        .with_context(|| {
            format!(
                "no libLLVM.so.{major}* in {}; the stable toolchain should ship it (reinstall with `rustup toolchain install stable --force`)",
                sysroot_lib.display()
            )
        })?;
    let prefix = home()?
        .join(".local/share/monitor-toolchain")
        .join(format!("llvm-{lib_name}"));
    let lib_dir = prefix.join("lib");
    std::fs::create_dir_all(&lib_dir).with_context(|| format!("creating {}", lib_dir.display()))?;
    let target = sysroot_lib.join(&lib_name);
    for link in ["libLLVM.so".to_string(), lib_name.clone()] {
        let p = lib_dir.join(&link);
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(&target, &p)
            .with_context(|| format!("linking {} -> {}", p.display(), target.display()))?;
    }
    eprintln!("bootstrap: building bpf-linker against {lib_name} (about a minute, once)");
    status(
        Command::new("cargo")
            .args([
                "+stable",
                "install",
                "bpf-linker",
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ])
            .env("LLVM_PREFIX", &prefix),
    )
    .with_context(|| {
        format!(
            "building bpf-linker failed; run `LLVM_PREFIX={} cargo install bpf-linker --no-default-features --features llvm-{major}`",
            prefix.display()
        )
    })?;
    if !bpf_linker_works(&linker) {
        bail!("{} was installed but does not run", linker.display());
    }
    Ok(())
}

/// cargo-fuzz, for `cargo xtask fuzz` (and the fuzz stage of `cargo xtask test`). It runs
/// the targets on nightly, which `ensure_nightly_rust_src` installs.
pub fn ensure_cargo_fuzz() -> Result<()> {
    ensure_nightly_rust_src()?;
    let works = |bin: &Path| {
        Command::new(bin)
            .args(["fuzz", "--version"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    let cargo_fuzz = cargo_bin_dir()?.join("cargo-fuzz");
    if works(&cargo_fuzz) {
        return Ok(());
    }
    eprintln!("bootstrap: installing cargo-fuzz (a minute, once)");
    status(Command::new("cargo").args(["+stable", "install", "--locked", "cargo-fuzz"]))
        .context("installing cargo-fuzz failed; run `cargo install --locked cargo-fuzz`")?;
    if !works(&cargo_fuzz) {
        bail!("{} was installed but does not run", cargo_fuzz.display());
    }
    Ok(())
}

/// cargo-deb, the packager `cargo xtask deb` runs. Pinned: 3.8.0 builds with Rust 1.95
/// (its rust-version is 1.85) and has the systemd-units and maintainer-scripts support the
/// package uses; `--locked` builds it with the dependency versions it was released with.
pub const CARGO_DEB_VERSION: &str = "3.8.0";

pub fn ensure_cargo_deb() -> Result<PathBuf> {
    let bin = cargo_bin_dir()?.join("cargo-deb");
    let version = || {
        Command::new(&bin)
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    if version().is_some_and(|v| v.split_whitespace().any(|w| w == CARGO_DEB_VERSION)) {
        return Ok(bin);
    }
    eprintln!("bootstrap: installing cargo-deb {CARGO_DEB_VERSION} (a few minutes, once)");
    status(Command::new("cargo").args([
        "+stable",
        "install",
        "--locked",
        "--force",
        "cargo-deb",
        "--version",
        CARGO_DEB_VERSION,
    ]))
    .with_context(|| {
        format!(
            "installing cargo-deb failed; run `cargo install --locked cargo-deb --version {CARGO_DEB_VERSION}`"
        )
    })?;
    if version().is_none() {
        bail!("{} was installed but does not run", bin.display());
    }
    Ok(bin)
}

/// Installs the missing ones of `packages` with apt-get (the tests run as root, like CI).
pub fn ensure_debian_packages(packages: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, file)| !Path::new(file).exists())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let is_root = effective_uid() == 0;
    if !is_root {
        bail!(
            "missing Debian packages {}: run `sudo apt-get install -y {}`",
            missing.join(", "),
            missing.join(" ")
        );
    }
    eprintln!(
        "bootstrap: installing Debian packages {}",
        missing.join(" ")
    );
    status(Command::new("apt-get").args(["update", "-qq"])).context("`apt-get update` failed")?;
    status(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("run `apt-get install -y {}`", missing.join(" ")))?;
    Ok(())
}

fn effective_uid() -> u32 {
    // /proc/self/status avoids a libc dependency for one number.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(u32::MAX)
}

pub fn is_root() -> bool {
    effective_uid() == 0
}
