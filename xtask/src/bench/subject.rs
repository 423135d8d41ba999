//! The programs under measurement: the monitor daemon (`monitor run`, read through its
//! Prometheus endpoint and /proc) and the bpftrace peer (read through its output file).

use std::fs::{self, File};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};

use super::procfs;

/// How to start the monitor.
#[derive(Clone, Debug, Default)]
pub struct MonitorRun {
    /// `--events` (to /dev/null): every connection event is written, not only alerts.
    pub events: bool,
    /// `--ringbuf-bytes`, when not the default.
    pub ringbuf_bytes: Option<u32>,
    /// CPU to pin the daemon to.
    pub cpu: Option<usize>,
}

/// A running `monitor run`.
pub struct Monitor {
    child: Child,
    pub pid: u32,
    metrics: SocketAddr,
    pub log: PathBuf,
}

/// One scrape of the Prometheus endpoint.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    samples: Vec<(String, String, f64)>,
}

impl Scrape {
    pub fn parse(body: &str) -> Scrape {
        let mut samples = Vec::new();
        for line in body.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let Some((key, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(v) = value.trim().parse::<f64>() else {
                continue;
            };
            let (name, labels) = match key.find('{') {
                Some(i) => (&key[..i], &key[i..]),
                None => (key, ""),
            };
            samples.push((name.to_string(), labels.to_string(), v));
        }
        Scrape { samples }
    }

    /// Sum of every sample of `name` (all label sets).
    pub fn sum(&self, name: &str) -> u64 {
        self.samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, _, v)| *v)
            .sum::<f64>() as u64
    }

    /// Samples of `name` as (labels, value).
    pub fn labelled(&self, name: &str) -> Vec<(String, u64)> {
        self.samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, l, v)| (l.clone(), *v as u64))
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|(n, _, _)| n == name)
    }
}

/// Counter values the benchmark compares before and after a trial.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub kernel_events: u64,
    pub processed: u64,
    pub lost: u64,
    pub udp_suppressed: u64,
    pub alerts: u64,
    pub cpu_ns: u64,
}

impl Counters {
    pub fn since(&self, before: &Counters) -> Counters {
        Counters {
            kernel_events: self.kernel_events.saturating_sub(before.kernel_events),
            processed: self.processed.saturating_sub(before.processed),
            lost: self.lost.saturating_sub(before.lost),
            udp_suppressed: self.udp_suppressed.saturating_sub(before.udp_suppressed),
            alerts: self.alerts.saturating_sub(before.alerts),
            cpu_ns: self.cpu_ns.saturating_sub(before.cpu_ns),
        }
    }
}

fn free_loopback_port() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(l.local_addr()?)
}

