//! Process identity from the kernel, end to end (root only; issue #12): the real
//! `monitor run --events` on this kernel, and processes that try to make `process.executable`
//! lie: a symlink named like a browser, `/proc/self/exe`, a memfd, a deleted file, a
//! subshell that never execs, a subshell that connects and then execs, a subshell port sweep,
//! a bind mount in a private mount namespace, a file rewritten in place (its hash), and a
//! web-shell-like process chain (ancestry and the T1505.003 rule). Every one is gone long
//! before user space could read /proc about it.
//!
//! Run: `sudo -E cargo test --release -p monitor --features host-tests --test live_identity
//! -- --test-threads=1`

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use common::daemon::MonitorProcess;
use common::netns::{Listener, NS_V4, NS_V6, NetNsGuard};
use common::records::{
    briefs, events_to, field, has_technique, is_alert, is_connection_event, str_field, u64_field,
};
use common::{TempDir, canonical, python3, require_program, require_root, wait_or_kill};

/// The monitor with `--events` and an empty rule directory: every event, no alerts.
fn start_monitor(rules: &TempDir) -> MonitorProcess {
    MonitorProcess::start(&[
        "--events".to_string(),
        "--rules".to_string(),
        rules.path().display().to_string(),
    ])
}

/// The monitor with `--events` and the built-in rule set.
fn start_monitor_with_default_rules() -> MonitorProcess {
    MonitorProcess::start(&["--events".to_string()])
}

