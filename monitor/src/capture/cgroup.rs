//! Finding the cgroup v2 root, where the UDP cgroup programs attach.

use std::{fs, path::PathBuf};

use super::error::CaptureError;

/// The mount point of the cgroup v2 hierarchy's root, from /proc/self/mountinfo
/// (/sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones).
pub fn cgroup2_root() -> Result<PathBuf, CaptureError> {
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").map_err(|source| CaptureError::CgroupOpen {
            path: "/proc/self/mountinfo".into(),
            source,
        })?;
    find_cgroup2(&mountinfo).ok_or(CaptureError::NoCgroup2)
}

/// `36 35 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw`: fields
/// before ` - ` are id, parent, dev, root, mount point, options, optional tags; after it come
/// the filesystem type, source and super options.
fn find_cgroup2(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        if fs.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mut fields = mount.split_whitespace();
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        // A bind mount of a sub-cgroup is not the root.
        (root == "/").then(|| PathBuf::from(unescape(mount_point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_hybrid_unified_mount() {
        let info = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        assert_eq!(
            find_cgroup2(info),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn skips_bind_mounts_of_sub_cgroups_and_unescapes() {
        let info = "50 1 0:38 /system.slice /mnt/sub rw - cgroup2 cgroup2 rw
51 1 0:38 / /mnt/with\\040space rw shared:3 - cgroup2 cgroup2 rw,nsdelegate
";
        assert_eq!(find_cgroup2(info), Some(PathBuf::from("/mnt/with space")));
        assert_eq!(find_cgroup2("1 0 0:1 / / rw - ext4 /dev/sda rw\n"), None);
    }

    #[test]
    fn finds_this_hosts_root() {
        let root = cgroup2_root().expect("this host has a cgroup v2 hierarchy");
        assert!(root.join("cgroup.procs").exists(), "{}", root.display());
    }
}
