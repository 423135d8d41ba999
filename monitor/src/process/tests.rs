//! Tests against real processes, the real /proc, /etc/passwd and cgroup v2 tree.
//!
//! The kernel's events are built here field by field, as the eBPF programs write them,
//! around processes this test really starts.
//!
//! Length: one test file for the process table, run against real processes; it grows with
//! table.rs and splits with it.

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

#[test]
#[cfg_attr(
    not(feature = "host-tests"),
    ignore = "needs root: cargo test --features host-tests, as root"
)]
fn scan_proc_learns_a_running_child() {
    require_root();
    let (kid, tag) = sleeper();
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    let n = t.scan_proc().expect("scan /proc");
    assert!(n >= 2, "scan found only {n} processes");
    assert!(
        t.contains(kid.pid()),
        "scan did not find the child {}",
        kid.pid()
    );
    assert!(
        t.contains(std::process::id()),
        "scan did not find the test itself"
    );
    assert_eq!(t.stats().proc_reads, 0, "scan reads are counted apart");
    assert!(t.stats().scan_reads > 0);

    // What the scan learned, read back through enrich without touching the child's /proc.
    let start = start_ns(kid.pid());
    let rec = enrich(&mut t, &connect_v4(kid.pid(), start, [127, 0, 0, 1], 9));
    let p = &rec.process;
    let sleep = installed("sleep");
    assert_eq!(p.executable.as_deref(), Some(&*sleep.to_string_lossy()));
    assert_eq!(p.args, ["sleep", "30", tag.as_str()]);
    assert_eq!(p.command_line.as_deref(), Some(&*format!("sleep 30 {tag}")));
    assert_eq!(p.parent.pid, Some(std::process::id()));
    assert_eq!(p.user_id, Some(0.into()));
    assert!(!rec.partial, "{rec:?}");
}

