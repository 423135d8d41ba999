//! Reads the guest's console: per `--probe` backend, the monitor's exit status, which
//! backend each connection hook attached, and the records of the traffic /init made, with
//! the identity each must carry (busybox's applets are `/bin/busybox`; the fork probe's
//! child, which never execs, has the probe's executable and its parent's pid).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, ensure};
use serde_json::Value;

use super::boot::tail;
use super::dns;
use super::host::BUSYBOX;
use super::initramfs::FORK_PROBE_PATH;
use super::life;

/// Hooks whose start-up log line must name the forced backend.
const REQUIRED_HOOKS: [&str; 2] = ["tcp_connect", "udp_sendmsg"];
/// Hooks that, when logged, must use the forced backend too.
pub const CONNECTION_HOOKS: [&str; 3] = ["tcp_connect", "udp_sendmsg", "udpv6_sendmsg"];
/// The guest's TCP listener port; unused by anything else in the guest.
pub const TCP_PORT: u16 = 40123;
/// busybox `nslookup` sends to the DNS port.
const UDP_PORT: u16 = 53;
/// The fork probe's child connects (TCP, refused) and sends (UDP) to this port.
pub const FORK_PORT: u16 = 40125;

/// The outcome for one backend.
#[derive(Debug)]
pub struct Verdict {
    pub probe: String,
    /// Start-up log lines naming a connection hook's backend.
    pub hook_lines: Vec<String>,
    /// Hook -> the backends the start-up log says it attached.
    pub hooks: BTreeMap<String, BTreeSet<String>>,
    pub tcp_record: Option<String>,
    pub udp_record: Option<String>,
    /// The fork probe's child's TCP connect and UDP send.
    pub fork_records: Vec<String>,
    /// The DNS probe's client's `dns-query` records and connections (`vm/dns.rs`).
    pub dns_records: Vec<String>,
    /// The lifecycle probe's records (`vm/life.rs`).
    pub life_records: Vec<String>,
    pub problems: Vec<String>,
}

/// Lines strictly between `=== <begin> ===` and the next `=== <end> ===`.
pub fn section<'a>(console: &'a str, begin: &str, end: &str) -> Option<Vec<&'a str>> {
    let mut lines = console.lines();
    let begin = format!("=== {begin} ===");
    let end = format!("=== {end} ===");
    lines.by_ref().find(|l| l.trim_end() == begin)?;
    Some(lines.take_while(|l| l.trim_end() != end).collect())
}

pub fn check_console(console: &str, probes: &[String]) -> Result<Vec<Verdict>> {
    ensure!(
        console.contains("=== VM READY"),
        "the guest never reached /init. Last console lines:\n{}",
        tail(console, 40)
    );
    ensure!(
        console.contains("=== VM DONE ==="),
        "the guest's /init did not finish. Last console lines:\n{}",
        tail(console, 40)
    );
    Ok(probes.iter().map(|p| check_probe(console, p)).collect())
}

