//! Lifecycle records from the kernel (`--lifecycle`, issue #14) into `ConnectionRecord`s,
//! and the outcomes a beacon alert reports. UDP flow summaries (`life_action::FLOW`) come
//! the same way, from the kernel at a socket's release or from the idle sweep
//! (`capture::udp_flows`).
//!
//! A `LifeEvent` is enriched as a connect of its process (the connecting one, or for an
//! accept the owner of the listening socket, recorded by the kernel at `listen()`), so it
//! carries the same process fields as the connect record it joins by `connection_id`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use monitor_common::{ConnectEvent, LifeEvent, hook, kind, life_action, life_flag};

use crate::process::ProcessTable;
use crate::record::{ConnectionRecord, LifeAction, Lifecycle, Timestamp};

/// The record for one kernel lifecycle event.
pub fn record_of(
    ev: &LifeEvent,
    ts: Timestamp,
    table: &mut ProcessTable,
    host: &Arc<str>,
) -> ConnectionRecord {
    let inbound = ev.flags & life_flag::INBOUND != 0;
    let action = match ev.action {
        life_action::OUTCOME => LifeAction::Outcome,
        life_action::CLOSE => LifeAction::Close,
        life_action::ACCEPT => LifeAction::Accept,
        life_action::FLOW => LifeAction::Flow,
        _ => LifeAction::Listen,
    };
    // Source is the end that opened the connection (ECS): the remote end of an inbound
    // one. A listen's address is where connections will arrive: its destination.
    let ((saddr, sport), (daddr, dport)) = match action {
        LifeAction::Listen => (([0; 16], 0), (ev.laddr, ev.lport)),
        _ if inbound => ((ev.raddr, ev.rport), (ev.laddr, ev.lport)),
        _ => ((ev.laddr, ev.lport), (ev.raddr, ev.rport)),
    };
    let as_connect = ConnectEvent {
        kind: kind::CONNECT,
        hook: hook::TCP_CONNECT,
        ktime_ns: ev.ktime_ns,
        tgid: ev.tgid,
        tid: ev.tid,
        uid: ev.uid,
        gid: ev.gid,
        cgroup_id: ev.cgroup_id,
        start_time_ns: ev.start_time_ns,
        suppressed: 0,
        family: ev.family,
        protocol: ev.protocol,
        _pad0: 0,
        sport,
        dport,
        backend: ev.backend,
        saddr,
        daddr,
        comm: ev.comm,
        conn_id: ev.conn_id,
    };
    let mut rec = if ev.flags & life_flag::OWNER_KNOWN != 0 {
        table.enrich(&as_connect, ts, host)
    } else {
        table.enrich_unknown(&as_connect, ts, host)
    };
    rec.connection_id = (ev.conn_id != 0).then_some(ev.conn_id);
    // A UDP socket bound to the wildcard address (the usual client: never bound, or bound
    // by its first send) still has its port: the source is `0.0.0.0` or `::` with it, as
    // `ss` shows the socket, so that its flows can be told apart.
    if action == LifeAction::Flow && !inbound && rec.source.is_none() && ev.lport != 0 {
        let any = if ev.family == monitor_common::AF_INET6 {
            IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED)
        };
        rec.source = Some(crate::record::Endpoint {
            ip: any,
            port: ev.lport,
        });
    }
    let mut life = Lifecycle {
        action: Some(action),
        ingress: inbound,
        ..Lifecycle::default()
    };
    match action {
        LifeAction::Outcome => {
            let (success, reason, code) =
                Lifecycle::outcome_of(ev.flags & life_flag::ESTABLISHED != 0, ev.error);
            life.success = Some(success);
            life.reason = Some(reason.to_string());
            life.error_code = code;
            life.duration_ns = Some(ev.duration_ns);
        }
        LifeAction::Close | LifeAction::Flow => {
            life.duration_ns = Some(ev.duration_ns);
            life.flow_idle = action == LifeAction::Flow && ev.flags & life_flag::IDLE != 0;
            let (sent, received) = (ev.bytes_acked, ev.bytes_received);
            let (segs_out, segs_in) = (u64::from(ev.segs_out), u64::from(ev.segs_in));
            // What the local end sent is the source's share outbound, the destination's
            // inbound. UDP: bytes and datagrams sent and received by the process.
            let (src, dst) = if inbound {
                ((received, segs_in), (sent, segs_out))
            } else {
                ((sent, segs_out), (received, segs_in))
            };
            life.source_bytes = Some(src.0);
            life.source_packets = Some(src.1);
            life.destination_bytes = Some(dst.0);
            life.destination_packets = Some(dst.1);
        }
        LifeAction::Accept | LifeAction::Listen | LifeAction::Connect => {}
    }
    rec.life = Some(Arc::new(life));
    rec
}

