//! The enriched connection record and the alert built on it, and their ECS JSON form.
//!
//! `ConnectionRecord` is what every source (live capture, replay) produces and what rules
//! and detectors read. It is deliberately separate from the raw kernel event
//! (`monitor_common::ConnectEvent`): enrichment turns one into the other.
//!
//! The JSON form is one module, `json`: `json::write` (a writer for these fixed documents,
//! byte for byte what serde_json wrote before, which its tests keep as the oracle) and
//! `json::read` with `json::lines` (replay: bytes in, records out; serde_json is the
//! reference of its differential tests). Strings are escaped as serde_json escapes them (every control character), so
//! attacker-controlled names and command lines cannot break a record or forge another.
//! Bytes that are not UTF-8 never reach a `String` unescaped: `text_from_bytes` writes them
//! as `\xNN`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use thiserror::Error;

mod json;
mod lifecycle;

pub use lifecycle::{LifeAction, Lifecycle, connection_id_text, parse_connection_id};

/// An address as text, as records write it (`Display`'s text, without `core::fmt`).
pub fn ip_text(ip: IpAddr) -> String {
    let mut s = String::with_capacity(15);
    json::write::write_ip(&mut s, ip);
    s
}

pub(crate) use json::lines::{JsonLines, LineError};
pub(crate) use json::read::{RecordDecoder, decode_general};

/// The unspecified IPv4 address, for a destination whose family the kernel did not report.
pub const UNSPECIFIED_V4: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Nanoseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const NANOS_PER_SEC: i64 = 1_000_000_000;

    /// The times a replayed record may carry: 1970-01-01T00:00:00Z up to (not including)
    /// 2201-01-01T00:00:00Z. Wider than any real recording, narrower than what `i64`
    /// nanoseconds hold (1677 to 2262), so no time is ever clamped to fit.
    pub const REPLAY_MIN: Timestamp = Timestamp(0);
    pub const REPLAY_END: Timestamp = Timestamp(7_289_654_400 * Self::NANOS_PER_SEC);

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

/// ECS `user.id` or `group.id`. ECS keeps ids as strings; the kernel gives numbers. A plain
/// decimal `u32` is held as a number (written without allocating, compared as a number by
/// rules); any other text a replayed record carries (`"S-1-5-18"`, `"-1"`, `"007"`) is kept
/// as given, so the id written back out is the one that came in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AccountId {
    Num(u32),
    Text(Box<str>),
}

impl AccountId {
    /// `Num` for the canonical decimal form of a `u32` (no sign, no leading zero), `Text`
    /// for anything else.
    pub fn parse(s: &str) -> AccountId {
        let canonical = !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s.len() == 1 || !s.starts_with('0'));
        match s.parse() {
            Ok(n) if canonical => AccountId::Num(n),
            _ => AccountId::Text(s.into()),
        }
    }

    /// The number, when the id is one (the kernel's uids and gids).
    pub fn as_num(&self) -> Option<u32> {
        match self {
            AccountId::Num(n) => Some(*n),
            AccountId::Text(_) => None,
        }
    }
}

impl From<u32> for AccountId {
    fn from(n: u32) -> Self {
        AccountId::Num(n)
    }
}

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountId::Num(n) => write!(f, "{n}"),
            AccountId::Text(t) => f.write_str(t),
        }
    }
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
    pub user_id: Option<AccountId>,
    pub user_name: Option<String>,
    pub group_id: Option<AccountId>,
    pub container_id: Option<String>,
    /// Hashes of the executable, Sysmon style: `SHA256=<64 lowercase hex digits>` (the Sigma
    /// `Hashes` field); `process.hash.sha256` is the part after `SHA256=`. `None` until the
    /// hash is ready (it is computed off the event path).
    pub hashes: Option<Arc<str>>,
    /// `process.ancestors`: the executables of the parent, its parent, ... up to PID 1, at
    /// most `MAX_ANCESTORS` (the name where a process has no executable, as kernel threads).
    pub ancestors: Vec<String>,
}

/// Ancestors listed in `ProcessInfo::ancestors` at most.
pub const MAX_ANCESTORS: usize = 16;

