//! The ECS JSON form of records and alerts (what every output writes).
//!
//! The documents have a fixed shape, so they are written by hand: keys are constant text,
//! numbers go through `itoa`, timestamps and addresses are formatted on the stack, and
//! strings are escaped eight bytes at a time. The output is byte for byte what serde_json
//! wrote for the former `EcsDoc` structs (kept in the tests as the oracle): the same key
//! order, the same escaping (`"`, `\`, and every control character below 0x20 as `\b \f
//! \n \r \t` or `\u00XX`; DEL and non-ASCII UTF-8 unchanged), so attacker-controlled names
//! and command lines cannot break a record or forge another.

use super::*;

/// Where JSON text goes. Everything written is a `&str` (escapes are ASCII and strings are
/// only split before ASCII bytes), so a `String` sink needs no UTF-8 check afterwards.
pub(crate) trait JsonSink {
    fn put(&mut self, s: &str);
}

impl JsonSink for Vec<u8> {
    #[inline]
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

impl JsonSink for String {
    #[inline]
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

impl ConnectionRecord {
    /// Writes the record as one JSON line (with the trailing newline) into `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.write_json_object(out);
        out.push(b'\n');
    }

    /// Writes the record as one JSON object, without a newline.
    pub(crate) fn write_json_object<S: JsonSink>(&self, out: &mut S) {
        write_doc(out, self, self.timestamp, None);
    }

    pub fn to_json_line(&self) -> String {
        let mut s = String::with_capacity(1024);
        self.write_json_object(&mut s);
        s.push('\n');
        s
    }
}

impl Alert {
    /// Writes the alert as one JSON line (with the trailing newline) into `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.write_json_object(out);
        out.push(b'\n');
    }

    /// Writes the alert as one JSON object, without a newline.
    pub(crate) fn write_json_object<S: JsonSink>(&self, out: &mut S) {
        write_doc(out, &self.event, self.timestamp, Some(self));
    }

    pub fn to_json_line(&self) -> String {
        let mut s = String::with_capacity(4096);
        self.write_json_object(&mut s);
        s.push('\n');
        s
    }
}

// ---- the document --------------------------------------------------------------------

