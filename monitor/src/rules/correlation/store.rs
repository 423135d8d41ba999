//! The correlation groups' store: a dense slab of fixed-size slots, linked into a
//! least-recently-used list by 32-bit indices, and a hash index of slot numbers.
//!
//! Why not the `lru` crate: it allocates a node per entry (the value, two pointers and
//! the allocator's header) and indexes the nodes with 8-byte pointers, about 60 bytes a
//! group beyond the group itself. Here a group costs its slot (the key, two `u32` links
//! and the value, in one vector) and 5 bytes of index (a `u32` and hashbrown's control
//! byte), and nothing is allocated per group. A removed slot is filled with the last one
//! (whose links and index entry are repointed), so the slab stays dense and no free list
//! is needed.

use hashbrown::HashTable;

const NIL: u32 = u32::MAX;

struct Slot<V> {
    key: u64,
    /// Towards the most recently used (`NIL` at the head).
    prev: u32,
    /// Towards the least recently used (`NIL` at the tail).
    next: u32,
    value: V,
}

/// Keys are uniformly random 64-bit digests (`engine::GroupKey`): they are their own hash.
pub(super) struct Store<V> {
    slots: Vec<Slot<V>>,
    index: HashTable<u32>,
    head: u32,
    tail: u32,
    cap: usize,
}

fn hash(key: u64) -> u64 {
    key
}

