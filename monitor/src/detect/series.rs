//! A key's check-in history: the series of check-in intervals (`Series`) and, for the
//! port key, the destinations of its recent check-ins and its fan-out (`RotatingSeries`).
//! The detector (`beacon.rs`) holds one per key and decides from them.

use super::beacon::Settings;
use super::periodicity::RING;
use super::sizes::SizeRing;

/// The interval kept after a session: about 49.7 days, more than `max_missed + 1` periods
/// of the longest allowed period (`validate` checks it; the defaults leave a factor of 300),
/// so no reading explains it and it counts against the key's share.
pub(crate) const NOT_A_CHECKIN_MS: u32 = u32::MAX;

/// What a send did to a key's series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Part of the current check-in (within the coalescing gap, or within the minimum
    /// interval of the previous send: a session).
    Coalesced,
    /// A new check-in after more than `max_interval`: the series starts over.
    Restarted,
    /// A new check-in whose interval was recorded.
    Recorded,
}

/// One key's check-in history: a few times inline, and the ring of intervals on the heap
/// from the first recorded interval on. Most keys never get one (a destination reached
/// once, or only in bursts), and those cost 32 bytes instead of 160.
#[derive(Clone, Debug)]
pub(super) struct Series {
    /// Start of the current check-in (ns).
    pub(super) checkin_start: i64,
    /// Latest send seen (ns); the coalescing gap runs from here.
    pub(super) last_send: i64,
    /// Check-ins since the series (re)started.
    pub(super) checkins: u32,
    /// Sends in the current check-in, each more than the coalescing gap after the one
    /// before (saturating).
    pub(super) sends: u16,

    /// Intervals and the last alert, once there is an interval.
    pub(super) ring: Option<Box<IntervalRing>>,
}

/// A key's recorded intervals. Kept (emptied) when the series restarts, so the last
/// alert's suppression window survives the restart.
#[derive(Clone, Debug)]
pub(super) struct IntervalRing {
    /// Interval between consecutive check-in starts, milliseconds; a ring, oldest
    /// overwritten. Order does not matter to the statistics.
    pub(super) intervals: [u32; RING],
    /// Next ring slot to write.
    pub(super) next: u8,
    /// Filled ring slots.
    pub(super) len: u8,
    /// Time of the last alert (ns), `i64::MIN` if none.
    pub(super) last_alert: i64,
    /// Bytes sent per connection, from close records (`--lifecycle`), once one joined.
    pub(super) sizes: Option<Box<SizeRing>>,
}

impl Series {
    pub(super) fn new(t: i64) -> Series {
        Series {
            checkin_start: t,
            last_send: t,
            checkins: 1,
            sends: 1,
            ring: None,
        }
    }

    pub(super) fn intervals(&self) -> &[u32] {
        self.ring
            .as_deref()
            .map_or(&[], |r| &r.intervals[..usize::from(r.len)])
    }

