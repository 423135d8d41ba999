//! Cache slots for what is derived from a shared value (`Arc<ProcessInfo>`, a rule, the
//! host name), found by the `Arc`'s address: records of one process share one `Arc`, so a
//! pointer comparison stands for comparing every field. The one cache that holds values
//! through a `Weak`: the beacon detector, the rule engine and the DNS table keep their
//! per-process state in its slots, the JSON writer its texts.
//!
//! Two ways per set, the less recently used one replaced. A direct-mapped table thrashes
//! as soon as two busy processes share a slot: with 50 processes in 64 slots about 19
//! pairs do (the birthday bound), which made the beacon detector hash a process's identity
//! again on one event in seven. With two ways, three processes must meet in one set.
//!
//! A slot holds a `Weak` to the value it was filled for: while it exists the allocation is
//! not freed, so no other value can get that address, and the value cannot change
//! (`Arc::get_mut` fails while a `Weak` exists; `Arc::make_mut` moves the value to a new
//! allocation). So an equal address means the same value. A `Weak` does not keep the
//! value's own heap data (strings) alive.

use std::sync::{Arc, Weak};

pub(crate) struct ArcSlots<T: ?Sized> {
    /// Slot `2 * set + way`: the address of the value it holds, 0 while empty. Compared
    /// instead of the `Weak`s, whose `as_ptr` costs more than the comparison.
    addrs: Box<[usize]>,
    /// Per slot, the `Weak` that pins the value at its address; `None` while empty
    /// (`Weak::new` needs a sized `T`).
    owners: Box<[Option<Weak<T>>]>,
    /// Per set: the way used last.
    recent: Box<[u8]>,
    /// log2 of the number of sets.
    set_bits: u32,
}

impl<T: ?Sized> ArcSlots<T> {
    /// `2 << set_bits` slots (`set_bits` from 1 to 30).
    pub(crate) fn new(set_bits: u32) -> Self {
        assert!((1..=30).contains(&set_bits), "set_bits out of range");
        let sets = 1usize << set_bits;
        ArcSlots {
            addrs: vec![0; 2 * sets].into_boxed_slice(),
            owners: (0..2 * sets).map(|_| None).collect(),
            recent: vec![0; sets].into_boxed_slice(),
            set_bits,
        }
    }

    /// Number of slots: what `slot_of` returns is below it.
    pub(crate) fn len(&self) -> usize {
        self.owners.len()
    }

    /// The slot of `p` and whether it already held `p`. When it did not, the slot is now
    /// `p`'s and whatever the caller keeps for it is stale: the caller resets it.
    #[inline]
    pub(crate) fn slot_of(&mut self, p: &Arc<T>) -> (usize, bool) {
        let ptr = Arc::as_ptr(p);
        let set = self.set_of(ptr);
        let first = 2 * set;
        for way in 0..2 {
            if self.addrs[first + way] == ptr.addr() {
                self.recent[set] = way as u8;
                return (first + way, true);
            }
        }
        let way = usize::from(1 - self.recent[set]);
        self.recent[set] = way as u8;
        self.addrs[first + way] = ptr.addr();
        self.owners[first + way] = Some(Arc::downgrade(p));
        (first + way, false)
    }

    /// Empties `slot`: the next `slot_of` of its value is a miss, and the next miss in its
    /// set fills it (it becomes the less recently used way).
    pub(crate) fn forget(&mut self, slot: usize) {
        self.addrs[slot] = 0;
        self.owners[slot] = None;
        self.recent[slot / 2] = 1 - (slot % 2) as u8;
    }

    /// The set of the value at `ptr`. Fibonacci hashing of the address: allocations are
    /// aligned and spaced alike, so their low bits alone would crowd a few sets.
    #[inline]
    fn set_of(&self, ptr: *const T) -> usize {
        let h = ((ptr.addr() >> 3) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> (64 - self.set_bits)) as usize
    }

