//! The VM kernel test: fentry and kprobe capture on a stock distribution kernel, and the
//! choice between backends there.
//!
//! The CI host's kernel refuses fentry and has no kprobes, so these
//! backends are exercised in a qemu guest running Debian's stock cloud kernel under TCG. The
//! guest also checks `--probe tracepoint` (cgroup programs for TCP and UDP)
//! and `--probe auto`, which must pick fentry there, never a fallback.
//! The guest's /init (xtask/vm/init.sh) runs `monitor run --probe <backend> --events` for
//! each backend, makes one TCP connect and a few UDP sends on loopback, stops the monitor
//! with SIGTERM and prints its log and JSON output between markers on the serial console.
//! The host then checks, per backend, that the start-up log names that backend for the
//! hooks and that both the TCP connect and the UDP send came out as connection events.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufWriter, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};

/// What `cargo xtask vm` runs.
pub struct VmOptions {
    /// The monitor binary to test (a release build of `monitor`).
    pub monitor_bin: PathBuf,
    /// Where the downloaded kernel is kept between runs, and where the initramfs and the
    /// console log of the last run are written.
    pub cache_dir: PathBuf,
    /// `--probe` values to test in the guest: "fentry", "kprobe", "tracepoint", "auto".
    pub probes: Vec<String>,
    /// Limit for the whole guest run, boot to power-off.
    pub timeout: Duration,
}

/// `--probe` values the guest can run; `expected_backend` says what each must attach.
pub const PROBES: [&str; 4] = ["fentry", "kprobe", "tracepoint", "auto"];
/// Hooks whose start-up log line must name the forced backend.
const REQUIRED_HOOKS: [&str; 2] = ["tcp_connect", "udp_sendmsg"];
/// Hooks that, when logged, must use the forced backend too.
const CONNECTION_HOOKS: [&str; 3] = ["tcp_connect", "udp_sendmsg", "udpv6_sendmsg"];
/// The guest's TCP listener port; unused by anything else in the guest.
const TCP_PORT: u16 = 40123;
/// busybox `nslookup` sends to the DNS port.
const UDP_PORT: u16 = 53;
const KERNEL_PACKAGE_PREFIX: &str = "linux-image-6.1.0-";
const KERNEL_PACKAGE_SUFFIX: &str = "-cloud-amd64-unsigned";
const BUSYBOX: &str = "/bin/busybox";
const INIT_SCRIPT: &str = include_str!("../vm/init.sh");