fn check_probe(console: &str, probe: &str) -> Verdict {
    let mut v = Verdict {
        probe: probe.to_string(),
        hook_lines: Vec::new(),
        hooks: BTreeMap::new(),
        tcp_record: None,
        udp_record: None,
        fork_records: Vec::new(),
        dns_records: Vec::new(),
        life_records: Vec::new(),
        problems: Vec::new(),
    };
    match console
        .lines()
        .find_map(|l| l.strip_prefix(&format!("=== STATUS {probe} ")))
    {
        Some(s) if s.trim_end_matches(" ===").trim() == "0" => {}
        Some(s) => v.problems.push(format!(
            "the monitor did not exit cleanly after SIGTERM (exit status {})",
            s.trim_end_matches(" ===").trim()
        )),
        None => v
            .problems
            .push("the guest printed no exit status for the monitor".into()),
    }

    let log = section(
        console,
        &format!("BEGIN {probe} log"),
        &format!("END {probe} log"),
    );
    match &log {
        None => v
            .problems
            .push("no start-up log section on the console".into()),
        Some(log) => check_hooks(&mut v, log),
    }
    let Some(output) = section(console, &format!("BEGIN {probe}"), &format!("END {probe}")) else {
        v.problems
            .push("no JSON output section on the console".into());
        return v;
    };
    let fork = fork_pids(console, probe);
    let mut kinds = BTreeMap::<String, usize>::new();
    let mut unparsed = 0;
    let mut fork_docs = Vec::new();
    let mut docs = Vec::new();
    for line in output.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(line) else {
            unparsed += 1;
            continue;
        };
        docs.push(doc.clone());
        if let Some((_, child)) = fork
            && doc["event"]["kind"] == "event"
            && !is_lifecycle(&doc)
            && doc["process"]["pid"] == child
            && doc["destination"]["port"] == FORK_PORT
        {
            v.fork_records.push(line.to_string());
            fork_docs.push(doc.clone());
        }
        let kind = doc["event"]["kind"].as_str().unwrap_or("?").to_string();
        *kinds.entry(kind).or_default() += 1;
        let tcp_backend = expected_backend(probe, "tcp_connect");
        let udp_backend = expected_backend(probe, "udp_sendmsg");
        if v.tcp_record.is_none() && is_connection(&doc, "tcp", TCP_PORT, tcp_backend) {
            v.tcp_record = Some(line.to_string());
        }
        if v.udp_record.is_none() && is_connection(&doc, "udp", UDP_PORT, udp_backend) {
            v.udp_record = Some(line.to_string());
        }
    }
    let seen = format!("output had {kinds:?} records and {unparsed} non-JSON lines");
    for (record, program) in [(&v.tcp_record, "nc"), (&v.udp_record, "nslookup")] {
        if let Some(line) = record
            && !made_by(line, program)
        {
            v.problems.push(format!(
                "the event is not attributed to busybox {program} (process.args[0] or \
                 process.command_line): {line}"
            ));
        }
    }
    if v.tcp_record.is_none() {
        v.problems.push(format!(
            "no connection event (event.kind event, network.transport tcp, destination \
             127.0.0.1:{TCP_PORT}) from the busybox nc connect; {seen}"
        ));
    }
    if v.udp_record.is_none() {
        v.problems.push(format!(
            "no connection event (event.kind event, network.transport udp, destination \
             127.0.0.1:{UDP_PORT}) from busybox nslookup; {seen}"
        ));
    }
    // Identity: the kernel's file for busybox's applets (the shell runs them through
    // /proc/self/exe), never that link or the applet's name.
    for (record, program) in [(&v.tcp_record, "nc"), (&v.udp_record, "nslookup")] {
        if let Some(line) = record {
            let doc: Value = serde_json::from_str(line).unwrap_or_default();
            v.problems.extend(identity_problems(
                &doc,
                BUSYBOX,
                &format!("busybox {program}"),
            ));
        }
    }
    check_fork(&mut v, fork, &fork_docs, &seen);
    match guest_kernel(console) {
        Some(kernel) => dns::check(&mut v, console, kernel, &docs),
        None => v
            .problems
            .push("no kernel version in the guest's `=== VM READY kernel=... ===` line".into()),
    }
    life::check(&mut v, console, log.as_deref().unwrap_or_default(), &docs);
    v
}

/// The records `--lifecycle` adds (`vm/life.rs` checks them); the connect and send checks
/// leave them out.
fn is_lifecycle(doc: &Value) -> bool {
    matches!(
        doc["event"]["action"].as_str(),
        Some("connect-result" | "close" | "accept" | "listen")
    )
}

/// The guest kernel's `major.minor`, from `=== VM READY kernel=<uname -r> ===`.
fn guest_kernel(console: &str) -> Option<(u32, u32)> {
    let release = console
        .lines()
        .find_map(|l| l.strip_prefix("=== VM READY kernel="))?;
    dns::kernel_version(release.trim_end_matches(" ===").trim())
}

