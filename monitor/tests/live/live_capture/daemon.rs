//! Kernel capture, end to end (root only): the real `monitor run --events` attached to this
//! kernel, real curl and python3 connecting and sending over IPv4 and IPv6 to loopback and to
//! a test host in a network namespace, each event found by the client's pid and checked
//! field by field against what the test knows about the process it started.
//!
//! Length: over 800 lines: one live test per end-to-end behaviour, sharing the monitor and
//! client harness at the top.

use std::io::{BufRead as _, BufReader};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::common::daemon::{MonitorProcess, loaded_bpf_programs};
use crate::common::netns::{Listener, NS_V4, NS_V6, NetNsGuard};
use crate::common::records::{briefs, events_of, events_to, str_field, u64_field};
use crate::common::{
    self, TempDir, canonical, python3, require_program, require_root, wait_or_kill,
};

/// The monitor with `--events` and an empty rule directory: every event, no alerts.
fn start_monitor(rules: &TempDir, extra: &[String]) -> MonitorProcess {
    let mut args = vec![
        "--events".to_string(),
        "--rules".to_string(),
        rules.path().display().to_string(),
    ];
    args.extend_from_slice(extra);
    MonitorProcess::start(&args)
}

/// A client the test runs, and what the monitor must report about it.
struct Client {
    program: PathBuf,
    args: Vec<String>,
    /// How the test names the client in messages (`process.name` is the resolved file's).
    name: &'static str,
    ip: String,
    port: u16,
    transport: &'static str,
    network_type: &'static str,
    /// A piece of the command line that identifies this client.
    marker: String,
}

impl Client {
    fn curl(url_host: &str, ip: &str, port: u16) -> Client {
        let url = format!("http://{url_host}:{port}/live-capture");
        let net = if ip.contains(':') { "ipv6" } else { "ipv4" };
        Client {
            program: require_program(&["/usr/bin/curl"], "curl"),
            args: vec![
                "-s".into(),
                "-o".into(),
                "/dev/null".into(),
                "--max-time".into(),
                "5".into(),
                url.clone(),
            ],
            name: "curl",
            ip: ip.to_string(),
            port,
            transport: "tcp",
            network_type: net,
            marker: url,
        }
    }

    fn max_time(mut self, secs: u32) -> Client {
        let i = self.args.iter().position(|a| a == "--max-time").unwrap();
        self.args[i + 1] = secs.to_string();
        self
    }

    /// python3 with a one-line script. `family` is the socket's address family; the
    /// destination's network type is what the monitor must report (IPv4-mapped addresses
    /// count as IPv4).
    fn python(script: String, ip: &str, port: u16, transport: &'static str) -> Client {
        let net = if ip.contains(':') { "ipv6" } else { "ipv4" };
        Client {
            program: python3(),
            marker: script.clone(),
            args: vec!["-c".into(), script],
            name: "python3",
            ip: ip.to_string(),
            port,
            transport,
            network_type: net,
        }
    }

    fn python_tcp(family: &str, host: &str, ip: &str, port: u16) -> Client {
        Client::python(
            format!(
                "import socket; s=socket.socket(socket.{family}); s.settimeout(5); \
                 s.connect(('{host}', {port})); s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); s.recv(64)"
            ),
            ip,
            port,
            "tcp",
        )
    }

    fn python_udp(family: &str, host: &str, ip: &str, port: u16) -> Client {
        Client::python(
            format!(
                "import socket; s=socket.socket(socket.{family}, socket.SOCK_DGRAM); \
                 s.sendto(b'live-capture', ('{host}', {port}))"
            ),
            ip,
            port,
            "udp",
        )
    }

    /// A connected UDP socket (`connect` then `send`, as resolvers do).
    fn python_udp_connected(family: &str, host: &str, ip: &str, port: u16) -> Client {
        Client::python(
            format!(
                "import socket; s=socket.socket(socket.{family}, socket.SOCK_DGRAM); \
                 s.connect(('{host}', {port})); s.send(b'live-capture-connected')"
            ),
            ip,
            port,
            "udp",
        )
    }

