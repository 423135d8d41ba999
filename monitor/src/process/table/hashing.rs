//! Executable hashes: asking the worker (`process::hash`) for an entry's file, taking a
//! hash known for the same file version at once, and applying the worker's answers.

use super::*;

impl ProcessTable {
    /// Asks the worker for the hash of an entry's executable (the kernel's file, or for a
    /// process read from /proc, the file /proc/PID/exe leads to now).
    pub(super) fn want_hash(&mut self, pid: u32, entry: &mut Entry) {
        let Some(hasher) = &self.hasher else {
            return;
        };
        if entry.exe_file.is_none()
            && matches!(entry.origin, Origin::Scan | Origin::Proc)
            && let Some((file, version)) = hasher.exe_identity(pid)
        {
            entry.exe_file = Some(file);
            entry.exe_version = Some(version);
        }
        let Some((dev, ino)) = entry.exe_file else {
            return;
        };
        if let Some(version) = entry.exe_version
            && let Some((known, hash)) = self.known_hashes.get(&(dev, ino))
            && *known == version
        {
            // The very content hashed before: nothing for the worker to do.
            entry.exe_hash = Some(hash.clone());
            self.stats.hashes_known += 1;
            return;
        }
        let path = entry
            .exe
            .as_deref()
            .filter(|x| x.starts_with('/'))
            .map(|x| PathBuf::from(x.strip_suffix(" (deleted)").unwrap_or(x)));
        self.stats.hashes_requested += 1;
        if !hasher.request(HashRequest {
            pid,
            start: entry.start,
            dev,
            ino,
            path,
        }) {
            self.stats.hash_queue_full += 1;
        }
    }

    /// Applies the hashes the worker has ready; call between batches of events.
    pub fn apply_hashes(&mut self) {
        let replies = match &self.hasher {
            Some(hasher) => hasher.ready(),
            None => return,
        };
        for reply in replies {
            let file = (reply.dev, reply.ino);
            let hashes: Option<Arc<str>> = reply.sha256.map(|h| format!("SHA256={h}").into());
            match (&hashes, reply.version) {
                (Some(h), Some(version)) => {
                    self.known_hashes.put(file, (version, h.clone()));
                }
                _ => {
                    self.known_hashes.pop(&file);
                }
            }
            for slot in [Slot::Live, Slot::Learned, Slot::Exited] {
                if let Some(e) = self.peek_mut(slot, reply.pid)
                    && same_start(e.start, reply.start)
                    && e.exe_file == Some(file)
                    // The content the process runs, when both versions are known.
                    && (e.exe_version.is_none()
                        || reply.version.is_none()
                        || e.exe_version == reply.version)
                    && e.exe_hash != hashes
                {
                    e.exe_hash = hashes.clone();
                    // Records built from now on carry it.
                    e.shared = Shared::default();
                }
            }
        }
    }
}
