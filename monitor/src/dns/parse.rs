//! A DNS answer's bytes (attacker-controlled) to a `DnsQuery`, through `simple-dns`: no
//! hand-written parsing of the message. What this module adds is policy: which answers are
//! used, the CNAME chain from the name asked, and names turned into safe text.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use simple_dns::{PacketFlag, QTYPE, RCODE, TYPE, rdata::RData};
use thiserror::Error;

use crate::record::{DnsAnswerRecord, DnsQuery, ip_text};

/// CNAME links followed from the name asked at most (resolvers stop around 8 to 16).
pub const MAX_CNAME_CHAIN: usize = 8;
/// Answer records kept per query at most (the rest are still parsed, and counted).
pub const MAX_ANSWERS: usize = 32;

/// Why an answer was skipped. Each is counted (`DnsStats`), none is fatal.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DnsParseError {
    /// The copy ends before the message does (bound or non-linear packet), or a TCP length
    /// prefix claims more than was copied.
    #[error("answer cut short ({have} of {need} bytes)")]
    Truncated { have: usize, need: usize },
    /// The server set TC: the client asks again over TCP, which is captured on its own.
    #[error("answer truncated by the server (TC): the client retries over TCP")]
    TruncatedByServer,
    #[error("malformed DNS message: {0}")]
    Malformed(String),
    /// A query, not an answer (a DNS server on this host receiving from port 53).
    #[error("a DNS query, not an answer")]
    NotAnAnswer,
    #[error("answer without a question")]
    NoQuestion,
}

/// Parses one answer. `tcp`: the bytes one read of a TCP stream returned, which start with
/// the 2-byte length prefix (RFC 1035 4.2.2) when the reader asked for prefix and message
/// at once, and with the message when it read the prefix alone first (glibc); only the
/// first message is read. `cut`: the kernel's copy is shorter than the message, so a parse
/// failure is `Truncated`, not `Malformed`.
pub fn parse_answer(payload: &[u8], tcp: bool, cut: bool) -> Result<DnsQuery, DnsParseError> {
    if tcp {
        let prefixed = parse_message(payload, true, cut);
        if prefixed.is_ok() {
            return prefixed;
        }
        // No prefix: the message itself (its id may look like a length, hence both).
        return match parse_message(payload, false, cut) {
            Ok(q) => Ok(q),
            Err(_) => prefixed,
        };
    }
    parse_message(payload, false, cut)
}

