//! What the benchmark reads about a running process and the children it starts: CPU time
//! (per-thread schedstat, nanoseconds), resident memory, pinning, and peak RSS via wait4.

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// CPU time of every thread of `pid` so far, in nanoseconds (sum of the first field of
/// /proc/PID/task/*/schedstat). Finer than utime+stime, which tick at 10 ms.
pub fn cpu_ns(pid: u32) -> Result<u64> {
    let dir = format!("/proc/{pid}/task");
    let mut total = 0u64;
    for t in fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let path = t?.path().join("schedstat");
        // A thread may exit between the listing and the read; it no longer counts.
        if let Ok(s) = fs::read_to_string(&path) {
            total += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(total)
}

/// (VmRSS, VmHWM) of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let s = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(r), Some(h)) => Ok((r, h)),
        _ => bail!("{path} has no VmRSS/VmHWM"),
    }
}

/// Makes the command's process (and its threads and children) run on `cpu` only.
pub fn pin_command(cmd: &mut Command, cpu: usize) {
    // SAFETY: sched_setaffinity is async-signal-safe and touches only the new process.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// How a child ended, with the kernel's account of its resources.
pub struct Exit {
    pub status: std::process::ExitStatus,
    pub wall: Duration,
    pub user: Duration,
    pub system: Duration,
    /// Peak resident set, KiB (ru_maxrss).
    pub max_rss_kib: u64,
}

/// Waits for `child` with wait4, which reports its peak RSS and CPU time. `started` is
/// when it was spawned. The `Child` must not be waited on afterwards.
pub fn wait_with_rusage(child: &mut Child, started: Instant) -> Result<Exit> {
    use std::os::unix::process::ExitStatusExt as _;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data filled in by the kernel.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waits for our own child; the pointers are valid for the call.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if rc == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            bail!("wait4({pid}): {e}");
        }
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Exit {
        status: std::process::ExitStatus::from_raw(status),
        wall: started.elapsed(),
        user: tv(ru.ru_utime),
        system: tv(ru.ru_stime),
        max_rss_kib: ru.ru_maxrss as u64,
    })
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: i32) -> Result<()> {
    // SAFETY: kill only sends a signal to the process we started.
    if unsafe { libc::kill(pid as libc::pid_t, sig) } != 0 {
        bail!("kill({pid}, {sig}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Where a process is, for a report on why it did not exit: its state, kernel wait channel
/// and (as root) kernel stack. Best effort: whatever cannot be read is left out.
pub fn where_stuck(pid: u32) -> String {
    let read = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
    let status = read("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|s| s.trim().to_string()))
            .unwrap_or_else(|| "?".into())
    };
    // Pending, blocked and ignored signal masks: a SIGINT (bit 2) that is pending and
    // blocked was never seen by the process.
    let state = format!(
        "{}, signals pending {} blocked {} ignored {}",
        field("State:"),
        field("ShdPnd:"),
        field("SigBlk:"),
        field("SigIgn:")
    );
    let wchan = read("wchan");
    let stack: Vec<String> = read("stack")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .take(6)
        .collect();
    format!(
        "state {state}, wchan {}, kernel stack [{}]",
        if wchan.is_empty() { "?" } else { wchan.trim() },
        stack.join(" < ")
    )
}

/// Waits up to `within` for `child` to exit, calling `every_second` once a second meanwhile;
/// `None` if it is still running.
pub fn wait_exit(
    child: &mut Child,
    within: Duration,
    mut every_second: impl FnMut(),
) -> Result<Option<std::process::ExitStatus>> {
    let t = Instant::now();
    let mut next = Duration::from_secs(1);
    while t.elapsed() < within {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        if t.elapsed() >= next {
            every_second();
            next += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(None)
}

/// SIGTERM, then waits up to `grace`; SIGKILL after that. Returns the exit status, or an
/// error if the process had to be killed.
pub fn stop(child: &mut Child, what: &str, grace: Duration) -> Result<std::process::ExitStatus> {
    if let Some(st) = child.try_wait()? {
        bail!("{what} had already exited ({st})");
    }
    signal(child.id(), libc::SIGTERM)?;
    if let Some(st) = wait_exit(child, grace, || {})? {
        return Ok(st);
    }
    let _ = child.kill();
    let _ = child.wait();
    bail!("{what} did not stop within {grace:?} of SIGTERM; killed")
}
