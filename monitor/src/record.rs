//! The enriched connection record and the alert built on it, and their ECS JSON form.
//!
//! `ConnectionRecord` is what every source (live capture, replay) produces and what rules
//! and detectors read. It is deliberately separate from the raw kernel event
//! (`monitor_common::ConnectEvent`): enrichment turns one into the other.
//!
//! JSON is written with serde_json, whose string escaping covers every control character,
//! so attacker-controlled names and command lines cannot break a record or forge another.
//! Bytes that are not UTF-8 never reach a `String` unescaped: `text_from_bytes` writes them
//! as `\xNN`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Nanoseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const NANOS_PER_SEC: i64 = 1_000_000_000;

    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_nanos() as i64)
    }

    pub fn from_secs_f64(s: f64) -> Self {
        Timestamp((s * Self::NANOS_PER_SEC as f64) as i64)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / Self::NANOS_PER_SEC as f64
    }

    /// RFC 3339, UTC, with as many fractional digits as needed (at most 9).
    pub fn to_rfc3339(self) -> String {
        DateTime::<Utc>::from_timestamp_nanos(self.0).to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    pub fn parse_rfc3339(s: &str) -> Result<Self, chrono::ParseError> {
        let dt = DateTime::parse_from_rfc3339(s)?;
        Ok(Timestamp(dt.timestamp_nanos_opt().unwrap_or(i64::MAX)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
    /// ECS `event.action`.
    pub fn action(self) -> &'static str {
        match self {
            Transport::Tcp => "connect",
            Transport::Udp => "send",
        }
    }
}

/// Writes an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it carries,
/// so one address has one spelling in records, lists and CIDR checks.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Converts kernel or /proc bytes to text without losing or smuggling anything: valid UTF-8
/// is kept, every invalid byte becomes the four characters `\xNN`, and a literal backslash
/// followed by `x` stays as it is (the JSON writer escapes the backslash itself).
pub fn text_from_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// The parent of the process that made the connection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParentInfo {
    pub pid: Option<u32>,
    pub name: Option<String>,
    pub executable: Option<String>,
    pub command_line: Option<String>,
}

/// The process that made the connection, as far as it could be learned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessInfo {
    pub pid: u32,
    /// Thread id of the connecting thread (live capture only).
    pub tid: Option<u32>,
    pub name: Option<String>,
    pub executable: Option<String>,
    pub command_line: Option<String>,
    pub args: Vec<String>,
    pub parent: ParentInfo,
    pub user_id: Option<u32>,
    pub user_name: Option<String>,
    pub group_id: Option<u32>,
    pub container_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

/// One outbound TCP connect or UDP send, enriched.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionRecord {
    pub timestamp: Timestamp,
    pub host_name: Arc<str>,
    /// Shared: consecutive events of one process reuse the same enrichment.
    pub process: Arc<ProcessInfo>,
    /// Source address and port when the hook knows them.
    pub source: Option<Endpoint>,
    pub destination: Endpoint,
    pub transport: Transport,
    /// Some field could not be learned (process gone, /proc unreadable, ...).
    pub partial: bool,
    /// UDP sends to the same destination suppressed in the kernel before this one.
    pub suppressed: u32,
    /// Probe backend that saw the event (`fentry`, `kprobe`, `tracepoint`, `cgroup`).
    pub probe: Option<&'static str>,
}

