//! DNS answers as bytes, for tests (unit, live and fuzz seeds): names written uncompressed,
//! one question. Builds only what a test needs; parsing never goes through here.

use std::net::Ipv6Addr;

/// One answer record.
pub struct Answer {
    pub name: String,
    pub kind: u16,
    pub ttl: u32,
    pub data: Vec<u8>,
}

impl Answer {
    pub fn a(name: &str, ip: [u8; 4], ttl: u32) -> Answer {
        Answer {
            name: name.into(),
            kind: 1,
            ttl,
            data: ip.to_vec(),
        }
    }

    pub fn aaaa(name: &str, ip: &str, ttl: u32) -> Answer {
        let ip: Ipv6Addr = ip.parse().expect("an IPv6 address");
        Answer {
            name: name.into(),
            kind: 28,
            ttl,
            data: ip.octets().to_vec(),
        }
    }

    pub fn cname(name: &str, target: &str, ttl: u32) -> Answer {
        Answer {
            name: name.into(),
            kind: 5,
            ttl,
            data: wire_name(target),
        }
    }
}

/// `name` as uncompressed labels ending in the root label.
pub fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A response (QR, RD, RA, NOERROR) to one question of type `qtype`, class IN.
pub fn response(id: u16, qname: &str, qtype: u16, answers: &[Answer]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x8180u16.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&wire_name(qname));
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    for a in answers {
        out.extend_from_slice(&wire_name(&a.name));
        out.extend_from_slice(&a.kind.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&a.ttl.to_be_bytes());
        out.extend_from_slice(&(a.data.len() as u16).to_be_bytes());
        out.extend_from_slice(&a.data);
    }
    out
}
