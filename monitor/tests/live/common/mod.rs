//! Support for the root-only end-to-end tests that drive the real `monitor` binary: a network
//! namespace test host with listeners (`netns`), the monitor as a child process (`daemon`),
//! and helpers to read its JSON lines (`records`).
//!
//! Every test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

pub mod daemon;
pub mod netns;
pub mod records;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The test loads eBPF programs and creates network namespaces: without root it cannot run,
/// and it must say so rather than pass.
pub fn require_root(test: &str) {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "{test} needs root (euid is {euid}): it loads eBPF programs and creates a network \
         namespace. Run it as root, e.g. `sudo -E cargo test --release -p monitor --features host-tests --test {test}`"
    );
}

/// A program the test drives, resolved to an absolute path; fails naming the Debian package
/// when it is missing.
pub fn require_program(candidates: &[&str], package: &str) -> PathBuf {
    for c in candidates {
        let p = Path::new(c);
        if p.is_absolute() && p.exists() {
            return p.to_path_buf();
        }
        if let Ok(found) = which(c) {
            return found;
        }
    }
    panic!(
        "none of {candidates:?} is installed; install the Debian package `{package}` \
         (`apt-get install {package}`, or `cargo xtask bootstrap --test-packages`)"
    );
}

fn which(name: &str) -> Result<PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(())
}

/// The system Python. Named explicitly: a `python3` found first on PATH may be a pyenv shim
/// (a shell script), which would make the parent/child chain and the executable differ.
pub fn python3() -> PathBuf {
    require_program(&["/usr/bin/python3"], "python3")
}

/// What the monitor should report as `process.executable` for a program started by this
/// path: the file the kernel ran, symlinks resolved (`/usr/bin/python3` -> `python3.11`).
pub fn canonical(program: &Path) -> String {
    std::fs::canonicalize(program)
        .unwrap_or_else(|e| panic!("canonicalize {}: {e}", program.display()))
        .to_string_lossy()
        .into_owned()
}

/// A directory removed (with its contents) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "monitor-e2e-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Runs a command to completion, failing with its stderr if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command that must succeed.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Waits for a child up to `limit`; `None` if it is still running then.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if start.elapsed() >= limit => return None,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
    }
}

/// Waits for a child, killing it if it outlives `limit` (a client that hangs must not hang
/// the test). Returns the exit status, or `None` if it had to be killed.
pub fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    match wait_timeout(child, limit) {
        Some(st) => Some(st),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

/// Makes a child get `signal` when the test thread that started it dies, so a test killed
/// outright (Ctrl-C, a CI timeout) leaves no monitor or listener running. Survives the exec
/// (and `ip netns exec`'s own exec).
pub fn die_with_parent(cmd: &mut Command, signal: libc::c_int) -> &mut Command {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Sends `signal` to `pid`.
pub fn send_signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill has no memory preconditions; a stale pid only yields ESRCH.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// Short random-looking lowercase labels (DNS tunnelling payloads). Seeded from the clock and
/// the pid: the labels only need to look like encoded data, not be secret.
pub fn high_entropy_label(len: usize, salt: u64) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
        ^ (u64::from(std::process::id()) << 32)
        ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|_| {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
            ALPHABET[(r >> 59) as usize] as char
        })
        .collect()
}

/// Serves a one-line HTTP answer on `addr` (port 0: any free port) from a thread of the test
/// process, for clients that connect to loopback. Returns the bound address.
pub fn serve_http_on(addr: std::net::SocketAddr) -> std::io::Result<std::net::SocketAddr> {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
        }
    });
    Ok(bound)
}
