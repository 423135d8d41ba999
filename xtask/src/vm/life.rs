//! The lifecycle part of the guest check (`monitor run --lifecycle`): the lifecycle probe
//! (`src/bin/vm-life-probe.rs`) bound a UDP port, listened on a TCP port, connected to it
//! and exchanged a known number of bytes each way with the accepted end, then connected to
//! a closed port and to an address with no route. Per kernel and `--probe`, the start-up
//! log must report both lifecycle hooks attached (or the monitor's warning naming what the
//! kernel lacks, which is then the failure reported), and the output must hold: the
//! connect's result (success, `established`) and its close joined to the connect by
//! `monitor.connection_id`, with the bytes each way; the refused connect's result
//! (failure, `refused`, `ECONNREFUSED`) joined the same way; the accept and its close; the
//! TCP and the UDP listen; and the result of a connect with no route (failure,
//! `network-unreachable`), which the kernel fails before the socket reaches `SYN_SENT`
//! (the `tcp_early_failure` hook). Every one carries the probe's executable.

use serde_json::Value;

use super::checks::Verdict;
use super::initramfs::LIFE_PROBE_PATH;

/// The probe's TCP listener, a closed port, and its UDP bind.
pub const PORTS: [u16; 3] = [40127, 40128, 40129];
/// The lifecycle hooks in the start-up log and the backends they use on every kernel.
pub const LIFE_HOOKS: [(&str, &str); 3] = [
    ("tcp_lifecycle", "raw_tracepoint"),
    ("udp_bind", "cgroup"),
    ("tcp_early_failure", "tracepoint"),
];
/// What the monitor logs when a lifecycle hook cannot attach (`probes/life.rs`).
const UNAVAILABLE: [&str; 3] = [
    "TCP lifecycle unavailable",
    "UDP bind capture unavailable",
    "TCP connects refused before SYN_SENT (no route) unavailable",
];
/// The probe's unrouted destination (`vm-life-probe.rs`).
const UNROUTED_IP: &str = "192.0.2.1";
/// `ECONNREFUSED` and `ENETUNREACH` on Linux.
const ECONNREFUSED: &str = "111";
const ENETUNREACH: &str = "101";
/// The SYN and the FIN each count one in the kernel's byte counters (as in `ss -ti`).
const SEQ_SLACK: u64 = 2;

/// What the probe printed: `=== LIFE <probe> pid=P client_port=C sent=N received=M
/// refused=E unrouted=E status=S ===`.
#[derive(Debug, PartialEq, Eq)]
struct ProbeLine {
    pid: u64,
    client_port: u64,
    sent: u64,
    received: u64,
    /// The UDP clients' ports (unconnected, connected), the bytes each sent and received,
    /// and the datagrams each way.
    udp_clients: [u64; 2],
    udp_sent: u64,
    udp_received: u64,
    datagrams: u64,
}

fn probe_line(console: &str, probe: &str) -> Result<ProbeLine, String> {
    let rest = console
        .lines()
        .find_map(|l| l.strip_prefix(&format!("=== LIFE {probe} ")))
        .ok_or("the guest printed no `=== LIFE <probe> ... ===` line (the lifecycle probe did not run)")?
        .trim_end_matches(" ===");
    let field = |key: &str| {
        rest.split_whitespace()
            .find_map(|t| t.strip_prefix(&format!("{key}=")))
    };
    if field("status") != Some("0") {
        return Err(format!("the lifecycle probe failed in the guest: {rest}"));
    }
    for (key, want) in [("refused", ECONNREFUSED), ("unrouted", ENETUNREACH)] {
        if field(key) != Some(want) {
            return Err(format!(
                "the lifecycle probe's {key} connect returned errno {:?}, expected {want}: {rest}",
                field(key)
            ));
        }
    }
    let num = |key: &str| {
        field(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no {key}=N in the lifecycle probe's line: {rest}"))
    };
    Ok(ProbeLine {
        pid: num("pid")?,
        client_port: num("client_port")?,
        sent: num("sent")?,
        received: num("received")?,
        udp_clients: [num("udp_a")?, num("udp_b")?],
        udp_sent: num("udp_sent")?,
        udp_received: num("udp_received")?,
        datagrams: num("datagrams")?,
    })
}

/// The backend `udp_flow` must use for `probe` on a kernel `release`; `None` where the
/// kernel cannot have UDP flows with it (the cgroup set needs `sock_send_length`, 6.3+).
fn expected_flow_backend(probe: &str, release: &str) -> Option<&'static str> {
    let mut parts = release
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    match probe {
        "kprobe" => Some("kprobe"),
        "tracepoint" if version >= (6, 3) => Some("cgroup"),
        "tracepoint" => None,
        _ => Some("fentry"),
    }
}

