//! Boots the guest under qemu (TCG) and returns its serial console as text.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

pub fn boot(qemu: &Path, vmlinuz: &Path, initrd: &Path, timeout: Duration) -> Result<String> {
    run(
        qemu,
        &Machine {
            vmlinuz,
            initrd,
            append: "console=ttyS0 quiet panic=-1",
            // TCG, never KVM: KVM guests crash on the CI machines.
            accel: "tcg",
            disks: &[],
            live_log: None,
        },
        timeout,
    )
}

/// A guest to boot: kernel, initramfs, command line, accelerator and raw disk images
/// (`(path, read_only)`, attached as virtio disks vda, vdb, ... in order).
pub struct Machine<'a> {
    pub vmlinuz: &'a Path,
    pub initrd: &'a Path,
    pub append: &'a str,
    /// `tcg` or `kvm`.
    pub accel: &'a str,
    pub disks: &'a [(&'a Path, bool)],
    /// The console is also written here as it comes, to follow a long run.
    pub live_log: Option<&'a Path>,
}

/// Boots `m` with one CPU and 1 GiB, no network device, the serial line as the console,
/// and returns the console once the guest powers off (an error after `timeout`).
/// Writes to a disk opened read-write go to a temporary snapshot (`snapshot=on`), so the
/// images stay as they were and can be cached.
pub fn run(qemu: &Path, m: &Machine, timeout: Duration) -> Result<String> {
    let mut cmd = Command::new(qemu);
    let cpu = if m.accel == "kvm" { "host" } else { "max" };
    cmd.args(["-accel", m.accel, "-cpu", cpu, "-m", "1024", "-smp", "1"])
        .args(["-nographic", "-no-reboot", "-nic", "none", "-kernel"])
        .arg(m.vmlinuz)
        .arg("-initrd")
        .arg(m.initrd)
        .args(["-append", m.append]);
    for (disk, read_only) in m.disks {
        let mode = if *read_only {
            "readonly=on"
        } else {
            "snapshot=on"
        };
        let mut spec = std::ffi::OsString::from("file=");
        spec.push(disk);
        spec.push(format!(",format=raw,if=virtio,{mode}"));
        cmd.arg("-drive").arg(spec);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!("vm: {cmd:?}");
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", qemu.display()))?;
    let console = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let live = match m.live_log {
        Some(p) => {
            Some(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => None,
    };
    let readers = [
        pump(
            child.stdout.take().expect("piped"),
            Arc::clone(&console),
            live,
        ),
        pump(
            child.stderr.take().expect("piped"),
            Arc::clone(&stderr),
            None,
        ),
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
    mut live: Option<std::fs::File>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Some(f) = live.as_mut() {
                // Best effort: the returned console is what the checks read.
                let _ = std::io::Write::write_all(f, &buf[..n]);
            }
            into.lock()
                .expect("console lock")
                .extend_from_slice(&buf[..n]);
        }
    })
}

/// The console as text: the serial line's CRs and terminal escape sequences (qemu's and
/// any colours in the monitor's log) removed.
pub fn clean_console(raw: &[u8]) -> String {
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

pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_cleaning_drops_cr_and_escapes() {
        let raw = b"\x1b[2J\x1b[01;01Hline one\r\n\x1b[3mhook\x1b[0m\x1b[2m=\x1b[0mtcp_connect\r\n";
        assert_eq!(clean_console(raw), "line one\nhook=tcp_connect\n");
    }
}
