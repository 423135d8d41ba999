//! DNS attribution end to end (root only; issue #13): the real `monitor run --events` on this
//! kernel, a DNS server in the test namespace (`common/dns_server.py`: A, AAAA, CNAME, and
//! malformed answers, over UDP and TCP), and real clients resolving through getaddrinfo with
//! a private /etc/resolv.conf (a mount namespace per client), then connecting.
//!
//! Run: `sudo -E cargo test --release -p monitor --features host-tests --test live_dns --
//! --test-threads=1`

mod common;

use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::daemon::MonitorProcess;
use common::netns::{Listener, NS_EXTRA_V4, NS_V4, NS_V6, NetNsGuard};
use common::records::{field, is_connection_event, is_event, str_field, u64_field};
use common::{TempDir, python3, require_program, require_root, wait_or_kill};

/// The zone the test server answers (names under `dnstest.example`, and the names the
/// SigmaHQ `DestinationHostname` rules look for, all at the test host).
fn zone() -> serde_json::Value {
    serde_json::json!({
        "web.dnstest.example": {"A": [NS_V4]},
        "v6.dnstest.example": {"AAAA": [NS_V6]},
        "alias.dnstest.example": {"CNAME": "target.cdn.dnstest.example"},
        "target.cdn.dnstest.example": {"A": [NS_EXTRA_V4]},
        "other.dnstest.example": {"A": [NS_EXTRA_V4]},
        "tcp.dnstest.example": {"A": [NS_V4]},
        "trunc.dnstest.example": {"malformed": "truncated"},
        "loop.dnstest.example": {"malformed": "loop"},
        "biglabel.dnstest.example": {"malformed": "biglabel"},
        // SigmaHQ rules: matching names and near misses.
        "x1.tunnel.eu.ngrok.com": {"A": [NS_V4]},
        "tunnel.eu.ngrok.com.dnstest.example": {"A": [NS_V4]},
        "ngrok.com": {"A": [NS_V4]},
        "app.localto.net": {"A": [NS_V4]},
        "localto.net.dnstest.example": {"A": [NS_V4]},
        "abc.oast.fun": {"A": [NS_V4]},
        "oast-fun.dnstest.example": {"A": [NS_V4]},
        "pool.minexmr.com": {"A": [NS_V4]},
        "pool.minexmr.com.dnstest.example": {"A": [NS_V4]},
        "ovz1.j19544519.pr46m.vps.myjino.ru": {"A": [NS_V4]},
        "vps.myjino.ru": {"A": [NS_V4]},
    })
}

/// The DNS server (`dns_server.py ARGS`) inside the namespace, or on the host when `ns` is
/// `None`; killed on drop.
struct DnsServer {
    child: Child,
}

