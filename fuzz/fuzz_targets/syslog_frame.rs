//! The syslog framer (monitor/src/output/syslog/format.rs) and message-size fitting
//! (fit.rs) on arbitrary alert, event and metric fields and framer settings: no panic, a
//! message within the size limit with no byte below 0x20, a header whose fields hold no
//! space, structured data in which every `"`, `\` and `]` of a value is escaped, and a MSG
//! that is valid JSON (the record itself, or its shortened form marked
//! `monitor.truncated`). `fit_json` is also run alone on the input's JSON line.
#![no_main]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use monitor::fuzzing::{SyslogFramer, fit_json};
use monitor::output::syslog::format::check_sd_id;
use monitor::output::{Facility, OutputRecord, SyslogFormat};
use monitor::record::{
    AccountId, Aggregate, Alert, BeaconStats, ConnectionRecord, Detector, DomainSource, Endpoint,
    Level, ParentInfo, ProcessInfo, RuleMeta, Timestamp, Transport,
};
use serde_json::Value;

#[derive(Arbitrary, Debug)]
struct Input {
    rfc3164: bool,
    local: bool,
    facility: u8,
    hostname: String,
    app_name: String,
    sd_id: String,
    /// Above the smallest limit the config accepts (2048).
    max_message_extra: u16,
    kind: u8,
    record: Record,
    alert: AlertFields,
    /// Metric counters (metric records).
    metric: Vec<(String, String)>,
    /// `fit_json`'s budget for the input's JSON line.
    budget: u16,
}

#[derive(Arbitrary, Clone, Debug)]
struct Record {
    timestamp: i64,
    host_name: String,
    pid: u32,
    tid: Option<u32>,
    name: Option<String>,
    executable: Option<String>,
    command_line: Option<String>,
    args: Vec<String>,
    parent_pid: Option<u32>,
    parent_name: Option<String>,
    parent_executable: Option<String>,
    parent_command_line: Option<String>,
    user_id: Option<String>,
    user_name: Option<String>,
    group_id: Option<String>,
    container_id: Option<String>,
    source: Option<([u8; 16], u16)>,
    destination: ([u8; 16], u16),
    v6: bool,
    udp: bool,
    partial: bool,
    suppressed: u32,
    dns_resolver: bool,
    /// An attacker-chosen name (DNS answers are hostile input too).
    domain: Option<String>,
    domain_from_host: bool,
}

#[derive(Arbitrary, Clone, Debug)]
struct AlertFields {
    rule_id: String,
    rule_name: String,
    description: String,
    reference: Vec<String>,
    ruleset: String,
    techniques: Vec<String>,
    beacon: bool,
    level: u8,
    risk_score: Option<u32>,
    labels: BTreeMap<String, String>,
    aggregate: Option<(u64, String, String, Vec<String>, Vec<u16>)>,
    stats: (u64, f64, f64, f64, f64),
    /// The data-size figures (sizes known, median bytes, size jitter, size score).
    size_stats: Option<(u64, f64, f64, f64)>,
}

fn ip(bytes: [u8; 16], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(bytes))
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    }
}

fn connection(r: Record) -> ConnectionRecord {
    ConnectionRecord {
        timestamp: Timestamp(r.timestamp),
        host_name: r.host_name.into(),
        process: Arc::new(ProcessInfo {
            pid: r.pid,
            tid: r.tid,
            name: r.name,
            executable: r.executable,
            command_line: r.command_line,
            args: r.args,
            parent: ParentInfo {
                pid: r.parent_pid,
                name: r.parent_name,
                executable: r.parent_executable,
                command_line: r.parent_command_line,
            },
            user_id: r.user_id.as_deref().map(AccountId::parse),
            user_name: r.user_name,
            group_id: r.group_id.as_deref().map(AccountId::parse),
            container_id: r.container_id,
            // Hashes and ancestors go through the same string escaping as the fields above.
            ..ProcessInfo::default()
        }),
        source: r.source.map(|(a, port)| Endpoint {
            ip: ip(a, r.v6),
            port,
        }),
        destination: Endpoint {
            ip: ip(r.destination.0, r.v6),
            port: r.destination.1,
        },
        transport: if r.udp {
            Transport::Udp
        } else {
            Transport::Tcp
        },
        partial: r.partial,
        suppressed: r.suppressed,
        probe: None,
        dns_resolver: r.dns_resolver,
        domain_source: r.domain.as_ref().map(|_| {
            if r.domain_from_host {
                DomainSource::Host
            } else {
                DomainSource::Process
            }
        }),
        domain: r.domain.map(Into::into),
        dns: None,
        connection_id: None,
        life: None,
    }
}