/// The UDP flow hook in the start-up log; its backend depends on the probe and the kernel
/// (`expected_flow_backend`).
pub const FLOW_HOOK: &str = "udp_flow";
/// What the monitor logs when it has no UDP flows (`probes/life.rs`).
const FLOW_UNAVAILABLE: &str = "UDP flow summaries unavailable";

/// The `udp_flow` hook's backend, or (where the kernel cannot have it) the monitor's
/// warning; `true` when flow records are expected.
fn check_flow_hook(v: &mut Verdict, console: &str, log: &[&str]) -> bool {
    let release = console
        .lines()
        .find_map(|l| l.strip_prefix("=== VM READY kernel="))
        .map(|r| r.trim_end_matches(" ===").trim())
        .unwrap_or_default();
    let warning = log.iter().find(|l| l.contains(FLOW_UNAVAILABLE));
    match (
        expected_flow_backend(&v.probe, release),
        v.hooks.get(FLOW_HOOK),
    ) {
        (Some(want), Some(used)) if used.iter().all(|b| b == want) => true,
        (Some(want), Some(used)) => {
            v.problems.push(format!(
                "lifecycle hook udp_flow attached {used:?}, expected {want}"
            ));
            false
        }
        (Some(want), None) => {
            v.problems.push(match warning {
                Some(line) => format!(
                    "lifecycle hook udp_flow not attached (expected {want}); the monitor \
                     said: {line}"
                ),
                None => format!(
                    "lifecycle hook udp_flow not attached (expected {want}) and no \
                     `{FLOW_UNAVAILABLE}` warning in the start-up log"
                ),
            });
            false
        }
        (None, _) => {
            if !warning.is_some_and(|l| l.contains("Linux 6.3+")) {
                v.problems.push(format!(
                    "--probe {} on {release}: expected the `{FLOW_UNAVAILABLE}` warning \
                     naming Linux 6.3+ (no sock_send_length tracepoint)",
                    v.probe
                ));
            }
            false
        }
    }
}

