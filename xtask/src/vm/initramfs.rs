//! The guest's initramfs: busybox, the monitor and its shared libraries, the fork, DNS and
//! lifecycle probes and /init, as an uncompressed newc cpio archive (the `cpio` crate writes the entries).

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context as _, Result};
use cpio::newc::{Builder, ModeFileType, trailer};

use super::elf::shared_libraries;

const INIT_SCRIPT: &str = include_str!("../../vm/init.sh");

/// What goes into the guest besides busybox and /init.
pub struct Contents<'a> {
    pub busybox: &'a Path,
    pub monitor: &'a Path,
    /// Forks a child that connects without exec'ing (`src/bin/vm-fork-probe.rs`).
    pub fork_probe: &'a Path,
    /// A DNS server and client (`src/bin/vm-dns-probe.rs`).
    pub dns_probe: &'a Path,
    /// Listens, connects, accepts and binds for the lifecycle records
    /// (`src/bin/vm-life-probe.rs`).
    pub life_probe: &'a Path,
    /// `/etc/vmtest.env`: shell variables for /init.
    pub env: String,
}

/// Where the guest finds the fork probe; the VM check expects this path as the forked
/// child's `process.executable`.
pub const FORK_PROBE_PATH: &str = "/bin/vm-fork-probe";
/// Where the guest finds the DNS probe (its client's `process.executable`).
pub const DNS_PROBE_PATH: &str = "/bin/vm-dns-probe";
/// Where the guest finds the lifecycle probe (its records' `process.executable`).
pub const LIFE_PROBE_PATH: &str = "/bin/vm-life-probe";

/// Writes the archive uncompressed: the kernel unpacks it as is, and skipping gzip saves the
/// emulated CPU a few seconds of decompression at every boot.
pub fn build(out: &Path, c: &Contents) -> Result<()> {
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut a = Archive::new(BufWriter::new(file));
    for dir in [
        "bin",
        "dev",
        "etc",
        "proc",
        "sys",
        "tmp",
        "root",
        "empty-rules",
    ] {
        a.dir(dir)?;
    }
    // The kernel opens /dev/console for init before /init can mount devtmpfs.
    a.char_device("dev/console", 0o600, 5, 1)?;
    a.file("bin/busybox", 0o755, &read(c.busybox)?)?;
    a.symlink("bin/sh", "busybox")?;
    a.file("init", 0o755, INIT_SCRIPT.as_bytes())?;
    a.file("etc/vmtest.env", 0o644, c.env.as_bytes())?;
    a.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")?;
    a.file("etc/group", 0o644, b"root:x:0:\n")?;
    a.file("monitor", 0o755, &read(c.monitor)?)?;
    a.file(
        FORK_PROBE_PATH.trim_start_matches('/'),
        0o755,
        &read(c.fork_probe)?,
    )?;
    a.file(
        DNS_PROBE_PATH.trim_start_matches('/'),
        0o755,
        &read(c.dns_probe)?,
    )?;
    a.file(
        LIFE_PROBE_PATH.trim_start_matches('/'),
        0o755,
        &read(c.life_probe)?,
    )?;
    let mut libs = BTreeSet::new();
    for bin in [c.monitor, c.fork_probe, c.dns_probe, c.life_probe] {
        libs.extend(shared_libraries(bin)?);
    }
    for lib in libs {
        let name = lib.to_str().context("non-UTF-8 library path")?;
        // Copied to the path the loader will look at, following symlinks on the host.
        a.file(name.trim_start_matches('/'), 0o755, &read(&lib)?)?;
    }
    a.finish()?.flush()?;
    Ok(())
}

fn read(p: &Path) -> Result<Vec<u8>> {
    fs::read(p).with_context(|| format!("reading {}", p.display()))
}

/// Entries in order, each parent directory before its children, inode numbers unique.
struct Archive<W: Write> {
    out: W,
    next_ino: u32,
    dirs: BTreeSet<String>,
}

impl<W: Write> Archive<W> {
    fn new(out: W) -> Self {
        Archive {
            out,
            next_ino: 1,
            dirs: BTreeSet::new(),
        }
    }

    fn dir(&mut self, path: &str) -> Result<()> {
        self.parents(path)?;
        if self.dirs.insert(path.to_string()) {
            let b = Builder::new(path)
                .mode(0o755)
                .set_mode_file_type(ModeFileType::Directory)
                .nlink(2);
            self.entry(b, b"")?;
        }
        Ok(())
    }

    fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> Result<()> {
        self.parents(path)?;
        let b = Builder::new(path)
            .mode(perm)
            .set_mode_file_type(ModeFileType::Regular);
        self.entry(b, data)
    }

    fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        self.parents(path)?;
        let b = Builder::new(path)
            .mode(0o777)
            .set_mode_file_type(ModeFileType::Symlink);
        self.entry(b, target.as_bytes())
    }

    fn char_device(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> Result<()> {
        self.parents(path)?;
        let b = Builder::new(path)
            .mode(perm)
            .set_mode_file_type(ModeFileType::Char)
            .rdev_major(major)
            .rdev_minor(minor);
        self.entry(b, b"")
    }

    fn parents(&mut self, path: &str) -> Result<()> {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent)?;
        }
        Ok(())
    }

    fn entry(&mut self, b: Builder, data: &[u8]) -> Result<()> {
        let size = u32::try_from(data.len()).context("initramfs member over 4 GiB")?;
        let ino = self.next_ino;
        self.next_ino += 1;
        // (`Builder::mode` replaces the whole mode, file type included: callers set the
        // permissions first, then the type.)
        let mut w = b.ino(ino).write(&mut self.out, size);
        w.write_all(data)?;
        w.finish()?;
        Ok(())
    }

    fn finish(self) -> Result<W> {
        Ok(trailer(self.out)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::host::BUSYBOX;
    use std::process::Command;

    #[test]
    fn cpio_archive_lists_with_busybox_cpio() {
        let dir = std::env::temp_dir().join(format!("xtask-vm-cpio-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.cpio");
        let mut c = Archive::new(Vec::new());
        c.file("a/b/c.txt", 0o644, b"hello").unwrap();
        c.symlink("a/link", "b/c.txt").unwrap();
        c.char_device("dev/console", 0o600, 5, 1).unwrap();
        fs::write(&path, c.finish().unwrap()).unwrap();

        let listing = Command::new(BUSYBOX)
            .args(["cpio", "-tv", "-F"])
            .arg(&path)
            .output()
            .expect(
                "this test lists the archive with /bin/busybox: apt-get install busybox-static",
            );
        let text = String::from_utf8_lossy(&listing.stdout);
        fs::remove_dir_all(&dir).unwrap();
        assert!(listing.status.success(), "{listing:?}");
        for want in [
            "drwxr-xr-x",
            " a\n",
            " a/b\n",
            "-rw-r--r--",
            "a/b/c.txt",
            "a/link -> b/c.txt",
            "crw-------",
            "dev/console",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
