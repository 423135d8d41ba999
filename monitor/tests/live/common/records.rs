//! Reading the monitor's JSON lines: field access by ECS dotted path, and the queries the
//! tests make (events of a process, alerts for a set of processes).

use std::collections::BTreeSet;

use serde_json::Value;

/// Parses JSON lines. A last line without its newline is still being written and is left
/// out; any other line that is not JSON fails the test, naming the line.
pub fn parse_lines(text: &str, source: &str) -> Vec<Value> {
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{source} line {}: not JSON ({e}): {l}", i + 1))
        })
        .collect()
}

/// `field(v, "process.parent.pid")`: walks nested objects.
pub fn field<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |cur, key| cur.get(key))
}

pub fn str_field<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    field(v, path).and_then(Value::as_str)
}

pub fn u64_field(v: &Value, path: &str) -> Option<u64> {
    field(v, path).and_then(Value::as_u64)
}

pub fn kind(v: &Value) -> Option<&str> {
    str_field(v, "event.kind")
}

pub fn is_event(v: &Value) -> bool {
    kind(v) == Some("event")
}

pub fn is_alert(v: &Value) -> bool {
    kind(v) == Some("alert")
}

pub fn pid(v: &Value) -> Option<u32> {
    u64_field(v, "process.pid").map(|p| p as u32)
}

/// Does the alert carry this ATT&CK technique in `threat.technique.id`?
pub fn has_technique(v: &Value, technique: &str) -> bool {
    field(v, "threat.technique.id")
        .and_then(Value::as_array)
        .is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(technique)))
}

pub fn detector(v: &Value) -> Option<&str> {
    str_field(v, "monitor.detector")
}

/// A connect, a send or a DNS answer: the records a process's own call makes. Not the
/// lifecycle records (`--events` turns them on), which repeat a connect's addresses.
pub fn is_connection_event(v: &Value) -> bool {
    is_event(v)
        && matches!(
            str_field(v, "event.action"),
            Some("connect" | "send" | "dns-query")
        )
}

/// Connection events (connects, sends, DNS answers) of process `pid`.
pub fn events_of(recs: &[Value], pid_: u32) -> Vec<&Value> {
    recs.iter()
        .filter(|r| is_connection_event(r) && pid(r) == Some(pid_))
        .collect()
}

/// Every event record of process `pid`, lifecycle records included.
pub fn records_of(recs: &[Value], pid_: u32) -> Vec<&Value> {
    recs.iter()
        .filter(|r| is_event(r) && pid(r) == Some(pid_))
        .collect()
}

/// Connection events of `pid` to `ip`:`port`.
pub fn events_to<'a>(recs: &'a [Value], pid_: u32, ip: &str, port: u16) -> Vec<&'a Value> {
    events_of(recs, pid_)
        .into_iter()
        .filter(|r| {
            str_field(r, "destination.ip") == Some(ip)
                && u64_field(r, "destination.port") == Some(u64::from(port))
        })
        .collect()
}

/// Alerts whose triggering process is one of `pids`.
pub fn alerts_for<'a>(recs: &'a [Value], pids: &BTreeSet<u32>) -> Vec<&'a Value> {
    recs.iter()
        .filter(|r| is_alert(r) && pid(r).is_some_and(|p| pids.contains(&p)))
        .collect()
}

/// `roots` and every process the events show as their descendant (`process.parent.pid`),
/// so a simulation run through a shell loop is followed to the curl it starts.
pub fn with_descendants(recs: &[Value], roots: &[u32]) -> BTreeSet<u32> {
    let mut set: BTreeSet<u32> = roots.iter().copied().collect();
    loop {
        let before = set.len();
        for r in recs.iter().filter(|r| is_event(r)) {
            if let (Some(p), Some(pp)) = (pid(r), u64_field(r, "process.parent.pid"))
                && set.contains(&(pp as u32))
            {
                set.insert(p);
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

/// One line describing a record, for failure messages.
pub fn brief(v: &Value) -> String {
    let s = |p: &str| str_field(v, p).unwrap_or("-").to_string();
    let n = |p: &str| u64_field(v, p).map_or("-".to_string(), |x| x.to_string());
    let mut out = format!(
        "{} pid={} ppid={} name={} exe={} -> {}:{} {} {}",
        s("event.kind"),
        n("process.pid"),
        n("process.parent.pid"),
        s("process.name"),
        s("process.executable"),
        s("destination.ip"),
        n("destination.port"),
        s("network.transport"),
        s("event.action"),
    );
    if is_alert(v) {
        out.push_str(&format!(
            " rule={} [{}] techniques={} level={} detector={} suspicion={}",
            s("rule.id"),
            s("rule.name"),
            field(v, "threat.technique.id").map_or("-".to_string(), |t| t.to_string()),
            s("monitor.level"),
            s("monitor.detector"),
            s("labels.suspicion"),
        ));
    }
    if let Some(n) = u64_field(v, "monitor.suppressed") {
        out.push_str(&format!(" suppressed={n}"));
    }
    out
}

/// Several records, one per line, for failure messages.
pub fn briefs<'a>(recs: impl IntoIterator<Item = &'a Value>) -> String {
    recs.into_iter()
        .map(|r| format!("  {}", brief(r)))
        .collect::<Vec<_>>()
        .join("\n")
}