/// `=== FORK <probe> parent=P child=C ===`: the fork probe's two pids.
fn fork_pids(console: &str, probe: &str) -> Option<(u64, u64)> {
    let rest = console
        .lines()
        .find_map(|l| l.strip_prefix(&format!("=== FORK {probe} ")))?;
    let mut parent = None;
    let mut child = None;
    for tok in rest.split_whitespace() {
        if let Some(p) = tok.strip_prefix("parent=") {
            parent = p.parse().ok();
        } else if let Some(c) = tok.strip_prefix("child=") {
            child = c.parse().ok();
        }
    }
    Some((parent?, child?))
}

/// The fork probe's child connected (TCP) and sent (UDP) over IPv4 and IPv6 without
/// exec'ing: all four records must carry the probe's executable, complete, with the probe
/// as parent.
fn check_fork(v: &mut Verdict, fork: Option<(u64, u64)>, docs: &[Value], seen: &str) {
    let Some((parent, child)) = fork else {
        v.problems.push(
            "the guest printed no `=== FORK <probe> parent=P child=C ===` line (the fork \
             probe did not run)"
                .into(),
        );
        return;
    };
    for (transport, family) in [
        ("tcp", "ipv4"),
        ("udp", "ipv4"),
        ("tcp", "ipv6"),
        ("udp", "ipv6"),
    ] {
        let Some(doc) = docs
            .iter()
            .find(|d| d["network"]["transport"] == transport && d["network"]["type"] == family)
        else {
            v.problems.push(format!(
                "no {transport} {family} event from the fork probe's child (pid {child}, to \
                 port {FORK_PORT}); {seen}"
            ));
            continue;
        };
        let label = format!("fork probe child {child} ({transport} {family})");
        v.problems
            .extend(identity_problems(doc, FORK_PROBE_PATH, &label));
        if doc["process"]["parent"]["pid"] != parent {
            v.problems.push(format!(
                "{label}: process.parent.pid is {}, expected {parent}",
                doc["process"]["parent"]["pid"]
            ));
        }
    }
}

/// `process.executable` must be `exe`, `process.name` its basename, and the record complete.
fn identity_problems(doc: &Value, exe: &str, label: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let name = exe.rsplit('/').next().unwrap_or(exe);
    let process = &doc["process"];
    if process["executable"] != exe || process["name"] != name {
        problems.push(format!(
            "{label}: process.executable {} and process.name {}, expected {exe:?} and \
             {name:?}",
            process["executable"], process["name"]
        ));
    }
    if doc["monitor"]["enrichment"] != "full" {
        problems.push(format!(
            "{label}: monitor.enrichment is {}, expected \"full\"",
            doc["monitor"]["enrichment"]
        ));
    }
    problems
}

/// The backend a connection hook must use under `--probe <probe>` on the guest's kernel, a
/// stock kernel where fentry and kprobes work.
fn expected_backend(probe: &str, hook: &str) -> &'static str {
    match (probe, hook) {
        ("kprobe", _) => "kprobe",
        // The fallback family: cgroup programs first for every hook (TCP's `connect4/6` run
        // once per connect; the raw tracepoint after them is covered by the host's tests).
        ("tracepoint", _) => "cgroup",
        // "fentry", and "auto": with fentry working nothing lower may be chosen.
        _ => "fentry",
    }
}

/// Start-up log: every connection hook that is logged must use its expected backend, and the
/// TCP and UDPv4 hooks must be logged.
fn check_hooks(v: &mut Verdict, log: &[&str]) {
    let mut backends = BTreeMap::<String, BTreeSet<String>>::new();
    for line in log {
        let fields = log_fields(line);
        let (Some(hook), Some(backend)) = (fields.get("hook"), fields.get("backend")) else {
            continue;
        };
        if CONNECTION_HOOKS.contains(&hook.as_str()) {
            v.hook_lines.push(line.to_string());
            backends
                .entry(hook.clone())
                .or_default()
                .insert(backend.clone());
        }
        v.hooks
            .entry(hook.clone())
            .or_default()
            .insert(backend.clone());
    }
    for hook in REQUIRED_HOOKS {
        if !backends.contains_key(hook) {
            v.problems.push(format!(
                "the start-up log has no `hook={hook} backend=...` line; log was:\n    {}",
                log.join("\n    ")
            ));
        }
    }
    for (hook, used) in &backends {
        let expected = expected_backend(&v.probe, hook);
        if used.iter().any(|b| b != expected) {
            v.problems.push(format!(
                "hook {hook} uses backend {used:?}, expected {expected} under --probe {}: {}",
                v.probe,
                v.hook_lines.join(" | ")
            ));
        }
    }
}

