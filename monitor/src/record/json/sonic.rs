//! The crate reader (feature `json-sonic`): sonic-rs deserializes each line into borrowed
//! values, and an interner keyed by the bytes of the `process`, `user`, `group` and
//! `container` objects shares one `ProcessInfo` among the records of a process, as the
//! hand-written reader's caches do. Measured against the hand-written reader in
//! BENCHMARKS.md ("JSON reader"); the default build does not contain it.
//!
//! Strings are borrowed from the line (`&str`: serde borrows no `Option<Cow<str>>`), so one
//! with an escape in a field read here is refused, as is any error or value it does not
//! take; a refused line goes to the general path
//! (serde_json), which gives the record or the error: the same errors as the hand-written
//! reader, whose refusals go there too.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Deserialize;
use sonic_rs::LazyValue;

use super::addresses::ParsedAddresses;
use super::read::{
    InContainer, InDns, InId, InProcess, build_process, decode_general, dns_query,
    is_json_whitespace, parse_address, parse_timestamp, probe_of,
};
use crate::record::{
    ConnectionRecord, DomainSource, Endpoint, ProcessInfo, RecordError, Transport, normalize_ip,
};

/// Processes the interner holds before it starts again (a bound on memory for inputs with
/// very many processes).
const PROCESSES_MAX: usize = 4096;

#[derive(Deserialize)]
struct Doc<'a> {
    #[serde(rename = "@timestamp", borrow)]
    timestamp: Option<&'a str>,
    #[serde(borrow)]
    event: Option<Event<'a>>,
    #[serde(borrow)]
    host: Option<Host<'a>>,
    #[serde(borrow)]
    process: Option<LazyValue<'a>>,
    #[serde(borrow)]
    user: Option<LazyValue<'a>>,
    #[serde(borrow)]
    group: Option<LazyValue<'a>>,
    #[serde(borrow)]
    source: Option<EndpointText<'a>>,
    #[serde(borrow)]
    destination: Option<EndpointText<'a>>,
    #[serde(borrow)]
    network: Option<Network<'a>>,
    #[serde(borrow)]
    container: Option<LazyValue<'a>>,
    #[serde(borrow)]
    monitor: Option<Monitor<'a>>,
    dns: Option<InDns>,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow)]
    kind: Option<&'a str>,
}

#[derive(Deserialize)]
struct Host<'a> {
    #[serde(borrow)]
    hostname: Option<&'a str>,
}

#[derive(Deserialize)]
struct EndpointText<'a> {
    #[serde(borrow)]
    ip: Option<&'a str>,
    port: Option<u16>,
    #[serde(borrow)]
    domain: Option<&'a str>,
}

#[derive(Deserialize)]
struct Network<'a> {
    #[serde(borrow)]
    transport: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct Monitor<'a> {
    #[serde(borrow)]
    enrichment: Option<&'a str>,
    suppressed: Option<u32>,
    dns_resolver: Option<bool>,
    #[serde(borrow)]
    probe: Option<&'a str>,
    #[serde(borrow)]
    domain_source: Option<&'a str>,
}

/// Reads lines with sonic-rs; the interface of the hand-written `RecordDecoder` that
/// `JsonLines` uses.
pub(crate) struct SonicDecoder {
    /// The four process objects' texts, each with its length before it -> process.
    processes: HashMap<Box<[u8]>, Arc<ProcessInfo>, foldhash::fast::FixedState>,
    key: Vec<u8>,
    /// The last host name (records of a run share one).
    host: Option<Arc<str>>,
    addresses: ParsedAddresses,
}

impl SonicDecoder {
    pub(crate) fn new() -> Self {
        SonicDecoder {
            processes: HashMap::default(),
            key: Vec::new(),
            host: None,
            addresses: ParsedAddresses::new(11),
        }
    }

    /// The line at the start of `input` (up to its line feed): the record and the bytes
    /// through the line feed, or `None` to leave the line to the caller (no line feed,
    /// another kind of record, or anything the general path must decide).
    pub(crate) fn decode_in_place(&mut self, input: &[u8]) -> Option<(ConnectionRecord, usize)> {
        let end = memchr::memchr(b'\n', input)?;
        let rec = self.decode_fast(&input[..end])?;
        Some((rec, end + 1))
    }

    /// One line without its line feed: `Ok(None)` for a blank line or a record of another
    /// kind.
    pub(crate) fn decode_line(
        &mut self,
        line: &[u8],
    ) -> Result<Option<ConnectionRecord>, RecordError> {
        match self.decode_fast(line) {
            Some(rec) => Ok(Some(rec)),
            None => Self::decode_line_general(line),
        }
    }

    /// `decode_line` without sonic-rs.
    pub(crate) fn decode_line_general(
        line: &[u8],
    ) -> Result<Option<ConnectionRecord>, RecordError> {
        let text = std::str::from_utf8(line)
            .map_err(|e| {
                RecordError::Json(format!(
                    "not UTF-8 text (byte {} of the line)",
                    e.valid_up_to() + 1
                ))
            })?
            .trim_matches(is_json_whitespace);
        if text.is_empty() {
            return Ok(None);
        }
        decode_general(text)
    }