impl ConnectionRecord {
    /// ECS `network.type`.
    pub fn network_type(&self) -> &'static str {
        match self.destination.ip {
            IpAddr::V4(_) => "ipv4",
            IpAddr::V6(_) => "ipv6",
        }
    }

    /// Writes the record as one JSON line (with the trailing newline) into `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let doc = EcsDoc::event(self, "event");
        // Serializing plain structs of strings and numbers into a Vec cannot fail.
        serde_json::to_writer(&mut *out, &doc).expect("serialize record");
        out.push(b'\n');
    }

    pub fn to_json_line(&self) -> String {
        let mut v = Vec::with_capacity(512);
        self.write_json(&mut v);
        String::from_utf8(v).expect("serde_json writes UTF-8")
    }

    /// Parses one line of `monitor run --events` output. Lines of other kinds (alerts,
    /// metrics) are `Ok(None)` so a whole output stream can be replayed.
    pub fn from_json_line(line: &str) -> Result<Option<Self>, RecordError> {
        let doc: InDoc =
            serde_json::from_str(line).map_err(|e| RecordError::Json(e.to_string()))?;
        let kind = doc
            .event
            .as_ref()
            .and_then(|e| e.kind.as_deref())
            .unwrap_or("event");
        if kind != "event" {
            return Ok(None);
        }
        let dest = doc.destination.ok_or(RecordError::Missing("destination"))?;
        let dip = dest.ip.ok_or(RecordError::Missing("destination.ip"))?;
        let dport = dest.port.ok_or(RecordError::Missing("destination.port"))?;
        let dip: IpAddr = dip
            .parse()
            .map_err(|_| RecordError::Invalid("destination.ip", dip.clone()))?;
        let ts = doc.timestamp.ok_or(RecordError::Missing("@timestamp"))?;
        let timestamp = Timestamp::parse_rfc3339(&ts)
            .map_err(|_| RecordError::Invalid("@timestamp", ts.clone()))?;
        let transport = match doc.network.as_ref().and_then(|n| n.transport.as_deref()) {
            Some(t) if t.eq_ignore_ascii_case("udp") => Transport::Udp,
            Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
            Some(t) => return Err(RecordError::Invalid("network.transport", t.to_string())),
            None => Transport::Tcp,
        };
        let source = match doc.source {
            Some(InEndpoint { ip: Some(ip), port }) => Some(Endpoint {
                ip: normalize_ip(
                    ip.parse()
                        .map_err(|_| RecordError::Invalid("source.ip", ip.clone()))?,
                ),
                port: port.unwrap_or(0),
            }),
            _ => None,
        };
        let p = doc.process.unwrap_or_default();
        let parent = p.parent.unwrap_or_default();
        let user = doc.user.unwrap_or_default();
        let group = doc.group.unwrap_or_default();
        let process = ProcessInfo {
            pid: p.pid.unwrap_or(0),
            tid: p.thread.and_then(|t| t.id),
            name: p.name,
            executable: p.executable,
            command_line: p.command_line,
            args: p.args.unwrap_or_default(),
            parent: ParentInfo {
                pid: parent.pid,
                name: parent.name,
                executable: parent.executable,
                command_line: parent.command_line,
            },
            user_id: user.id.and_then(|s| s.parse().ok()),
            user_name: user.name,
            group_id: group.id.and_then(|s| s.parse().ok()),
            container_id: doc.container.and_then(|c| c.id),
        };
        let monitor = doc.monitor.unwrap_or_default();
        Ok(Some(ConnectionRecord {
            timestamp,
            host_name: doc.host.and_then(|h| h.hostname).unwrap_or_default().into(),
            process: Arc::new(process),
            source,
            destination: Endpoint {
                ip: normalize_ip(dip),
                port: dport,
            },
            transport,
            partial: monitor.enrichment.as_deref() == Some("partial"),
            suppressed: monitor.suppressed.unwrap_or(0),
            probe: None,
        }))
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum RecordError {
    #[error("not a JSON object: {0}")]
    Json(String),
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("invalid `{0}`: {1:?}")]
    Invalid(&'static str, String),
}

/// Sigma `level`, ECS `event.severity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
    /// ECS `event.severity` as ../shared/INTERFACE.md fixes it.
    pub fn severity(self) -> u32 {
        match self {
            Level::Informational => 0,
            Level::Low => 21,
            Level::Medium => 47,
            Level::High => 73,
            Level::Critical => 99,
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "informational" => Level::Informational,
            "low" => Level::Low,
            "medium" => Level::Medium,
            "high" => Level::High,
            "critical" => Level::Critical,
            _ => return None,
        })
    }
}

