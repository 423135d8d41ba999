//! Records built from /proc and the kernel's connect event: parents, users, partial
//! records, pid reuse, the maps' bounds, container ids.

use super::*;

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