pub fn run(opts: &VmOptions) -> Result<()> {
    ensure!(!opts.probes.is_empty(), "no probe backends to test");
    for p in &opts.probes {
        ensure!(
            PROBES.contains(&p.as_str()),
            "unknown probe backend {p:?} for the VM test; expected one of {PROBES:?}"
        );
    }
    ensure!(
        opts.monitor_bin.is_file(),
        "monitor binary {} not found; build it first (cargo build --release -p monitor)",
        opts.monitor_bin.display()
    );
    fs::create_dir_all(&opts.cache_dir)
        .with_context(|| format!("creating cache dir {}", opts.cache_dir.display()))?;

    let started = Instant::now();
    let qemu = ensure_qemu()?;
    let busybox = ensure_static_busybox()?;
    let vmlinuz = ensure_kernel(&opts.cache_dir)?;
    let initrd = opts.cache_dir.join("vm-initrd.cpio");
    build_initramfs(&initrd, &busybox, &opts.monitor_bin, &opts.probes)?;
    eprintln!(
        "vm: kernel {}, initramfs {} ({} MiB), ready in {:.1} s",
        vmlinuz.display(),
        initrd.display(),
        fs::metadata(&initrd)?.len() >> 20,
        started.elapsed().as_secs_f64()
    );

    let boot_started = Instant::now();
    let console = boot(&qemu, &vmlinuz, &initrd, opts.timeout)?;
    let console_log = opts.cache_dir.join("vm-console.log");
    fs::write(&console_log, &console)
        .with_context(|| format!("writing {}", console_log.display()))?;
    eprintln!(
        "vm: guest ran {:.1} s; console saved to {}",
        boot_started.elapsed().as_secs_f64(),
        console_log.display()
    );

    let verdicts = check_console(&console, &opts.probes)?;
    let mut failed = Vec::new();
    for v in &verdicts {
        if v.problems.is_empty() {
            eprintln!("vm: {}: OK", v.probe);
            let start = format!("START {}", v.probe);
            let end = format!("END {}", v.probe);
            for line in section(&console, &start, &end).unwrap_or_default() {
                if line.starts_with("uptime ") {
                    eprintln!("vm:   guest {line}");
                }
            }
            for line in &v.hook_lines {
                eprintln!("vm:   log: {line}");
            }
            for rec in [&v.tcp_record, &v.udp_record].into_iter().flatten() {
                eprintln!("vm:   record: {rec}");
            }
        } else {
            eprintln!("vm: {}: FAILED; console section:", v.probe);
            let start = format!("START {}", v.probe);
            let end = format!("END {}", v.probe);
            for line in section(&console, &start, &end).unwrap_or_default() {
                eprintln!("vm| {line}");
            }
            for line in section(&console, "BEGIN dmesg", "END dmesg").unwrap_or_default() {
                eprintln!("vm| dmesg: {line}");
            }
            for p in &v.problems {
                failed.push(format!("{}: {p}", v.probe));
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "VM kernel test failed:\n  {}\n(full console: {})",
            failed.join("\n  "),
            console_log.display()
        );
    }
    eprintln!(
        "vm: all backends passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---- host tools -------------------------------------------------------------------------

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

fn ensure_qemu() -> Result<PathBuf> {
    const QEMU: &str = "qemu-system-x86_64";
    if let Some(p) = find_in_path(QEMU) {
        return Ok(p);
    }
    apt_install("qemu-system-x86", &format!("{QEMU} is not installed"))?;
    find_in_path(QEMU).with_context(|| {
        format!("{QEMU} still not in PATH after installing the Debian package qemu-system-x86")
    })
}

fn ensure_static_busybox() -> Result<PathBuf> {
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

// ---- kernel -----------------------------------------------------------------------------

/// The ABI number `N` of `linux-image-6.1.0-N-cloud-amd64-unsigned`.
fn kernel_abi(package: &str) -> Option<u32> {
    package
        .strip_prefix(KERNEL_PACKAGE_PREFIX)?
        .strip_suffix(KERNEL_PACKAGE_SUFFIX)?
        .parse()
        .ok()
}

/// Returns the newest cloud kernel already unpacked in the cache, or downloads and unpacks
/// the newest one the package lists offer. A cached kernel is reused without asking apt, so
/// later runs need no network.
fn ensure_kernel(cache_dir: &Path) -> Result<PathBuf> {
    let kernels = cache_dir.join("kernel");
    if let Some(vmlinuz) = newest_cached_kernel(&kernels)? {
        return Ok(vmlinuz);
    }
    let mut package = newest_kernel_package()?;
    if package.is_none() {
        apt_get(&["update", "-q"]).context("refreshing package lists to find the kernel")?;
        package = newest_kernel_package()?;
    }
    let package = package.with_context(|| {
        format!(
            "no {KERNEL_PACKAGE_PREFIX}N{KERNEL_PACKAGE_SUFFIX} package in the apt lists \
             (apt-cache search --names-only); is Debian 12's main archive configured?"
        )
    })?;

    let debs = cache_dir.join("debs");
    fs::create_dir_all(&debs)?;
    eprintln!("vm: downloading {package}");
    let st = Command::new("apt-get")
        .args(["download", "-q", &package])
        .current_dir(&debs)
        .status()
        .context("running apt-get download")?;
    ensure!(
        st.success(),
        "apt-get download {package} failed ({st}) in {}",
        debs.display()
    );
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
    // modules and the .deb would add about 120 MB to the cache.
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

fn newest_cached_kernel(kernels: &Path) -> Result<Option<PathBuf>> {
    let Ok(entries) = fs::read_dir(kernels) else {
        return Ok(None);
    };
    let mut best: Option<(u32, PathBuf)> = None;
    for e in entries {
        let e = e?;
        let name = e.file_name();
        let Some(abi) = name.to_str().and_then(kernel_abi) else {
            continue; // `*.partial` and anything else
        };
        if let Some(vmlinuz) = find_vmlinuz(&e.path())?
            && best.as_ref().is_none_or(|(b, _)| abi > *b)
        {
            best = Some((abi, vmlinuz));
        }
    }
    Ok(best.map(|(_, p)| p))
}

fn newest_kernel_package() -> Result<Option<String>> {
    let out = Command::new("apt-cache")
        .args([
            "search",
            "--names-only",
            r"^linux-image-6\.1\.0-.*-cloud-amd64-unsigned$",
        ])
        .output()
        .context("running apt-cache search")?;
    ensure!(
        out.status.success(),
        "apt-cache search failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|name| Some((kernel_abi(name)?, name.to_string())))
        .max()
        .map(|(_, name)| name))
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

// ---- initramfs --------------------------------------------------------------------------

/// Writes an uncompressed newc initramfs: the kernel unpacks it as is, and skipping gzip
/// saves the emulated CPU a few seconds of decompression at every boot.
fn build_initramfs(out: &Path, busybox: &Path, monitor: &Path, probes: &[String]) -> Result<()> {
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut cpio = Cpio::new(BufWriter::new(file));
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
        cpio.dir(dir)?;
    }
    // The kernel opens /dev/console for init before /init can mount devtmpfs.
    cpio.char_device("dev/console", 0o600, 5, 1)?;
    cpio.file("bin/busybox", 0o755, &read(busybox)?)?;
    cpio.symlink("bin/sh", "busybox")?;
    cpio.file("init", 0o755, INIT_SCRIPT.as_bytes())?;
    cpio.file(
        "etc/vmtest.env",
        0o644,
        format!("PROBES=\"{}\"\nTCP_PORT={TCP_PORT}\n", probes.join(" ")).as_bytes(),
    )?;
    cpio.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")?;
    cpio.file("etc/group", 0o644, b"root:x:0:\n")?;
    cpio.file("monitor", 0o755, &read(monitor)?)?;
    for lib in shared_libraries(monitor)? {
        let name = lib.to_str().context("non-UTF-8 library path")?;
        // Copied to the path the loader will look at, following symlinks on the host.
        cpio.file(name.trim_start_matches('/'), 0o755, &read(&lib)?)?;
    }
    cpio.finish()?.flush()?;
    Ok(())
}

fn read(p: &Path) -> Result<Vec<u8>> {
    fs::read(p).with_context(|| format!("reading {}", p.display()))
}

/// The shared libraries `ldd` resolves for `bin`, and its program interpreter; empty for a
/// static binary.
fn shared_libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    let Some(interp) = elf_interpreter(bin)? else {
        return Ok(Vec::new());
    };
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .context("running ldd (package libc-bin)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "ldd {} failed ({}): {}{}",
        bin.display(),
        out.status,
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut libs = parse_ldd(&text).with_context(|| format!("ldd {}", bin.display()))?;
    libs.insert(PathBuf::from(interp));
    Ok(libs.into_iter().collect())
}

fn parse_ldd(text: &str) -> Result<BTreeSet<PathBuf>> {
    let mut libs = BTreeSet::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let target = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                ensure!(
                    !rest.starts_with("not found"),
                    "shared library {} not found",
                    name.trim()
                );
                rest
            }
            None => line,
        };
        // "path (0xaddress)"; the vDSO has no path.
        let path = target.split(" (").next().unwrap_or("").trim();
        if path.starts_with('/') {
            libs.insert(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// The PT_INTERP path of a 64-bit little-endian ELF file, `None` when it has none (static).
fn elf_interpreter(p: &Path) -> Result<Option<String>> {
    let mut head = Vec::new();
    File::open(p)
        .with_context(|| format!("opening {}", p.display()))?
        .take(1 << 20)
        .read_to_end(&mut head)?;
    let u16_at = |o: usize| head.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        head.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let u64_at = |o: usize| {
        head.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    ensure!(
        head.starts_with(b"\x7fELF\x02\x01"),
        "{} is not a 64-bit little-endian ELF file",
        p.display()
    );
    let bad = || format!("{}: truncated ELF program headers", p.display());
    let phoff = u64_at(0x20).with_context(bad)? as usize;
    let phentsize = u16_at(0x36).with_context(bad)? as usize;
    let phnum = u16_at(0x38).with_context(bad)? as usize;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        const PT_INTERP: u32 = 3;
        if u32_at(ph).with_context(bad)? != PT_INTERP {
            continue;
        }
        let off = u64_at(ph + 8).with_context(bad)? as usize;
        let size = u64_at(ph + 32).with_context(bad)? as usize;
        let raw = head.get(off..off + size).with_context(bad)?;
        let s = raw.split(|&b| b == 0).next().unwrap_or_default();
        return Ok(Some(String::from_utf8_lossy(s).into_owned()));
    }
    Ok(None)
}

/// A writer for the "newc" cpio format the kernel unpacks as initramfs
/// (Documentation/driver-api/early-userspace/buffer-format.rst).
struct Cpio<W: std::io::Write> {
    out: W,
    next_ino: u32,
    dirs: BTreeSet<String>,
}

impl<W: std::io::Write> Cpio<W> {
    const S_IFDIR: u32 = 0o040000;
    const S_IFREG: u32 = 0o100000;
    const S_IFLNK: u32 = 0o120000;
    const S_IFCHR: u32 = 0o020000;

    fn new(out: W) -> Self {
        Cpio {
            out,
            next_ino: 1,
            dirs: BTreeSet::new(),
        }
    }

    fn dir(&mut self, path: &str) -> Result<()> {
        self.parents(path)?;
        if self.dirs.insert(path.to_string()) {
            self.entry(path, Self::S_IFDIR | 0o755, 0, 0, b"")?;
        }
        Ok(())
    }

    fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> Result<()> {
        self.parents(path)?;
        self.entry(path, Self::S_IFREG | perm, 0, 0, data)
    }

    fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        self.parents(path)?;
        self.entry(path, Self::S_IFLNK | 0o777, 0, 0, target.as_bytes())
    }

    fn char_device(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> Result<()> {
        self.parents(path)?;
        self.entry(path, Self::S_IFCHR | perm, major, minor, b"")
    }

    fn parents(&mut self, path: &str) -> Result<()> {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent)?;
        }
        Ok(())
    }

    fn entry(&mut self, name: &str, mode: u32, rmaj: u32, rmin: u32, data: &[u8]) -> Result<()> {
        let size = u32::try_from(data.len()).context("initramfs member over 4 GiB")?;
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if mode & Self::S_IFDIR == Self::S_IFDIR {
            2
        } else {
            1
        };
        // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
        // rdevmajor, rdevminor, namesize (with the NUL), check.
        let fields = [
            ino,
            mode,
            0,
            0,
            nlink,
            0,
            size,
            0,
            0,
            rmaj,
            rmin,
            name.len() as u32 + 1,
            0,
        ];
        let mut header = String::with_capacity(110);
        header.push_str("070701");
        for f in fields {
            header.push_str(&format!("{f:08x}"));
        }
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.pad(110 + name.len() + 1)?;
        self.out.write_all(data)?;
        self.pad(data.len())?;
        Ok(())
    }

    /// newc aligns each header and each file's data to 4 bytes.
    fn pad(&mut self, written: usize) -> Result<()> {
        let zeros = [0u8; 3];
        self.out.write_all(&zeros[..(4 - written % 4) % 4])?;
        Ok(())
    }

    fn finish(mut self) -> Result<W> {
        self.entry("TRAILER!!!", 0, 0, 0, b"")?;
        Ok(self.out)
    }
}

// ---- boot -------------------------------------------------------------------------------

fn boot(qemu: &Path, vmlinuz: &Path, initrd: &Path, timeout: Duration) -> Result<String> {
    let mut cmd = Command::new(qemu);
    // TCG, never KVM: KVM guests crash on the CI machines.
    cmd.args(["-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "1"])
        .args(["-nographic", "-no-reboot", "-kernel"])
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!("vm: {cmd:?}");
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", qemu.display()))?;
    let console = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        pump(child.stdout.take().expect("piped"), Arc::clone(&console)),
        pump(child.stderr.take().expect("piped"), Arc::clone(&stderr)),
    ];
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() >= deadline {
            // Ignore errors: qemu may exit between the check and the kill.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(100));
    };
    for r in readers {
        let _ = r.join();
    }
    let text = clean_console(&console.lock().expect("console lock"));
    let err = String::from_utf8_lossy(&stderr.lock().expect("stderr lock")).into_owned();
    match status {
        None => bail!(
            "the VM did not power off within {} s; qemu killed. Last console lines:\n{}",
            timeout.as_secs(),
            tail(&text, 40)
        ),
        Some(st) if !st.success() => bail!(
            "qemu failed ({st}): {}\nLast console lines:\n{}",
            err.trim(),
            tail(&text, 40)
        ),
        Some(_) => Ok(text),
    }
}

fn pump<R: std::io::Read + Send + 'static>(
    mut from: R,
    into: Arc<Mutex<Vec<u8>>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .expect("console lock")
                .extend_from_slice(&buf[..n]);
        }
    })
}

/// The console as text: the serial line's CRs and terminal escape sequences (qemu's and
/// any colours in the monitor's log) removed.
fn clean_console(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {}
            '\x1b' => {
                // CSI: ESC [ params final-byte(0x40..=0x7e); other escapes: ESC + one char.
                if chars.next_if_eq(&'[').is_some() {
                    for c in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---- verdict ----------------------------------------------------------------------------

/// The outcome for one backend.
#[derive(Debug)]
struct Verdict {
    probe: String,
    /// Start-up log lines naming a connection hook's backend.
    hook_lines: Vec<String>,
    tcp_record: Option<String>,
    udp_record: Option<String>,
    problems: Vec<String>,
}

/// Lines strictly between `=== <begin> ===` and the next `=== <end> ===`.
fn section<'a>(console: &'a str, begin: &str, end: &str) -> Option<Vec<&'a str>> {
    let mut lines = console.lines();
    let begin = format!("=== {begin} ===");
    let end = format!("=== {end} ===");
    lines.by_ref().find(|l| l.trim_end() == begin)?;
    Some(lines.take_while(|l| l.trim_end() != end).collect())
}

fn check_console(console: &str, probes: &[String]) -> Result<Vec<Verdict>> {
    ensure!(
        console.contains("=== VM READY"),
        "the guest never reached /init. Last console lines:\n{}",
        tail(console, 40)
    );
    ensure!(
        console.contains("=== VM DONE ==="),
        "the guest's /init did not finish. Last console lines:\n{}",
        tail(console, 40)
    );
    Ok(probes.iter().map(|p| check_probe(console, p)).collect())
}

fn check_probe(console: &str, probe: &str) -> Verdict {
    let mut v = Verdict {
        probe: probe.to_string(),
        hook_lines: Vec::new(),
        tcp_record: None,
        udp_record: None,
        problems: Vec::new(),
    };
    match console
        .lines()
        .find_map(|l| l.strip_prefix(&format!("=== STATUS {probe} ")))
    {
        Some(s) if s.trim_end_matches(" ===").trim() == "0" => {}
        Some(s) => v.problems.push(format!(
            "the monitor did not exit cleanly after SIGTERM (exit status {})",
            s.trim_end_matches(" ===").trim()
        )),
        None => v
            .problems
            .push("the guest printed no exit status for the monitor".into()),
    }

    let log = section(
        console,
        &format!("BEGIN {probe} log"),
        &format!("END {probe} log"),
    );
    match log {
        None => v
            .problems
            .push("no start-up log section on the console".into()),
        Some(log) => check_hooks(&mut v, &log),
    }
    let Some(output) = section(console, &format!("BEGIN {probe}"), &format!("END {probe}")) else {
        v.problems
            .push("no JSON output section on the console".into());
        return v;
    };
    let mut kinds = BTreeMap::<String, usize>::new();
    let mut unparsed = 0;
    for line in output.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(line) else {
            unparsed += 1;
            continue;
        };
        let kind = doc["event"]["kind"].as_str().unwrap_or("?").to_string();
        *kinds.entry(kind).or_default() += 1;
        let tcp_backend = expected_backend(probe, "tcp_connect");
        let udp_backend = expected_backend(probe, "udp_sendmsg");
        if v.tcp_record.is_none() && is_connection(&doc, "tcp", TCP_PORT, tcp_backend) {
            v.tcp_record = Some(line.to_string());
        }
        if v.udp_record.is_none() && is_connection(&doc, "udp", UDP_PORT, udp_backend) {
            v.udp_record = Some(line.to_string());
        }
    }
    let seen = format!("output had {kinds:?} records and {unparsed} non-JSON lines");
    for (record, program) in [(&v.tcp_record, "nc"), (&v.udp_record, "nslookup")] {
        if let Some(line) = record
            && !made_by(line, program)
        {
            v.problems.push(format!(
                "the event is not attributed to busybox {program} (process.args[0] or \
                 process.command_line): {line}"
            ));
        }
    }
    if v.tcp_record.is_none() {
        v.problems.push(format!(
            "no connection event (event.kind event, network.transport tcp, destination \
             127.0.0.1:{TCP_PORT}) from the busybox nc connect; {seen}"
        ));
    }
    if v.udp_record.is_none() {
        v.problems.push(format!(
            "no connection event (event.kind event, network.transport udp, destination \
             127.0.0.1:{UDP_PORT}) from busybox nslookup; {seen}"
        ));
    }
    v
}

/// The backend a connection hook must use under `--probe <probe>` on the guest's kernel, a
/// stock kernel where fentry and kprobes work.
fn expected_backend(probe: &str, hook: &str) -> &'static str {
    match (probe, hook) {
        ("kprobe", _) => "kprobe",
        // The fallback family: cgroup programs first for every hook (TCP's `connect4/6` run
        // once per connect; the raw tracepoint after them is covered by the host's tests).
        ("tracepoint", _) => "cgroup",
        // "fentry", and "auto": with fentry working nothing lower may be chosen.
        _ => "fentry",
    }
}