impl DnsServer {
    fn start(ns: Option<&NetNsGuard>, args: &[String]) -> DnsServer {
        let dir = TempDir::new("dns-server");
        let script = dir.join("dns_server.py");
        std::fs::write(&script, include_str!("common/dns_server.py")).expect("write script");
        let mut cmd = match ns {
            Some(ns) => ns.exec(&python3()),
            None => Command::new(python3()),
        };
        let err = dir.join("stderr");
        let mut child = cmd
            .arg("-u")
            .arg(&script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("start dns_server.py");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(l) if l.trim() == "ready" => {}
            other => panic!(
                "dns_server.py {args:?} did not start ({other:?}): {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            ),
        }
        std::mem::forget(dir);
        DnsServer { child }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        wait_or_kill(&mut self.child, Duration::from_secs(5));
    }
}

/// The test namespace with HTTP on port 80 and the zone's DNS server on port 53.
fn test_host(dir: &TempDir) -> (NetNsGuard, DnsServer) {
    let mut ns = NetNsGuard::create();
    ns.start_listeners(&[Listener::Http(80)]);
    let zone_file = dir.join("zone.json");
    std::fs::write(&zone_file, zone().to_string()).expect("write zone");
    let server = DnsServer::start(
        Some(&ns),
        &[
            "zone".into(),
            zone_file.display().to_string(),
            NS_V4.into(),
            NS_V6.into(),
        ],
    );
    (ns, server)
}

/// `program args...` with `/etc/resolv.conf` replaced by one naming `nameserver` (in a
/// private mount namespace); returns its pid once it exited.
fn resolve_and_run(dir: &TempDir, nameserver: &str, program: &str, args: &[&str]) -> u32 {
    require_program(&["/usr/bin/unshare"], "util-linux");
    let resolv = dir.join(&format!("resolv-{}.conf", nameserver.replace(':', "_")));
    std::fs::write(
        &resolv,
        format!("nameserver {nameserver}\noptions timeout:2 attempts:2\n"),
    )
    .expect("write resolv.conf");
    let mut child = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#)
        .arg(&resolv)
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    let pid = child.id();
    wait_or_kill(&mut child, Duration::from_secs(30));
    pid
}

fn curl() -> String {
    require_program(&["/usr/bin/curl"], "curl")
        .display()
        .to_string()
}

fn monitor(extra: &[&str]) -> (MonitorProcess, TempDir) {
    let rules = TempDir::new("rules");
    let mut args = vec![
        "--events".to_string(),
        "--metrics-interval".into(),
        "1".into(),
        "--rules".into(),
        rules.path().display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    (MonitorProcess::start(&args), rules)
}

/// Connection events (not DNS records) to `ip`:`port`.
fn connects_to<'a>(recs: &'a [Value], ip: &str, port: u16) -> Vec<&'a Value> {
    recs.iter()
        .filter(|r| {
            is_connection_event(r)
                && str_field(r, "event.action") != Some("dns-query")
                && str_field(r, "destination.ip") == Some(ip)
                && u64_field(r, "destination.port") == Some(u64::from(port))
        })
        .collect()
}

fn dns_records<'a>(recs: &'a [Value], name: &str) -> Vec<&'a Value> {
    recs.iter()
        .filter(|r| {
            str_field(r, "event.action") == Some("dns-query")
                && str_field(r, "dns.question.name") == Some(name)
        })
        .collect()
}

/// The connection of `pid` (or its child: `unshare` execs, so the pid is the client's) to
/// `ip`:`port` names `domain` from `source`.
fn check_named(
    recs: &[Value],
    pid: u32,
    ip: &str,
    port: u16,
    domain: &str,
    source: &str,
) -> Result<(), String> {
    let evs: Vec<&Value> = connects_to(recs, ip, port)
        .into_iter()
        .filter(|r| u64_field(r, "process.pid") == Some(u64::from(pid)))
        .collect();
    let Some(ev) = evs.first() else {
        return Err(format!("pid {pid}: no connection to {ip}:{port}"));
    };
    let got = (
        str_field(ev, "destination.domain"),
        str_field(ev, "monitor.domain_source"),
    );
    if got != (Some(domain), Some(source)) {
        return Err(format!(
            "pid {pid} -> {ip}:{port}: destination.domain/domain_source {got:?}, expected \
             ({domain:?}, {source:?}): {ev}"
        ));
    }
    Ok(())
}

fn latest_stats(recs: &[Value]) -> Option<&Value> {
    recs.iter()
        .rev()
        .find(|r| {
            str_field(r, "event.kind") == Some("metric") && field(r, "monitor.stats").is_some()
        })
        .and_then(|r| field(r, "monitor.stats"))
}