#[test]
#[cfg_attr(
    not(feature = "host-tests"),
    ignore = "needs root: cargo test --features host-tests, as root"
)]
fn enrich_fills_process_parent_user_and_network() {
    require_root();
    let (kid, tag) = sleeper();
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    t.scan_proc().unwrap();
    let start = start_ns(kid.pid());

    let mut ev = connect_v4(kid.pid(), start, [203, 0, 113, 7], 8088);
    ev.tid = kid.pid();
    ev.saddr[..4].copy_from_slice(&[192, 0, 2, 1]);
    ev.sport = 40_000;
    ev.backend = backend::CGROUP;
    let rec = enrich(&mut t, &ev);
    let p = &rec.process;
    assert_eq!(p.pid, kid.pid());
    assert_eq!(p.tid, Some(kid.pid()));
    assert_eq!(p.name.as_deref(), Some("sleep"));
    assert_eq!(
        p.executable.as_deref(),
        Some(&*installed("sleep").to_string_lossy())
    );
    assert_eq!(p.args, ["sleep", "30", tag.as_str()]);
    assert_eq!(p.parent.pid, Some(std::process::id()));
    assert_eq!(p.parent.name.as_deref(), Some(me_name().as_str()));
    let me = std::env::current_exe().unwrap();
    assert_eq!(p.parent.executable.as_deref(), Some(&*me.to_string_lossy()));
    assert!(p.parent.command_line.is_some());
    assert_eq!(p.user_id, Some(0.into()));
    assert_eq!(p.user_name.as_deref(), Some("root"));
    assert_eq!(p.group_id, Some(0.into()));
    assert_eq!(rec.destination.ip.to_string(), "203.0.113.7");
    assert_eq!(rec.destination.port, 8088);
    let src = rec.source.expect("source known");
    assert_eq!(
        (src.ip.to_string(), src.port),
        ("192.0.2.1".to_string(), 40_000)
    );
    assert_eq!(rec.transport, Transport::Tcp);
    assert_eq!(rec.network_type(), "ipv4");
    assert_eq!(rec.probe, Some("cgroup"));
    assert!(!rec.partial);
    let json = rec.to_json_line();
    assert!(json.contains(r#""enrichment":"full""#), "{json}");

    // Same process again: shared info, no /proc read, even from the cgroup hook that
    // cannot read the start time.
    let reads = t.stats().proc_reads;
    let builds = t.stats().builds;
    let mut udp6 = ev;
    udp6.hook = hook::UDP_SEND_V6;
    udp6.family = AF_INET6;
    udp6.protocol = IPPROTO_UDP;
    udp6.start_time_ns = 0;
    udp6.saddr = [0; 16];
    udp6.daddr = "::ffff:198.51.100.3".parse::<Ipv6Addr>().unwrap().octets();
    udp6.dport = 53;
    udp6.suppressed = 7;
    let rec2 = enrich(&mut t, &udp6);
    assert!(Arc::ptr_eq(&rec.process, &rec2.process));
    assert_eq!(
        rec2.destination.ip,
        IpAddr::from([198, 51, 100, 3]),
        "mapped IPv6 becomes IPv4"
    );
    assert_eq!(rec2.network_type(), "ipv4");
    assert_eq!(rec2.transport, Transport::Udp);
    assert_eq!(rec2.source, None);
    assert_eq!(rec2.suppressed, 7);

    let mut v6 = udp6;
    v6.daddr = "2001:db8::7".parse::<Ipv6Addr>().unwrap().octets();
    let rec3 = enrich(&mut t, &v6);
    assert_eq!(rec3.network_type(), "ipv6");
    assert_eq!(rec3.destination.ip.to_string(), "2001:db8::7");

    // Another thread of it: only the tid differs; still no read.
    let mut other_thread = ev;
    other_thread.tid = kid.pid() + 1;
    let rec4 = enrich(&mut t, &other_thread);
    assert_eq!(rec4.process.tid, Some(kid.pid() + 1));
    assert_eq!(rec4.process.args, rec.process.args);
    assert_eq!(t.stats().proc_reads, reads, "hot path read /proc");
    assert_eq!(
        t.stats().builds,
        builds,
        "hot path rebuilt the process info"
    );

    // A changed uid (setuid after exec) is an input change: rebuilt, still no /proc read.
    let mut setuid = ev;
    setuid.uid = 65_534;
    let rec5 = enrich(&mut t, &setuid);
    assert_eq!(rec5.process.user_id, Some(65_534.into()));
    assert!(!Arc::ptr_eq(&rec.process, &rec5.process));
    assert_eq!(t.stats().builds, builds + 1);
    assert_eq!(t.stats().enrichment_misses, 0);
}

#[test]
#[cfg_attr(
    not(feature = "host-tests"),
    ignore = "needs root: cargo test --features host-tests, as root"
)]
fn exec_events_outlive_the_process_and_text_is_escaped() {
    require_root();
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    t.scan_proc().unwrap();
    // A real process whose exec we report the way the kernel would, then let it die.
    let mut kid = Kid::spawn(Command::new("sleep").arg("30"));
    let pid = kid.pid();
    let start = start_ns(pid);
    let argv = b"curl\0-s\0http://203.0.113.7:8088/\xff\xfe\0line\nbreak\0{\"forged\":1}\0";
    // Gone before user space handles its exec event, like a curl that exits in
    // milliseconds: the kernel's exec data is all there is (and /proc/PID/exe cannot
    // replace the path).
    kid.stop();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "child {pid} should be gone from /proc"
    );
    t.on_exec(&exec_event(
        pid,
        std::process::id(),
        start,
        b"/usr/bin/curl",
        argv,
    ));

    let rec = enrich(&mut t, &connect_v4(pid, start, [203, 0, 113, 7], 8088));
    let p = &rec.process;
    assert_eq!(p.name.as_deref(), Some("curl"));
    assert_eq!(p.executable.as_deref(), Some("/usr/bin/curl"));
    assert_eq!(
        p.args,
        [
            "curl",
            "-s",
            "http://203.0.113.7:8088/\\xff\\xfe",
            "line\nbreak",
            "{\"forged\":1}"
        ]
    );
    let cmdline = "curl -s http://203.0.113.7:8088/\\xff\\xfe line\nbreak {\"forged\":1}";
    assert_eq!(p.command_line.as_deref(), Some(cmdline));
    assert_eq!(p.parent.pid, Some(std::process::id()));
    assert_eq!(p.parent.name.as_deref(), Some(me_name().as_str()));
    assert!(!rec.partial, "exec data is complete: {rec:?}");

    // The JSON line stays one line and reads back to the same escaped text.
    let line = rec.to_json_line();
    assert_eq!(line.matches('\n').count(), 1, "{line}");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["process"]["command_line"], cmdline);
    assert_eq!(
        v["process"]["args"][2],
        "http://203.0.113.7:8088/\\xff\\xfe"
    );

    // Exit: a late event of the same process (known start) still finds it.
    t.on_exit(&exit_event(pid, start));
    assert!(!t.contains(pid));
    let late = enrich(&mut t, &connect_v4(pid, start, [203, 0, 113, 7], 8088));
    assert_eq!(late.process.executable.as_deref(), Some("/usr/bin/curl"));

    // Without a start time, after the exit, the pid may be anyone's: not attributed to
    // curl, and with /proc gone the record keeps what the kernel said, marked partial.
    let misses = t.stats().enrichment_misses;
    let anon = enrich(&mut t, &connect_v4(pid, 0, [203, 0, 113, 7], 8088));
    assert!(anon.partial);
    assert_eq!(anon.process.executable, None);
    assert_eq!(anon.process.name.as_deref(), Some("kernel-comm"));
    assert_eq!(anon.destination.port, 8088);
    assert_eq!(t.stats().enrichment_misses, misses + 1);
    assert!(anon.to_json_line().contains(r#""enrichment":"partial""#));
}

#[test]
#[cfg_attr(
    not(feature = "host-tests"),
    ignore = "needs root: cargo test --features host-tests, as root"
)]
fn unknown_pid_gives_a_partial_record_read_once() {
    require_root();
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    let pid = impossible_pid();
    let ev = connect_v4(pid, 0, [198, 51, 100, 1], 443);
    let rec = enrich(&mut t, &ev);
    assert!(rec.partial);
    assert_eq!(rec.process.pid, pid);
    assert_eq!(rec.process.name.as_deref(), Some("kernel-comm"));
    assert_eq!(rec.process.user_name.as_deref(), Some("root"));
    assert_eq!(rec.destination.ip.to_string(), "198.51.100.1");
    let reads = t.stats().proc_reads;
    assert!(reads > 0);
    // The miss is remembered: the next event of that pid reads nothing.
    let again = enrich(&mut t, &ev);
    assert!(again.partial);
    assert_eq!(t.stats().proc_reads, reads);
    assert_eq!(t.stats().enrichment_misses, 2);

    // pid 0 (kernel context) and an unknown family: still a record, partial, no panic.
    let mut weird = connect_v4(0, 0, [1, 2, 3, 4], 1);
    weird.family = 1234;
    weird.protocol = 99;
    let r = enrich(&mut t, &weird);
    assert!(r.partial);
    assert_eq!(r.process.pid, 0);
    assert_eq!(t.stats().malformed, 1);
}

