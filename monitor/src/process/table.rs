//! `ProcessTable`: live processes fed by exec/exit events, and enrichment of connect events.
//!
//! Three bounded LRU maps, all keyed by tgid, each entry carrying its start time so that a
//! reused pid never matches the process that had it before:
//! - `live`: processes learned from exec events and the start-up /proc scan;
//! - `learned`: processes first met in a connect event (read from /proc once, or, when
//!   /proc no longer has them, kept as what the kernel said), and parents read from /proc;
//! - `exited`: recently exited processes, so children and late events still find them.
//!
//! Events and exits arrive in one ordered ring buffer, so an entry in `live`/`learned` is the
//! current holder of its pid unless an exit was lost; a start-time mismatch detects that.
//!
//! The per-event path is hash lookups only: each entry keeps the `Arc<ProcessInfo>` it last
//! built (one per recent thread) with the inputs it was built from, and builds a new one only
//! when an input changes (exec, uid/gid, cgroup, parent).
//!
//! Split by job: this file holds the entries, the three maps and their eviction;
//! `table/events.rs` applies exec, fork and exit events and the start-up scan;
//! `table/hashing.rs` asks the hashing worker and applies its answers; `table/enrich.rs`
//! turns a connect event into a record (finding the process, its parent and ancestry).

mod enrich;
mod events;
mod hashing;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use lru::LruCache;
use monitor_common::{COMM_LEN, ConnectEvent, ExecEvent, ExitEvent, ForkEvent};
use serde::{Deserialize, Serialize};

use super::container::{ContainerIds, Resolved};
use super::hash::{ExeHasher, FileVersion, HashConfig, HashRequest, user_dev};
use super::kernel_fields::{
    c_text, decode_connect, decode_connect_lossy, exe_basename, kernel_exe_path, probe_name,
    split_argv, used,
};
use super::nameservers::Nameservers;
use super::procfs::{ProcFs, ProcSnapshot, clock_ticks_per_sec};
use super::users::{DEFAULT_RECHECK, UserNames};
use crate::record::{
    AccountId, ConnectionRecord, MAX_ANCESTORS, ParentInfo, ProcessInfo, Timestamp, text_from_bytes,
};

/// Threads per process whose `Arc<ProcessInfo>` is kept (the tid is part of the record).
const THREADS_PER_ENTRY: usize = 4;

/// Sizes and paths of a `ProcessTable`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessTableConfig {
    /// Processes learned from exec events and the start-up scan.
    pub max_entries: usize,
    /// Processes first met in a connect event or as a parent, read from /proc.
    pub max_proc_cache: usize,
    /// Recently exited processes kept for their children and late events.
    pub max_exited: usize,
    /// Cgroup id -> container id answers.
    pub max_cgroups: usize,
    /// Where procfs is mounted (the host's /proc when the monitor runs in a container).
    pub proc_root: PathBuf,
    pub passwd_path: PathBuf,
    /// The resolver configuration whose nameservers mark `monitor.dns_resolver`.
    pub resolv_conf_path: PathBuf,
    /// The cgroup v2 mount; `None`: found in /proc/self/mountinfo.
    pub cgroup2_root: Option<PathBuf>,
    /// `process.hash.sha256`: limits of the hashing worker.
    pub hash: HashConfig,
}

impl Default for ProcessTableConfig {
    fn default() -> Self {
        ProcessTableConfig {
            max_entries: 65_536,
            max_proc_cache: 16_384,
            max_exited: 1_024,
            max_cgroups: 4_096,
            proc_root: PathBuf::from("/proc"),
            passwd_path: PathBuf::from("/etc/passwd"),
            resolv_conf_path: PathBuf::from("/etc/resolv.conf"),
            cgroup2_root: None,
            hash: HashConfig::default(),
        }
    }
}

