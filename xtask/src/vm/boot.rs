//! Boots the guest under qemu (TCG) and returns its serial console as text.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

pub fn boot(qemu: &Path, vmlinuz: &Path, initrd: &Path, timeout: Duration) -> Result<String> {
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
