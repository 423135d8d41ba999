//! Tests against real processes, the real /proc, /etc/passwd and cgroup v2 tree.
//!
//! The kernel's events are built here field by field, as the eBPF programs write them,
//! around processes this test really starts.
//!
//! Split like the table: `tests/events.rs` (exec, fork, exit, ancestry: table/events.rs),
//! `tests/hashing.rs` (table/hashing.rs), `tests/enrich.rs` (records from /proc, partial
//! records, pid reuse, bounds, containers: table/enrich.rs); the shared builders are here.

mod enrich;
mod events;
mod hashing;

use std::net::{IpAddr, Ipv6Addr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use monitor_common::{
    AF_INET, AF_INET6, ARGS_LEN, COMM_LEN, ConnectEvent, EXE_LEN, EXE_PATH_LEN, ExecEvent,
    ExitEvent, ForkEvent, IPPROTO_TCP, IPPROTO_UDP, backend, exe_flag, hook, kind,
};

use super::container::cgroup2_mount;
use super::procfs::{ProcFs, clock_ticks_per_sec};
use super::{ProcessTable, ProcessTableConfig};
use crate::record::{ConnectionRecord, Timestamp, Transport};

/// Kills and reaps a test child even when an assertion fails.
struct Kid(Child);

impl Kid {
    /// Starts `cmd` and waits until its new image has its argv in place: spawn returns
    /// as soon as exec has released the parent, a moment before /proc/PID/cmdline is set.
    fn spawn(cmd: &mut Command) -> Kid {
        let kid = Kid(cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start test process {cmd:?}: {e}")));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read(format!("/proc/{}/cmdline", kid.pid())).map_or(true, |c| c.is_empty()) {
            assert!(
                std::time::Instant::now() < deadline,
                "{cmd:?} never showed its argv"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        kid
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        self.stop();
    }
}

fn unique() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}{:09}", std::process::id(), t.subsec_nanos())
}

/// `sleep 30 0.<unique>`: distinctive argv, sleeps about 30 s.
fn sleeper() -> (Kid, String) {
    let tag = format!("0.{}", unique());
    (Kid::spawn(Command::new("sleep").args(["30", &tag])), tag)
}

/// The binary a PATH lookup of `name` runs, with symlinks resolved as /proc/PID/exe has them.
fn installed(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").expect("PATH is set");
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .map(|p| std::fs::canonicalize(p).unwrap())
        .unwrap_or_else(|| panic!("`{name}` is not installed; the test needs it"))
}

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test reads other processes' /proc files and checks user.name root: run it as root"
    );
}

/// Boot-time ns of a process's start, as the kernel reports it (finer than /proc's ticks).
fn start_ns(pid: u32) -> u64 {
    let ticks = ProcFs::new("/proc").stat(pid).unwrap().start_ticks;
    ticks * (1_000_000_000 / clock_ticks_per_sec()) + 4_321
}

fn comm(name: &[u8]) -> [u8; COMM_LEN] {
    let mut c = [0; COMM_LEN];
    let n = name.len().min(COMM_LEN - 1);
    c[..n].copy_from_slice(&name[..n]);
    c
}

fn connect_v4(tgid: u32, start_time_ns: u64, ip: [u8; 4], port: u16) -> ConnectEvent {
    let mut daddr = [0; 16];
    daddr[..4].copy_from_slice(&ip);
    ConnectEvent {
        kind: kind::CONNECT,
        hook: hook::TCP_CONNECT,
        ktime_ns: 1_000,
        tgid,
        tid: tgid,
        uid: 0,
        gid: 0,
        cgroup_id: 0,
        start_time_ns,
        suppressed: 0,
        family: AF_INET,
        protocol: IPPROTO_TCP,
        _pad0: 0,
        sport: 0,
        dport: port,
        backend: backend::TRACEPOINT,
        saddr: [0; 16],
        daddr,
        comm: comm(b"kernel-comm"),
        conn_id: 0,
    }
}

fn exec_event(pid: u32, ppid: u32, start_time_ns: u64, filename: &[u8], argv: &[u8]) -> ExecEvent {
    let mut ev = ExecEvent {
        kind: kind::EXEC,
        tgid: pid,
        ktime_ns: 1_000,
        ppid,
        uid: 0,
        gid: 0,
        filename_len: 0,
        start_time_ns,
        cgroup_id: 0,
        args_len: 0,
        args_truncated: 0,
        exe_flags: 0,
        exe_path_len: 0,
        exe_dev: 0,
        exe_ctime_nsec: u32::MAX,
        exe_ino: 0,
        exe_size: 0,
        exe_ctime_sec: 0,
        comm: comm(filename.rsplit(|&b| b == b'/').next().unwrap()),
        filename: [0; EXE_LEN],
        exe_path: [0; EXE_PATH_LEN],
        args: [0; ARGS_LEN],
    };
    let f = filename.len().min(EXE_LEN);
    ev.filename[..f].copy_from_slice(&filename[..f]);
    ev.filename_len = f as u32;
    let a = argv.len().min(ARGS_LEN);
    ev.args[..a].copy_from_slice(&argv[..a]);
    ev.args_len = a as u32;
    ev.args_truncated = u32::from(argv.len() > ARGS_LEN);
    ev
}

/// An exec event as the kernel writes it when it resolved `mm->exe_file` to `exe`.
fn resolved_exec(
    pid: u32,
    ppid: u32,
    start_time_ns: u64,
    filename: &[u8],
    exe: &[u8],
    flags: u32,
    argv: &[u8],
) -> ExecEvent {
    let mut ev = exec_event(pid, ppid, start_time_ns, filename, argv);
    ev.exe_path[EXE_PATH_LEN - exe.len()..].copy_from_slice(exe);
    ev.exe_path_len = exe.len() as u32;
    ev.exe_flags = exe_flag::RESOLVED | flags;
    ev
}

fn fork_event(child: u32, start_time_ns: u64, source: u32, source_start_ns: u64) -> ForkEvent {
    ForkEvent {
        kind: kind::FORK,
        tgid: child,
        ktime_ns: 1_500,
        source_tgid: source,
        ppid: source,
        start_time_ns,
        source_start_time_ns: source_start_ns,
    }
}

fn exit_event(pid: u32, start_time_ns: u64) -> ExitEvent {
    ExitEvent {
        kind: kind::EXIT,
        tgid: pid,
        ktime_ns: 2_000,
        start_time_ns,
    }
}

fn host() -> Arc<str> {
    Arc::from("test-host")
}

fn enrich(t: &mut ProcessTable, ev: &ConnectEvent) -> ConnectionRecord {
    t.enrich(ev, Timestamp(1_700_000_000_000_000_000), &host())
}

/// A pid no process can have: pids are always below pid_max.
fn impossible_pid() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("read /proc/sys/kernel/pid_max")
        .trim()
        .parse()
        .unwrap()
}

fn me_name() -> String {
    let exe = std::env::current_exe().unwrap();
    exe.file_name().unwrap().to_string_lossy().into_owned()
}
