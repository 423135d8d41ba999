//! The ring-buffer event source: waits for a kernel wake-up or the poll timer, then drains.
//!
//! The kernel programs submit without waking the reader until `KernelConfig::wakeup_bytes`
//! are waiting, so most batches are collected by the timer.

use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use tokio::{
    io::{Interest, unix::AsyncFd},
    time::{Interval, MissedTickBehavior},
};

use super::{RawEvent, ring_record};

/// Records taken per `read_batch` at most, so one call cannot grow `out` without bound while
/// the kernel keeps writing; the next call continues without waiting.
const MAX_BATCH: usize = 64 * 1024;

pub struct EventSource {
    ring: AsyncFd<RingBuf<MapData>>,
    ticker: Interval,
    /// The previous drain stopped at `MAX_BATCH` with records left.
    backlog: bool,
    /// Records that could not be decoded (short, unknown kind, bad length) or were refused (a
    /// connect to the unspecified address), skipped.
    decode_errors: u64,
}

impl EventSource {
    /// Must be called inside a tokio runtime with I/O enabled.
    pub fn new(ring: RingBuf<MapData>, poll_interval: Duration) -> std::io::Result<Self> {
        // SAFETY: the RingBuf owns its map fd, which stays open and unchanged for as long as
        // the AsyncFd owns the RingBuf; `get_mut` is only used to read records.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        let mut ticker = tokio::time::interval(poll_interval.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ok(EventSource {
            ring,
            ticker,
            backlog: false,
            decode_errors: 0,
        })
    }

    /// Waits for a wake-up or the next tick, then appends every available record to `out`.
    pub async fn read_batch(&mut self, out: &mut Vec<RawEvent>) -> std::io::Result<()> {
        if !self.backlog {
            tokio::select! {
                ready = self.ring.readable_mut() => {
                    // Cleared before draining: a wake-up during the drain re-arms it.
                    ready?.clear_ready();
                }
                _ = self.ticker.tick() => {}
            }
        }
        self.drain(out);
        Ok(())
    }

    fn drain(&mut self, out: &mut Vec<RawEvent>) {
        let ring = self.ring.get_mut();
        let mut taken = 0;
        self.backlog = false;
        while let Some(item) = ring.next() {
            match ring_record::decode(&item) {
                Ok(ev) => out.push(ev),
                Err(err) => {
                    self.decode_errors += 1;
                    // The first few name the problem; the count is in the metrics.
                    if self.decode_errors <= 10 {
                        tracing::warn!(error = %err, "skipped a ring-buffer record");
                    }
                }
            }
            taken += 1;
            if taken == MAX_BATCH {
                self.backlog = true;
                break;
            }
        }
    }

    pub fn decode_errors(&self) -> u64 {
        self.decode_errors
    }
}