/// `key=value` fields of a tracing log line (values may be quoted).
fn log_fields(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|tok| {
            let (k, val) = tok.split_once('=')?;
            let val = val.trim_matches(|c| c == '"' || c == ',' || c == ';');
            Some((k.to_string(), val.to_string()))
        })
        .collect()
}

/// Whether a record's process is `program`: by argv[0], since busybox's shell runs applets
/// through /proc/self/exe, which makes the kernel's process name "exe".
fn made_by(line: &str, program: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(line) else {
        return false;
    };
    let process = &doc["process"];
    let argv0 = process["args"][0].as_str().or_else(|| {
        process["command_line"]
            .as_str()
            .and_then(|c| c.split_whitespace().next())
    });
    argv0.is_some_and(|a| a.rsplit('/').next() == Some(program))
}

fn is_connection(doc: &serde_json::Value, transport: &str, port: u16, backend: &str) -> bool {
    doc["event"]["kind"] == "event"
        && !is_lifecycle(doc)
        && doc["network"]["transport"] == transport
        && doc["destination"]["port"] == port
        && doc["destination"]["ip"] == "127.0.0.1"
        // Records name the backend that saw them; when they do, it must be the forced one.
        && doc["monitor"]["probe"].as_str().is_none_or(|p| p == backend)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const TCP: &str = r#"{"@timestamp":"2025-01-01T00:00:00Z","event":{"kind":"event","action":"connect"},"process":{"pid":180,"name":"busybox","executable":"/bin/busybox","args":["nc","127.0.0.1","40123"]},"destination":{"ip":"127.0.0.1","port":40123},"network":{"transport":"tcp","type":"ipv4"},"monitor":{"probe":"fentry","enrichment":"full"}}"#;
    const UDP: &str = r#"{"@timestamp":"2025-01-01T00:00:00Z","event":{"kind":"event","action":"send"},"process":{"pid":183,"name":"busybox","executable":"/bin/busybox","command_line":"/bin/nslookup example.test 127.0.0.1"},"destination":{"ip":"127.0.0.1","port":53},"network":{"transport":"udp","type":"ipv4"},"monitor":{"probe":"fentry","enrichment":"full"}}"#;
    const FORK_TCP: &str = r#"{"event":{"kind":"event","action":"connect"},"process":{"pid":200,"name":"vm-fork-probe","executable":"/bin/vm-fork-probe","parent":{"pid":199}},"destination":{"ip":"127.0.0.1","port":40125},"network":{"transport":"tcp","type":"ipv4"},"monitor":{"enrichment":"full"}}"#;
    const FORK_UDP: &str = r#"{"event":{"kind":"event","action":"send"},"process":{"pid":200,"name":"vm-fork-probe","executable":"/bin/vm-fork-probe","parent":{"pid":199}},"destination":{"ip":"127.0.0.1","port":40125},"network":{"transport":"udp","type":"ipv4"},"monitor":{"enrichment":"full"}}"#;
    const FORK_TCP6: &str = r#"{"event":{"kind":"event","action":"connect"},"process":{"pid":200,"name":"vm-fork-probe","executable":"/bin/vm-fork-probe","parent":{"pid":199}},"destination":{"ip":"::1","port":40125},"network":{"transport":"tcp","type":"ipv6"},"monitor":{"enrichment":"full"}}"#;
    const FORK_UDP6: &str = r#"{"event":{"kind":"event","action":"send"},"process":{"pid":200,"name":"vm-fork-probe","executable":"/bin/vm-fork-probe","parent":{"pid":199}},"destination":{"ip":"::1","port":40125},"network":{"transport":"udp","type":"ipv6"},"monitor":{"enrichment":"full"}}"#;
    const FORK_ALL: [&str; 4] = [FORK_TCP, FORK_UDP, FORK_TCP6, FORK_UDP6];

    fn console(log: &str, records: &[&str], status: u32) -> String {
        console_for("fentry", log, records, status)
    }

    fn console_for(probe: &str, log: &str, records: &[&str], status: u32) -> String {
        console_with_fork(probe, log, records, status, &FORK_ALL)
    }

    fn console_with_fork(
        probe: &str,
        log: &str,
        records: &[&str],
        status: u32,
        fork: &[&str],
    ) -> String {
        let (dns_log, dns_line, dns_records) = dns::fixtures::good(probe);
        let (life_log, life_line, life_records) = life::fixtures::good(probe);
        format!(
            "boot noise\n=== VM READY kernel=6.1.0 ===\n=== START {probe} ===\n\
             === FORK {probe} parent=199 child=200 ===\n{dns_line}\n{life_line}\n\
             === STATUS {probe} {status} ===\n=== BEGIN {probe} log ===\n{life_log}\n{log}\n\
             {dns_log}\n=== END {probe} log ===\n=== BEGIN {probe} ===\n{}\n{}\n{}\n{}\n\
             === END {probe} ===\n=== VM DONE ===\n",
            records.join("\n"),
            fork.join("\n"),
            dns_records.join("\n"),
            life_records.join("\n")
        )
    }

    /// The verdict on a passing fentry guest's console after `edit` (for `vm/life.rs`).
    pub(in crate::vm) fn check_console_for_tests(edit: impl Fn(String) -> String) -> Verdict {
        let c = edit(console(GOOD_LOG, &[TCP, UDP], 0));
        let mut v = check_console(&c, &["fentry".to_string()]).unwrap();
        v.remove(0)
    }

    const GOOD_LOG: &str = "2025-01-01T00:00:00Z  INFO monitor::capture: attached hook=tcp_connect backend=fentry\n\
                            2025-01-01T00:00:00Z  INFO monitor::capture: attached hook=\"udp_sendmsg\" backend=\"fentry\"";

    fn verdict(c: &str) -> Verdict {
        let mut v = check_console(c, &["fentry".to_string()]).unwrap();
        v.remove(0)
    }

    #[test]
    fn passes_with_both_records_and_hook_lines() {
        let v = verdict(&console(GOOD_LOG, &[TCP, UDP], 0));
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!(v.hook_lines.len(), 2);
        assert_eq!(v.tcp_record.as_deref(), Some(TCP));
        assert_eq!(v.udp_record.as_deref(), Some(UDP));
    }

    #[test]
    fn fails_without_udp_record() {
        let v = verdict(&console(GOOD_LOG, &[TCP], 0));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains("udp"), "{:?}", v.problems);
    }

    #[test]
    fn fails_when_record_names_another_backend() {
        let kprobe_tcp = TCP.replace(r#""probe":"fentry""#, r#""probe":"kprobe""#);
        let v = verdict(&console(GOOD_LOG, &[&kprobe_tcp, UDP], 0));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains("tcp"), "{:?}", v.problems);
    }

    #[test]
    fn fails_on_wrong_port_or_alert_kind() {
        let other_port = TCP.replace("40123", "40124");
        let alert = TCP.replace(r#""kind":"event""#, r#""kind":"alert""#);
        let v = verdict(&console(GOOD_LOG, &[&other_port, &alert, UDP], 0));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains("tcp"));
    }

    #[test]
    fn fails_when_hook_uses_other_backend_or_is_missing() {
        let log = GOOD_LOG.replace("backend=\"fentry\"", "backend=tracepoint");
        let v = verdict(&console(&log, &[TCP, UDP], 0));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains("udp_sendmsg"), "{:?}", v.problems);

        let only_tcp = GOOD_LOG.lines().next().unwrap();
        let v = verdict(&console(only_tcp, &[TCP, UDP], 0));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(
            v.problems[0].contains("hook=udp_sendmsg"),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn tracepoint_means_cgroup_and_auto_means_fentry() {
        let check = |probe: &str, log: &str, records: &[&str]| {
            let mut v =
                check_console(&console_for(probe, log, records, 0), &[probe.to_string()]).unwrap();
            v.remove(0).problems
        };
        let tp_log = GOOD_LOG
            .replacen("backend=fentry", "backend=cgroup", 1)
            .replace("backend=\"fentry\"", "backend=\"cgroup\"");
        let tp_tcp = TCP.replace(r#""probe":"fentry""#, r#""probe":"cgroup""#);
        let tp_udp = UDP.replace(r#""probe":"fentry""#, r#""probe":"cgroup""#);
        let problems = check("tracepoint", &tp_log, &[&tp_tcp, &tp_udp]);
        assert!(problems.is_empty(), "{problems:?}");
        // A tracepoint for TCP where the cgroup programs work is a failure.
        let raw = tp_log.replacen("backend=cgroup", "backend=raw_tracepoint", 1);
        let problems = check("tracepoint", &raw, &[&tp_tcp, &tp_udp]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("expected cgroup"), "{problems:?}");

        let problems = check("auto", GOOD_LOG, &[TCP, UDP]);
        assert!(problems.is_empty(), "{problems:?}");
        // auto must not settle for a fallback when fentry works.
        let problems = check("auto", &tp_log, &[TCP, UDP]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems.iter().all(|p| p.contains("expected fentry")),
            "{problems:?}"
        );
    }

    #[test]
    fn fails_on_unclean_exit_and_unfinished_guest() {
        let v = verdict(&console(GOOD_LOG, &[TCP, UDP], 143));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains("143"));

        let c = console(GOOD_LOG, &[TCP, UDP], 0).replace("=== VM DONE ===", "");
        assert!(check_console(&c, &["fentry".to_string()]).is_err());
    }

    #[test]
    fn fails_when_event_is_attributed_to_another_process() {
        let curl_tcp = TCP.replace(r#"["nc","#, r#"["curl","#);
        let v = verdict(&console(GOOD_LOG, &[&curl_tcp, UDP], 0));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains("busybox nc"), "{:?}", v.problems);

        let anonymous_udp = UDP.replace(
            r#""command_line":"/bin/nslookup example.test 127.0.0.1""#,
            r#""title":"nslookup""#,
        );
        let v = verdict(&console(GOOD_LOG, &[TCP, &anonymous_udp], 0));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(
            v.problems[0].contains("busybox nslookup"),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn busybox_applets_must_be_the_busybox_file() {
        // What the monitor wrote before the kernel resolved the file: the magic link.
        let magic = TCP
            .replace(r#""name":"busybox""#, r#""name":"exe""#)
            .replace(r#""/bin/busybox""#, r#""/proc/self/exe""#);
        let v = verdict(&console(GOOD_LOG, &[&magic, UDP], 0));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains("/proc/self/exe"), "{:?}", v.problems);
        let partial = UDP.replace(r#""enrichment":"full""#, r#""enrichment":"partial""#);
        let v = verdict(&console(GOOD_LOG, &[TCP, &partial], 0));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains("partial"), "{:?}", v.problems);
    }

    #[test]
    fn the_fork_probes_child_must_have_its_parents_executable() {
        let c = |fork: &[&str]| {
            let mut v = check_console(
                &console_with_fork("fentry", GOOD_LOG, &[TCP, UDP], 0, fork),
                &["fentry".to_string()],
            )
            .unwrap();
            v.remove(0)
        };
        let v = c(&FORK_ALL);
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!(v.fork_records.len(), 4);
        // No identity: the child's record before fork tracking.
        let anonymous = FORK_UDP
            .replace(
                r#""name":"vm-fork-probe","executable":"/bin/vm-fork-probe","#,
                "",
            )
            .replace(r#""enrichment":"full""#, r#""enrichment":"partial""#);
        let v = c(&[FORK_TCP, &anonymous, FORK_TCP6, FORK_UDP6]);
        assert_eq!(v.problems.len(), 2, "{:?}", v.problems);
        assert!(
            v.problems.iter().all(|p| p.contains("(udp ipv4)")),
            "{:?}",
            v.problems
        );
        let v = c(&[FORK_TCP, FORK_UDP, FORK_TCP6]);
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(
            v.problems[0].contains("no udp ipv6 event"),
            "{:?}",
            v.problems
        );
        let orphan = FORK_TCP.replace(r#""pid":199"#, r#""pid":1"#);
        let v = c(&[&orphan, FORK_UDP, FORK_TCP6, FORK_UDP6]);
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains("parent.pid"), "{:?}", v.problems);
        let no_line = console(GOOD_LOG, &[TCP, UDP], 0)
            .replace("=== FORK fentry parent=199 child=200 ===\n", "");
        let v = verdict(&no_line);
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains("FORK"), "{:?}", v.problems);
    }

    #[test]
    fn dns_answers_must_be_captured_and_name_the_connections() {
        let good = console(GOOD_LOG, &[TCP, UDP], 0);
        let v = verdict(&good);
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!(v.dns_records.len(), 4, "{:?}", v.dns_records);
        // The TCP answer missed (no dns-query record): the query and the name are missing.
        let no_tcp_query = good
            .lines()
            .filter(|l| !(l.contains("dns-query") && l.contains("tcp.dns-probe.test")))
            .collect::<Vec<_>>()
            .join("\n");
        let v = verdict(&no_tcp_query);
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(
            v.problems[0].contains("no dns-query record"),
            "{:?}",
            v.problems
        );
        // Named from another process's answer: not the process's own.
        let host = good.replacen(
            r#""domain_source":"process""#,
            r#""domain_source":"host""#,
            1,
        );
        let v = verdict(&host);
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(
            v.problems[0].contains("udp.dns-probe.test"),
            "{:?}",
            v.problems
        );
        // The TCP hook on another backend, or not attached at all.
        let v = verdict(&good.replace(
            "hook=\"dns_tcp_answer\" backend=\"fentry\"",
            "hook=\"dns_tcp_answer\" backend=\"kprobe\"",
        ));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains("dns_tcp_answer"), "{:?}", v.problems);
        let v = verdict(&good.replace("hook=\"dns_tcp_answer\"", "x=1"));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        // The probe itself failed, or did not run.
        let v = verdict(&good.replace("client=300 status=0", "client=300 status=1"));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(
            v.problems[0].contains("DNS probe failed"),
            "{:?}",
            v.problems
        );
        let v = verdict(&good.replace("=== DNS fentry client=300 status=0 ===\n", ""));
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
    }

    #[test]
    fn no_dns_hook_under_tracepoint_before_6_3_and_no_names_then() {
        let tp_log = GOOD_LOG
            .replacen("backend=fentry", "backend=cgroup", 1)
            .replace("backend=\"fentry\"", "backend=\"cgroup\"");
        let tp_tcp = TCP.replace(r#""probe":"fentry""#, r#""probe":"cgroup""#);
        let tp_udp = UDP.replace(r#""probe":"fentry""#, r#""probe":"cgroup""#);
        let c = console_for("tracepoint", &tp_log, &[&tp_tcp, &tp_udp], 0);
        let problems = check_console(&c, &["tracepoint".to_string()]).unwrap()[0]
            .problems
            .clone();
        assert!(problems.is_empty(), "{problems:?}");
        // On 6.12 the tracepoints exist: missing hooks are failures.
        let c = c.replace("kernel=6.1.0", "kernel=6.12.1");
        let problems = check_console(&c, &["tracepoint".to_string()]).unwrap()[0]
            .problems
            .clone();
        // Both hooks missing, and per transport no query and no name; and the UDP flows
        // (cgroup programs with `sock_send_length` there).
        assert_eq!(problems.len(), 7, "{problems:?}");
        assert_eq!(
            problems.iter().filter(|p| p.contains("DNS")).count(),
            6,
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("udp_flow not attached (expected cgroup)")),
            "{problems:?}"
        );
    }
}