/// Counters and sizes, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProcessStats {
    /// Processes tracked (`live` + `learned`).
    pub entries: usize,
    pub exited_entries: usize,
    pub cgroup_entries: usize,
    /// Records produced by `enrich`.
    pub enriched: u64,
    /// Records marked partial (some field could not be learned).
    pub enrichment_misses: u64,
    /// /proc files read after the start-up scan (misses, parents, long argv, cgroups).
    pub proc_reads: u64,
    /// /proc files read by `scan_proc`.
    pub scan_reads: u64,
    /// Entries pushed out of a full map.
    pub evictions: u64,
    /// Entries dropped because their pid now has another start time (an exit was lost).
    pub stale_entries: u64,
    /// A live pid whose /proc start time differed from the kernel's: pid reuse, or kernel
    /// programs reporting a start time on another clock (should stay 0).
    pub start_mismatches: u64,
    /// Connect events with an unknown address family or protocol (see `ConnectFieldError`).
    pub malformed: u64,
    /// `ProcessInfo`s built; every other record shared an existing one.
    pub builds: u64,
    /// Cgroup-tree searches for processes gone before their cgroup was read.
    pub cgroup_walks: u64,
    /// Times /etc/passwd was (re)loaded.
    pub passwd_loads: u64,
    /// Fork events whose child took the forking process's identity.
    pub forks_inherited: u64,
    /// Fork events whose forking process was unknown and gone from /proc: the child is
    /// learned from /proc (or the kernel's comm) when it first connects.
    pub forks_unknown_source: u64,
    /// Executables sent to the hashing worker, and requests dropped on its full queue.
    pub hashes_requested: u64,
    /// Execs of a file whose hash was known for the same (device, inode, size, ctime):
    /// hashed without asking the worker.
    pub hashes_known: u64,
    pub hash_queue_full: u64,
    /// The worker's answers: files read and hashed, answers from its cache, files over the
    /// size limit, files it could not read (or that were not the file named).
    pub hashes_computed: u64,
    pub hashes_cached: u64,
    pub hash_too_big: u64,
    pub hash_failed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// An exec event: argv as the kernel saw it, immune to later argv rewriting.
    Exec,
    /// A fork event: the forking process's identity, as the table knew it then.
    Fork,
    /// The start-up scan of /proc.
    Scan,
    /// Read from /proc on a miss.
    Proc,
    /// Only what a connect event carried: the process was gone from /proc.
    Kernel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Live,
    Learned,
    Exited,
}

/// The inputs a shared `ProcessInfo` was built from besides the entry itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BuildKey {
    uid: u32,
    gid: u32,
    cgroup_id: u64,
    parent_generation: Option<u64>,
    /// The thread's comm, only when the name comes from it (no executable known).
    comm: [u8; COMM_LEN],
}

#[derive(Debug, Default)]
struct Shared {
    key: Option<BuildKey>,
    partial: bool,
    /// Most recent last.
    by_tid: Vec<(u32, Arc<ProcessInfo>)>,
}

impl Shared {
    /// The info for `tid` if built with `key`; another thread's info with the tid swapped
    /// in when only the tid differs.
    fn get(&mut self, key: &BuildKey, tid: Option<u32>) -> Option<Arc<ProcessInfo>> {
        if self.key.as_ref() != Some(key) {
            return None;
        }
        let tid_key = tid.unwrap_or(0);
        if let Some((_, hit)) = self.by_tid.iter().find(|(t, _)| *t == tid_key) {
            return Some(hit.clone());
        }
        let template = self.by_tid.last()?.1.clone();
        let info = Arc::new(ProcessInfo {
            tid,
            ..(*template).clone()
        });
        if self.by_tid.len() >= THREADS_PER_ENTRY {
            self.by_tid.remove(0);
        }
        self.by_tid.push((tid_key, info.clone()));
        Some(info)
    }
}

#[derive(Debug)]
struct Entry {
    origin: Origin,
    /// Changes whenever the entry's content does, so children notice a parent's exec.
    generation: u64,
    /// Clock ticks since boot (/proc/PID/stat's unit); `None` when unknown.
    start: Option<u64>,
    ppid: Option<u32>,
    name: Option<String>,
    exe: Option<String>,
    args: Option<Vec<String>>,
    command_line: Option<String>,
    args_truncated: bool,
    /// `exe` is the file the kernel resolved at exec (`mm->exe_file`); /proc is never asked
    /// to replace it.
    exe_from_kernel: bool,
    /// The kernel's walk of `exe` stopped before the root: the record is partial.
    exe_incomplete: bool,
    /// Device (user-space numbering) and inode of the executable, when known.
    exe_file: Option<(u64, u64)>,
    /// Its size and ctime when the process exec'd it (from the kernel) or was read from
    /// /proc: a hash is only taken from `known_hashes` for the same version.
    exe_version: Option<FileVersion>,
    /// `SHA256=<hex>` of the executable, once the worker has answered.
    exe_hash: Option<Arc<str>>,
    /// /proc was already asked to complete an exec-learned entry.
    proc_completion_tried: bool,
    kernel_thread: bool,
    uid: Option<u32>,
    gid: Option<u32>,
    /// (cgroup id it was resolved for, container id).
    container: Option<(u64, Option<Arc<str>>)>,
    shared: Shared,
}

