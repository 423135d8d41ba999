//! The fields a rule can test, resolved once at load time to an enum so evaluation reads
//! the typed record directly (no lookup by name, no JSON).

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::record::{AccountId, ConnectionRecord, normalize_ip};

/// A record field as rules see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Image,
    ProcessName,
    CommandLine,
    ProcessArgs,
    ProcessId,
    ParentImage,
    ParentName,
    ParentCommandLine,
    ParentProcessId,
    User,
    UserId,
    GroupId,
    SourceIp,
    SourcePort,
    DestinationIp,
    DestinationPort,
    DestinationHostname,
    Protocol,
    NetworkType,
    Initiated,
    HostName,
    DestinationIsResolver,
    DestinationIsIpv6,
    SourceIsIpv6,
    SourceHostname,
    ContainerId,
    /// Sysmon's `Hashes` (`SHA256=<hex>`).
    Hashes,
    /// `process.hash.sha256` (hex).
    ProcessHash,
    /// DNS query records (`logsource.category: dns_query`): `dns.question.name` (Sysmon
    /// `QueryName`), `dns.question.type`, `dns.response_code` (`QueryStatus`, the RFC
    /// mnemonic such as `NOERROR` or `NXDOMAIN`), and each answer's data (`QueryResults`:
    /// addresses and CNAME targets, a list).
    QueryName,
    QueryType,
    QueryStatus,
    QueryResults,
    /// `event.action`: `connect`, `send`, `dns-query`, `accept`, `listen` (the records
    /// rules see; see `LifeAction::for_rules`).
    EventAction,
    /// `process.ancestors`: executables of the parent, grandparent, ... (a list).
    Ancestors,
}

/// How a field's value is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    TextList,
    Number,
    Ip,
    Bool,
}

/// Every accepted name: Sigma (Sysmon-style) names first, then ECS names. One field may
/// have several names; `Field::canonical` is the first.
pub const FIELD_NAMES: &[(&str, Field)] = &[
    ("Image", Field::Image),
    ("CommandLine", Field::CommandLine),
    ("ProcessArgs", Field::ProcessArgs),
    ("ProcessId", Field::ProcessId),
    ("ParentImage", Field::ParentImage),
    ("ParentCommandLine", Field::ParentCommandLine),
    ("ParentProcessId", Field::ParentProcessId),
    ("User", Field::User),
    ("SourceIp", Field::SourceIp),
    ("SourcePort", Field::SourcePort),
    ("DestinationIp", Field::DestinationIp),
    ("DestinationPort", Field::DestinationPort),
    ("DestinationHostname", Field::DestinationHostname),
    ("Protocol", Field::Protocol),
    ("Initiated", Field::Initiated),
    ("DestinationIsResolver", Field::DestinationIsResolver),
    ("Hashes", Field::Hashes),
    ("AncestorImages", Field::Ancestors),
    ("DestinationIsIpv6", Field::DestinationIsIpv6),
    ("SourceIsIpv6", Field::SourceIsIpv6),
    ("SourceHostname", Field::SourceHostname),
    ("Computer", Field::HostName),
    ("QueryName", Field::QueryName),
    ("QueryStatus", Field::QueryStatus),
    ("QueryResults", Field::QueryResults),
    ("process.executable", Field::Image),
    ("process.name", Field::ProcessName),
    ("process.command_line", Field::CommandLine),
    ("process.args", Field::ProcessArgs),
    ("process.pid", Field::ProcessId),
    ("process.parent.executable", Field::ParentImage),
    ("process.parent.name", Field::ParentName),
    ("process.parent.command_line", Field::ParentCommandLine),
    ("process.parent.pid", Field::ParentProcessId),
    ("user.name", Field::User),
    ("user.id", Field::UserId),
    ("group.id", Field::GroupId),
    ("source.ip", Field::SourceIp),
    ("source.port", Field::SourcePort),
    ("destination.ip", Field::DestinationIp),
    ("destination.port", Field::DestinationPort),
    ("destination.domain", Field::DestinationHostname),
    ("source.domain", Field::SourceHostname),
    ("network.transport", Field::Protocol),
    ("network.type", Field::NetworkType),
    ("host.hostname", Field::HostName),
    ("container.id", Field::ContainerId),
    ("monitor.dns_resolver", Field::DestinationIsResolver),
    ("process.hash.sha256", Field::ProcessHash),
    ("process.ancestors", Field::Ancestors),
    ("dns.question.name", Field::QueryName),
    ("dns.question.type", Field::QueryType),
    ("dns.response_code", Field::QueryStatus),
    ("dns.answers.data", Field::QueryResults),
    ("event.action", Field::EventAction),
];

