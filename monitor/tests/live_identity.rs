//! Process identity from the kernel, end to end (root only; issue #12): the real
//! `monitor run --events` on this kernel, and processes that try to make `process.executable`
//! lie: a symlink named like a browser, `/proc/self/exe`, a memfd, a deleted file, a
//! subshell that never execs, a subshell that connects and then execs, a subshell port sweep.
//! Every one is gone long before user space could read /proc about it.
//!
//! Run: `sudo -E cargo test --release -p monitor --test live_identity -- --test-threads=1`

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use common::daemon::MonitorProcess;
use common::netns::{Listener, NS_V4, NS_V6, NetNsGuard};
use common::records::{briefs, events_to, field, is_event, str_field, u64_field};
use common::{TempDir, canonical, python3, require_program, require_root, wait_or_kill};

/// The monitor with `--events` and an empty rule directory: every event, no alerts.
fn start_monitor(rules: &TempDir) -> MonitorProcess {
    MonitorProcess::start(&[
        "--events".to_string(),
        "--rules".to_string(),
        rules.path().display().to_string(),
    ])
}

fn bash() -> String {
    canonical(&require_program(&["/usr/bin/bash", "/bin/bash"], "bash"))
}

/// Runs `program args...` to completion; returns its pid.
fn run(program: &str, args: &[&str]) -> u32 {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    let pid = child.id();
    wait_or_kill(&mut child, Duration::from_secs(20));
    pid
}

/// Events to `ip`:`port` made by `pid` or by a child of it (`process.parent.pid`).
fn events_from_tree<'a>(recs: &'a [Value], pid: u32, ip: &str, port: u16) -> Vec<&'a Value> {
    recs.iter()
        .filter(|r| {
            is_event(r)
                && (u64_field(r, "process.pid") == Some(u64::from(pid))
                    || u64_field(r, "process.parent.pid") == Some(u64::from(pid)))
                && str_field(r, "destination.ip") == Some(ip)
                && u64_field(r, "destination.port") == Some(u64::from(port))
        })
        .collect()
}

/// Every difference between `ev` and the executable and name it must carry; the record must
/// be complete (`monitor.enrichment: "full"`).
fn check_identity(ev: &Value, exe: &str, name: &str, label: &str) -> Vec<String> {
    let mut errs = Vec::new();
    for (path, want) in [("process.executable", exe), ("process.name", name)] {
        let got = str_field(ev, path);
        if got != Some(want) {
            errs.push(format!("{label}: {path} is {got:?}, expected {want:?}"));
        }
    }
    let enrichment = str_field(ev, "monitor.enrichment");
    if enrichment != Some("full") {
        errs.push(format!(
            "{label}: monitor.enrichment is {enrichment:?}, expected \"full\" ({})",
            field(ev, "process").map_or(String::new(), Value::to_string)
        ));
    }
    errs
}

fn assert_no_errors(errs: &[String], m: &MonitorProcess) {
    assert!(
        errs.is_empty(),
        "{} problem(s):\n{}\nmonitor stderr:\n{}",
        errs.len(),
        errs.join("\n"),
        m.stderr()
    );
}