/// Checks the lifecycle hooks and records; problems go to `v`, the records checked to
/// `v.life_records`.
pub fn check(v: &mut Verdict, console: &str, log: &[&str], docs: &[Value]) {
    for ((hook, backend), warning) in LIFE_HOOKS.iter().zip(UNAVAILABLE) {
        match v.hooks.get(*hook) {
            Some(used) if used.iter().all(|b| b == backend) => {}
            Some(used) => v.problems.push(format!(
                "lifecycle hook {hook} attached {used:?}, expected {backend}"
            )),
            None => {
                let said = log.iter().find(|l| l.contains(warning));
                v.problems.push(match said {
                    Some(line) => {
                        format!("lifecycle hook {hook} not attached; the monitor said: {line}")
                    }
                    None => format!(
                        "lifecycle hook {hook} not attached and no `{warning}` warning in the \
                         start-up log"
                    ),
                });
            }
        }
    }
    let flows_expected = check_flow_hook(v, console, log);
    let p = match probe_line(console, &v.probe) {
        Ok(p) => p,
        Err(e) => {
            v.problems.push(e);
            return;
        }
    };
    let [tcp_port, closed_port, udp_port] = PORTS.map(u64::from);
    let mine: Vec<&Value> = docs
        .iter()
        .filter(|d| d["event"]["kind"] == "event" && d["process"]["pid"] == p.pid)
        .collect();
    let find = |action: &str, pred: &dyn Fn(&Value) -> bool| -> Option<&Value> {
        mine.iter()
            .copied()
            .find(|d| d["event"]["action"] == action && pred(d))
    };
    let to = |port: u64| move |d: &Value| d["destination"]["port"] == port;
    let label = format!("lifecycle probe {}", p.pid);
    let mut problems = Vec::new();
    let mut checked = Vec::new();
    let mut need = |what: &str, rec: Option<&Value>| -> Option<Value> {
        match rec {
            Some(r) => {
                checked.push(r.to_string());
                Some(r.clone())
            }
            None => {
                problems.push(format!("{label}: no {what} record"));
                None
            }
        }
    };

    // Outbound: connect, result, close, joined by the id.
    let connect = need("connect (to the listener)", find("connect", &to(tcp_port)));
    let result = need(
        "connect-result (to the listener)",
        find("connect-result", &to(tcp_port)),
    );
    let close = need(
        "close of the client's connection",
        find("close", &|d| {
            to(tcp_port)(d) && d["network"]["direction"] != "ingress"
        }),
    );
    let refused_connect = need(
        "connect (to the closed port)",
        find("connect", &to(closed_port)),
    );
    let refused = need(
        "connect-result (to the closed port)",
        find("connect-result", &to(closed_port)),
    );
    // Inbound: the listen, the accept and its close.
    let listen = need(
        "TCP listen",
        find("listen", &|d| {
            to(tcp_port)(d) && d["network"]["transport"] == "tcp"
        }),
    );
    let accept = need(
        "accept",
        find("accept", &|d| {
            to(tcp_port)(d) && d["source"]["port"] == p.client_port
        }),
    );
    let accept_close = need(
        "close of the accepted connection",
        find("close", &|d| {
            to(tcp_port)(d)
                && d["network"]["direction"] == "ingress"
                && d["source"]["port"] == p.client_port
        }),
    );
    let udp_listen = need(
        "UDP listen (bind)",
        find("listen", &|d| {
            to(udp_port)(d) && d["network"]["transport"] == "udp"
        }),
    );
    // Refused before `SYN_SENT`: no route to TEST-NET-1 in the guest.
    let unrouted = need(
        "connect-result (no route)",
        find("connect-result", &|d| d["destination"]["ip"] == UNROUTED_IP),
    );

    let id = |d: &Value| d["monitor"]["connection_id"].as_str().map(str::to_string);
    let mut joined = |what: &str, first: &Option<Value>, then: &Option<Value>| {
        if let (Some(a), Some(b)) = (first, then) {
            match (id(a), id(b)) {
                (Some(x), Some(y)) if x == y => {}
                (x, y) => problems.push(format!(
                    "{label}: the {what} records are not joined by monitor.connection_id \
                     ({x:?} vs {y:?}):\n    {a}\n    {b}"
                )),
            }
        }
    };
    joined("connect and connect-result", &connect, &result);
    joined("connect and close", &connect, &close);
    joined(
        "refused connect and its connect-result",
        &refused_connect,
        &refused,
    );
    joined("accept and close", &accept, &accept_close);

    let outcome = |r: &Option<Value>, outcome: &str, reason: &str, code: Option<&str>| {
        let Some(r) = r else { return None };
        let ok = r["event"]["outcome"] == outcome
            && r["monitor"]["outcome_reason"] == reason
            && r["error"]["code"].as_str() == code;
        (!ok).then(|| {
            format!(
                "{label}: expected event.outcome {outcome}, monitor.outcome_reason {reason}, \
                 error.code {code:?}: {r}"
            )
        })
    };
    problems.extend(outcome(&result, "success", "established", None));
    problems.extend(outcome(
        &refused,
        "failure",
        "refused",
        Some("ECONNREFUSED"),
    ));
    problems.extend(outcome(
        &unrouted,
        "failure",
        "network-unreachable",
        Some("ENETUNREACH"),
    ));

    // Bytes: what the client sent is the source's, for its close and for the accepted
    // end's (whose source is the remote client).
    for (what, rec) in [
        ("client's close", &close),
        ("accepted end's close", &accept_close),
    ] {
        let Some(r) = rec else { continue };
        let bytes = |end: &str| r[end]["bytes"].as_u64();
        let fits = |got: Option<u64>, want: u64| {
            got.is_some_and(|g| (want..=want + SEQ_SLACK).contains(&g))
        };
        if !fits(bytes("source"), p.sent) || !fits(bytes("destination"), p.received) {
            problems.push(format!(
                "{label}: the {what} says source.bytes {:?} and destination.bytes {:?}; the \
                 client sent {} and received {} (+ up to {SEQ_SLACK} for SYN and FIN): {r}",
                bytes("source"),
                bytes("destination"),
                p.sent,
                p.received
            ));
        }
        if r["event"]["type"] != serde_json::json!(["connection", "end"])
            || r["event"]["duration"].as_u64().is_none()
        {
            problems.push(format!(
                "{label}: the {what} lacks event.type [connection, end] or event.duration: {r}"
            ));
        }
    }
    for rec in [&accept, &listen, &udp_listen].into_iter().flatten() {
        if rec["network"]["direction"] != "ingress" {
            problems.push(format!(
                "{label}: expected network.direction ingress: {rec}"
            ));
        }
    }
    // Identity: every record names the probe's file (an accept, through its listener).
    for rec in [
        &result,
        &close,
        &refused,
        &listen,
        &accept,
        &accept_close,
        &udp_listen,
        &unrouted,
    ]
    .into_iter()
    .flatten()
    {
        if rec["process"]["executable"] != LIFE_PROBE_PATH {
            problems.push(format!(
                "{label}: process.executable {}, expected {LIFE_PROBE_PATH}: {rec}",
                rec["process"]["executable"]
            ));
        }
    }
    if flows_expected {
        // Each client's flow and the bound socket's flow with that client, summarised at
        // close: the client sent first, so it is the source of both.
        for (client, port) in ["unconnected", "connected"].into_iter().zip(p.udp_clients) {
            for (end, direction) in [("client", "egress"), ("server", "ingress")] {
                let what = format!("UDP flow of the {client} client ({end} side)");
                let Some(f) = find("flow", &|d| {
                    d["source"]["port"] == port
                        && to(udp_port)(d)
                        && d["network"]["direction"] == direction
                }) else {
                    problems.push(format!("{label}: no {what} record"));
                    continue;
                };
                checked.push(f.to_string());
                let got = |path: [&str; 2]| f[path[0]][path[1]].as_u64();
                let want = [
                    (["source", "bytes"], p.udp_sent),
                    (["destination", "bytes"], p.udp_received),
                    (["source", "packets"], p.datagrams),
                    (["destination", "packets"], p.datagrams),
                ];
                let wrong: Vec<String> = want
                    .iter()
                    .filter(|(path, n)| got(*path) != Some(*n))
                    .map(|(path, n)| {
                        format!("{}.{} {:?} (expected {n})", path[0], path[1], got(*path))
                    })
                    .collect();
                if !wrong.is_empty()
                    || f["network"]["transport"] != "udp"
                    || f["monitor"]["flow_end"] != "close"
                    || f["process"]["executable"] != LIFE_PROBE_PATH
                {
                    problems.push(format!(
                        "{label}: the {what} has {} (expected udp, flow_end close, the \
                         probe's executable): {f}",
                        if wrong.is_empty() {
                            "other fields".to_string()
                        } else {
                            wrong.join(", ")
                        }
                    ));
                }
            }
        }
    }
    v.problems.extend(problems);
    v.life_records.extend(checked);
}