fn join_args(args: &[String]) -> String {
    args.join(" ")
}

fn name_from(exe: Option<&str>, comm: Option<String>) -> Option<String> {
    exe.map(exe_basename)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .or(comm)
}

impl Entry {
    fn new(origin: Origin, generation: u64, start: Option<u64>) -> Self {
        Entry {
            origin,
            generation,
            start,
            ppid: None,
            name: None,
            exe: None,
            args: None,
            command_line: None,
            args_truncated: false,
            exe_from_kernel: false,
            exe_incomplete: false,
            exe_file: None,
            exe_version: None,
            exe_hash: None,
            proc_completion_tried: false,
            kernel_thread: false,
            uid: None,
            gid: None,
            container: None,
            shared: Shared::default(),
        }
    }

    fn set_args(&mut self, args: Option<Vec<String>>) {
        self.command_line = args.as_deref().map(join_args);
        self.args = args;
    }

    fn from_exec(ev: &ExecEvent, start: Option<u64>, generation: u64) -> Self {
        let mut e = Entry::new(Origin::Exec, generation, start);
        let argv = used(&ev.args, ev.args_len);
        e.set_args((!argv.is_empty()).then(|| split_argv(argv)));
        e.args_truncated = ev.args_truncated != 0;
        if let Some((exe, incomplete)) =
            kernel_exe_path(&ev.exe_path, ev.exe_path_len, ev.exe_flags)
        {
            // The file the process runs: no symlink, `/proc/self/exe` or descriptor path
            // execve was given can stand in for it. The name is that file's (busybox for
            // every applet; the applet stays in args[0]).
            e.name = name_from(Some(&exe), c_text(&ev.comm));
            e.exe = Some(exe);
            e.exe_from_kernel = true;
            e.exe_incomplete = incomplete;
            e.exe_file = (ev.exe_ino != 0).then(|| (user_dev(ev.exe_dev), ev.exe_ino));
            e.exe_version =
                FileVersion::from_kernel(ev.exe_size, ev.exe_ctime_sec, ev.exe_ctime_nsec);
        } else {
            e.exe = c_text(used(&ev.filename, ev.filename_len));
            // `/dev/fd/3` names a descriptor, not the program; the kernel's comm is better.
            let exe_for_name = e.exe.as_deref().filter(|x| !is_fd_path(x));
            e.name = name_from(exe_for_name, c_text(&ev.comm));
        }
        e.ppid = (ev.ppid != 0).then_some(ev.ppid);
        e.uid = Some(ev.uid);
        e.gid = Some(ev.gid);
        e
    }

    fn from_snapshot(snap: ProcSnapshot, origin: Origin, generation: u64) -> Self {
        let mut e = Entry::new(origin, generation, Some(snap.stat.start_ticks));
        e.exe = snap.exe.as_deref().map(text_from_bytes);
        e.set_args(snap.args);
        e.args_truncated = snap.args_truncated;
        e.name = name_from(e.exe.as_deref(), c_text(&snap.stat.comm));
        e.ppid = (snap.stat.ppid != 0).then_some(snap.stat.ppid);
        e.kernel_thread = snap.stat.kernel_thread;
        e.uid = snap.uid;
        e.gid = snap.gid;
        e
    }

    /// A forked child: the forking process's image, argv, name and ids, until it execs.
    fn inherit(&self, start: Option<u64>, ppid: Option<u32>, generation: u64) -> Self {
        let mut e = Entry::new(Origin::Fork, generation, start);
        e.ppid = ppid;
        e.name = self.name.clone();
        e.exe = self.exe.clone();
        e.args = self.args.clone();
        e.command_line = self.command_line.clone();
        e.args_truncated = self.args_truncated;
        e.exe_from_kernel = self.exe_from_kernel;
        e.exe_incomplete = self.exe_incomplete;
        e.exe_file = self.exe_file;
        e.exe_version = self.exe_version;
        e.exe_hash = self.exe_hash.clone();
        // /proc would show the child later on, perhaps after an exec: never completed from it.
        e.proc_completion_tried = true;
        e.kernel_thread = self.kernel_thread;
        e.uid = self.uid;
        e.gid = self.gid;
        e
    }

