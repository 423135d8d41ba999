//! uid -> user name from /etc/passwd, cached, reloaded when the file changes.
//!
//! Deliberately not `getpwuid_r`: NSS modules (LDAP, sssd) can block on the network, and
//! this runs on the event path. Names are only looked up when a process's record is
//! (re)built, and the file is checked for changes at most once per `recheck` interval.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::record::text_from_bytes;

/// How often a lookup may stat /etc/passwd to see whether it changed.
pub const DEFAULT_RECHECK: Duration = Duration::from_secs(5);

/// What identifies one version of the file: (inode, size, mtime ns).
type FileStamp = (u64, u64, i128);

/// Parses passwd lines `name:password:uid:gid:...`; the first line for a uid wins, as in
/// `getpwuid`. Malformed lines are skipped.
pub fn parse_passwd(contents: &[u8]) -> HashMap<u32, Arc<str>> {
    let mut names = HashMap::new();
    for line in contents.split(|&b| b == b'\n') {
        let mut fields = line.split(|&b| b == b':');
        let (Some(name), Some(_pw), Some(uid)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if name.is_empty() || name.starts_with(b"#") {
            continue;
        }
        let Some(uid) = std::str::from_utf8(uid)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        else {
            continue;
        };
        names
            .entry(uid)
            .or_insert_with(|| Arc::from(text_from_bytes(name)));
    }
    names
}

/// Cached uid -> name map over one passwd file.
#[derive(Debug)]
pub struct UserNames {
    path: PathBuf,
    recheck: Duration,
    names: HashMap<u32, Arc<str>>,
    stamp: Option<FileStamp>,
    last_check: Option<Instant>,
    loads: u64,
}

impl UserNames {
    pub fn new(path: impl Into<PathBuf>, recheck: Duration) -> Self {
        UserNames {
            path: path.into(),
            recheck,
            names: HashMap::new(),
            stamp: None,
            last_check: None,
            loads: 0,
        }
    }

    /// The name of `uid`, or `None` when the file has no entry for it (common for
    /// container uids) or cannot be read.
    pub fn name(&mut self, uid: u32) -> Option<Arc<str>> {
        let due = self.last_check.is_none_or(|t| t.elapsed() >= self.recheck);
        if due {
            self.refresh();
        }
        self.names.get(&uid).cloned()
    }

    /// Times the file was (re)loaded.
    pub fn loads(&self) -> u64 {
        self.loads
    }

    fn refresh(&mut self) {
        self.last_check = Some(Instant::now());
        let stamp = std::fs::metadata(&self.path).ok().map(|m| {
            let mtime = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
            (m.ino(), m.size(), mtime)
        });
        if stamp.is_some() && stamp == self.stamp {
            return;
        }
        // Unreadable now: keep the names we had rather than forget every user.
        if let Ok(contents) = std::fs::read(&self.path) {
            self.names = parse_passwd(&contents);
            self.stamp = stamp;
            self.loads += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_first_entry_wins() {
        let n = parse_passwd(
            b"root:x:0:0:root:/root:/bin/bash\n#c:x:9:9\nbad line\nalice:x:1000:1000::/h:/bin/sh\nalias:x:0:0::/:/bin/sh\nweird\xff:x:1001:1\nnum:x:notanumber:1\n",
        );
        assert_eq!(n.get(&0).map(|s| &**s), Some("root"));
        assert_eq!(n.get(&1000).map(|s| &**s), Some("alice"));
        assert_eq!(n.get(&1001).map(|s| &**s), Some("weird\\xff"));
        assert_eq!(n.len(), 3);
    }

    #[test]
    fn real_passwd_knows_root_and_reloads_on_change() {
        let mut system = UserNames::new("/etc/passwd", DEFAULT_RECHECK);
        assert_eq!(system.name(0).as_deref(), Some("root"));

        let dir = std::env::temp_dir().join(format!("monitor-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("passwd");
        std::fs::write(&path, "a:x:5000:5000::/:/bin/sh\n").unwrap();
        let mut users = UserNames::new(&path, Duration::ZERO);
        assert_eq!(users.name(5000).as_deref(), Some("a"));
        assert_eq!(users.name(5001), None);
        assert_eq!(users.loads(), 1);
        // Unchanged file: checked, not reloaded.
        assert_eq!(users.name(5000).as_deref(), Some("a"));
        assert_eq!(users.loads(), 1);
        // Replaced (new inode), as useradd does.
        let tmp = dir.join("passwd.new");
        std::fs::write(&tmp, "b:x:5000:5000::/:/bin/sh\nc:x:5001:1::/:/bin/sh\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(users.name(5000).as_deref(), Some("b"));
        assert_eq!(users.name(5001).as_deref(), Some("c"));
        assert_eq!(users.loads(), 2);
        // Removed: the names already known stay.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(users.name(5001).as_deref(), Some("c"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
