//! The DNS part of the guest check: the DNS probe (`src/bin/vm-dns-probe.rs`) resolved one
//! name over UDP and one over TCP from a server in the guest and connected to each answer.
//! Where the kernel and `--probe` allow DNS capture, the monitor must have written a
//! `dns-query` record per transport naming the probe's client, and each connection must
//! carry the name it asked for with `monitor.domain_source: "process"`.

use serde_json::Value;

use super::checks::Verdict;
use super::initramfs::DNS_PROBE_PATH;

/// The DNS probe's client connects to its answers on this port.
pub const DNS_PORT: u16 = 40126;
/// Names and answers, as `src/bin/vm-dns-probe.rs` serves them.
const QUERIES: [(&str, &str, &str); 2] = [
    ("udp", "udp.dns-probe.test", "127.0.0.2"),
    ("tcp", "tcp.dns-probe.test", "127.0.0.3"),
];
/// The DNS hooks' names in the start-up log, UDP (and the answer side) first.
pub const DNS_HOOKS: [&str; 2] = ["dns_answer", "dns_tcp_answer"];

/// The backend each DNS hook must attach under `--probe <probe>` on a guest kernel
/// `major.minor`, `None` where none can: the `sock:sk_data_ready` tracepoint is 6.5+, and
/// `sock:sock_recv_length` 6.3+ (before that, TCP answers need fentry or kprobes, which
/// `--probe tracepoint` excludes).
pub fn expected_backend(probe: &str, hook: &str, kernel: (u32, u32)) -> Option<&'static str> {
    let tracepoint_since = if hook == "dns_answer" { (6, 5) } else { (6, 3) };
    match probe {
        "fentry" => Some("fentry"),
        "kprobe" => Some("kprobe"),
        "tracepoint" => (kernel >= tracepoint_since).then_some("raw_tracepoint"),
        // auto: fentry for the answer side; for TCP the tracepoint where it exists.
        _ if hook == "dns_tcp_answer" && kernel >= tracepoint_since => Some("raw_tracepoint"),
        _ => Some("fentry"),
    }
}

/// `6.1.0-50-cloud-amd64` -> (6, 1).
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// `=== DNS <probe> client=PID status=S ===`: the client's pid, or why there is none.
fn client_pid(console: &str, probe: &str) -> Result<u64, String> {
    let rest = console
        .lines()
        .find_map(|l| l.strip_prefix(&format!("=== DNS {probe} ")))
        .ok_or("the guest printed no `=== DNS <probe> ... ===` line (the DNS probe did not run)")?;
    let mut pid = None;
    let mut status = None;
    for tok in rest.trim_end_matches(" ===").split_whitespace() {
        if let Some(p) = tok.strip_prefix("client=") {
            pid = p.parse().ok();
        } else if let Some(s) = tok.strip_prefix("status=") {
            status = Some(s);
        }
    }
    if status != Some("0") {
        return Err(format!(
            "the DNS probe failed in the guest (its errors are in the console section): {rest}"
        ));
    }
    pid.ok_or_else(|| format!("no client=PID in the DNS probe's line: {rest}"))
}