    /// Runs the client to completion; returns its pid.
    fn run(&self) -> u32 {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.program.display()));
        let pid = child.id();
        wait_or_kill(&mut child, Duration::from_secs(15));
        pid
    }

    /// Every difference between the monitor's event(s) for `pid` and what the test knows.
    fn check(&self, recs: &[Value], pid: u32) -> Vec<String> {
        let label = format!(
            "{} {} -> {}:{} ({})",
            self.name, pid, self.ip, self.port, self.transport
        );
        let found = events_to(recs, pid, &self.ip, self.port);
        let Some(ev) = found.first() else {
            return vec![format!(
                "{label}: no event; events of this pid:\n{}",
                briefs(events_of(recs, pid))
            )];
        };
        let mut errs = Vec::new();
        let mut expect_str = |path: &str, want: &str| {
            let got = str_field(ev, path);
            if got != Some(want) {
                errs.push(format!("{label}: {path} is {got:?}, expected {want:?}"));
            }
        };
        // The name is the real file's (python3 runs /usr/bin/python3.11 here): like the
        // executable, and unlike comm or a symlink's name, the process cannot choose it.
        let exe = canonical(&self.program);
        let real_name = exe.rsplit('/').next().unwrap_or_default().to_string();
        expect_str("process.name", &real_name);
        expect_str("process.executable", &exe);
        expect_str("user.id", "0");
        expect_str("network.transport", self.transport);
        expect_str("network.type", self.network_type);
        expect_str(
            "event.action",
            if self.transport == "tcp" {
                "connect"
            } else {
                "send"
            },
        );
        expect_str("event.kind", "event");
        let ppid = u64_field(ev, "process.parent.pid");
        if ppid != Some(u64::from(std::process::id())) {
            errs.push(format!(
                "{label}: process.parent.pid is {ppid:?}, expected the test's pid {}",
                std::process::id()
            ));
        }
        match str_field(ev, "process.command_line") {
            Some(cl) if cl.contains(&self.marker) => {}
            other => errs.push(format!(
                "{label}: process.command_line is {other:?}, expected it to contain {:?}",
                self.marker
            )),
        }
        errs
    }
}

/// Runs the clients, waits for their events and checks every field; one failure lists all
/// the differences.
fn run_and_check(m: &MonitorProcess, clients: &[Client]) {
    let pids: Vec<u32> = clients.iter().map(Client::run).collect();
    let recs = m.wait_until(Duration::from_secs(15), |recs| {
        clients
            .iter()
            .zip(&pids)
            .all(|(c, &pid)| !events_to(recs, pid, &c.ip, c.port).is_empty())
    });
    let errs: Vec<String> = clients
        .iter()
        .zip(&pids)
        .flat_map(|(c, &pid)| c.check(&recs, pid))
        .collect();
    m.assert_no_problems(&errs);
}

#[test]
fn tcp_connects_and_udp_sends_over_ipv4_and_ipv6_name_the_process() {
    require_root("live_capture");
    let mut ns = NetNsGuard::create();
    ns.start_listeners(&[Listener::Http(8088), Listener::Dns(53)]);
    let lo4 = common::serve_http_on("127.0.0.1:0".parse().unwrap()).expect("bind 127.0.0.1");
    let lo6 = common::serve_http_on("[::1]:0".parse().unwrap()).expect("bind ::1");
    let udp4 = UdpSocket::bind("127.0.0.1:0").expect("bind udp 127.0.0.1");
    let udp6 = UdpSocket::bind("[::1]:0").expect("bind udp ::1");
    let u4 = udp4.local_addr().unwrap().port();
    let u6 = udp6.local_addr().unwrap().port();

    let rules = TempDir::new("rules");
    let m = start_monitor(&rules, &[]);
    let clients = vec![
        // curl, TCP
        Client::curl("127.0.0.1", "127.0.0.1", lo4.port()),
        Client::curl("[::1]", "::1", lo6.port()),
        Client::curl(NS_V4, NS_V4, 8088),
        Client::curl(&format!("[{NS_V6}]"), NS_V6, 8088),
        // python3, TCP
        Client::python_tcp("AF_INET", "127.0.0.1", "127.0.0.1", lo4.port()),
        Client::python_tcp("AF_INET6", "::1", "::1", lo6.port()),
        Client::python_tcp("AF_INET", NS_V4, NS_V4, 8088),
        Client::python_tcp("AF_INET6", NS_V6, NS_V6, 8088),
        // An IPv4 destination reached through an IPv6 socket is reported as IPv4.
        Client::python_tcp("AF_INET6", &format!("::ffff:{NS_V4}"), NS_V4, 8088),
        // python3, UDP, unconnected and connected sockets
        Client::python_udp("AF_INET", "127.0.0.1", "127.0.0.1", u4),
        Client::python_udp("AF_INET6", "::1", "::1", u6),
        Client::python_udp("AF_INET", NS_V4, NS_V4, 53),
        Client::python_udp("AF_INET6", NS_V6, NS_V6, 53),
        Client::python_udp_connected("AF_INET", NS_V4, NS_V4, 53),
        Client::python_udp_connected("AF_INET6", NS_V6, NS_V6, 53),
    ];
    run_and_check(&m, &clients);
    drop(m);
    drop(ns);
}