/// Most (process, destination) keys whose connect outcomes are remembered; the table is
/// emptied when full (a beacon's next outcomes fill it again within a few check-ins).
const OUTCOME_KEYS: usize = 65_536;

/// The outcomes of recent connects per (process, destination), for beacon alerts: a beacon
/// to a C2 that refuses or times out every time is still a beacon, and its alert says
/// `event.outcome: failure`.
#[derive(Default)]
pub struct OutcomeTable {
    keys: HashMap<(u32, IpAddr, u16), OutcomeCounts>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct OutcomeCounts {
    successes: u32,
    failures: u32,
    last_reason: Option<String>,
}

impl OutcomeTable {
    /// Learns from an outcome record; other records are ignored.
    pub fn learn(&mut self, rec: &ConnectionRecord) {
        let Some(life) = &rec.life else { return };
        let (LifeAction::Outcome, Some(success)) = (life.action(), life.success) else {
            return;
        };
        if self.keys.len() >= OUTCOME_KEYS {
            self.keys.clear();
        }
        let key = (rec.process.pid, rec.destination.ip, rec.destination.port);
        let counts = self.keys.entry(key).or_default();
        if success {
            counts.successes = counts.successes.saturating_add(1);
        } else {
            counts.failures = counts.failures.saturating_add(1);
            counts.last_reason.clone_from(&life.reason);
        }
    }

