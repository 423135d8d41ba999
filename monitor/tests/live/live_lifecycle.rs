//! Connection lifecycle, end to end (root only, issue #14): the real `monitor run --events
//! --lifecycle` on this kernel, real python3, curl and nc against a test host in a network
//! namespace. Each connect's outcome (established, refused, timed out, unreachable, closed
//! before either), a transfer's bytes against `ss -ti` and its duration, listens and
//! accepts, the bind-shell rule on them, and UDP flow summaries (each way, at the close and
//! after the idle period) against a UDP echo server.
//!
//! Run: `sudo -E cargo test --release -p monitor --features host-tests --test live_lifecycle
//! -- --test-threads=1`

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use common::daemon::MonitorProcess;
use common::netns::{HOST_V4, Listener, NS_V4, NetNsGuard};
use common::records::{alerts_for, briefs, events_of, field, records_of, str_field, u64_field};
use common::{TempDir, python3, require_program, require_root, run_ok, wait_or_kill};

/// Addresses routed to the test host that it drops (a blackhole route: no answer at all)
/// or refuses with ICMP host unreachable (an `unreachable` route, forwarding on).
const DROPPED_V4: &str = "198.51.100.50";
const UNREACHABLE_V4: &str = "198.51.100.60";
/// The test host's closed port: a SYN there is answered with a reset.
const CLOSED_PORT: u16 = 9;
const OPEN_PORT: u16 = 8088;

fn start_monitor(rules: &[String]) -> MonitorProcess {
    let mut args = vec!["--events".to_string(), "--lifecycle".to_string()];
    for r in rules {
        args.push("--rules".into());
        args.push(r.clone());
    }
    MonitorProcess::start(&args)
}