/// Which detector raised an alert (`monitor.detector`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Detector {
    Rule,
    Beacon,
}

impl Detector {
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::Rule => "rule",
            Detector::Beacon => "beacon",
        }
    }
}

/// The rule (or detector) an alert comes from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleMeta {
    pub id: String,
    pub name: String,
    pub description: String,
    pub reference: Vec<String>,
    pub ruleset: String,
}

/// `monitor.aggregate.*` of a grouped alert's window summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Aggregate {
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub destination_ips: Vec<String>,
    pub destination_ports: Vec<u16>,
}

/// `monitor.beacon.*`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BeaconStats {
    pub connections: u64,
    pub median_interval_s: f64,
    pub mean_interval_s: f64,
    pub jitter: f64,
    pub score: f64,
}

/// An alert: the triggering connection plus what fired and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// Event time of the alert (the trigger's, or the window end for a group summary).
    pub timestamp: Timestamp,
    pub event: ConnectionRecord,
    pub rule: Arc<RuleMeta>,
    pub techniques: Vec<String>,
    pub detector: Detector,
    pub level: Level,
    pub risk_score: Option<u32>,
    pub labels: BTreeMap<String, String>,
    pub aggregate: Option<Aggregate>,
    pub beacon: Option<BeaconStats>,
}

impl Alert {
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut doc = EcsDoc::event(&self.event, "alert");
        doc.timestamp = self.timestamp.to_rfc3339();
        doc.event.severity = Some(self.level.severity());
        doc.event.risk_score = self.risk_score;
        doc.rule = Some(RuleOut {
            id: &self.rule.id,
            name: &self.rule.name,
            description: &self.rule.description,
            reference: &self.rule.reference,
            ruleset: &self.rule.ruleset,
        });
        doc.threat = Some(ThreatOut {
            framework: "MITRE ATT&CK",
            technique: TechniqueOut {
                id: &self.techniques,
            },
        });
        if !self.labels.is_empty() {
            doc.labels = Some(&self.labels);
        }
        doc.monitor.detector = Some(self.detector.as_str());
        doc.monitor.level = Some(self.level.as_str());
        doc.monitor.aggregate = self.aggregate.as_ref();
        doc.monitor.beacon = self.beacon.as_ref();
        serde_json::to_writer(&mut *out, &doc).expect("serialize alert");
        out.push(b'\n');
    }

    pub fn to_json_line(&self) -> String {
        let mut v = Vec::with_capacity(1024);
        self.write_json(&mut v);
        String::from_utf8(v).expect("serde_json writes UTF-8")
    }
}

// ---- ECS output documents ------------------------------------------------------------

#[derive(Serialize)]
struct EcsDoc<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    event: EventOut,
    host: HostOut<'a>,
    process: ProcessOut<'a>,
    user: UserOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<IdOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<EndpointOut>,
    destination: EndpointOut,
    network: NetworkOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<ContainerOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<RuleOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threat: Option<ThreatOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<&'a BTreeMap<String, String>>,
    monitor: MonitorOut<'a>,
}

