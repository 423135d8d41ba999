//! A test host in its own network namespace, reached over a veth pair with documentation
//! addresses, and the listeners the simulations talk to. Everything is removed on drop, also
//! when the test panics.
//!
//! Only one such namespace exists at a time on the machine (the addresses are fixed), so
//! creating one takes an exclusive lock that is held until the guard is dropped; a leftover
//! from a test that was killed is cleaned up first.

use std::io::{BufRead as _, BufReader};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd as _;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{TempDir, python3, run, run_ok, wait_or_kill};

/// Host side of the veth pair.
pub const HOST_V4: &str = "203.0.113.1";
pub const HOST_V6: &str = "2001:db8::1";
/// The test host (namespace side).
pub const NS_V4: &str = "203.0.113.7";
pub const NS_V6: &str = "2001:db8::7";
/// A second documentation address of the test host, routed via the veth.
pub const NS_EXTRA_V4: &str = "198.51.100.7";
/// An RFC 1918 address of the test host, routed via the veth: rules that exclude internal
/// destinations must stay quiet for it.
pub const NS_PRIVATE_V4: &str = "10.255.0.7";

const LOCK_PATH: &str = "/tmp/monitor-e2e-netns.lock";
const NS_PREFIX: &str = "monitor-e2e-";
const IF_PREFIX: &str = "mte";

/// A listener inside the namespace, on every address of the test host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// HTTP (python3 http.server); any path answers 200.
    Http(u16),
    /// HTTPS with a self-signed certificate made by `openssl req`; a plain TCP accept when
    /// openssl is missing (clients with -k still make the TCP connect, which is what the
    /// monitor captures).
    Https(u16),
    /// Accepts and reads until the client closes.
    Tcp(u16),
    /// UDP DNS responder.
    Dns(u16),
}

/// The ports the attack simulations use: HTTP 80, 8088, 9001, 4444; HTTPS 443; DNS 53.
pub const STANDARD_LISTENERS: &[Listener] = &[
    Listener::Http(80),
    Listener::Http(8088),
    Listener::Http(9001),
    Listener::Http(4444),
    Listener::Https(443),
    Listener::Dns(53),
];

pub struct NetNsGuard {
    name: String,
    host_if: String,
    listeners: Vec<Child>,
    dir: TempDir,
    /// Held until drop: one test namespace on the machine at a time.
    _lock: std::fs::File,
}

impl NetNsGuard {
    /// Creates the namespace `monitor-e2e-<pid>` and the veth pair, with the addresses above.
    pub fn create() -> NetNsGuard {
        super::require_program(&["ip"], "iproute2");
        let lock = take_lock();
        remove_leftovers();
        let pid = std::process::id();
        let name = format!("{NS_PREFIX}{pid}");
        let host_if = format!("{IF_PREFIX}{pid}h");
        let ns_if = format!("{IF_PREFIX}{pid}n");
        // From here on the guard exists, so whatever is created is removed on failure too.
        let guard = NetNsGuard {
            name: name.clone(),
            host_if: host_if.clone(),
            listeners: Vec::new(),
            dir: TempDir::new("netns"),
            _lock: lock,
        };
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &name,
        ]);
        ip(&["addr", "add", &format!("{HOST_V4}/24"), "dev", &host_if]);
        ip(&[
            "-6",
            "addr",
            "add",
            &format!("{HOST_V6}/64"),
            "dev",
            &host_if,
            "nodad",
        ]);
        ip(&["link", "set", &host_if, "up"]);
        let n = |args: &[&str]| {
            let mut full = vec!["-n", name.as_str()];
            full.extend_from_slice(args);
            ip(&full);
        };
        n(&["link", "set", "lo", "up"]);
        n(&["addr", "add", &format!("{NS_V4}/24"), "dev", &ns_if]);
        n(&["addr", "add", &format!("{NS_EXTRA_V4}/32"), "dev", &ns_if]);
        n(&["addr", "add", &format!("{NS_PRIVATE_V4}/32"), "dev", &ns_if]);
        n(&[
            "-6",
            "addr",
            "add",
            &format!("{NS_V6}/64"),
            "dev",
            &ns_if,
            "nodad",
        ]);
        n(&["link", "set", &ns_if, "up"]);
        for extra in [NS_EXTRA_V4, NS_PRIVATE_V4] {
            ip(&[
                "route",
                "add",
                &format!("{extra}/32"),
                "via",
                NS_V4,
                "dev",
                &host_if,
            ]);
        }
        guard
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace.
    pub fn exec(&self, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Starts the given listeners in one python3 process inside the namespace, waits until
    /// they are bound, then checks the test host answers on every address.
    pub fn start_listeners(&mut self, listeners: &[Listener]) {
        let script = self.dir.join("listeners.py");
        std::fs::write(&script, include_str!("listeners.py"))
            .unwrap_or_else(|e| panic!("write {}: {e}", script.display()));
        let tls = listeners
            .iter()
            .any(|l| matches!(l, Listener::Https(_)))
            .then(|| self.make_certificate())
            .flatten();
        let specs: Vec<String> = listeners
            .iter()
            .map(|l| match (l, &tls) {
                (Listener::Http(p), _) => format!("http:{p}"),
                (Listener::Https(p), Some((cert, key))) => format!("https:{p}:{cert}:{key}"),
                (Listener::Https(p), None) | (Listener::Tcp(p), _) => format!("tcp:{p}"),
                (Listener::Dns(p), _) => format!("dns:{p}"),
            })
            .collect();
        let stderr_path = self
            .dir
            .join(&format!("listeners-{}.err", self.listeners.len()));
        let stderr = std::fs::File::create(&stderr_path).expect("create listener stderr file");
        let mut cmd = self.exec(&python3());
        super::die_with_parent(&mut cmd, libc::SIGKILL);
        let mut child = cmd
            .arg("-u")
            .arg(&script)
            .args(&specs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start the listeners in {}: {e}", self.name));
        let stdout = child.stdout.take().expect("piped stdout");
        self.listeners.push(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(line) if line.trim() == "ready" => {}
            other => panic!(
                "listeners {specs:?} in {} did not start ({other:?}): {}",
                self.name,
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            ),
        }
        // A TCP port answers on every address of the test host before the test goes on
        // (IPv6 neighbour discovery and the veth carrier can take a moment).
        if let Some(port) = listeners.iter().find_map(|l| match l {
            Listener::Http(p) | Listener::Https(p) | Listener::Tcp(p) => Some(*p),
            Listener::Dns(_) => None,
        }) {
            for addr in [NS_V4, NS_V6, NS_EXTRA_V4, NS_PRIVATE_V4] {
                wait_reachable(SocketAddr::new(addr.parse().unwrap(), port));
            }
        }
    }

    /// A self-signed certificate for the HTTPS listener, or `None` when openssl is missing.
    fn make_certificate(&self) -> Option<(String, String)> {
        let cert = self.dir.join("cert.pem");
        let key = self.dir.join("key.pem");
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=test-host.example",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output();
        match out {
            Ok(o) if o.status.success() => Some((
                cert.to_string_lossy().into_owned(),
                key.to_string_lossy().into_owned(),
            )),
            Ok(o) => panic!("openssl req failed: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => {
                eprintln!("openssl not usable ({e}): the 443 listener accepts plain TCP");
                None
            }
        }
    }
}

impl Drop for NetNsGuard {
    fn drop(&mut self) {
        // Processes inside keep the namespace (and so the veth) alive: stop them first.
        for child in &mut self.listeners {
            let _ = child.kill();
            wait_or_kill(child, Duration::from_secs(5));
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .stderr(Stdio::null())
            .output();
    }
}

fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args));
}

