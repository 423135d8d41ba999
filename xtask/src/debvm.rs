//! `cargo xtask debvm`: the Debian package in a booted Debian 12, as an operator meets it.
//!
//! The host builds the package twice (the crate's version, and the same build with a
//! higher Debian version for the upgrade), makes or reuses the cached root file system
//! (`debvm/rootfs.rs`: debootstrap, systemd as init, Debian's cloud kernel, rsyslog, curl,
//! python3, bpftool), writes a payload disk (the two packages and the guest's scripts from
//! xtask/debvm/) and boots both under qemu with `vm/boot.rs`. In the guest a oneshot unit
//! runs xtask/debvm/check.sh: install (the service is enabled and active), the unit's
//! `systemd-analyze security` exposure (at most 3.0) and the daemon's capabilities after
//! attach, the 8088 beacon test (curl, and python3 as another user) giving T1571 and beacon
//! alerts in rsyslog's authpriv file and in the journal, `systemctl reload` with a broken
//! operator rule (rejected with file and line, old set kept) and then a good one (loaded
//! beside the built-in set), an upgrade that keeps an edited config and delivers an alert
//! queued while the collector was down (spool), Restart=on-failure, `systemctl stop`
//! leaving no program or link attached, remove and purge. Each check prints a line on the
//! serial console; the host requires every one of `CHECKS` to say ok.

mod rootfs;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};

use crate::vm::{boot, host};
use crate::{bootstrap, deb};

/// Seconds between check-ins: the beacon detector's `min_interval_secs` is 5, and the
/// atomic stage uses 6 as well.
pub const DEFAULT_INTERVAL_SECS: u64 = 6;
/// Check-ins per beacon, as in the seed's test.
const COUNT: u32 = 10;

/// Every check the guest must report ok (xtask/debvm/check.sh), in its order.
const CHECKS: &[&str] = &[
    "install",
    "enabled",
    "active",
    "package-files",
    "exposure",
    "capabilities",
    "beacon-syslog",
    "beacon-journal",
    "reload-rejected",
    "reload-still-active",
    "reload-operator-rules",
    "tcp-output",
    "upgrade",
    "config-kept",
    "rules-kept",
    "spool-delivered",
    "restart-on-failure",
    "stop-detaches",
    "remove",
    "purge",
];
/// The README's promise for `systemd-analyze security monitor.service`.
const MAX_EXPOSURE: f64 = 3.0;

pub struct DebvmOptions {
    pub interval: u64,
    /// qemu accelerator: `tcg` or `kvm`.
    pub accel: String,
    pub timeout: Duration,
}

pub fn options(interval: u64, accel: &str, timeout: u64) -> Result<DebvmOptions> {
    ensure!(
        matches!(accel, "tcg" | "kvm"),
        "--accel {accel:?}: expected tcg or kvm"
    );
    ensure!(
        (5..=60).contains(&interval),
        "--interval {interval}: the beacon detector needs 5 to 60 s between check-ins"
    );
    Ok(DebvmOptions {
        interval,
        accel: accel.to_string(),
        timeout: Duration::from_secs(timeout),
    })
}

pub fn run(root: &Path, opts: &DebvmOptions) -> Result<()> {
    let started = Instant::now();
    bootstrap::ensure_debian_packages(&[
        ("debootstrap", "/usr/sbin/debootstrap"),
        ("e2fsprogs", "/usr/sbin/mkfs.ext4"),
        ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    ])?;
    let qemu = host::ensure_qemu()?;
    if opts.accel == "kvm" {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .context("--accel kvm: /dev/kvm cannot be opened")?;
    }
    let cache = root.join("target/debvm");
    fs::create_dir_all(&cache)?;

    // Each package is copied aside at once: cargo-deb deletes the package's other versions
    // from target/debian/ when it builds one.
    let built = cache.join("packages");
    if built.exists() {
        fs::remove_dir_all(&built)?;
    }
    fs::create_dir_all(&built)?;
    let deb1 = built.join("monitor-1.deb");
    fs::copy(deb::build(root, None)?, &deb1)?;
    let version1 = deb_field(&deb1, "Version")?;
    // The same build with a higher Debian version: the upgrade.
    let version2 = format!("{version1}+debvm2");
    let deb2 = built.join("monitor-2.deb");
    fs::copy(deb::build(root, Some(&version2))?, &deb2)?;
    let t_build = started.elapsed().as_secs_f64();

    let rootfs = rootfs::ensure(&cache)?;
    let t_rootfs = started.elapsed().as_secs_f64() - t_build;
    let payload = write_payload(&cache, &[(&deb1, &version1), (&deb2, &version2)], opts)?;

    let t = Instant::now();
    eprintln!(
        "debvm: booting Debian 12 ({}), the checks take a few minutes",
        opts.accel
    );
    let console = boot::run(
        &qemu,
        &boot::Machine {
            vmlinuz: &rootfs.vmlinuz,
            initrd: &rootfs.initrd,
            append: "console=ttyS0 root=/dev/vda rw quiet loglevel=3 systemd.show_status=0 panic=-1",
            accel: &opts.accel,
            disks: &[(&rootfs.image, false), (&payload, true)],
            live_log: Some(&cache.join("console.live.log")),
        },
        opts.timeout,
    )?;
    let log = cache.join("console.log");
    fs::write(&log, &console).with_context(|| format!("writing {}", log.display()))?;
    let t_guest = t.elapsed().as_secs_f64();
    for line in console.lines().filter(|l| l.contains("DEBVM ")) {
        eprintln!("debvm| {}", line.trim_start());
    }
    let problems = verdict(&console);
    eprintln!(
        "debvm: packages {t_build:.0} s, root file system {t_rootfs:.0} s, guest {t_guest:.0} s, \
         total {:.0} s; console saved to {}",
        started.elapsed().as_secs_f64(),
        log.display()
    );
    if !problems.is_empty() {
        bail!("booted-Debian checks failed:\n  {}", problems.join("\n  "));
    }
    eprintln!("debvm: all {} checks passed", CHECKS.len());
    Ok(())
}