fn sha256_of(path: &str) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum (coreutils)");
    assert!(out.status.success(), "sha256sum {path}: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
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
            is_connection_event(r)
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

/// `ln -s /usr/bin/bash DIR/firefox`, then 100 short-lived runs of `DIR/firefox -c ...`
/// over TCP (443) and UDP (53), IPv4 and IPv6, with the built-in rules: each is bash, by its
/// file, however it was started, and each is a T1043 match (browsers are excluded from
/// T1043, bash is not). T1043 groups by image, user and parent: the first match is alerted
/// at once and the summary at shutdown counts every match, so "each alerts" is the count.
#[test]
fn a_symlink_named_like_a_browser_is_reported_as_the_file_it_runs() {
    require_root("live_identity");
    let mut ns = NetNsGuard::create();
    ns.start_listeners(&[Listener::Tcp(443), Listener::Dns(53)]);
    let dir = TempDir::new("symlink");
    let link = dir.join("firefox");
    std::os::unix::fs::symlink(bash(), &link).expect("symlink");
    let link = link.display().to_string();
    let mut m = start_monitor_with_default_rules();

    let mut runs = Vec::new();
    for round in 0..25 {
        for (ip, port, script) in [
            (NS_V4, 53, format!("echo x{round} > /dev/udp/{NS_V4}/53")),
            (NS_V6, 53, format!("echo x{round} > /dev/udp/{NS_V6}/53")),
            (NS_V4, 443, format!("exec 3<>/dev/tcp/{NS_V4}/443")),
            (NS_V6, 443, format!("exec 3<>/dev/tcp/{NS_V6}/443")),
        ] {
            let pid = run(&link, &["-c", &script]);
            runs.push((pid, ip, port));
        }
    }
    assert_eq!(runs.len(), 100);
    let recs = m.wait_until(Duration::from_secs(20), |recs| {
        runs.iter()
            .all(|&(pid, ip, port)| !events_to(recs, pid, ip, port).is_empty())
    });
    let bash = bash();
    let mut errs = Vec::new();
    for &(pid, ip, port) in &runs {
        let label = format!("{link} {pid} -> {ip}:{port}");
        let evs = events_to(&recs, pid, ip, port);
        if evs.len() != 1 {
            errs.push(format!("{label}: {} events, expected 1", evs.len()));
        }
        for ev in evs {
            errs.extend(check_identity(ev, &bash, "bash", &label));
            if field(ev, "process.args")
                .and_then(|a| a.get(0))
                .and_then(Value::as_str)
                != Some(link.as_str())
            {
                errs.push(format!("{label}: process.args[0] is not the link's path"));
            }
        }
    }
    // The hash is computed off the event path: records written before it was ready lack it,
    // later ones carry the file's SHA-256.
    let want = sha256_of(&bash);
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

    // Stopping closes T1043's group window: its summary counts every match.
    let (status, _) = m.stop(Duration::from_secs(30));
    assert!(status.success(), "monitor exit {status}: {}", m.stderr());
    let recs = m.records();
    let me = u64::from(std::process::id());
    let ours = |r: &&Value| {
        is_alert(r) && has_technique(r, "T1043") && u64_field(r, "process.parent.pid") == Some(me)
    };
    let alerts: Vec<&Value> = recs.iter().filter(ours).collect();
    let firsts: Vec<&&Value> = alerts
        .iter()
        .filter(|a| field(a, "monitor.aggregate").is_none())
        .collect();
    let counted: u64 = alerts
        .iter()
        .filter_map(|a| u64_field(a, "monitor.aggregate.count"))
        .sum();
    if firsts.len() != 1 || counted != runs.len() as u64 {
        errs.push(format!(
            "T1043: {} first alert(s) and summaries counting {counted} matches; expected 1 \
             and {} (one group: bash, root, this test as parent). Alerts:\n{}",
            firsts.len(),
            runs.len(),
            briefs(alerts.iter().copied())
        ));
    }
    for a in &alerts {
        errs.extend(check_identity(a, &bash, "bash", "T1043 alert"));
    }
    if recs.iter().any(|r| {
        str_field(r, "process.executable").is_some_and(|x| x.ends_with("/firefox"))
            || str_field(r, "process.name") == Some("firefox")
    }) {
        errs.push("a record names the symlink as the executable".into());
    }
    m.assert_no_problems(&errs);
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
    m.assert_no_problems(&errs);
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
    m.assert_no_problems(&errs);
}

/// A program run in a new mount namespace from a bind mount (a directory bound over an
/// empty one, and a file bound over an empty file): the path is the one `/proc/PID/exe` gives
/// inside that namespace, the mount point, not the file's path on the host. The test asks
/// the kernel itself: each run writes `readlink /proc/$$/exe` to a file before it sends.
#[test]
fn a_bind_mounted_program_in_its_own_mount_namespace_is_named_as_proc_pid_exe_names_it() {
    require_root("live_identity");
    let unshare = require_program(&["/usr/bin/unshare", "/bin/unshare"], "util-linux");
    let mount = require_program(&["/usr/bin/mount", "/bin/mount"], "mount");
    let mut ns = NetNsGuard::create();
    ns.start_listeners(&[Listener::Dns(53)]);
    let rules = TempDir::new("rules");
    let dir = TempDir::new("mntns");
    let bash = bash();
    let bin_dir = std::path::Path::new(&bash)
        .parent()
        .expect("bash has a directory")
        .display()
        .to_string();
    let bound_dir = dir.join("bound-bin");
    std::fs::create_dir_all(&bound_dir).expect("mkdir");
    let bound_file = dir.join("bound-bash");
    std::fs::write(&bound_file, b"").expect("create the mount point file");
    let (seen_dir, seen_file) = (dir.join("seen-dir"), dir.join("seen-file"));
    let m = start_monitor(&rules);

    // Inside the namespace: bind, then run bash through the bound path; bash records what
    // the kernel says it runs, then sends. `exit $?` keeps sh from exec'ing the last command.
    let send = |port: u16, seen: &std::path::Path| {
        format!(
            "readlink /proc/$$/exe > {}; echo x > /dev/udp/{NS_V4}/{port}",
            seen.display()
        )
    };
    let script = format!(
        "{mount} --bind {bin_dir} {bd} && {bd}/bash -c '{s1}' && \
         {mount} --bind {bash} {bf} && {bf} -c '{s2}'; exit $?",
        mount = mount.display(),
        bd = bound_dir.display(),
        bf = bound_file.display(),
        s1 = send(61, &seen_dir),
        s2 = send(62, &seen_file),
    );
    let mut child = Command::new(&unshare)
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start unshare");
    let unshared = child.id();
    let status = wait_or_kill(&mut child, Duration::from_secs(20));
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "unshare --mount sh -c ... failed ({status:?}): {stderr}"
    );
    let read_seen = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .to_string()
    };
    let (want_dir, want_file) = (read_seen(&seen_dir), read_seen(&seen_file));
    // The kernel's own names are the mount points, never the host's file.
    assert_eq!(want_dir, format!("{}/bash", bound_dir.display()));
    assert_eq!(want_file, bound_file.display().to_string());

    let of_port = |recs: &[Value], port: u16| -> Vec<Value> {
        recs.iter()
            .filter(|r| {
                is_connection_event(r)
                    && str_field(r, "destination.ip") == Some(NS_V4)
                    && u64_field(r, "destination.port") == Some(u64::from(port))
                    && u64_field(r, "process.parent.pid").is_some()
            })
            .cloned()
            .collect()
    };
    let recs = m.wait_until(Duration::from_secs(15), |recs| {
        !of_port(recs, 61).is_empty() && !of_port(recs, 62).is_empty()
    });
    let mut errs = Vec::new();
    for (port, want, name) in [(61, &want_dir, "bash"), (62, &want_file, "bound-bash")] {
        let evs = of_port(&recs, port);
        if evs.is_empty() {
            errs.push(format!("port {port}: no event (expected {want})"));
        }
        for ev in &evs {
            errs.extend(check_identity(
                ev,
                want,
                name,
                &format!("bound run -> {NS_V4}:{port} (under unshare {unshared})"),
            ));
        }
    }
    m.assert_no_problems(&errs);
}

