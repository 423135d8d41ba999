//! Readers for /proc/PID/{stat,exe,cmdline,status,cgroup}.
//!
//! Only the start-up scan and cache misses come here; the per-event path never does.
//! Every reader is bounded in how much it reads, because a process chooses its own
//! command line (up to ARG_MAX) and we keep what we read.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::kernel_fields::split_argv;

/// Most bytes of /proc/PID/cmdline kept per process.
pub const MAX_CMDLINE_BYTES: usize = 4096;
/// /proc/PID/stat, status and cgroup are small; this only guards against surprises.
const MAX_SMALL_FILE: usize = 64 * 1024;

/// `PF_KTHREAD` in /proc/PID/stat's flags field.
const PF_KTHREAD: u64 = 0x0020_0000;

/// The fields of /proc/PID/stat the table uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// The name in parentheses (field 2), raw bytes.
    pub comm: Vec<u8>,
    /// Field 4; 0 for pid 1 and kernel threads' parent.
    pub ppid: u32,
    /// Field 22: clock ticks since boot.
    pub start_ticks: u64,
    pub kernel_thread: bool,
}

/// Parses /proc/PID/stat. The name may contain spaces and parentheses, so the fields after
/// it are found from the last `)`.
pub fn parse_stat(buf: &[u8]) -> Option<ProcStat> {
    let open = buf.iter().position(|&b| b == b'(')?;
    let close = buf.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let comm = buf[open + 1..close].to_vec();
    let rest = std::str::from_utf8(buf.get(close + 1..)?).ok()?;
    // rest starts at field 3 (state).
    let mut fields = rest.split_ascii_whitespace();
    let _state = fields.next()?;
    let ppid: u32 = fields.next()?.parse().ok()?;
    // Fields 5..8 (pgrp, session, tty_nr, tpgid), then 9 (flags).
    let flags: u64 = fields.nth(4)?.parse().ok()?;
    // Field 22 (starttime) is 13 fields after flags.
    let start_ticks: u64 = fields.nth(12)?.parse().ok()?;
    Some(ProcStat {
        comm,
        ppid,
        start_ticks,
        kernel_thread: flags & PF_KTHREAD != 0,
    })
}

/// Real uid and real gid from /proc/PID/status: the ids `bpf_get_current_uid_gid` reports,
/// so /proc-learned and kernel-reported users agree.
pub fn parse_status_ids(buf: &[u8]) -> (Option<u32>, Option<u32>) {
    let text = String::from_utf8_lossy(buf);
    let mut uid = None;
    let mut gid = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Uid:") {
            uid = v
                .split_ascii_whitespace()
                .next()
                .and_then(|s| s.parse().ok());
        } else if let Some(v) = line.strip_prefix("Gid:") {
            gid = v
                .split_ascii_whitespace()
                .next()
                .and_then(|s| s.parse().ok());
        }
        if uid.is_some() && gid.is_some() {
            break;
        }
    }
    (uid, gid)
}

/// Clock ticks per second for /proc/PID/stat's starttime.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions and only reads configuration.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// Reads at most `limit` bytes of a file.
pub fn read_bounded(path: &Path, limit: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(limit.min(4096));
    File::open(path)?
        .take(u64::try_from(limit).unwrap_or(u64::MAX))
        .read_to_end(&mut out)?;
    Ok(out)
}

/// Paths under one /proc root (configurable, so a monitor in a container can read the
/// host's /proc mounted elsewhere).
/// Counts every file it reads, for `ProcessStats::proc_reads`.
#[derive(Debug)]
pub struct ProcFs {
    root: PathBuf,
    /// Atomic only so the table stays `Sync`; it is never contended.
    reads: AtomicU64,
}

impl ProcFs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ProcFs {
            root: root.into(),
            reads: AtomicU64::new(0),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Files read (or attempted) so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn path(&self, pid: u32, file: &str) -> PathBuf {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let mut p = self.root.join(pid.to_string());
        p.push(file);
        p
    }