/// curl (IPv4) and python3 (IPv6, and a CNAME) resolve through getaddrinfo, then connect:
/// each connection names what its process asked for, not the CNAME target.
#[test]
fn getaddrinfo_lookups_name_the_connections_v4_v6_and_through_a_cname() {
    require_root("live_dns");
    let dir = TempDir::new("live-dns");
    let (_ns, _server) = test_host(&dir);
    let (m, _rules) = monitor(&[]);
    let curl = curl();
    let py = python3().display().to_string();
    let p_curl = resolve_and_run(
        &dir,
        NS_V4,
        &curl,
        &[
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "5",
            "http://web.dnstest.example/",
        ],
    );
    let connect6 = "import socket;a=socket.getaddrinfo('v6.dnstest.example',80,socket.AF_INET6,socket.SOCK_STREAM)[0][4];s=socket.socket(socket.AF_INET6);s.settimeout(5);s.connect(a)";
    let p_v6 = resolve_and_run(&dir, NS_V4, &py, &["-c", connect6]);
    let connect_alias = "import socket;s=socket.create_connection(('alias.dnstest.example',80),5)";
    let p_alias = resolve_and_run(&dir, NS_V6, &py, &["-c", connect_alias]);
    let recs = m.wait_until(Duration::from_secs(15), |r| {
        !connects_to(r, NS_V4, 80).is_empty()
            && !connects_to(r, NS_V6, 80).is_empty()
            && !connects_to(r, NS_EXTRA_V4, 80).is_empty()
    });
    let mut errs = Vec::new();
    for (pid, ip, name) in [
        (p_curl, NS_V4, "web.dnstest.example"),
        (p_v6, NS_V6, "v6.dnstest.example"),
        (p_alias, NS_EXTRA_V4, "alias.dnstest.example"),
    ] {
        if let Err(e) = check_named(&recs, pid, ip, 80, name, "process") {
            errs.push(e);
        }
        if dns_records(&recs, name).is_empty() {
            errs.push(format!("no dns-query record for {name}"));
        }
    }
    // The DNS record carries the process, the answer and the CNAME chain's data.
    if let Some(d) = dns_records(&recs, "alias.dnstest.example").first() {
        let results = field(d, "dns.resolved_ip").map(Value::to_string);
        if results.as_deref() != Some(&format!("[\"{NS_EXTRA_V4}\"]")) {
            errs.push(format!("alias: dns.resolved_ip {results:?}: {d}"));
        }
        if str_field(d, "process.name").is_none_or(|n| !n.starts_with("python3")) {
            errs.push(format!(
                "alias: the DNS record's process is not python3: {d}"
            ));
        }
    }
    m.assert_no_problems(&errs);
}

/// A local stub on 127.0.0.53 that forwards to the test host: the client's answers come
/// from the stub over loopback and still name its connection (`process`).
#[test]
fn answers_through_a_local_stub_are_attributed_to_the_client() {
    require_root("live_dns");
    let dir = TempDir::new("live-dns");
    let (_ns, _server) = test_host(&dir);
    let _stub = DnsServer::start(None, &["forward".into(), NS_V4.into(), "127.0.0.53".into()]);
    let (m, _rules) = monitor(&[]);
    let p = resolve_and_run(
        &dir,
        "127.0.0.53",
        &curl(),
        &[
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "5",
            "http://web.dnstest.example/",
        ],
    );
    let recs = m.wait_until(Duration::from_secs(15), |r| {
        !connects_to(r, NS_V4, 80).is_empty()
    });
    let mut errs = Vec::new();
    if let Err(e) = check_named(&recs, p, NS_V4, 80, "web.dnstest.example", "process") {
        errs.push(e);
    }
    let via_stub = dns_records(&recs, "web.dnstest.example")
        .iter()
        .any(|d| str_field(d, "destination.ip") == Some("127.0.0.53"));
    if !via_stub {
        errs.push("no dns-query record from the stub at 127.0.0.53".into());
    }
    m.assert_no_problems(&errs);
}

/// `dig +tcp`: the answer over TCP is a DNS record (the transport says tcp).
#[test]
fn dig_over_tcp_gives_a_dns_record() {
    require_root("live_dns");
    let dig = require_program(&["/usr/bin/dig"], "dnsutils");
    let dir = TempDir::new("live-dns");
    let (_ns, _server) = test_host(&dir);
    let (m, _rules) = monitor(&[]);
    let out = Command::new(&dig)
        .args([
            "+tcp",
            "+tries=1",
            "+time=3",
            &format!("@{NS_V4}"),
            "tcp.dnstest.example",
        ])
        .output()
        .expect("dig");
    assert!(out.status.success(), "dig +tcp failed: {out:?}");
    let recs = m.wait_until(Duration::from_secs(10), |r| {
        !dns_records(r, "tcp.dnstest.example").is_empty()
    });
    let errs: Vec<String> = match dns_records(&recs, "tcp.dnstest.example").first() {
        Some(d)
            if str_field(d, "network.transport") == Some("tcp")
                && str_field(d, "process.name") == Some("dig") =>
        {
            Vec::new()
        }
        Some(d) => vec![format!("the dig +tcp record: {d}")],
        None => vec!["no dns-query record for dig +tcp".into()],
    };
    m.assert_no_problems(&errs);
}