/// One ECS document: an event (`alert` None) or an alert on the event `r`.
fn write_doc<S: JsonSink>(out: &mut S, r: &ConnectionRecord, ts: Timestamp, alert: Option<&Alert>) {
    out.put("{\"@timestamp\":\"");
    put_timestamp(out, ts);
    out.put(if alert.is_some() {
        "\",\"event\":{\"kind\":\"alert\""
    } else {
        "\",\"event\":{\"kind\":\"event\""
    });
    out.put(",\"category\":[\"network\"],\"type\":[\"connection\",\"start\"],\"action\":");
    put_literal(out, r.transport.action());
    if let Some(a) = alert {
        out.put(",\"severity\":");
        put_u32(out, a.level.severity());
        if let Some(score) = a.risk_score {
            out.put(",\"risk_score\":");
            put_u32(out, score);
        }
    }
    out.put("},\"host\":{\"hostname\":");
    put_str(out, &r.host_name);

    let p = &*r.process;
    out.put("},\"process\":{\"pid\":");
    put_u32(out, p.pid);
    if let Some(tid) = p.tid {
        out.put(",\"thread\":{\"id\":");
        put_u32(out, tid);
        out.put("}");
    }
    put_opt_field(out, ",\"name\":", p.name.as_deref());
    put_opt_field(out, ",\"executable\":", p.executable.as_deref());
    put_opt_field(out, ",\"command_line\":", p.command_line.as_deref());
    if !p.args.is_empty() {
        out.put(",\"args\":");
        put_str_array(out, &p.args);
    }
    out.put(",\"parent\":{");
    let mut fields = Fields::default();
    if let Some(pid) = p.parent.pid {
        fields.key(out, "\"pid\":");
        put_u32(out, pid);
    }
    if let Some(name) = &p.parent.name {
        fields.key(out, "\"name\":");
        put_str(out, name);
    }
    if let Some(exe) = &p.parent.executable {
        fields.key(out, "\"executable\":");
        put_str(out, exe);
    }
    if let Some(cmd) = &p.parent.command_line {
        fields.key(out, "\"command_line\":");
        put_str(out, cmd);
    }
    out.put("}},\"user\":{");
    let mut fields = Fields::default();
    if let Some(uid) = p.user_id {
        fields.key(out, "\"id\":\"");
        put_u32(out, uid);
        out.put("\"");
    }
    if let Some(name) = &p.user_name {
        fields.key(out, "\"name\":");
        put_str(out, name);
    }
    out.put("}");
    if let Some(gid) = p.group_id {
        out.put(",\"group\":{\"id\":\"");
        put_u32(out, gid);
        out.put("\"}");
    }

    if let Some(src) = r.source {
        out.put(",\"source\":{\"ip\":\"");
        put_ip(out, src.ip);
        out.put("\"");
        if src.port != 0 {
            out.put(",\"port\":");
            put_u32(out, src.port.into());
        }
        out.put("}");
    }
    out.put(",\"destination\":{\"ip\":\"");
    put_ip(out, r.destination.ip);
    out.put("\",\"port\":");
    put_u32(out, r.destination.port.into());
    out.put("},\"network\":{\"transport\":");
    put_literal(out, r.transport.as_str());
    out.put(",\"type\":");
    put_literal(out, r.network_type());
    out.put(",\"direction\":\"egress\"}");
    if let Some(id) = &p.container_id {
        out.put(",\"container\":{\"id\":");
        put_str(out, id);
        out.put("}");
    }

    if let Some(a) = alert {
        let rule = &*a.rule;
        out.put(",\"rule\":{\"id\":");
        put_str(out, &rule.id);
        out.put(",\"name\":");
        put_str(out, &rule.name);
        out.put(",\"description\":");
        put_str(out, &rule.description);
        out.put(",\"reference\":");
        put_str_array(out, &rule.reference);
        out.put(",\"ruleset\":");
        put_str(out, &rule.ruleset);
        out.put("},\"threat\":{\"framework\":\"MITRE ATT&CK\",\"technique\":{\"id\":");
        put_str_array(out, &a.techniques);
        out.put("}}");
        if !a.labels.is_empty() {
            out.put(",\"labels\":{");
            let mut fields = Fields::default();
            for (k, v) in &a.labels {
                fields.comma(out);
                put_str(out, k);
                out.put(":");
                put_str(out, v);
            }
            out.put("}");
        }
    }

    out.put(if r.partial {
        ",\"monitor\":{\"enrichment\":\"partial\""
    } else {
        ",\"monitor\":{\"enrichment\":\"full\""
    });
    if r.suppressed != 0 {
        out.put(",\"suppressed\":");
        put_u32(out, r.suppressed);
    }
    put_opt_field(out, ",\"probe\":", r.probe);
    if let Some(a) = alert {
        out.put(",\"detector\":");
        put_literal(out, a.detector.as_str());
        out.put(",\"level\":");
        put_literal(out, a.level.as_str());
        if let Some(agg) = &a.aggregate {
            put_aggregate(out, agg);
        }
        if let Some(beacon) = &a.beacon {
            put_beacon(out, beacon);
        }
    }
    out.put("}}");
}

/// `,"aggregate":{...}`, in `Aggregate`'s field order.
fn put_aggregate<S: JsonSink>(out: &mut S, agg: &Aggregate) {
    out.put(",\"aggregate\":{\"count\":");
    out.put(itoa::Buffer::new().format(agg.count));
    out.put(",\"first_seen\":");
    put_str(out, &agg.first_seen);
    out.put(",\"last_seen\":");
    put_str(out, &agg.last_seen);
    out.put(",\"destination_ips\":");
    put_str_array(out, &agg.destination_ips);
    out.put(",\"destination_ports\":[");
    for (i, port) in agg.destination_ports.iter().enumerate() {
        if i > 0 {
            out.put(",");
        }
        put_u32(out, (*port).into());
    }
    out.put("]}");
}