    pub fn stat(&self, pid: u32) -> io::Result<ProcStat> {
        let path = self.path(pid, "stat");
        let buf = read_bounded(&path, MAX_SMALL_FILE)?;
        parse_stat(&buf).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unparsable {}", path.display()),
            )
        })
    }

    /// The target of /proc/PID/exe, raw bytes (paths need not be UTF-8).
    pub fn exe(&self, pid: u32) -> io::Result<Vec<u8>> {
        Ok(std::fs::read_link(self.path(pid, "exe"))?
            .as_os_str()
            .as_bytes()
            .to_vec())
    }

    /// /proc/PID/cmdline, at most `MAX_CMDLINE_BYTES`; the flag says whether it was cut.
    pub fn cmdline(&self, pid: u32) -> io::Result<(Vec<u8>, bool)> {
        let mut buf = read_bounded(&self.path(pid, "cmdline"), MAX_CMDLINE_BYTES + 1)?;
        let cut = buf.len() > MAX_CMDLINE_BYTES;
        buf.truncate(MAX_CMDLINE_BYTES);
        Ok((buf, cut))
    }

    pub fn status_ids(&self, pid: u32) -> io::Result<(Option<u32>, Option<u32>)> {
        Ok(parse_status_ids(&read_bounded(
            &self.path(pid, "status"),
            MAX_SMALL_FILE,
        )?))
    }

    pub fn cgroup(&self, pid: u32) -> io::Result<Vec<u8>> {
        read_bounded(&self.path(pid, "cgroup"), MAX_SMALL_FILE)
    }

    /// Every numeric entry of the /proc root.
    pub fn pids(&self) -> io::Result<Vec<u32>> {
        let mut pids = Vec::new();
        // An entry that vanishes mid-listing is a process that exited: skip it.
        for entry in std::fs::read_dir(&self.root)?.flatten() {
            if let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            {
                pids.push(pid);
            }
        }
        Ok(pids)
    }

    /// Everything the table keeps about one process. Only `stat` is required: a process
    /// whose exe or cmdline cannot be read (kernel thread, zombie, race with exit) still
    /// yields its name, parent and start time.
    pub fn snapshot(&self, pid: u32) -> io::Result<ProcSnapshot> {
        let stat = self.stat(pid)?;
        let exe = self.exe(pid).ok().filter(|e| !e.is_empty());
        let (args, args_truncated) = match self.cmdline(pid) {
            Ok((buf, cut)) if !buf.is_empty() => (Some(split_argv(&buf)), cut),
            _ => (None, false),
        };
        let (uid, gid) = self.status_ids(pid).unwrap_or((None, None));
        Ok(ProcSnapshot {
            stat,
            exe,
            args,
            args_truncated,
            uid,
            gid,
        })
    }
}

/// One process as read from /proc.
#[derive(Clone, Debug)]
pub struct ProcSnapshot {
    pub stat: ProcStat,
    pub exe: Option<Vec<u8>>,
    pub args: Option<Vec<String>>,
    pub args_truncated: bool,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_name() {
        let line = b"1234 (a) b (c) S 77 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 100 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.comm, b"a) b (c");
        assert_eq!(s.ppid, 77);
        assert_eq!(s.start_ticks, 98765);
        assert!(!s.kernel_thread);
        let kthread = b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 17 0 0 0 0 0 0\n";
        let k = parse_stat(kthread).unwrap();
        assert!(k.kernel_thread);
        assert_eq!(k.start_ticks, 5);
        assert_eq!(parse_stat(b"garbage"), None);
        assert_eq!(parse_stat(b"1 (x) S"), None);
    }

    #[test]
    fn status_ids_are_the_real_ids() {
        let s = b"Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t100\t0\t0\t0\n";
        assert_eq!(parse_status_ids(s), (Some(1000), Some(100)));
        assert_eq!(parse_status_ids(b"Name:\tx\n"), (None, None));
    }

    #[test]
    fn own_process_reads_back() {
        let proc = ProcFs::new("/proc");
        let me = std::process::id();
        let snap = proc.snapshot(me).unwrap();
        let exe = std::env::current_exe().unwrap();
        assert_eq!(snap.exe.unwrap(), exe.as_os_str().as_bytes());
        assert_eq!(snap.stat.ppid, std::os::unix::process::parent_id());
        assert!(snap.stat.start_ticks > 0);
        // SAFETY: getuid has no preconditions.
        assert_eq!(snap.uid, Some(unsafe { libc::getuid() }));
        assert!(proc.pids().unwrap().contains(&me));
        assert!(clock_ticks_per_sec() > 0);
    }
}