/// A console's lifecycle part as a passing guest prints it: the start-up log lines, the
/// probe's line and its records (for `checks.rs`'s tests).
#[cfg(test)]
pub mod fixtures {
    /// On the fixture's kernel (6.1), `--probe tracepoint` has no UDP flows.
    pub fn good(probe: &str) -> (String, String, Vec<String>) {
        let flows = probe != "tracepoint";
        let flow_line = match probe {
            "tracepoint" => "UDP flow summaries unavailable: no UDP flow records \
                             reason=\"cgroup: udp_raw_tp_sock_send_length is not attached \
                             (Linux 6.3+ has its tracepoint)\""
                .to_string(),
            "kprobe" => "lifecycle hook attached hook=\"udp_flow\" backend=\"kprobe\"".to_string(),
            _ => "lifecycle hook attached hook=\"udp_flow\" backend=\"fentry\"".to_string(),
        };
        let log = "2025-01-01T00:00:00Z  INFO monitor::capture::probes::life: lifecycle hook \
                   attached hook=\"tcp_lifecycle\" backend=\"raw_tracepoint\"\n\
                   2025-01-01T00:00:00Z  INFO monitor::capture::probes::life: lifecycle hook \
                   attached hook=\"udp_bind\" backend=\"cgroup\"\n\
                   2025-01-01T00:00:00Z  INFO monitor::capture::probes::life: lifecycle hook \
                   attached hook=\"tcp_early_failure\" backend=\"tracepoint\"\n\
                   2025-01-01T00:00:00Z  INFO monitor::capture::probes::life: {flow}"
            .replace("{flow}", &flow_line);
        let line = format!(
            "=== LIFE {probe} pid=400 client_port=51000 sent=3000 received=1500 refused=111 \
             unrouted=101 udp_a=52000 udp_b=52001 udp_sent=600 udp_received=150 \
             datagrams=3 status=0 ==="
        );
        let records = [
            r#"{"event":{"kind":"event","action":"listen","type":["connection","info"]},"process":{"pid":400,"executable":"/bin/vm-life-probe"},"destination":{"ip":"127.0.0.1","port":40129},"network":{"transport":"udp","direction":"ingress"}}"#,
            r#"{"event":{"kind":"event","action":"listen","type":["connection","info"]},"process":{"pid":400,"executable":"/bin/vm-life-probe"},"destination":{"ip":"127.0.0.1","port":40127},"network":{"transport":"tcp","direction":"ingress"}}"#,
            r#"{"event":{"kind":"event","action":"connect"},"process":{"pid":400,"executable":"/bin/vm-life-probe"},"destination":{"ip":"127.0.0.1","port":40127},"network":{"transport":"tcp"},"monitor":{"connection_id":"00000000000000a1"}}"#,
            r#"{"event":{"kind":"event","action":"connect-result","outcome":"success"},"process":{"pid":400,"executable":"/bin/vm-life-probe"},"destination":{"ip":"127.0.0.1","port":40127},"network":{"transport":"tcp","direction":"egress"},"monitor":{"connection_id":"00000000000000a1","outcome_reason":"established"}}"#,
            r#"{"event":{"kind":"event","action":"accept","type":["connection","start"]},"process":{"pid":400,"executable":"/bin/vm-life-probe"},"source":{"ip":"127.0.0.1","port":51000},"destination":{"ip":"127.0.0.1","port":40127},"network":{"transport":"tcp","direction":"ingress"},"monitor":{"connection_id":"00000000000000b2"}}"#,
            r#"{"event":{"kind":"event","action":"close","type":["connection","end"],"duration":1000},"process":{"pid":400,"executable":"/bin/vm-life-probe"},"source":{"ip":"127.0.0.1","port":51000,"bytes":3002,"packets":5},"destination":{"ip":"127.0.0.1","port":40127,"bytes":1501,"packets":4},"network":{"transport":"tcp","direction":"egress"},"monitor":{"connection_id":"00000000000000a1"}}"#,
            r#"{"event":{"kind":"event","action":"close","type":["connection","end"],"duration":900},"process":{"pid":400,"executable":"/bin/vm-life-probe"},"source":{"ip":"127.0.0.1","port":51000,"bytes":3001,"packets":4},"destination":{"ip":"127.0.0.1","port":40127,"bytes":1501,"packets":5},"network":{"transport":"tcp","direction":"ingress"},"monitor":{"connection_id":"00000000000000b2"}}"#,
            r#"{"event":{"kind":"event","action":"connect"},"process":{"pid":400,"executable":"/bin/vm-life-probe"},"destination":{"ip":"127.0.0.1","port":40128},"network":{"transport":"tcp"},"monitor":{"connection_id":"00000000000000c3"}}"#,
            r#"{"event":{"kind":"event","action":"connect-result","outcome":"failure"},"process":{"pid":400,"executable":"/bin/vm-life-probe"},"destination":{"ip":"127.0.0.1","port":40128},"network":{"transport":"tcp","direction":"egress"},"error":{"code":"ECONNREFUSED"},"monitor":{"connection_id":"00000000000000c3","outcome_reason":"refused"}}"#,
            r#"{"event":{"kind":"event","action":"connect-result","outcome":"failure"},"process":{"pid":400,"executable":"/bin/vm-life-probe"},"destination":{"ip":"192.0.2.1","port":80},"network":{"transport":"tcp","direction":"egress"},"error":{"code":"ENETUNREACH"},"monitor":{"connection_id":"00000000000000d4","outcome_reason":"network-unreachable"}}"#,
        ]
        .map(String::from)
        .to_vec();
        let flow = |client: u16, direction: &str| {
            format!(
                r#"{{"event":{{"kind":"event","action":"flow","type":["connection","end"],"duration":500}},"process":{{"pid":400,"executable":"/bin/vm-life-probe"}},"source":{{"ip":"127.0.0.1","port":{client},"bytes":600,"packets":3}},"destination":{{"ip":"127.0.0.1","port":40129,"bytes":150,"packets":3}},"network":{{"transport":"udp","direction":"{direction}"}},"monitor":{{"flow_end":"close","connection_id":"00000000000000e5"}}}}"#
            )
        };
        let mut records = records;
        for client in [52000, 52001].into_iter().filter(|_| flows) {
            records.extend([flow(client, "egress"), flow(client, "ingress")]);
        }
        (log, line, records)
    }
}

