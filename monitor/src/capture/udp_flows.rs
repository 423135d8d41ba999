//! The idle sweep of the kernel's UDP flow table (`--lifecycle`): a flow with no datagram
//! for the idle period is summarised (a `life_action::FLOW` record with `life_flag::IDLE`,
//! built by the same `write_flow_summary` the kernel uses at a socket's release) and
//! removed, so that a socket kept open still reports its traffic, and the table only holds
//! live flows. The next datagram of the same flow begins a new one.

use std::time::{Duration, Instant};

use aya::maps::{HashMap, MapData};
use monitor_common::{
    LifeEvent, UDP_FLOW_ENTRIES, UdpFlow, UdpFlowKey, life_flag, write_flow_summary,
};

use super::RawEvent;

/// Sweeps at most this often, and at least this often (a quarter of the idle period in
/// between): a flow is summarised between the idle period and a quarter more after its
/// last datagram. Each sweep reads the whole table (up to `UDP_FLOW_ENTRIES` entries).
const SWEEP_MIN: Duration = Duration::from_millis(250);
const SWEEP_MAX: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
#[error("UDP flow table: {0}")]
pub struct SweepError(#[from] aya::maps::MapError);

pub struct FlowSweeper {
    flows: HashMap<MapData, UdpFlowKey, UdpFlow>,
    idle_ns: u64,
    every: Duration,
    next: Instant,
}

impl FlowSweeper {
    pub fn new(flows: HashMap<MapData, UdpFlowKey, UdpFlow>, idle: Duration) -> FlowSweeper {
        let every = (idle / 4).clamp(SWEEP_MIN, SWEEP_MAX);
        FlowSweeper {
            flows,
            idle_ns: u64::try_from(idle.as_nanos()).unwrap_or(u64::MAX),
            every,
            next: Instant::now() + every,
        }
    }

    /// When due, summarises the flows idle at `now_ns` (boot-time clock) into `out` and
    /// removes them from the table. A datagram the kernel counts between the read and the
    /// removal is lost with the entry: it would have to arrive just as the flow turned idle.
    pub fn sweep_if_due(&mut self, now_ns: u64, out: &mut Vec<RawEvent>) -> Result<(), SweepError> {
        let now = Instant::now();
        if now < self.next {
            return Ok(());
        }
        self.next = now + self.every;
        let mut idle = Vec::new();
        // Bounded: a key removed under the walk makes the kernel restart it from the first.
        for entry in self.flows.iter().take(UDP_FLOW_ENTRIES as usize) {
            // An entry removed (by the release program) while the walk passes it ends the
            // kernel's iteration early or skips it; the next sweep sees the rest.
            let Ok((key, flow)) = entry else { break };
            if now_ns.saturating_sub(flow.last_ns) >= self.idle_ns {
                idle.push((key, flow));
            }
        }
        for (key, flow) in idle {
            // Gone meanwhile: its socket was released and the kernel summarised it.
            if self.flows.remove(&key).is_err() {
                continue;
            }
            out.push(RawEvent::Life(Box::new(summary(&key, &flow, now_ns))));
        }
        Ok(())
    }
}

/// A flow's idle summary, as the kernel would write it at the release.
pub fn summary(key: &UdpFlowKey, flow: &UdpFlow, now_ns: u64) -> LifeEvent {
    // SAFETY: all-zero is a valid LifeEvent (integers and byte arrays only); every field is
    // written by `write_flow_summary`.
    let mut ev: LifeEvent = unsafe { std::mem::zeroed() };
    write_flow_summary(&mut ev, key, flow, now_ns, life_flag::IDLE);
    ev
}

#[cfg(test)]
mod tests {
    use monitor_common::{AF_INET, IPPROTO_UDP, UdpFlowPeer, kind, life_action};

    use super::*;

    #[test]
    fn an_idle_summary_carries_the_counts_owner_and_ends_of_the_flow() {
        let key = UdpFlowKey {
            cookie: 0x55,
            peer: UdpFlowPeer {
                tgid: 700,
                family: AF_INET,
                rport: 5353,
                raddr: [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            },
        };
        let flow = UdpFlow {
            first_ns: 1_000,
            last_ns: 5_000,
            bytes_out: 300,
            bytes_in: 1_200,
            packets_out: 3,
            packets_in: u64::from(u32::MAX) + 7,
            pid_tgid: (700 << 32) | 701,
            uid_gid: (20 << 32) | 10,
            cgroup_id: 9,
            start_time_ns: 11,
            lport: 40_000,
            backend: monitor_common::backend::FENTRY as u16,
            flags: life_flag::INBOUND,
            laddr: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            comm: *b"python3\0\0\0\0\0\0\0\0\0",
        };
        let ev = summary(&key, &flow, 9_000);
        assert_eq!((ev.kind, ev.action), (kind::LIFE, life_action::FLOW));
        assert_eq!(
            (ev.ktime_ns, ev.duration_ns, ev.conn_id),
            (9_000, 4_000, 0x55)
        );
        assert_eq!((ev.tgid, ev.tid, ev.uid, ev.gid), (700, 701, 10, 20));
        assert_eq!((ev.bytes_acked, ev.bytes_received), (300, 1_200));
        // Datagram counts saturate in the record's 32-bit fields.
        assert_eq!((ev.segs_out, ev.segs_in), (3, u32::MAX));
        assert_eq!(
            (ev.protocol, ev.family, ev.lport, ev.rport),
            (IPPROTO_UDP, AF_INET, 40_000, 5353)
        );
        assert_eq!(
            ev.flags,
            life_flag::INBOUND | life_flag::OWNER_KNOWN | life_flag::IDLE
        );
        assert_eq!((ev.laddr, ev.raddr), (flow.laddr, key.peer.raddr));
        assert_eq!(&ev.comm[..7], b"python3");
    }
}