#[test]
#[cfg_attr(
    not(feature = "host-tests"),
    ignore = "needs root: cargo test --features host-tests, as root"
)]
fn pid_reuse_never_mixes_processes() {
    require_root();
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    t.scan_proc().unwrap();
    let pid = impossible_pid();
    let me = std::process::id();
    let (t1, t2) = (5_000_000_000u64, 9_000_000_000u64);
    t.on_exec(&exec_event(pid, me, t1, b"/usr/bin/first", b"first\0--a\0"));
    let a = enrich(&mut t, &connect_v4(pid, t1, [192, 0, 2, 1], 1));
    assert_eq!(a.process.executable.as_deref(), Some("/usr/bin/first"));

    // The exit of `first` was lost; a new process got the pid.
    t.on_exec(&exec_event(
        pid,
        me,
        t2,
        b"/usr/bin/second",
        b"second\0--b\0",
    ));
    let b = enrich(&mut t, &connect_v4(pid, t2, [192, 0, 2, 1], 1));
    assert_eq!(b.process.executable.as_deref(), Some("/usr/bin/second"));
    assert_eq!(b.process.args, ["second", "--b"]);
    assert_eq!(t.stats().stale_entries, 1);

    // A late event carrying the first start time is still the first process, and does not
    // disturb the second.
    let late = enrich(&mut t, &connect_v4(pid, t1, [192, 0, 2, 1], 1));
    assert_eq!(late.process.executable.as_deref(), Some("/usr/bin/first"));
    let now = enrich(&mut t, &connect_v4(pid, 0, [192, 0, 2, 1], 1));
    assert_eq!(now.process.executable.as_deref(), Some("/usr/bin/second"));

    // An exit for the first process leaves the second in place.
    t.on_exit(&exit_event(pid, t1));
    assert!(t.contains(pid));
    t.on_exit(&exit_event(pid, t2));
    assert!(!t.contains(pid));

    // A connect from an earlier holder of a pid that /proc now shows with a later start
    // (the pid was reused before the event was read) is not given the new identity.
    let (kid, _) = sleeper();
    let wrong_start = start_ns(kid.pid()) - 3_000_000_000;
    let r = enrich(
        &mut t,
        &connect_v4(kid.pid(), wrong_start, [192, 0, 2, 1], 1),
    );
    assert!(r.partial);
    assert_eq!(r.process.executable, None);
    assert_eq!(t.stats().start_mismatches, 1);
    // The current holder still resolves (replacing the earlier one's entry).
    let ok = enrich(
        &mut t,
        &connect_v4(kid.pid(), start_ns(kid.pid()), [192, 0, 2, 1], 1),
    );
    assert_eq!(ok.process.name.as_deref(), Some("sleep"));
    assert!(!ok.partial, "{ok:?}");
}

