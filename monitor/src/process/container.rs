//! Container id from a process's cgroup path, cached per cgroup id.
//!
//! Runtimes name the cgroup after the container: `docker-<id>.scope` (systemd driver),
//! `/docker/<id>` (cgroupfs driver), `cri-containerd-<id>.scope`, `crio-<id>.scope`,
//! `libpod-<id>.scope` (podman), and Kubernetes' cgroupfs layout
//! `/kubepods/<qos>/pod<uid>/<id>`. The id is 64 lowercase hex digits.
//!
//! A process that is gone cannot be asked for /proc/PID/cgroup, so a miss for an unknown
//! cgroup id falls back to finding the cgroup directory whose inode is that id in the
//! cgroup v2 mount (the kernel's cgroup id is that inode number).

use std::num::NonZeroUsize;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lru::LruCache;

use super::procfs::{ProcFs, read_bounded};

/// Most directories the fallback search visits before giving up.
const MAX_WALK_DIRS: usize = 20_000;
/// Deepest cgroup nesting the fallback search enters.
const MAX_WALK_DEPTH: usize = 32;

const ID_LEN: usize = 64;
const SCOPE_PREFIXES: [&str; 4] = ["docker-", "cri-containerd-", "crio-", "libpod-"];

/// A container id found in /proc/PID/cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupMatch {
    pub id: String,
    /// Found on the cgroup v2 line (`0::`), whose cgroup is the one the kernel's
    /// cgroup id names; ids found only on v1 lines must not be cached by that id.
    pub unified: bool,
}

fn is_container_id(s: &str) -> bool {
    s.len() == ID_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The container id in one cgroup path, innermost first (Docker-in-Docker yields the
/// inner container).
pub fn container_id_from_path(path: &str) -> Option<&str> {
    path.rsplit('/').find_map(|comp| {
        if is_container_id(comp) {
            return Some(comp);
        }
        let scope = comp.strip_suffix(".scope")?;
        SCOPE_PREFIXES.iter().find_map(|p| {
            // `libpod-conmon-<id>` and `crio-conmon-<id>` hold the monitor process, not
            // the container; the hex check rejects them.
            scope.strip_prefix(p).filter(|id| is_container_id(id))
        })
    })
}

/// The container id in a /proc/PID/cgroup file, preferring the cgroup v2 line.
pub fn container_id_from_cgroup(contents: &[u8]) -> Option<CgroupMatch> {
    let text = String::from_utf8_lossy(contents);
    let mut v1 = None;
    for line in text.lines() {
        // hierarchy-id:controllers:path; the path may itself contain ':'.
        let mut parts = line.splitn(3, ':');
        let (Some(hier), Some(_), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Some(id) = container_id_from_path(path) else {
            continue;
        };
        if hier == "0" {
            return Some(CgroupMatch {
                id: id.to_string(),
                unified: true,
            });
        }
        v1.get_or_insert_with(|| id.to_string());
    }
    v1.map(|id| CgroupMatch { id, unified: false })
}

/// Whether a cgroup file has only the v2 line, so the kernel's cgroup id decides all.
fn pure_v2(contents: &[u8]) -> bool {
    String::from_utf8_lossy(contents)
        .lines()
        .filter(|l| !l.is_empty())
        .all(|l| l.starts_with("0::"))
}

/// The cgroup v2 mount point, from a mountinfo file.
pub fn cgroup2_mount(mountinfo: &[u8]) -> Option<PathBuf> {
    let text = String::from_utf8_lossy(mountinfo);
    text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_ascii_whitespace().next()? != "cgroup2" {
            return None;
        }
        // Field 5 is the mount point; octal escapes (\040) only for odd paths.
        let mount = left.split_ascii_whitespace().nth(4)?;
        Some(PathBuf::from(unescape_mountinfo(mount)))
    })
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(&[d0, d1, d2]) = b.get(i + 1..i + 4)
            && [d0, d1, d2].iter().all(|d| (b'0'..=b'7').contains(d))
        {
            // Three octal digits fit in u16; values above 255 are kept as written.
            let v = u16::from(d0 - b'0') * 64 + u16::from(d1 - b'0') * 8 + u16::from(d2 - b'0');
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The path (relative to `root`, starting with `/`) of the cgroup directory whose inode is
/// `cgroup_id`, searched breadth-first within fixed limits.
pub fn find_cgroup_path(root: &Path, cgroup_id: u64) -> Option<String> {
    let mut queue = std::collections::VecDeque::from([(root.to_path_buf(), 0usize)]);
    let mut visited = 0usize;
    while let Some((dir, depth)) = queue.pop_front() {
        visited += 1;
        if visited > MAX_WALK_DIRS {
            return None;
        }
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue;
        };
        if meta.ino() == cgroup_id {
            let rel = dir.strip_prefix(root).ok()?;
            return Some(format!("/{}", rel.to_string_lossy()));
        }
        if depth >= MAX_WALK_DEPTH {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                queue.push_back((e.path(), depth + 1));
            }
        }
    }
    None
}

/// Cached cgroup id -> container id (or "no container").
#[derive(Debug)]
pub struct ContainerIds {
    by_cgroup: LruCache<u64, Option<Arc<str>>>,
    /// `None` until first needed; `Some(None)` when there is no cgroup v2 mount.
    cgroup2: Option<Option<PathBuf>>,
    configured_root: Option<PathBuf>,
    walks: u64,
}

/// What `ContainerIds::resolve` learned for one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Known: the container id, or `None` for a process outside any container.
    Known(Option<Arc<str>>),
    /// Neither /proc nor the cgroup tree could tell.
    Unknown,
}