#[test]
fn process_that_exits_right_after_connecting_keeps_its_executable_and_command_line() {
    require_root("live_capture");
    let mut ns = NetNsGuard::create();
    ns.start_listeners(&[Listener::Http(8088)]);
    let rules = TempDir::new("rules");
    let m = start_monitor(&rules, &[]);
    // Closed ports: the connect is refused at once and the process exits before user space
    // could read anything from /proc after the fact.
    let mut clients = Vec::new();
    for round in 0..3 {
        for (host, ip) in [(NS_V4, NS_V4), ("127.0.0.1", "127.0.0.1")] {
            let port = 9 + round;
            clients.push(Client::python(
                format!(
                    "import socket; s=socket.socket(); s.settimeout(1); s.connect_ex(('{host}', {port}))"
                ),
                ip,
                port,
                "tcp",
            ));
            clients.push(Client::curl(host, ip, port).max_time(1));
        }
    }
    run_and_check(&m, &clients);
}

#[test]
fn udp_flood_is_bounded_and_a_connect_during_it_is_still_reported() {
    require_root("live_capture");
    let mut ns = NetNsGuard::create();
    ns.start_listeners(&[Listener::Http(8088), Listener::Dns(53)]);
    let rules = TempDir::new("rules");
    let m = start_monitor(&rules, &[]);

    const FLOOD: u64 = 100_000;
    // 100,000 datagrams to one destination as fast as python can send them; "started" once
    // the flood runs, "done <unix time>" when the loop ends; then, after the suppression
    // window, one last datagram that carries the count of the tail of the flood.
    let flood_script = format!(
        "import socket, sys, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         d = ('{NS_V4}', 53)\n\
         for i in range({FLOOD}):\n\
         \x20   s.sendto(b'flood', d)\n\
         \x20   if i == 2000: print('started', flush=True)\n\
         print('done', time.time(), flush=True)\n\
         time.sleep(1.5)\n\
         s.sendto(b'flood-last', d)\n"
    );
    let mut flood = Command::new(python3())
        .arg("-c")
        .arg(&flood_script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the flood");
    let flood_pid = flood.id();
    let mut lines = BufReader::new(flood.stdout.take().unwrap()).lines();
    let started = lines.next().and_then(Result::ok);
    assert_eq!(
        started.as_deref(),
        Some("started"),
        "the flood did not start"
    );
    let connect = Client::curl(NS_V4, NS_V4, 8088);
    let connect_pid = connect.run();
    let connect_done = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let done_line = lines.next().and_then(Result::ok).unwrap_or_default();
    let flood_done: f64 = done_line
        .strip_prefix("done ")
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("the flood did not finish: {done_line:?}"));
    let status = wait_or_kill(&mut flood, Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "the flood failed: {status:?}"
    );
    assert!(
        connect_done < flood_done,
        "the flood ended ({flood_done}) before the TCP connect finished ({connect_done}); \
         the test could not check a connect under load"
    );

    let flood_sent = FLOOD + 1;
    let recs = m.wait_until(Duration::from_secs(15), |recs| {
        let counted: u64 = events_to(recs, flood_pid, NS_V4, 53)
            .iter()
            .map(|e| 1 + u64_field(e, "monitor.suppressed").unwrap_or(0))
            .sum();
        counted >= flood_sent && !events_to(recs, connect_pid, NS_V4, 8088).is_empty()
    });

    // The TCP connect made during the flood is there, complete.
    let errs = connect.check(&recs, connect_pid);
    assert!(errs.is_empty(), "{}", errs.join("\n"));

    let flood_events = events_to(&recs, flood_pid, NS_V4, 53);
    let suppressed: u64 = flood_events
        .iter()
        .map(|e| u64_field(e, "monitor.suppressed").unwrap_or(0))
        .sum();
    println!(
        "flood: {flood_sent} datagrams -> {} events, {suppressed} suppressed in the kernel:\n{}",
        flood_events.len(),
        briefs(flood_events.iter().copied())
    );
    assert!(
        !flood_events.is_empty() && flood_events.len() <= 30,
        "{flood_sent} datagrams to one destination gave {} events (expected a few, at most 30)",
        flood_events.len()
    );
    assert!(
        flood_events
            .iter()
            .any(|e| u64_field(e, "monitor.suppressed").is_some_and(|n| n > 0)),
        "no flood event carries monitor.suppressed:\n{}",
        briefs(flood_events.iter().copied())
    );
    // Every datagram is accounted for: reported, or counted as suppressed on a later event.
    assert_eq!(
        flood_events.len() as u64 + suppressed,
        flood_sent,
        "events + suppressed counts must add up to the datagrams sent"
    );
    // Loss is reported in the stream as well as in the log: an `events-lost` record exactly
    // when the log says events were lost (none here: flood control holds).
    let lost_records = recs
        .iter()
        .filter(|r| str_field(r, "event.action") == Some("events-lost"))
        .count();
    assert_eq!(
        lost_records > 0,
        m.stderr().contains("events lost"),
        "events-lost records ({lost_records}) and the log disagree:\n{}",
        m.stderr()
    );
    assert!(
        !m.stderr().contains("events lost"),
        "the ring buffer lost events during the flood:\n{}",
        m.stderr()
    );
}