/// `,"beacon":{...}`. Only beacon alerts carry it (a few in a thousand alerts), and its
/// floats must keep serde_json's shortest round-trip form and `null` for non-finite values,
/// so serde_json writes it.
fn put_beacon<S: JsonSink>(out: &mut S, beacon: &BeaconStats) {
    out.put(",\"beacon\":");
    // Five numbers under fixed keys cannot fail to serialize.
    out.put(&serde_json::to_string(beacon).expect("serialize beacon stats"));
}

/// Comma placement for objects whose fields are all optional.
#[derive(Default)]
struct Fields {
    any: bool,
}

impl Fields {
    fn comma<S: JsonSink>(&mut self, out: &mut S) {
        if self.any {
            out.put(",");
        }
        self.any = true;
    }

    fn key<S: JsonSink>(&mut self, out: &mut S, key: &str) {
        self.comma(out);
        out.put(key);
    }
}

// ---- values --------------------------------------------------------------------------

#[inline]
fn put_u32<S: JsonSink>(out: &mut S, n: u32) {
    out.put(itoa::Buffer::new().format(n));
}

/// A fixed value from this program (an enum's name): quoted, no escaping needed.
#[inline]
fn put_literal<S: JsonSink>(out: &mut S, s: &'static str) {
    debug_assert!(!s.bytes().any(needs_escape), "literal {s:?} needs escaping");
    out.put("\"");
    out.put(s);
    out.put("\"");
}

#[inline]
fn put_opt_field<S: JsonSink>(out: &mut S, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        out.put(key);
        put_str(out, v);
    }
}

fn put_str_array<S: JsonSink>(out: &mut S, items: &[String]) {
    out.put("[");
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.put(",");
        }
        put_str(out, s);
    }
    out.put("]");
}

