//! The table applying exec, fork and exit records: identity, order, ancestry.

use super::*;

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
