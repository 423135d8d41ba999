//! `loadgen`: the benchmark's load generator (`cargo xtask bench` drives it; it can also be
//! run by hand: `cargo run --release -p xtask --bin loadgen -- --help`).
//!
//! A compiled loop rather than a script, so its own overhead per operation is a few hundred
//! nanoseconds next to the tens of microseconds the kernel spends on a connect: what changes
//! between runs is the cost of whatever watches the connects, not the generator.
//!
//! Modes (each prints one JSON line with its result on stdout):
//! - `tcp`: loopback TCP connect + accept + close in one thread pinned to one core, as fast
//!   as possible or at `--rate` per second, for `--duration` seconds.
//! - `udp`: loopback UDP `sendto`, rotating over `--destinations` addresses in 127.0.0.0/8.
//! - `swarm`: in a private network namespace, starts `--procs` processes (each an exec of
//!   this binary) that each connect to `--per-proc` distinct addresses (198.18.0.0/15) and then stay
//!   alive until the swarm's standard input closes. For the memory benchmark.
//! - `exec`: fork + exec of `--program` (default /bin/true) and wait, in a loop pinned to one
//!   core: processes started per second (the exec-storm benchmark).
//! - `spin`: a busy loop at `SCHED_IDLE` on one core: keeps that core out of its idle state
//!   (which makes cross-core wake-ups slow on a VM) while yielding to anything else there.
//! - `mixed`: in a private network namespace, a steady mix of TCP connects and UDP sends to
//!   a rotating set of destinations plus short-lived processes, for the soak run.
//!
//! The namespaced modes route the documentation ranges (192.0.2.0/24, 198.51.100.0/24,
//! 203.0.113.0/24) as local addresses inside the namespace, so every connect is refused at
//! once by the namespace's own loopback and no packet can leave the machine.

use std::io::{Read as _, Write as _};
use std::mem;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Connection load generator for the monitor's benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Loopback TCP: connect, accept, close (client closes with RST, so no TIME_WAIT piles up).
    Tcp(LoopArgs),
    /// Loopback UDP sendto, rotating over --destinations addresses in 127.0.0.0/8.
    Udp {
        #[command(flatten)]
        common: LoopArgs,
        /// Distinct destination addresses (127.0.0.1 upwards); 1 sends to one destination.
        #[arg(long, default_value_t = 65536)]
        destinations: u32,
    },
    /// Start --procs processes that each connect to --per-proc distinct destinations and
    /// stay alive until standard input closes (memory benchmark).
    Swarm {
        #[arg(long, default_value_t = 10_000)]
        procs: u32,
        #[arg(long, default_value_t = 10)]
        per_proc: u32,
    },
    /// One swarm member (internal): connects to its destinations, reports, waits.
    Hold {
        #[arg(long)]
        index: u32,
        #[arg(long)]
        per_proc: u32,
        /// Exit after connecting instead of waiting (the mixed mode's short-lived processes).
        #[arg(long)]
        exit: bool,
    },
    /// Fork + exec + wait of --program in a loop: processes per second.
    Exec {
        #[command(flatten)]
        common: LoopArgs,
        /// The program each child execs (no arguments).
        #[arg(long, default_value = "/bin/true")]
        program: String,
    },
    /// Spin at SCHED_IDLE on --cpu for --duration seconds.
    Spin(LoopArgs),
    /// Mixed traffic for --duration seconds: TCP connects and UDP sends at --rate per second
    /// to a rotating set of --keys destinations, and a short-lived process every
    /// --spawn-every-ms milliseconds (soak run).
    Mixed {
        #[command(flatten)]
        common: LoopArgs,
        #[arg(long, default_value_t = 50_000)]
        keys: u32,
        #[arg(long, default_value_t = 100)]
        spawn_every_ms: u64,
    },
}

#[derive(Args, Clone)]
struct LoopArgs {
    /// Seconds to run.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Pin to this CPU (sched_setaffinity).
    #[arg(long)]
    cpu: Option<usize>,
    /// Operations per second to aim for; without it, as fast as possible.
    #[arg(long)]
    rate: Option<f64>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.mode {
        Mode::Tcp(a) => tcp_loop(&a),
        Mode::Udp {
            common,
            destinations,
        } => udp_loop(&common, destinations),
        Mode::Swarm { procs, per_proc } => swarm(procs, per_proc),
        Mode::Hold {
            index,
            per_proc,
            exit,
        } => hold(index, per_proc, exit),
        Mode::Mixed {
            common,
            keys,
            spawn_every_ms,
        } => mixed(&common, keys, spawn_every_ms),
        Mode::Exec { common, program } => exec_loop(&common, &program),
        Mode::Spin(a) => spin(&a),
    }
}