/// Runs a python3 script to the end (at most `limit`); its pid and standard output.
fn python(script: &str, limit: Duration) -> (u32, String) {
    let mut child = Command::new(python3())
        .args(["-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    let pid = child.id();
    let status = wait_or_kill(&mut child, limit);
    let out = child.wait_with_output().expect("python3 output");
    assert!(
        status.is_some(),
        "python3 did not finish within {limit:?}: {script}"
    );
    (pid, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The records of `action` from `pid`.
fn of_action<'a>(recs: &'a [Value], pid: u32, action: &str) -> Vec<&'a Value> {
    records_of(recs, pid)
        .into_iter()
        .filter(|r| str_field(r, "event.action") == Some(action))
        .collect()
}

/// The namespace with an HTTP listener, a dropping and an unreachable route.
fn test_host() -> NetNsGuard {
    let mut ns = NetNsGuard::create();
    ns.start_listeners(&[Listener::Tcp(OPEN_PORT)]);
    let name = ns.name().to_string();
    run_ok(Command::new("ip").args([
        "netns",
        "exec",
        &name,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ]));
    for (kind, addr) in [("blackhole", DROPPED_V4), ("unreachable", UNREACHABLE_V4)] {
        run_ok(Command::new("ip").args(["-n", &name, "route", "add", kind, &format!("{addr}/32")]));
        run_ok(Command::new("ip").args(["route", "add", &format!("{addr}/32"), "via", NS_V4]));
    }
    ns
}

/// Removes the host routes `test_host` added (the namespace's go with it).
fn remove_routes() {
    for addr in [DROPPED_V4, UNREACHABLE_V4] {
        let _ = Command::new("ip")
            .args(["route", "del", &format!("{addr}/32")])
            .status();
    }
}

#[test]
fn every_connect_outcome_is_reported_and_joined_to_its_connect() {
    require_root("live_lifecycle");
    let ns = test_host();
    let rules = TempDir::new("lifecycle-rules");
    let monitor = start_monitor(&[rules.path().display().to_string()]);

    // (ip, port, script options, expected outcome, reason, error.code)
    let connect = |ip: &str, port: u16, extra: &str, timeout: f64| {
        format!(
            "import socket; s=socket.socket(); {extra}s.settimeout({timeout})\n\
             try:\n    s.connect(('{ip}', {port})); print('ok')\n\
             except Exception as e:\n    print(type(e).__name__, e)\n\
             s.close()"
        )
    };
    // TCP_SYNCNT 1: the kernel gives up after one retry (about 3 s), before Python's 10 s.
    let syncnt = "s.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1); ";
    // (address, port, client script, event.outcome, monitor.outcome_reason, error.code)
    type Case<'a> = (&'a str, u16, String, &'a str, &'a str, Option<&'a str>);
    let cases: [Case; 5] = [
        (
            NS_V4,
            OPEN_PORT,
            connect(NS_V4, OPEN_PORT, "", 5.0),
            "success",
            "established",
            None,
        ),
        (
            NS_V4,
            CLOSED_PORT,
            connect(NS_V4, CLOSED_PORT, "", 5.0),
            "failure",
            "refused",
            Some("ECONNREFUSED"),
        ),
        (
            DROPPED_V4,
            80,
            connect(DROPPED_V4, 80, syncnt, 10.0),
            "failure",
            "timed-out",
            Some("ETIMEDOUT"),
        ),
        // A blocking connect: the kernel decides (a non-blocking one may read the ICMP error
        // itself and close first: then the result is `aborted`, unless `sk_err_soft` still
        // holds it).
        (
            UNREACHABLE_V4,
            80,
            connect(UNREACHABLE_V4, 80, "", -1.0).replace("s.settimeout(-1)", "s.settimeout(None)"),
            "failure",
            "host-unreachable",
            Some("EHOSTUNREACH"),
        ),
        // The process gives up (Python's 0.5 s timeout) before the kernel does.
        (
            DROPPED_V4,
            81,
            connect(DROPPED_V4, 81, "", 0.5),
            "failure",
            "aborted",
            None,
        ),
    ];
    let mut seen = Vec::new();
    for (ip, port, script, outcome, reason, code) in &cases {
        let (pid, out) = python(script, Duration::from_secs(20));
        seen.push((pid, *ip, *port, *outcome, *reason, *code, out));
    }
    let pids: Vec<u32> = seen.iter().map(|s| s.0).collect();
    let recs = monitor.wait_until(Duration::from_secs(10), |recs| {
        pids.iter()
            .all(|&p| !of_action(recs, p, "connect-result").is_empty())
    });
    remove_routes();
    drop(ns);
    for (pid, ip, port, outcome, reason, code, out) in &seen {
        let mine = records_of(&recs, *pid);
        let connects = of_action(&recs, *pid, "connect");
        let results = of_action(&recs, *pid, "connect-result");
        assert!(
            connects.len() == 1 && results.len() == 1,
            "{reason} ({ip}:{port}, python said {out:?}): one connect and one result expected:\n{}\nstderr:\n{}",
            briefs(mine.iter().copied()),
            monitor.stderr()
        );
        let (c, r) = (connects[0], results[0]);
        let id = str_field(c, "monitor.connection_id");
        assert!(id.is_some(), "connect without an id: {c}");
        assert_eq!(
            str_field(r, "monitor.connection_id"),
            id,
            "ids differ:\n{c}\n{r}"
        );
        assert_eq!(str_field(r, "event.outcome"), Some(*outcome), "{r}");
        assert_eq!(
            str_field(r, "monitor.outcome_reason"),
            Some(*reason),
            "python said {out:?}: {r}"
        );
        assert_eq!(str_field(r, "error.code"), *code, "{r}");
        assert_eq!(str_field(r, "destination.ip"), Some(*ip), "{r}");
        assert_eq!(
            u64_field(r, "destination.port"),
            Some(u64::from(*port)),
            "{r}"
        );
        assert_eq!(
            str_field(r, "process.name"),
            str_field(c, "process.name"),
            "{r}"
        );
        assert!(u64_field(r, "event.duration").is_some(), "{r}");
    }
    // The established connection also ended, with the same id.
    let (pid, ..) = &seen[0];
    let closes = of_action(&recs, *pid, "close");
    assert_eq!(closes.len(), 1, "{}", briefs(records_of(&recs, *pid)));
    assert_eq!(
        str_field(closes[0], "monitor.connection_id"),
        str_field(
            of_action(&recs, *pid, "connect")[0],
            "monitor.connection_id"
        )
    );
    let types = common::records::field(closes[0], "event.type").cloned();
    assert_eq!(
        types,
        Some(serde_json::json!(["connection", "end"])),
        "{}",
        closes[0]
    );
}

#[test]
fn a_transfer_reports_the_bytes_ss_shows_and_its_duration() {
    require_root("live_lifecycle");
    require_program(&["/usr/bin/ss", "/bin/ss", "/sbin/ss"], "iproute2");
    let mut ns = NetNsGuard::create();
    ns.start_listeners(&[Listener::Tcp(OPEN_PORT)]);
    let rules = TempDir::new("lifecycle-rules");
    let monitor = start_monitor(&[rules.path().display().to_string()]);
    const SIZE: usize = 3_000_000;
    // Sends SIZE bytes, waits for them to be acknowledged, asks ss (while the connection is
    // up), then closes with a reset (SO_LINGER 0), so that the kernel's end of the
    // connection is the close() call itself; prints ss's line and the time from just
    // before connect() to just after close(), in ns.
    let script = format!(
        "import socket, struct, subprocess, time\n\
         s = socket.socket()\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n\
         t0 = time.monotonic_ns()\n\
         s.connect(('{NS_V4}', {OPEN_PORT}))\n\
         s.sendall(b'x' * {SIZE})\n\
         port = s.getsockname()[1]\n\
         for _ in range(100):\n    \
             out = subprocess.run(['ss', '-tinH', 'sport = :%d' % port], capture_output=True, text=True).stdout\n    \
             if 'bytes_acked:{}' in out: break\n    \
             time.sleep(0.05)\n\
         s.close()\n\
         t1 = time.monotonic_ns()\n\
         print(out.replace('\\n', ' '))\n\
         print(t1 - t0)",
        SIZE + 1
    );
    let (pid, out) = python(&script, Duration::from_secs(30));
    let recs = monitor.wait_until(Duration::from_secs(10), |recs| {
        !of_action(recs, pid, "close").is_empty()
    });
    drop(ns);
    let mut lines = out.lines();
    let ss_line = lines.next().unwrap_or_default().to_string();
    let elapsed: u64 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("python3 printed no time: {out:?}"));
    let ss_value = |key: &str| -> u64 {
        ss_line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in ss's line: {ss_line:?}"))
    };
    let acked = ss_value("bytes_acked:");
    let closes = of_action(&recs, pid, "close");
    assert_eq!(closes.len(), 1, "{}", briefs(records_of(&recs, pid)));
    let c = closes[0];
    let sent = u64_field(c, "source.bytes").expect("source.bytes");
    let within = |a: u64, b: u64| (a as f64 - b as f64).abs() <= b as f64 * 0.01;
    assert!(
        within(sent, acked),
        "source.bytes {sent} vs ss bytes_acked {acked}: {c}"
    );
    assert!(u64_field(c, "destination.bytes").is_some(), "{c}");
    assert!(u64_field(c, "source.packets").unwrap_or(0) > 0, "{c}");
    assert!(u64_field(c, "destination.packets").unwrap_or(0) > 0, "{c}");
    assert_eq!(
        u64_field(c, "network.bytes"),
        Some(sent + u64_field(c, "destination.bytes").unwrap()),
        "{c}"
    );
    let duration = u64_field(c, "event.duration").expect("event.duration");
    // The kernel's span runs from the connect to the close; the script's from just before
    // connect() to just after close(): within 10 ms of each other.
    assert!(
        duration.abs_diff(elapsed) <= 10_000_000,
        "event.duration {duration} ns vs {elapsed} ns measured by the client: {c}"
    );
    assert_eq!(str_field(c, "network.direction"), Some("egress"), "{c}");
}

/// A python3 beacon with `--lifecycle`: ten check-ins 5.5 s apart to the test host, each
/// sending the same 480-byte request. The close of each connect joins its beacon key by
/// `monitor.connection_id` in the live pipeline, so the beacon alert at the 10th check-in
/// carries the sizes of the connections before it (DETECTION.md, "Data sizes").
#[test]
fn a_live_beacon_alert_carries_the_bytes_of_its_closes() {
    require_root("live_lifecycle");
    let mut ns = NetNsGuard::create();
    ns.start_listeners(&[Listener::Tcp(OPEN_PORT)]);
    let rules = TempDir::new("lifecycle-rules");
    let monitor = start_monitor(&[rules.path().display().to_string()]);
    let script = format!(
        "import socket, time\n\
         for i in range(10):\n    \
             t = time.monotonic()\n    \
             s = socket.create_connection(('{NS_V4}', {OPEN_PORT}), timeout=5)\n    \
             s.sendall(b'x' * 480)\n    \
             time.sleep(0.2)\n    \
             s.close()\n    \
             if i < 9: time.sleep(5.5 - (time.monotonic() - t))"
    );
    let (pid, _) = python(&script, Duration::from_secs(90));
    let pids = BTreeSet::from([pid]);
    let recs = monitor.wait_until(Duration::from_secs(10), |recs| {
        alerts_for(recs, &pids)
            .iter()
            .any(|a| str_field(a, "monitor.detector") == Some("beacon"))
    });
    drop(ns);
    let beacons: Vec<_> = alerts_for(&recs, &pids)
        .into_iter()
        .filter(|a| str_field(a, "monitor.detector") == Some("beacon"))
        .collect();
    assert_eq!(beacons.len(), 1, "{}", briefs(records_of(&recs, pid)));
    let a = beacons[0];
    assert_eq!(u64_field(a, "monitor.beacon.connections"), Some(10), "{a}");
    // The closes of the 2nd to the 9th connect; each sent 480 bytes, plus the FIN's
    // sequence number (`source.bytes` counts it, as `ss -ti` does).
    assert_eq!(u64_field(a, "monitor.beacon.sizes"), Some(8), "{a}");
    let median = field(a, "monitor.beacon.median_bytes").and_then(Value::as_f64);
    assert!(
        median.is_some_and(|m| (480.0..=482.0).contains(&m)),
        "median_bytes {median:?}: {a}"
    );
    assert_eq!(
        field(a, "monitor.beacon.size_jitter").and_then(Value::as_f64),
        Some(0.0),
        "{a}"
    );
    let closes = of_action(&recs, pid, "close");
    assert!(closes.len() >= 9, "{}", briefs(records_of(&recs, pid)));
}

/// Waits for a TCP listener on `port` in this namespace (ss), so the test connects after
/// the listen.
fn wait_listening(port: u16) {
    for _ in 0..100 {
        let out = Command::new("ss")
            .args(["-tlnH", &format!("sport = :{port}")])
            .output()
            .expect("run ss");
        if !out.stdout.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listened on port {port} within 5 s");
}

#[test]
fn listens_and_accepts_name_the_listener_and_the_bind_shell_rule_fires_for_nc_only() {
    require_root("live_lifecycle");
    let nc = require_program(&["/usr/bin/nc", "/bin/nc"], "netcat-openbsd");
    let ns = NetNsGuard::create();
    let dir = TempDir::new("lifecycle-bind");
    // A stand-in for a system daemon an operator excludes: the exclusion list is extended
    // by a file of its own, as rules/README.md says.
    let daemon = dir.join("sysdaemon.py");
    std::fs::write(
        &daemon,
        "import socket, time\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('0.0.0.0', 4555)); s.listen(); time.sleep(3)\n",
    )
    .unwrap();
    let local = dir.join("local-exclusions.yml");
    std::fs::write(
        &local,
        format!(
            "lists:\n  bind_shell_excluded_commands:\n    - '^\\S*python3\\S* {}$'\n",
            regex_escape(&daemon.display().to_string())
        ),
    )
    .unwrap();
    let repo_rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules");
    let monitor = start_monitor(&[repo_rules.to_string(), local.display().to_string()]);

    let mut nc_child = Command::new(&nc)
        .args(["-l", "-p", "4444"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nc");
    let mut http = Command::new(python3())
        .args(["-m", "http.server", "8765", "--bind", "0.0.0.0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start http.server");
    let mut sysd = Command::new(python3())
        .arg(&daemon)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the stand-in daemon");
    wait_listening(4444);
    wait_listening(8765);
    wait_listening(4555);
    // UDP: a bind to a port is a listen (python3 on 4446: the rule fires); a client's bind
    // to port 0, where the kernel picks the port, is not (no listen, no alert).
    let (udp_server_pid, _) = python(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('0.0.0.0', 4446)); s.close()",
        Duration::from_secs(10),
    );
    let (udp_client_pid, udp_client_out) = python(
        &format!(
            "import socket\nc = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             c.bind(('0.0.0.0', 0)); c.sendto(b'x', ('{NS_V4}', 9)); \
             print(c.getsockname()[1], flush=True); c.close()"
        ),
        Duration::from_secs(10),
    );
    let udp_client_port: u64 = udp_client_out.trim().parse().expect("the client's port");
    // From the test namespace to the host.
    for port in [4444u16, 8765] {
        let script = format!(
            "import socket; s=socket.create_connection(('{HOST_V4}', {port}), timeout=5); \
             s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); s.close()"
        );
        let st = ns
            .exec(&python3())
            .args(["-c", &script])
            .status()
            .expect("client in the namespace");
        assert!(st.success(), "client to {port} failed");
    }
    let (nc_pid, http_pid, sysd_pid) = (nc_child.id(), http.id(), sysd.id());
    let recs = monitor.wait_until(Duration::from_secs(10), |recs| {
        !of_action(recs, nc_pid, "accept").is_empty()
            && !of_action(recs, http_pid, "accept").is_empty()
            && !of_action(recs, sysd_pid, "listen").is_empty()
            && !of_action(recs, udp_server_pid, "listen").is_empty()
            && !of_action(recs, udp_client_pid, "flow").is_empty()
    });
    let _ = nc_child.kill();
    let _ = http.kill();
    let _ = wait_or_kill(&mut sysd, Duration::from_secs(5));
    let _ = nc_child.wait();
    let _ = http.wait();
    drop(ns);
    for (pid, port, what) in [(nc_pid, 4444u64, "nc"), (http_pid, 8765, "http.server")] {
        let listens = of_action(&recs, pid, "listen");
        let accepts = of_action(&recs, pid, "accept");
        assert!(
            !listens.is_empty() && !accepts.is_empty(),
            "{what}: listen and accept expected:\n{}\nstderr:\n{}",
            briefs(records_of(&recs, pid)),
            monitor.stderr()
        );
        let l = listens[0];
        assert_eq!(u64_field(l, "destination.port"), Some(port), "{l}");
        assert_eq!(str_field(l, "network.direction"), Some("ingress"), "{l}");
        let a = accepts[0];
        assert_eq!(u64_field(a, "destination.port"), Some(port), "{a}");
        assert_eq!(str_field(a, "source.ip"), Some(NS_V4), "{a}");
        assert_eq!(str_field(a, "network.direction"), Some("ingress"), "{a}");
        assert!(str_field(a, "monitor.connection_id").is_some(), "{a}");
    }
    let bind_shell = |pid: u32| -> Vec<&Value> {
        alerts_for(&recs, &BTreeSet::from([pid]))
            .into_iter()
            .filter(|a| str_field(a, "rule.id") == Some("2b7f3c1e-6a4d-4f0b-9c21-7e5d8a9b4c30"))
            .collect()
    };
    let nc_alerts = bind_shell(nc_pid);
    assert!(
        nc_alerts
            .iter()
            .any(|a| str_field(a, "event.action") == Some("listen"))
            && nc_alerts
                .iter()
                .any(|a| str_field(a, "event.action") == Some("accept")),
        "the bind-shell rule must fire on nc's listen and accept:\n{}",
        briefs(alerts_for(&recs, &BTreeSet::from([nc_pid])))
    );
    assert!(
        bind_shell(sysd_pid).is_empty(),
        "the excluded daemon must not alert: {}",
        briefs(bind_shell(sysd_pid))
    );
    assert!(!of_action(&recs, sysd_pid, "listen").is_empty());
    let udp_listen = of_action(&recs, udp_server_pid, "listen");
    assert!(
        udp_listen
            .iter()
            .any(|l| u64_field(l, "destination.port") == Some(4446)
                && str_field(l, "network.transport") == Some("udp")),
        "python3's UDP bind to 4446 must be a listen:\n{}",
        briefs(records_of(&recs, udp_server_pid))
    );
    assert!(
        bind_shell(udp_server_pid)
            .iter()
            .any(|a| str_field(a, "event.action") == Some("listen")),
        "the bind-shell rule must fire on python3's UDP bind to 4446"
    );
    assert!(
        of_action(&recs, udp_client_pid, "listen").is_empty()
            && bind_shell(udp_client_pid).is_empty(),
        "a bind to port 0 (the kernel picked {udp_client_port}) is a client's, not a \
         listen:\n{}",
        briefs(records_of(&recs, udp_client_pid))
    );
    // Its send is still reported, and its flow from the port the kernel picked.
    assert!(
        !events_of(&recs, udp_client_pid).is_empty()
            && records_of(&recs, udp_client_pid).iter().any(|e| {
                str_field(e, "event.action") == Some("flow")
                    && u64_field(e, "source.port") == Some(udp_client_port)
            }),
        "no record from port {udp_client_port}: {:#?}",
        records_of(&recs, udp_client_pid)
    );
    // The outbound T1571 rule stays quiet on listens and accepts.
    let t1571: Vec<&Value> = alerts_for(&recs, &BTreeSet::from([nc_pid]))
        .into_iter()
        .filter(|a| str_field(a, "rule.id") == Some("5e084fc2-22bb-4e3d-a8f4-8f75414a6e3a"))
        .collect();
    assert!(t1571.is_empty(), "{}", briefs(t1571));
}

#[test]
fn lifecycle_records_replay_as_they_were_written() {
    require_root("live_lifecycle");
    let mut ns = NetNsGuard::create();
    ns.start_listeners(&[Listener::Tcp(OPEN_PORT)]);
    let rules = TempDir::new("lifecycle-rules");
    let monitor = start_monitor(&[rules.path().display().to_string()]);
    let (pid, _) = python(
        &format!(
            "import socket; s=socket.create_connection(('{NS_V4}', {OPEN_PORT}), timeout=5); \
             s.sendall(b'hello'); s.close()\n\
             t=socket.socket()\ntry: t.connect(('{NS_V4}', {CLOSED_PORT}))\nexcept OSError: pass"
        ),
        Duration::from_secs(20),
    );
    let recs = monitor.wait_until(Duration::from_secs(10), |recs| {
        of_action(recs, pid, "connect-result").len() == 2
            && !of_action(recs, pid, "close").is_empty()
    });
    drop(ns);
    let lines: Vec<String> = records_of(&recs, pid)
        .into_iter()
        .map(|r| r.to_string())
        .collect();
    assert!(lines.len() >= 5, "{lines:#?}");
    // Each live line decodes (replay's reader) and writes back (the live writer) to the
    // same document: what replay feeds the pipeline is what the live run had.
    for line in &lines {
        let rec = monitor::record::ConnectionRecord::from_json_line(line)
            .unwrap_or_else(|e| panic!("replay refused {line}: {e}"))
            .unwrap_or_else(|| panic!("replay skipped {line}"));
        let back: Value = serde_json::from_str(rec.to_json_line().trim_end()).unwrap();
        let mut live: Value = serde_json::from_str(line).unwrap();
        // `event.id` is the output's (a run's prefix and sequence), not part of the record
        // the reader makes: every live record has one, and the rest must match.
        let id = live["event"]
            .as_object_mut()
            .and_then(|e| e.remove("id"))
            .unwrap_or_else(|| panic!("a live record without event.id: {line}"));
        assert!(id.is_string(), "{line}");
        assert_eq!(back, live, "replayed record differs from the live one");
    }
    let input = rules.join("recorded.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = Command::new(common::daemon::MONITOR)
        .args(["replay", "--rules"])
        .arg(rules.path())
        .arg(&input)
        .output()
        .expect("monitor replay");
    assert!(
        out.status.success(),
        "replay refused live lifecycle records: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The UDP echo port of `udp_echo_host`: each datagram comes back with `ECHO_EXTRA` more
/// bytes, so each direction's count is known.
const ECHO_PORT: u16 = 5300;
const ECHO_EXTRA: u64 = 2;
/// The idle period the flow tests configure (`udp_flow_idle_secs`).
const FLOW_IDLE_SECS: u64 = 2;

/// A UDP echo server in the test namespace (python3, unconnected, `recvfrom`/`sendto`);
/// killed by the caller. Ready when it printed its line.
fn udp_echo_host(ns: &NetNsGuard) -> std::process::Child {
    let script = format!(
        "import socket, sys\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('{NS_V4}', {ECHO_PORT}))\n\
         print('ready', flush=True)\n\
         while True:\n    d, a = s.recvfrom(65535)\n    s.sendto(d + b'!' * {ECHO_EXTRA}, a)\n"
    );
    let mut child = ns
        .exec(&python3())
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the UDP echo server");
    let mut line = String::new();
    let out = child.stdout.take().expect("echo server stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line)
        .expect("read the echo server's ready line");
    assert_eq!(line.trim(), "ready", "UDP echo server did not start");
    child
}

/// `monitor run --events [--lifecycle]` with the idle period `FLOW_IDLE_SECS`.
fn start_flow_monitor(rules: &TempDir, lifecycle: bool) -> MonitorProcess {
    let config = rules.join("flow.toml");
    // `--events` turns the lifecycle on unless the file says otherwise.
    std::fs::write(
        &config,
        format!("udp_flow_idle_secs = {FLOW_IDLE_SECS}\nlifecycle = {lifecycle}\n"),
    )
    .unwrap();
    let mut args = vec![
        "--events".to_string(),
        "--config".to_string(),
        config.display().to_string(),
        "--rules".to_string(),
        rules.path().display().to_string(),
    ];
    if lifecycle {
        args.push("--lifecycle".to_string());
    }
    MonitorProcess::start(&args)
}

/// The client: socket A unconnected (`sendto`/`recvfrom`) sends `A_SIZES` and closes; socket
/// B connected (`send`/`recv`) sends `B_SIZES` and stays open past the idle period. Prints
/// both local ports.
const A_SIZES: [u64; 3] = [10, 200, 1000];
const B_SIZES: [u64; 2] = [7, 70];

fn flow_client(keep_b_open: Duration) -> (u32, u16, u16) {
    let list = |sizes: &[u64]| {
        sizes
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let script = format!(
        "import socket, time\n\
         a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.settimeout(5)\n\
         for n in [{a}]:\n    a.sendto(b'a' * n, ('{NS_V4}', {ECHO_PORT})); a.recvfrom(65535)\n\
         b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.settimeout(5)\n\
         b.connect(('{NS_V4}', {ECHO_PORT}))\n\
         for n in [{b}]:\n    b.send(b'b' * n); b.recv(65535)\n\
         print(a.getsockname()[1], b.getsockname()[1], flush=True)\n\
         a.close()\n\
         time.sleep({keep})\n\
         b.close()\n",
        a = list(&A_SIZES),
        b = list(&B_SIZES),
        keep = keep_b_open.as_secs_f64(),
    );
    let (pid, out) = python(&script, keep_b_open + Duration::from_secs(20));
    let ports: Vec<u16> = out
        .split_whitespace()
        .map(|p| p.parse().expect("a port"))
        .collect();
    assert_eq!(ports.len(), 2, "client output: {out:?}");
    (pid, ports[0], ports[1])
}

/// Flow records of `pid` whose `end` (source or destination, by `side`) has `port`.
fn flows_with_port<'a>(recs: &'a [Value], pid: u32, side: &str, port: u16) -> Vec<&'a Value> {
    of_action(recs, pid, "flow")
        .into_iter()
        .filter(|r| u64_field(r, &format!("{side}.port")) == Some(u64::from(port)))
        .collect()
}

/// Each live line decodes (replay's reader) and writes back (the live writer) to the same
/// document, and `monitor replay` takes them all.
fn assert_replays_as_written(lines: &[String], rules: &TempDir) {
    for line in lines {
        let rec = monitor::record::ConnectionRecord::from_json_line(line)
            .unwrap_or_else(|e| panic!("replay refused {line}: {e}"))
            .unwrap_or_else(|| panic!("replay skipped {line}"));
        let back: Value = serde_json::from_str(rec.to_json_line().trim_end()).unwrap();
        let mut live: Value = serde_json::from_str(line).unwrap();
        let id = live["event"]
            .as_object_mut()
            .and_then(|e| e.remove("id"))
            .unwrap_or_else(|| panic!("a live record without event.id: {line}"));
        assert!(id.is_string(), "{line}");
        assert_eq!(back, live, "replayed record differs from the live one");
    }
    let input = rules.join("recorded-flows.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = Command::new(common::daemon::MONITOR)
        .args(["replay", "--events", "--rules"])
        .arg(rules.path())
        .arg(&input)
        .output()
        .expect("monitor replay");
    assert!(
        out.status.success(),
        "replay refused live flow records: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| str_field(v, "event.action") == Some("flow"))
        .map(|mut v| {
            v["event"].as_object_mut().map(|e| e.remove("id"));
            v
        })
        .collect();
    let live: Vec<Value> = lines
        .iter()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["event"].as_object_mut().map(|e| e.remove("id"));
            v
        })
        .collect();
    assert_eq!(
        replayed, live,
        "monitor replay --events wrote other flow records"
    );
}

#[test]
fn udp_flows_count_each_way_at_close_and_after_the_idle_period_and_replay_as_written() {
    require_root("live_lifecycle");
    let ns = NetNsGuard::create();
    let mut echo = udp_echo_host(&ns);
    let rules = TempDir::new("udp-flow-rules");
    let monitor = start_flow_monitor(&rules, true);
    let keep_b = Duration::from_secs(FLOW_IDLE_SECS * 3);
    let (pid, a_port, b_port) = flow_client(keep_b);
    let echo_pid = echo.id();
    let recs = monitor.wait_until(Duration::from_secs(15), |recs| {
        flows_with_port(recs, pid, "source", a_port).len() == 1
            && flows_with_port(recs, pid, "source", b_port).len() == 1
            && !flows_with_port(recs, echo_pid, "source", a_port).is_empty()
    });
    let _ = echo.kill();
    let _ = echo.wait();
    drop(ns);
    let sent = |sizes: &[u64]| sizes.iter().sum::<u64>();
    let back = |sizes: &[u64]| sizes.iter().map(|n| n + ECHO_EXTRA).sum::<u64>();
    let shown = || briefs(of_action(&recs, pid, "flow"));
    // (socket's port, sizes sent, expected end)
    for (port, sizes, end) in [
        (a_port, &A_SIZES[..], "close"),
        (b_port, &B_SIZES[..], "idle"),
    ] {
        let flows = flows_with_port(&recs, pid, "source", port);
        assert_eq!(flows.len(), 1, "one summary for port {port}: {}", shown());
        let f = flows[0];
        let n = sizes.len() as u64;
        assert_eq!(str_field(f, "event.action"), Some("flow"));
        assert_eq!(
            f["event"]["type"],
            serde_json::json!(["connection", "end"]),
            "{f}"
        );
        assert_eq!(str_field(f, "network.transport"), Some("udp"), "{f}");
        assert_eq!(str_field(f, "network.direction"), Some("egress"), "{f}");
        assert_eq!(str_field(f, "monitor.flow_end"), Some(end), "{f}");
        assert_eq!(str_field(f, "destination.ip"), Some(NS_V4), "{f}");
        assert_eq!(u64_field(f, "destination.port"), Some(u64::from(ECHO_PORT)));
        assert_eq!(u64_field(f, "source.bytes"), Some(sent(sizes)), "{f}");
        assert_eq!(u64_field(f, "source.packets"), Some(n), "{f}");
        assert_eq!(u64_field(f, "destination.bytes"), Some(back(sizes)), "{f}");
        assert_eq!(u64_field(f, "destination.packets"), Some(n), "{f}");
        assert_eq!(
            u64_field(f, "network.bytes"),
            Some(sent(sizes) + back(sizes)),
            "{f}"
        );
        assert!(u64_field(f, "event.duration").is_some_and(|d| d > 0), "{f}");
        assert!(str_field(f, "monitor.connection_id").is_some(), "{f}");
        assert!(
            str_field(f, "process.executable").is_some_and(|e| e.contains("python3")),
            "{f}"
        );
    }
    // The two sockets are two flows with two ids.
    let id = |port| {
        str_field(
            flows_with_port(&recs, pid, "source", port)[0],
            "monitor.connection_id",
        )
    };
    assert_ne!(id(a_port), id(b_port));
    // The echo server's side: inbound (the client's first datagram came in), the client as
    // source, named after the server process.
    let server = flows_with_port(&recs, echo_pid, "source", a_port);
    let f = server[0];
    assert_eq!(str_field(f, "network.direction"), Some("ingress"), "{f}");
    assert_eq!(str_field(f, "source.ip"), Some(HOST_V4), "{f}");
    assert_eq!(u64_field(f, "source.bytes"), Some(sent(&A_SIZES)), "{f}");
    assert_eq!(
        u64_field(f, "destination.bytes"),
        Some(back(&A_SIZES)),
        "{f}"
    );
    assert_eq!(
        u64_field(f, "destination.packets"),
        Some(A_SIZES.len() as u64)
    );
    // Replay gives back exactly what the live run wrote.
    let lines: Vec<String> = of_action(&recs, pid, "flow")
        .into_iter()
        .chain(server.iter().copied())
        .map(|r| r.to_string())
        .collect();
    assert_replays_as_written(&lines, &rules);
}

/// IPv6, and a dual-stack IPv6 socket talking to an IPv4 peer: `sendto` names it as
/// `::ffff:127.0.0.1` (the kernel's IPv4 path) and `recvfrom` reports it mapped; both
/// directions are one flow, written as IPv4. Loopback echo servers in the same process.
#[test]
fn ipv6_and_dual_stack_sockets_give_one_flow_each_way() {
    require_root("live_lifecycle");
    let rules = TempDir::new("udp-flow-rules");
    let monitor = start_flow_monitor(&rules, true);
    let script = "import socket, threading, time\n\
         s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s6.bind(('::1', 0))\n\
         s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s4.bind(('127.0.0.1', 0))\n\
         def echo(s):\n    while True:\n        d, a = s.recvfrom(65535); s.sendto(d + b'!', a)\n\
         for s in (s6, s4): threading.Thread(target=echo, args=(s,), daemon=True).start()\n\
         c = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); c.settimeout(5)\n\
         for n in (10, 20): c.sendto(b'x' * n, ('::1', s6.getsockname()[1])); c.recvfrom(100)\n\
         d = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); d.settimeout(5)\n\
         for n in (5, 6, 7):\n    d.sendto(b'y' * n, ('::ffff:127.0.0.1', s4.getsockname()[1])); d.recvfrom(100)\n\
         print(s6.getsockname()[1], s4.getsockname()[1], flush=True)\n\
         c.close(); d.close()\n";
    let (pid, out) = python(script, Duration::from_secs(20));
    let ports: Vec<u16> = out
        .split_whitespace()
        .map(|p| p.parse().expect("a port"))
        .collect();
    assert_eq!(ports.len(), 2, "client output: {out:?}");
    let (port6, port4) = (ports[0], ports[1]);
    // The client sockets are closed; the servers' sockets close when python3 exits.
    let recs = monitor.wait_until(Duration::from_secs(10), |recs| {
        flows_with_port(recs, pid, "destination", port6).len() == 2
            && flows_with_port(recs, pid, "destination", port4).len() == 2
    });
    let shown = || briefs(of_action(&recs, pid, "flow"));
    // (server port, address family, datagrams each way, bytes sent)
    for (port, ip, n, sent) in [(port6, "::1", 2, 30), (port4, "127.0.0.1", 3, 18)] {
        let flows = flows_with_port(&recs, pid, "destination", port);
        let out: Vec<&&Value> = flows
            .iter()
            .filter(|f| str_field(f, "network.direction") == Some("egress"))
            .collect();
        assert_eq!(out.len(), 1, "one client flow to {ip} {port}: {}", shown());
        let f = out[0];
        assert_eq!(str_field(f, "destination.ip"), Some(ip), "{f}");
        assert_eq!(str_field(f, "monitor.flow_end"), Some("close"), "{f}");
        assert_eq!(u64_field(f, "source.bytes"), Some(sent), "{f}");
        assert_eq!(u64_field(f, "source.packets"), Some(n), "{f}");
        assert_eq!(u64_field(f, "destination.bytes"), Some(sent + n), "{f}");
        assert_eq!(u64_field(f, "destination.packets"), Some(n), "{f}");
    }
}

#[test]
fn without_the_lifecycle_there_are_no_udp_flow_records() {
    require_root("live_lifecycle");
    let ns = NetNsGuard::create();
    let mut echo = udp_echo_host(&ns);
    let rules = TempDir::new("udp-flow-rules");
    let monitor = start_flow_monitor(&rules, false);
    let (pid, _, _) = flow_client(Duration::from_secs(FLOW_IDLE_SECS * 2));
    // The sends are still reported; then wait past the idle period and the close.
    monitor.wait_until(Duration::from_secs(10), |recs| {
        !of_action(recs, pid, "send").is_empty()
    });
    std::thread::sleep(Duration::from_secs(FLOW_IDLE_SECS * 2));
    let recs = monitor.records();
    let _ = echo.kill();
    let _ = echo.wait();
    drop(ns);
    assert!(!of_action(&recs, pid, "send").is_empty(), "no send records");
    let flows: Vec<&Value> = recs
        .iter()
        .filter(|r| str_field(r, "event.action") == Some("flow"))
        .collect();
    assert!(
        flows.is_empty(),
        "flow records without --lifecycle: {}",
        briefs(flows)
    );
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Connects the kernel fails before the socket reaches `SYN_SENT` (the route lookup in
/// `connect()` itself: no route, an `unreachable`, `prohibit` or `blackhole` route in the
/// test namespace) still get their failed result, joined to their connect, with the errno
/// the program saw; a UDP connect failing the same way gets none (it is no TCP connect).
#[test]
fn connects_refused_before_syn_sent_report_their_failure() {
    require_root("live_lifecycle");
    let ns = NetNsGuard::create();
    let name = ns.name().to_string();
    // (address, route type or None for no route at all, the errno connect() returns; for
    // IPv6 the kernel's choice differs across versions, python's errno is the reference)
    let cases: [(&str, Option<&str>, Option<&str>); 5] = [
        ("192.0.2.1", None, Some("ENETUNREACH")),
        ("198.51.100.80", Some("unreachable"), Some("EHOSTUNREACH")),
        ("198.51.100.81", Some("prohibit"), Some("EACCES")),
        ("198.51.100.82", Some("blackhole"), Some("EINVAL")),
        ("2001:db8:ff::1", Some("unreachable"), None),
    ];
    for (addr, kind, _) in &cases {
        if let Some(kind) = kind {
            let prefix = if addr.contains(':') { "128" } else { "32" };
            run_ok(Command::new("ip").args([
                "-n",
                &name,
                "route",
                "add",
                kind,
                &format!("{addr}/{prefix}"),
            ]));
        }
    }
    let rules = TempDir::new("lifecycle-rules");
    let monitor = start_monitor(&[rules.path().display().to_string()]);
    // Prints the errno's name the blocking connect failed with.
    let script = |addr: &str, kind: &str| {
        let family = if addr.contains(':') {
            "AF_INET6"
        } else {
            "AF_INET"
        };
        format!(
            "import errno, socket\n\
             s = socket.socket(socket.{family}, socket.{kind})\n\
             try:\n    s.connect(('{addr}', 80)); print('connected')\n\
             except OSError as e:\n    print(errno.errorcode.get(e.errno, e.errno))"
        )
    };
    let run_in_ns = |code: &str| -> (u32, String) {
        let mut child = ns
            .exec(&python3())
            .args(["-c", code])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 in the namespace");
        let pid = child.id();
        let status = wait_or_kill(&mut child, Duration::from_secs(10));
        let out = child.wait_with_output().expect("python3 output");
        assert!(status.is_some(), "python3 did not finish: {code}");
        (pid, String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let mut seen = Vec::new();
    for (addr, _, want) in &cases {
        let (pid, errno) = run_in_ns(&script(addr, "SOCK_STREAM"));
        assert!(
            errno.starts_with('E') && want.is_none_or(|w| w == errno),
            "the connect to {addr} did not fail at once with {want:?}: {errno:?}"
        );
        let reason = match errno.as_str() {
            "ENETUNREACH" => "network-unreachable",
            "EHOSTUNREACH" => "host-unreachable",
            "EACCES" | "EPERM" => "prohibited",
            _ => "error",
        };
        seen.push((pid, *addr, reason, errno));
    }
    let (udp_pid, udp_errno) = run_in_ns(&script("192.0.2.1", "SOCK_DGRAM"));
    assert_eq!(udp_errno, "ENETUNREACH", "the UDP near miss");
    let pids: Vec<u32> = seen.iter().map(|s| s.0).collect();
    let recs = monitor.wait_until(Duration::from_secs(10), |recs| {
        pids.iter()
            .all(|&p| !of_action(recs, p, "connect-result").is_empty())
    });
    drop(ns);
    for (pid, addr, reason, errno) in &seen {
        let connects = of_action(&recs, *pid, "connect");
        let results = of_action(&recs, *pid, "connect-result");
        assert!(
            connects.len() == 1 && results.len() == 1,
            "{addr} (python: {errno}): one connect and one result expected:\n{}\nstderr:\n{}",
            briefs(records_of(&recs, *pid)),
            monitor.stderr()
        );
        let (c, r) = (connects[0], results[0]);
        assert!(str_field(c, "monitor.connection_id").is_some(), "{c}");
        assert_eq!(
            str_field(r, "monitor.connection_id"),
            str_field(c, "monitor.connection_id"),
            "ids differ:\n{c}\n{r}"
        );
        assert_eq!(str_field(r, "event.outcome"), Some("failure"), "{r}");
        assert_eq!(str_field(r, "monitor.outcome_reason"), Some(*reason), "{r}");
        // The errno by name where the monitor names it, else its number.
        let code = str_field(r, "error.code").unwrap_or_default().to_string();
        let named = code == *errno;
        let numbered = errno == "EINVAL" && code == "22";
        assert!(
            named || numbered,
            "error.code {code:?}, python saw {errno}: {r}"
        );
        assert_eq!(str_field(r, "destination.ip"), Some(*addr), "{r}");
        assert_eq!(u64_field(r, "destination.port"), Some(80), "{r}");
        assert_eq!(u64_field(r, "process.pid"), Some(u64::from(*pid)), "{r}");
        assert_eq!(
            str_field(r, "process.executable"),
            str_field(c, "process.executable"),
            "{r}"
        );
        assert!(u64_field(r, "event.duration").is_some(), "{r}");
    }
    assert!(
        of_action(&recs, udp_pid, "connect-result").is_empty(),
        "a UDP connect has no result record: {}",
        briefs(records_of(&recs, udp_pid))
    );
}