/// Runs `exe -c "echo x > /dev/udp/NS_V4/port"` until a record of one of the runs carries a
/// hash (the worker answers off the event path) or 40 runs have passed; returns every
/// record of every run.
fn runs_until_hashed(m: &MonitorProcess, exe: &str, port: u16) -> Vec<Value> {
    let mut pids = Vec::new();
    for _ in 0..40 {
        pids.push(run(
            exe,
            &["-c", &format!("echo x > /dev/udp/{NS_V4}/{port}")],
        ));
        let recs = m.wait_until(Duration::from_secs(5), |recs| {
            pids.iter()
                .all(|&p| !events_to(recs, p, NS_V4, port).is_empty())
        });
        let evs: Vec<Value> = pids
            .iter()
            .flat_map(|&p| events_to(&recs, p, NS_V4, port))
            .cloned()
            .collect();
        if evs
            .iter()
            .any(|e| str_field(e, "process.hash.sha256").is_some())
        {
            return evs;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "no record of {exe} carried process.hash.sha256 after 40 runs; monitor stderr:\n{}",
        m.stderr()
    );
}

/// `process.hash.sha256` is the SHA-256 of the file the process runs; a file rewritten in
/// place (same path, same inode, new content) gets the new hash, and no record of a process
/// started after the rewrite carries the old one.
#[test]
fn hashes_follow_a_file_rewritten_in_place() {
    require_root("live_identity");
    use std::os::unix::fs::MetadataExt as _;
    let mut ns = NetNsGuard::create();
    ns.start_listeners(&[Listener::Dns(53)]);
    let rules = TempDir::new("rules");
    let dir = TempDir::new("rehash");
    let bash = bash();
    let tool = dir.join("tool");
    std::fs::copy(&bash, &tool).expect("copy bash");
    let tool = tool.display().to_string();
    let m = start_monitor(&rules);

    let old = sha256_of(&tool);
    assert_eq!(old, sha256_of(&bash), "a copy hashes like its original");
    let mut errs = Vec::new();
    let hashes = |evs: &[Value]| -> Vec<String> {
        evs.iter()
            .filter_map(|e| str_field(e, "process.hash.sha256").map(str::to_string))
            .collect()
    };
    let before = runs_until_hashed(&m, &tool, 63);
    for ev in &before {
        errs.extend(check_identity(ev, &tool, "tool", "before the rewrite"));
    }
    if hashes(&before).iter().any(|h| *h != old) {
        errs.push(format!(
            "before the rewrite: {:?}, expected {old}",
            hashes(&before)
        ));
    }

    // In place: the same inode, truncated and written (bash with bytes appended still runs).
    let ino = std::fs::metadata(&tool).unwrap().ino();
    let mut content = std::fs::read(&bash).expect("read bash");
    content.extend_from_slice(b"\0rewritten in place by live_identity\n");
    std::fs::write(&tool, &content).expect("rewrite in place");
    assert_eq!(std::fs::metadata(&tool).unwrap().ino(), ino, "not in place");
    let new = sha256_of(&tool);
    assert_ne!(new, old);
    let after = runs_until_hashed(&m, &tool, 64);
    for ev in &after {
        errs.extend(check_identity(ev, &tool, "tool", "after the rewrite"));
    }
    if hashes(&after).iter().any(|h| *h != new) {
        errs.push(format!(
            "after the rewrite: {:?}, expected only {new} (old content: {old})",
            hashes(&after)
        ));
    }
    m.assert_no_problems(&errs);
}

/// A web shell's process chain, live: a small server (a copy of python3 installed as
/// `.../sbin/nginx`) forks a worker that never execs (a pre-forking server), the worker
/// forks and execs a shell, and the shell runs curl (a child, not an exec) to the test
/// host. curl's record lists its ancestors (sh, the worker, the master, ...) and the built-in
/// T1505.003 rule alerts on it. Near misses: the same chain under a server named
/// `appserver`; curl under nginx to loopback; and the nginx worker connecting out itself.
#[test]
fn a_shell_under_a_web_server_running_curl_has_its_ancestry_and_alerts_t1505() {
    require_root("live_identity");
    let curl = require_program(&["/usr/bin/curl", "/bin/curl"], "curl");
    let sh = canonical(&require_program(&["/bin/sh", "/usr/bin/sh"], "dash"));
    let mut ns = NetNsGuard::create();
    ns.start_listeners(&[Listener::Http(80), Listener::Tcp(8443)]);
    let dir = TempDir::new("webshell");
    let python = python3();
    let loopback = std::net::TcpListener::bind("127.0.0.1:0").expect("loopback listener");
    let loopback_port = loopback.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in loopback.incoming() {
            drop(c);
        }
    });
    let mut m = start_monitor_with_default_rules();

    // The server: master forks a worker (no exec); the worker forks a child that runs
    // `sh -c "curl ...; exit $?"` (sh stays curl's parent), then connects out itself
    // (an upstream), and reports curl's parent pid (sh) back through its exit status' file.
    let server_py = r#"