#[test]
#[cfg_attr(
    not(feature = "host-tests"),
    ignore = "needs root: cargo test --features host-tests, as root"
)]
fn parent_exec_rebuilds_children_and_children_find_exited_parents() {
    require_root();
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    let me = std::process::id();
    let base = impossible_pid() + 10;
    let (parent, child) = (base, base + 1);
    t.on_exec(&exec_event(
        parent,
        me,
        1_000_000_000,
        b"/bin/bash",
        b"bash\0",
    ));
    t.on_exec(&exec_event(
        child,
        parent,
        2_000_000_000,
        b"/usr/bin/curl",
        b"curl\0x\0",
    ));
    let r = enrich(
        &mut t,
        &connect_v4(child, 2_000_000_000, [192, 0, 2, 1], 80),
    );
    assert_eq!(r.process.parent.name.as_deref(), Some("bash"));
    // The parent execs something else: the child's parent fields follow.
    t.on_exec(&exec_event(
        parent,
        me,
        1_000_000_000,
        b"/usr/bin/python3",
        b"python3\0-c\0x\0",
    ));
    let r = enrich(
        &mut t,
        &connect_v4(child, 2_000_000_000, [192, 0, 2, 1], 80),
    );
    assert_eq!(
        r.process.parent.executable.as_deref(),
        Some("/usr/bin/python3")
    );
    assert_eq!(
        r.process.parent.command_line.as_deref(),
        Some("python3 -c x")
    );
    // The parent exits; a new child of it (exec seen after) still gets its parent.
    t.on_exit(&exit_event(parent, 1_000_000_000));
    t.on_exec(&exec_event(
        base + 2,
        parent,
        3_000_000_000,
        b"/usr/bin/wget",
        b"wget\0",
    ));
    let r = enrich(
        &mut t,
        &connect_v4(base + 2, 3_000_000_000, [192, 0, 2, 1], 80),
    );
    assert_eq!(r.process.parent.name.as_deref(), Some("python3"));
    assert!(!r.partial);
    // A process started before its supposed parent cannot be its child: parent unknown.
    t.on_exec(&exec_event(
        base + 3,
        parent,
        500_000_000,
        b"/usr/bin/nc",
        b"nc\0",
    ));
    let r = enrich(
        &mut t,
        &connect_v4(base + 3, 500_000_000, [192, 0, 2, 1], 80),
    );
    assert_eq!(r.process.parent.name, None);
    assert!(r.partial);
}

#[test]
#[cfg_attr(
    not(feature = "host-tests"),
    ignore = "needs root: cargo test --features host-tests, as root"
)]
fn truncated_argv_is_completed_only_when_proc_agrees() {
    require_root();
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    t.scan_proc().unwrap();
    // sleep with a long argv: the kernel keeps 512 bytes, /proc has the rest.
    let long: Vec<String> = (0..60).map(|i| format!("0.0000{i:04}")).collect();
    let kid = Kid::spawn(Command::new("sleep").arg("30").args(&long));
    let mut argv = b"sleep\x0030\0".to_vec();
    for a in &long {
        argv.extend_from_slice(a.as_bytes());
        argv.push(0);
    }
    assert!(argv.len() > ARGS_LEN);
    let sleep = installed("sleep");
    let start = start_ns(kid.pid());
    let ev = exec_event(
        kid.pid(),
        std::process::id(),
        start,
        sleep.as_os_str().as_bytes(),
        &argv,
    );
    assert_eq!(ev.args_truncated, 1);
    t.on_exec(&ev);
    let rec = enrich(&mut t, &connect_v4(kid.pid(), start, [192, 0, 2, 1], 80));
    assert_eq!(rec.process.args.len(), 62, "{:?}", rec.process.args);
    assert_eq!(rec.process.args.last().unwrap(), long.last().unwrap());

    // perl rewrites its argv ($0) after exec: /proc no longer continues what the kernel
    // saw, so the kernel's (truncated) argv is kept.
    let perl = installed("perl");
    let script = "$0 = 'innocent'; sleep 30";
    let filler = "A".repeat(600);
    let mut kid = Kid::spawn(Command::new(&perl).args(["-e", script, &filler]));
    // Wait until perl has rewritten its argv.
    let pid = kid.pid();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .starts_with(b"innocent")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "perl did not rewrite $0"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut argv = format!("perl\0-e\0{script}\0").into_bytes();
    argv.extend_from_slice(filler.as_bytes());
    let start = start_ns(pid);
    t.on_exec(&exec_event(
        pid,
        std::process::id(),
        start,
        perl.as_os_str().as_bytes(),
        &argv,
    ));
    let rec = enrich(&mut t, &connect_v4(pid, start, [192, 0, 2, 1], 80));
    assert_eq!(rec.process.args[0], "perl");
    assert_eq!(rec.process.args[2], script);
    assert_eq!(rec.process.args.len(), 4, "{:?}", rec.process.args);
    assert!(!rec.process.args.iter().any(|a| a == "innocent"));
    kid.stop();
}

#[test]
fn maps_stay_bounded_past_their_caps() {
    let cfg = ProcessTableConfig {
        max_entries: 8,
        max_proc_cache: 4,
        max_exited: 2,
        max_cgroups: 2,
        ..ProcessTableConfig::default()
    };
    let mut t = ProcessTable::new(cfg);
    let base = impossible_pid() + 100;
    for i in 0..100u32 {
        let start = 1_000_000_000 * u64::from(i + 1);
        t.on_exec(&exec_event(base + i, 1, start, b"/usr/bin/x", b"x\0"));
        assert!(t.stats().entries <= 8);
    }
    assert_eq!(t.len(), 8);
    assert_eq!(t.stats().evictions, 92);
    // The most recent ones are kept.
    assert!(t.contains(base + 99) && !t.contains(base));
    // Unknown pids fill the /proc cache, which stays at its cap.
    for i in 0..50u32 {
        let r = enrich(&mut t, &connect_v4(base + 1_000 + i, 0, [192, 0, 2, 1], 1));
        assert!(r.partial);
    }
    let s = t.stats();
    assert_eq!(s.entries, 12, "{s:?}");
    assert_eq!(s.evictions, 92 + 46);
    for i in 90..100u32 {
        t.on_exit(&exit_event(base + i, 1_000_000_000 * u64::from(i + 1)));
    }
    assert_eq!(t.stats().exited_entries, 2);
    // An evicted process is simply learned again.
    let r = enrich(&mut t, &connect_v4(base, 1_000_000_000, [192, 0, 2, 1], 1));
    assert!(r.partial);
}