impl ContainerIds {
    pub fn new(capacity: usize, cgroup2_root: Option<PathBuf>) -> Self {
        ContainerIds {
            by_cgroup: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
            cgroup2: None,
            configured_root: cgroup2_root,
            walks: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.by_cgroup.len()
    }

    /// Cgroup-tree searches made (a process gone before its cgroup was read).
    pub fn walks(&self) -> u64 {
        self.walks
    }

    /// Cached answer for a cgroup id, without any reading.
    pub fn cached(&mut self, cgroup_id: u64) -> Option<Option<Arc<str>>> {
        if cgroup_id == 0 {
            return None;
        }
        self.by_cgroup.get(&cgroup_id).cloned()
    }

    /// Resolves the container of `pid`, whose kernel cgroup id is `cgroup_id` (0: unknown).
    pub fn resolve(&mut self, cgroup_id: u64, pid: u32, proc: &ProcFs) -> Resolved {
        if let Some(hit) = self.cached(cgroup_id) {
            return Resolved::Known(hit);
        }
        if let Ok(contents) = proc.cgroup(pid) {
            let found = container_id_from_cgroup(&contents);
            let id: Option<Arc<str>> = found.as_ref().map(|m| Arc::from(m.id.as_str()));
            // On hybrid v1/v2 hosts a container may show only on v1 lines while its v2
            // cgroup is shared with host processes: cache by cgroup id only when the v2
            // line alone decides.
            let decisive = found.as_ref().is_some_and(|m| m.unified) || pure_v2(&contents);
            if cgroup_id != 0 && decisive {
                self.by_cgroup.put(cgroup_id, id.clone());
            }
            return Resolved::Known(id);
        }
        if cgroup_id == 0 {
            return Resolved::Unknown;
        }
        let Some(root) = self.cgroup2_root(proc) else {
            return Resolved::Unknown;
        };
        self.walks += 1;
        match find_cgroup_path(&root, cgroup_id) {
            Some(path) => {
                let id: Option<Arc<str>> = container_id_from_path(&path).map(Arc::from);
                self.by_cgroup.put(cgroup_id, id.clone());
                Resolved::Known(id)
            }
            None => Resolved::Unknown,
        }
    }

    fn cgroup2_root(&mut self, proc: &ProcFs) -> Option<PathBuf> {
        if let Some(r) = &self.configured_root {
            return Some(r.clone());
        }
        self.cgroup2
            .get_or_insert_with(|| {
                read_bounded(&proc.root().join("self/mountinfo"), 1 << 20)
                    .ok()
                    .and_then(|m| cgroup2_mount(&m))
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e1c2d5b6a79808f9e0d1c2b3a49586776a5b4c3d2e1f00f1e2d3c4b5a6978";

    fn found(s: &str) -> Option<CgroupMatch> {
        container_id_from_cgroup(s.as_bytes())
    }

    #[test]
    fn runtimes_and_layouts() {
        let unified = |id: &str| {
            Some(CgroupMatch {
                id: id.to_string(),
                unified: true,
            })
        };
        // Docker, systemd driver (cgroup v2).
        assert_eq!(
            found(&format!("0::/system.slice/docker-{ID}.scope\n")),
            unified(ID)
        );
        // Docker, cgroupfs driver.
        assert_eq!(found(&format!("0::/docker/{ID}\n")), unified(ID));
        // containerd under Kubernetes, systemd driver.
        assert_eq!(
            found(&format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b.slice/cri-containerd-{ID}.scope\n"
            )),
            unified(ID)
        );
        // Kubernetes, cgroupfs driver.
        assert_eq!(
            found(&format!("0::/kubepods/besteffort/pod1a2b-3c/{ID}\n")),
            unified(ID)
        );
        // CRI-O.
        assert_eq!(
            found(&format!(
                "0::/kubepods.slice/kubepods-pod1.slice/crio-{ID}.scope\n"
            )),
            unified(ID)
        );
        // Podman (rootful), including the nested `container` cgroup.
        assert_eq!(
            found(&format!("0::/machine.slice/libpod-{ID}.scope/container\n")),
            unified(ID)
        );
        // Podman's conmon is not the container.
        assert_eq!(
            found(&format!("0::/machine.slice/libpod-conmon-{ID}.scope\n")),
            None
        );
        // Hybrid host: only a v1 line names the container.
        assert_eq!(
            found(&format!("4:memory:/docker/{ID}\n0::/\n")),
            Some(CgroupMatch {
                id: ID.to_string(),
                unified: false
            })
        );
        // Docker in Docker: the innermost container.
        let inner = ID.replace('3', "4");
        assert_eq!(
            found(&format!("0::/docker/{ID}/docker/{inner}\n")),
            unified(&inner)
        );
    }

    #[test]
    fn no_container() {
        assert_eq!(found("0::/user.slice/user-0.slice/session-1.scope\n"), None);
        assert_eq!(found("0::/\n"), None);
        assert_eq!(found("0::/system.slice/docker.service\n"), None);
        // Wrong length or not hex.
        assert_eq!(found(&format!("0::/docker/{}\n", &ID[..63])), None);
        assert_eq!(
            found(&format!("0::/docker-{}.scope\n", ID.to_uppercase())),
            None
        );
        assert_eq!(found(""), None);
        assert!(pure_v2(b"0::/a\n"));
        assert!(!pure_v2(b"4:memory:/x\n0::/\n"));
    }

    #[test]
    fn mountinfo_cgroup2() {
        let m = b"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(m),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let odd = b"41 31 0:38 / /mnt/cg\\040two rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount(odd), Some(PathBuf::from("/mnt/cg two")));
        assert_eq!(cgroup2_mount(b"1 2 0:1 / / rw - ext4 /dev/x rw\n"), None);
    }
}