    fn from_kernel(ev: &ConnectEvent, start: Option<u64>, generation: u64) -> Self {
        let mut e = Entry::new(Origin::Kernel, generation, start);
        e.name = c_text(&ev.comm);
        e.uid = Some(ev.uid);
        e.gid = Some(ev.gid);
        e
    }
}

/// An exec path that names a descriptor or another process's image rather than a program:
/// `/dev/fd/N` (what the kernel reports for `execveat(fd, "", AT_EMPTY_PATH)`), and
/// `/proc/self/exe`, `/proc/PID/exe`, `/proc/*/fd/N` (busybox re-running itself; a payload
/// launched through a magic link to hide its name from Image-based rules). /proc/PID/exe
/// resolves each of them to the real file.
fn is_fd_path(path: &str) -> bool {
    if path.starts_with("/dev/fd/") {
        return true;
    }
    let Some(rest) = path.strip_prefix("/proc/") else {
        return false;
    };
    let mut parts = rest.splitn(3, '/');
    let (Some(who), Some(what)) = (parts.next(), parts.next()) else {
        return false;
    };
    let is_process =
        who == "self" || who == "thread-self" || who.bytes().all(|b| b.is_ascii_digit());
    is_process && (what == "exe" || what == "fd")
}

#[cfg(test)]
mod indirect_path_tests {
    use super::is_fd_path;

    #[test]
    fn magic_links_are_not_program_paths() {
        for p in [
            "/dev/fd/3",
            "/proc/self/exe",
            "/proc/1234/exe",
            "/proc/self/fd/5",
            "/proc/thread-self/exe",
        ] {
            assert!(is_fd_path(p), "{p}");
        }
        for p in [
            "/usr/bin/curl",
            "/proc/sys/x",
            "/procfs/self/exe",
            "/proc/self/cwd/bin/sh",
        ] {
            assert!(!is_fd_path(p), "{p}");
        }
    }
}

/// Start times agree unless both are known and differ.
fn same_start(a: Option<u64>, b: Option<u64>) -> bool {
    !matches!((a, b), (Some(x), Some(y)) if x != y)
}

/// A parent cannot have started after its child.
fn can_be_parent(parent_start: Option<u64>, child_start: Option<u64>) -> bool {
    !matches!((parent_start, child_start), (Some(p), Some(c)) if p > c)
}

/// Whether `full` (from /proc) continues the kernel's truncated `prefix`.
fn continues(prefix: &[String], full: &[String]) -> bool {
    let Some((last, head)) = prefix.split_last() else {
        return false;
    };
    full.len() >= prefix.len()
        && full[..head.len()] == *head
        && full[head.len()].starts_with(last.as_str())
}

fn cap(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

// The pipeline may move the table into a task and share it with the metrics reader.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<ProcessTable>();
};

/// Live processes and the enrichment of connect events with them.
#[derive(Debug)]
pub struct ProcessTable {
    live: LruCache<u32, Entry>,
    learned: LruCache<u32, Entry>,
    exited: LruCache<u32, Entry>,
    proc: ProcFs,
    users: UserNames,
    nameservers: Nameservers,
    containers: ContainerIds,
    hasher: Option<ExeHasher>,
    /// (dev, ino) -> the version hashed and `SHA256=<hex>`, the worker's latest answers: a
    /// process exec'ing a known file, in the same version, has its hash on its first record
    /// without asking the worker again. A file rewritten in place keeps its inode but not
    /// its ctime, so an old answer never stands for new content.
    known_hashes: LruCache<(u64, u64), (FileVersion, Arc<str>)>,
    ns_per_tick: u64,
    next_generation: u64,
    stats: ProcessStats,
}

impl ProcessTable {
    pub fn new(cfg: ProcessTableConfig) -> Self {
        let ticks = clock_ticks_per_sec();
        let hasher = cfg
            .hash
            .enabled
            .then(|| ExeHasher::start(&cfg.hash, cfg.proc_root.clone()))
            .and_then(|r| {
                r.map_err(|e| {
                    tracing::warn!(error = %e, "no executable hashes: the worker did not start")
                })
                .ok()
            });
        ProcessTable {
            live: LruCache::new(cap(cfg.max_entries)),
            learned: LruCache::new(cap(cfg.max_proc_cache)),
            exited: LruCache::new(cap(cfg.max_exited)),
            proc: ProcFs::new(cfg.proc_root),
            users: UserNames::new(cfg.passwd_path, DEFAULT_RECHECK),
            nameservers: Nameservers::new(cfg.resolv_conf_path, DEFAULT_RECHECK),
            containers: ContainerIds::new(cfg.max_cgroups, cfg.cgroup2_root),
            known_hashes: LruCache::new(cap(cfg.hash.cache_entries)),
            hasher,
            ns_per_tick: (1_000_000_000 / ticks).max(1),
            next_generation: 1,
            stats: ProcessStats::default(),
        }
    }

