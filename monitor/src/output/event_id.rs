//! `event.id`: a unique id in every record, so a SIEM can drop the rare duplicate a
//! collector's crash causes (see `output::syslog` on RELP) and join a record across outputs.
//!
//! An id is 32 lowercase hex digits (128 bits, the size of a UUID): 64 bits that name the
//! run, then the record's sequence number in that run (64 bits). The id is written into the
//! record's JSON when the record is made, so a record spooled and sent again keeps it.
//! - `monitor run`: the run's half is random (the kernel's `getrandom`), so two runs, two
//!   hosts or a restart never share ids.
//! - `monitor replay`: the run's half is a hash of the first input record and the numbers
//!   count from zero, so the same input gives the same ids (replay is deterministic), and
//!   two different recordings do not share them.
//!
//! One counter serves the whole process (records are made on one thread per run, so the
//! order, and in replay the ids, follow the output order).

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The run's half of every id, as hex digits; chosen at the first id or by
/// `start_deterministic`.
static RUN_HEX: OnceLock<[u8; 16]> = OnceLock::new();
static NEXT: AtomicU64 = AtomicU64::new(0);

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex16(v: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, b) in v.to_be_bytes().into_iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    out
}

/// Length of an id in hex digits.
pub const EVENT_ID_LEN: usize = 32;

/// One record's id, as text.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EventId([u8; EVENT_ID_LEN]);

impl EventId {
    pub fn as_str(&self) -> &str {
        // The bytes are hex digits (ASCII) by construction.
        std::str::from_utf8(&self.0).expect("hex digits")
    }

    fn from_parts(run: &[u8; 16], seq: u64) -> EventId {
        let mut out = [0u8; EVENT_ID_LEN];
        out[..16].copy_from_slice(run);
        out[16..].copy_from_slice(&hex16(seq));
        EventId(out)
    }
}

impl std::fmt::Debug for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most b.len() bytes into our buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == b.len() as isize {
        return u64::from_ne_bytes(b);
    }
    // No getrandom (a very old kernel): time and pid still differ between runs.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(std::process::id()) << 40)
}

/// Replay: the ids of this process derive from `first_record` (the first input line's
/// record, as JSON) and count from zero. Call before the first record is made; later
/// calls change nothing.
pub fn start_deterministic(first_record: &[u8]) {
    RUN_HEX.get_or_init(|| {
        let mut h = foldhash::fast::FixedState::with_seed(0x6d6f_6e69_746f_7201).build_hasher();
        h.write(first_record);
        NEXT.store(0, Ordering::Relaxed);
        hex16(h.finish())
    });
}

/// The next id of this process.
pub fn next_event_id() -> EventId {
    let run = RUN_HEX.get_or_init(|| hex16(random_u64()));
    EventId::from_parts(run, NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_hex_digits_and_distinct() {
        let a = next_event_id();
        let b = next_event_id();
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.as_str().len(), 32);
            assert!(
                id.as_str()
                    .bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
        assert_eq!(
            EventId::from_parts(&hex16(0x0123_4567_89ab_cdef), 2).as_str(),
            "0123456789abcdef0000000000000002"
        );
    }
}
