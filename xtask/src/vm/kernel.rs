//! Debian's cloud kernels for the guest, one per Debian release line, downloaded through a
//! private apt configuration (its own sources list, package lists and cache under the VM
//! cache directory; the host's apt sources are never touched) and unpacked once: later runs
//! use the cached `vmlinuz` without asking apt.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, ensure};

/// A Debian release line's cloud kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLine {
    /// What `--kernel` takes and the report shows: `debian11`, ...
    pub name: &'static str,
    /// The archive suite that serves it.
    pub suite: &'static str,
    /// Package names are `linux-image-<version><abi...>-cloud-amd64-unsigned`.
    pub version: &'static str,
}

/// Debian 11 (5.10), 12 (6.1) and 13 (6.12), oldest first.
pub const KERNELS: [KernelLine; 3] = [
    KernelLine {
        name: "debian11",
        suite: "bullseye",
        version: "5.10.",
    },
    KernelLine {
        name: "debian12",
        suite: "bookworm",
        version: "6.1.",
    },
    KernelLine {
        name: "debian13",
        suite: "trixie",
        version: "6.12.",
    },
];

const PACKAGE_PREFIX: &str = "linux-image-";
const PACKAGE_SUFFIX: &str = "-cloud-amd64-unsigned";
const ARCHIVE: &str = "http://deb.debian.org/debian";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

pub fn line(name: &str) -> Option<KernelLine> {
    KERNELS.iter().copied().find(|k| k.name == name)
}

impl KernelLine {
    /// The build number that orders this line's packages: `N` of `5.10.0-N-cloud...` and
    /// `6.1.0-N-cloud...`, `N` of `6.12.N+deb13-cloud...`. `None` for another line's package.
    fn abi(&self, package: &str) -> Option<u32> {
        let rest = package
            .strip_prefix(PACKAGE_PREFIX)?
            .strip_suffix(PACKAGE_SUFFIX)?
            .strip_prefix(self.version)?;
        // 5.10 and 6.1: "0-N"; 6.12: "N+deb13".
        let rest = rest.strip_prefix("0-").unwrap_or(rest);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let after = &rest[digits.len()..];
        // "6.1." must not take "6.12.x" packages: after the number comes the suffix or a
        // "+debNN" tag, nothing else.
        if !(after.is_empty() || after.starts_with('+')) {
            return None;
        }
        digits.parse().ok()
    }
}

/// The private apt configuration: its files live in `<cache>/apt/`.
struct PrivateApt {
    dir: PathBuf,
}