fn parse_message(payload: &[u8], prefixed: bool, cut: bool) -> Result<DnsQuery, DnsParseError> {
    let msg = if prefixed {
        let Some((prefix, rest)) = payload.split_first_chunk::<2>() else {
            return Err(DnsParseError::Truncated {
                have: payload.len(),
                need: 2,
            });
        };
        let need = usize::from(u16::from_be_bytes(*prefix));
        if need > rest.len() {
            return Err(DnsParseError::Truncated {
                have: rest.len(),
                need,
            });
        }
        &rest[..need]
    } else {
        payload
    };
    let packet = simple_dns::Packet::parse(msg).map_err(|e| {
        if cut {
            DnsParseError::Truncated {
                have: msg.len(),
                need: msg.len() + 1,
            }
        } else {
            DnsParseError::Malformed(e.to_string())
        }
    })?;
    if !packet.has_flags(PacketFlag::RESPONSE) {
        return Err(DnsParseError::NotAnAnswer);
    }
    if packet.has_flags(PacketFlag::TRUNCATION) {
        return Err(DnsParseError::TruncatedByServer);
    }
    let question = packet.questions.first().ok_or(DnsParseError::NoQuestion)?;
    let question_name = name_text(question.qname.get_labels());
    let question_type = qtype_name(question.qtype);

    let mut answers = Vec::new();
    let mut answer_ips = Vec::new();
    // (owner, target) of every CNAME, and (owner, address) of every A/AAAA.
    let mut cnames: Vec<(String, String)> = Vec::new();
    let mut addresses: Vec<(String, IpAddr)> = Vec::new();
    for rr in &packet.answers {
        let owner = name_text(rr.name.get_labels());
        let (kind, data) = match &rr.rdata {
            RData::A(a) => {
                let ip = IpAddr::V4(Ipv4Addr::from(a.address));
                addresses.push((owner.clone(), ip));
                ("A", ip_text(ip))
            }
            RData::AAAA(a) => {
                let ip = IpAddr::V6(Ipv6Addr::from(a.address));
                addresses.push((owner.clone(), ip));
                ("AAAA", ip_text(ip))
            }
            RData::CNAME(c) => {
                let target = name_text(c.0.get_labels());
                cnames.push((owner.clone(), target.clone()));
                ("CNAME", target)
            }
            other => (type_name(other.type_code()), String::new()),
        };
        if answers.len() < MAX_ANSWERS {
            answer_ips.push(match &rr.rdata {
                RData::A(a) => Some(IpAddr::V4(Ipv4Addr::from(a.address))),
                RData::AAAA(a) => Some(IpAddr::V6(Ipv6Addr::from(a.address))),
                _ => None,
            });
            answers.push(DnsAnswerRecord {
                name: owner,
                kind: kind.to_string(),
                ttl: rr.ttl,
                data,
            });
        }
    }
    // The chain from the name asked: only addresses of names on it are the name's.
    let mut chain = vec![question_name.clone()];
    while chain.len() <= MAX_CNAME_CHAIN {
        let last = chain.last().expect("never empty");
        match cnames.iter().find(|(owner, _)| owner == last) {
            Some((_, target)) if !chain.contains(target) => chain.push(target.clone()),
            _ => break,
        }
    }
    let mut resolved_ip = Vec::new();
    for (owner, ip) in &addresses {
        if chain.contains(owner) && !resolved_ip.contains(ip) {
            resolved_ip.push(*ip);
        }
    }
    Ok(DnsQuery::from_parts(
        question_name,
        question_type,
        rcode_name(packet.rcode()),
        answers,
        resolved_ip,
        &answer_ips,
    ))
}

/// A name's labels as text: lowercase (DNS names are case-insensitive, and resolvers randomise
/// case), joined by dots. Bytes that are not printable ASCII, a dot or a backslash inside a
/// label become `\xNN`, so a label can neither forge a record nor pose as two labels.
pub fn name_text<L: AsRef<[u8]>>(labels: &[L]) -> String {
    // One allocation: the labels, their dots, and room for a few escapes.
    let len: usize = labels.iter().map(|l| l.as_ref().len() + 1).sum();
    let mut out = String::with_capacity(len + 8);
    for (i, label) in labels.iter().enumerate() {
        let label = label.as_ref();
        if i > 0 {
            out.push('.');
        }
        if label
            .iter()
            .all(|&b| (0x21..=0x7e).contains(&b) && b != b'.' && b != b'\\')
        {
            // The common case: printable ASCII, copied and lowercased as a whole.
            let from = out.len();
            out.push_str(std::str::from_utf8(label).unwrap_or_default());
            out[from..].make_ascii_lowercase();
            continue;
        }
        for &b in label {
            match b {
                b'.' | b'\\' => push_hex(&mut out, b),
                0x21..=0x7e => out.push(char::from(b.to_ascii_lowercase())),
                _ => push_hex(&mut out, b),
            }
        }
    }
    out
}

fn push_hex(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\x");
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 15)]));
}

fn qtype_name(q: QTYPE) -> String {
    match q {
        QTYPE::TYPE(t) => type_name(t).to_string(),
        QTYPE::ANY => "ANY".to_string(),
        QTYPE::AXFR => "AXFR".to_string(),
        QTYPE::IXFR => "IXFR".to_string(),
        QTYPE::MAILA => "MAILA".to_string(),
        QTYPE::MAILB => "MAILB".to_string(),
    }
}

/// The mnemonic of a record type (RFC 1035 and later), `TYPE<n>` for the rest.
fn type_name(t: TYPE) -> &'static str {
    match u16::from(t) {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        41 => "OPT",
        43 => "DS",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        255 => "ANY",
        257 => "CAA",
        _ => "OTHER",
    }
}

