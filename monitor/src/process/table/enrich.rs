//! Enrichment: a connect event to a `ConnectionRecord`, finding the process (live, learned
//! from /proc, recently exited, or as the kernel described it), its parent and ancestry, with
//! hash lookups only on the common path.

use super::*;

impl ProcessTable {
    /// Turns a kernel connect event into a record. Never fails and never drops: whatever
    /// cannot be learned is left out and the record is marked partial.
    pub fn enrich(
        &mut self,
        ev: &ConnectEvent,
        ts: Timestamp,
        host: &Arc<str>,
    ) -> ConnectionRecord {
        self.stats.enriched += 1;
        let (addrs, mut partial) = match decode_connect(ev) {
            Ok(a) => (a, false),
            Err(_) => {
                self.stats.malformed += 1;
                (decode_connect_lossy(ev), true)
            }
        };
        let (process, process_partial) = self.process_of(ev);
        partial |= process_partial;
        if partial {
            self.stats.enrichment_misses += 1;
        }
        let dns_resolver = self
            .nameservers
            .is_resolver(addrs.destination.ip, addrs.destination.port);
        ConnectionRecord {
            timestamp: ts,
            host_name: host.clone(),
            process,
            source: addrs.source,
            destination: addrs.destination,
            transport: addrs.transport,
            partial,
            suppressed: ev.suppressed,
            probe: probe_name(ev.backend),
            dns_resolver,
            domain: None,
            domain_source: None,
            dns: None,
            connection_id: (ev.conn_id != 0).then_some(ev.conn_id),
            life: None,
        }
    }

    /// A record for an event whose process is not known (a DNS answer to a socket whose
    /// asker the kernel did not see): addresses only, no process fields, partial.
    pub fn enrich_unknown(
        &mut self,
        ev: &ConnectEvent,
        ts: Timestamp,
        host: &Arc<str>,
    ) -> ConnectionRecord {
        let addrs = decode_connect(ev).unwrap_or_else(|_| decode_connect_lossy(ev));
        ConnectionRecord {
            timestamp: ts,
            host_name: host.clone(),
            process: Arc::new(ProcessInfo::default()),
            source: addrs.source,
            destination: addrs.destination,
            transport: addrs.transport,
            partial: true,
            suppressed: 0,
            probe: probe_name(ev.backend),
            dns_resolver: false,
            domain: None,
            domain_source: None,
            dns: None,
            connection_id: None,
            life: None,
        }
    }

    /// Finds the entry for the connecting process, reading /proc once on a miss. `None`:
    /// the event comes from an older holder of the pid than the one the table knows, and
    /// that older process is not remembered either.
    fn locate(&mut self, ev: &ConnectEvent, start: Option<u64>) -> Option<Slot> {
        let pid = ev.tgid;
        let mut from_older_process = false;
        for slot in [Slot::Live, Slot::Learned] {
            let map = match slot {
                Slot::Live => &mut self.live,
                _ => &mut self.learned,
            };
            let Some(e) = map.peek(&pid) else { continue };
            if same_start(e.start, start) {
                map.promote(&pid);
                return Some(slot);
            }
            if matches!((start, e.start), (Some(ev_start), Some(known)) if ev_start < known) {
                // A late event of a previous process must not evict the current one.
                from_older_process = true;
                continue;
            }
            if let Some(stale) = map.pop(&pid) {
                self.stats.stale_entries += 1;
                self.retire(pid, stale);
            }
        }
        // After its exit only another thread of the group can still connect; with an
        // unknown start time the pid could already belong to a new process.
        if start.is_some() && self.exited.peek(&pid).is_some_and(|e| e.start == start) {
            return Some(Slot::Exited);
        }
        if from_older_process {
            return None;
        }
        let generation = self.generation();
        let entry = match self.proc.snapshot(pid) {
            Ok(snap) if same_start(Some(snap.stat.start_ticks), start) => {
                let mut entry = Entry::from_snapshot(snap, Origin::Proc, generation);
                self.want_hash(pid, &mut entry);
                entry
            }
            Ok(_) => {
                self.stats.start_mismatches += 1;
                Entry::from_kernel(ev, start, generation)
            }
            Err(_) => Entry::from_kernel(ev, start, generation),
        };
        self.put_learned(pid, entry);
        Some(Slot::Learned)
    }

    /// The parent's entry if known, without reading anything.
    fn find_parent(&self, ppid: u32, child_start: Option<u64>) -> Option<Slot> {
        [Slot::Live, Slot::Learned, Slot::Exited]
            .into_iter()
            .find(|&s| {
                self.peek(s, ppid)
                    .is_some_and(|p| can_be_parent(p.start, child_start))
            })
    }

