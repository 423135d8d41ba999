//! One record on its way to the outputs: its JSON line plus what syslog needs for the
//! header and structured data.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;

use super::event_id::next_event_id;
use crate::record::{Alert, ConnectionRecord, Level, ProcessInfo, RuleMeta, Timestamp, Transport};

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
    /// One JSON object, no trailing newline. Every control character is escaped, so it
    /// holds no byte below 0x20.
    json: String,
    level: Option<Level>,
    /// The alert's rule, shared with the rule set rather than copied.
    rule: Option<Arc<RuleMeta>>,
    /// The alert's techniques, shared with the rule.
    techniques: Option<Arc<[String]>>,
    /// The connecting process (syslog's structured data repeats pid, name, executable),
    /// shared with the record rather than copied.
    process: Option<Arc<ProcessInfo>>,
    destination: Option<DestinationSummary>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct DestinationSummary {
    pub ip: IpAddr,
    pub port: u16,
    pub transport: Transport,
}

/// Longest JSON text the per-thread scratch buffer keeps its memory for; a record with a
/// huge command line does not pin that much memory for the thread's lifetime.
const SCRATCH_KEEP: usize = 64 * 1024;

/// The JSON that `write` produces, in a `String` of exactly its size: it is written into a
/// reused per-thread buffer first, so there is one allocation and no regrowth per record.
fn json_of(write: impl FnOnce(&mut String)) -> String {
    thread_local! {
        static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
    }
    SCRATCH.with_borrow_mut(|buf| {
        buf.clear();
        write(buf);
        let json = buf.as_str().to_owned();
        if buf.capacity() > SCRATCH_KEEP {
            *buf = String::new();
        }
        json
    })
}

fn destination(r: &ConnectionRecord) -> DestinationSummary {
    DestinationSummary {
        ip: r.destination.ip,
        port: r.destination.port,
        transport: r.transport,
    }
}

impl OutputRecord {
    /// A connection event (`event.kind: event`).
    pub fn from_event(r: &ConnectionRecord) -> Self {
        OutputRecord(Arc::new(Inner {
            kind: RecordKind::Event,
            timestamp: r.timestamp,
            json: json_of(|buf| r.write_json_object_with_id(buf, next_event_id().as_str())),
            level: None,
            rule: None,
            techniques: None,
            process: Some(r.process.clone()),
            destination: Some(destination(r)),
        }))
    }

    /// An alert (`event.kind: alert`).
    pub fn from_alert(a: &Alert) -> Self {
        OutputRecord(Arc::new(Inner {
            kind: RecordKind::Alert,
            timestamp: a.timestamp,
            json: json_of(|buf| a.write_json_object_with_id(buf, next_event_id().as_str())),
            level: Some(a.level),
            rule: Some(a.rule.clone()),
            techniques: Some(a.techniques.clone()),
            process: Some(a.event.process.clone()),
            destination: Some(destination(&a.event)),
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
        let mut doc = doc;
        if let Some(event) = doc.get_mut("event").and_then(|e| e.as_object_mut()) {
            event.insert("id".into(), next_event_id().as_str().into());
        } else if let Some(obj) = doc.as_object_mut() {
            obj.insert(
                "event".into(),
                serde_json::json!({ "id": next_event_id().as_str() }),
            );
        }
        // A Value has string keys only, so serializing it cannot fail.
        let json = serde_json::to_string(&doc).expect("serialize metric");
        OutputRecord(Arc::new(Inner {
            kind: RecordKind::Metric,
            timestamp,
            json,
            level: None,
            rule: None,
            techniques: None,
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
        self.0.rule.as_deref().map(|r| r.id.as_str())
    }

    pub(crate) fn techniques(&self) -> &[String] {
        self.0.techniques.as_deref().unwrap_or(&[])
    }

    pub(crate) fn process(&self) -> Option<&ProcessInfo> {
        self.0.process.as_deref()
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
