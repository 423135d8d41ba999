//! SHA-256 of executables, computed off the event path by one worker thread.
//!
//! The process table asks for the hash of a process's executable when it learns the process
//! (exec, start-up scan, /proc on a miss) and writes records without it until the answer
//! comes back; answers are applied between batches of events. The worker opens the exact
//! file: `/proc/PID/exe` while the process is alive (which also reaches deleted files and
//! memfds), else the resolved path, and only accepts a file whose device and inode are the
//! ones the kernel reported at exec. Hashes are cached by (device, inode, size, ctime), so a
//! program exec'd a thousand times is read once, and a file changed in place is read again
//! (ctime, not mtime: the file's owner can set mtime back with `touch`, nobody can ctime).
//! Bounded: files larger than `max_file_bytes` are not hashed, hashing reads at most
//! `max_bytes_per_sec`, requests beyond a full queue are dropped (counted).

use std::fs::File;
use std::io::Read as _;
use std::num::NonZeroUsize;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// Limits of executable hashing (`[process.hash]` in the config file).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HashConfig {
    /// Compute `process.hash.sha256` at all.
    pub enabled: bool,
    /// Larger files are not hashed.
    pub max_file_bytes: u64,
    /// Hashing reads at most this many bytes per second (the worker sleeps past it).
    pub max_bytes_per_sec: u64,
    /// (device, inode, size, ctime) -> hash answers kept.
    pub cache_entries: usize,
    /// Requests waiting for the worker; more are dropped and counted.
    pub queue: usize,
}

impl Default for HashConfig {
    fn default() -> Self {
        HashConfig {
            enabled: true,
            max_file_bytes: 64 << 20,
            max_bytes_per_sec: 64 << 20,
            cache_entries: 4_096,
            queue: 1_024,
        }
    }
}

/// One file to hash, for one process.
#[derive(Clone, Debug)]
pub struct HashRequest {
    pub pid: u32,
    /// The process's start (clock ticks), to find its entry again.
    pub start: Option<u64>,
    /// The file the kernel named: user-space device number and inode.
    pub dev: u64,
    pub ino: u64,
    /// The resolved path, tried when /proc/PID/exe no longer leads to the file.
    pub path: Option<PathBuf>,
}

/// The worker's answer: `sha256` is lowercase hex, `None` when the file could not be read,
/// was not the one named, or was too large.
#[derive(Clone, Debug)]
pub struct HashReply {
    pub pid: u32,
    pub start: Option<u64>,
    pub dev: u64,
    pub ino: u64,
    /// The version of the file that was hashed (when it was opened).
    pub version: Option<FileVersion>,
    pub sha256: Option<Arc<str>>,
}

/// A file's content version as far as a hash is concerned: its size and inode change time
/// (ns since the epoch). Rewriting a file in place keeps its device and inode but changes
/// its ctime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileVersion {
    pub size: u64,
    pub ctime_ns: i128,
}