/// Checks the DNS hooks' backends and the probe's records; problems go to `v`.
pub fn check(v: &mut Verdict, console: &str, kernel: (u32, u32), docs: &[Value]) {
    let expected: Vec<(&str, Option<&str>)> = DNS_HOOKS
        .iter()
        .map(|h| (*h, expected_backend(&v.probe, h, kernel)))
        .collect();
    for (hook, want) in &expected {
        let got = v.hooks.get(*hook);
        match (want, got) {
            (Some(want), Some(used)) if used.iter().all(|b| b == want) => {}
            (None, None) => {}
            (want, used) => v.problems.push(format!(
                "DNS hook {hook} attached {used:?}, expected {} under --probe {} on {}.{}",
                want.unwrap_or("none (no such tracepoint on this kernel)"),
                v.probe,
                kernel.0,
                kernel.1
            )),
        }
    }
    let pid = match client_pid(console, &v.probe) {
        Ok(pid) => pid,
        Err(e) => {
            v.problems.push(e);
            return;
        }
    };
    let from_client = |d: &&Value| d["process"]["pid"] == pid;
    for (transport, name, ip) in QUERIES {
        let hook = if transport == "udp" {
            "dns_answer"
        } else {
            "dns_tcp_answer"
        };
        let captured = expected
            .iter()
            .any(|(h, want)| *h == hook && want.is_some());
        let query = docs.iter().filter(from_client).find(|d| {
            d["event"]["action"] == "dns-query"
                && d["dns"]["question"]["name"] == name
                && d["network"]["transport"] == transport
        });
        let conn = docs.iter().filter(from_client).find(|d| {
            d["event"]["action"] == "connect"
                && d["destination"]["ip"] == ip
                && d["destination"]["port"] == DNS_PORT
        });
        let label = format!("DNS probe client {pid} ({transport}, {name})");
        let Some(conn) = conn else {
            v.problems.push(format!(
                "{label}: no connect record to {ip}:{DNS_PORT} from the client"
            ));
            continue;
        };
        v.dns_records.push(conn.to_string());
        if !captured {
            // No DNS capture here: the connection must carry no name rather than a wrong one.
            if !conn["destination"]["domain"].is_null() || query.is_some() {
                v.problems.push(format!(
                    "{label}: a name or dns-query record where no DNS hook can attach: {conn}"
                ));
            }
            continue;
        }
        match query {
            None => v.problems.push(format!(
                "{label}: no dns-query record (event.action dns-query, dns.question.name \
                 {name}, network.transport {transport}) from the client"
            )),
            Some(q) => {
                v.dns_records.push(q.to_string());
                let resolved = q["dns"]["resolved_ip"]
                    .as_array()
                    .is_some_and(|ips| ips.iter().any(|i| i == ip));
                if !resolved || q["process"]["executable"] != DNS_PROBE_PATH {
                    v.problems.push(format!(
                        "{label}: the dns-query record must carry dns.resolved_ip [{ip}] and \
                         process.executable {DNS_PROBE_PATH}: {q}"
                    ));
                }
            }
        }
        if conn["destination"]["domain"] != name || conn["monitor"]["domain_source"] != "process" {
            v.problems.push(format!(
                "{label}: the connection must carry destination.domain {name} with \
                 monitor.domain_source \"process\": {conn}"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_per_kernel_and_probe() {
        let old = (6, 1);
        let new = (6, 12);
        assert_eq!(expected_backend("auto", "dns_answer", old), Some("fentry"));
        assert_eq!(
            expected_backend("auto", "dns_tcp_answer", old),
            Some("fentry")
        );
        assert_eq!(
            expected_backend("auto", "dns_tcp_answer", new),
            Some("raw_tracepoint")
        );
        assert_eq!(expected_backend("auto", "dns_answer", new), Some("fentry"));
        assert_eq!(
            expected_backend("kprobe", "dns_tcp_answer", new),
            Some("kprobe")
        );
        assert_eq!(expected_backend("tracepoint", "dns_answer", old), None);
        assert_eq!(
            expected_backend("tracepoint", "dns_tcp_answer", (6, 3)),
            Some("raw_tracepoint")
        );
        assert_eq!(expected_backend("tracepoint", "dns_answer", (6, 3)), None);
        assert_eq!(kernel_version("5.10.0-32-cloud-amd64"), Some((5, 10)));
        assert_eq!(kernel_version("6.12.117+deb13-cloud-amd64"), Some((6, 12)));
        assert_eq!(kernel_version("garbage"), None);
    }
}

/// What a good DNS run adds to a test console from a 6.1 guest (`checks.rs` tests): the DNS
/// hooks' log lines, the probe's line, and the client's records (pid 300).
#[cfg(test)]
pub mod fixtures {
    pub fn good(probe: &str) -> (String, String, Vec<String>) {
        let backend = match probe {
            "kprobe" => Some("kprobe"),
            "tracepoint" => None,
            _ => Some("fentry"),
        };
        let log = backend.map_or(String::new(), |b| {
            format!(
                "2025-01-01T00:00:00Z  INFO DNS answer capture attached hook=\"dns_answer\" \
                 backend=\"{b}\" skipped=\n2025-01-01T00:00:00Z  INFO TCP DNS answer capture \
                 attached hook=\"dns_tcp_answer\" backend=\"{b}\" skipped="
            )
        });
        let mut records = Vec::new();
        for (transport, name, ip) in super::QUERIES {
            if backend.is_some() {
                records.push(format!(
                    r#"{{"event":{{"kind":"event","action":"dns-query"}},"process":{{"pid":300,"executable":"/bin/vm-dns-probe"}},"network":{{"transport":"{transport}"}},"dns":{{"question":{{"name":"{name}"}},"resolved_ip":["{ip}"]}}}}"#
                ));
                records.push(format!(
                    r#"{{"event":{{"kind":"event","action":"connect"}},"process":{{"pid":300}},"destination":{{"ip":"{ip}","port":40126,"domain":"{name}"}},"monitor":{{"domain_source":"process"}}}}"#
                ));
            } else {
                records.push(format!(
                    r#"{{"event":{{"kind":"event","action":"connect"}},"process":{{"pid":300}},"destination":{{"ip":"{ip}","port":40126}}}}"#
                ));
            }
        }
        (
            log,
            format!("=== DNS {probe} client=300 status=0 ==="),
            records,
        )
    }
}