    /// A connection record, or `None` for the general path.
    pub(crate) fn decode_fast(&mut self, line: &[u8]) -> Option<ConnectionRecord> {
        // sonic-rs checks UTF-8 only in what it parses, not in values it skips or keeps
        // as text: the whole line is checked here, as serde_json checks it.
        let text = std::str::from_utf8(line).ok()?;
        let doc: Doc<'_> = sonic_rs::from_str(text).ok()?;
        if let Some(kind) = doc.event.as_ref().and_then(|e| e.kind)
            && kind != "event"
        {
            return None;
        }
        let dest = doc.destination?;
        let dip = self.address(dest.ip?)?;
        let dport = dest.port?;
        let timestamp = parse_timestamp(doc.timestamp?.as_bytes())?;
        let transport = match doc.network.as_ref().and_then(|n| n.transport) {
            Some(t) if t.eq_ignore_ascii_case("udp") => Transport::Udp,
            Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
            Some(_) => return None,
            None => Transport::Tcp,
        };
        let source = match doc.source {
            Some(EndpointText {
                ip: Some(ip), port, ..
            }) => Some(Endpoint {
                ip: normalize_ip(self.address(ip)?),
                port: port.unwrap_or(0),
            }),
            _ => None,
        };
        let monitor = doc.monitor.unwrap_or_default();
        let probe = probe_of(monitor.probe)?;
        let domain_source = match monitor.domain_source {
            None => None,
            Some(s) => Some(DomainSource::parse(s)?),
        };
        let domain: Option<Arc<str>> = dest.domain.map(Arc::from);
        let dns = match doc.dns {
            Some(d) => Some(Arc::new(dns_query(d).ok()?)),
            None => None,
        };
        let process = self.process([doc.process, doc.user, doc.group, doc.container])?;
        let host_name = self.host(doc.host.and_then(|h| h.hostname).unwrap_or(""));
        Some(ConnectionRecord {
            timestamp,
            host_name,
            process,
            source,
            destination: Endpoint {
                ip: normalize_ip(dip),
                port: dport,
            },
            transport,
            partial: monitor.enrichment == Some("partial"),
            suppressed: monitor.suppressed.unwrap_or(0),
            probe,
            dns_resolver: monitor.dns_resolver.unwrap_or(false),
            domain_source: domain.as_ref().and(domain_source),
            domain,
            dns,
        })
    }

    fn address(&mut self, text: &str) -> Option<IpAddr> {
        self.addresses.get(text.as_bytes(), parse_address)
    }

    fn host(&mut self, name: &str) -> Arc<str> {
        match &self.host {
            Some(h) if **h == *name => h.clone(),
            _ => {
                let h: Arc<str> = name.into();
                self.host = Some(h.clone());
                h
            }
        }
    }

    /// The process of `process`, `user`, `group` and `container`: interned by their texts,
    /// built (each object deserialized) the first time.
    fn process(&mut self, parts: [Option<LazyValue<'_>>; 4]) -> Option<Arc<ProcessInfo>> {
        self.key.clear();
        for p in &parts {
            let raw = p.as_ref().map_or("", |v| v.as_raw_str());
            self.key
                .extend_from_slice(&(raw.len() as u32).to_le_bytes());
            self.key.extend_from_slice(raw.as_bytes());
        }
        if let Some(p) = self.processes.get(&self.key[..]) {
            return Some(p.clone());
        }
        let [process, user, group, container] = parts;
        let process: Option<InProcess> = part(process)?;
        let user: Option<InId> = part(user)?;
        let group: Option<InId> = part(group)?;
        let container: Option<InContainer> = part(container)?;
        let info = Arc::new(build_process(
            process,
            user,
            group,
            container.and_then(|c| c.id),
        ));
        if self.processes.len() >= PROCESSES_MAX {
            self.processes.clear();
        }
        self.processes
            .insert(self.key.clone().into_boxed_slice(), info.clone());
        Some(info)
    }
}

/// An object given as its text (`null` as absent); `None` when it does not deserialize.
fn part<T: for<'de> Deserialize<'de>>(v: Option<LazyValue<'_>>) -> Option<Option<T>> {
    match v {
        None => Some(None),
        Some(v) => sonic_rs::from_str::<Option<T>>(v.as_raw_str()).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::json::read::tests::corpus;

    /// Every line of the hand-written reader's corpus, and each with bytes changed: the
    /// same record or the same error as serde_json's general path.
    #[test]
    fn lines_decode_as_the_general_path_decodes_them() {
        let mut dec = SonicDecoder::new();
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for line in corpus() {
            let b = line.into_bytes();
            for at in (0..b.len()).step_by(3) {
                for with in [b'"', b'1', b'{', b'}', b'\\', b' ', 0xff, b'-', b'n'] {
                    let mut d = b.clone();
                    d[at] = with;
                    lines.push(d);
                }
            }
            lines.push(b);
        }
        for line in &lines {
            let reference = SonicDecoder::decode_line_general(line);
            // Twice: the second time through the interner.
            for _ in 0..2 {
                assert_eq!(
                    dec.decode_line(line),
                    reference,
                    "{}",
                    String::from_utf8_lossy(line)
                );
            }
        }
    }
}