fn pin_to_cpu(cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity reads it and touches nothing else.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        bail!(
            "pinning to CPU {cpu} failed: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Spaces operations at a fixed rate. It sleeps only when more than half a millisecond
/// ahead, so at high rates operations come in short bursts while the average stays exact.
struct Pacer {
    start: Instant,
    nanos_per_op: Option<f64>,
}

impl Pacer {
    fn new(rate: Option<f64>) -> Self {
        Pacer {
            start: Instant::now(),
            nanos_per_op: rate.filter(|r| *r > 0.0).map(|r| 1e9 / r),
        }
    }

    fn before(&self, done: u64) {
        if let Some(ns) = self.nanos_per_op {
            let due = self.start + Duration::from_nanos((ns * done as f64) as u64);
            let now = Instant::now();
            if due > now + Duration::from_micros(500) {
                std::thread::sleep(due - now);
            }
        }
    }
}

/// The loop's result, printed as one JSON line.
fn report(mode: &str, a: &LoopArgs, ops: u64, errors: u64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{}",
        json!({
            "mode": mode,
            "ops": ops,
            "errors": errors,
            "elapsed_s": secs,
            "rate": ops as f64 / secs,
            "target_rate": a.rate,
            "cpu": a.cpu,
        })
    );
}

fn set_linger_zero(fd: i32) -> std::io::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: fd is an open socket; the option value is a valid `linger` of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn tcp_loop(a: &LoopArgs) -> Result<()> {
    if let Some(cpu) = a.cpu {
        pin_to_cpu(cpu)?;
    }
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the loopback listener")?;
    let addr = listener.local_addr()?;
    let deadline = Duration::from_secs_f64(a.duration);
    let pacer = Pacer::new(a.rate);
    let (mut ops, mut errors) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < deadline {
        pacer.before(ops);
        match TcpStream::connect(addr) {
            Ok(client) => {
                // The handshake completes inside connect() on loopback, so the connection is
                // already waiting in the accept queue.
                let server = listener.accept();
                // RST on close: no TIME_WAIT, so the socket tables (and the rate) do not
                // drift over a long run.
                let _ = set_linger_zero(client.as_raw_fd());
                drop(client);
                match server {
                    Ok(_) => ops += 1,
                    Err(_) => errors += 1,
                }
            }
            Err(_) => {
                errors += 1;
                if errors > 1000 && ops == 0 {
                    bail!("every connect to {addr} fails");
                }
            }
        }
    }
    report("tcp", a, ops, errors, start.elapsed());
    Ok(())
}

/// A busy loop at the lowest scheduling class: the core never idles, and any other task
/// that wants it (the monitor) gets it at once.
fn spin(a: &LoopArgs) -> Result<()> {
    if let Some(cpu) = a.cpu {
        pin_to_cpu(cpu)?;
    }
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param; pid 0 is this process.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
        bail!("SCHED_IDLE: {}", std::io::Error::last_os_error());
    }
    let deadline = Duration::from_secs_f64(a.duration);
    let start = Instant::now();
    let mut spins = 0u64;
    while start.elapsed() < deadline {
        spins = std::hint::black_box(spins + 1);
    }
    report("spin", a, spins, 0, start.elapsed());
    Ok(())
}

/// fork(), execv(program) in the child, waitpid() in the parent: one process per operation,
/// as a shell script or a build starts them. fork, not vfork or posix_spawn, so each child
/// is a full copy the monitor sees fork, exec and exit for.
fn exec_loop(a: &LoopArgs, program: &str) -> Result<()> {
    if let Some(cpu) = a.cpu {
        pin_to_cpu(cpu)?;
    }
    let path = std::ffi::CString::new(program).context("program path with a NUL byte")?;
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let deadline = Duration::from_secs_f64(a.duration);
    let pacer = Pacer::new(a.rate);
    let (mut ops, mut errors) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < deadline {
        pacer.before(ops);
        // SAFETY: the generator is single-threaded; the child calls only execve and _exit
        // (async-signal-safe) on pointers prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: NUL-terminated path, argv and envp arrays ending in NULL.
            unsafe {
                libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127);
            }
        }
        if pid < 0 {
            errors += 1;
            if errors > 1000 && ops == 0 {
                bail!("fork keeps failing: {}", std::io::Error::last_os_error());
            }
            continue;
        }
        let mut status = 0;
        // SAFETY: our own child; `status` is a valid pointer.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        if waited == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            ops += 1;
        } else {
            errors += 1;
            if errors > 1000 && ops == 0 {
                bail!("{program} never exits 0 (status {status:#x})");
            }
        }
    }
    report("exec", a, ops, errors, start.elapsed());
    Ok(())
}