#[test]
fn events_lost_in_a_full_ring_buffer_enter_the_stream_as_records() {
    require_root("live_capture");
    let rules = TempDir::new("rules");
    // The smallest ring buffer (one page: a few dozen connect events), and the monitor
    // stopped while the connects happen, so the kernel must drop most of them.
    let mut m = start_monitor(&rules, &["--ringbuf-bytes".into(), "4096".into()]);
    const CONNECTS: u64 = 3000;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    common::send_signal(m.pid(), libc::SIGSTOP);
    let script = format!(
        "import socket\n\
         for i in range({CONNECTS}):\n\
         \x20   s = socket.socket()\n\
         \x20   s.connect_ex(('127.0.0.1', {port}))\n\
         \x20   s.close()\n"
    );
    let status = Command::new(python3())
        .arg("-c")
        .arg(&script)
        .stdin(Stdio::null())
        .status();
    common::send_signal(m.pid(), libc::SIGCONT);
    assert!(
        status.as_ref().is_ok_and(|s| s.success()),
        "the connects failed: {status:?}"
    );
    let lost_tcp = |recs: &[Value]| -> u64 {
        recs.iter()
            .filter(|r| str_field(r, "event.action") == Some("events-lost"))
            .filter_map(|r| u64_field(r, "monitor.lost.tcp_connect"))
            .sum()
    };
    // Far more connects than the ring holds were made while nothing read it.
    let recs = m.wait_until(Duration::from_secs(15), |recs| {
        lost_tcp(recs) >= CONNECTS - 200
    });
    let lost = lost_tcp(&recs);
    let lost_records: Vec<&Value> = recs
        .iter()
        .filter(|r| str_field(r, "event.action") == Some("events-lost"))
        .collect();
    assert!(
        lost >= CONNECTS - 200,
        "{CONNECTS} connects with the reader stopped, {lost} reported lost:\n{}\n{}",
        serde_json::to_string(&lost_records).unwrap(),
        m.stderr()
    );
    println!(
        "{lost} lost: {}",
        serde_json::to_string(&lost_records).unwrap()
    );
    for r in &lost_records {
        assert_eq!(str_field(r, "event.kind"), Some("metric"), "{r}");
        assert!(
            u64_field(r, "monitor.lost.total").is_some_and(|n| n > 0),
            "{r}"
        );
        for h in [
            "tcp_connect",
            "udp_sendmsg",
            "udpv6_sendmsg",
            "exec",
            "exit",
        ] {
            assert!(
                u64_field(r, &format!("monitor.lost.{h}")).is_some(),
                "{h}: {r}"
            );
        }
    }
    m.stop(Duration::from_secs(10));
}