fn take_lock() -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_PATH)
        .unwrap_or_else(|e| panic!("open {LOCK_PATH}: {e}"));
    // SAFETY: flock on an fd this File owns.
    let fd = f.as_raw_fd();
    if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        eprintln!("waiting for {LOCK_PATH}: another end-to-end test holds the test namespace");
        // SAFETY: as above.
        let rc = unsafe { libc::flock(fd, libc::LOCK_EX) };
        assert_eq!(
            rc,
            0,
            "flock {LOCK_PATH}: {}",
            std::io::Error::last_os_error()
        );
    }
    f
}

/// Removes namespaces and veths left by a test that was killed (we hold the lock, so none of
/// ours is in use), then checks the addresses are free.
fn remove_leftovers() {
    let list = run(Command::new("ip").args(["netns", "list"]));
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        if let Some(name) = line.split_whitespace().next()
            && name.starts_with(NS_PREFIX)
        {
            eprintln!("removing leftover test namespace {name}");
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
    let links = run(Command::new("ip").args(["-o", "link", "show"]));
    for line in String::from_utf8_lossy(&links.stdout).lines() {
        // "12: mte123h@if11: <...>"
        if let Some(name) = line
            .split(": ")
            .nth(1)
            .map(|n| n.split('@').next().unwrap_or(n))
            && name.starts_with(IF_PREFIX)
            && name.ends_with('h')
        {
            eprintln!("removing leftover test interface {name}");
            let _ = Command::new("ip").args(["link", "del", name]).output();
        }
    }
    let addrs = run(Command::new("ip").args(["-o", "addr", "show"]));
    for line in String::from_utf8_lossy(&addrs.stdout).lines() {
        for taken in [HOST_V4, HOST_V6] {
            assert!(
                !line.contains(&format!(" {taken}/")),
                "{taken} is already assigned on this host ({line}); the end-to-end tests need \
                 it for their test namespace: remove it or stop whatever uses it"
            );
        }
    }
}

fn wait_reachable(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(_) => return,
            Err(e) if Instant::now() >= deadline => {
                panic!("the test host does not answer on {addr}: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Is `ip` one of the test host's addresses (or loopback)? Guards against a test typo
/// sending traffic anywhere else.
pub fn is_test_address(ip: IpAddr) -> bool {
    ip.is_loopback()
        || [NS_V4, NS_V6, NS_EXTRA_V4, NS_PRIVATE_V4]
            .iter()
            .any(|a| a.parse::<IpAddr>().ok() == Some(ip))
}