/// Start-up log: every connection hook that is logged must use its expected backend, and the
/// TCP and UDPv4 hooks must be logged.
fn check_hooks(v: &mut Verdict, log: &[&str]) {
    let mut backends = BTreeMap::<String, BTreeSet<String>>::new();
    for line in log {
        let fields = log_fields(line);
        let (Some(hook), Some(backend)) = (fields.get("hook"), fields.get("backend")) else {
            continue;
        };
        if CONNECTION_HOOKS.contains(&hook.as_str()) {
            v.hook_lines.push(line.to_string());
            backends
                .entry(hook.clone())
                .or_default()
                .insert(backend.clone());
        }
    }
    for hook in REQUIRED_HOOKS {
        if !backends.contains_key(hook) {
            v.problems.push(format!(
                "the start-up log has no `hook={hook} backend=...` line; log was:\n    {}",
                log.join("\n    ")
            ));
        }
    }
    for (hook, used) in &backends {
        let expected = expected_backend(&v.probe, hook);
        if used.iter().any(|b| b != expected) {
            v.problems.push(format!(
                "hook {hook} uses backend {used:?}, expected {expected} under --probe {}: {}",
                v.probe,
                v.hook_lines.join(" | ")
            ));
        }
    }
}

/// `key=value` fields of a tracing log line (values may be quoted).
fn log_fields(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|tok| {
            let (k, val) = tok.split_once('=')?;
            let val = val.trim_matches(|c| c == '"' || c == ',' || c == ';');
            Some((k.to_string(), val.to_string()))
        })
        .collect()
}