    /// The parent's entry, read from /proc and cached when not known yet.
    fn resolve_parent(&mut self, ppid: u32, child_start: Option<u64>) -> Option<Slot> {
        if let Some(slot) = self.find_parent(ppid, child_start) {
            return Some(slot);
        }
        let snap = self.proc.snapshot(ppid).ok()?;
        if !can_be_parent(Some(snap.stat.start_ticks), child_start) {
            return None;
        }
        let entry = Entry::from_snapshot(snap, Origin::Proc, self.generation());
        self.put_learned(ppid, entry);
        Some(Slot::Learned)
    }

    fn process_of(&mut self, ev: &ConnectEvent) -> (Arc<ProcessInfo>, bool) {
        let pid = ev.tgid;
        let tid = (ev.tid != 0).then_some(ev.tid);
        if pid == 0 {
            // Kernel context (no user process): only the event's own fields.
            return (Arc::new(self.kernel_only(ev)), true);
        }
        let start = self.ticks(ev.start_time_ns);
        let Some(slot) = self.locate(ev, start) else {
            return (Arc::new(self.kernel_only(ev)), true);
        };
        let Some(e) = self.peek(slot, pid) else {
            return (Arc::new(self.kernel_only(ev)), true);
        };
        let (ppid, named) = (e.ppid, e.name.is_some());
        let child_start = e.start;
        let parent_generation = ppid
            .and_then(|pp| Some((pp, self.find_parent(pp, child_start)?)))
            .and_then(|(pp, s)| self.peek(s, pp))
            .map(|p| p.generation);
        let key = BuildKey {
            uid: ev.uid,
            gid: ev.gid,
            cgroup_id: ev.cgroup_id,
            parent_generation,
            comm: if named { [0; COMM_LEN] } else { ev.comm },
        };
        if let Some(e) = self.peek_mut(slot, pid)
            && let Some(hit) = e.shared.get(&key, tid)
        {
            return (hit, e.shared.partial);
        }
        self.build(ev, slot, key)
    }

    fn kernel_only(&mut self, ev: &ConnectEvent) -> ProcessInfo {
        ProcessInfo {
            pid: ev.tgid,
            tid: (ev.tid != 0).then_some(ev.tid),
            name: c_text(&ev.comm),
            user_id: Some(ev.uid.into()),
            user_name: self.users.name(ev.uid).map(|n| n.to_string()),
            group_id: Some(ev.gid.into()),
            ..ProcessInfo::default()
        }
    }

    /// Builds and stores the shared info for one process; may read /proc for the rest
    /// of a truncated argv, for the parent, and for the cgroup.
    fn build(
        &mut self,
        ev: &ConnectEvent,
        slot: Slot,
        mut key: BuildKey,
    ) -> (Arc<ProcessInfo>, bool) {
        let pid = ev.tgid;
        let tid = (ev.tid != 0).then_some(ev.tid);
        self.stats.builds += 1;
        self.complete_from_proc(slot, pid);
        // Copy out what the info needs: resolving the parent may insert into (and evict
        // from) the same map.
        let Some(e) = self.peek(slot, pid) else {
            return (Arc::new(self.kernel_only(ev)), true);
        };
        let mut info = ProcessInfo {
            pid,
            tid,
            name: e.name.clone().or_else(|| c_text(&ev.comm)),
            executable: e.exe.clone(),
            command_line: e.command_line.clone(),
            args: e.args.clone().unwrap_or_default(),
            parent: ParentInfo {
                pid: e.ppid,
                ..ParentInfo::default()
            },
            user_id: Some(ev.uid)
                .filter(|&u| u != u32::MAX)
                .or(e.uid)
                .map(AccountId::Num),
            user_name: None,
            group_id: Some(ev.gid)
                .filter(|&g| g != u32::MAX)
                .or(e.gid)
                .map(AccountId::Num),
            container_id: None,
            hashes: e.exe_hash.clone(),
            ancestors: Vec::new(),
        };
        // A kernel thread has no image or argv to learn.
        let mut partial =
            !e.kernel_thread && (e.exe.is_none() || e.args.is_none() || e.exe_incomplete);
        let (ppid, child_start, kernel_thread) = (e.ppid, e.start, e.kernel_thread);
        let known_container = e
            .container
            .clone()
            .filter(|(cg, _)| *cg == ev.cgroup_id)
            .map(|(_, id)| id);

        match ppid {
            Some(pp) => match self.resolve_parent(pp, child_start) {
                Some(ps) => {
                    if let Some(p) = self.peek(ps, pp) {
                        info.parent.name = p.name.clone();
                        info.parent.executable = p.exe.clone();
                        info.parent.command_line = p.command_line.clone();
                        key.parent_generation = Some(p.generation);
                    }
                    partial |= info.parent.name.is_none();
                }
                None => partial = true,
            },
            // Only init and kernel threads have no parent.
            None => partial |= pid != 1 && !kernel_thread,
        }
        info.ancestors = self.ancestry(ppid, child_start);

        if let Some(uid) = info.user_id.as_ref().and_then(AccountId::as_num) {
            info.user_name = self.users.name(uid).map(|n| n.to_string());
        }

        let container = match known_container {
            Some(id) => Some(id),
            None => match self.containers.resolve(ev.cgroup_id, pid, &self.proc) {
                Resolved::Known(id) => Some(id),
                Resolved::Unknown => None,
            },
        };
        info.container_id = container.clone().flatten().map(|id| id.to_string());

        let info = Arc::new(info);
        if let Some(e) = self.peek_mut(slot, pid) {
            if let Some(id) = container {
                e.container = Some((ev.cgroup_id, id));
            }
            e.shared = Shared {
                key: Some(key),
                partial,
                by_tid: vec![(tid.unwrap_or(0), info.clone())],
            };
        }
        (info, partial)
    }

