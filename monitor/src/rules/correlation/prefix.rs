//! Per-process part of a group key, computed once per process.
//!
//! Most `group-by` fields describe the process (executable, user, parent) or its host: the
//! same for every event of it. Their digest is kept per process and host name (a
//! direct-mapped cache on the process's `Arc`), so an event hashes only its own fields
//! (address, port). A slot
//! holds a clone of the `Arc`, so a cached process cannot be freed and its address reused
//! by another while the slot names it.

use std::hash::BuildHasher as _;
use std::sync::Arc;

use crate::record::{ConnectionRecord, ProcessInfo};
use crate::rules::field::{Field, FieldValue};

const SLOTS: usize = 512;

/// Whether `f` is the same for every event of one process `Arc` and host name (the
/// executable's hash is filled in later, so it is not).
pub fn per_process(f: Field) -> bool {
    (f.is_process() && !matches!(f, Field::Hashes | Field::ProcessHash)) || f == Field::HostName
}

struct Slot {
    process: Arc<ProcessInfo>,
    host: Arc<str>,
    /// (correlation << 8 | rule position, digest), the first `len` of them; a process that
    /// feeds more correlations than this recomputes the rest (no allocation per slot).
    digests: [(u32, u64); PER_SLOT],
    len: usize,
}

const PER_SLOT: usize = 4;

pub struct PrefixCache {
    slots: Vec<Option<Slot>>,
    buf: Vec<u8>,
}

impl Default for PrefixCache {
    fn default() -> Self {
        PrefixCache {
            slots: (0..SLOTS).map(|_| None).collect(),
            buf: Vec::with_capacity(128),
        }
    }
}

impl PrefixCache {
    /// Forgets everything (a reload renumbers correlations).
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
    }

    /// The digest of `fields` (the per-process ones of correlation `id`) for `rec`'s process.
    pub fn digest(
        &mut self,
        id: u32,
        fields: &[Field],
        rec: &ConnectionRecord,
        hasher: &foldhash::fast::RandomState,
    ) -> u64 {
        let p = &rec.process;
        let i = (Arc::as_ptr(p) as usize >> 4) % SLOTS;
        let slot = &mut self.slots[i];
        if !slot.as_ref().is_some_and(|s| {
            Arc::ptr_eq(&s.process, p)
                && (Arc::ptr_eq(&s.host, &rec.host_name) || s.host == rec.host_name)
        }) {
            *slot = Some(Slot {
                process: Arc::clone(p),
                host: Arc::clone(&rec.host_name),
                digests: [(0, 0); PER_SLOT],
                len: 0,
            });
        }
        let s = slot.as_mut().expect("just set");
        if let Some(&(_, d)) = s.digests[..s.len].iter().find(|(k, _)| *k == id) {
            return d;
        }
        self.buf.clear();
        for &f in fields {
            super::engine::encode(&mut self.buf, FieldValue::of(rec, f));
        }
        let d = hasher.hash_one(&self.buf[..]);
        if s.len < PER_SLOT {
            s.digests[s.len] = (id, d);
            s.len += 1;
        }
        d
    }
}