impl<'a> EcsDoc<'a> {
    fn event(r: &'a ConnectionRecord, kind: &'static str) -> Self {
        let p = &*r.process;
        EcsDoc {
            timestamp: r.timestamp.to_rfc3339(),
            event: EventOut {
                kind,
                category: ["network"],
                r#type: ["connection", "start"],
                action: r.transport.action(),
                severity: None,
                risk_score: None,
            },
            host: HostOut {
                hostname: &r.host_name,
            },
            process: ProcessOut {
                pid: p.pid,
                thread: p.tid.map(|id| ThreadOut { id }),
                name: p.name.as_deref(),
                executable: p.executable.as_deref(),
                command_line: p.command_line.as_deref(),
                args: if p.args.is_empty() {
                    None
                } else {
                    Some(&p.args)
                },
                parent: ParentOut {
                    pid: p.parent.pid,
                    name: p.parent.name.as_deref(),
                    executable: p.parent.executable.as_deref(),
                    command_line: p.parent.command_line.as_deref(),
                },
            },
            user: UserOut {
                id: p.user_id.map(|u| u.to_string()),
                name: p.user_name.as_deref(),
            },
            group: p.group_id.map(|g| IdOut { id: g.to_string() }),
            source: r.source.map(|s| EndpointOut {
                ip: s.ip.to_string(),
                port: if s.port == 0 { None } else { Some(s.port) },
            }),
            destination: EndpointOut {
                ip: r.destination.ip.to_string(),
                port: Some(r.destination.port),
            },
            network: NetworkOut {
                transport: r.transport.as_str(),
                r#type: r.network_type(),
                direction: "egress",
            },
            container: p.container_id.as_deref().map(|id| ContainerOut { id }),
            rule: None,
            threat: None,
            labels: None,
            monitor: MonitorOut {
                enrichment: if r.partial { "partial" } else { "full" },
                suppressed: if r.suppressed == 0 {
                    None
                } else {
                    Some(r.suppressed)
                },
                probe: r.probe,
                detector: None,
                level: None,
                aggregate: None,
                beacon: None,
            },
        }
    }
}

#[derive(Serialize)]
struct EventOut {
    kind: &'static str,
    category: [&'static str; 1],
    r#type: [&'static str; 2],
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    severity: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    risk_score: Option<u32>,
}

#[derive(Serialize)]
struct HostOut<'a> {
    hostname: &'a str,
}

#[derive(Serialize)]
struct ThreadOut {
    id: u32,
}

#[derive(Serialize)]
struct ProcessOut<'a> {
    pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    thread: Option<ThreadOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    executable: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_line: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<&'a Vec<String>>,
    parent: ParentOut<'a>,
}

#[derive(Serialize)]
struct ParentOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    executable: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_line: Option<&'a str>,
}

#[derive(Serialize)]
struct UserOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

#[derive(Serialize)]
struct IdOut {
    id: String,
}

#[derive(Serialize)]
struct EndpointOut {
    ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
}

#[derive(Serialize)]
struct NetworkOut {
    transport: &'static str,
    r#type: &'static str,
    direction: &'static str,
}

#[derive(Serialize)]
struct ContainerOut<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct RuleOut<'a> {
    id: &'a str,
    name: &'a str,
    description: &'a str,
    reference: &'a [String],
    ruleset: &'a str,
}

#[derive(Serialize)]
struct ThreatOut<'a> {
    framework: &'static str,
    technique: TechniqueOut<'a>,
}

#[derive(Serialize)]
struct TechniqueOut<'a> {
    id: &'a [String],
}

#[derive(Serialize)]
struct MonitorOut<'a> {
    enrichment: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    suppressed: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detector: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    level: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aggregate: Option<&'a Aggregate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    beacon: Option<&'a BeaconStats>,
}

// ---- ECS input documents (replay) ----------------------------------------------------
// Everything optional: which fields are required is decided in `from_json_line`, so the
// error can name the missing one.

#[derive(Deserialize, Default)]
struct InDoc {
    #[serde(rename = "@timestamp")]
    timestamp: Option<String>,
    event: Option<InEvent>,
    host: Option<InHost>,
    process: Option<InProcess>,
    user: Option<InId>,
    group: Option<InId>,
    source: Option<InEndpoint>,
    destination: Option<InEndpoint>,
    network: Option<InNetwork>,
    container: Option<InContainer>,
    monitor: Option<InMonitor>,
}

#[derive(Deserialize, Default)]
struct InEvent {
    kind: Option<String>,
}

#[derive(Deserialize, Default)]
struct InHost {
    hostname: Option<String>,
}

#[derive(Deserialize, Default)]
struct InThread {
    id: Option<u32>,
}