/// The i-th loopback destination: 127.0.0.1, 127.0.0.2, ... (all of 127.0.0.0/8 is local).
fn loopback_dest(i: u32, port: u16) -> SocketAddr {
    let host = 1 + (i % 0x00ff_fffe);
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(0x7f00_0000 | host), port))
}

fn udp_loop(a: &LoopArgs, destinations: u32) -> Result<()> {
    ensure!(destinations > 0, "--destinations must be at least 1");
    if let Some(cpu) = a.cpu {
        pin_to_cpu(cpu)?;
    }
    // A bound receiver so the datagrams are delivered (and dropped when its small buffer is
    // full) rather than answered with ICMP port-unreachable. Bound to the wildcard address so
    // it receives for every 127.x address.
    let receiver = UdpSocket::bind("0.0.0.0:0").context("binding the UDP receiver")?;
    let port = receiver.local_addr()?.port();
    let sender = UdpSocket::bind("127.0.0.1:0").context("binding the UDP sender")?;
    let payload = [0u8; 32];
    let deadline = Duration::from_secs_f64(a.duration);
    let pacer = Pacer::new(a.rate);
    let (mut ops, mut errors) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < deadline {
        pacer.before(ops);
        let dest = loopback_dest((ops % destinations as u64) as u32, port);
        match sender.send_to(&payload, dest) {
            Ok(_) => ops += 1,
            Err(_) => errors += 1,
        }
    }
    drop(receiver);
    report("udp", a, ops, errors, start.elapsed());
    Ok(())
}

/// Documentation ranges routed as local inside the private namespace.
const DOC_NETS: [[u8; 3]; 3] = [[198, 51, 100], [203, 0, 113], [192, 0, 2]];
/// Hosts .1 to .254 of each range.
const HOSTS_PER_NET: u32 = 254;
const FIRST_PORT: u32 = 20_000;

/// Destination number `key`: distinct for every key below 762 * 45,000.
fn doc_dest(key: u32) -> SocketAddrV4 {
    let addrs = DOC_NETS.len() as u32 * HOSTS_PER_NET;
    let a = key % addrs;
    let net = DOC_NETS[(a / HOSTS_PER_NET) as usize];
    let host = (a % HOSTS_PER_NET) as u8 + 1;
    let port = (FIRST_PORT + key / addrs) as u16;
    SocketAddrV4::new(Ipv4Addr::new(net[0], net[1], net[2], host), port)
}

/// The benchmarking range (RFC 2544), routed as local inside the private namespace: the
/// swarm's members reach a distinct address each, so every member's connects open groups
/// of their own in the correlation rules that group by address (the store at its cap).
const BENCH_NET: [u8; 4] = [198, 18, 0, 0];
/// Addresses .0.1 to .1.254 of 198.18.0.0/15, without the last.
const BENCH_ADDRS: u32 = (1 << 17) - 2;

/// Swarm destination number `key`: a distinct address for every key below `BENCH_ADDRS`,
/// then the next port.
fn bench_dest(key: u32) -> SocketAddrV4 {
    let a = u32::from(Ipv4Addr::from(BENCH_NET)) + 1 + key % BENCH_ADDRS;
    let port = (FIRST_PORT + key / BENCH_ADDRS) as u16;
    SocketAddrV4::new(Ipv4Addr::from(a), port)
}

/// Moves this process into a new network namespace whose loopback carries the
/// documentation ranges and the benchmarking range as local addresses; nothing sent there
/// can leave the machine.
fn enter_private_netns() -> Result<()> {
    // SAFETY: unshare only changes this process's namespace membership.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        bail!(
            "unshare(CLONE_NEWNET) failed: {} (needs root)",
            std::io::Error::last_os_error()
        );
    }
    let mut cmds: Vec<Vec<String>> =
        vec![vec!["link".into(), "set".into(), "lo".into(), "up".into()]];
    for n in DOC_NETS {
        cmds.push(
            [
                "route",
                "add",
                "local",
                &format!("{}.{}.{}.0/24", n[0], n[1], n[2]),
                "dev",
                "lo",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        );
    }
    cmds.push(
        ["route", "add", "local", "198.18.0.0/15", "dev", "lo"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    );
    for args in cmds {
        let st = Command::new("ip")
            .args(&args)
            .status()
            .with_context(|| format!("running ip {args:?} (package iproute2)"))?;
        ensure!(
            st.success(),
            "ip {args:?} failed in the private namespace ({st})"
        );
    }
    Ok(())
}

/// A non-blocking TCP connect, closed at once. On the namespace's loopback the kernel
/// answers with RST inside the call; the connect attempt (SYN_SENT) is what monitors see.
fn connect_once(dest: SocketAddrV4) -> std::io::Result<()> {
    // SAFETY: plain socket syscalls on a descriptor this function owns.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: dest.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*dest.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINPROGRESS) | Some(libc::ECONNREFUSED) => {}
                _ => return Err(e),
            }
        }
    }
    Ok(())
}