    /// The outcome a beacon alert on `rec` reports: failure when every known connect of
    /// the process to the destination failed (with the last reason), success when one
    /// succeeded, `None` when none is known.
    pub fn summary(&self, rec: &ConnectionRecord) -> Option<Lifecycle> {
        let key = (rec.process.pid, rec.destination.ip, rec.destination.port);
        let c = self.keys.get(&key)?;
        let success = match (c.successes, c.failures) {
            (0, 0) => return None,
            (0, _) => false,
            _ => true,
        };
        Some(Lifecycle {
            success: Some(success),
            reason: if success { None } else { c.last_reason.clone() },
            ..Lifecycle::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(action: &str, outcome: &str, port: u16) -> ConnectionRecord {
        let text = format!(
            r#"{{"@timestamp":"2026-11-23T10:00:00Z","event":{{"kind":"event","action":"{action}","outcome":"{outcome}"}},"process":{{"pid":7}},"destination":{{"ip":"203.0.113.7","port":{port}}},"monitor":{{"outcome_reason":"refused"}}}}"#
        );
        ConnectionRecord::from_json_line(&text).unwrap().unwrap()
    }

    #[test]
    fn all_failed_is_failure_one_success_is_success() {
        let mut t = OutcomeTable::default();
        let connect = line("connect-result", "failure", 8088);
        assert_eq!(t.summary(&connect), None);
        t.learn(&connect);
        t.learn(&connect);
        let s = t.summary(&connect).unwrap();
        assert_eq!(s.success, Some(false));
        assert_eq!(s.reason.as_deref(), Some("refused"));
        // Another port is another key.
        assert_eq!(t.summary(&line("connect-result", "failure", 8089)), None);
        t.learn(&line("connect-result", "success", 8088));
        assert_eq!(t.summary(&connect).unwrap().success, Some(true));
        // Closes and accepts teach nothing.
        let mut t = OutcomeTable::default();
        t.learn(&line("close", "success", 8088));
        assert_eq!(t.summary(&connect), None);
    }

    /// A UDP flow summary from the kernel: outbound, the local end is the source and sent
    /// `bytes_acked`; inbound (first datagram received), the remote end is the source; an
    /// idle one says so.
    #[test]
    fn udp_flow_summaries_put_each_end_s_counts_on_its_side() {
        use monitor_common::{AF_INET, UdpFlow, UdpFlowKey, UdpFlowPeer, write_flow_summary};
        let key = UdpFlowKey {
            cookie: 0x77,
            peer: UdpFlowPeer {
                tgid: std::process::id(),
                family: AF_INET,
                rport: 5300,
                raddr: [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            },
        };
        let mut flow = UdpFlow {
            first_ns: 10,
            last_ns: 70,
            bytes_out: 60,
            bytes_in: 63,
            packets_out: 3,
            packets_in: 4,
            pid_tgid: u64::from(std::process::id()) << 32 | u64::from(std::process::id()),
            uid_gid: 0,
            cgroup_id: 0,
            start_time_ns: 0,
            lport: 40_000,
            backend: monitor_common::backend::CGROUP as u16,
            flags: 0,
            laddr: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            comm: [0; 16],
        };
        let mut table = ProcessTable::new(crate::process::ProcessTableConfig::default());
        let host: Arc<str> = "h".into();
        // An unbound client socket: the wildcard address with its port.
        let wildcard = UdpFlow {
            laddr: [0; 16],
            ..flow
        };
        // SAFETY: all-zero is a valid LifeEvent (integers and byte arrays only).
        let mut ev: LifeEvent = unsafe { std::mem::zeroed() };
        write_flow_summary(&mut ev, &key, &wildcard, 100, 0);
        let src = record_of(&ev, Timestamp(0), &mut table, &host)
            .source
            .unwrap();
        assert_eq!((src.ip.to_string().as_str(), src.port), ("0.0.0.0", 40_000));
        for (inbound, idle) in [(false, false), (true, true)] {
            flow.flags = if inbound { life_flag::INBOUND } else { 0 };
            // SAFETY: all-zero is a valid LifeEvent (integers and byte arrays only).
            let mut ev: LifeEvent = unsafe { std::mem::zeroed() };
            let extra = if idle { life_flag::IDLE } else { 0 };
            write_flow_summary(&mut ev, &key, &flow, 100, extra);
            let rec = record_of(&ev, Timestamp(0), &mut table, &host);
            let life = rec.life.as_deref().unwrap();
            assert_eq!(rec.action(), "flow");
            assert_eq!(rec.transport, crate::record::Transport::Udp);
            assert_eq!(rec.connection_id, Some(0x77));
            assert_eq!((life.ingress, life.flow_idle), (inbound, idle));
            assert_eq!(life.duration_ns, Some(60));
            let (local, remote) = ("10.0.0.1", "10.0.0.2");
            let (src, dst) = if inbound {
                (remote, local)
            } else {
                (local, remote)
            };
            assert_eq!(rec.source.unwrap().ip.to_string(), src);
            assert_eq!(rec.destination.ip.to_string(), dst);
            let (sent, received) = ((Some(60), Some(3)), (Some(63), Some(4)));
            let (s, d) = if inbound {
                (received, sent)
            } else {
                (sent, received)
            };
            assert_eq!((life.source_bytes, life.source_packets), s);
            assert_eq!((life.destination_bytes, life.destination_packets), d);
            assert!(!life.action().for_rules(), "a summary repeats its sends");
        }
    }

    /// A beacon to a dead C2: every connect refused. Replayed, the connects alone make
    /// the beacon (as before, without result records); with the results, its alert says
    /// `event.outcome: failure`, and the connect records stay check-ins (the results do
    /// not count twice).
    #[test]
    fn a_beacon_to_a_dead_c2_is_a_beacon_flagged_failure() {
        use crate::detect::BeaconConfig;
        use crate::pipeline::{Emitted, Pipeline};
        use crate::rules::RuleSet;
        let run = |with_results: bool| -> Vec<String> {
            let rules = Arc::new(RuleSet::from_texts(&[]).unwrap().rules);
            let mut p = Pipeline::new(rules, BeaconConfig::default(), false);
            let mut out = Vec::new();
            for i in 0..20u64 {
                let t =
                    crate::record::Timestamp(1_800_000_000_000_000_000 + i as i64 * 60_000_000_000);
                let common = format!(
                    r#""@timestamp":"{}","host":{{"hostname":"h"}},"process":{{"pid":7,"name":"curl","executable":"/usr/bin/curl"}},"destination":{{"ip":"203.0.113.7","port":8088}},"network":{{"transport":"tcp"}}"#,
                    t.to_rfc3339()
                );
                let connect = format!(
                    r#"{{{common},"event":{{"kind":"event","action":"connect"}},"monitor":{{"connection_id":"{i:x}"}}}}"#
                );
                let result = format!(
                    r#"{{{common},"event":{{"kind":"event","action":"connect-result","outcome":"failure"}},"error":{{"code":"ECONNREFUSED"}},"monitor":{{"connection_id":"{i:x}","outcome_reason":"refused"}}}}"#
                );
                let mut lines = vec![connect];
                if with_results {
                    lines.push(result);
                }
                for line in lines {
                    let rec = ConnectionRecord::from_json_line(&line).unwrap().unwrap();
                    p.process(&rec, &mut |e| {
                        if let Emitted::Alert(a) = e {
                            out.push(a.to_json_line());
                        }
                    });
                }
            }
            p.finish(&mut |e| {
                if let Emitted::Alert(a) = e {
                    out.push(a.to_json_line());
                }
            });
            out.into_iter()
                .filter(|l| l.contains("\"detector\":\"beacon\""))
                .collect()
        };
        let plain = run(false);
        let flagged = run(true);
        assert!(!plain.is_empty(), "the connects alone are a beacon");
        assert_eq!(plain.len(), flagged.len(), "results are not check-ins");
        assert!(
            plain.iter().all(|l| !l.contains("\"outcome\"")),
            "{plain:?}"
        );
        assert!(
            flagged.iter().all(|l| l.contains("\"outcome\":\"failure\"")
                && l.contains("\"outcome_reason\":\"refused\"")),
            "{flagged:?}"
        );
    }
}