/// ECS `dns.response_code`: the RFC mnemonic (`NOERROR`, `NXDOMAIN`, ...).
fn rcode_name(r: RCODE) -> String {
    match r {
        RCODE::NoError => "NOERROR",
        RCODE::FormatError => "FORMERR",
        RCODE::ServerFailure => "SERVFAIL",
        RCODE::NameError => "NXDOMAIN",
        RCODE::NotImplemented => "NOTIMP",
        RCODE::Refused => "REFUSED",
        RCODE::YXDOMAIN => "YXDOMAIN",
        RCODE::YXRRSET => "YXRRSET",
        RCODE::NXRRSET => "NXRRSET",
        RCODE::NOTAUTH => "NOTAUTH",
        RCODE::NOTZONE => "NOTZONE",
        _ => "OTHER",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::testing::{Answer, response};

    #[test]
    fn a_answer_through_a_cname_chain() {
        let msg = response(
            0x1234,
            "WWW.Example.org",
            1,
            &[
                Answer::cname("www.example.org", "edge.cdn.example.net", 300),
                Answer::a("edge.cdn.example.net", [192, 0, 2, 10], 60),
                Answer::a("unrelated.example", [192, 0, 2, 99], 60),
            ],
        );
        let q = parse_answer(&msg, false, false).unwrap();
        assert_eq!(q.question_name, "www.example.org");
        assert_eq!(q.question_type, "A");
        assert_eq!(q.response_code, "NOERROR");
        assert_eq!(q.results[0], "edge.cdn.example.net");
        // The unrelated owner's address is listed but never attributed to the name.
        assert_eq!(q.resolved_ip, vec!["192.0.2.10".parse::<IpAddr>().unwrap()]);
        assert_eq!(q.answers.len(), 3);
        assert_eq!(q.ttl, 60);
    }

    #[test]
    fn aaaa_and_tcp_prefix() {
        let msg = response(
            7,
            "v6.example.org",
            28,
            &[Answer::aaaa("v6.example.org", "2001:db8::7", 30)],
        );
        let mut tcp = (msg.len() as u16).to_be_bytes().to_vec();
        tcp.extend_from_slice(&msg);
        let q = parse_answer(&tcp, true, false).unwrap();
        assert_eq!(q.question_type, "AAAA");
        assert_eq!(
            q.resolved_ip,
            vec!["2001:db8::7".parse::<IpAddr>().unwrap()]
        );
        // A prefix claiming more than was copied is a cut answer.
        assert!(matches!(
            parse_answer(&tcp[..tcp.len() - 1], true, false),
            Err(DnsParseError::Truncated { .. })
        ));
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        let msg = response(
            1,
            "a.example.org",
            1,
            &[Answer::a("a.example.org", [192, 0, 2, 1], 60)],
        );
        for cut in 0..msg.len() {
            assert!(
                parse_answer(&msg[..cut], false, false).is_err(),
                "cut {cut}"
            );
        }
        // A compression pointer to itself in the question name.
        let mut looped = msg[..12].to_vec();
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(matches!(
            parse_answer(&looped, false, false),
            Err(DnsParseError::Malformed(_))
        ));
        // A label longer than 63 bytes (length byte 0x50 uses the reserved 01 prefix).
        let mut long = msg[..12].to_vec();
        long.push(0x50);
        long.extend_from_slice(&[b'a'; 80]);
        long.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert!(parse_answer(&long, false, false).is_err());
        // A query is not an answer.
        let mut query = msg.clone();
        query[2] &= 0x7f;
        assert_eq!(
            parse_answer(&query, false, false),
            Err(DnsParseError::NotAnAnswer)
        );
    }

    #[test]
    fn hostile_labels_are_escaped() {
        assert_eq!(
            name_text(&[&b"a.b"[..], b"x\n\"y", b"\xff"]),
            "a\\x2eb.x\\x0a\"y.\\xff"
        );
    }
}