impl Field {
    pub fn from_name(name: &str) -> Option<Field> {
        FIELD_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, f)| f)
    }

    /// A known name differing only in case, for "did you mean" hints.
    pub fn suggest(name: &str) -> Option<&'static str> {
        FIELD_NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(n, _)| n)
    }

    pub fn kind(self) -> FieldKind {
        use Field::*;
        match self {
            ProcessArgs | Ancestors | QueryResults => FieldKind::TextList,
            ProcessId | ParentProcessId | UserId | GroupId | SourcePort | DestinationPort => {
                FieldKind::Number
            }
            SourceIp | DestinationIp => FieldKind::Ip,
            Initiated | DestinationIsResolver | DestinationIsIpv6 | SourceIsIpv6 => FieldKind::Bool,
            _ => FieldKind::Text,
        }
    }

    /// The ECS name, used in messages.
    pub fn ecs_name(self) -> &'static str {
        use Field::*;
        match self {
            Image => "process.executable",
            ProcessName => "process.name",
            CommandLine => "process.command_line",
            ProcessArgs => "process.args",
            ProcessId => "process.pid",
            ParentImage => "process.parent.executable",
            ParentName => "process.parent.name",
            ParentCommandLine => "process.parent.command_line",
            ParentProcessId => "process.parent.pid",
            User => "user.name",
            UserId => "user.id",
            GroupId => "group.id",
            SourceIp => "source.ip",
            SourcePort => "source.port",
            DestinationIp => "destination.ip",
            DestinationPort => "destination.port",
            DestinationHostname => "destination.domain",
            Protocol => "network.transport",
            NetworkType => "network.type",
            Initiated => "(Initiated)",
            HostName => "host.hostname",
            DestinationIsResolver => "monitor.dns_resolver",
            DestinationIsIpv6 => "network.type",
            SourceIsIpv6 => "(SourceIsIpv6)",
            SourceHostname => "source.domain",
            ContainerId => "container.id",
            Hashes => "(Hashes)",
            ProcessHash => "process.hash.sha256",
            Ancestors => "process.ancestors",
            QueryName => "dns.question.name",
            QueryType => "dns.question.type",
            QueryStatus => "dns.response_code",
            QueryResults => "dns.answers.data",
            EventAction => "event.action",
        }
    }

    /// Fields read from `ConnectionRecord::process`: the same for every event that shares
    /// one `Arc<ProcessInfo>` (`FieldValue::of` reads nothing else for them).
    pub fn is_process(self) -> bool {
        use Field::*;
        matches!(
            self,
            Image
                | ProcessName
                | CommandLine
                | ProcessArgs
                | ProcessId
                | ParentImage
                | ParentName
                | ParentCommandLine
                | ParentProcessId
                | User
                | UserId
                | GroupId
                | ContainerId
                | Hashes
                | ProcessHash
                | Ancestors
        )
    }

    /// Fields the monitor never fills today: rules on them load, never match, and
    /// `rules check` warns.
    pub fn never_filled(self) -> bool {
        matches!(self, Field::SourceHostname)
    }

    pub const COUNT: usize = Field::Ancestors as usize + 1;
}

