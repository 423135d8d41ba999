//! Running as a service, for real (root): SIGHUP rule reload, the privilege drop after
//! attach, hostile command lines through every output, and the metrics (SIGUSR1 record and
//! the Prometheus endpoint).

mod common;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::ffi::OsStrExt as _;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::daemon::MonitorProcess;
use common::records::{field, is_alert, pid, str_field};
use common::{python3, require_program, require_root, send_signal};
use serde_json::Value;

const CURL: &[&str] = &["/usr/bin/curl"];

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TCP connect attempt to 127.0.0.1:`port` by curl; returns curl's pid. Nothing needs to
/// listen: the connect itself is what the monitor sees.
fn curl_connect(port: u16) -> u32 {
    let curl = require_program(CURL, "curl");
    let mut child = Command::new(curl)
        .args(["-s", "-o", "/dev/null", "--max-time", "2"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .spawn()
        .unwrap();
    let id = child.id();
    child.wait().unwrap();
    id
}

fn rule(id: &str, image_suffix: &str, port: u16) -> String {
    format!(
        "title: Test rule {id}\nid: {id}\nstatus: test\nlevel: high\nlogsource:\n    category: network_connection\n    product: linux\ndetection:\n    selection:\n        Image|endswith: '{image_suffix}'\n        DestinationPort: {port}\n    condition: selection\n"
    )
}

fn alerts_of_rule(recs: &[Value], rule_id: &str) -> usize {
    recs.iter()
        .filter(|r| is_alert(r) && str_field(r, "rule.id") == Some(rule_id))
        .count()
}

#[test]
fn sighup_keeps_the_old_rules_when_the_new_set_is_broken_and_applies_a_valid_one() {
    require_root("live_service");
    let rules = common::TempDir::new("reload-rules");
    let (port_a, port_b) = (free_tcp_port(), free_tcp_port());
    std::fs::write(rules.join("a.yml"), rule("test-reload-a", "/curl", port_a)).unwrap();
    let m = MonitorProcess::start(&["--rules".into(), rules.path().display().to_string()]);

    curl_connect(port_a);
    m.wait_for("rule A's alert", Duration::from_secs(10), |r| {
        alerts_of_rule(r, "test-reload-a") >= 1
    });

    // A broken file (tab indentation) in the rule directory: the reload is rejected.
    std::fs::write(
        rules.join("broken.yml"),
        "title: broken\nid: x\ndetection:\n\tselection:\n\t\tImage: a\n    condition: selection\n",
    )
    .unwrap();
    send_signal(m.pid(), libc::SIGHUP);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !m.stderr().contains("rejected") {
        assert!(
            std::time::Instant::now() < deadline,
            "no rejection logged after SIGHUP with a broken rule:\n{}",
            m.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let err = m.stderr();
    assert!(
        err.contains("broken.yml"),
        "the rejection names the file: {err}"
    );
    // The old set still works.
    curl_connect(port_a);
    m.wait_for("rule A still active", Duration::from_secs(10), |r| {
        alerts_of_rule(r, "test-reload-a") >= 2
    });

    // A valid new set: rule B replaces A.
    std::fs::remove_file(rules.join("broken.yml")).unwrap();
    std::fs::remove_file(rules.join("a.yml")).unwrap();
    std::fs::write(rules.join("b.yml"), rule("test-reload-b", "/curl", port_b)).unwrap();
    send_signal(m.pid(), libc::SIGHUP);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !m.stderr().contains("rules reloaded") {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload logged:\n{}",
            m.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    curl_connect(port_b);
    m.wait_for("rule B's alert", Duration::from_secs(10), |r| {
        alerts_of_rule(r, "test-reload-b") >= 1
    });
    curl_connect(port_a);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        alerts_of_rule(&m.records(), "test-reload-a"),
        2,
        "rule A is gone after the reload"
    );
}

/// Waits until the monitor's log holds `needle`, failing with the log after `limit`.
fn wait_for_log(m: &MonitorProcess, needle: &str, limit: Duration) -> String {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let err = m.stderr();
        if err.contains(needle) {
            return err;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "`{needle}` not logged:\n{err}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A 40 kB rule whose condition nests 20,000 parentheses: with SIGHUP it aborted `monitor
/// run` with a stack overflow (issue #18).
fn hostile_parens_rule() -> String {
    rule("test-hostile", "/curl", 1).replace(
        "condition: selection\n",
        &format!(
            "condition: {}selection{}\n",
            "(".repeat(20_000),
            ")".repeat(20_000)
        ),
    )
}

#[test]
fn sighup_with_a_hostile_rule_file_keeps_the_daemon_up_and_the_old_rules() {
    require_root("live_service");
    let rules = common::TempDir::new("reload-hostile");
    let port = free_tcp_port();
    std::fs::write(rules.join("a.yml"), rule("test-hostile-a", "/curl", port)).unwrap();
    let m = MonitorProcess::start(&[
        "--rules".into(),
        rules.path().display().to_string(),
        "--metrics-interval".into(),
        "0".into(),
    ]);
    curl_connect(port);
    m.wait_for("rule A's alert", Duration::from_secs(10), |r| {
        alerts_of_rule(r, "test-hostile-a") >= 1
    });

    std::fs::write(rules.join("parens.yml"), hostile_parens_rule()).unwrap();
    // And a list file whose placeholder would expand to 2^31 values.
    let mut lists = String::from("lists:\n  l30: [/a]\n");
    for i in (0..30).rev() {
        lists.push_str(&format!("  l{i}: ['%l{n}%', '%l{n}%']\n", n = i + 1));
    }
    std::fs::write(rules.join("lists.yml"), lists).unwrap();
    std::fs::write(
        rules.join("uses.yml"),
        rule("test-hostile-b", "%l0%", port).replace("Image|endswith:", "Image|endswith|expand:"),
    )
    .unwrap();
    // The other faults of issue #18, in the same reload: each file is named in the rejection.
    let with_window = |id: &str, window: &str| {
        format!(
            "{}monitor:\n    window: '{window}'\n",
            rule(id, "/curl", port)
        )
    };
    std::fs::write(
        rules.join("window.yml"),
        with_window("test-hostile-c", "1é"),
    )
    .unwrap();
    std::fs::write(
        rules.join("bigwindow.yml"),
        with_window("test-hostile-d", "200000d"),
    )
    .unwrap();
    std::fs::write(rules.join("utf16.yml"), b"\xff\xfet\x00i\x00").unwrap();
    std::fs::write(
        rules.join("stars.yml"),
        rule("test-hostile-e", "/curl", port).replace(
            "condition: selection\n",
            &format!("condition: 1 of {}b\n", "*a".repeat(12)),
        ),
    )
    .unwrap();
    std::fs::write(
        rules.join("literal.yml"),
        rule("test-hostile-f", &format!("/{}", "x".repeat(100_000)), port),
    )
    .unwrap();
    send_signal(m.pid(), libc::SIGHUP);
    let err = wait_for_log(&m, "rejected", Duration::from_secs(10));
    for file in [
        "window.yml:14:",
        "bigwindow.yml:14:",
        "utf16.yml:1:",
        "stars.yml:12:",
        "literal.yml:10:",
    ] {
        assert!(err.contains(file), "the rejection names {file}: {err}");
    }
    assert!(
        err.contains("parens.yml:12:") && err.contains("nested deeper than 64 levels"),
        "the rejection names the file, line and budget: {err}"
    );
    assert!(
        err.contains("uses.yml:10:") && err.contains("expands to 1073741824 values"),
        "{err}"
    );
    // Still up, still alerting with the old set.
    curl_connect(port);
    m.wait_for("rule A still active", Duration::from_secs(10), |r| {
        alerts_of_rule(r, "test-hostile-a") >= 2
    });
    send_signal(m.pid(), libc::SIGUSR1);
    m.wait_for("a metric record", Duration::from_secs(10), |r| {
        r.iter()
            .any(|v| str_field(v, "event.kind") == Some("metric"))
    });
    let recs = m.records();
    let metric = recs
        .iter()
        .find(|v| str_field(v, "event.kind") == Some("metric"))
        .unwrap();
    let stats = field(metric, "monitor.stats").expect("monitor.stats");
    assert_eq!(stats["rules_reload_failed"], 1, "{stats}");
    assert_eq!(stats["rules_reloaded"], 0, "{stats}");

    // The same set at start-up: exit 2 with the reason, not an abort.
    let out = Command::new(common::daemon::MONITOR)
        .args(["run", "--rules"])
        .arg(rules.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("nested deeper than 64 levels"), "{err}");
}

/// Parses a `CapXxx:` line of /proc/PID/status.
fn cap_bits(status: &str, key: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("{key} missing from status"));
    u64::from_str_radix(line[key.len()..].trim(), 16).unwrap()
}

#[test]
fn capabilities_are_reduced_after_start_and_capture_still_works() {
    require_root("live_service");
    let m = MonitorProcess::start(&["--events".into()]);
    // CAP_DAC_READ_SEARCH (2) and CAP_SYS_PTRACE (19), nothing else, in every thread.
    let kept: u64 = (1 << 2) | (1 << 19);
    let tasks = std::fs::read_dir(format!("/proc/{}/task", m.pid())).unwrap();
    let mut threads = 0;
    for t in tasks {
        let status = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
        threads += 1;
        assert_eq!(
            cap_bits(&status, "CapEff:"),
            kept,
            "effective set:\n{status}"
        );
        assert_eq!(
            cap_bits(&status, "CapPrm:"),
            kept,
            "permitted set:\n{status}"
        );
        assert_eq!(
            cap_bits(&status, "CapInh:"),
            0,
            "inheritable set:\n{status}"
        );
        assert_eq!(cap_bits(&status, "CapAmb:"), 0, "ambient set:\n{status}");
        assert_eq!(
            cap_bits(&status, "CapBnd:"),
            kept,
            "bounding set:\n{status}"
        );
        assert!(
            status
                .lines()
                .any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1')),
            "no_new_privs:\n{status}"
        );
    }
    assert!(threads >= 1);
    let port = free_tcp_port();
    let curl_pid = curl_connect(port);
    m.wait_for(
        "curl's connect after the drop",
        Duration::from_secs(10),
        |r| {
            r.iter().any(|e| {
                pid(e) == Some(curl_pid)
                    && field(e, "destination.port").and_then(Value::as_u64) == Some(port as u64)
            })
        },
    );
}

#[test]
fn runs_as_an_unprivileged_user_after_attach_and_still_captures() {
    require_root("live_service");
    let m = MonitorProcess::start(&["--events".into(), "--user".into(), "nobody".into()]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", m.pid())).unwrap();
    let ids = |key: &str| -> Vec<u32> {
        status.lines().find(|l| l.starts_with(key)).unwrap()[key.len()..]
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect()
    };
    // nobody is 65534 on Debian: real, effective, saved and file-system ids all switched.
    assert_eq!(ids("Uid:"), vec![65534; 4], "{status}");
    assert_eq!(ids("Gid:"), vec![65534; 4], "{status}");
    assert_eq!(
        cap_bits(&status, "CapEff:"),
        (1 << 2) | (1 << 19),
        "{status}"
    );
    let port = free_tcp_port();
    let curl_pid = curl_connect(port);
    m.wait_for("curl's connect as nobody", Duration::from_secs(10), |r| {
        r.iter().any(|e| {
            pid(e) == Some(curl_pid)
                && str_field(e, "process.executable").is_some()
                && field(e, "destination.port").and_then(Value::as_u64) == Some(port as u64)
        })
    });
}

/// Reads RFC 6587 octet-counted frames (`LEN SP MSG`) from a stream.
fn octet_frames(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let sp = data.iter().position(|&b| b == b' ').expect("frame length");
        let len: usize = std::str::from_utf8(&data[..sp]).unwrap().parse().unwrap();
        out.push(data[sp + 1..sp + 1 + len].to_vec());
        data = &data[sp + 1 + len..];
    }
    out
}

/// The JSON message of an RFC 5424 frame: everything after the structured data.
fn rfc5424_json(frame: &[u8]) -> Value {
    let text = std::str::from_utf8(frame).expect("syslog frames are UTF-8");
    assert!(
        !text.contains('\n') && !text.contains('\r'),
        "raw line break in a frame: {text:?}"
    );
    let start = text.find(" {").expect("JSON message after the header");
    serde_json::from_str(&text[start + 1..]).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn hostile_command_line_gives_one_well_formed_record_per_output() {
    require_root("live_service");
    let dir = common::TempDir::new("injection");
    let file_out = dir.join("out.jsonl");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_addr = udp.local_addr().unwrap();
    // With --events every connection on the machine becomes a datagram: drain from the start
    // so the socket buffer cannot overflow (UDP loss at the receiver is invisible to the
    // sender, which is why TCP is the no-loss transport).
    let udp_frames = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    {
        let udp_frames = udp_frames.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = udp.recv(&mut buf) {
                udp_frames.lock().unwrap().push(buf[..n].to_vec());
            }
        });
    }
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_addr = tcp.local_addr().unwrap();
    let tcp_data = Arc::new(Mutex::new(Vec::new()));
    {
        let tcp_data = tcp_data.clone();
        std::thread::spawn(move || {
            for conn in tcp.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut buf = [0u8; 65536];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    tcp_data.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }
        });
    }
    let mut m = MonitorProcess::start(&[
        "--events".into(),
        "--output".into(),
        "stdout".into(),
        "--output".into(),
        format!("file:{}", file_out.display()),
        "--output".into(),
        format!("syslog+udp://{udp_addr}"),
        "--output".into(),
        format!("syslog+tcp://{tcp_addr}"),
    ]);

    // argv with a newline, a carriage return, `]`, `"`, a backslash, a forged JSON record and
    // syslog line, and invalid UTF-8; argv elements are NUL-separated in the kernel. The
    // process also renames itself (comm) with control characters before connecting.
    let port = free_tcp_port();
    let code = format!(
        "import ctypes,socket\nctypes.CDLL(None).prctl(15, b'ev\\nil]\"', 0, 0, 0)\ns=socket.socket(); s.settimeout(1); s.connect_ex(('127.0.0.1', {port}))"
    );
    let hostile: &[&[u8]] = &[
        b"line1\nline2",
        b"cr\rhere",
        b"]\"\\",
        b"\n{\"event\":{\"kind\":\"alert\"},\"forged\":true}",
        b"<13>1 2026-01-01T00:00:00Z host forged - - - {}",
        b"bad\xff\xfeutf8",
    ];
    let mut cmd = Command::new(python3());
    cmd.arg("-c").arg(&code);
    for h in hostile {
        cmd.arg(std::ffi::OsStr::from_bytes(h));
    }
    let child_pid = {
        let mut c = cmd.spawn().unwrap();
        let id = c.id();
        c.wait().unwrap();
        id
    };
    m.wait_for(
        "the hostile process's event",
        Duration::from_secs(10),
        |r| r.iter().any(|e| pid(e) == Some(child_pid)),
    );
    // Let the syslog outputs deliver, then stop the monitor so everything is flushed.
    std::thread::sleep(Duration::from_secs(1));
    let (status, _) = m.stop(Duration::from_secs(10));
    assert!(status.success(), "monitor exit: {status:?}");
    std::thread::sleep(Duration::from_millis(300));
    let udp_frames = udp_frames.lock().unwrap().clone();

    let mine = |v: &Value| pid(v) == Some(child_pid);
    // One connect; `--events` also writes its result (refused), which carries the same
    // process fields and is checked the same way.
    let connect = |v: &Value| mine(v) && str_field(v, "event.action") == Some("connect");
    let check = |v: &Value, output: &str| {
        let cmdline = str_field(v, "process.command_line").unwrap_or_default();
        assert!(
            cmdline.contains("line1\nline2"),
            "{output}: newline kept as data: {cmdline:?}"
        );
        assert!(
            cmdline.contains("bad\\xff\\xfeutf8"),
            "{output}: invalid UTF-8 escaped: {cmdline:?}"
        );
        assert_ne!(
            field(v, "forged"),
            Some(&Value::Bool(true)),
            "{output}: forged record"
        );
    };

    // stdout and file: every line is one JSON object; exactly one event for the process.
    for (name, path) in [
        ("stdout", m.stdout_path().to_path_buf()),
        ("file", file_out.clone()),
    ] {
        let text = std::fs::read(&path).unwrap();
        let text = String::from_utf8(text).expect("JSON lines are UTF-8");
        let recs: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l:?}")))
            .collect();
        let hits: Vec<&Value> = recs.iter().filter(|v| connect(v)).collect();
        assert_eq!(hits.len(), 1, "{name}: one connect record for the process");
        for v in recs.iter().filter(|v| mine(v)) {
            check(v, name);
        }
        assert!(
            !recs.iter().any(|v| field(v, "forged").is_some()),
            "{name}: a forged record appeared"
        );
    }
    // Syslog over UDP (one datagram per record) and TCP (octet counting).
    let tcp_frames = octet_frames(&tcp_data.lock().unwrap());
    for (name, frames) in [("syslog+udp", &udp_frames), ("syslog+tcp", &tcp_frames)] {
        let recs: Vec<Value> = frames.iter().map(|f| rfc5424_json(f)).collect();
        let hits: Vec<&Value> = recs.iter().filter(|v| connect(v)).collect();
        assert_eq!(hits.len(), 1, "{name}: one connect record for the process");
        for v in recs.iter().filter(|v| mine(v)) {
            check(v, name);
        }
        let frame = frames
            .iter()
            .find(|f| {
                rfc5424_json(f)
                    .get("process")
                    .is_some_and(|_| mine(&rfc5424_json(f)))
            })
            .unwrap();
        let text = String::from_utf8_lossy(frame);
        assert!(text.starts_with('<'), "{name}: RFC 5424 frame: {text}");
    }
}

#[test]
fn metric_record_on_sigusr1_and_prometheus_text_on_loopback() {
    require_root("live_service");
    let port = free_tcp_port();
    let m = MonitorProcess::start(&[
        "--metrics-interval".into(),
        "0".into(),
        "--metrics-listen".into(),
        format!("127.0.0.1:{port}"),
    ]);
    // Traffic so the counters move, then ask for a record.
    curl_connect(free_tcp_port());
    std::thread::sleep(Duration::from_millis(1500));
    send_signal(m.pid(), libc::SIGUSR1);
    m.wait_for("a metric record", Duration::from_secs(10), |r| {
        r.iter()
            .any(|v| str_field(v, "event.kind") == Some("metric"))
    });
    let recs = m.records();
    let metric = recs
        .iter()
        .find(|v| str_field(v, "event.kind") == Some("metric"))
        .unwrap();
    let stats = field(metric, "monitor.stats").expect("monitor.stats");
    // This host has no fentry or kprobes: TCP on the cgroup connect programs.
    assert_eq!(stats["probes"]["tcp_connect"], "cgroup", "{stats}");
    assert_eq!(stats["probes"]["udp_sendmsg"], "cgroup", "{stats}");
    assert!(
        stats["events_by_hook"]["tcp_connect"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert_eq!(stats["ringbuf_lost"], 0, "{stats}");
    assert!(
        stats["outputs"].as_array().is_some_and(|o| !o.is_empty()),
        "{stats}"
    );

    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.0 200"), "{body}");
    assert!(
        body.contains("monitor_probe_backend{hook=\"tcp_connect\",backend=\"cgroup\"} 1"),
        "{body}"
    );
    assert!(body.contains("monitor_ringbuf_lost_total 0"), "{body}");
    // Only loopback: a wildcard address is refused at start.
    let bad = Command::new(common::daemon::MONITOR)
        .args(["run", "--metrics-listen", "0.0.0.0:9"])
        .output()
        .unwrap();
    assert_eq!(
        bad.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
