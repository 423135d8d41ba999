//! Data sizes of a key's connections (`--lifecycle` close records): the bytes its process
//! sent per connection, their statistics (RITA's data-size score), and the table that joins
//! a close record to the key of its connect by `monitor.connection_id`.
//!
//! The detector (`beacon.rs`) uses them two ways (DETECTION.md, "Data sizes"): constant,
//! small sizes let a key whose timing is too noisy for the timing test alone be read in a
//! wider band; bulk sizes that vary over orders of magnitude (a backup job) keep a key
//! with regular timing from being reported.

use super::beacon_config::BeaconConfig;

/// Most sizes a key keeps: enough for a median and a MAD that a few outliers (a task, a
/// result) do not move.
pub const SIZE_RING: usize = 16;

/// RITA's smallness mark: its data-size score gives no credit for a size above 65,535
/// bytes, and a connection that sends this much or more is a bulk transfer, not a
/// check-in.
pub const BULK_BYTES: f64 = 65_535.0;

/// A key's recent sizes (bytes sent per connection, saturating at `u32::MAX`), oldest
/// overwritten.
#[derive(Clone, Debug)]
pub(super) struct SizeRing {
    sizes: [u32; SIZE_RING],
    next: u8,
    len: u8,
}

impl SizeRing {
    pub(super) fn new() -> Self {
        SizeRing {
            sizes: [0; SIZE_RING],
            next: 0,
            len: 0,
        }
    }

    pub(super) fn push(&mut self, bytes: u64) {
        self.sizes[usize::from(self.next)] = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.next = ((usize::from(self.next) + 1) % SIZE_RING) as u8;
        self.len = (usize::from(self.len) + 1).min(SIZE_RING) as u8;
    }

    pub(super) fn clear(&mut self) {
        self.next = 0;
        self.len = 0;
    }

    pub(super) fn sizes(&self) -> &[u32] {
        &self.sizes[..usize::from(self.len)]
    }
}

/// The statistics of a key's sizes, as RITA computes its data-size score (Active
/// Countermeasures, rita-legacy `pkg/beacon/analyzer.go`: Bowley skew, MAD relative to the
/// median, smallness), the median standing in for RITA's mode (a mode of 16 values says
/// little).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SizeStats {
    /// Sizes known.
    pub count: usize,
    pub median: f64,
    /// Median absolute deviation from the median (bytes).
    pub mad: f64,
    /// Bowley (quartile) skew, RITA's nearest-rank quartiles and zero-skew guard.
    pub skew: f64,
    pub min: f64,
    pub max: f64,
    /// `((1 − |skew|) + max(0, 1 − MAD/median) + max(0, 1 − median/65,535)) / 3`.
    pub score: f64,
}

impl SizeStats {
    /// The statistics of `sizes` (any order, at most `SIZE_RING`); `None` when empty.
    pub fn of(sizes: &[u32]) -> Option<SizeStats> {
        let n = sizes.len();
        if n == 0 || n > SIZE_RING {
            return None;
        }
        let mut buf = [0u32; SIZE_RING];
        buf[..n].copy_from_slice(sizes);
        let xs = &mut buf[..n];
        xs.sort_unstable();
        let at = |i: usize| f64::from(xs[i]);
        let median = if n % 2 == 1 {
            at(n / 2)
        } else {
            (at(n / 2 - 1) + at(n / 2)) / 2.0
        };
        let rank = |q: f64| at(((q * (n - 1) as f64).round() as usize).min(n - 1));
        let (q1, q3) = (rank(0.25), rank(0.75));
        let skew = if q3 - q1 <= 0.0 || median == q1 || median == q3 {
            0.0
        } else {
            ((q1 + q3 - 2.0 * median) / (q3 - q1)).clamp(-1.0, 1.0)
        };
        let mut dev = [0f64; SIZE_RING];
        for (d, &x) in dev.iter_mut().zip(xs.iter()) {
            *d = (f64::from(x) - median).abs();
        }
        let dev = &mut dev[..n];
        dev.sort_unstable_by(f64::total_cmp);
        let mad = if n % 2 == 1 {
            dev[n / 2]
        } else {
            (dev[n / 2 - 1] + dev[n / 2]) / 2.0
        };
        let madm_score = if median >= 1.0 {
            (1.0 - mad / median).max(0.0)
        } else {
            0.0
        };
        let smallness = (1.0 - median / BULK_BYTES).max(0.0);
        Some(SizeStats {
            count: n,
            median,
            mad,
            skew,
            min: at(0),
            max: at(n - 1),
            score: ((1.0 - skew.abs()) + madm_score + smallness) / 3.0,
        })
    }

    /// MAD relative to the median: 0 for a constant size.
    pub fn jitter(&self) -> f64 {
        if self.median >= 1.0 {
            self.mad / self.median
        } else {
            0.0
        }
    }
}

/// The size settings of `BeaconConfig`, and what they make of a key's sizes.
#[derive(Clone, Copy, Debug)]
pub(super) struct SizeRules {
    /// Sizes count at all (`size_scoring`).
    pub(super) on: bool,
    min_known: usize,
    max_jitter: f64,
    /// 0: off.
    bulk_spread: f64,
}