impl PrivateApt {
    fn new(cache_dir: &Path) -> Result<PrivateApt> {
        let dir = cache_dir.join("apt");
        for sub in ["lists/partial", "cache/archives/partial", "parts"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let sources: String = KERNELS
            .iter()
            .map(|k| format!("deb [signed-by={KEYRING}] {ARCHIVE} {} main\n", k.suite))
            .collect();
        fs::write(dir.join("sources.list"), sources)?;
        Ok(PrivateApt { dir })
    }

    fn options(&self) -> Vec<String> {
        let d = self.dir.display();
        vec![
            format!("-oDir::Etc::SourceList={d}/sources.list"),
            format!("-oDir::Etc::SourceParts={d}/parts"),
            format!("-oDir::State::Lists={d}/lists"),
            format!("-oDir::Cache={d}/cache"),
            "-oAPT::Architecture=amd64".to_string(),
            // Only the package lists: no translations or AppStream metadata.
            "-oAcquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".to_string(),
            "-oAcquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".to_string(),
            "-oAcquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".to_string(),
            "-oAcquire::Languages=none".to_string(),
        ]
    }

    fn run(&self, tool: &str, args: &[&str], cwd: Option<&Path>) -> Result<String> {
        let mut cmd = Command::new(tool);
        cmd.args(self.options()).args(args);
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        let out = cmd
            .output()
            .with_context(|| format!("running {tool} {}", args.join(" ")))?;
        ensure!(
            out.status.success(),
            "{tool} {} (private apt configuration in {}) failed ({}): {}",
            args.join(" "),
            self.dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The newest package of `line` in the private lists, refreshing them once when none.
    fn newest(&self, line: &KernelLine) -> Result<Option<String>> {
        let search = |apt: &PrivateApt| -> Result<Option<String>> {
            let pattern = format!(
                "^{PACKAGE_PREFIX}{}.*{PACKAGE_SUFFIX}$",
                line.version.replace('.', r"\.")
            );
            let text = apt.run("apt-cache", &["search", "--names-only", &pattern], None)?;
            Ok(text
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter_map(|name| Some((line.abi(name)?, name.to_string())))
                .max()
                .map(|(_, name)| name))
        };
        if let Some(p) = search(self)? {
            return Ok(Some(p));
        }
        eprintln!(
            "vm: refreshing the private package lists ({})",
            KERNELS.map(|k| k.suite).join(", ")
        );
        self.run("apt-get", &["update", "-q"], None)?;
        search(self)
    }
}

/// The line's `vmlinuz`: the newest one already unpacked in the cache, else the newest
/// package the private lists offer, downloaded and unpacked.
pub fn ensure(cache_dir: &Path, line: &KernelLine) -> Result<PathBuf> {
    let kernels = cache_dir.join("kernel");
    if let Some(vmlinuz) = newest_cached(&kernels, line)? {
        return Ok(vmlinuz);
    }
    let apt = PrivateApt::new(cache_dir)?;
    match download(cache_dir, &apt, line) {
        Ok(p) => Ok(p),
        Err(e) => {
            // Lists from an earlier run may name a package the archive has since replaced
            // (a point release drops the old ABI): refresh them once and try again.
            eprintln!("vm: {}: {e:#}; refreshing the package lists", line.name);
            apt.run("apt-get", &["update", "-q"], None)?;
            download(cache_dir, &apt, line)
        }
    }
}

/// Downloads and unpacks the newest package of `line` the private lists name.
fn download(cache_dir: &Path, apt: &PrivateApt, line: &KernelLine) -> Result<PathBuf> {
    let kernels = cache_dir.join("kernel");
    let package = apt.newest(line)?.with_context(|| {
        format!(
            "no {PACKAGE_PREFIX}{}*{PACKAGE_SUFFIX} package in Debian's {} suite (private apt \
             configuration in {}); is {ARCHIVE} reachable?",
            line.version,
            line.suite,
            apt.dir.display()
        )
    })?;
    let debs = cache_dir.join("debs");
    if debs.exists() {
        fs::remove_dir_all(&debs)?;
    }
    fs::create_dir_all(&debs)?;
    eprintln!("vm: {}: downloading {package}", line.name);
    apt.run("apt-get", &["download", "-q", &package], Some(&debs))?;
    let deb = fs::read_dir(&debs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
        })
        .with_context(|| {
            format!(
                "apt-get download left no {package}_*.deb in {}",
                debs.display()
            )
        })?;

    // Unpack beside the final place and rename, so an interrupted run never leaves a
    // half-unpacked kernel that a later run would trust. Only boot/ (vmlinuz, config,
    // System.map) is kept: everything the guest needs is built into this kernel, and the
    // modules and the .deb would add about 120 MB per kernel to the cache.
    let dest = kernels.join(&package);
    let partial = kernels.join(format!("{package}.partial"));
    if partial.exists() {
        fs::remove_dir_all(&partial)?;
    }
    fs::create_dir_all(&partial)?;
    let st = Command::new("dpkg")
        .arg("-x")
        .arg(&deb)
        .arg(&partial)
        .status()
        .context("running dpkg -x")?;
    ensure!(st.success(), "dpkg -x {} failed ({st})", deb.display());
    find_vmlinuz(&partial)?
        .with_context(|| format!("{} holds no boot/vmlinuz-*", deb.display()))?;
    if dest.exists() {
        fs::remove_dir_all(&dest)?;
    }
    fs::create_dir_all(&dest)?;
    fs::rename(partial.join("boot"), dest.join("boot"))?;
    fs::remove_dir_all(&partial)?;
    fs::remove_dir_all(&debs)?;
    find_vmlinuz(&dest)?.context("vmlinuz vanished after unpacking")
}

fn newest_cached(kernels: &Path, line: &KernelLine) -> Result<Option<PathBuf>> {
    let Ok(entries) = fs::read_dir(kernels) else {
        return Ok(None);
    };
    let mut best: Option<(u32, PathBuf)> = None;
    for e in entries {
        let e = e?;
        let name = e.file_name();
        let Some(abi) = name.to_str().and_then(|n| line.abi(n)) else {
            continue; // `*.partial`, other lines
        };
        if let Some(vmlinuz) = find_vmlinuz(&e.path())?
            && best.as_ref().is_none_or(|(b, _)| abi > *b)
        {
            best = Some((abi, vmlinuz));
        }
    }
    Ok(best.map(|(_, p)| p))
}

fn find_vmlinuz(root: &Path) -> Result<Option<PathBuf>> {
    let Ok(entries) = fs::read_dir(root.join("boot")) else {
        return Ok(None);
    };
    for e in entries {
        let p = e?.path();
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("vmlinuz-"))
        {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_belong_to_their_line() {
        let [d11, d12, d13] = KERNELS;
        assert_eq!(
            d11.abi("linux-image-5.10.0-32-cloud-amd64-unsigned"),
            Some(32)
        );
        assert_eq!(
            d12.abi("linux-image-6.1.0-41-cloud-amd64-unsigned"),
            Some(41)
        );
        assert_eq!(
            d13.abi("linux-image-6.12.117+deb13-cloud-amd64-unsigned"),
            Some(117)
        );
        // 6.1's pattern must not take 6.12 packages, nor signed or non-cloud ones.
        assert_eq!(
            d12.abi("linux-image-6.12.117+deb13-cloud-amd64-unsigned"),
            None
        );
        assert_eq!(d12.abi("linux-image-6.1.0-41-amd64-unsigned"), None);
        assert_eq!(d11.abi("linux-image-6.1.0-41-cloud-amd64-unsigned"), None);
        assert_eq!(line("debian13"), Some(d13));
        assert_eq!(line("debian14"), None);
    }
}