#[cfg(test)]
mod tests {
    use super::super::checks::{Verdict, tests::check_console_for_tests};

    fn problems(edit: impl Fn(String) -> String) -> Vec<String> {
        let v: Verdict = check_console_for_tests(edit);
        v.problems
    }

    #[test]
    fn a_good_guest_passes_and_every_record_is_checked() {
        let v = check_console_for_tests(|c| c);
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!(v.life_records.len(), 14, "{:?}", v.life_records);
    }

    #[test]
    fn records_must_be_joined_and_outcomes_right() {
        let p = problems(|c| {
            c.replacen(
                r#""connection_id":"00000000000000a1","outcome_reason""#,
                r#""connection_id":"00000000000000ff","outcome_reason""#,
                1,
            )
        });
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("connect and connect-result"), "{p:?}");
        let p = problems(|c| {
            c.replace(
                r#""outcome_reason":"refused""#,
                r#""outcome_reason":"aborted""#,
            )
        });
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("refused"), "{p:?}");
        // A missing accept: named.
        // No result for the unrouted connect: the hook's failure named.
        let p = problems(|c| c.replace(r#""ip":"192.0.2.1""#, r#""ip":"192.0.2.9""#));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("no route"), "{p:?}");
        let p = problems(|c| c.replace(r#""action":"accept""#, r#""action":"acceptx""#));
        assert!(p.iter().any(|p| p.contains("no accept record")), "{p:?}");
        // The UDP bind is not a TCP listen.
        let p = problems(|c| {
            c.replace(
                r#""port":40129},"network":{"transport":"udp""#,
                r#""port":40129},"network":{"transport":"tcp""#,
            )
        });
        assert!(p.iter().any(|p| p.contains("UDP listen")), "{p:?}");
    }

    #[test]
    fn close_bytes_must_match_what_the_probe_moved() {
        let p = problems(|c| c.replace(r#""bytes":3002"#, r#""bytes":2999"#));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("client's close") && p[0].contains("3000"),
            "{p:?}"
        );
        let p = problems(|c| c.replacen(r#""bytes":1501"#, r#""bytes":1600"#, 1));
        assert_eq!(p.len(), 1, "{p:?}");
    }

    #[test]
    fn udp_flows_must_count_what_the_probe_moved_each_way() {
        // The connected client's server-side flow lost a datagram.
        let p = problems(|c| {
            c.replacen(
                r#""port":52001,"bytes":600,"packets":3"#,
                r#""port":52001,"bytes":600,"packets":2"#,
                2,
            )
        });
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p.iter()
                .all(|p| p.contains("connected client") && p.contains("source.packets Some(2)")),
            "{p:?}"
        );
        let p = problems(|c| {
            c.replace(
                r#""direction":"ingress"},"monitor":{"flow_end""#,
                r#""direction":"egress"},"monitor":{"flow_end""#,
            )
        });
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().all(|p| p.contains("server side")), "{p:?}");
        let p = problems(|c| c.replace(r#""flow_end":"close""#, r#""flow_end":"idle""#));
        assert_eq!(p.len(), 4, "{p:?}");
    }

    #[test]
    fn the_flow_backend_follows_the_probe_and_the_kernel() {
        use super::expected_flow_backend as want;
        assert_eq!(want("fentry", "5.10.0-35-amd64"), Some("fentry"));
        assert_eq!(want("auto", "6.1.0-40-amd64"), Some("fentry"));
        assert_eq!(want("kprobe", "5.10.0-35-amd64"), Some("kprobe"));
        assert_eq!(want("tracepoint", "6.12.57+deb13-amd64"), Some("cgroup"));
        assert_eq!(want("tracepoint", "6.1.0-40-amd64"), None);
        // The wrong backend, and no hook where one is due: named.
        let p = problems(|c| {
            c.replace(
                "hook=\"udp_flow\" backend=\"fentry\"",
                "hook=\"udp_flow\" backend=\"kprobe\"",
            )
        });
        assert!(p.iter().any(|p| p.contains("udp_flow attached")), "{p:?}");
        let p = problems(|c| {
            c.replace(
                "lifecycle hook attached hook=\"udp_flow\" backend=\"fentry\"",
                "UDP flow summaries unavailable: no UDP flow records reason=\"fentry: x\"",
            )
        });
        assert!(
            p.iter()
                .any(|p| p.contains("udp_flow not attached (expected fentry); the monitor said")),
            "{p:?}"
        );
    }

    #[test]
    fn a_missing_hook_is_a_failure_naming_the_monitors_warning() {
        let p = problems(|c| {
            c.replace(
                "lifecycle hook attached hook=\"tcp_lifecycle\" backend=\"raw_tracepoint\"",
                "TCP lifecycle unavailable: no outcome, close, accept or listen records hook=\"x\"",
            )
        });
        assert!(
            p.iter().any(
                |p| p.contains("tcp_lifecycle not attached; the monitor said")
                    && p.contains("TCP lifecycle unavailable")
            ),
            "{p:?}"
        );
        let p = problems(|c| c.replace("hook=\"udp_bind\"", "x=1"));
        assert!(
            p.iter().any(|p| p.contains("udp_bind not attached and no")),
            "{p:?}"
        );
        let p = problems(|c| c.replace("datagrams=3 status=0", "datagrams=3 status=1"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("lifecycle probe failed"), "{p:?}");
    }
}
