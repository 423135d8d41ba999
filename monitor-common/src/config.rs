//! Indices of the kernel-side counters (the per-CPU `STATS` array).

/// `STATS` indices. Every failure the kernel programs meet is counted here, never swallowed.
pub mod stat {
    /// `bpf_ringbuf_reserve` failed: an event was lost.
    pub const RINGBUF_FULL: u32 = 0;
    /// UDP sends suppressed by flood control.
    pub const UDP_SUPPRESSED: u32 = 1;
    /// A kernel read (`bpf_probe_read_*`) failed; the event went out with the field unknown.
    pub const READ_FAILED: u32 = 2;
    /// Connect events written, per logical hook (TCP, UDPv4, UDPv6).
    pub const EVENTS_TCP: u32 = 3;
    pub const EVENTS_UDP4: u32 = 4;
    pub const EVENTS_UDP6: u32 = 5;
    /// Exec and exit records written.
    pub const EXECS: u32 = 6;
    pub const EXITS: u32 = 7;
    /// Size of the array.
    pub const COUNT: u32 = 8;
}