/// One process resolves (dig), another connects to the address (python3, by address):
/// the connection is named from the host-wide table.
#[test]
fn a_name_resolved_by_another_process_is_attributed_host_wide() {
    require_root("live_dns");
    let dig = require_program(&["/usr/bin/dig"], "dnsutils");
    let dir = TempDir::new("live-dns");
    let (_ns, _server) = test_host(&dir);
    let (m, _rules) = monitor(&[]);
    let out = Command::new(&dig)
        .args([
            "+tries=1",
            "+time=3",
            &format!("@{NS_V4}"),
            "other.dnstest.example",
        ])
        .output()
        .expect("dig");
    assert!(out.status.success(), "dig failed: {out:?}");
    m.wait_for("dig's DNS record", Duration::from_secs(10), |r| {
        !dns_records(r, "other.dnstest.example").is_empty()
    });
    let mut child = Command::new(python3())
        .args([
            "-c",
            &format!("import socket;socket.create_connection(('{NS_EXTRA_V4}',80),5)"),
        ])
        .spawn()
        .expect("python3");
    let pid = child.id();
    wait_or_kill(&mut child, Duration::from_secs(10));
    let recs = m.wait_until(Duration::from_secs(10), |r| {
        !connects_to(r, NS_EXTRA_V4, 80).is_empty()
    });
    let errs: Vec<String> =
        check_named(&recs, pid, NS_EXTRA_V4, 80, "other.dnstest.example", "host")
            .err()
            .into_iter()
            .collect();
    m.assert_no_problems(&errs);
}