fn alert(event: ConnectionRecord, a: AlertFields) -> Alert {
    const LEVELS: [Level; 5] = [
        Level::Informational,
        Level::Low,
        Level::Medium,
        Level::High,
        Level::Critical,
    ];
    let (connections, median, mean, jitter, score) = a.stats;
    let sizes = a.size_stats;
    Alert {
        timestamp: event.timestamp,
        rule: Arc::new(RuleMeta {
            id: a.rule_id,
            name: a.rule_name,
            description: a.description,
            reference: a.reference,
            ruleset: a.ruleset,
        }),
        techniques: a.techniques.into(),
        detector: if a.beacon {
            Detector::Beacon
        } else {
            Detector::Rule
        },
        level: LEVELS[usize::from(a.level) % LEVELS.len()],
        risk_score: a.risk_score,
        labels: a.labels,
        aggregate: a
            .aggregate
            .map(|(count, first_seen, last_seen, ips, ports)| Aggregate {
                count,
                first_seen,
                last_seen,
                destination_ips: ips,
                destination_ports: ports,
            }),
        beacon: a.beacon.then_some(BeaconStats {
            connections,
            median_interval_s: median,
            mean_interval_s: mean,
            jitter,
            score,
            sizes: sizes.map(|s| s.0),
            median_bytes: sizes.map(|s| s.1),
            size_jitter: sizes.map(|s| s.2),
            size_score: sizes.map(|s| s.3),
        }),
        correlation: None,
        event,
    }
}

/// Every character of a header field is printable ASCII (no space), and there is one.
fn header_field(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|b| b.is_ascii_graphic())
}

/// The RFC 5424 STRUCTURED-DATA element at the start of `s`: its length. Values must have
/// `"`, `\` and `]` escaped, so an unescaped `]` inside one is a forged element end.
fn sd_element(s: &[u8]) -> usize {
    assert_eq!(s.first(), Some(&b'['), "no structured data");
    let mut i = 1;
    let id_end = i + s[i..]
        .iter()
        .position(|b| matches!(b, b' ' | b']'))
        .unwrap();
    assert!(check_sd_id(std::str::from_utf8(&s[i..id_end]).unwrap()).is_ok());
    i = id_end;
    while s[i] == b' ' {
        i += 1;
        let eq = i + s[i..].iter().position(|b| *b == b'=').unwrap();
        assert!(header_field(&s[i..eq]), "param name");
        assert_eq!(s[eq + 1], b'"', "param value opens with a quote");
        i = eq + 2;
        loop {
            match s[i] {
                b'"' => break,
                b'\\' => {
                    assert!(
                        matches!(s[i + 1], b'"' | b'\\' | b']'),
                        "a backslash that escapes nothing"
                    );
                    i += 2;
                }
                b']' => panic!("unescaped `]` in a structured-data value"),
                _ => i += 1,
            }
        }
        i += 1;
    }
    assert_eq!(s[i], b']', "structured data ends with `]`");
    i + 1
}

/// The MSG of a frame: the record's JSON, or valid JSON marked as shortened.
fn check_msg(msg: &[u8], rec: &OutputRecord, truncated: bool) {
    if !truncated {
        assert_eq!(msg, rec.json().as_bytes(), "the record, unchanged");
        return;
    }
    let v: Value = serde_json::from_slice(msg).expect("shortened MSG is JSON");
    assert_eq!(v["monitor"]["truncated"], Value::Bool(true));
}

fn check_frame(frame: &[u8], input: &Input, rec: &OutputRecord, max: usize, truncated: bool) {
    let shown = String::from_utf8_lossy(frame);
    assert!(frame.len() <= max, "{} > {max} bytes: {shown}", frame.len());
    assert!(frame.iter().all(|b| *b >= 0x20), "control byte: {shown}");
    let gt = frame.iter().position(|b| *b == b'>').unwrap();
    assert_eq!(frame[0], b'<');
    let pri: u32 = std::str::from_utf8(&frame[1..gt]).unwrap().parse().unwrap();
    assert!(pri <= 191, "PRI {pri}");
    let mut rest = &frame[gt + 1..];
    let field = |rest: &mut &[u8]| {
        let sp = rest.iter().position(|b| *b == b' ').unwrap();
        let f = &rest[..sp];
        *rest = &rest[sp + 1..];
        assert!(
            header_field(f),
            "header field {:?}: {shown}",
            f.escape_ascii().to_string()
        );
        f.to_vec()
    };
    if input.rfc3164 {
        // `Mmm dd hh:mm:ss ` (the day padded with a space), then HOSTNAME unless local.
        assert!(
            rest.len() > 16 && rest[15] == b' ',
            "3164 timestamp: {shown}"
        );
        rest = &rest[16..];
        if !input.local {
            field(&mut rest);
        }
        let tag = field(&mut rest);
        let open = tag.iter().position(|b| *b == b'[').unwrap();
        assert!(tag.ends_with(b"]:"), "tag: {shown}");
        assert!(
            tag[..open]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(b))
        );
    } else {
        assert_eq!(field(&mut rest), b"1");
        for _ in 0..5 {
            // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
            field(&mut rest);
        }
        let sd = sd_element(rest);
        assert_eq!(rest[sd], b' ', "space after structured data: {shown}");
        rest = &rest[sd + 1..];
    }
    check_msg(rest, rec, truncated);
}