    /// Executables of the ancestors, parent first, up to PID 1 or `MAX_ANCESTORS`, as the
    /// table knows them (each read from /proc once when it does not); the list ends where an
    /// ancestor cannot be found. A process without an executable (a kernel thread) is listed
    /// by its name.
    fn ancestry(&mut self, ppid: Option<u32>, child_start: Option<u64>) -> Vec<String> {
        let mut out = Vec::new();
        let (mut next, mut start) = (ppid, child_start);
        while let Some(pp) = next
            && out.len() < MAX_ANCESTORS
        {
            let Some(slot) = self.resolve_parent(pp, start) else {
                break;
            };
            let Some(p) = self.peek(slot, pp) else {
                break;
            };
            out.push(p.exe.clone().or_else(|| p.name.clone()).unwrap_or_default());
            next = p.ppid.filter(|&x| x != 0 && x != pp && pp != 1);
            start = p.start;
        }
        out
    }

    /// Completes an exec-learned entry from /proc, once, while the process is alive and
    /// still the one that exec'd (same start time):
    /// - argv the kernel cut at `ARGS_LEN` bytes (or could not read): taken from /proc only
    ///   if /proc's argv continues what the kernel saw, because a process can rewrite its
    ///   argv after exec and the exec-time one is the truth;
    /// - an executable path that is not absolute or names a descriptor (`/dev/fd/N` from
    ///   `fexecve`, how fileless payloads run from a memfd; `/proc/self/exe`, see
    ///   `is_fd_path`): /proc/PID/exe says what it is
    ///   (`/memfd:x (deleted)`), and the name comes from the kernel's comm instead of `N`.
    fn complete_from_proc(&mut self, slot: Slot, pid: u32) {
        let Some(e) = self.peek_mut(slot, pid) else {
            return;
        };
        let argv_incomplete = e.args_truncated || e.args.is_none();
        let exe_unclear = !e.exe_from_kernel
            && e.exe
                .as_deref()
                .is_none_or(|x| !x.starts_with('/') || is_fd_path(x));
        if e.origin != Origin::Exec || e.proc_completion_tried || !(argv_incomplete || exe_unclear)
        {
            return;
        }
        e.proc_completion_tried = true;
        let (Some(start), prefix) = (e.start, e.args.clone()) else {
            return;
        };
        if !self.proc.stat(pid).is_ok_and(|s| s.start_ticks == start) {
            return;
        }
        let argv = if argv_incomplete {
            self.proc.cmdline(pid).ok().and_then(|(buf, cut)| {
                let full = split_argv(&buf);
                let agrees = match &prefix {
                    Some(prefix) => continues(prefix, &full),
                    None => !full.is_empty(),
                };
                agrees.then_some((full, cut))
            })
        } else {
            None
        };
        let exe = if exe_unclear {
            self.proc.exe(pid).ok().filter(|x| !x.is_empty())
        } else {
            None
        };
        if argv.is_none() && exe.is_none() {
            return;
        }
        let generation = self.generation();
        if let Some(e) = self.peek_mut(slot, pid) {
            if let Some((full, cut)) = argv {
                e.set_args(Some(full));
                e.args_truncated = cut;
            }
            if let Some(exe) = exe {
                let exe = text_from_bytes(&exe);
                // The memfd's or file's own name, not the descriptor number.
                if e.exe.as_deref().is_none_or(is_fd_path) {
                    e.name = name_from(Some(&exe), e.name.take());
                }
                e.exe = Some(exe);
            }
            e.generation = generation;
        }
    }
}