/// One field's value in one record, borrowed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldValue<'a> {
    Missing,
    Text(&'a str),
    List(&'a [String]),
    Number(u64),
    Ip(IpAddr),
    Bool(bool),
}

impl<'a> FieldValue<'a> {
    #[inline]
    pub fn of(rec: &'a ConnectionRecord, field: Field) -> FieldValue<'a> {
        let p = &*rec.process;
        let text = |o: &'a Option<String>| match o {
            Some(s) => FieldValue::Text(s.as_str()),
            None => FieldValue::Missing,
        };
        let num = |o: Option<u32>| match o {
            Some(n) => FieldValue::Number(n as u64),
            None => FieldValue::Missing,
        };
        // An id that is not a number (a replayed `"S-1-5-18"`) is matched as text.
        let account_id = |o: &'a Option<AccountId>| match o {
            Some(AccountId::Num(n)) => FieldValue::Number(u64::from(*n)),
            Some(AccountId::Text(t)) => FieldValue::Text(t),
            None => FieldValue::Missing,
        };
        match field {
            Field::Image => text(&p.executable),
            Field::ProcessName => text(&p.name),
            Field::CommandLine => text(&p.command_line),
            Field::ProcessArgs => {
                if p.args.is_empty() {
                    FieldValue::Missing
                } else {
                    FieldValue::List(&p.args)
                }
            }
            // pid 0 means "not known" in a replayed record without process.pid.
            Field::ProcessId => num(Some(p.pid).filter(|&x| x != 0)),
            Field::ParentImage => text(&p.parent.executable),
            Field::ParentName => text(&p.parent.name),
            Field::ParentCommandLine => text(&p.parent.command_line),
            Field::ParentProcessId => num(p.parent.pid),
            Field::User => text(&p.user_name),
            Field::UserId => account_id(&p.user_id),
            Field::GroupId => account_id(&p.group_id),
            Field::SourceIp => match rec.source {
                Some(s) => FieldValue::Ip(normalize_ip(s.ip)),
                None => FieldValue::Missing,
            },
            Field::SourcePort => match rec.source {
                Some(s) if s.port != 0 => FieldValue::Number(s.port as u64),
                _ => FieldValue::Missing,
            },
            Field::DestinationIp => FieldValue::Ip(normalize_ip(rec.destination.ip)),
            Field::DestinationPort => FieldValue::Number(rec.destination.port as u64),
            Field::DestinationHostname => match &rec.domain {
                Some(d) => FieldValue::Text(d),
                None => FieldValue::Missing,
            },
            Field::Protocol => FieldValue::Text(rec.transport.as_str()),
            Field::NetworkType => FieldValue::Text(rec.network_type()),
            // Outbound connects and sends; accepts and listens are inbound.
            Field::Initiated => FieldValue::Bool(!rec.ingress()),
            Field::EventAction => FieldValue::Text(rec.action()),
            Field::HostName => FieldValue::Text(&rec.host_name),
            Field::DestinationIsResolver => FieldValue::Bool(rec.dns_resolver),
            // The socket's address family, as `network.type` (an IPv4-mapped address on
            // an IPv6 socket is IPv6 here, as it is there).
            Field::DestinationIsIpv6 => FieldValue::Bool(rec.network_type() == "ipv6"),
            Field::SourceIsIpv6 => match rec.source {
                Some(s) => FieldValue::Bool(s.ip.is_ipv6()),
                None => FieldValue::Missing,
            },
            Field::SourceHostname => FieldValue::Missing,
            Field::ContainerId => text(&p.container_id),
            Field::Hashes => match p.hashes.as_deref() {
                Some(h) => FieldValue::Text(h),
                None => FieldValue::Missing,
            },
            Field::ProcessHash => match p.sha256() {
                Some(h) => FieldValue::Text(h),
                None => FieldValue::Missing,
            },
            Field::Ancestors => {
                if p.ancestors.is_empty() {
                    FieldValue::Missing
                } else {
                    FieldValue::List(&p.ancestors)
                }
            }
            Field::QueryName => match &rec.dns {
                Some(q) => FieldValue::Text(&q.question_name),
                None => FieldValue::Missing,
            },
            Field::QueryType => match &rec.dns {
                Some(q) => FieldValue::Text(&q.question_type),
                None => FieldValue::Missing,
            },
            Field::QueryStatus => match &rec.dns {
                Some(q) => FieldValue::Text(&q.response_code),
                None => FieldValue::Missing,
            },
            Field::QueryResults => match &rec.dns {
                Some(q) if !q.results.is_empty() => FieldValue::List(&q.results),
                _ => FieldValue::Missing,
            },
        }
    }
}

/// Text form of a number, address or boolean without allocating, for string modifiers
/// (`DestinationIp|startswith: '10.'`) on non-text fields.
pub struct TextBuf {
    buf: [u8; 64],
    len: usize,
}

impl TextBuf {
    pub fn new() -> Self {
        TextBuf {
            buf: [0; 64],
            len: 0,
        }
    }

    pub fn as_str(&self) -> &str {
        // Only whole `&str`s are ever written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Writes the text of a scalar value; `None` for lists, text and missing values.
    pub fn format(&mut self, v: &FieldValue<'_>) -> Option<&str> {
        self.len = 0;
        match v {
            FieldValue::Number(n) => write!(self, "{n}").ok()?,
            FieldValue::Ip(ip) => write!(self, "{ip}").ok()?,
            FieldValue::Bool(b) => write!(self, "{b}").ok()?,
            _ => return None,
        }
        Some(self.as_str())
    }
}

impl Default for TextBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Write for TextBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_has_a_name_and_names_resolve() {
        for (name, f) in FIELD_NAMES {
            assert_eq!(Field::from_name(name).map(|x| x.kind()), Some(f.kind()));
        }
        assert_eq!(Field::from_name("image"), None);
        assert_eq!(Field::suggest("image"), Some("Image"));
    }