#[test]
fn monitor_does_not_report_its_own_syslog_connection() {
    require_root("live_capture");
    let collector = UdpSocket::bind("127.0.0.1:0").expect("bind the syslog collector");
    collector
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let syslog_port = collector.local_addr().unwrap().port();
    let lo4 = common::serve_http_on("127.0.0.1:0".parse().unwrap()).expect("bind 127.0.0.1");
    let rules = TempDir::new("rules");
    let m = start_monitor(
        &rules,
        &[
            "--output".into(),
            "stdout".into(),
            "--output".into(),
            format!("syslog+udp://127.0.0.1:{syslog_port}"),
        ],
    );
    let monitor_pid = m.pid();
    let clients = vec![
        Client::curl("127.0.0.1", "127.0.0.1", lo4.port()),
        Client::python_tcp("AF_INET", "127.0.0.1", "127.0.0.1", lo4.port()),
    ];
    run_and_check(&m, &clients);

    // The events went out over syslog too: the monitor did send to the collector.
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline && !received.iter().any(|d: &String| d.contains("curl")) {
        if let Ok(n) = collector.recv(&mut buf) {
            received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(
        received.iter().any(|d| d.contains("curl")),
        "the syslog collector on 127.0.0.1:{syslog_port} got no record of the curl event ({} datagrams)",
        received.len()
    );
    // Let a few more batches pass: a feedback loop would show up as events of the monitor.
    std::thread::sleep(Duration::from_secs(2));
    let recs = m.records();
    let own: Vec<&Value> = events_of(&recs, monitor_pid);
    assert!(
        own.is_empty(),
        "the monitor reported its own connections:\n{}",
        briefs(own)
    );
    let to_collector: Vec<&Value> = recs
        .iter()
        .filter(|r| {
            common::records::is_event(r)
                && str_field(r, "destination.ip") == Some("127.0.0.1")
                && u64_field(r, "destination.port") == Some(u64::from(syslog_port))
        })
        .collect();
    assert!(
        to_collector.is_empty(),
        "sends to the monitor's own syslog destination were reported:\n{}",
        briefs(to_collector)
    );
}

#[test]
fn sigterm_stops_promptly_and_detaches_every_program() {
    require_root("live_capture");
    require_program(&["bpftool"], "bpftool");
    let rules = TempDir::new("rules");
    let mut m = start_monitor(&rules, &[]);
    // While it runs: the programs it holds, by id (names are not unique on the machine).
    let ids = m.bpf_program_ids();
    assert!(
        !ids.is_empty(),
        "the running monitor holds no eBPF program fds"
    );
    let loaded = loaded_bpf_programs();
    let ours: Vec<&(u32, String)> = loaded.iter().filter(|(id, _)| ids.contains(id)).collect();
    println!("the monitor's programs: {ours:?}");
    assert_eq!(
        ours.len(),
        ids.len(),
        "bpftool prog show does not list every program the monitor holds ({ids:?}): {loaded:?}"
    );
    // Capturing, not just loaded: one event arrives.
    let lo4 = common::serve_http_on("127.0.0.1:0".parse().unwrap()).expect("bind 127.0.0.1");
    run_and_check(&m, &[Client::curl("127.0.0.1", "127.0.0.1", lo4.port())]);

    let (status, took) = m.stop(Duration::from_secs(10));
    assert!(
        status.success(),
        "the monitor exited with {status} after SIGTERM; stderr:\n{}",
        m.stderr()
    );
    assert!(
        took <= Duration::from_secs(2),
        "the monitor took {took:?} to exit after SIGTERM (expected at most 2 s)"
    );
    // Program memory is freed after an RCU grace period: allow a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left: Vec<(u32, String)> = loaded_bpf_programs()
            .into_iter()
            .filter(|(id, _)| ids.contains(id))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "programs still loaded after the monitor exited: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The destinations a UDP socket may be connected to without ever sending (as glibc's
/// getaddrinfo does to sort addresses, RFC 6724): none of these may give an event.
const QUIET_UDP_CONNECTS: &str = "import socket, sys
u4, u6 = int(sys.argv[1]), int(sys.argv[2])
for family, host, port in [
    (socket.AF_INET, '203.0.113.7', 5301),
    (socket.AF_INET6, '2001:db8::7', 5302),
    (socket.AF_INET, '203.0.113.99', 5303),
    (socket.AF_INET, '127.0.0.1', u4),
    (socket.AF_INET6, '::1', u6),
    (socket.AF_INET, '0.0.0.0', 9090),
    (socket.AF_INET6, '::', 9090),
]:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.connect((host, port))
    s.close()
socket.getaddrinfo('localhost', 9090, type=socket.SOCK_STREAM)
socket.getaddrinfo(None, 9090, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
";

/// Connected UDP sockets that send only when the test says so, three datagrams each.
const CONNECT_THEN_SEND: &str = "import socket, sys
u4, u6 = int(sys.argv[1]), int(sys.argv[2])
socks = []
for family, host, port in [
    (socket.AF_INET, '203.0.113.7', 53),
    (socket.AF_INET6, '2001:db8::7', 53),
    (socket.AF_INET, '127.0.0.1', u4),
    (socket.AF_INET6, '::1', u6),
]:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.connect((host, port))
    socks.append(s)
elsewhere = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
elsewhere.connect(('203.0.113.8', 5304))
print('connected', flush=True)
sys.stdin.readline()
for s in socks:
    for _ in range(3):
        s.send(b'live-capture-connected')
# A connected socket that only ever sends elsewhere: its peer received nothing.
elsewhere.sendto(b'live-capture-elsewhere', ('203.0.113.9', 5305))
print('sent', flush=True)
";

/// `python3 -u -m http.server PORT [--bind ADDR]` until it serves, then killed; returns its pid.
fn run_http_server(mut cmd: Command) -> u32 {
    let mut server = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start python3 -m http.server");
    let pid = server.id();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(
        first.starts_with("Serving HTTP"),
        "http.server did not start: {first:?}"
    );
    let _ = server.kill();
    wait_or_kill(&mut server, Duration::from_secs(5));
    pid
}

/// Issue #19: a UDP `connect()` sends nothing, so it is not a connection. On the cgroup
/// backend it used to be reported at once (getaddrinfo's address sorting gave events to `::`
/// and `0.0.0.0`, and http.server a T1571 alert); now a connected socket is reported at its
/// first datagram, once, and the unspecified address never.
#[test]
fn udp_connect_without_a_send_is_not_reported_and_a_connected_socket_is_at_its_first_datagram() {
    require_root("live_capture");
    let mut ns = NetNsGuard::create();
    ns.start_listeners(&[Listener::Dns(53)]);
    let udp4 = UdpSocket::bind("127.0.0.1:0").expect("bind udp 127.0.0.1");
    let udp6 = UdpSocket::bind("[::1]:0").expect("bind udp ::1");
    let u4 = udp4.local_addr().unwrap().port();
    let u6 = udp6.local_addr().unwrap().port();
    let ports = [u4.to_string(), u6.to_string()];
    let rules = TempDir::new("rules");
    let m = start_monitor(&rules, &[]);

    // (a) connect() without a send, and getaddrinfo.
    let quiet = Command::new(python3())
        .arg("-c")
        .arg(QUIET_UDP_CONNECTS)
        .args(&ports)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    let quiet_pid = quiet.id();
    let quiet_out = quiet.wait_with_output().expect("run python3");
    assert!(
        quiet_out.status.success(),
        "the quiet script failed: {}",
        String::from_utf8_lossy(&quiet_out.stderr)
    );

    // (d) http.server, bound to loopback here and, as run live, to every address in the
    // test namespace (its getaddrinfo connects UDP sockets to `::` and `0.0.0.0`).
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut http = Command::new(python3());
    http.args(["-u", "-m", "http.server", &free_port.to_string()])
        .args(["--bind", "127.0.0.1"]);
    let http_pid = run_http_server(http);
    let mut http_ns = ns.exec(&python3());
    http_ns.args(["-u", "-m", "http.server", "9090"]);
    let http_ns_pid = run_http_server(http_ns);

    // (b) connected sockets: nothing at connect(), one event each at the first datagram.
    let mut sender = Command::new(python3())
        .arg("-c")
        .arg(CONNECT_THEN_SEND)
        .args(&ports)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the connected sender");
    let sender_pid = sender.id();
    let mut sender_out = BufReader::new(sender.stdout.take().unwrap()).lines();
    assert_eq!(
        sender_out.next().and_then(Result::ok).as_deref(),
        Some("connected")
    );
    // Longer than the monitor's poll interval and output flush, many times over.
    std::thread::sleep(Duration::from_millis(1500));
    let early = m.records();
    let early = events_of(&early, sender_pid);
    assert!(
        early.is_empty(),
        "connected UDP sockets were reported before they sent anything:\n{}",
        briefs(early)
    );
    {
        use std::io::Write as _;
        let mut stdin = sender.stdin.take().unwrap();
        stdin.write_all(b"send\n").expect("tell the sender to send");
    }
    assert_eq!(
        sender_out.next().and_then(Result::ok).as_deref(),
        Some("sent")
    );
    let status = wait_or_kill(&mut sender, Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "the sender failed");
    let connected: Vec<Client> = [
        ("203.0.113.7", 53),
        ("2001:db8::7", 53),
        ("127.0.0.1", u4),
        ("::1", u6),
    ]
    .into_iter()
    .map(|(ip, port)| Client {
        // The command line is cut at 512 bytes in the kernel: a marker from its start.
        marker: "socks.append(s)".to_string(),
        ..Client::python(CONNECT_THEN_SEND.to_string(), ip, port, "udp")
    })
    .collect();

    // (c) unconnected sends, as before.
    let unconnected = [
        Client::python_udp("AF_INET", NS_V4, NS_V4, 53),
        Client::python_udp("AF_INET6", NS_V6, NS_V6, 53),
    ];
    let unconnected_pids: Vec<u32> = unconnected.iter().map(Client::run).collect();

    let recs = m.wait_until(Duration::from_secs(15), |recs| {
        !events_to(recs, sender_pid, "203.0.113.9", 5305).is_empty()
            && connected
                .iter()
                .all(|c| !events_to(recs, sender_pid, &c.ip, c.port).is_empty())
            && unconnected
                .iter()
                .zip(&unconnected_pids)
                .all(|(c, &pid)| !events_to(recs, pid, &c.ip, c.port).is_empty())
    });
    drop(recs);
    // Let a few more batches through: a late duplicate would show up now.
    std::thread::sleep(Duration::from_secs(1));
    let recs = m.records();

    let mut errs: Vec<String> = Vec::new();
    for c in &connected {
        errs.extend(c.check(&recs, sender_pid));
        let n = events_to(&recs, sender_pid, &c.ip, c.port).len();
        if n != 1 {
            errs.push(format!(
                "connected socket to {}:{}: {n} events for 3 datagrams (expected exactly 1)",
                c.ip, c.port
            ));
        }
    }
    if events_to(&recs, sender_pid, "203.0.113.9", 5305).len() != 1 {
        errs.push("a sendto() to another address on a connected socket: expected 1 event".into());
    }
    // The explicit send is the one event the sender has beyond the connected sockets'.
    let sent: usize = events_of(&recs, sender_pid).len();
    if sent != connected.len() + 1 {
        errs.push(format!(
            "the sender has {sent} events, expected {} (none to the peer of the socket \
             that only sent elsewhere):\n{}",
            connected.len() + 1,
            briefs(events_of(&recs, sender_pid))
        ));
    }
    for (c, &pid) in unconnected.iter().zip(&unconnected_pids) {
        errs.extend(c.check(&recs, pid));
    }
    let quiet_events = events_of(&recs, quiet_pid);
    if !quiet_events.is_empty() {
        errs.push(format!(
            "UDP connect() without a send was reported:\n{}",
            briefs(quiet_events)
        ));
    }
    for (what, pid) in [
        ("http.server", http_pid),
        ("http.server (namespace)", http_ns_pid),
    ] {
        let udp: Vec<&Value> = events_of(&recs, pid)
            .into_iter()
            .filter(|r| str_field(r, "network.transport") == Some("udp"))
            .collect();
        if !udp.is_empty() {
            errs.push(format!(
                "{what} (pid {pid}) gave UDP events:\n{}",
                briefs(udp)
            ));
        }
    }
    let unspecified: Vec<&Value> = recs
        .iter()
        .filter(|r| {
            common::records::is_connection_event(r)
                && matches!(str_field(r, "destination.ip"), Some("0.0.0.0" | "::"))
        })
        .collect();
    if !unspecified.is_empty() {
        errs.push(format!(
            "events to the unspecified address:\n{}",
            briefs(unspecified)
        ));
    }
    m.assert_no_problems(&errs);
    drop(m);
    drop(ns);
}