/// `ln -s /usr/bin/bash DIR/firefox`, then short-lived runs of `DIR/firefox -c ...` over TCP
/// and UDP, IPv4 and IPv6: each is bash, by its file, however it was started.
#[test]
fn a_symlink_named_like_a_browser_is_reported_as_the_file_it_runs() {
    require_root("live_identity");
    let mut ns = NetNsGuard::create();
    ns.start_listeners(&[Listener::Tcp(8088), Listener::Dns(53)]);
    let rules = TempDir::new("rules");
    let dir = TempDir::new("symlink");
    let link = dir.join("firefox");
    std::os::unix::fs::symlink(bash(), &link).expect("symlink");
    let link = link.display().to_string();
    let m = start_monitor(&rules);

    let mut runs = Vec::new();
    for round in 0..5 {
        for (ip, port, script) in [
            (NS_V4, 53, format!("echo x{round} > /dev/udp/{NS_V4}/53")),
            (NS_V6, 53, format!("echo x{round} > /dev/udp/{NS_V6}/53")),
            (NS_V4, 8088, format!("exec 3<>/dev/tcp/{NS_V4}/8088")),
            (NS_V6, 8088, format!("exec 3<>/dev/tcp/{NS_V6}/8088")),
        ] {
            let pid = run(&link, &["-c", &script]);
            runs.push((pid, ip, port));
        }
    }
    let recs = m.wait_until(Duration::from_secs(15), |recs| {
        runs.iter()
            .all(|&(pid, ip, port)| !events_to(recs, pid, ip, port).is_empty())
    });
    let bash = bash();
    let mut errs = Vec::new();
    for &(pid, ip, port) in &runs {
        let label = format!("{link} {pid} -> {ip}:{port}");
        match events_to(&recs, pid, ip, port).first() {
            Some(ev) => {
                errs.extend(check_identity(ev, &bash, "bash", &label));
                if field(ev, "process.args")
                    .and_then(|a| a.get(0))
                    .and_then(Value::as_str)
                    != Some(link.as_str())
                {
                    errs.push(format!("{label}: process.args[0] is not the link's path"));
                }
            }
            None => errs.push(format!("{label}: no event")),
        }
    }
    // The hash is computed off the event path: records written before it was ready lack it,
    // later ones carry the file's SHA-256.
    let out = Command::new("sha256sum")
        .arg(&bash)
        .output()
        .expect("sha256sum");
    let want = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let hashes: Vec<&str> = runs
        .iter()
        .flat_map(|&(pid, ip, port)| events_to(&recs, pid, ip, port))
        .filter_map(|ev| str_field(ev, "process.hash.sha256"))
        .collect();
    if hashes.is_empty() || hashes.iter().any(|h| *h != want) {
        errs.push(format!(
            "process.hash.sha256: expected {want} on some records and nothing else, got {hashes:?}"
        ));
    }
    assert_no_errors(&errs, &m);
}

/// A subshell that never execs, a subshell that sends and then execs `sleep`, and a sweep of
/// 50 ports from subshells: every record is the shell's, complete.
#[test]
fn forked_children_keep_the_shells_identity_until_they_exec() {
    require_root("live_identity");
    let mut ns = NetNsGuard::create();
    ns.start_listeners(&[Listener::Dns(53)]);
    let rules = TempDir::new("rules");
    let m = start_monitor(&rules);
    let bash = bash();

    let subshell = run(&bash, &["-c", &format!("(echo x > /dev/udp/{NS_V4}/53)")]);
    let then_exec = run(
        &bash,
        &["-c", &format!("(echo x > /dev/udp/{NS_V6}/53; sleep 1)")],
    );
    // Closed ports in the namespace: each connect is refused at once.
    let sweep = run(
        &bash,
        &[
            "-c",
            &format!(
                "for port in $(seq 21000 21049); do (echo > /dev/tcp/{NS_V4}/$port) 2>/dev/null; done"
            ),
        ],
    );
    let sweep_ports: Vec<u16> = (21000..21050).collect();
    let recs = m.wait_until(Duration::from_secs(15), |recs| {
        !events_from_tree(recs, subshell, NS_V4, 53).is_empty()
            && !events_from_tree(recs, then_exec, NS_V6, 53).is_empty()
            && sweep_ports
                .iter()
                .all(|&p| !events_from_tree(recs, sweep, NS_V4, p).is_empty())
    });
    let mut errs = Vec::new();
    for (pid, ip, port, what) in [
        (subshell, NS_V4, 53, "subshell"),
        (
            then_exec,
            NS_V6,
            53,
            "subshell that execs sleep after sending",
        ),
    ] {
        let evs = events_from_tree(&recs, pid, ip, port);
        if evs.is_empty() {
            errs.push(format!("{what} (bash {pid}): no event"));
        }
        for ev in evs {
            errs.extend(check_identity(
                ev,
                &bash,
                "bash",
                &format!("{what} (bash {pid})"),
            ));
        }
    }
    for &port in &sweep_ports {
        let evs = events_from_tree(&recs, sweep, NS_V4, port);
        if evs.is_empty() {
            errs.push(format!("sweep port {port}: no event"));
        }
        for ev in evs {
            errs.extend(check_identity(
                ev,
                &bash,
                "bash",
                &format!("sweep port {port}"),
            ));
        }
    }
    if !errs.is_empty() {
        errs.push(format!(
            "events of the sweep:\n{}",
            briefs(
                recs.iter()
                    .filter(|r| { u64_field(r, "process.parent.pid") == Some(u64::from(sweep)) })
            )
        ));
    }
    assert_no_errors(&errs, &m);
}

