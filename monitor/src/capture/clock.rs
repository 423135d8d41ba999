//! Kernel boot-clock timestamps (`bpf_ktime_get_boot_ns`) to wall-clock time.

use crate::record::Timestamp;

/// Offset between CLOCK_REALTIME and CLOCK_BOOTTIME. The boot clock keeps counting through
/// suspend, like the kernel's; re-measured every batch so NTP steps are followed.
#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    realtime_minus_boot_ns: i64,
}

impl BootClock {
    pub fn new() -> BootClock {
        let mut clock = BootClock {
            realtime_minus_boot_ns: 0,
        };
        clock.recalibrate();
        clock
    }

    /// Measures the offset: the tightest of a few realtime/boottime/realtime triples, so a
    /// preemption between the reads does not skew it.
    pub fn recalibrate(&mut self) {
        let mut best: Option<(i64, i64)> = None; // (window, offset)
        for _ in 0..3 {
            let before = now_ns(libc::CLOCK_REALTIME);
            let boot = now_ns(libc::CLOCK_BOOTTIME);
            let after = now_ns(libc::CLOCK_REALTIME);
            let window = after - before;
            let offset = before + window / 2 - boot;
            if best.is_none_or(|(w, _)| window < w) {
                best = Some((window, offset));
            }
        }
        if let Some((_, offset)) = best {
            self.realtime_minus_boot_ns = offset;
        }
    }

    /// Wall-clock time of a boot-clock reading.
    pub fn to_wall(&self, ktime_ns: u64) -> Timestamp {
        let ktime = i64::try_from(ktime_ns).unwrap_or(i64::MAX);
        Timestamp(ktime.saturating_add(self.realtime_minus_boot_ns))
    }
}

/// The boot clock now, as the kernel programs read it (`bpf_ktime_get_boot_ns`).
pub fn boot_now_ns() -> u64 {
    u64::try_from(now_ns(libc::CLOCK_BOOTTIME)).unwrap_or(0)
}

impl Default for BootClock {
    fn default() -> Self {
        Self::new()
    }
}

fn now_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer; both clocks exist on every Linux the monitor supports.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime({clock}) failed");
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_clock_now_maps_to_wall_clock_now() {
        let clock = BootClock::new();
        let wall = clock.to_wall(now_ns(libc::CLOCK_BOOTTIME) as u64);
        let diff = (wall.0 - Timestamp::now().0).abs();
        assert!(diff < 50_000_000, "off by {diff} ns");
    }

    #[test]
    fn earlier_boot_time_is_earlier_wall_time() {
        let clock = BootClock::new();
        let boot = now_ns(libc::CLOCK_BOOTTIME) as u64;
        let a = clock.to_wall(boot - 2_000_000_000);
        let b = clock.to_wall(boot);
        assert_eq!(b.0 - a.0, 2_000_000_000);
    }
}