/// Whether a record's process is `program`: by argv[0], since busybox's shell runs applets
/// through /proc/self/exe, which makes the kernel's process name "exe".
fn made_by(line: &str, program: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(line) else {
        return false;
    };
    let process = &doc["process"];
    let argv0 = process["args"][0].as_str().or_else(|| {
        process["command_line"]
            .as_str()
            .and_then(|c| c.split_whitespace().next())
    });
    argv0.is_some_and(|a| a.rsplit('/').next() == Some(program))
}

fn is_connection(doc: &serde_json::Value, transport: &str, port: u16, backend: &str) -> bool {
    doc["event"]["kind"] == "event"
        && doc["network"]["transport"] == transport
        && doc["destination"]["port"] == port
        && doc["destination"]["ip"] == "127.0.0.1"
        // Records name the backend that saw them; when they do, it must be the forced one.
        && doc["monitor"]["probe"].as_str().is_none_or(|p| p == backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = r#"{"@timestamp":"2025-01-01T00:00:00Z","event":{"kind":"event","action":"connect"},"process":{"pid":180,"name":"exe","args":["nc","127.0.0.1","40123"]},"destination":{"ip":"127.0.0.1","port":40123},"network":{"transport":"tcp","type":"ipv4"},"monitor":{"probe":"fentry"}}"#;
    const UDP: &str = r#"{"@timestamp":"2025-01-01T00:00:00Z","event":{"kind":"event","action":"send"},"process":{"pid":183,"command_line":"/bin/nslookup example.test 127.0.0.1"},"destination":{"ip":"127.0.0.1","port":53},"network":{"transport":"udp","type":"ipv4"},"monitor":{"probe":"fentry"}}"#;

    fn console(log: &str, records: &[&str], status: u32) -> String {
        console_for("fentry", log, records, status)
    }

    fn console_for(probe: &str, log: &str, records: &[&str], status: u32) -> String {
        format!(
            "boot noise\n=== VM READY kernel=6.1.0 ===\n=== START {probe} ===\n\
             === STATUS {probe} {status} ===\n=== BEGIN {probe} log ===\n{log}\n\
             === END {probe} log ===\n=== BEGIN {probe} ===\n{}\n=== END {probe} ===\n\
             === VM DONE ===\n",
            records.join("\n")
        )
    }

    const GOOD_LOG: &str = "2025-01-01T00:00:00Z  INFO monitor::capture: attached hook=tcp_connect backend=fentry\n\
                            2025-01-01T00:00:00Z  INFO monitor::capture: attached hook=\"udp_sendmsg\" backend=\"fentry\"";

    fn verdict(c: &str) -> Verdict {
        let mut v = check_console(c, &["fentry".to_string()]).unwrap();
        v.remove(0)
    }

    #[test]
    fn passes_with_both_records_and_hook_lines() {
        let v = verdict(&console(GOOD_LOG, &[TCP, UDP], 0));
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!(v.hook_lines.len(), 2);
        assert_eq!(v.tcp_record.as_deref(), Some(TCP));
        assert_eq!(v.udp_record.as_deref(), Some(UDP));
    }

    #[test]
    fn fails_without_udp_record() {
        let v = verdict(&console(GOOD_LOG, &[TCP], 0));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains("udp"), "{:?}", v.problems);
    }

    #[test]
    fn fails_when_record_names_another_backend() {
        let kprobe_tcp = TCP.replace(r#""probe":"fentry""#, r#""probe":"kprobe""#);
        let v = verdict(&console(GOOD_LOG, &[&kprobe_tcp, UDP], 0));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains("tcp"), "{:?}", v.problems);
    }

    #[test]
    fn fails_on_wrong_port_or_alert_kind() {
        let other_port = TCP.replace("40123", "40124");
        let alert = TCP.replace(r#""kind":"event""#, r#""kind":"alert""#);
        let v = verdict(&console(GOOD_LOG, &[&other_port, &alert, UDP], 0));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains("tcp"));
    }

    #[test]
    fn fails_when_hook_uses_other_backend_or_is_missing() {
        let log = GOOD_LOG.replace("backend=\"fentry\"", "backend=tracepoint");
        let v = verdict(&console(&log, &[TCP, UDP], 0));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains("udp_sendmsg"), "{:?}", v.problems);

        let only_tcp = GOOD_LOG.lines().next().unwrap();
        let v = verdict(&console(only_tcp, &[TCP, UDP], 0));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(
            v.problems[0].contains("hook=udp_sendmsg"),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn tracepoint_means_cgroup_and_auto_means_fentry() {
        let check = |probe: &str, log: &str, records: &[&str]| {
            let mut v =
                check_console(&console_for(probe, log, records, 0), &[probe.to_string()]).unwrap();
            v.remove(0).problems
        };
        let tp_log = GOOD_LOG
            .replacen("backend=fentry", "backend=cgroup", 1)
            .replace("backend=\"fentry\"", "backend=\"cgroup\"");
        let tp_tcp = TCP.replace(r#""probe":"fentry""#, r#""probe":"cgroup""#);
        let tp_udp = UDP.replace(r#""probe":"fentry""#, r#""probe":"cgroup""#);
        let problems = check("tracepoint", &tp_log, &[&tp_tcp, &tp_udp]);
        assert!(problems.is_empty(), "{problems:?}");
        // A tracepoint for TCP where the cgroup programs work is a failure.
        let raw = tp_log.replacen("backend=cgroup", "backend=raw_tracepoint", 1);
        let problems = check("tracepoint", &raw, &[&tp_tcp, &tp_udp]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("expected cgroup"), "{problems:?}");

        let problems = check("auto", GOOD_LOG, &[TCP, UDP]);
        assert!(problems.is_empty(), "{problems:?}");
        // auto must not settle for a fallback when fentry works.
        let problems = check("auto", &tp_log, &[TCP, UDP]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems.iter().all(|p| p.contains("expected fentry")),
            "{problems:?}"
        );
    }

    #[test]
    fn fails_on_unclean_exit_and_unfinished_guest() {
        let v = verdict(&console(GOOD_LOG, &[TCP, UDP], 143));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains("143"));

        let c = console(GOOD_LOG, &[TCP, UDP], 0).replace("=== VM DONE ===", "");
        assert!(check_console(&c, &["fentry".to_string()]).is_err());
    }

    #[test]
    fn fails_when_event_is_attributed_to_another_process() {
        let curl_tcp = TCP.replace(r#"["nc","#, r#"["curl","#);
        let v = verdict(&console(GOOD_LOG, &[&curl_tcp, UDP], 0));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains("busybox nc"), "{:?}", v.problems);

        let anonymous_udp = UDP.replace(
            r#""command_line":"/bin/nslookup example.test 127.0.0.1""#,
            r#""name":"nslookup""#,
        );
        let v = verdict(&console(GOOD_LOG, &[TCP, &anonymous_udp], 0));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(
            v.problems[0].contains("busybox nslookup"),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn console_cleaning_drops_cr_and_escapes() {
        let raw = b"\x1b[2J\x1b[01;01Hline one\r\n\x1b[3mhook\x1b[0m\x1b[2m=\x1b[0mtcp_connect\r\n";
        assert_eq!(clean_console(raw), "line one\nhook=tcp_connect\n");
    }

    #[test]
    fn ldd_output_parsing() {
        let text = "\tlinux-vdso.so.1 (0x00007ffc)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f00)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f01)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f02)\n";
        let libs: Vec<_> = parse_ldd(text).unwrap().into_iter().collect();
        assert_eq!(
            libs,
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").is_err());
    }

    #[test]
    fn elf_interpreter_of_real_binaries() {
        // busybox-static has no interpreter; ldd's target (a dynamic program) has one.
        let busybox = elf_interpreter(Path::new(BUSYBOX))
            .expect("this test reads /bin/busybox: apt-get install busybox-static");
        assert_eq!(busybox, None);
        let sh = elf_interpreter(Path::new("/bin/bash")).unwrap();
        assert!(sh.is_some_and(|i| i.contains("ld-linux")));
    }

    #[test]
    fn cpio_archive_lists_with_busybox_cpio() {
        let dir = std::env::temp_dir().join(format!("xtask-vm-cpio-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.cpio");
        let mut c = Cpio::new(Vec::new());
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