#[derive(Deserialize, Default)]
struct InProcess {
    pid: Option<u32>,
    thread: Option<InThread>,
    name: Option<String>,
    executable: Option<String>,
    command_line: Option<String>,
    args: Option<Vec<String>>,
    parent: Option<InParent>,
}

#[derive(Deserialize, Default)]
struct InParent {
    pid: Option<u32>,
    name: Option<String>,
    executable: Option<String>,
    command_line: Option<String>,
}

#[derive(Deserialize, Default)]
struct InId {
    #[serde(default, deserialize_with = "string_or_number")]
    id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize, Default)]
struct InEndpoint {
    ip: Option<String>,
    port: Option<u16>,
}

#[derive(Deserialize, Default)]
struct InNetwork {
    transport: Option<String>,
}

#[derive(Deserialize, Default)]
struct InContainer {
    id: Option<String>,
}

#[derive(Deserialize, Default)]
struct InMonitor {
    enrichment: Option<String>,
    suppressed: Option<u32>,
}

/// ECS keeps ids as strings; accept numbers too, as hand-written fixtures use them.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<serde_json::Value> = Option::deserialize(d)?;
    Ok(match v {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(other) => Some(other.to_string()),
    })
}

/// The unspecified IPv4 address, for a destination whose family the kernel did not report.
pub const UNSPECIFIED_V4: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ConnectionRecord {
        ConnectionRecord {
            timestamp: Timestamp::parse_rfc3339("2026-11-23T10:00:00.5Z").unwrap(),
            host_name: "h1".into(),
            process: Arc::new(ProcessInfo {
                pid: 42,
                tid: Some(43),
                name: Some("curl".into()),
                executable: Some("/usr/bin/curl".into()),
                command_line: Some("curl -s http://203.0.113.7:8088/\n{\"forged\":1}".into()),
                args: vec!["curl".into(), "-s".into()],
                parent: ParentInfo {
                    pid: Some(1),
                    name: Some("bash".into()),
                    executable: Some("/usr/bin/bash".into()),
                    command_line: None,
                },
                user_id: Some(0),
                user_name: Some("root".into()),
                group_id: Some(0),
                container_id: None,
            }),
            source: None,
            destination: Endpoint {
                ip: "203.0.113.7".parse().unwrap(),
                port: 8088,
            },
            transport: Transport::Tcp,
            partial: false,
            suppressed: 0,
            probe: None,
        }
    }

    #[test]
    fn json_round_trip_keeps_fields_and_one_line() {
        let r = sample();
        let line = r.to_json_line();
        assert_eq!(line.matches('\n').count(), 1, "exactly one line: {line}");
        let back = ConnectionRecord::from_json_line(line.trim_end())
            .unwrap()
            .unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn mapped_ipv6_is_written_as_ipv4() {
        let ip: IpAddr = "::ffff:203.0.113.9".parse().unwrap();
        assert_eq!(normalize_ip(ip).to_string(), "203.0.113.9");
        let ip6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(normalize_ip(ip6), ip6);
    }

    #[test]
    fn invalid_utf8_becomes_escaped_text() {
        assert_eq!(text_from_bytes(b"ab\xffc"), "ab\\xffc");
        assert_eq!(text_from_bytes("é".as_bytes()), "é");
    }

    #[test]
    fn replay_errors_name_the_field() {
        let e = ConnectionRecord::from_json_line(
            r#"{"@timestamp":"2026-01-01T00:00:00Z","destination":{"ip":"1.2.3.4"}}"#,
        )
        .unwrap_err();
        assert_eq!(e, RecordError::Missing("destination.port"));
        assert!(matches!(
            ConnectionRecord::from_json_line("not json"),
            Err(RecordError::Json(_))
        ));
        // Other record kinds are skipped, not errors.
        assert_eq!(
            ConnectionRecord::from_json_line(r#"{"event":{"kind":"metric"}}"#).unwrap(),
            None
        );
    }
}