fn tail(path: &Path, lines: usize) -> String {
    let s = fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

impl Monitor {
    /// Starts `monitor run` with its output on /dev/null and its log in `dir`, and waits
    /// until its programs are attached and its metrics endpoint answers.
    pub fn start(bin: &Path, dir: &Path, name: &str, run: &MonitorRun) -> Result<Monitor> {
        let metrics = free_loopback_port()?;
        let log = dir.join(format!("{name}.log"));
        let mut cmd = Command::new(bin);
        cmd.arg("run")
            .arg("--metrics-listen")
            .arg(metrics.to_string())
            .args(["--output", "stdout"]);
        if run.events {
            cmd.arg("--events");
        }
        if let Some(b) = run.ringbuf_bytes {
            cmd.arg("--ringbuf-bytes").arg(b.to_string());
        }
        if let Some(cpu) = run.cpu {
            procfs::pin_command(&mut cmd, cpu);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).with_context(|| format!("creating {}", log.display()))?);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut m = Monitor {
            pid: child.id(),
            child,
            metrics,
            log,
        };
        let t = Instant::now();
        loop {
            if let Some(st) = m.child.try_wait()? {
                bail!(
                    "the monitor exited during start-up ({st}); its log:\n{}",
                    tail(&m.log, 30)
                );
            }
            // The endpoint starts after the programs are attached; the first snapshot (with
            // the backends) is published on the daemon's first one-second tick.
            if let Ok(s) = m.scrape()
                && s.has("monitor_probe_backend")
            {
                return Ok(m);
            }
            if t.elapsed() > Duration::from_secs(60) {
                let _ = m.child.kill();
                let _ = m.child.wait();
                bail!(
                    "the monitor did not serve metrics on {} within 60 s; its log:\n{}",
                    m.metrics,
                    tail(&m.log, 30)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn scrape(&self) -> Result<Scrape> {
        let mut s = TcpStream::connect_timeout(&self.metrics, Duration::from_secs(2))
            .with_context(|| format!("connecting to the metrics endpoint {}", self.metrics))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)?;
        let body = resp
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .context("metrics response without a body")?;
        ensure!(
            resp.starts_with("HTTP/1.0 200"),
            "metrics endpoint answered {resp:.60}"
        );
        Ok(Scrape::parse(body))
    }

    fn counters_from(&self, s: &Scrape) -> Result<Counters> {
        Ok(Counters {
            kernel_events: s.sum("monitor_kernel_events_total"),
            processed: s.sum("monitor_events_processed_total"),
            lost: s.sum("monitor_ringbuf_lost_total"),
            udp_suppressed: s.sum("monitor_udp_suppressed_total"),
            alerts: s.sum("monitor_alerts_total"),
            cpu_ns: procfs::cpu_ns(self.pid)?,
        })
    }

    /// Fresh counters: SIGUSR1 makes the daemon publish a snapshot at once (it otherwise
    /// does so every second).
    pub fn counters(&self) -> Result<(Counters, Scrape)> {
        procfs::signal(self.pid, libc::SIGUSR1)?;
        std::thread::sleep(Duration::from_millis(60));
        let s = self.scrape()?;
        Ok((self.counters_from(&s)?, s))
    }

    /// Waits until the daemon has processed everything the kernel handed it (the processed
    /// count stops moving), then returns the counters. Fails if the daemon died.
    pub fn settle(&mut self) -> Result<(Counters, Scrape)> {
        let t = Instant::now();
        let mut last = self.counters()?;
        loop {
            self.ensure_alive()?;
            std::thread::sleep(Duration::from_millis(250));
            let now = self.counters()?;
            // Each scrape is itself a TCP connect the daemon sees: allow that one (with
            // `--lifecycle`, its outcome and close records too).
            if now.0.processed <= last.0.processed + 3
                && now.0.kernel_events <= last.0.kernel_events + 1
            {
                return Ok(now);
            }
            if t.elapsed() > Duration::from_secs(120) {
                bail!("the monitor was still processing after 120 s");
            }
            last = now;
        }
    }

    pub fn ensure_alive(&mut self) -> Result<()> {
        if let Some(st) = self.child.try_wait()? {
            bail!(
                "the monitor exited under load ({st}); its log:\n{}",
                tail(&self.log, 30)
            );
        }
        Ok(())
    }

    /// (VmRSS, VmHWM) in KiB.
    pub fn rss_kib(&self) -> Result<(u64, u64)> {
        procfs::rss_kib(self.pid)
    }

    /// Lines of the daemon's log that mention lost events (the loss must not be silent).
    pub fn loss_log_lines(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("lost"))
            .map(|l| l.to_string())
            .collect()
    }

    /// SIGTERM and a clean exit (status 0) within 30 s.
    pub fn stop(mut self) -> Result<()> {
        let st = procfs::stop(&mut self.child, "the monitor", Duration::from_secs(30))?;
        ensure!(
            st.success(),
            "the monitor exited with {st} on SIGTERM; its log:\n{}",
            tail(&self.log, 30)
        );
        Ok(())
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running `bpftrace xtask/bench/capture.bt`, its output in a file.
pub struct Bpftrace {
    child: Child,
    pub pid: u32,
    out: PathBuf,
    offset: u64,
}

/// What bpftrace printed during a trial.
#[derive(Clone, Copy, Debug, Default)]
pub struct BpftraceCounts {
    pub events: u64,
    pub lost: u64,
}

impl Bpftrace {
    pub fn start(script: &Path, dir: &Path, cpu: Option<usize>) -> Result<Bpftrace> {
        let out = dir.join("bpftrace.out");
        let err = dir.join("bpftrace.err");
        let mut cmd = Command::new("bpftrace");
        // -B full: block-buffered output to the file, like the monitor's buffered writer.
        cmd.args(["-B", "full", "-o"]).arg(&out).arg(script);
        if let Some(cpu) = cpu {
            procfs::pin_command(&mut cmd, cpu);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&err)?);
        let child = cmd
            .spawn()
            .context("starting bpftrace (Debian package bpftrace; `cargo xtask bootstrap --test-packages` installs it)")?;
        let mut b = Bpftrace {
            pid: child.id(),
            child,
            out,
            offset: 0,
        };
        // Its output is block-buffered (like the monitor's), so it cannot say when it is
        // ready; the kernel can: wait until both of its tracepoints carry its programs.
        let t = Instant::now();
        loop {
            if let Some(st) = b.child.try_wait()? {
                bail!(
                    "bpftrace exited during start-up ({st}):\n{}",
                    tail(&err, 20)
                );
            }
            if attached_tracepoints(b.pid)? >= 2 {
                break;
            }
            if t.elapsed() > Duration::from_secs(120) {
                bail!("bpftrace did not attach within 120 s:\n{}", tail(&err, 20));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_millis(200));
        b.offset = fs::metadata(&b.out)?.len();
        Ok(b)
    }

    /// Events and losses printed since the last call (waits for the output to stop growing
    /// first, as bpftrace drains its buffers).
    pub fn take(&mut self) -> Result<BpftraceCounts> {
        let mut len = fs::metadata(&self.out)?.len();
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let now = fs::metadata(&self.out)?.len();
            if now == len {
                break;
            }
            len = now;
        }
        let mut f = File::open(&self.out)?;
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        let mut c = BpftraceCounts::default();
        for line in buf.split(|b| *b == b'\n') {
            if line.starts_with(b"tcp ") || line.starts_with(b"udp ") {
                c.events += 1;
            } else if let Some(rest) = line.strip_prefix(b"Lost ") {
                // "Lost N events"
                let n = String::from_utf8_lossy(rest);
                c.lost += n
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        Ok(c)
    }

    pub fn cpu_ns(&self) -> Result<u64> {
        procfs::cpu_ns(self.pid)
    }

    /// SIGINT, as a user ends bpftrace. bpftrace 0.17 only sets a flag in its handler and
    /// looks at it when its `epoll_wait` returns: a SIGINT that lands while it is draining
    /// events (not inside the wait) is noticed at the next event, which after a trial may
    /// never come (seen in CI: asleep in `do_epoll_wait` 30 s after SIGINT). So after a short
    /// grace, a loopback TCP connect (which its script traces) wakes it once a second. The
    /// trial's counts were read before this; should it still not exit, it is killed and the
    /// returned note says where it was. Only a process that survives SIGKILL is an error.
    pub fn stop(mut self) -> Result<Option<String>> {
        procfs::signal(self.pid, libc::SIGINT)?;
        let mut pokes = 0u32;
        let grace = Duration::from_secs(20);
        let note = if procfs::wait_exit(&mut self.child, grace, || {
            wake_with_connect();
            pokes += 1;
        })?
        .is_some()
        {
            if pokes > 0 {
                eprintln!("bench: bpftrace exited after {pokes} wake-up connect(s)");
            }
            None
        } else {
            let stuck = procfs::where_stuck(self.pid);
            let note = format!(
                "bpftrace was still running {} s after SIGINT and {pokes} wake-up connects ({stuck}) and was killed; its counts had been read",
                grace.as_secs()
            );
            eprintln!("bench: {note}");
            let _ = self.child.kill();
            if procfs::wait_exit(&mut self.child, Duration::from_secs(60), || {})?.is_none() {
                bail!(
                    "bpftrace survived SIGKILL for 60 s after ignoring SIGINT ({})",
                    procfs::where_stuck(self.pid)
                );
            }
            Some(note)
        };
        let _ = fs::remove_file(&self.out);
        Ok(note)
    }
}

/// One loopback TCP connect, which bpftrace's `inet_sock_set_state` probe sees: an event that
/// wakes its poll loop. Best effort.
fn wake_with_connect() {
    if let Ok(l) = TcpListener::bind("127.0.0.1:0")
        && let Ok(addr) = l.local_addr()
    {
        let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(200));
    }
}

/// Tracepoints with a BPF program attached by `pid` (`bpftool perf show`).
fn attached_tracepoints(pid: u32) -> Result<usize> {
    let out = Command::new("bpftool")
        .args(["perf", "show", "-j"])
        .output()
        .context("running bpftool (Debian package bpftool)")?;
    ensure!(
        out.status.success(),
        "bpftool perf show failed ({})",
        out.status
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["pid"] == pid && e["fd_type"] == "tracepoint")
                .count()
        })
        .unwrap_or(0))
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