/// The SigmaHQ rules that test `DestinationHostname` (ngrok, localtonet, OAST domains,
/// mining pools, myjino) fire on live connections to matching names and not on near misses.
#[test]
fn sigmahq_destination_hostname_rules_fire_on_live_names() {
    require_root("live_dns");
    let dir = TempDir::new("live-dns");
    let (_ns, _server) = test_host(&dir);
    let rules = TempDir::new("sigma");
    for f in [
        "net_connection_lnx_ngrok_tunnel.yml",
        "net_connection_lnx_domain_localtonet_tunnel.yml",
        "net_connection_lnx_oast_domain.yml",
        "net_connection_lnx_crypto_mining_indicators.yml",
        "net_connection_github_myjino_ru.yml",
    ] {
        let src = format!(
            "{}/tests/fixtures/sigma-linux-network/{f}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::copy(&src, rules.join(f)).unwrap_or_else(|e| panic!("copy {src}: {e}"));
    }
    let m = MonitorProcess::start(&[
        "--events".to_string(),
        "--rules".into(),
        rules.path().display().to_string(),
    ]);
    let cases = [
        ("x1.tunnel.eu.ngrok.com", true),
        ("tunnel.eu.ngrok.com.dnstest.example", true), // `contains`: a match too
        ("ngrok.com", false),
        ("app.localto.net", true),
        ("localto.net.dnstest.example", false),
        ("abc.oast.fun", true),
        ("oast-fun.dnstest.example", false),
        ("pool.minexmr.com", true),
        ("pool.minexmr.com.dnstest.example", false),
        ("ovz1.j19544519.pr46m.vps.myjino.ru", true),
        ("vps.myjino.ru", false),
    ];
    let curl = curl();
    let mut runs = Vec::new();
    for (name, fires) in cases {
        let url = format!("http://{name}/");
        let pid = resolve_and_run(
            &dir,
            NS_V4,
            &curl,
            &["-s", "-o", "/dev/null", "-m", "5", &url],
        );
        runs.push((pid, name, fires));
    }
    let recs = m.wait_until(Duration::from_secs(15), |r| {
        runs.iter().all(|&(pid, _, _)| {
            connects_to(r, NS_V4, 80)
                .iter()
                .any(|e| u64_field(e, "process.pid") == Some(u64::from(pid)))
        })
    });
    // Grouped or not, an alert carries the event's pid.
    std::thread::sleep(Duration::from_secs(1));
    drop(recs);
    let recs = m.records();
    let mut errs = Vec::new();
    for (pid, name, fires) in runs {
        if check_named(&recs, pid, NS_V4, 80, name, "process").is_err() {
            errs.push(format!("{name}: the connection does not name it"));
        }
        // The connection to port 80 (the lookup's own send to port 53 goes to the same test
        // address, which earlier processes' answers named: a host-wide name).
        let alerted = recs.iter().any(|r| {
            str_field(r, "event.kind") == Some("alert")
                && u64_field(r, "process.pid") == Some(u64::from(pid))
                && u64_field(r, "destination.port") == Some(80)
        });
        if alerted != fires {
            errs.push(format!(
                "{name}: alert {alerted}, expected {fires} (pid {pid})"
            ));
        }
    }
    // Replay equals live: the recorded events (DNS query records included) give the same
    // alerts, and a replay without the recorded names rebuilds them from the DNS records.
    let key = |r: &Value| {
        format!(
            "{} {} {} {}",
            str_field(r, "rule.id").unwrap_or(""),
            u64_field(r, "process.pid").unwrap_or(0),
            str_field(r, "destination.ip").unwrap_or(""),
            str_field(r, "destination.domain").unwrap_or("")
        )
    };
    let mut live: Vec<String> = recs
        .iter()
        .filter(|r| str_field(r, "event.kind") == Some("alert"))
        .map(key)
        .collect();
    live.sort();
    let events: Vec<&Value> = recs.iter().filter(|r| is_event(r)).collect();
    for strip in [false, true] {
        let file = dir.join(if strip {
            "stripped.jsonl"
        } else {
            "events.jsonl"
        });
        let mut text = String::new();
        for ev in &events {
            let mut ev = (*ev).clone();
            if strip {
                if let Some(d) = ev.get_mut("destination").and_then(Value::as_object_mut) {
                    d.remove("domain");
                }
                if let Some(mo) = ev.get_mut("monitor").and_then(Value::as_object_mut) {
                    mo.remove("domain_source");
                }
            }
            text.push_str(&ev.to_string());
            text.push('\n');
        }
        std::fs::write(&file, text).expect("write events");
        let out = Command::new(common::daemon::MONITOR)
            .arg("replay")
            .arg("--rules")
            .arg(rules.path())
            .arg(&file)
            .output()
            .expect("monitor replay");
        assert!(out.status.success(), "replay failed: {out:?}");
        let mut replayed: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| str_field(r, "event.kind") == Some("alert"))
            .map(|r| key(&r))
            .collect();
        replayed.sort();
        if replayed != live {
            errs.push(format!(
                "replay (names stripped: {strip}) gives other alerts:\n  live: {live:?}\n  replay: {replayed:?}"
            ));
        }
    }
    m.assert_no_problems(&errs);
}

/// Malformed answers (cut short, a compression loop, an oversized label) are counted and
/// skipped: no crash, no DNS record, and the address they claim names nothing.
#[test]
fn malformed_answers_are_counted_and_never_attributed() {
    require_root("live_dns");
    let dig = require_program(&["/usr/bin/dig"], "dnsutils");
    let dir = TempDir::new("live-dns");
    let (_ns, _server) = test_host(&dir);
    let (m, _rules) = monitor(&[]);
    for name in [
        "trunc.dnstest.example",
        "loop.dnstest.example",
        "biglabel.dnstest.example",
    ] {
        let _ = Command::new(&dig)
            .args(["+tries=1", "+time=2", &format!("@{NS_V4}"), name])
            .output();
    }
    let recs = m.wait_until(Duration::from_secs(10), |r| {
        latest_stats(r).is_some_and(|s| {
            let n = |k: &str| u64_field(s, k).unwrap_or(0);
            n("dns.malformed") + n("dns.truncated") >= 3
        })
    });
    let mut errs = Vec::new();
    match latest_stats(&recs) {
        Some(s) => {
            let n = |k: &str| u64_field(s, k).unwrap_or(0);
            if n("dns.malformed") + n("dns.truncated") < 3 {
                errs.push(format!("malformed answers not counted: {s}"));
            }
        }
        None => errs.push("no metric record".into()),
    }
    for r in &recs {
        if str_field(r, "destination.domain").is_some_and(|d| d.contains("dnstest"))
            || str_field(r, "dns.question.name").is_some_and(|d| d.contains("dnstest"))
        {
            errs.push(format!("a malformed answer was used: {r}"));
        }
    }
    // Still running.
    assert!(
        std::fs::metadata(format!("/proc/{}", m.pid())).is_ok(),
        "the monitor died: {}",
        m.stderr()
    );
    m.assert_no_problems(&errs);
}