impl FileVersion {
    pub fn of(meta: &std::fs::Metadata) -> FileVersion {
        FileVersion {
            size: meta.len(),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    /// From the kernel's exec record; `None` when it carries no version.
    pub fn from_kernel(size: u64, ctime_sec: u64, ctime_nsec: u32) -> Option<FileVersion> {
        (ctime_nsec != u32::MAX).then(|| FileVersion {
            size,
            ctime_ns: i128::from(ctime_sec as i64) * 1_000_000_000 + i128::from(ctime_nsec),
        })
    }
}

/// Worker counters.
#[derive(Debug, Default)]
pub struct HashCounters {
    /// Files read and hashed.
    pub computed: AtomicU64,
    /// Answers from the cache.
    pub cached: AtomicU64,
    /// Files over `max_file_bytes`.
    pub too_big: AtomicU64,
    /// Files that could not be opened or read, or were another file than the one named.
    pub failed: AtomicU64,
}

/// The handle the process table holds.
#[derive(Debug)]
pub struct ExeHasher {
    tx: SyncSender<HashRequest>,
    /// `Mutex` only so the table stays `Sync`; one reader.
    rx: Mutex<Receiver<HashReply>>,
    counters: Arc<HashCounters>,
    proc_root: PathBuf,
}

impl ExeHasher {
    /// Starts the worker thread; it ends when the handle is dropped.
    pub fn start(cfg: &HashConfig, proc_root: PathBuf) -> std::io::Result<ExeHasher> {
        let (tx, requests) = std::sync::mpsc::sync_channel(cfg.queue.max(1));
        let (replies, rx) = std::sync::mpsc::channel();
        let counters = Arc::new(HashCounters::default());
        let worker = Worker {
            cfg: cfg.clone(),
            proc_root: proc_root.clone(),
            cache: LruCache::new(NonZeroUsize::new(cfg.cache_entries).unwrap_or(NonZeroUsize::MIN)),
            counters: counters.clone(),
            budget: Budget::new(cfg.max_bytes_per_sec),
        };
        std::thread::Builder::new()
            .name("exe-hash".into())
            .spawn(move || worker.run(requests, replies))?;
        Ok(ExeHasher {
            tx,
            rx: Mutex::new(rx),
            counters,
            proc_root,
        })
    }

    /// Queues a request; `false` when the queue is full (the request is dropped).
    pub fn request(&self, req: HashRequest) -> bool {
        match self.tx.try_send(req) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// Answers ready now, without waiting.
    pub fn ready(&self) -> Vec<HashReply> {
        match self.rx.lock() {
            Ok(rx) => rx.try_iter().collect(),
            Err(_) => Vec::new(),
        }
    }

    pub fn counters(&self) -> &HashCounters {
        &self.counters
    }

    /// Device, inode and version of a live process's executable (`stat /proc/PID/exe`).
    pub fn exe_identity(&self, pid: u32) -> Option<((u64, u64), FileVersion)> {
        let m = std::fs::metadata(self.proc_root.join(pid.to_string()).join("exe")).ok()?;
        Some(((m.dev(), m.ino()), FileVersion::of(&m)))
    }
}

/// The kernel's `dev_t` (`major << 20 | minor`, as `s_dev` holds it) as user space numbers
/// devices (`st_dev`).
pub fn user_dev(kernel_dev: u32) -> u64 {
    libc::makedev(kernel_dev >> 20, kernel_dev & 0xf_ffff)
}

/// Reads at most `rate` bytes per second on average, in bursts of up to a second's worth.
struct Budget {
    rate: u64,
    tokens: f64,
    last: Instant,
}

impl Budget {
    fn new(rate: u64) -> Self {
        Budget {
            rate: rate.max(1),
            tokens: rate.max(1) as f64,
            last: Instant::now(),
        }
    }

    /// Waits until `bytes` may be read.
    fn take(&mut self, bytes: u64) {
        let now = Instant::now();
        let cap = self.rate as f64;
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * cap).min(cap);
        self.last = now;
        self.tokens -= bytes as f64;
        if self.tokens < 0.0 {
            std::thread::sleep(Duration::from_secs_f64(-self.tokens / cap));
        }
    }
}

/// (dev, ino) -> (version, hash).
type Cache = LruCache<(u64, u64), (FileVersion, Arc<str>)>;

struct Worker {
    cfg: HashConfig,
    proc_root: PathBuf,
    cache: Cache,
    counters: Arc<HashCounters>,
    budget: Budget,
}

impl Worker {
    fn run(mut self, requests: Receiver<HashRequest>, replies: std::sync::mpsc::Sender<HashReply>) {
        for req in requests {
            let (version, sha256) = self.answer(&req);
            let reply = HashReply {
                pid: req.pid,
                start: req.start,
                dev: req.dev,
                ino: req.ino,
                version,
                sha256,
            };
            if replies.send(reply).is_err() {
                return;
            }
        }
    }

    fn answer(&mut self, req: &HashRequest) -> (Option<FileVersion>, Option<Arc<str>>) {
        let proc_exe = self.proc_root.join(req.pid.to_string()).join("exe");
        let candidates = std::iter::once(proc_exe).chain(req.path.clone());
        for path in candidates {
            let Ok(mut file) = File::open(&path) else {
                continue;
            };
            let Ok(meta) = file.metadata() else {
                continue;
            };
            if (meta.dev(), meta.ino()) != (req.dev, req.ino) || !meta.is_file() {
                continue;
            }
            let version = FileVersion::of(&meta);
            let key = (req.dev, req.ino);
            if let Some((v, hash)) = self.cache.get(&key)
                && *v == version
            {
                self.counters.cached.fetch_add(1, Ordering::Relaxed);
                return (Some(version), Some(hash.clone()));
            }
            if meta.len() > self.cfg.max_file_bytes {
                self.counters.too_big.fetch_add(1, Ordering::Relaxed);
                return (Some(version), None);
            }
            let Some(hash) = self.hash(&mut file) else {
                break;
            };
            self.counters.computed.fetch_add(1, Ordering::Relaxed);
            self.cache.put(key, (version, hash.clone()));
            return (Some(version), Some(hash));
        }
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        (None, None)
    }

    fn hash(&mut self, file: &mut File) -> Option<Arc<str>> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 << 10];
        let mut total = 0u64;
        loop {
            let n = file.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            total += n as u64;
            // A file that grew past the limit while being read is not hashed either.
            if total > self.cfg.max_file_bytes {
                self.counters.too_big.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            self.budget.take(n as u64);
            hasher.update(&buf[..n]);
        }
        Some(hex(&hasher.finalize()).into())
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(h: &ExeHasher) -> HashReply {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = h.ready().pop() {
                return r;
            }
            assert!(Instant::now() < deadline, "no answer from the hash worker");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn request(path: &std::path::Path, pid: u32) -> HashRequest {
        let m = std::fs::metadata(path).unwrap();
        HashRequest {
            pid,
            start: Some(1),
            dev: m.dev(),
            ino: m.ino(),
            path: Some(path.to_path_buf()),
        }
    }

    #[test]
    fn hashes_the_named_file_once_and_again_when_it_changes() {
        let dir = std::env::temp_dir().join(format!("exe-hash-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("prog");
        std::fs::write(&f, b"abc").unwrap();
        let h = ExeHasher::start(&HashConfig::default(), "/proc".into()).unwrap();
        // A pid no process has: /proc/PID/exe fails, the path is used.
        let pid = u32::MAX - 1;
        assert!(h.request(request(&f, pid)));
        let r = wait(&h);
        assert_eq!(
            r.sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert!(h.request(request(&f, pid)));
        assert!(wait(&h).sha256.is_some());
        assert_eq!(h.counters().computed.load(Ordering::Relaxed), 1);
        assert_eq!(h.counters().cached.load(Ordering::Relaxed), 1);
        // Changed in place (same inode, new size and ctime): read again.
        std::fs::write(&f, b"abcd").unwrap();
        assert!(h.request(request(&f, pid)));
        let r = wait(&h);
        assert_eq!(
            r.sha256.as_deref(),
            Some("88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589")
        );
        assert_eq!(
            r.version,
            Some(FileVersion::of(&std::fs::metadata(&f).unwrap()))
        );
        // Same size, mtime set back to what it was: the ctime still moved, so it is read
        // again (an owner can forge mtime, not ctime).
        let before = std::fs::metadata(&f).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&f, b"abce").unwrap();
        set_mtime(&f, before.mtime(), before.mtime_nsec());
        let after = std::fs::metadata(&f).unwrap();
        assert_eq!(
            (after.mtime(), after.mtime_nsec()),
            (before.mtime(), before.mtime_nsec())
        );
        assert!(h.request(request(&f, pid)));
        assert_eq!(
            wait(&h).sha256.as_deref(),
            Some(hex(&Sha256::digest(b"abce")).as_str())
        );
        // Another file now at the path: not the one the kernel named.
        let mut other = request(&f, pid);
        other.ino += 1;
        assert!(h.request(other));
        assert_eq!(wait(&h).sha256, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn set_mtime(path: &std::path::Path, sec: i64, nsec: i64) {
        use std::os::unix::ffi::OsStrExt as _;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        let times = [
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
            libc::timespec {
                tv_sec: sec,
                tv_nsec: nsec,
            },
        ];
        // SAFETY: a NUL-terminated path and an array of two timespecs, as utimensat wants.
        let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) };
        assert_eq!(rc, 0, "utimensat: {}", std::io::Error::last_os_error());
    }

    #[test]
    fn files_over_the_limit_are_not_hashed() {
        let dir = std::env::temp_dir().join(format!("exe-hash-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("big");
        std::fs::write(&f, vec![0u8; 4096]).unwrap();
        let cfg = HashConfig {
            max_file_bytes: 1024,
            ..HashConfig::default()
        };
        let h = ExeHasher::start(&cfg, "/proc".into()).unwrap();
        assert!(h.request(request(&f, u32::MAX - 1)));
        assert_eq!(wait(&h).sha256, None);
        assert_eq!(h.counters().too_big.load(Ordering::Relaxed), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_live_processs_exe_is_read_through_proc() {
        // A small live process: the test binary itself is past the 64 MiB size limit in a
        // debug build, so it would not be hashed at all.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("starting sleep");
        let me = child.id();
        let (dev, ino) = {
            let m = std::fs::metadata(format!("/proc/{me}/exe")).unwrap();
            (m.dev(), m.ino())
        };
        let h = ExeHasher::start(&HashConfig::default(), "/proc".into()).unwrap();
        assert_eq!(h.exe_identity(me).map(|(file, _)| file), Some((dev, ino)));
        assert!(h.request(HashRequest {
            pid: me,
            start: None,
            dev,
            ino,
            path: None,
        }));
        let sha256 = wait(&h).sha256;
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(sha256.map(|s| s.len()), Some(64));
        assert_eq!(user_dev((8 << 20) | 1), libc::makedev(8, 1));
    }
}
