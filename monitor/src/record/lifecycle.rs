//! The life of a connection (issue #14): a TCP connect's outcome, a connection's end with
//! its duration and bytes, inbound accepts, and listening sockets. Each is a
//! `ConnectionRecord` with `life` set, so the same process fields, outputs and replay
//! apply; `connection_id` joins a connect to its outcome and close.
//!
//! Which end is `source` follows ECS: the side that opened the connection. Outbound
//! (connect, outcome, close of a connect): the local end is `source`. Inbound (accept, close
//! of an accepted connection): the remote end is `source`, the local end `destination`. A
//! listen has the listening address as `destination` (where connections will arrive).

use std::fmt::Write as _;

/// What a lifecycle record is (`event.action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LifeAction {
    /// The connect record itself, carrying a known outcome (a beacon alert's trigger).
    Connect,
    /// `connect-result`: a TCP connect's outcome.
    Outcome,
    /// `close`: an established TCP connection ended.
    Close,
    /// `accept`: an inbound TCP connection was established.
    Accept,
    /// `listen`: a TCP socket listens, or a UDP socket was bound to a port.
    Listen,
    /// `flow`: a UDP flow's summary (socket, process, remote end), at the socket's close or
    /// after an idle period (`Lifecycle::flow_idle`).
    Flow,
}

impl LifeAction {
    /// `event.action`; `None` for `Connect` (the transport's own action).
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            LifeAction::Connect => None,
            LifeAction::Outcome => Some("connect-result"),
            LifeAction::Close => Some("close"),
            LifeAction::Accept => Some("accept"),
            LifeAction::Listen => Some("listen"),
            LifeAction::Flow => Some("flow"),
        }
    }

    pub fn parse(s: &str) -> Option<LifeAction> {
        Some(match s {
            "connect-result" => LifeAction::Outcome,
            "close" => LifeAction::Close,
            "accept" => LifeAction::Accept,
            "listen" => LifeAction::Listen,
            "flow" => LifeAction::Flow,
            _ => return None,
        })
    }

    /// ECS `event.type`.
    pub fn event_type(self) -> &'static str {
        match self {
            LifeAction::Connect | LifeAction::Accept => "[\"connection\",\"start\"]",
            LifeAction::Outcome => "[\"connection\",\"info\"]",
            LifeAction::Close | LifeAction::Flow => "[\"connection\",\"end\"]",
            LifeAction::Listen => "[\"connection\",\"info\"]",
        }
    }

    /// Whether rules of `category: network_connection` see the record (Sysmon's network
    /// connection events: connects and accepts; listens, so that a rule can catch a bind
    /// shell before anyone connects). Outcomes, closes and UDP flow summaries repeat their
    /// connect's or send's fields: rules on them would fire twice for one connection.
    pub fn for_rules(self) -> bool {
        matches!(
            self,
            LifeAction::Connect | LifeAction::Accept | LifeAction::Listen
        )
    }
}

/// The lifecycle part of a record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lifecycle {
    pub action: Option<LifeAction>,
    /// `event.outcome`: `Some(true)` success, `Some(false)` failure.
    pub success: Option<bool>,
    /// `monitor.outcome_reason`: `established`, `refused`, `timed-out`, `host-unreachable`,
    /// `network-unreachable`, `aborted` (closed before a result), `error` (another errno).
    pub reason: Option<String>,
    /// `error.code`: the errno's name (`ECONNREFUSED`, ...) or number, on a failure.
    pub error_code: Option<String>,
    /// `network.direction: ingress` (accept, listen, close of an accepted connection, a UDP
    /// flow whose first datagram came in).
    pub ingress: bool,
    /// A UDP flow summarised after its idle period, its socket still open
    /// (`monitor.flow_end: idle`); `false`: at the socket's close (`close`).
    pub flow_idle: bool,
    /// `event.duration` (ns); for a UDP flow, first to last datagram.
    pub duration_ns: Option<u64>,
    /// `source.bytes`, `destination.bytes`, `source.packets`, `destination.packets`: sent by
    /// each end (UDP: payload bytes and datagrams).
    pub source_bytes: Option<u64>,
    pub destination_bytes: Option<u64>,
    pub source_packets: Option<u64>,
    pub destination_packets: Option<u64>,
}

impl Lifecycle {
    /// The action, `Connect` when unset.
    pub fn action(&self) -> LifeAction {
        self.action.unwrap_or(LifeAction::Connect)
    }

    /// Reason and `error.code` of a connect's result from the socket's error (`sk_err`).
    pub fn outcome_of(established: bool, errno: u32) -> (bool, &'static str, Option<String>) {
        if established {
            return (true, "established", None);
        }
        let (reason, name) = match errno {
            0 => ("aborted", None),
            111 => ("refused", Some("ECONNREFUSED")),
            110 => ("timed-out", Some("ETIMEDOUT")),
            113 => ("host-unreachable", Some("EHOSTUNREACH")),
            101 => ("network-unreachable", Some("ENETUNREACH")),
            // A `prohibit` route, or a policy (a cgroup program, a firewall) that denied it.
            13 => ("prohibited", Some("EACCES")),
            1 => ("prohibited", Some("EPERM")),
            _ => ("error", None),
        };
        let code = match (name, errno) {
            (Some(n), _) => Some(n.to_string()),
            (None, 0) => None,
            (None, e) => Some(e.to_string()),
        };
        (false, reason, code)
    }
}

/// `monitor.connection_id` as text: 16 lowercase hex digits.
pub fn connection_id_text(id: u64) -> String {
    let mut s = String::with_capacity(16);
    let _ = write!(s, "{id:016x}");
    s
}

/// A recorded `monitor.connection_id` back: 1 to 16 hex digits.
pub fn parse_connection_id(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_to_reason_and_code() {
        assert_eq!(Lifecycle::outcome_of(true, 0), (true, "established", None));
        assert_eq!(
            Lifecycle::outcome_of(false, 111),
            (false, "refused", Some("ECONNREFUSED".into()))
        );
        assert_eq!(
            Lifecycle::outcome_of(false, 110),
            (false, "timed-out", Some("ETIMEDOUT".into()))
        );
        assert_eq!(Lifecycle::outcome_of(false, 113).1, "host-unreachable");
        // Refused before SYN_SENT by a prohibit route or a policy.
        assert_eq!(
            Lifecycle::outcome_of(false, 13),
            (false, "prohibited", Some("EACCES".into()))
        );
        assert_eq!(
            Lifecycle::outcome_of(false, 1),
            (false, "prohibited", Some("EPERM".into()))
        );
        assert_eq!(
            Lifecycle::outcome_of(false, 22),
            (false, "error", Some("22".into()))
        );
        assert_eq!(Lifecycle::outcome_of(false, 0), (false, "aborted", None));
        assert_eq!(
            Lifecycle::outcome_of(false, 71),
            (false, "error", Some("71".into()))
        );
    }

    #[test]
    fn connection_ids_round_trip_and_refuse_other_text() {
        for id in [1u64, 0xdead_beef, u64::MAX, 1 << 63] {
            assert_eq!(parse_connection_id(&connection_id_text(id)), Some(id));
        }
        for bad in ["", "x1", "12345678901234567", "-1", "1 "] {
            assert_eq!(parse_connection_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn actions_round_trip() {
        for a in [
            LifeAction::Outcome,
            LifeAction::Close,
            LifeAction::Accept,
            LifeAction::Listen,
            LifeAction::Flow,
        ] {
            assert_eq!(LifeAction::parse(a.as_str().unwrap()), Some(a));
        }
        assert_eq!(LifeAction::parse("connect"), None);
    }
}
