//! Applying the kernel's process records (exec, fork, exit) and the start-up /proc scan to
//! the table, in the order the ring buffer delivers them.

use super::*;

impl ProcessTable {
    /// Learns every process alive now from /proc; returns how many were added. Call it
    /// after the capture is attached, so a process is either scanned or seen exec'ing.
    /// An exec-learned entry for the same process is kept (its argv cannot have been
    /// rewritten since exec). Stops adding at `max_entries`.
    pub fn scan_proc(&mut self) -> std::io::Result<usize> {
        let before = self.proc.reads();
        let result = self.scan_inner();
        self.stats.scan_reads += self.proc.reads() - before;
        result
    }

    fn scan_inner(&mut self) -> std::io::Result<usize> {
        let mut added = 0;
        for pid in self.proc.pids()? {
            if pid == 0 {
                continue;
            }
            if self.live.len() >= self.live.cap().get() && !self.live.contains(&pid) {
                break;
            }
            // Raced with exit: nothing to learn.
            let Ok(snap) = self.proc.snapshot(pid) else {
                continue;
            };
            if let Some(e) = self.live.peek(&pid)
                && e.origin == Origin::Exec
                && e.start == Some(snap.stat.start_ticks)
            {
                continue;
            }
            let mut entry = Entry::from_snapshot(snap, Origin::Scan, self.generation());
            self.want_hash(pid, &mut entry);
            self.learned.pop(&pid);
            self.put_live(pid, entry);
            added += 1;
        }
        Ok(added)
    }

    /// A successful execve: the process now runs the image and argv the kernel read.
    pub fn on_exec(&mut self, ev: &ExecEvent) {
        let pid = ev.tgid;
        if pid == 0 {
            return;
        }
        let mut entry = Entry::from_exec(ev, self.ticks(ev.start_time_ns), self.generation());
        if !entry.exe_from_kernel {
            self.resolve_executable(pid, &mut entry);
        }
        self.want_hash(pid, &mut entry);
        self.learned.pop(&pid);
        self.put_live(pid, entry);
    }

    /// Replaces the path execve was given with the file the kernel ran. A symlink must not
    /// decide what rules see: `/usr/bin/python3` is `/usr/bin/python3.11`, and a link named
    /// `firefox` to python3 would otherwise pass as a browser and escape T1043's exclusion.
    /// /proc/PID/exe is read once per exec (not per connection), and only while the process
    /// is alive and still the one that exec'd (same start time). When it is already gone the
    /// kernel's path stays: resolving that path here could name a different file, since the
    /// process may have lived in another mount namespace.
    fn resolve_executable(&mut self, pid: u32, entry: &mut Entry) {
        let Ok(stat) = self.proc.stat(pid) else {
            return;
        };
        if !same_start(Some(stat.start_ticks), entry.start) {
            return;
        }
        let Ok(exe) = self.proc.exe(pid) else {
            return;
        };
        let exe = text_from_bytes(&exe);
        if entry.exe.as_deref() != Some(exe.as_str()) {
            entry.name = name_from(Some(&exe), entry.name.take());
            entry.exe = Some(exe);
        }
    }

    /// A new process: it runs the forking process's image until it execs, so it takes that
    /// identity now, from the table, not later from /proc (where it may already run another
    /// program, or be gone). Events arrive in the order the kernel wrote them, and the fork
    /// record is written before the child runs, so everything the child does comes after.
    pub fn on_fork(&mut self, ev: &ForkEvent) {
        let pid = ev.tgid;
        if pid == 0 {
            return;
        }
        let source_start = self.ticks(ev.source_start_time_ns);
        let Some(slot) = self.forking_process(ev.source_tgid, source_start) else {
            self.stats.forks_unknown_source += 1;
            return;
        };
        let generation = self.generation();
        let ppid = Some(if ev.ppid != 0 {
            ev.ppid
        } else {
            ev.source_tgid
        });
        let Some(source) = self.peek(slot, ev.source_tgid) else {
            return;
        };
        let entry = source.inherit(self.ticks(ev.start_time_ns), ppid, generation);
        self.stats.forks_inherited += 1;
        self.learned.pop(&pid);
        self.put_live(pid, entry);
    }

    /// The entry of a process that is forking now: known (same start time), else read from
    /// /proc while it is still the same process.
    fn forking_process(&mut self, pid: u32, start: Option<u64>) -> Option<Slot> {
        if pid == 0 {
            return None;
        }
        if let Some(slot) = [Slot::Live, Slot::Learned, Slot::Exited]
            .into_iter()
            .find(|&s| {
                self.peek(s, pid).is_some_and(|e| {
                    same_start(e.start, start) && (s != Slot::Exited || start.is_some())
                })
            })
        {
            return Some(slot);
        }
        let snap = self.proc.snapshot(pid).ok()?;
        if !same_start(Some(snap.stat.start_ticks), start) {
            return None;
        }
        let entry = Entry::from_snapshot(snap, Origin::Proc, self.generation());
        self.put_learned(pid, entry);
        Some(Slot::Learned)
    }

    /// A process exited: it moves to the recently-exited map.
    pub fn on_exit(&mut self, ev: &ExitEvent) {
        let pid = ev.tgid;
        let start = self.ticks(ev.start_time_ns);
        // An exit for an older holder of the pid (seen after a scan found the new one)
        // must not remove the new one.
        if self
            .live
            .peek(&pid)
            .is_some_and(|e| same_start(e.start, start))
            && let Some(e) = self.live.pop(&pid)
        {
            self.retire(pid, e);
        }
        if self
            .learned
            .peek(&pid)
            .is_some_and(|e| same_start(e.start, start))
            && let Some(e) = self.learned.pop(&pid)
        {
            self.retire(pid, e);
        }
    }
}