    /// Processes tracked (exec/scan-learned and /proc-learned), not counting exited ones.
    pub fn len(&self) -> usize {
        self.live.len() + self.learned.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a live process with this tgid is tracked.
    pub fn contains(&self, pid: u32) -> bool {
        self.live.contains(&pid) || self.learned.contains(&pid)
    }

    pub fn stats(&self) -> ProcessStats {
        ProcessStats {
            entries: self.live.len() + self.learned.len(),
            exited_entries: self.exited.len(),
            cgroup_entries: self.containers.len(),
            proc_reads: self.proc.reads() - self.stats.scan_reads,
            cgroup_walks: self.containers.walks(),
            passwd_loads: self.users.loads(),
            hashes_computed: self.hash_counter(|c| &c.computed),
            hashes_cached: self.hash_counter(|c| &c.cached),
            hash_too_big: self.hash_counter(|c| &c.too_big),
            hash_failed: self.hash_counter(|c| &c.failed),
            ..self.stats
        }
    }

    fn hash_counter(
        &self,
        which: impl Fn(&super::hash::HashCounters) -> &std::sync::atomic::AtomicU64,
    ) -> u64 {
        self.hasher.as_ref().map_or(0, |h| {
            which(h.counters()).load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// Boot-time ns from the kernel -> /proc's clock ticks; 0 means unknown.
    fn ticks(&self, ns: u64) -> Option<u64> {
        (ns != 0).then(|| ns / self.ns_per_tick)
    }

    fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    fn put_live(&mut self, pid: u32, entry: Entry) {
        let new_start = entry.start;
        match self.live.push(pid, entry) {
            Some((old_pid, _)) if old_pid != pid => self.stats.evictions += 1,
            // Same pid, another process: its exit was lost; keep it for its children.
            // (Same start: the process exec'd again and the old image is simply replaced.)
            Some((_, old)) if old.start.is_some() && old.start != new_start => {
                self.stats.stale_entries += 1;
                self.retire(pid, old);
            }
            _ => {}
        }
    }

    fn put_learned(&mut self, pid: u32, entry: Entry) {
        if let Some((old_pid, _)) = self.learned.push(pid, entry)
            && old_pid != pid
        {
            self.stats.evictions += 1;
        }
    }

    /// Keeps an exited process for its children; only with a start time, which is what
    /// tells it apart from a later process with the same pid.
    fn retire(&mut self, pid: u32, mut entry: Entry) {
        if entry.start.is_some() {
            entry.shared = Shared::default();
            self.exited.put(pid, entry);
        }
    }

    fn peek(&self, slot: Slot, pid: u32) -> Option<&Entry> {
        match slot {
            Slot::Live => self.live.peek(&pid),
            Slot::Learned => self.learned.peek(&pid),
            Slot::Exited => self.exited.peek(&pid),
        }
    }

    fn peek_mut(&mut self, slot: Slot, pid: u32) -> Option<&mut Entry> {
        match slot {
            Slot::Live => self.live.peek_mut(&pid),
            Slot::Learned => self.learned.peek_mut(&pid),
            Slot::Exited => self.exited.peek_mut(&pid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn argv_continuation_check() {
        assert!(continues(
            &s(&["python3", "-c", "pri"]),
            &s(&["python3", "-c", "print(1)"])
        ));
        assert!(continues(&s(&["a", "b"]), &s(&["a", "b", "c"])));
        assert!(!continues(&s(&["a", "b"]), &s(&["a", "x", "c"])));
        assert!(!continues(&s(&["a", "b"]), &s(&["a"])));
        assert!(!continues(&[], &s(&["a"])));
    }

    #[test]
    fn start_time_rules() {
        assert!(same_start(None, Some(5)));
        assert!(same_start(Some(5), Some(5)));
        assert!(!same_start(Some(5), Some(6)));
        assert!(can_be_parent(Some(5), Some(5)));
        assert!(can_be_parent(Some(4), Some(5)));
        assert!(!can_be_parent(Some(6), Some(5)));
        assert!(can_be_parent(None, Some(5)));
    }
}