/// A cgroup created for the test under the cgroup v2 mount, removed on drop.
struct TestCgroup(PathBuf);

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
#[cfg_attr(
    not(feature = "host-tests"),
    ignore = "needs root: cargo test --features host-tests, as root"
)]
fn container_id_from_a_real_cgroup_even_after_exit() {
    use std::os::unix::fs::MetadataExt;
    require_root();
    let mountinfo = std::fs::read("/proc/self/mountinfo").unwrap();
    let root = cgroup2_mount(&mountinfo)
        .expect("this test needs a cgroup v2 mount (see /proc/self/mountinfo)");
    let id = format!("{:016x}", unique().parse::<u64>().unwrap()).repeat(4);
    assert_eq!(id.len(), 64);
    let cg = TestCgroup(root.join(format!("docker-{id}.scope")));
    std::fs::create_dir(&cg.0).unwrap_or_else(|e| panic!("mkdir {}: {e}", cg.0.display()));
    let cgroup_id = std::fs::metadata(&cg.0).unwrap().ino();

    let (mut kid, _) = sleeper();
    std::fs::write(cg.0.join("cgroup.procs"), kid.pid().to_string())
        .unwrap_or_else(|e| panic!("move {} into {}: {e}", kid.pid(), cg.0.display()));
    let start = start_ns(kid.pid());
    let mut ev = connect_v4(kid.pid(), start, [192, 0, 2, 1], 80);
    ev.cgroup_id = cgroup_id;

    let mut t = ProcessTable::new(ProcessTableConfig::default());
    let rec = enrich(&mut t, &ev);
    assert_eq!(rec.process.container_id.as_deref(), Some(id.as_str()));
    assert!(
        rec.to_json_line()
            .contains(&format!(r#""container":{{"id":"{id}"}}"#))
    );

    // Host process (this test, in its own cgroup): no container.
    let me = enrich(
        &mut t,
        &connect_v4(std::process::id(), 0, [192, 0, 2, 1], 80),
    );
    assert_eq!(me.process.container_id, None);

    // The process is gone before a fresh table sees its first event: the cgroup id is
    // found in the cgroup tree instead.
    kid.stop();
    let mut fresh = ProcessTable::new(ProcessTableConfig::default());
    let rec = enrich(&mut fresh, &ev);
    assert_eq!(rec.process.container_id.as_deref(), Some(id.as_str()));
    assert_eq!(fresh.stats().cgroup_walks, 1);
    // Later processes of the same cgroup: cached, no search, no read.
    let mut ev2 = ev;
    ev2.tgid = impossible_pid();
    ev2.start_time_ns = 0;
    let rec2 = enrich(&mut fresh, &ev2);
    assert_eq!(rec2.process.container_id.as_deref(), Some(id.as_str()));
    assert_eq!(fresh.stats().cgroup_walks, 1);
}

#[test]
#[cfg_attr(
    not(feature = "host-tests"),
    ignore = "needs root: cargo test --features host-tests, as root"
)]
fn exec_paths_that_name_no_file_are_completed_from_proc() {
    require_root();
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    t.scan_proc().unwrap();
    let me = std::process::id();

    // Fileless: sleep copied into a memfd and run with fexecve; the kernel reports the
    // path as /dev/fd/N.
    let python = installed("python3");
    let script = "import os\n\
        fd = os.memfd_create('payload', 0)\n\
        data = open('/usr/bin/sleep', 'rb').read()\n\
        while data:\n    data = data[os.write(fd, data):]\n\
        os.execve(fd, ['sleep', '30'], {})\n";
    let kid = Kid::spawn(Command::new(&python).args(["-c", script]));
    let pid = kid.pid();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_link(format!("/proc/{pid}/exe"))
        .is_ok_and(|p| p.as_os_str().as_bytes().starts_with(b"/memfd:payload"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "python never ran the memfd"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let kernel_comm = std::fs::read(format!("/proc/{pid}/comm")).unwrap();
    let start = start_ns(pid);
    let mut ev = exec_event(pid, me, start, b"/dev/fd/3", b"sleep\x0030\0");
    ev.comm = comm(kernel_comm.strip_suffix(b"\n").unwrap_or(&kernel_comm));
    t.on_exec(&ev);
    let rec = enrich(&mut t, &connect_v4(pid, start, [192, 0, 2, 1], 80));
    assert_eq!(
        rec.process.executable.as_deref(),
        Some("/memfd:payload (deleted)")
    );
    assert_eq!(rec.process.name.as_deref(), Some("memfd:payload"));
    assert_eq!(rec.process.args, ["sleep", "30"]);
    assert!(!rec.partial, "{rec:?}");
    drop(kid);

    // A relative path (`./sleep`), and an argv the kernel could not read.
    let (kid, tag) = sleeper();
    let start = start_ns(kid.pid());
    t.on_exec(&exec_event(kid.pid(), me, start, b"./sleep", b""));
    let rec = enrich(&mut t, &connect_v4(kid.pid(), start, [192, 0, 2, 1], 80));
    assert_eq!(
        rec.process.executable.as_deref(),
        Some(&*installed("sleep").to_string_lossy())
    );
    assert_eq!(rec.process.args, ["sleep", "30", tag.as_str()]);
    assert!(!rec.partial, "{rec:?}");
}

#[test]
#[cfg_attr(
    not(feature = "host-tests"),
    ignore = "needs root: cargo test --features host-tests, as root"
)]
fn exec_through_a_symlink_reports_the_file_the_kernel_ran() {
    require_root();
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    // A link named like a browser to a real program: rules must see the real file.
    let dir = std::env::temp_dir().join(format!("monitor-symlink-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("firefox");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("/usr/bin/sleep", &link).unwrap();
    let mut kid = Kid::spawn(Command::new(&link).arg("30"));
    let pid = kid.pid();
    let start = start_ns(pid);
    t.on_exec(&exec_event(
        pid,
        std::process::id(),
        start,
        link.as_os_str().as_encoded_bytes(),
        b"firefox\x0030\0",
    ));
    let rec = enrich(&mut t, &connect_v4(pid, start, [203, 0, 113, 7], 443));
    let real = std::fs::canonicalize("/usr/bin/sleep").unwrap();
    assert_eq!(rec.process.executable.as_deref(), real.to_str());
    assert_eq!(
        rec.process.name.as_deref(),
        real.file_name().and_then(|n| n.to_str())
    );
    kid.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `ln -s /usr/bin/bash /tmp/x/firefox; /tmp/x/firefox -c ...`, gone before user space looks:
/// the file the kernel resolved names the process, never the path execve was given.
#[test]
fn the_kernels_resolved_executable_beats_the_exec_path() {
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    let pid = impossible_pid() + 300;
    let start = 7_000_000_000;
    t.on_exec(&resolved_exec(
        pid,
        1,
        start,
        b"/tmp/x/firefox",
        b"/usr/bin/bash",
        0,
        b"/tmp/x/firefox\0-c\0echo x\0",
    ));
    let rec = enrich(&mut t, &connect_v4(pid, start, [203, 0, 113, 9], 443));
    assert_eq!(rec.process.executable.as_deref(), Some("/usr/bin/bash"));
    assert_eq!(rec.process.name.as_deref(), Some("bash"));
    assert_eq!(rec.process.args[0], "/tmp/x/firefox", "argv stays as given");

    // busybox re-running itself through /proc/self/exe: the file, and its name.
    t.on_exec(&resolved_exec(
        pid + 1,
        1,
        start,
        b"/proc/self/exe",
        b"/usr/bin/busybox",
        0,
        b"wget\0-q\0",
    ));
    let rec = enrich(&mut t, &connect_v4(pid + 1, start, [203, 0, 113, 9], 443));
    assert_eq!(rec.process.executable.as_deref(), Some("/usr/bin/busybox"));
    assert_eq!(rec.process.name.as_deref(), Some("busybox"));
    assert_eq!(rec.process.args[0], "wget");

    // Deleted while running, and a memfd: as /proc/PID/exe shows them.
    t.on_exec(&resolved_exec(
        pid + 2,
        1,
        start,
        b"/tmp/d/curl",
        b"/tmp/d/curl",
        exe_flag::DELETED,
        b"curl\0",
    ));
    let rec = enrich(&mut t, &connect_v4(pid + 2, start, [203, 0, 113, 9], 443));
    assert_eq!(
        rec.process.executable.as_deref(),
        Some("/tmp/d/curl (deleted)")
    );
    assert_eq!(rec.process.name.as_deref(), Some("curl"));
    t.on_exec(&resolved_exec(
        pid + 3,
        1,
        start,
        b"/dev/fd/3",
        b"/memfd:payload",
        exe_flag::PSEUDO,
        b"x\0",
    ));
    let rec = enrich(&mut t, &connect_v4(pid + 3, start, [203, 0, 113, 9], 443));
    assert_eq!(
        rec.process.executable.as_deref(),
        Some("/memfd:payload (deleted)")
    );
    assert_eq!(rec.process.name.as_deref(), Some("memfd:payload"));
}

/// A path too deep for the kernel's walk: what it got, marked, and the record partial;
/// never the exec path instead.
#[test]
fn a_truncated_executable_path_is_partial_and_never_replaced() {
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    let pid = impossible_pid() + 310;
    let start = 7_000_000_000;
    t.on_exec(&resolved_exec(
        pid,
        1,
        start,
        b"/usr/bin/firefox",
        b"/d30/d31/bin/firefox",
        exe_flag::TRUNCATED,
        b"firefox\0",
    ));
    let rec = enrich(&mut t, &connect_v4(pid, start, [203, 0, 113, 9], 443));
    assert_eq!(
        rec.process.executable.as_deref(),
        Some(".../d30/d31/bin/firefox")
    );
    assert!(rec.partial);
}

/// A subshell (fork without exec) has its parent's identity from its first instruction;
/// a connect before an exec is the old image's, the one after it the new image's; the
/// forking process may be gone by the time user space reads the events.
#[test]
fn forked_children_inherit_and_events_apply_in_kernel_order() {
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    let shell = impossible_pid() + 320;
    let child = shell + 1;
    let (shell_start, child_start) = (8_000_000_000, 8_100_000_000);
    let script = b"bash\0-c\0(echo x > /dev/udp/203.0.113.12/4444; sleep 1)\0";
    t.on_exec(&resolved_exec(
        shell,
        1,
        shell_start,
        b"/bin/bash",
        b"/usr/bin/bash",
        0,
        script,
    ));
    t.on_fork(&fork_event(child, child_start, shell, shell_start));
    t.on_exit(&exit_event(shell, shell_start));
    // The order the ring buffer gives: the child's send, its exec of sleep, a later send.
    let before = enrich(
        &mut t,
        &connect_v4(child, child_start, [203, 0, 113, 12], 4444),
    );
    t.on_exec(&resolved_exec(
        child,
        shell,
        child_start,
        b"/usr/bin/sleep",
        b"/usr/bin/sleep",
        0,
        b"sleep\x001\0",
    ));
    let after = enrich(
        &mut t,
        &connect_v4(child, child_start, [203, 0, 113, 12], 4445),
    );
    assert_eq!(before.process.executable.as_deref(), Some("/usr/bin/bash"));
    assert_eq!(before.process.name.as_deref(), Some("bash"));
    assert_eq!(before.process.args.len(), 3);
    assert_eq!(before.process.parent.pid, Some(shell));
    assert_eq!(
        before.process.parent.executable.as_deref(),
        Some("/usr/bin/bash")
    );
    assert!(!before.partial, "{before:?}");
    assert_eq!(after.process.executable.as_deref(), Some("/usr/bin/sleep"));
    assert_eq!(after.process.args, ["sleep", "1"]);
    assert_eq!(t.stats().forks_inherited, 1);

    // A fork whose forking process is unknown and gone: nothing invented.
    t.on_fork(&fork_event(child + 10, child_start, child + 9, shell_start));
    assert_eq!(t.stats().forks_unknown_source, 1);
    assert!(!t.contains(child + 10));
}

/// A port sweep from subshells: every record has the shell's executable.
#[test]
fn a_subshell_port_sweep_keeps_the_shells_identity() {
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    let shell = impossible_pid() + 400;
    let start = 9_000_000_000;
    t.on_exec(&resolved_exec(
        shell,
        1,
        start,
        b"/bin/bash",
        b"/usr/bin/bash",
        0,
        b"bash\0sweep.sh\0",
    ));
    for i in 0..50u32 {
        let kid = shell + 1 + i;
        let kid_start = start + 1_000_000 * u64::from(i + 1);
        t.on_fork(&fork_event(kid, kid_start, shell, start));
        let rec = enrich(
            &mut t,
            &connect_v4(kid, kid_start, [203, 0, 113, 20], 1000 + i as u16),
        );
        t.on_exit(&exit_event(kid, kid_start));
        assert_eq!(rec.process.executable.as_deref(), Some("/usr/bin/bash"));
        assert!(!rec.partial);
    }
}

/// The executable's SHA-256 arrives from the worker after the first records and is on every
/// record built after it; children forked later inherit it.
#[test]
fn executable_hashes_arrive_off_the_event_path() {
    use std::os::unix::fs::MetadataExt;
    let dir = std::env::temp_dir().join(format!("table-hash-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("prog");
    std::fs::write(&file, b"abc").unwrap();
    let meta = std::fs::metadata(&file).unwrap();
    let kernel_dev = (libc::major(meta.dev()) << 20) | libc::minor(meta.dev());

    let mut t = ProcessTable::new(ProcessTableConfig::default());
    let pid = impossible_pid() + 500;
    let start = 9_500_000_000;
    let mut ev = resolved_exec(
        pid,
        1,
        start,
        b"/tmp/whatever",
        file.as_os_str().as_bytes(),
        0,
        b"prog\0",
    );
    ev.exe_dev = kernel_dev;
    ev.exe_ino = meta.ino();
    t.on_exec(&ev);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let rec = loop {
        t.apply_hashes();
        let rec = enrich(&mut t, &connect_v4(pid, start, [203, 0, 113, 9], 443));
        if rec.process.hashes.is_some() || std::time::Instant::now() > deadline {
            break rec;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(rec.process.sha256(), Some(sha));
    assert_eq!(
        rec.process.hashes.as_deref(),
        Some(format!("SHA256={sha}").as_str())
    );
    t.on_fork(&fork_event(pid + 1, start + 1, pid, start));
    let child = enrich(
        &mut t,
        &connect_v4(pid + 1, start + 1, [203, 0, 113, 9], 443),
    );
    assert_eq!(child.process.sha256(), Some(sha));
    assert!(t.stats().hashes_computed >= 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A file rewritten in place keeps its device and inode: the next exec of it must not carry
/// the hash of the old content, even on its first record, and gets the new one.
#[test]
fn a_file_rewritten_in_place_never_carries_its_old_hash() {
    use std::os::unix::fs::MetadataExt;
    let dir = std::env::temp_dir().join(format!("table-rehash-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("prog");
    std::fs::write(&file, b"abc").unwrap();
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    let base = impossible_pid() + 700;
    let start = 9_700_000_000;
    // The exec record as the kernel writes it: path, device, inode, size and ctime.
    let exec = |t: &mut ProcessTable, pid: u32, start: u64| {
        let meta = std::fs::metadata(&file).unwrap();
        let mut ev = resolved_exec(
            pid,
            1,
            start,
            b"/x",
            file.as_os_str().as_bytes(),
            0,
            b"prog\0",
        );
        ev.exe_dev = (libc::major(meta.dev()) << 20) | libc::minor(meta.dev());
        ev.exe_ino = meta.ino();
        ev.exe_size = meta.len();
        ev.exe_ctime_sec = meta.ctime() as u64;
        ev.exe_ctime_nsec = meta.ctime_nsec() as u32;
        t.on_exec(&ev);
    };
    let hashed = |t: &mut ProcessTable, pid: u32, start: u64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            t.apply_hashes();
            let rec = enrich(t, &connect_v4(pid, start, [203, 0, 113, 9], 443));
            if rec.process.hashes.is_some() || std::time::Instant::now() > deadline {
                return rec.process.sha256().map(str::to_string);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    exec(&mut t, base, start);
    assert_eq!(hashed(&mut t, base, start).as_deref(), Some(abc));
    // The same content again: known at once, on the first record.
    exec(&mut t, base + 1, start + 1);
    let first = enrich(
        &mut t,
        &connect_v4(base + 1, start + 1, [203, 0, 113, 9], 443),
    );
    assert_eq!(first.process.sha256(), Some(abc));
    assert!(t.stats().hashes_known >= 1);
    // Rewritten in place (same inode), same size: the ctime differs.
    let ino = std::fs::metadata(&file).unwrap().ino();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&file, b"abd").unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().ino(), ino);
    exec(&mut t, base + 2, start + 2);
    let first = enrich(
        &mut t,
        &connect_v4(base + 2, start + 2, [203, 0, 113, 9], 443),
    );
    assert_ne!(first.process.sha256(), Some(abc), "the old content's hash");
    let abd = "a52d159f262b2c6ddb724a61840befc36eb30c88877a4030b65cbe86298449c9";
    assert_eq!(hashed(&mut t, base + 2, start + 2).as_deref(), Some(abd));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `process.ancestors`: the parent's executable first, up to where the chain is known.
#[test]
fn ancestors_list_the_executables_up_the_chain() {
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    let a = impossible_pid() + 600;
    let (b, c) = (a + 1, a + 2);
    let start = 9_600_000_000;
    // a's parent is a pid no process has: the chain ends at a.
    t.on_exec(&resolved_exec(
        a,
        a + 50,
        start,
        b"/x",
        b"/usr/sbin/sshd",
        0,
        b"sshd\0",
    ));
    t.on_exec(&resolved_exec(
        b,
        a,
        start + 10_000_000,
        b"/x",
        b"/usr/bin/bash",
        0,
        b"-bash\0",
    ));
    t.on_exec(&resolved_exec(
        c,
        b,
        start + 20_000_000,
        b"/x",
        b"/usr/bin/curl",
        0,
        b"curl\0",
    ));
    let rec = enrich(
        &mut t,
        &connect_v4(c, start + 20_000_000, [203, 0, 113, 9], 443),
    );
    assert_eq!(rec.process.ancestors, ["/usr/bin/bash", "/usr/sbin/sshd"]);
    t.on_fork(&fork_event(
        c + 1,
        start + 30_000_000,
        c,
        start + 20_000_000,
    ));
    let rec = enrich(
        &mut t,
        &connect_v4(c + 1, start + 30_000_000, [203, 0, 113, 9], 443),
    );
    assert_eq!(
        rec.process.ancestors,
        ["/usr/bin/curl", "/usr/bin/bash", "/usr/sbin/sshd"]
    );
    // The real chain of this test process reaches PID 1 through /proc.
    let me = std::process::id();
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    t.scan_proc().unwrap();
    let rec = enrich(&mut t, &connect_v4(me, start_ns(me), [203, 0, 113, 9], 443));
    assert!(
        !rec.process.ancestors.is_empty() && rec.process.ancestors.len() <= 16,
        "{:?}",
        rec.process.ancestors
    );
}