impl ProcessInfo {
    /// `process.hash.sha256`.
    pub fn sha256(&self) -> Option<&str> {
        self.hashes
            .as_deref()
            .and_then(|h| h.strip_prefix("SHA256="))
    }
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
    /// The destination is port 53 of a nameserver the host is configured to use
    /// (/etc/resolv.conf when the event was captured): a program resolving a name for
    /// itself, rather than DNS used as a channel (`monitor.dns_resolver`).
    pub dns_resolver: bool,
    /// `destination.domain`: the name the process looked up (the name asked, not a CNAME
    /// target) that resolved to the destination, from the DNS answers captured before
    /// (`crate::dns`). On a DNS query record, `None`.
    pub domain: Option<Arc<str>>,
    /// `monitor.domain_source`: which attribution table gave `domain`.
    pub domain_source: Option<DomainSource>,
    /// A DNS query record (`event.action: "dns-query"`): the answer the process received
    /// from `destination` (the server). `None` for connection records.
    pub dns: Option<Arc<DnsQuery>>,
    /// `monitor.connection_id`: joins a TCP connect to its outcome and close records
    /// (`--lifecycle`); `None` when unknown.
    pub connection_id: Option<u64>,
    /// A lifecycle record (outcome, close, accept, listen), or a connect with a known
    /// outcome; `None` for plain connect, send and DNS records.
    pub life: Option<Arc<Lifecycle>>,
}

/// Where `destination.domain` came from (`monitor.domain_source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DomainSource {
    /// An answer this process received.
    Process,
    /// An answer some other process on the host received (a name resolved by one program
    /// and connected to by another, or an answer whose asker was not known).
    Host,
}

impl DomainSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainSource::Process => "process",
            DomainSource::Host => "host",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "process" => Some(DomainSource::Process),
            "host" => Some(DomainSource::Host),
            _ => None,
        }
    }
}

/// One answered DNS query (ECS `dns.*`). Names are lowercase text with every byte outside
/// printable ASCII (and dots or backslashes inside a label) written as `\xNN`
/// (`dns::parse::name_text`); replayed records keep what they say.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsQuery {
    /// `dns.question.name`.
    pub question_name: String,
    /// `dns.question.type` (`A`, `AAAA`, ...).
    pub question_type: String,
    /// `dns.response_code` (`NOERROR`, `NXDOMAIN`, ...).
    pub response_code: String,
    /// `dns.answers`, at most `dns::parse::MAX_ANSWERS`.
    pub answers: Vec<DnsAnswerRecord>,
    /// `dns.resolved_ip`: addresses of the name asked (through its CNAME chain).
    pub resolved_ip: Vec<IpAddr>,
    /// Sysmon's `QueryResults` for rules: each answer's data (addresses, CNAME targets).
    pub results: Vec<String>,
    /// The shortest TTL (s) among the `resolved_ip` answers; 0 when none.
    pub ttl: u32,
}

impl DnsQuery {
    /// Builds the derived fields (`results`, `ttl`) from the answers.
    pub fn new(
        question_name: String,
        question_type: String,
        response_code: String,
        answers: Vec<DnsAnswerRecord>,
        resolved_ip: Vec<IpAddr>,
    ) -> Self {
        let ips: Vec<Option<IpAddr>> = answers.iter().map(|a| a.data.parse().ok()).collect();
        Self::from_parts(
            question_name,
            question_type,
            response_code,
            answers,
            resolved_ip,
            &ips,
        )
    }

    /// As `new`, with each answer's data as an address already known (`None` for other
    /// data), so the parser does not read back the text it just wrote.
    pub fn from_parts(
        question_name: String,
        question_type: String,
        response_code: String,
        answers: Vec<DnsAnswerRecord>,
        resolved_ip: Vec<IpAddr>,
        answer_ips: &[Option<IpAddr>],
    ) -> Self {
        let results = answers
            .iter()
            .filter(|a| !a.data.is_empty())
            .map(|a| a.data.clone())
            .collect();
        let ttl = answers
            .iter()
            .zip(answer_ips)
            .filter(|(_, ip)| ip.is_some_and(|ip| resolved_ip.contains(&ip)))
            .map(|(a, _)| a.ttl)
            .min()
            .unwrap_or(0);
        DnsQuery {
            question_name,
            question_type,
            response_code,
            answers,
            resolved_ip,
            results,
            ttl,
        }
    }
}