impl<V> Store<V> {
    /// A store of at most `cap` (at least 1) entries; memory grows with use.
    pub fn new(cap: usize) -> Self {
        Store {
            slots: Vec::new(),
            index: HashTable::new(),
            head: NIL,
            tail: NIL,
            cap: cap.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    fn find(&self, key: u64) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(hash(key), |&i| slots[i as usize].key == key)
            .copied()
    }

    /// The value of `key`, without marking it used.
    pub fn peek(&self, key: u64) -> Option<&V> {
        self.find(key).map(|i| &self.slots[i as usize].value)
    }

    /// The least recently used entry.
    pub fn peek_lru(&self) -> Option<(u64, &V)> {
        (self.tail != NIL).then(|| {
            let s = &self.slots[self.tail as usize];
            (s.key, &s.value)
        })
    }

    /// Removes `key`.
    pub fn pop(&mut self, key: u64) -> Option<V> {
        let i = self.find(key)?;
        Some(self.remove(i).1)
    }

    /// Removes the least recently used entry.
    pub fn pop_lru(&mut self) -> Option<(u64, V)> {
        (self.tail != NIL).then(|| self.remove(self.tail))
    }

    /// The value of `key`, marked most recently used; inserted from `make` if absent, after
    /// dropping the least recently used entry if the store is full. Returns the value and
    /// the entry dropped to make room.
    pub fn get_or_insert_mut(
        &mut self,
        key: u64,
        make: impl FnOnce() -> V,
    ) -> (&mut V, Option<(u64, V)>) {
        if let Some(i) = self.find(key) {
            self.unlink(i);
            self.link_front(i);
            return (&mut self.slots[i as usize].value, None);
        }
        let dropped = if self.slots.len() >= self.cap {
            self.pop_lru()
        } else {
            None
        };
        let i = self.insert_new(key, make());
        (&mut self.slots[i as usize].value, dropped)
    }

    /// Inserts `key` (absent) as the most recently used entry, dropping the least recently
    /// used one if full.
    pub fn push(&mut self, key: u64, value: V) -> Option<(u64, V)> {
        debug_assert!(self.find(key).is_none());
        let dropped = if self.slots.len() >= self.cap {
            self.pop_lru()
        } else {
            None
        };
        self.insert_new(key, value);
        dropped
    }

    pub fn clear(&mut self) {
        self.slots = Vec::new();
        self.index = HashTable::new();
        self.head = NIL;
        self.tail = NIL;
    }

    fn insert_new(&mut self, key: u64, value: V) -> u32 {
        if self.slots.len() == self.slots.capacity() {
            // Doubling, but never past the cap: a full store holds no spare slots.
            let want = (self.slots.len() * 2).max(16).min(self.cap);
            self.slots
                .reserve_exact(want.saturating_sub(self.slots.len()).max(1));
        }
        let i = self.slots.len() as u32;
        self.slots.push(Slot {
            key,
            prev: NIL,
            next: NIL,
            value,
        });
        let slots = &self.slots;
        self.index
            .insert_unique(hash(key), i, |&j| hash(slots[j as usize].key));
        self.link_front(i);
        i
    }

    /// Takes slot `i` out of the list, the index and the slab (the last slot moves in).
    fn remove(&mut self, i: u32) -> (u64, V) {
        self.unlink(i);
        let key = self.slots[i as usize].key;
        match self.index.find_entry(hash(key), |&j| j == i) {
            Ok(e) => {
                e.remove();
            }
            Err(_) => unreachable!("every slot is indexed"),
        }
        let last = (self.slots.len() - 1) as u32;
        if i != last {
            // The last slot moves to `i`: repoint its neighbours and its index entry.
            let (prev, next, moved) = {
                let s = &self.slots[last as usize];
                (s.prev, s.next, s.key)
            };
            if prev != NIL {
                self.slots[prev as usize].next = i;
            } else {
                self.head = i;
            }
            if next != NIL {
                self.slots[next as usize].prev = i;
            } else {
                self.tail = i;
            }
            if let Some(j) = self.index.find_mut(hash(moved), |&j| j == last) {
                *j = i;
            }
        }
        let s = self.slots.swap_remove(i as usize);
        (s.key, s.value)
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let s = &self.slots[i as usize];
            (s.prev, s.next)
        };
        if prev != NIL {
            self.slots[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
    }

    fn link_front(&mut self, i: u32) {
        let old = self.head;
        {
            let s = &mut self.slots[i as usize];
            s.prev = NIL;
            s.next = old;
        }
        if old != NIL {
            self.slots[old as usize].prev = i;
        } else {
            self.tail = i;
        }
        self.head = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store against a plain model: a vector of (key, value), most recent first.
    #[test]
    fn behaves_as_a_least_recently_used_list() {
        let mut x = 0x5eed_u64;
        let mut next = move || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        for cap in [1usize, 2, 7, 64] {
            let mut s: Store<u64> = Store::new(cap);
            let mut model: Vec<(u64, u64)> = Vec::new();
            for step in 0..20_000u64 {
                // Few distinct keys, so hits, misses and evictions all happen.
                let key = next() % (cap as u64 * 2 + 3);
                match next() % 5 {
                    0 | 1 => {
                        let (v, dropped) = s.get_or_insert_mut(key, || step);
                        *v += 1;
                        let want_drop = match model.iter().position(|e| e.0 == key) {
                            Some(p) => {
                                let e = model.remove(p);
                                model.insert(0, (e.0, e.1 + 1));
                                None
                            }
                            None => {
                                let d = (model.len() >= cap).then(|| model.pop().unwrap());
                                model.insert(0, (key, step + 1));
                                d
                            }
                        };
                        assert_eq!(dropped, want_drop);
                    }
                    2 => {
                        let want = model
                            .iter()
                            .position(|e| e.0 == key)
                            .map(|p| model.remove(p).1);
                        assert_eq!(s.pop(key), want);
                    }
                    3 => assert_eq!(s.pop_lru(), model.pop()),
                    _ => {
                        let want = model.iter().find(|e| e.0 == key).map(|e| e.1);
                        assert_eq!(s.peek(key).copied(), want);
                    }
                }
                assert_eq!(s.len(), model.len());
                assert_eq!(s.peek_lru().map(|(k, v)| (k, *v)), model.last().copied());
            }
            s.clear();
            assert_eq!(s.len(), 0);
            assert!(s.pop_lru().is_none());
        }
    }
}