    #[test]
    fn hashes_read_sysmon_style_and_ecs_style() {
        use std::sync::Arc;
        let mut rec = crate::record::tests::sample();
        assert_eq!(FieldValue::of(&rec, Field::Hashes), FieldValue::Missing);
        let mut p = (*rec.process).clone();
        p.hashes = Some("SHA256=ab12".into());
        rec.process = Arc::new(p);
        assert_eq!(
            FieldValue::of(&rec, Field::Hashes),
            FieldValue::Text("SHA256=ab12")
        );
        assert_eq!(
            FieldValue::of(&rec, Field::ProcessHash),
            FieldValue::Text("ab12")
        );
        assert_eq!(Field::from_name("Hashes"), Some(Field::Hashes));
        assert_eq!(
            Field::from_name("process.hash.sha256"),
            Some(Field::ProcessHash)
        );
        assert!(Field::Hashes.is_process() && Field::ProcessHash.is_process());
        assert_eq!(Field::from_name("AncestorImages"), Some(Field::Ancestors));
        assert_eq!(Field::Ancestors.kind(), FieldKind::TextList);
        assert!(Field::Ancestors.is_process());
    }

    #[test]
    fn address_families_computer_and_source_hostname() {
        use crate::record::{Endpoint, ProcessInfo, Timestamp, Transport};
        let mut rec = ConnectionRecord {
            timestamp: Timestamp(0),
            host_name: "h1".into(),
            process: std::sync::Arc::new(ProcessInfo::default()),
            source: Some(Endpoint {
                ip: "198.51.100.2".parse().unwrap(),
                port: 4000,
            }),
            destination: Endpoint {
                ip: "203.0.113.7".parse().unwrap(),
                port: 443,
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
        };
        assert_eq!(
            FieldValue::of(&rec, Field::DestinationIsIpv6),
            FieldValue::Bool(false)
        );
        assert_eq!(
            FieldValue::of(&rec, Field::SourceIsIpv6),
            FieldValue::Bool(false)
        );
        rec.destination.ip = "2001:db8::1".parse().unwrap();
        rec.source = Some(Endpoint {
            ip: "::ffff:198.51.100.2".parse().unwrap(),
            port: 4000,
        });
        assert_eq!(
            FieldValue::of(&rec, Field::DestinationIsIpv6),
            FieldValue::Bool(true)
        );
        // The socket's family, as network.type reports it.
        assert_eq!(
            FieldValue::of(&rec, Field::SourceIsIpv6),
            FieldValue::Bool(true)
        );
        rec.source = None;
        assert_eq!(
            FieldValue::of(&rec, Field::SourceIsIpv6),
            FieldValue::Missing
        );
        assert_eq!(Field::from_name("Computer"), Some(Field::HostName));
        assert_eq!(
            FieldValue::of(&rec, Field::HostName),
            FieldValue::Text(&rec.host_name)
        );
        assert!(Field::SourceHostname.never_filled());
        assert_eq!(
            FieldValue::of(&rec, Field::SourceHostname),
            FieldValue::Missing
        );
        // DestinationHostname is the name the process asked for, when known.
        assert!(!Field::DestinationHostname.never_filled());
        assert_eq!(
            FieldValue::of(&rec, Field::DestinationHostname),
            FieldValue::Missing
        );
        rec.domain = Some("c2.example.org".into());
        assert_eq!(
            FieldValue::of(&rec, Field::DestinationHostname),
            FieldValue::Text("c2.example.org")
        );
        assert_eq!(
            Field::from_name("QueryName").map(Field::ecs_name),
            Some("dns.question.name")
        );
        assert_eq!(FieldValue::of(&rec, Field::QueryName), FieldValue::Missing);
    }

    #[test]
    fn text_buf_formats_without_allocating() {
        let mut b = TextBuf::new();
        let ip: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        assert_eq!(
            b.format(&FieldValue::Ip(ip)),
            Some("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
        );
        assert_eq!(b.format(&FieldValue::Number(8088)), Some("8088"));
        assert_eq!(b.format(&FieldValue::Text("x")), None);
    }
}