/// One record of `dns.answers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsAnswerRecord {
    pub name: String,
    /// `type` (`A`, `AAAA`, `CNAME`, ...).
    pub kind: String,
    pub ttl: u32,
    /// The address or target name; empty for other types.
    pub data: String,
}

impl ConnectionRecord {
    /// ECS `event.action`.
    pub fn action(&self) -> &'static str {
        if self.dns.is_some() {
            "dns-query"
        } else if let Some(action) = self.life.as_ref().and_then(|l| l.action().as_str()) {
            action
        } else {
            self.transport.action()
        }
    }

    /// The lifecycle action (`Connect` for connect, send and DNS records).
    pub fn life_action(&self) -> LifeAction {
        self.life
            .as_ref()
            .map_or(LifeAction::Connect, |l| l.action())
    }

    /// Inbound (`network.direction: ingress`): an accept, a listen, or an accepted
    /// connection's close.
    pub fn ingress(&self) -> bool {
        self.life.as_ref().is_some_and(|l| l.ingress)
    }

    /// ECS `network.type`.
    pub fn network_type(&self) -> &'static str {
        match self.destination.ip {
            IpAddr::V4(_) => "ipv4",
            IpAddr::V6(_) => "ipv6",
        }
    }

    /// Parses one line of `monitor run --events` output. Lines of other kinds (alerts,
    /// metrics) are `Ok(None)` so a whole output stream can be replayed.
    pub fn from_json_line(line: &str) -> Result<Option<Self>, RecordError> {
        RecordDecoder::uncached().decode(line)
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
    #[error(
        "`@timestamp` {0:?} is outside the years replay accepts (1970 to 2200): the record's time cannot be trusted"
    )]
    TimeOutOfRange(String),
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
    /// ECS `event.severity` as the record interface (README) fixes it.
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
    /// From close records (`--lifecycle`), when the key has enough of them: how many
    /// sizes (bytes sent per connection) were known, their median, MAD / median, and
    /// RITA's data-size score. Absent otherwise, so alerts without close records are as
    /// before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sizes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_bytes: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_jitter: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_score: Option<f64>,
}

/// `monitor.correlation.*` of a Sigma correlation rule's alert.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Correlation {
    /// `event_count`, `value_count`, `temporal` or `temporal_ordered`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Ids of the correlated rules, in the order the correlation names them.
    pub rules: Vec<String>,
    /// The group: each `group-by` name (as the rule writes it) and its value.
    pub group: serde_json::Map<String, serde_json::Value>,
    /// Events (event_count), distinct values (value_count) or rules seen (temporal).
    pub count: u64,
    /// value_count: the counted field(s) and their distinct values (at most 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<serde_json::Value>>,
    pub first_seen: String,
    pub last_seen: String,
    pub timespan: String,
}

/// An alert: the triggering connection plus what fired and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// Event time of the alert (the trigger's, or the window end for a group summary).
    pub timestamp: Timestamp,
    pub event: ConnectionRecord,
    pub rule: Arc<RuleMeta>,
    /// Shared with the rule: an alert copies no strings for them.
    pub techniques: Arc<[String]>,
    pub detector: Detector,
    pub level: Level,
    pub risk_score: Option<u32>,
    pub labels: BTreeMap<String, String>,
    pub aggregate: Option<Aggregate>,
    pub beacon: Option<BeaconStats>,
    /// Boxed: rare, and alerts are moved around by value.
    pub correlation: Option<Box<Correlation>>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> ConnectionRecord {
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
                user_id: Some(0.into()),
                user_name: Some("root".into()),
                group_id: Some(0.into()),
                container_id: None,
                hashes: None,
                ancestors: Vec::new(),
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
            dns_resolver: false,
            domain: None,
            domain_source: None,
            dns: None,
            connection_id: None,
            life: None,
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