    /// The newest `w` intervals (all of them if fewer), oldest first, copied into `buf`.
    pub(super) fn recent<'b>(&self, w: usize, buf: &'b mut [u32; RING]) -> &'b [u32] {
        let Some(r) = self.ring.as_deref() else {
            return &buf[..0];
        };
        let (len, next) = (usize::from(r.len), usize::from(r.next));
        let w = w.min(len);
        // Slots next-w .. next, wrapping: the ring writes at `next` and moves on.
        for (i, slot) in buf[..w].iter_mut().enumerate() {
            *slot = r.intervals[(next + RING - w + i) % RING];
        }
        &buf[..w]
    }

    /// The sizes of the key's recent connections (empty without close records).
    pub(super) fn sizes(&self) -> &[u32] {
        self.ring
            .as_deref()
            .and_then(|r| r.sizes.as_deref())
            .map_or(&[], SizeRing::sizes)
    }

    /// Records the bytes one of the key's connections sent. Kept from the key's second
    /// check-in on, like its intervals: a key seen once (most of them) holds no sizes, and
    /// a restarted series (its ring emptied) is the same as a key dropped and added again.
    pub(super) fn push_size(&mut self, bytes: u64) {
        if let Some(r) = self.ring.as_deref_mut()
            && r.len > 0
        {
            r.sizes
                .get_or_insert_with(|| Box::new(SizeRing::new()))
                .push(bytes);
        }
    }

    /// Time of the last alert (ns), `i64::MIN` if none.
    pub(super) fn last_alert(&self) -> i64 {
        self.ring.as_deref().map_or(i64::MIN, |r| r.last_alert)
    }

    /// Records an alert at `t`. Only a key with intervals alerts, so the ring exists.
    pub(super) fn set_last_alert(&mut self, t: i64) {
        if let Some(r) = self.ring.as_deref_mut() {
            r.last_alert = t;
        }
    }

    #[inline(always)]
    pub(super) fn observe(&mut self, t: i64, s: &Settings) -> Step {
        // Out-of-order sends (several CPUs feed the ring buffer) land in the current
        // check-in rather than moving time backwards.
        if t <= self.last_send.saturating_add(s.coalesce_ns) {
            self.last_send = self.last_send.max(t);
            return Step::Coalesced;
        }
        // Too soon after the previous send to be the next check-in: the current one goes
        // on (a sleep timer does not wake this often; a session does). Intervals run
        // between check-in starts, so a session's length is part of the next one, and
        // random traffic thinned at the minimum gap does not look periodic.
        if t < self.last_send.saturating_add(s.min_interval_ns) {
            self.last_send = self.last_send.max(t);
            self.sends = self.sends.saturating_add(1);
            return Step::Coalesced;
        }
        let interval = t - self.checkin_start;
        let session = u32::from(self.sends) > s.max_session_sends;
        self.last_send = t;
        self.checkin_start = t;
        self.sends = 1;
        if interval > s.series_gap_ns {
            if let Some(r) = self.ring.as_deref_mut() {
                r.len = 0;
                r.next = 0;
                // As a dropped key's would be: a restart and an eviction must agree.
                if let Some(z) = r.sizes.as_deref_mut() {
                    z.clear();
                }
            }
            self.checkins = 1;
            return Step::Restarted;
        }
        self.checkins = self.checkins.saturating_add(1);
        let r = self.ring.get_or_insert_with(|| {
            Box::new(IntervalRing {
                intervals: [0; RING],
                next: 0,
                len: 0,
                last_alert: i64::MIN,
                sizes: None,
            })
        });
        // The series gap is below the mark, so the milliseconds fit a u32 below it.
        r.intervals[usize::from(r.next)] = if session {
            NOT_A_CHECKIN_MS
        } else {
            (interval / 1_000_000) as u32
        };
        r.next = ((usize::from(r.next) + 1) % RING) as u8;
        r.len = (usize::from(r.len) + 1).min(RING) as u8;
        Step::Recorded
    }

    /// Within the suppression window of its last alert.
    pub(super) fn in_window(&self, t: i64, s: &Settings) -> bool {
        let last_alert = self.last_alert();
        last_alert != i64::MIN && t.saturating_sub(last_alert) < s.suppress_ns
    }

    /// Enough intervals to score, and not in a suppression window.
    pub(super) fn due(&self, t: i64, s: &Settings) -> bool {
        self.intervals().len() >= s.min_intervals && !self.in_window(t, s)
    }
}

/// The port key's series plus which destination each recent check-in went to. Like the
/// intervals, the destination ring is allocated on the second check-in.
#[derive(Clone, Debug)]
pub(super) struct RotatingSeries {
    pub(super) series: Series,
    /// Hashes of the destination IPs of the last `RING` check-ins, once there are two.
    pub(super) destinations: Option<Box<DestinationRing>>,
    /// The destination of the only check-in while `destinations` is `None`.
    pub(super) first_destination: u32,
    /// Time (ns) a destination key under this port key last alerted, `i64::MIN` if none:
    /// that beacon is reported, so the port key stays quiet for the window.
    pub(super) destination_alert: i64,
    /// Destinations reached on this port in the current and the previous epoch, one bit
    /// per destination hash (linear counting, so a few collide): the fan-out of `Reach`.
    pub(super) reach: [u64; 2],
    /// Start of the current epoch (ns).
    pub(super) reach_epoch: i64,
}