    /// Forgets every value.
    pub(crate) fn clear(&mut self) {
        self.addrs.fill(0);
        self.owners.iter_mut().for_each(|w| *w = None);
        self.recent.fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values, at most two per set of `slots` (the others are kept alive elsewhere, so
    /// their addresses are not reused).
    fn two_per_set(slots: &ArcSlots<u32>, n: usize, spare: &mut Vec<Arc<u32>>) -> Vec<Arc<u32>> {
        let mut per_set = std::collections::HashMap::new();
        let mut values = Vec::new();
        let mut i = 0;
        while values.len() < n {
            let v = Arc::new(i);
            i += 1;
            let count = per_set.entry(slots.set_of(Arc::as_ptr(&v))).or_insert(0);
            if *count < 2 {
                *count += 1;
                values.push(v);
            } else {
                spare.push(v);
            }
        }
        values
    }

    #[test]
    fn a_value_keeps_its_slot_and_others_get_other_slots() {
        let mut slots = ArcSlots::new(4);
        let mut spare = Vec::new();
        let values = two_per_set(&slots, 20, &mut spare);
        let mut first = Vec::new();
        for v in &values {
            let (slot, hit) = slots.slot_of(v);
            assert!(slot < slots.len());
            assert!(!hit);
            first.push(slot);
        }
        for (v, &slot) in values.iter().zip(&first) {
            assert_eq!(slots.slot_of(v), (slot, true));
        }
        let mut distinct = first.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), values.len());
    }

    #[test]
    fn an_equal_value_in_another_allocation_is_another_value() {
        let mut slots = ArcSlots::new(1);
        let a = Arc::new(String::from("same"));
        let b = Arc::new(String::from("same"));
        assert!(!slots.slot_of(&a).1);
        assert!(!slots.slot_of(&b).1);
        assert!(slots.slot_of(&a).1);
        assert!(slots.slot_of(&b).1);
    }

    #[test]
    fn two_ways_hold_two_values_of_one_set_and_evict_the_least_recent() {
        // Two sets: three values of set 0 compete for its two ways.
        let mut slots = ArcSlots::new(1);
        let mut same_set = Vec::new();
        let mut spare = Vec::new();
        while same_set.len() < 3 {
            let v = Arc::new(same_set.len());
            if slots.set_of(Arc::as_ptr(&v)) == 0 {
                same_set.push(v);
            } else {
                spare.push(v); // kept alive, so its address is not handed out again
            }
        }
        let [a, b, c] = [&same_set[0], &same_set[1], &same_set[2]];
        let (sa, _) = slots.slot_of(a);
        let (sb, _) = slots.slot_of(b);
        assert_ne!(sa, sb);
        assert_eq!(slots.slot_of(a), (sa, true));
        // `b` is the less recently used: `c` takes its slot.
        assert_eq!(slots.slot_of(c), (sb, false));
        assert_eq!(slots.slot_of(a), (sa, true));
        assert_eq!(slots.slot_of(b), (sb, false));
        assert_eq!(slots.slot_of(c), (sa, false));
    }

    #[test]
    fn a_new_value_is_never_found_before_it_is_stored() {
        let mut slots = ArcSlots::new(2);
        let a = Arc::new(1u64);
        slots.slot_of(&a);
        drop(a);
        // Slots hold `Weak`s, so a new value never gets an address a slot still names:
        // the first lookup of each is a miss, even as old ones are evicted and freed.
        let mut live = Vec::new();
        for i in 0..100u64 {
            let v = Arc::new(i);
            assert!(!slots.slot_of(&v).1);
            if i % 2 == 0 {
                live.push(v);
            }
        }
    }

    #[test]
    fn a_forgotten_slot_is_a_miss_and_the_others_stay() {
        let mut slots = ArcSlots::new(3);
        let mut spare = Vec::new();
        let values = two_per_set(&slots, 6, &mut spare);
        let found: Vec<usize> = values.iter().map(|v| slots.slot_of(v).0).collect();
        slots.forget(found[2]);
        for (i, (v, &slot)) in values.iter().zip(&found).enumerate() {
            assert_eq!(slots.slot_of(v), (slot, i != 2));
        }
    }

    #[test]
    fn unsized_values_are_found_by_address() {
        // The JSON writer keeps host names (`Arc<str>`) here.
        let mut slots: ArcSlots<str> = ArcSlots::new(1);
        let a: Arc<str> = "host-a".into();
        let b: Arc<str> = "host-a".into();
        let (sa, hit) = slots.slot_of(&a);
        assert!(!hit);
        assert_eq!(slots.slot_of(&a.clone()), (sa, true));
        assert!(!slots.slot_of(&b).1, "equal text, other allocation");
        assert!(slots.slot_of(&a).1);
        assert!(slots.slot_of(&b).1);
    }

    #[test]
    fn clear_forgets_everything() {
        let mut slots = ArcSlots::new(3);
        let a = Arc::new(7u8);
        slots.slot_of(&a);
        slots.clear();
        assert!(!slots.slot_of(&a).1);
        assert!(slots.slot_of(&a).1);
    }
}