/// The record a JSON line of `monitor run` output stands for: an alert (its event, rule,
/// techniques, level and labels), an event, or else a metric record holding the object.
fn record_from_line(v: &Value) -> Option<OutputRecord> {
    let obj = v.as_object()?;
    let kind = v["event"]["kind"].as_str().unwrap_or("event");
    if kind != "alert" {
        return Some(match ConnectionRecord::from_json_line(&v.to_string()) {
            Ok(Some(rec)) => OutputRecord::from_event(&rec),
            _ => OutputRecord::from_metric(Value::Object(obj.clone())),
        });
    }
    // The alert's event is the same document read as an event.
    let mut as_event = v.clone();
    as_event["event"]["kind"] = "event".into();
    let event = ConnectionRecord::from_json_line(&as_event.to_string()).ok()??;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let texts = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let rule = &v["rule"];
    let labels = v["labels"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect())
        .unwrap_or_default();
    Some(OutputRecord::from_alert(&Alert {
        timestamp: event.timestamp,
        rule: Arc::new(RuleMeta {
            id: text(&rule["id"]),
            name: text(&rule["name"]),
            description: text(&rule["description"]),
            reference: texts(&rule["reference"]),
            ruleset: text(&rule["ruleset"]),
        }),
        techniques: texts(&v["threat"]["technique"]["id"]).into(),
        detector: if v["monitor"]["detector"] == "beacon" {
            Detector::Beacon
        } else {
            Detector::Rule
        },
        level: Level::parse(v["monitor"]["level"].as_str().unwrap_or_default())
            .unwrap_or(Level::Medium),
        risk_score: v["event"]["risk_score"].as_u64().map(|n| n as u32),
        labels,
        aggregate: None,
        beacon: None,
        correlation: None,
        event,
    }))
}

// The input: a JSON line (an alert, event or metric as `monitor run` writes them, or any
// JSON), a line feed, and bytes for the structured fields of `Input`.
fuzz_target!(|data: &[u8]| {
    let (line, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(rest)) else {
        return;
    };
    const FACILITIES: [&str; 20] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
        "local7",
    ];
    let facility: Facility = FACILITIES[usize::from(input.facility) % FACILITIES.len()]
        .parse()
        .unwrap();
    // The config refuses SD-IDs `check_sd_id` refuses.
    let sd_id = if check_sd_id(&input.sd_id).is_ok() {
        input.sd_id.as_str()
    } else {
        "monitor@32473"
    };
    let max = 2048 + usize::from(input.max_message_extra % 16_384);
    let format = if input.rfc3164 {
        SyslogFormat::Rfc3164
    } else {
        SyslogFormat::Rfc5424
    };
    let framer = SyslogFramer::new(
        format,
        input.local,
        facility,
        &input.hostname,
        &input.app_name,
        sd_id,
        max,
    );
    let frame = |rec: &OutputRecord| {
        serde_json::from_str::<Value>(rec.json()).expect("the record is JSON");
        let mut out = Vec::new();
        let truncated = framer.frame(rec, &mut out);
        check_frame(&out, &input, rec, max, truncated);
    };

    // The record the structured fields describe.
    let event = connection(input.record.clone());
    frame(&match input.kind % 3 {
        0 => OutputRecord::from_alert(&alert(event, input.alert.clone())),
        1 => OutputRecord::from_event(&event),
        _ => {
            let mut doc = serde_json::Map::new();
            doc.insert("@timestamp".into(), event.timestamp.to_rfc3339().into());
            doc.insert("event".into(), serde_json::json!({"kind": "metric"}));
            for (k, v) in &input.metric {
                doc.insert(k.clone(), v.clone().into());
            }
            OutputRecord::from_metric(Value::Object(doc))
        }
    });

    // The JSON line: framed as the record it stands for, and through fit_json alone with
    // any budget, which must give valid JSON within it (or the 30-byte minimal marker when
    // even that does not fit).
    let Ok(json) = std::str::from_utf8(line) else {
        return;
    };
    let Ok(v) = serde_json::from_str::<Value>(json) else {
        return;
    };
    if let Some(rec) = record_from_line(&v) {
        frame(&rec);
    }
    let budget = usize::from(input.budget);
    let out = fit_json(json, budget);
    if json.len() <= budget {
        assert_eq!(out, json);
    } else {
        assert!(
            out.len() <= budget.max(30),
            "{} > {budget}: {out}",
            out.len()
        );
        let v: Value = serde_json::from_str(&out).expect("fit_json gives JSON");
        assert_eq!(v["monitor"]["truncated"], Value::Bool(true), "{out}");
    }
});