/// How many destinations a process reaches on one port. A browser or a package manager
/// reaching hundreds of addresses gives each destination key a chance to look periodic by
/// luck (the multiple-comparisons problem); an implant talks to one or a few.
impl RotatingSeries {
    /// Notes a send to `dest` at `t`; epochs last `epoch_ns`.
    #[inline(always)]
    pub(super) fn reach(&mut self, dest: u32, t: i64, epoch_ns: i64) {
        if t.saturating_sub(self.reach_epoch) >= epoch_ns {
            self.reach = [0, self.reach[0]];
            self.reach_epoch = t;
        }
        self.reach[0] |= 1 << (dest % 64);
    }

    /// Distinct destinations (up to collisions) in this epoch and the one before.
    pub(super) fn fan_out(&self) -> u32 {
        (self.reach[0] | self.reach[1]).count_ones()
    }
}

#[derive(Clone, Debug)]
pub(super) struct DestinationRing {
    pub(super) hashes: [u32; RING],
    pub(super) next: u8,
    pub(super) len: u8,
}

impl DestinationRing {
    pub(super) fn push(&mut self, dest: u32) {
        self.hashes[usize::from(self.next)] = dest;
        self.next = ((usize::from(self.next) + 1) % RING) as u8;
        self.len = (usize::from(self.len) + 1).min(RING) as u8;
    }
}

impl RotatingSeries {
    pub(super) fn new(t: i64, dest: u32) -> Self {
        RotatingSeries {
            series: Series::new(t),
            destinations: None,
            first_destination: dest,
            destination_alert: i64::MIN,
            reach: [1 << (dest % 64), 0],
            reach_epoch: t,
        }
    }

    pub(super) fn push_destination(&mut self, dest: u32) {
        match self.destinations.as_deref_mut() {
            Some(r) => r.push(dest),
            None => {
                let mut r = Box::new(DestinationRing {
                    hashes: [0; RING],
                    next: 0,
                    len: 0,
                });
                r.push(self.first_destination);
                r.push(dest);
                self.destinations = Some(r);
            }
        }
    }

    /// The series started over: `dest` is its only check-in.
    pub(super) fn restart_destinations(&mut self, dest: u32) {
        match self.destinations.as_deref_mut() {
            Some(r) => {
                r.len = 0;
                r.next = 0;
                r.push(dest);
            }
            None => self.first_destination = dest,
        }
    }

    pub(super) fn destinations(&self) -> &[u32] {
        match self.destinations.as_deref() {
            Some(r) => &r.hashes[..usize::from(r.len)],
            None => std::slice::from_ref(&self.first_destination),
        }
    }

    /// Distinct destinations among the recent check-ins, and the most check-ins any one
    /// of them received.
    pub(super) fn destination_spread(&self) -> (usize, usize) {
        let ds = self.destinations();
        let mut distinct = 0;
        let mut top = 0;
        for (i, d) in ds.iter().enumerate() {
            if ds[..i].contains(d) {
                continue;
            }
            distinct += 1;
            top = top.max(ds.iter().filter(|&x| x == d).count());
        }
        (distinct, top)
    }

    /// A rotation, as opposed to one destination (the destination key's case) or a new
    /// destination each time (a crawler, a scanner, a client of many servers): at least two
    /// destinations, each used twice on average, and no single one that carries enough
    /// check-ins to be judged by its own destination key, unless none dominates (over three
    /// quarters).
    pub(super) fn rotates(&self, min_checkins: usize) -> Option<usize> {
        let (distinct, top) = self.destination_spread();
        let n = self.destinations().len();
        (distinct >= 2 && distinct * 2 <= n && (top < min_checkins || top * 4 <= n * 3))
            .then_some(distinct)
    }
}