/// A field of a .deb's control file.
fn deb_field(deb: &Path, field: &str) -> Result<String> {
    let out = Command::new("dpkg-deb")
        .arg("-f")
        .arg(deb)
        .arg(field)
        .output()
        .context("running dpkg-deb")?;
    ensure!(
        out.status.success(),
        "dpkg-deb -f {} {field} failed",
        deb.display()
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The payload disk: the packages, the guest's scripts and their settings, as an ext4
/// image made without mounting.
fn write_payload(cache: &Path, debs: &[(&Path, &str); 2], opts: &DebvmOptions) -> Result<PathBuf> {
    let dir = cache.join("payload");
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    let mut env = format!("INTERVAL={}\nCOUNT={COUNT}\n", opts.interval);
    for (i, (deb, version)) in debs.iter().enumerate() {
        let name = format!("monitor-{}.deb", i + 1);
        fs::copy(deb, dir.join(&name)).with_context(|| format!("copying {}", deb.display()))?;
        env.push_str(&format!(
            "DEB{n}={name}\nVERSION{n}='{version}'\n",
            n = i + 1
        ));
    }
    fs::write(dir.join("env"), env)?;
    for (name, text) in [
        ("check.sh", include_str!("../debvm/check.sh")),
        ("alerts.py", include_str!("../debvm/alerts.py")),
        ("beacon.py", include_str!("../debvm/beacon.py")),
    ] {
        fs::write(dir.join(name), text)?;
    }
    // Readable by the guest's `nobody`, who runs the python3 beacon.
    let st = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&dir)
        .status()?;
    ensure!(st.success(), "chmod -R a+rX {} failed", dir.display());
    let image = cache.join("payload.ext4");
    let _ = fs::remove_file(&image);
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "debvm-payload", "-d"])
        .arg(&dir)
        .arg(&image)
        .arg("128M")
        .status()
        .context("running mkfs.ext4")?;
    ensure!(st.success(), "mkfs.ext4 -d {} failed ({st})", dir.display());
    Ok(image)
}

/// What is wrong with the guest's report: a check missing or failed, no end marker, an
/// exposure above the limit.
fn verdict(console: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let lines: Vec<&str> = console
        .lines()
        .filter_map(|l| l.split_once("DEBVM CHECK ").map(|(_, rest)| rest))
        .collect();
    for check in CHECKS {
        let found = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(check));
        match found {
            None => problems.push(format!("{check}: not reported")),
            Some(l) => {
                let mut words = l.split_whitespace();
                let (_, state) = (words.next(), words.next());
                if state != Some("ok") {
                    problems.push(format!("{check}: {l}"));
                }
            }
        }
    }
    for l in &lines {
        if l.split_whitespace().nth(1) == Some("FAIL") && !problems.iter().any(|p| p.ends_with(l)) {
            problems.push((*l).to_string());
        }
    }
    let exposure = lines
        .iter()
        .find_map(|l| l.strip_prefix("exposure ok "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    if let Some(e) = exposure
        && e > MAX_EXPOSURE
    {
        problems.push(format!("exposure {e} above {MAX_EXPOSURE}"));
    }
    if !console.contains("DEBVM DONE") {
        problems.push("the guest's checks did not finish (no DEBVM DONE)".to_string());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_must_be_reported_ok() {
        let all_ok: String = CHECKS
            .iter()
            .map(|c| {
                if *c == "exposure" {
                    "[  9.1] DEBVM CHECK exposure ok 2.8\n".to_string()
                } else {
                    format!("DEBVM CHECK {c} ok detail\n")
                }
            })
            .collect::<String>()
            + "DEBVM DONE failed=0\n";
        assert!(verdict(&all_ok).is_empty(), "{:?}", verdict(&all_ok));
        let failed = all_ok.replace("DEBVM CHECK purge ok detail", "DEBVM CHECK purge FAIL x");
        assert_eq!(verdict(&failed), vec!["purge: purge FAIL x".to_string()]);
        let missing = all_ok.replace("DEBVM CHECK remove ok detail\n", "");
        assert_eq!(verdict(&missing), vec!["remove: not reported".to_string()]);
        let high = all_ok.replace("exposure ok 2.8", "exposure ok 3.4");
        assert_eq!(verdict(&high).len(), 1);
        let unfinished = all_ok.replace("DEBVM DONE failed=0\n", "");
        assert_eq!(verdict(&unfinished).len(), 1);
    }
}