/// python3 re-executing itself through `/proc/self/exe`; a copy of bash run from a memfd
/// (`fexecve`); a copy of bash run through a descriptor after its file was deleted; a copy
/// of bash deleted while it runs. Each as `/proc/PID/exe` named it when it exec'd.
#[test]
fn magic_links_memfds_and_deleted_files_are_named_as_proc_pid_exe_names_them() {
    require_root("live_identity");
    let mut ns = NetNsGuard::create();
    ns.start_listeners(&[Listener::Dns(53)]);
    let rules = TempDir::new("rules");
    let dir = TempDir::new("exe");
    let m = start_monitor(&rules);
    let bash = bash();
    let python = python3();
    let python_exe = canonical(&python);
    let python_name = python_exe.rsplit('/').next().unwrap().to_string();
    let send = |port: u16| format!("echo x > /dev/udp/{NS_V4}/{port}");

    let reexec = run(
        &python.display().to_string(),
        &[
            "-c",
            &format!(
                "import os; os.execv('/proc/self/exe', ['python3', '-c', \
                 \"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\
                 .sendto(b'x', ('{NS_V4}', 53))\"])"
            ),
        ],
    );
    let memfd = run(
        &python.display().to_string(),
        &[
            "-c",
            &format!(
                "import os; fd = os.memfd_create('payload', 0); \
                 os.write(fd, open('{bash}', 'rb').read()); \
                 os.execve(f'/proc/self/fd/{{fd}}', ['payload', '-c', '{}'], {{}})",
                send(54)
            ),
        ],
    );
    let unlinked_copy = dir.join("gone");
    std::fs::copy(&bash, &unlinked_copy).expect("copy bash");
    let unlinked_copy = unlinked_copy.display().to_string();
    let unlinked = run(
        &python.display().to_string(),
        &[
            "-c",
            &format!(
                "import os; fd = os.open('{unlinked_copy}', os.O_RDONLY); \
                 os.unlink('{unlinked_copy}'); \
                 os.execve(f'/proc/self/fd/{{fd}}', ['gone', '-c', '{}'], {{}})",
                send(55)
            ),
        ],
    );
    let running_copy = dir.join("mybash");
    std::fs::copy(&bash, &running_copy).expect("copy bash");
    let mut child = Command::new(&running_copy)
        .args(["-c", &format!("sleep 0.5; {}", send(56))])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the copy of bash");
    let running = child.id();
    std::thread::sleep(Duration::from_millis(150));
    std::fs::remove_file(&running_copy).expect("delete the running copy");
    wait_or_kill(&mut child, Duration::from_secs(10));
    let running_copy = running_copy.display().to_string();

    let cases = [
        (reexec, 53, python_exe.clone(), python_name.clone()),
        (
            memfd,
            54,
            "/memfd:payload (deleted)".to_string(),
            "memfd:payload".to_string(),
        ),
        (
            unlinked,
            55,
            format!("{unlinked_copy} (deleted)"),
            "gone".to_string(),
        ),
        // Deleted after its exec: the file it exec'd, as /proc/PID/exe named it then.
        (running, 56, running_copy, "mybash".to_string()),
    ];
    let recs = m.wait_until(Duration::from_secs(15), |recs| {
        cases
            .iter()
            .all(|(pid, port, ..)| !events_to(recs, *pid, NS_V4, *port).is_empty())
    });
    let mut errs = Vec::new();
    for (pid, port, exe, name) in &cases {
        let label = format!("pid {pid} -> {NS_V4}:{port}");
        match events_to(&recs, *pid, NS_V4, *port).first() {
            Some(ev) => errs.extend(check_identity(ev, exe, name, &label)),
            None => errs.push(format!("{label}: no event (expected {exe})")),
        }
    }
    assert_no_errors(&errs, &m);
}