import os, socket, sys
curl, url, upstream = sys.argv[1], sys.argv[2], sys.argv[3]
worker = os.fork()
if worker == 0:
    shell = os.fork()
    if shell == 0:
        os.execv('/bin/sh', ['sh', '-c', f'{curl} -s -o /dev/null --max-time 5 {url}; exit $?'])
    os.waitpid(shell, 0)
    host, port = upstream.rsplit(':', 1)
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect((host.strip('[]'), int(port)))
    except OSError:
        pass
    s.close()
    os._exit(0)
os.waitpid(worker, 0)
"#;
    let script = dir.join("server.py");
    std::fs::write(&script, server_py).expect("write server.py");
    let run_under = |server: &str, url: &str| -> u32 {
        let sbin = dir.join(&format!("srv-{server}/sbin"));
        std::fs::create_dir_all(&sbin).expect("mkdir sbin");
        let exe = sbin.join(server);
        if !exe.exists() {
            std::fs::copy(&python, &exe).expect("copy python3 as the server");
        }
        run(
            &exe.display().to_string(),
            &[
                &script.display().to_string(),
                &curl.display().to_string(),
                url,
                &format!("{NS_V4}:8443"),
            ],
        )
    };
    let remote = format!("http://{NS_V4}/stage2");
    let runs = [
        run_under("nginx", &remote),
        run_under("appserver", &remote),
        run_under("nginx", &format!("http://127.0.0.1:{loopback_port}/")),
    ];
    let nginx_exe = dir.join("srv-nginx/sbin/nginx").display().to_string();
    let appserver_exe = dir
        .join("srv-appserver/sbin/appserver")
        .display()
        .to_string();
    let curl_exe = canonical(&curl);

    // curl's event to ip:port with `server_exe` among its ancestors (nginx is run twice, to
    // different destinations).
    let curl_event = |recs: &[Value], server_exe: &str, ip: &str, port: u16| -> Option<Value> {
        recs.iter()
            .find(|r| {
                is_connection_event(r)
                    && str_field(r, "process.executable") == Some(curl_exe.as_str())
                    && str_field(r, "destination.ip") == Some(ip)
                    && u64_field(r, "destination.port") == Some(u64::from(port))
                    && field(r, "process.ancestors")
                        .and_then(Value::as_array)
                        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(server_exe)))
            })
            .cloned()
    };
    let worker_event = |recs: &[Value], server_exe: &str| -> Option<Value> {
        recs.iter()
            .find(|r| {
                is_connection_event(r)
                    && str_field(r, "process.executable") == Some(server_exe)
                    && u64_field(r, "destination.port") == Some(8443)
            })
            .cloned()
    };
    m.wait_until(Duration::from_secs(20), |recs| {
        curl_event(recs, &nginx_exe, NS_V4, 80).is_some()
            && curl_event(recs, &appserver_exe, NS_V4, 80).is_some()
            && curl_event(recs, &nginx_exe, "127.0.0.1", loopback_port).is_some()
            && worker_event(recs, &nginx_exe).is_some()
    });
    let (status, _) = m.stop(Duration::from_secs(30));
    assert!(status.success(), "monitor exit {status}: {}", m.stderr());
    let recs = m.records();
    let mut errs = Vec::new();
    let curls = || {
        format!(
            "servers {runs:?}; curl's events:\n{}",
            briefs(recs.iter().filter(|r| {
                is_connection_event(r)
                    && str_field(r, "process.executable") == Some(curl_exe.as_str())
            }))
        )
    };
    let ancestors = |ev: &Value| -> Vec<String> {
        field(ev, "process.ancestors")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let t1505 = |ev: &Value| -> Vec<&Value> {
        let pid = u64_field(ev, "process.pid");
        recs.iter()
            .filter(|r| is_alert(r) && has_technique(r, "T1505.003"))
            .filter(|r| u64_field(r, "process.pid") == pid)
            .collect()
    };
    match curl_event(&recs, &nginx_exe, NS_V4, 80) {
        None => errs.push(format!("curl under nginx: no event; {}", curls())),
        Some(ev) => {
            errs.extend(check_identity(&ev, &curl_exe, "curl", "curl under nginx"));
            let a = ancestors(&ev);
            // sh, the worker (nginx, forked without exec), the master (nginx), then this test.
            if a.len() < 3 || a[0] != sh || a[1] != nginx_exe || a[2] != nginx_exe {
                errs.push(format!(
                    "curl under nginx: process.ancestors {a:?}, expected [{sh}, {nginx_exe}, \
                     {nginx_exe}, ...]"
                ));
            }
            if str_field(&ev, "process.parent.executable") != Some(sh.as_str()) {
                errs.push(format!(
                    "curl under nginx: process.parent.executable {:?}, expected {sh}",
                    str_field(&ev, "process.parent.executable")
                ));
            }
            if t1505(&ev).is_empty() {
                errs.push(format!(
                    "curl under nginx: no T1505.003 alert; alerts:\n{}",
                    briefs(recs.iter().filter(|r| is_alert(r)))
                ));
            }
        }
    }
    match curl_event(&recs, &appserver_exe, NS_V4, 80) {
        None => errs.push(format!("curl under appserver: no event; {}", curls())),
        Some(ev) => {
            let a = ancestors(&ev);
            if a.get(1) != Some(&appserver_exe) {
                errs.push(format!("curl under appserver: process.ancestors {a:?}"));
            }
            if !t1505(&ev).is_empty() {
                errs.push("curl under appserver: a T1505.003 alert (near miss)".into());
            }
        }
    }
    match curl_event(&recs, &nginx_exe, "127.0.0.1", loopback_port) {
        None => errs.push(format!(
            "curl under nginx to loopback: no event; {}",
            curls()
        )),
        Some(ev) => {
            if ancestors(&ev).get(1) != Some(&nginx_exe) {
                errs.push(format!(
                    "curl under nginx to loopback: process.ancestors {:?}",
                    ancestors(&ev)
                ));
            }
            if !t1505(&ev).is_empty() {
                errs.push("curl under nginx to loopback: a T1505.003 alert (near miss)".into());
            }
        }
    }
    match worker_event(&recs, &nginx_exe) {
        None => errs.push("the nginx worker's own upstream connect: no event".into()),
        Some(ev) => {
            if !t1505(&ev).is_empty() {
                errs.push("the nginx worker's own connect: a T1505.003 alert (near miss)".into());
            }
        }
    }
    m.assert_no_problems(&errs);
}