#[inline]
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The JSON escape of a byte that `needs_escape`, as serde_json writes it.
fn escape_of(b: u8) -> &'static str {
    const CONTROL: [&str; 32] = [
        "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
        "\\b", "\\t", "\\n", "\\u000b", "\\f", "\\r", "\\u000e", "\\u000f", "\\u0010", "\\u0011",
        "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017", "\\u0018", "\\u0019",
        "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
    ];
    match b {
        b'"' => "\\\"",
        b'\\' => "\\\\",
        _ => CONTROL[usize::from(b)],
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;
const LOW7: u64 = LO * 0x7f;

/// The high bit of every byte of `w` that needs escaping. Exact for every byte: the
/// additions stay below 0x100 per byte, so no carry crosses into the next.
#[inline]
fn escape_mask(w: u64) -> u64 {
    // High bit set where the byte is zero.
    let zero = |x: u64| !(((x & LOW7) + LOW7) | x) & HI;
    // Below 0x20: bits 5 to 7 all clear.
    let control = !(((w & (LO * 0x60)) + LOW7) | w) & HI;
    control | zero(w ^ (LO * u64::from(b'"'))) | zero(w ^ (LO * u64::from(b'\\')))
}

#[inline]
fn chunk_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// A JSON string: quoted and escaped. Runs that need no escaping are copied whole; they are
/// found eight bytes at a time.
fn put_str<S: JsonSink>(out: &mut S, s: &str) {
    out.put("\"");
    let bytes = s.as_bytes();
    let mut run = 0; // start of the bytes not yet written
    // Writes the run before `at` and the escape of `bytes[at]` (ASCII, so `at` and `at + 1`
    // are character boundaries).
    let escape = |out: &mut S, run: &mut usize, at: usize| {
        out.put(&s[*run..at]);
        out.put(escape_of(bytes[at]));
        *run = at + 1;
    };
    let mut done = 0;
    while done + 8 <= bytes.len() {
        let mut mask = escape_mask(chunk_at(bytes, done));
        while mask != 0 {
            escape(out, &mut run, done + (mask.trailing_zeros() / 8) as usize);
            mask &= mask - 1;
        }
        done += 8;
    }
    if done < bytes.len() {
        if bytes.len() >= 8 {
            // The last eight bytes again, without those already looked at.
            let last = bytes.len() - 8;
            let mut mask = escape_mask(chunk_at(bytes, last)) & (!0u64 << (8 * (done - last)));
            while mask != 0 {
                escape(out, &mut run, last + (mask.trailing_zeros() / 8) as usize);
                mask &= mask - 1;
            }
        } else {
            for at in done..bytes.len() {
                if needs_escape(bytes[at]) {
                    escape(out, &mut run, at);
                }
            }
        }
    }
    out.put(&s[run..]);
    out.put("\"");
}

/// `Timestamp::to_rfc3339` (chrono, `SecondsFormat::AutoSi`, `Z`) without the `String`:
/// `YYYY-MM-DDTHH:MM:SS`, then `.mmm`, `.uuuuuu` or `.nnnnnnnnn` as the nanoseconds need,
/// then `Z`.
fn put_timestamp<S: JsonSink>(out: &mut S, ts: Timestamp) {
    let secs = ts.0.div_euclid(Timestamp::NANOS_PER_SEC);
    let nanos = ts.0.rem_euclid(Timestamp::NANOS_PER_SEC) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        // Unreachable for i64 nanoseconds (years 1677 to 2262); chrono signs such years.
        out.put(&ts.to_rfc3339());
        return;
    }
    let mut buf = [0u8; 30];
    let two = |buf: &mut [u8; 30], at: usize, v: u32| {
        buf[at] = b'0' + (v / 10) as u8;
        buf[at + 1] = b'0' + (v % 10) as u8;
    };
    let year = year as u32;
    two(&mut buf, 0, year / 100);
    two(&mut buf, 2, year % 100);
    buf[4] = b'-';
    two(&mut buf, 5, month);
    buf[7] = b'-';
    two(&mut buf, 8, day);
    buf[10] = b'T';
    two(&mut buf, 11, sod / 3600);
    buf[13] = b':';
    two(&mut buf, 14, sod / 60 % 60);
    buf[16] = b':';
    two(&mut buf, 17, sod % 60);
    let mut len = 19;
    let (mut frac, digits) = if nanos == 0 {
        (0, 0)
    } else if nanos % 1_000_000 == 0 {
        (nanos / 1_000_000, 3)
    } else if nanos % 1_000 == 0 {
        (nanos / 1_000, 6)
    } else {
        (nanos, 9)
    };
    if digits > 0 {
        buf[len] = b'.';
        for at in (len + 1..=len + digits).rev() {
            buf[at] = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        len += digits + 1;
    }
    buf[len] = b'Z';
    len += 1;
    out.put(std::str::from_utf8(&buf[..len]).expect("ASCII digits"));
}

/// Proleptic Gregorian (year, month, day) of a day count from 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// An address as `IpAddr`'s `Display` writes it (RFC 5952 for IPv6: lower-case hex, the
/// first longest run of two or more zero groups as `::`, mapped IPv4 as `::ffff:a.b.c.d`).
fn put_ip<S: JsonSink>(out: &mut S, ip: IpAddr) {
    let mut buf = [0u8; 48];
    let len = match ip {
        IpAddr::V4(v4) => format_v4(&mut buf, 0, v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => {
                buf[..7].copy_from_slice(b"::ffff:");
                format_v4(&mut buf, 7, v4.octets())
            }
            None => format_v6(&mut buf, v6.segments()),
        },
    };
    out.put(std::str::from_utf8(&buf[..len]).expect("ASCII address"));
}

/// Writes `a.b.c.d` at `at`; returns the end.
fn format_v4(buf: &mut [u8; 48], mut at: usize, octets: [u8; 4]) -> usize {
    for (i, o) in octets.into_iter().enumerate() {
        if i > 0 {
            buf[at] = b'.';
            at += 1;
        }
        if o >= 100 {
            buf[at] = b'0' + o / 100;
            at += 1;
        }
        if o >= 10 {
            buf[at] = b'0' + o / 10 % 10;
            at += 1;
        }
        buf[at] = b'0' + o % 10;
        at += 1;
    }
    at
}

fn format_v6(buf: &mut [u8; 48], segments: [u16; 8]) -> usize {
    // The first longest run of zero groups; `::` only replaces two or more.
    let (mut best_start, mut best_len) = (0, 0);
    let (mut start, mut len) = (0, 0);
    for (i, &seg) in segments.iter().enumerate() {
        if seg == 0 {
            if len == 0 {
                start = i;
            }
            len += 1;
            if len > best_len {
                (best_start, best_len) = (start, len);
            }
        } else {
            len = 0;
        }
    }
    if best_len > 1 {
        let at = hex_groups(buf, 0, &segments[..best_start]);
        buf[at..at + 2].copy_from_slice(b"::");
        hex_groups(buf, at + 2, &segments[best_start + best_len..])
    } else {
        hex_groups(buf, 0, &segments)
    }
}

/// Writes `groups` as colon-separated hex without leading zeros at `at`; returns the end.
fn hex_groups(buf: &mut [u8; 48], mut at: usize, groups: &[u16]) -> usize {
    for (i, &g) in groups.iter().enumerate() {
        if i > 0 {
            buf[at] = b':';
            at += 1;
        }
        let digits = (16 - g.leading_zeros()).div_ceil(4).max(1);
        for d in (0..digits).rev() {
            buf[at] = b"0123456789abcdef"[usize::from((g >> (4 * d)) & 0xf)];
            at += 1;
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    /// The serde_json documents this module replaced, unchanged: the reference every
    /// hand-written line is compared with.
    mod oracle {
        use std::collections::BTreeMap;

        use serde::Serialize;

        use super::super::*;

        pub fn event_line(r: &ConnectionRecord) -> Vec<u8> {
            let doc = EcsDoc::event(r, "event");
            let mut out = serde_json::to_vec(&doc).unwrap();
            out.push(b'\n');
            out
        }

        pub fn alert_line(a: &Alert) -> Vec<u8> {
            let mut doc = EcsDoc::event(&a.event, "alert");
            doc.timestamp = a.timestamp.to_rfc3339();
            doc.event.severity = Some(a.level.severity());
            doc.event.risk_score = a.risk_score;
            doc.rule = Some(RuleOut {
                id: &a.rule.id,
                name: &a.rule.name,
                description: &a.rule.description,
                reference: &a.rule.reference,
                ruleset: &a.rule.ruleset,
            });
            doc.threat = Some(ThreatOut {
                framework: "MITRE ATT&CK",
                technique: TechniqueOut { id: &a.techniques },
            });
            if !a.labels.is_empty() {
                doc.labels = Some(&a.labels);
            }
            doc.monitor.detector = Some(a.detector.as_str());
            doc.monitor.level = Some(a.level.as_str());
            doc.monitor.aggregate = a.aggregate.as_ref();
            doc.monitor.beacon = a.beacon.as_ref();
            let mut out = serde_json::to_vec(&doc).unwrap();
            out.push(b'\n');
            out
        }

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
    }

    /// xorshift64*: reproducible cases without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len() as u64) as usize]
        }

        fn number(&mut self) -> u32 {
            match self.below(4) {
                0 => self.below(10) as u32,
                1 => self.below(100_000) as u32,
                2 => u32::MAX,
                _ => self.next() as u32,
            }
        }

        /// Text an attacker could put in a process name or command line: every control
        /// character, quotes, backslashes, DEL, non-ASCII, `text_from_bytes` of invalid
        /// UTF-8, forged JSON and newlines, between runs of plain text of every length.
        fn hostile(&mut self) -> String {
            let len = self.below(60) as usize;
            let mut s = String::new();
            while s.len() < len {
                match self.below(12) {
                    0 => s.push(char::from(self.below(0x20) as u8)),
                    1 => s.push(self.pick(&['"', '\\', '\u{7f}', '/', '\''])),
                    2 => s.push(self.pick(&['é', '€', '𝄞', '\u{2028}', '\u{fffd}', 'ÿ', '\u{80}'])),
                    3 => {
                        let bytes: Vec<u8> =
                            (0..1 + self.below(4)).map(|_| self.next() as u8).collect();
                        s.push_str(&text_from_bytes(&bytes));
                    }
                    4 => s.push_str("\n{\"event\":{\"kind\":\"alert\"},\"forged\":\"1\"}\r\n"),
                    5 => s.push_str(r"\x41\u0000\\"),
                    _ => {
                        for _ in 0..1 + self.below(20) {
                            s.push(char::from(b' ' + self.below(0x5f) as u8));
                        }
                    }
                }
            }
            s
        }

        fn text(&mut self) -> Option<String> {
            match self.below(10) {
                0 | 1 => None,
                2 => Some(String::new()),
                _ => Some(self.hostile()),
            }
        }

        fn list(&mut self, max: u64) -> Vec<String> {
            (0..self.below(max + 1)).map(|_| self.hostile()).collect()
        }

        fn timestamp(&mut self) -> Timestamp {
            let base = 1_795_000_000 * Timestamp::NANOS_PER_SEC + self.below(1 << 45) as i64;
            Timestamp(match self.below(6) {
                0 => self.next() as i64,
                1 => base - base % Timestamp::NANOS_PER_SEC,
                2 => base - base % 1_000_000,
                3 => base - base % 1_000,
                4 => -base,
                _ => base,
            })
        }

        fn address(&mut self) -> IpAddr {
            match self.below(5) {
                0 | 1 => IpAddr::V4(Ipv4Addr::from(self.next() as u32)),
                2 => IpAddr::V6(Ipv4Addr::from(self.next() as u32).to_ipv6_mapped()),
                3 => IpAddr::V6(Ipv6Addr::from(self.segments())),
                _ => self
                    .pick(&[
                        "::",
                        "::1",
                        "::ffff:0:0",
                        "::2:3",
                        "1::",
                        "2001:db8::1",
                        "fe80::1:0:0:1",
                        "::0.0.0.1",
                        "0.0.0.0",
                        "255.255.255.255",
                        "10.0.0.1",
                    ])
                    .parse()
                    .unwrap(),
            }
        }

        /// IPv6 groups with runs of zeros in random places and random widths.
        fn segments(&mut self) -> [u16; 8] {
            let zeros = self.next();
            std::array::from_fn(|i| {
                if zeros >> i & 1 == 1 {
                    0
                } else {
                    let bits = self.pick(&[4, 8, 12, 16]);
                    (self.next() >> (64 - bits)) as u16
                }
            })
        }

        fn float(&mut self) -> f64 {
            match self.below(4) {
                0 => f64::from_bits(self.next()),
                1 => self.pick(&[
                    0.0,
                    -0.0,
                    f64::NAN,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    5e-324,
                    1e300,
                ]),
                _ => self.below(1_000_000) as f64 / 7.0,
            }
        }

        fn record(&mut self) -> ConnectionRecord {
            ConnectionRecord {
                timestamp: self.timestamp(),
                host_name: self.hostile().into(),
                process: Arc::new(ProcessInfo {
                    pid: self.number(),
                    tid: self.chance(70).then(|| self.number()),
                    name: self.text(),
                    executable: self.text(),
                    command_line: self.text(),
                    args: self.list(4),
                    parent: ParentInfo {
                        pid: self.chance(70).then(|| self.number()),
                        name: self.text(),
                        executable: self.text(),
                        command_line: self.text(),
                    },
                    user_id: self.chance(70).then(|| self.number()),
                    user_name: self.text(),
                    group_id: self.chance(70).then(|| self.number()),
                    container_id: self.text(),
                }),
                source: self.chance(70).then(|| Endpoint {
                    ip: self.address(),
                    port: if self.chance(20) {
                        0
                    } else {
                        self.next() as u16
                    },
                }),
                destination: Endpoint {
                    ip: self.address(),
                    port: self.next() as u16,
                },
                transport: self.pick(&[Transport::Tcp, Transport::Udp]),
                partial: self.chance(30),
                suppressed: if self.chance(50) { 0 } else { self.number() },
                probe: self.pick(&[
                    None,
                    Some("fentry"),
                    Some("kprobe"),
                    Some("tracepoint"),
                    Some("cgroup"),
                ]),
            }
        }

        fn alert(&mut self, level: Level, detector: Detector) -> Alert {
            let mut description = self.hostile();
            for _ in 0..self.below(4) {
                description.push_str(&self.hostile());
            }
            Alert {
                timestamp: self.timestamp(),
                event: self.record(),
                rule: Arc::new(RuleMeta {
                    id: self.hostile(),
                    name: self.hostile(),
                    description,
                    reference: self.list(3),
                    ruleset: self.hostile(),
                }),
                techniques: self.list(3),
                detector,
                level,
                risk_score: self.chance(50).then(|| self.number()),
                labels: (0..self.below(4))
                    .map(|_| (self.hostile(), self.hostile()))
                    .collect::<BTreeMap<_, _>>(),
                aggregate: self.chance(30).then(|| Aggregate {
                    count: self.next(),
                    first_seen: self.hostile(),
                    last_seen: self.hostile(),
                    destination_ips: self.list(3),
                    destination_ports: (0..self.below(4)).map(|_| self.next() as u16).collect(),
                }),
                beacon: self.chance(30).then(|| BeaconStats {
                    connections: self.next(),
                    median_interval_s: self.float(),
                    mean_interval_s: self.float(),
                    jitter: self.float(),
                    score: self.float(),
                }),
            }
        }
    }

    /// Fails with both lines as text, so a difference can be read.
    fn assert_same(ours: &[u8], serde: &[u8]) {
        assert!(
            ours == serde,
            "hand-written:\n{}\nserde_json:\n{}",
            String::from_utf8_lossy(ours),
            String::from_utf8_lossy(serde)
        );
    }

    fn put<F: FnOnce(&mut String)>(write: F) -> String {
        let mut s = String::new();
        write(&mut s);
        s
    }

    #[test]
    fn events_are_written_as_serde_json_wrote_them() {
        let mut rng = Rng(0x5eed_0001);
        for _ in 0..20_000 {
            let r = rng.record();
            let mut line = Vec::new();
            r.write_json(&mut line);
            assert_same(&line, &oracle::event_line(&r));
            assert_eq!(r.to_json_line().as_bytes(), &line[..]);
            let object = put(|s| r.write_json_object(s));
            assert_eq!(object.as_bytes(), &line[..line.len() - 1]);
        }
    }

    #[test]
    fn alerts_are_written_as_serde_json_wrote_them() {
        let levels = [
            Level::Informational,
            Level::Low,
            Level::Medium,
            Level::High,
            Level::Critical,
        ];
        let mut rng = Rng(0x5eed_0002);
        for i in 0..10_000 {
            let a = rng.alert(levels[i % 5], [Detector::Rule, Detector::Beacon][i / 5 % 2]);
            let mut line = Vec::new();
            a.write_json(&mut line);
            assert_same(&line, &oracle::alert_line(&a));
            assert_eq!(a.to_json_line().as_bytes(), &line[..]);
            let object = put(|s| a.write_json_object(s));
            assert_eq!(object.as_bytes(), &line[..line.len() - 1]);
        }
    }

    #[test]
    fn every_character_is_escaped_as_serde_json_escapes_it_at_every_position() {
        let specials: Vec<char> = (0u8..0x80)
            .map(char::from)
            .chain(['é', '€', '𝄞', '\u{2028}'])
            .collect();
        for &c in &specials {
            for len in 1..=26 {
                for at in 0..len {
                    let s: String = (0..len).map(|i| if i == at { c } else { 'a' }).collect();
                    assert_eq!(
                        put(|o| put_str(o, &s)),
                        serde_json::to_string(&s).unwrap(),
                        "{s:?}"
                    );
                    // Every byte but one needing escape.
                    let s: String = (0..len).map(|i| if i == at { 'a' } else { c }).collect();
                    assert_eq!(
                        put(|o| put_str(o, &s)),
                        serde_json::to_string(&s).unwrap(),
                        "{s:?}"
                    );
                }
            }
        }
        let mut rng = Rng(0x5eed_0003);
        for _ in 0..50_000 {
            let s = rng.hostile();
            assert_eq!(
                put(|o| put_str(o, &s)),
                serde_json::to_string(&s).unwrap(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        let ns = Timestamp::NANOS_PER_SEC;
        let edges = [
            i64::MIN,
            i64::MIN + 1,
            i64::MAX,
            i64::MAX - 1,
            0,
            1,
            -1,
            ns,
            -ns,
            ns - 1,
            1 - ns,
            1_000,
            1_000_000,
            -1_000,
            -1_000_000,
            123_000_000,
            120_000,
            86_400 * ns - 1,
            -86_400 * ns,
            951_782_400 * ns,
            951_868_800 * ns,
            4_107_542_400 * ns,
            -2_208_988_800 * ns,
        ];
        let mut rng = Rng(0x5eed_0004);
        let random = (0..200_000).map(|_| rng.timestamp().0);
        for t in edges.into_iter().chain(random) {
            let ts = Timestamp(t);
            assert_eq!(put(|o| put_timestamp(o, ts)), ts.to_rfc3339(), "{t}");
        }
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut rng = Rng(0x5eed_0005);
        let check = |ip: IpAddr| assert_eq!(put(|o| put_ip(o, ip)), ip.to_string(), "{ip:?}");
        // Every placement of zero groups, with small and wide groups around them.
        for zeros in 0..256u32 {
            for fill in [1u16, 0xa, 0xab, 0xabc, 0xabcd, 0xffff] {
                let seg: [u16; 8] =
                    std::array::from_fn(|i| if zeros >> i & 1 == 1 { 0 } else { fill });
                check(IpAddr::V6(Ipv6Addr::from(seg)));
            }
        }
        for b in 0..=255u8 {
            check(IpAddr::V4(Ipv4Addr::new(b, b / 3, 255 - b, b % 10)));
        }
        for _ in 0..100_000 {
            let ip = rng.address();
            check(ip);
        }
    }

    /// A command line made to look like the end of a record and the start of a forged one
    /// stays inside its string: one line, no raw control byte, the same text read back.
    #[test]
    fn hostile_command_line_cannot_forge_a_record() {
        let mut rng = Rng(0x5eed_0006);
        let mut r = rng.record();
        let all_controls: String = (0u8..0x20).chain([0x7f]).map(char::from).collect();
        let cmd = format!(
            "sh -c x\"}}}}\n{{\"@timestamp\":\"2020-01-01T00:00:00Z\",\"event\":{{\"kind\":\"alert\"}}}}\n\\{all_controls}"
        );
        let mut p = (*r.process).clone();
        p.command_line = Some(cmd.clone());
        p.name = Some("\u{1b}[31mred\r".to_string());
        r.process = Arc::new(p);
        let line = r.to_json_line();
        assert_eq!(line.find('\n'), Some(line.len() - 1), "one line: {line:?}");
        assert!(
            !line.trim_end().bytes().any(|b| b < 0x20),
            "no raw control byte: {line:?}"
        );
        let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(doc["process"]["command_line"], cmd.as_str());
        assert_eq!(doc["process"]["name"], "\u{1b}[31mred\r");
        assert_eq!(doc["event"]["kind"], "event");
        assert_same(line.as_bytes(), &oracle::event_line(&r));
    }
}