impl SizeRules {
    /// From a config, clamping what `validate` would reject.
    pub(super) fn new(c: &BeaconConfig) -> Self {
        let d = BeaconConfig::default();
        let finite = |v: f64, default: f64| if v.is_finite() { v } else { default };
        let spread = finite(c.bulk_size_spread, d.bulk_size_spread);
        SizeRules {
            on: c.size_scoring,
            min_known: c.size_min_known.clamp(3, SIZE_RING as u32) as usize,
            max_jitter: finite(c.size_max_jitter, d.size_max_jitter).clamp(0.0, 1.0),
            bulk_spread: if spread <= 0.0 { 0.0 } else { spread.max(1.0) },
        }
    }

    /// The statistics of a key's sizes, when they count and enough are known.
    pub(super) fn stats(&self, known: &[u32]) -> Option<SizeStats> {
        if !self.on || known.len() < self.min_known {
            return None;
        }
        SizeStats::of(known)
    }

    /// Bulk data of widely varied size: the median connection is a bulk transfer and the
    /// largest is `bulk_size_spread` times the smallest or more.
    pub(super) fn bulk_varied(&self, z: &SizeStats) -> bool {
        self.bulk_spread > 0.0 && z.median >= BULK_BYTES && z.max >= self.bulk_spread * z.min
    }

    /// A constant, small payload: what a check-in sends.
    pub(super) fn constant_small(&self, z: &SizeStats) -> bool {
        z.median < BULK_BYTES && z.jitter() <= self.max_jitter
    }
}

/// log2 of the connects whose close is awaited: more than a busy host opens in the time a
/// check-in's connection lasts. A connect whose slot is taken by a later one before its
/// close arrives loses its size (its key is then judged by fewer sizes, or by timing
/// alone, as without close records).
const PENDING_BITS: u32 = 14;

/// Recent connects by connection id, each with the key it was a check-in of, so a close
/// record joins the key of its connect whatever its own fields say. Direct-mapped and
/// allocated at the first connection id (never without `--lifecycle`): fixed memory
/// (16,384 slots), one hash and one write per connect, whatever the number of keys.
pub(super) struct Pending<K> {
    slots: Vec<Option<(u64, K)>>,
}

impl<K: Copy> Pending<K> {
    pub(super) fn new() -> Self {
        Pending { slots: Vec::new() }
    }

    fn slot(id: u64) -> usize {
        // Fibonacci hashing: ids are socket cookies (sequential) or drawn at random.
        (id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - PENDING_BITS)) as usize
    }

    /// Remembers that connection `id` was a connect to `key`.
    pub(super) fn insert(&mut self, id: u64, key: K) {
        if self.slots.is_empty() {
            self.slots = vec![None; 1 << PENDING_BITS];
        }
        self.slots[Self::slot(id)] = Some((id, key));
    }

    /// The key of connection `id`'s connect, forgotten once taken (a close is counted
    /// once).
    pub(super) fn take(&mut self, id: u64) -> Option<K> {
        let slot = self.slots.get_mut(Self::slot(id))?;
        match slot {
            Some((held, _)) if *held == id => slot.take().map(|(_, k)| k),
            _ => None,
        }
    }

    pub(super) fn clear(&mut self) {
        self.slots = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_small_sizes_score_near_one_bulk_varied_low() {
        let z = SizeStats::of(&[480; 8]).unwrap();
        assert_eq!(
            (z.median, z.mad, z.skew, z.jitter()),
            (480.0, 0.0, 0.0, 0.0)
        );
        assert!(z.score > 0.99, "{z:?}");
        let varied: Vec<u32> = (0..8).map(|i| 1 << (20 + i)).collect();
        let z = SizeStats::of(&varied).unwrap();
        assert_eq!(
            (z.min, z.max),
            (f64::from(1u32 << 20), f64::from(1u32 << 27))
        );
        assert!(z.jitter() > 0.5 && z.score < 0.5, "{z:?}");
        assert_eq!(SizeStats::of(&[]), None);
    }

    #[test]
    fn the_ring_keeps_the_newest_and_saturates() {
        let mut r = SizeRing::new();
        for i in 0..20u64 {
            r.push(i);
        }
        let mut kept = r.sizes().to_vec();
        kept.sort_unstable();
        assert_eq!(kept, (4..20).collect::<Vec<u32>>());
        r.push(u64::MAX);
        assert!(r.sizes().contains(&u32::MAX));
        r.clear();
        assert!(r.sizes().is_empty());
    }

    #[test]
    fn a_close_joins_its_own_connect_once() {
        let mut p: Pending<u32> = Pending::new();
        assert_eq!(p.take(5), None, "nothing allocated before the first id");
        p.insert(5, 50);
        p.insert(6, 60);
        assert_eq!(p.take(7), None);
        assert_eq!(p.take(5), Some(50));
        assert_eq!(p.take(5), None, "counted once");
        // A later connect in the same slot replaces an older one: its close finds nothing.
        let clash = (1u64..)
            .find(|&i| i != 6 && Pending::<u32>::slot(i) == Pending::<u32>::slot(6))
            .unwrap();
        p.insert(clash, 70);
        assert_eq!(p.take(6), None);
        assert_eq!(p.take(clash), Some(70));
    }
}
