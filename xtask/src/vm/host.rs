//! Host tools the VM test needs: qemu and a static busybox, installed from Debian's packages
//! when missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, ensure};

use super::elf::elf_interpreter;

pub const BUSYBOX: &str = "/bin/busybox";

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn apt_get(args: &[&str]) -> Result<()> {
    let st = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .with_context(|| format!("running apt-get {}", args.join(" ")))?;
    ensure!(st.success(), "apt-get {} failed ({st})", args.join(" "));
    Ok(())
}

/// Installs a Debian package, refreshing the package lists once if the first try fails.
fn apt_install(package: &str, why: &str) -> Result<()> {
    eprintln!("vm: {why}; installing {package}");
    let args = ["install", "-y", "-q", "--no-install-recommends", package];
    if apt_get(&args).is_ok() {
        return Ok(());
    }
    apt_get(&["update", "-q"])
        .and_then(|()| apt_get(&args))
        .with_context(|| {
            format!("{why}; install it as root: apt-get update && apt-get install -y {package}")
        })
}

pub fn ensure_qemu() -> Result<PathBuf> {
    const QEMU: &str = "qemu-system-x86_64";
    if let Some(p) = find_in_path(QEMU) {
        return Ok(p);
    }
    apt_install("qemu-system-x86", &format!("{QEMU} is not installed"))?;
    find_in_path(QEMU).with_context(|| {
        format!("{QEMU} still not in PATH after installing the Debian package qemu-system-x86")
    })
}

pub fn ensure_static_busybox() -> Result<PathBuf> {
    let path = Path::new(BUSYBOX);
    let usable = |p: &Path| p.is_file() && matches!(elf_interpreter(p), Ok(None));
    if !usable(path) {
        apt_install(
            "busybox-static",
            &format!("{BUSYBOX} is missing or not statically linked"),
        )?;
        ensure!(
            usable(path),
            "{BUSYBOX} is still missing or dynamically linked after installing busybox-static"
        );
    }
    Ok(path.to_path_buf())
}
