//! One record on its way to the outputs: its JSON line plus what syslog needs for the
//! header and structured data.

use std::net::IpAddr;
use std::sync::Arc;

use crate::record::{Alert, ConnectionRecord, Level, Timestamp, Transport};

/// ECS `event.kind` of a record; it is also the RFC 5424 MSGID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    Event,
    Alert,
    Metric,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Event => "event",
            RecordKind::Alert => "alert",
            RecordKind::Metric => "metric",
        }
    }
}

/// A record ready for every output. Cloning is cheap (shared), as each output gets one.
#[derive(Clone, Debug)]
pub struct OutputRecord(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    kind: RecordKind,
    timestamp: Timestamp,
    /// One JSON object, no trailing newline. serde_json escapes every control character,
    /// so it holds no byte below 0x20.
    json: String,
    level: Option<Level>,
    rule_id: Option<String>,
    techniques: Vec<String>,
    process: Option<ProcessSummary>,
    destination: Option<DestinationSummary>,
}

/// The process fields syslog's structured data repeats.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ProcessSummary {
    pub pid: u32,
    pub name: Option<String>,
    pub executable: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct DestinationSummary {
    pub ip: IpAddr,
    pub port: u16,
    pub transport: Transport,
}

fn json_without_newline(mut v: Vec<u8>) -> String {
    if v.last() == Some(&b'\n') {
        v.pop();
    }
    String::from_utf8(v).expect("serde_json writes UTF-8")
}

fn summaries(r: &ConnectionRecord) -> (ProcessSummary, DestinationSummary) {
    (
        ProcessSummary {
            pid: r.process.pid,
            name: r.process.name.clone(),
            executable: r.process.executable.clone(),
        },
        DestinationSummary {
            ip: r.destination.ip,
            port: r.destination.port,
            transport: r.transport,
        },
    )
}

impl OutputRecord {
    /// A connection event (`event.kind: event`).
    pub fn from_event(r: &ConnectionRecord) -> Self {
        let mut buf = Vec::with_capacity(768);
        r.write_json(&mut buf);
        let (process, destination) = summaries(r);
        OutputRecord(Arc::new(Inner {
            kind: RecordKind::Event,
            timestamp: r.timestamp,
            json: json_without_newline(buf),
            level: None,
            rule_id: None,
            techniques: Vec::new(),
            process: Some(process),
            destination: Some(destination),
        }))
    }

    /// An alert (`event.kind: alert`).
    pub fn from_alert(a: &Alert) -> Self {
        let mut buf = Vec::with_capacity(1024);
        a.write_json(&mut buf);
        let (process, destination) = summaries(&a.event);
        OutputRecord(Arc::new(Inner {
            kind: RecordKind::Alert,
            timestamp: a.timestamp,
            json: json_without_newline(buf),
            level: Some(a.level),
            rule_id: Some(a.rule.id.clone()),
            techniques: a.techniques.clone(),
            process: Some(process),
            destination: Some(destination),
        }))
    }

    /// A metric record: `doc` is the whole JSON object (`@timestamp`, `event.kind: metric`,
    /// counters). Its `@timestamp` dates the syslog header; without one, now.
    pub fn from_metric(doc: serde_json::Value) -> Self {
        let timestamp = doc
            .get("@timestamp")
            .and_then(|t| t.as_str())
            .and_then(|t| Timestamp::parse_rfc3339(t).ok())
            .unwrap_or_else(Timestamp::now);
        // A Value has string keys only, so serializing it cannot fail.
        let json = serde_json::to_string(&doc).expect("serialize metric");
        OutputRecord(Arc::new(Inner {
            kind: RecordKind::Metric,
            timestamp,
            json,
            level: None,
            rule_id: None,
            techniques: Vec::new(),
            process: None,
            destination: None,
        }))
    }

    pub fn kind(&self) -> RecordKind {
        self.0.kind
    }

    pub fn timestamp(&self) -> Timestamp {
        self.0.timestamp
    }

    /// The record as one line of JSON, without the trailing newline.
    pub fn json(&self) -> &str {
        &self.0.json
    }

    /// The alert level, for alerts.
    pub fn level(&self) -> Option<Level> {
        self.0.level
    }

    pub(crate) fn rule_id(&self) -> Option<&str> {
        self.0.rule_id.as_deref()
    }

    pub(crate) fn techniques(&self) -> &[String] {
        &self.0.techniques
    }

    pub(crate) fn process(&self) -> Option<&ProcessSummary> {
        self.0.process.as_ref()
    }

    pub(crate) fn destination(&self) -> Option<&DestinationSummary> {
        self.0.destination.as_ref()
    }

    /// Syslog severity (RFC 5424 table 2): alerts by level (critical 2 crit, high 3 err,
    /// medium 4 warning, low 5 notice, informational 6 info); events and metrics 6 info.
    pub fn syslog_severity(&self) -> u8 {
        match self.0.level {
            Some(Level::Critical) => 2,
            Some(Level::High) => 3,
            Some(Level::Medium) => 4,
            Some(Level::Low) => 5,
            Some(Level::Informational) | None => 6,
        }
    }
}