/// A DNS flood (tens of thousands of answers a second on loopback, from a responder in
/// this test) while a client makes TCP connects: every connect is reported, and the
/// monitor's memory and attribution tables stay bounded.
#[test]
fn a_dns_flood_loses_no_connection_and_memory_stays_bounded() {
    require_root("live_dns");
    let (m, _rules) = monitor(&["--ringbuf-bytes", "16777216"]);
    // The responder: every query gets an A answer for its own name, at a unique address.
    let server =
        UdpSocket::bind("127.0.0.1:53").expect("bind 127.0.0.1:53 (is a DNS server running?)");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    server
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let responder = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let mut n = 0u32;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok((len, peer)) = server.recv_from(&mut buf) else {
                continue;
            };
            n = n.wrapping_add(1);
            let mut reply = buf[..len].to_vec();
            reply[2] = 0x81;
            reply[3] = 0x80;
            reply[7] = 1; // one answer
            reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            reply.extend_from_slice(&Ipv4Addr::from(0x0a00_0000 | (n & 0xff_ffff)).octets());
            let _ = server.send_to(&reply, peer);
        }
    });
    // The flood: four clients, each its own socket, for five seconds.
    let deadline = Instant::now() + Duration::from_secs(5);
    let clients: Vec<_> = (0..4u32)
        .map(|c| {
            std::thread::spawn(move || {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                s.connect("127.0.0.1:53").unwrap();
                s.set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                let mut sent = 0u64;
                let mut buf = [0u8; 512];
                while Instant::now() < deadline {
                    let name = format!("f{c}x{sent}.flood.example");
                    let q = monitor::dns::testing::response(sent as u16, &name, 1, &[]);
                    let mut q = q;
                    q[2] = 0x01; // a query: QR off, RD on
                    q[3] = 0;
                    let _ = s.send(&q);
                    let _ = s.recv(&mut buf);
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    // Meanwhile: 200 TCP connects to a local listener.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut connects = 0u32;
    while Instant::now() < deadline && connects < 200 {
        let _ = std::net::TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(1),
        );
        connects += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    let answers: u64 = clients.into_iter().map(|c| c.join().unwrap_or(0)).sum();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = responder.join();
    let pid = std::process::id();
    let recs = m.wait_until(Duration::from_secs(20), |r| {
        connects_to(r, "127.0.0.1", port)
            .iter()
            .filter(|e| u64_field(e, "process.pid") == Some(u64::from(pid)))
            .count()
            >= connects as usize
    });
    let seen = connects_to(&recs, "127.0.0.1", port)
        .iter()
        .filter(|e| u64_field(e, "process.pid") == Some(u64::from(pid)))
        .count();
    let mut errs = Vec::new();
    if seen < connects as usize {
        errs.push(format!(
            "{seen} of {connects} connects reported during the flood"
        ));
    }
    eprintln!("flood: {answers} answers in 5 s, {connects} connects");
    if answers < 20_000 {
        errs.push(format!(
            "the flood was too small to mean anything: {answers} answers"
        ));
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", m.pid())).unwrap_or_default();
    let rss_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    eprintln!("monitor RSS after the flood: {rss_kib} KiB");
    if rss_kib > 256 * 1024 {
        errs.push(format!("monitor RSS {rss_kib} KiB after the flood"));
    }
    if let Some(s) = latest_stats(&recs) {
        let host = u64_field(s, "domain_entries_host").unwrap_or(0);
        if host > monitor::dns::table::HOST_ENTRIES as u64 {
            errs.push(format!("host table holds {host} entries"));
        }
    }
    m.assert_no_problems(&errs);
}