fn swarm(procs: u32, per_proc: u32) -> Result<()> {
    enter_private_netns()?;
    let exe = std::env::current_exe().context("locating this binary")?;
    // Every member writes one byte here when its connects are done.
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the two descriptors, which are owned right after.
    ensure!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0,
        "pipe2: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (ready_r, ready_w) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let start = Instant::now();
    let mut children = Vec::with_capacity(procs as usize);
    for i in 0..procs {
        let child = Command::new(&exe)
            .args([
                "hold",
                "--index",
                &i.to_string(),
                "--per-proc",
                &per_proc.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::from(ready_w.try_clone()?))
            .spawn()
            .with_context(|| format!("starting swarm member {i} of {procs}"))?;
        children.push(child);
    }
    drop(ready_w);
    let spawned_s = start.elapsed().as_secs_f64();
    let mut ready_file = std::fs::File::from(ready_r);
    let mut ready = 0u64;
    let mut buf = [0u8; 4096];
    while ready < procs as u64 {
        let n = ready_file
            .read(&mut buf)
            .context("reading member reports")?;
        if n == 0 {
            break;
        }
        ready += n as u64;
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}",
        json!({
            "mode": "swarm",
            "procs": procs,
            "ready": ready,
            "connects": ready * per_proc as u64,
            "spawn_s": spawned_s,
            "ready_s": start.elapsed().as_secs_f64(),
        })
    )?;
    out.flush()?;
    drop(out);
    // Stay until the driver closes our standard input, then take the members down.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    for c in &mut children {
        let _ = c.kill();
    }
    for c in &mut children {
        let _ = c.wait();
    }
    ensure!(
        ready == procs as u64,
        "only {ready} of {procs} swarm members reported"
    );
    Ok(())
}

fn hold(index: u32, per_proc: u32, exit: bool) -> Result<()> {
    // Die with the swarm, whatever happens to it.
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and nothing else.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let mut failed = 0;
    for j in 0..per_proc {
        if connect_once(bench_dest(index * per_proc + j)).is_err() {
            failed += 1;
        }
    }
    if exit {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    out.write_all(b"r")?;
    out.flush()?;
    drop(out);
    ensure!(failed == 0, "{failed} of {per_proc} connects failed");
    loop {
        // SAFETY: pause only waits for a signal.
        unsafe { libc::pause() };
    }
}

fn mixed(a: &LoopArgs, keys: u32, spawn_every_ms: u64) -> Result<()> {
    ensure!(keys > 0, "--keys must be at least 1");
    enter_private_netns()?;
    if let Some(cpu) = a.cpu {
        pin_to_cpu(cpu)?;
    }
    let exe = std::env::current_exe().context("locating this binary")?;
    let udp = UdpSocket::bind("0.0.0.0:0").context("binding the UDP sender")?;
    let deadline = Duration::from_secs_f64(a.duration);
    let pacer = Pacer::new(Some(a.rate.unwrap_or(2000.0)));
    let spawn_every = Duration::from_millis(spawn_every_ms.max(1));
    let (mut ops, mut errors, mut spawned) = (0u64, 0u64, 0u64);
    let mut children: Vec<std::process::Child> = Vec::new();
    let start = Instant::now();
    let mut next_spawn = start;
    while start.elapsed() < deadline {
        pacer.before(ops);
        // A stride coprime with typical key counts walks the whole key space, so every key
        // goes idle for a while between visits and the detectors must evict.
        let key = ((ops.wrapping_mul(7919)) % keys as u64) as u32;
        let dest = doc_dest(key);
        let r = if ops % 4 == 3 {
            udp.send_to(&[0u8; 32], SocketAddrV4::new(*dest.ip(), 53))
                .map(|_| ())
        } else {
            connect_once(dest)
        };
        match r {
            Ok(()) => ops += 1,
            Err(_) => {
                errors += 1;
                ops += 1;
            }
        }
        if Instant::now() >= next_spawn {
            next_spawn += spawn_every;
            let idx = (spawned % 100_000) as u32;
            match Command::new(&exe)
                .args([
                    "hold",
                    "--index",
                    &idx.to_string(),
                    "--per-proc",
                    "3",
                    "--exit",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
            {
                Ok(c) => {
                    spawned += 1;
                    children.push(c);
                }
                Err(_) => errors += 1,
            }
            children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
        }
    }
    for c in &mut children {
        let _ = c.wait();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "mode": "mixed",
            "ops": ops,
            "errors": errors,
            "processes": spawned,
            "elapsed_s": secs,
            "rate": ops as f64 / secs,
        })
    );
    Ok(())
}
