//! The real `monitor run` as a child process: standard output (the JSON lines) to a file,
//! standard error (its tracing log) to another; ready once it logs `monitor running`; stopped
//! with SIGTERM on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::records::parse_lines;
use super::{TempDir, send_signal, wait_timeout};

pub const MONITOR: &str = env!("CARGO_BIN_EXE_monitor");

pub struct MonitorProcess {
    child: Option<Child>,
    dir: TempDir,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl MonitorProcess {
    /// Starts `monitor run ARGS...` and waits until it is capturing.
    pub fn start(args: &[String]) -> MonitorProcess {
        let dir = TempDir::new("monitor");
        let stdout_path = dir.join("stdout.jsonl");
        let stderr_path = dir.join("stderr.log");
        let stdout = std::fs::File::create(&stdout_path).expect("create monitor stdout file");
        let stderr = std::fs::File::create(&stderr_path).expect("create monitor stderr file");
        let mut cmd = Command::new(MONITOR);
        // SIGTERM, like an operator's stop: the monitor detaches its programs on the way out.
        super::die_with_parent(&mut cmd, libc::SIGTERM);
        let child = cmd
            .arg("run")
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start {MONITOR}: {e}"));
        let mut m = MonitorProcess {
            child: Some(child),
            dir,
            stdout_path,
            stderr_path,
        };
        m.wait_ready(Duration::from_secs(60));
        m
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("monitor running").id()
    }

    /// A scratch directory that lives as long as the monitor (for rule dirs, sockets, ...).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn stdout_path(&self) -> &Path {
        &self.stdout_path
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Fails the test with every problem found and this monitor's log, or passes if none.
    #[track_caller]
    pub fn assert_no_problems(&self, problems: &[String]) {
        assert!(
            problems.is_empty(),
            "{} problem(s):\n{}\nmonitor stderr:\n{}",
            problems.len(),
            problems.join("\n"),
            self.stderr()
        );
    }

    fn wait_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        loop {
            if self.stderr().contains("monitor running") {
                return;
            }
            let child = self.child.as_mut().expect("monitor child");
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                panic!(
                    "the monitor exited before it was ready ({st}); its stderr:\n{}",
                    self.stderr()
                );
            }
            if start.elapsed() > limit {
                panic!(
                    "the monitor did not log `monitor running` within {limit:?}; its stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every complete JSON line written so far.
    pub fn records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.stdout_path).unwrap_or_default();
        parse_lines(&text, &self.stdout_path.display().to_string())
    }

    /// Polls the output until `done` holds for it or `limit` passes; returns the records
    /// read last either way, so the caller can say exactly what is missing.
    pub fn wait_until(&self, limit: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let recs = self.records();
            if done(&recs) || start.elapsed() > limit {
                return recs;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls the output until `done` holds for it, or fails after `limit` naming `what`.
    pub fn wait_for(&self, what: &str, limit: Duration, done: impl Fn(&[Value]) -> bool) {
        let start = Instant::now();
        loop {
            let recs = self.records();
            if done(&recs) {
                return;
            }
            if start.elapsed() > limit {
                panic!(
                    "waited {limit:?} for {what}; the monitor wrote {} records:\n{}\nits stderr:\n{}",
                    recs.len(),
                    tail_text(&self.stdout_path, 40),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The ids of the eBPF programs the monitor holds (from its fds' fdinfo: `prog_id` of
    /// program fds and of link fds).
    pub fn bpf_program_ids(&self) -> Vec<u32> {
        let pid = self.pid();
        let dir = format!("/proc/{pid}/fdinfo");
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {dir}: {e}")) {
            let Ok(entry) = entry else { continue };
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("prog_id:")
                    && let Ok(id) = v.trim().parse::<u32>()
                    && !ids.contains(&id)
                {
                    ids.push(id);
                }
            }
        }
        ids.sort_unstable();
        ids
    }

    /// SIGTERM, then waits up to `limit`. Returns the exit status and how long it took, or
    /// fails (after SIGKILL) if the monitor did not stop in time.
    pub fn stop(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("monitor still running");
        send_signal(child.id(), libc::SIGTERM);
        let start = Instant::now();
        match wait_timeout(&mut child, limit) {
            Some(st) => (st, start.elapsed()),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the monitor did not exit within {limit:?} of SIGTERM; its stderr:\n{}",
                    self.stderr()
                );
            }
        }
    }
}

impl Drop for MonitorProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), libc::SIGTERM);
            if wait_timeout(&mut child, Duration::from_secs(10)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The last `n` lines of a file, for failure messages.
pub fn tail_text(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// All eBPF program ids loaded on the machine (`bpftool prog show --json`).
pub fn loaded_bpf_programs() -> Vec<(u32, String)> {
    let out = super::run_ok(Command::new("bpftool").args(["prog", "show", "--json"]));
    let v: Value = serde_json::from_slice(&out.stdout).expect("bpftool prints JSON");
    v.as_array()
        .expect("bpftool prog show --json prints an array")
        .iter()
        .filter_map(|p| {
            Some((
                p.get("id")?.as_u64()? as u32,
                p.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ))
        })
        .collect()
}
