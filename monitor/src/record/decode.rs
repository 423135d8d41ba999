//! Replay input: ECS JSON lines back into `ConnectionRecord`s.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, Hasher as _};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use serde::Deserialize;

use super::*;

// ---- ECS input (replay) ----------------------------------------------------------------
//
// Two ways to one result. `decode_general` is serde_json into the `In*` structs: any field
// order, any valid JSON, and the error naming the field. `RecordDecoder::decode_fast` walks
// the line itself for the common case and gives up (returns `None`, and the general path
// runs) on anything it does not fully check: escapes in keys or in the fields it reads,
// `null` where an object or string is expected, duplicate fields, other record kinds,
// values out of range, any error. Whatever it skips is still checked (plain strings by
// itself, anything else by serde_json), so it never accepts a line the general path
// rejects.
//
// Most of a line is objects that repeat from line to line: `process`, `user`, `group` and
// `container` for every event of a process, and `event`, `host`, `network` and `monitor`
// in a handful of variants. The decoder remembers each such object by its exact bytes
// (`KnownObjects`): a repeat is recognised by comparing bytes, not parsed again, and the
// `ProcessInfo` built from one combination of process objects is shared (one `Arc`) by
// every record of that process.

/// Sets and ways of the known-object cache: up to 2,048 objects.
const OBJECT_SETS: usize = 256;
const OBJECT_WAYS: usize = 8;
/// Longest object remembered; longer ones (huge command lines) are parsed every time. With
/// the set count this bounds the cache at about 8 MiB.
const OBJECT_MAX_BYTES: usize = 4096;
/// Bytes of an object's start that choose its set.
const OBJECT_KEY_BYTES: usize = 64;
/// Most process combinations remembered (the table is emptied when full), and the most
/// bytes of JSON one may come from, so the table stays under about 10 MiB.
const PROCESS_COMBINATIONS: usize = 1024;
const PROCESS_COMBINATION_MAX_BYTES: usize = 4096;
/// Most `[` and `{` in a value parsed on its own. serde_json limits nesting to 128 for the
/// whole line; a value parsed on its own starts at depth 0, so deep ones go to the general
/// path, which applies the limit as it always has.
const MAX_BRACKETS_IN_PART: usize = 64;
/// Slots of the address cache, and the longest address text it keeps (an IPv6 address
/// with an embedded IPv4 one is at most 45 characters).
const ADDRESS_SLOTS: usize = 256;
const ADDRESS_MAX_BYTES: usize = 45;

/// The top-level objects the decoder remembers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ObjectField {
    Event,
    Host,
    Network,
    Monitor,
    Process,
    User,
    Group,
    Container,
}

/// What a known object says.
#[derive(Clone, Debug)]
enum ObjectValue {
    /// `event` of kind `event` (other kinds go the general way).
    Event,
    Host(Arc<str>),
    Network(Transport),
    Monitor {
        partial: bool,
        suppressed: u32,
    },
    /// One of the process objects: the `ProcessInfo` belongs to the combination.
    ProcessPart,
}

struct KnownObject {
    field: ObjectField,
    /// Unique for the decoder's life (0 is never used), so ids name one set of bytes.
    id: u64,
    bytes: Box<[u8]>,
    value: ObjectValue,
}

/// Objects seen before, by their exact bytes: a small set-associative cache.
struct KnownObjects {
    /// `OBJECT_SETS` × `OBJECT_WAYS` slots; empty when caching is off.
    slots: Vec<Option<KnownObject>>,
    /// The way each set replaces next.
    victims: Vec<u8>,
    next_id: u64,
    hasher: foldhash::fast::FixedState,
}

impl KnownObjects {
    fn new(caching: bool) -> Self {
        let (slots, sets) = if caching {
            (OBJECT_SETS * OBJECT_WAYS, OBJECT_SETS)
        } else {
            (0, 0)
        };
        KnownObjects {
            slots: (0..slots).map(|_| None).collect(),
            victims: vec![0; sets],
            next_id: 1,
            hasher: foldhash::fast::FixedState::with_seed(0x7265_706c_6179),
        }
    }

    fn caching(&self) -> bool {
        !self.slots.is_empty()
    }

    /// The set an object starting at `rest` belongs to. An object runs at least to the
    /// first `}` (its own closing brace is one), so the bytes up to there, at most
    /// `OBJECT_KEY_BYTES` of them, are the object's own in any line.
    fn set_of(&self, field: ObjectField, rest: &[u8]) -> Option<usize> {
        let head = &rest[..rest.len().min(OBJECT_KEY_BYTES)];
        let key = match memchr::memchr(b'}', head) {
            Some(close) => &head[..=close],
            // No `}` in the first OBJECT_KEY_BYTES: the object is longer than that.
            None if head.len() == OBJECT_KEY_BYTES => head,
            None => return None,
        };
        let mut h = self.hasher.build_hasher();
        h.write_u8(field as u8);
        h.write(key);
        Some((h.finish() as usize) % OBJECT_SETS)
    }

    /// The known object `rest` starts with. Its bytes are a whole JSON object, so a line
    /// that starts with them holds exactly that object there.
    fn find(&self, set: usize, field: ObjectField, rest: &[u8]) -> Option<&KnownObject> {
        self.slots[set * OBJECT_WAYS..(set + 1) * OBJECT_WAYS]
            .iter()
            .flatten()
            .find(|o| o.field == field && rest.starts_with(&o.bytes))
    }

    /// Remembers an object checked by serde_json; its id, or 0 when it is not kept.
    fn insert(&mut self, set: usize, field: ObjectField, text: &str, value: ObjectValue) -> u64 {
        if !self.caching() || text.len() > OBJECT_MAX_BYTES {
            return 0;
        }
        let id = self.next_id;
        self.next_id += 1;
        let ways = &mut self.slots[set * OBJECT_WAYS..(set + 1) * OBJECT_WAYS];
        let way = match ways.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                let v = &mut self.victims[set];
                let way = usize::from(*v);
                *v = ((way + 1) % OBJECT_WAYS) as u8;
                way
            }
        };
        ways[way] = Some(KnownObject {
            field,
            id,
            bytes: text.as_bytes().into(),
            value,
        });
        id
    }

    /// Reads the object at the cursor: from the cache, or checked by serde_json (the
    /// process objects are parsed with their combination, in `RecordDecoder::process`).
    fn read<'a>(
        &mut self,
        field: ObjectField,
        c: &mut Cursor<'a>,
    ) -> Option<(ObjectPart<'a>, ObjectValue)> {
        if c.peek()? != b'{' {
            return None;
        }
        let start = c.pos;
        let mut set = 0;
        if self.caching() {
            let rest = &c.bytes()[start..];
            set = self.set_of(field, rest)?;
            if let Some(o) = self.find(set, field, rest) {
                c.pos += o.bytes.len();
                let part = ObjectPart {
                    text: &c.text[start..c.pos],
                    id: o.id,
                    set,
                };
                return Some((part, o.value.clone()));
            }
        }
        let text = c.object_span()?;
        let value = match field {
            ObjectField::Event => {
                let e: InEvent = parse_part(text)?;
                if e.kind.is_some_and(|k| k != "event") {
                    return None;
                }
                ObjectValue::Event
            }
            ObjectField::Host => {
                let h: InHost = parse_part(text)?;
                ObjectValue::Host(h.hostname.unwrap_or_default().into())
            }
            ObjectField::Network => {
                let n: InNetwork = parse_part(text)?;
                ObjectValue::Network(transport_of(n.transport.as_deref())?)
            }
            ObjectField::Monitor => {
                let m: InMonitor = parse_part(text)?;
                ObjectValue::Monitor {
                    partial: m.enrichment.as_deref() == Some("partial"),
                    suppressed: m.suppressed.unwrap_or(0),
                }
            }
            // Kept once the combination has parsed.
            _ => return Some((ObjectPart { text, id: 0, set }, ObjectValue::ProcessPart)),
        };
        let id = self.insert(set, field, text, value.clone());
        Some((ObjectPart { text, id, set }, value))
    }
}

/// A top-level member name `decode_fast` knows.
#[derive(Clone, Copy)]
enum TopLevel {
    Timestamp,
    Source,
    Destination,
    Object(ObjectField),
    Other,
}

/// One object of a line: its text, its known-object id (0 if not kept) and its set.
#[derive(Clone, Copy)]
struct ObjectPart<'a> {
    text: &'a str,
    id: u64,
    set: usize,
}

/// Decodes replay lines into records (see the section comment).
pub(crate) struct RecordDecoder {
    objects: KnownObjects,
    /// Known-object ids of `process`, `user`, `group`, `container` (0: absent) -> process.
    processes: HashMap<[u64; 4], Arc<ProcessInfo>, foldhash::fast::FixedState>,
    /// Recent addresses that are not dotted quads (IPv6), by their text: std's parser is
    /// the slowest step of a line, and a host talks to the same few again and again.
    /// Direct-mapped; empty when caching is off.
    addresses: Vec<Option<(Box<str>, IpAddr)>>,
}

impl RecordDecoder {
    /// A decoder that remembers objects across lines.
    pub(crate) fn new() -> Self {
        RecordDecoder {
            objects: KnownObjects::new(true),
            processes: HashMap::default(),
            addresses: (0..ADDRESS_SLOTS).map(|_| None).collect(),
        }
    }

    /// A decoder for one line: nothing remembered.
    pub(super) fn uncached() -> Self {
        RecordDecoder {
            objects: KnownObjects::new(false),
            processes: HashMap::default(),
            addresses: Vec::new(),
        }
    }

    /// Decodes one line: `Ok(None)` for records of other kinds (alerts, metrics).
    pub(crate) fn decode(&mut self, line: &str) -> Result<Option<ConnectionRecord>, RecordError> {
        match self.decode_fast(line) {
            Some(rec) => Ok(Some(rec)),
            None => decode_general(line),
        }
    }

    /// The common case, or `None` to leave the line to `decode_general`.
    fn decode_fast(&mut self, line: &str) -> Option<ConnectionRecord> {
        let mut ts = None;
        let mut host = None;
        let mut parts: [Option<ObjectPart<'_>>; 4] = [None; 4];
        let mut source = None;
        let mut destination = None;
        let mut transport = None;
        let mut monitor = None;
        // Fields seen, one bit each: serde rejects a duplicate, so it goes the general way.
        let mut seen = 0u16;
        let mut c = Cursor::new(line);
        c.ws();
        c.eat(b'{')?;
        c.ws();
        // `{}` is an error (no destination) the general path names.
        if c.peek()? == b'}' {
            return None;
        }
        loop {
            c.ws();
            let (bit, member) = c.top_level_key()?;
            c.ws();
            c.eat(b':')?;
            c.ws();
            if seen & (1 << bit) != 0 {
                return None;
            }
            // Unknown members share bit 11; they may repeat.
            seen |= (1 << bit) & 0x7ff;
            match member {
                TopLevel::Timestamp => ts = Some(c.plain_str()?),
                TopLevel::Source => source = Some(c.endpoint()?),
                TopLevel::Destination => destination = Some(c.endpoint()?),
                TopLevel::Other => c.skip_value()?,
                TopLevel::Object(field) => {
                    let (part, value) = self.objects.read(field, &mut c)?;
                    match value {
                        ObjectValue::Event => {}
                        ObjectValue::Host(h) => host = Some(h),
                        ObjectValue::Network(t) => transport = Some(t),
                        ObjectValue::Monitor {
                            partial,
                            suppressed,
                        } => monitor = Some((partial, suppressed)),
                        ObjectValue::ProcessPart => parts[bit - 7] = Some(part),
                    }
                }
            }
            c.ws();
            match c.peek()? {
                b',' => c.pos += 1,
                b'}' => {
                    c.pos += 1;
                    break;
                }
                _ => return None,
            }
        }
        c.ws();
        if !c.at_end() {
            return None;
        }

        let (dip, dport) = destination?;
        let dip = self.address(dip?)?;
        let dport = u16::try_from(dport?).ok()?;
        let timestamp = parse_timestamp(ts?)?;
        let source = match source {
            Some((Some(ip), port)) => Some(Endpoint {
                ip: normalize_ip(self.address(ip)?),
                port: u16::try_from(port.unwrap_or(0)).ok()?,
            }),
            // The general path still checks a port without an address.
            Some((None, port)) => {
                u16::try_from(port.unwrap_or(0)).ok()?;
                None
            }
            None => None,
        };
        let (partial, suppressed) = monitor.unwrap_or((false, 0));
        let process = self.process(parts)?;
        Some(ConnectionRecord {
            timestamp,
            host_name: host.unwrap_or_else(|| Arc::from("")),
            process,
            source,
            destination: Endpoint {
                ip: normalize_ip(dip),
                port: dport,
            },
            transport: transport.unwrap_or(Transport::Tcp),
            partial,
            suppressed,
            probe: None,
        })
    }

    /// An address as `IpAddr::from_str` reads it.
    fn address(&mut self, text: &str) -> Option<IpAddr> {
        if let Some(v4) = parse_ipv4(text.as_bytes()) {
            return Some(IpAddr::V4(v4));
        }
        if self.addresses.is_empty() || text.len() > ADDRESS_MAX_BYTES {
            return text.parse().ok();
        }
        let slot = (self.objects.hasher.hash_one(text) as usize) % ADDRESS_SLOTS;
        if let Some((known, ip)) = &self.addresses[slot]
            && **known == *text
        {
            return Some(*ip);
        }
        let ip: IpAddr = text.parse().ok()?;
        self.addresses[slot] = Some((text.into(), ip));
        Some(ip)
    }

    /// The process of a line's `process`, `user`, `group` and `container` objects: the
    /// shared one when the same combination of known objects was seen before.
    fn process(&mut self, parts: [Option<ObjectPart<'_>>; 4]) -> Option<Arc<ProcessInfo>> {
        let ids = parts.map(|p| p.map_or(0, |p| p.id));
        let all_known = parts.iter().flatten().all(|p| p.id != 0);
        if all_known && let Some(info) = self.processes.get(&ids) {
            return Some(info.clone());
        }
        let [process, user, group, container] = parts.map(|p| p.map(|p| p.text));
        let info = Arc::new(build_process(
            parse_optional_part(process)?,
            parse_optional_part(user)?,
            parse_optional_part(group)?,
            parse_optional_part::<InContainer>(container)?.and_then(|c| c.id),
        ));
        let bytes: usize = parts.iter().flatten().map(|p| p.text.len()).sum();
        if !self.objects.caching() || bytes > PROCESS_COMBINATION_MAX_BYTES {
            return Some(info);
        }
        // Checked by serde_json now: remember the new objects, then the combination.
        let fields = [
            ObjectField::Process,
            ObjectField::User,
            ObjectField::Group,
            ObjectField::Container,
        ];
        let mut ids = ids;
        for ((p, field), id) in parts.iter().zip(fields).zip(&mut ids) {
            if let Some(p) = p
                && p.id == 0
            {
                *id = self
                    .objects
                    .insert(p.set, field, p.text, ObjectValue::ProcessPart);
            }
        }
        if parts.iter().zip(ids).all(|(p, id)| p.is_none() || id != 0) {
            if self.processes.len() >= PROCESS_COMBINATIONS {
                self.processes.clear();
            }
            self.processes.insert(ids, info.clone());
        }
        Some(info)
    }
}

/// `network.transport`: `tcp` when absent; `None` for anything but tcp or udp.
fn transport_of(t: Option<&str>) -> Option<Transport> {
    match t {
        Some(t) if t.eq_ignore_ascii_case("udp") => Some(Transport::Udp),
        Some(t) if t.eq_ignore_ascii_case("tcp") => Some(Transport::Tcp),
        Some(_) => None,
        None => Some(Transport::Tcp),
    }
}

fn set_once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

/// One object parsed on its own with the type `decode_general` gives it.
fn parse_part<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    if bracket_count(text) > MAX_BRACKETS_IN_PART {
        return None;
    }
    serde_json::from_str(text).ok()
}

fn parse_optional_part<T: serde::de::DeserializeOwned>(text: Option<&str>) -> Option<Option<T>> {
    match text {
        None => Some(None),
        Some(t) => parse_part(t).map(Some),
    }
}

/// Where a JSON string's contents stop: the first `"`, `\\` or control character. Eight
/// bytes at a time: a byte of `v` equal to `b` is a zero byte of `v ^ b·LO`, and
/// `(x − LO) & !x & HI` marks the lowest zero byte of `x` exactly (marks above it may be
/// spurious), so the lowest mark of the three tests is the first stop.
fn string_stop(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let v = u64::from_le_bytes(chunk.try_into().ok()?);
        let zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
        let quote = zero(v ^ (LO * u64::from(b'"')));
        let backslash = zero(v ^ (LO * u64::from(b'\\')));
        let control = v.wrapping_sub(LO * 0x20) & !v & HI;
        let stops = quote | backslash | control;
        if stops != 0 {
            return Some(i + (stops.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| i + p)
}

/// `a.b.c.d`, each 0 to 255 in one to three digits without a leading zero (what std
/// accepts); `None` for anything else, which std then reads or rejects.
fn parse_ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut v = 0u32;
        while i < b.len() && i - start < 3 && b[i].is_ascii_digit() {
            v = v * 10 + u32::from(b[i] - b'0');
            i += 1;
        }
        let len = i - start;
        if len == 0 || (len > 1 && b[start] == b'0') {
            return None;
        }
        *octet = u8::try_from(v).ok()?;
    }
    (i == b.len()).then_some(Ipv4Addr::from(octets))
}

fn bracket_count(s: &str) -> usize {
    s.bytes().filter(|&b| b == b'{' || b == b'[').count()
}

/// A position in a line for `decode_fast`. Every method returns `None` when what is at the
/// cursor is not what it reads.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor { text, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn at_end(&self) -> bool {
        self.pos == self.text.len()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.pos += 1)
    }

    /// A string without escapes or control characters, borrowed. The cursor moves only
    /// when it is one.
    fn plain_str(&mut self) -> Option<&'a str> {
        let b = self.bytes();
        if b.get(self.pos) != Some(&b'"') {
            return None;
        }
        let start = self.pos + 1;
        let len = string_stop(&b[start..])?;
        if b[start + len] != b'"' {
            return None;
        }
        self.pos = start + len + 1;
        // Both ends are ASCII quotes, so the slice is on character boundaries.
        Some(&self.text[start..start + len])
    }

    /// A JSON integer without sign, fraction or exponent.
    fn uint(&mut self) -> Option<u64> {
        let rest = &self.bytes()[self.pos..];
        let len = rest
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(rest.len());
        // No leading zeros (invalid JSON), at most 19 digits (fits a u64).
        if len == 0 || len > 19 || (len > 1 && rest[0] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = rest.get(len) {
            return None;
        }
        self.pos += len;
        Some(
            rest[..len]
                .iter()
                .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
        )
    }

    /// Any JSON value, checked and skipped: a plain string or an array of them here (the
    /// `event.category` kind), anything else by serde_json.
    fn skip_value(&mut self) -> Option<()> {
        let start = self.pos;
        match self.peek()? {
            b'"' if self.plain_str().is_some() => return Some(()),
            b'[' if self.plain_str_array().is_some() => return Some(()),
            _ => self.pos = start,
        }
        let rest = &self.text[start..];
        let mut values =
            serde_json::Deserializer::from_str(rest).into_iter::<serde::de::IgnoredAny>();
        values.next()?.ok()?;
        let len = values.byte_offset();
        if bracket_count(&rest[..len]) > MAX_BRACKETS_IN_PART {
            return None;
        }
        self.pos += len;
        Some(())
    }

    /// `[]` or `["a", "b", ...]` of plain strings.
    fn plain_str_array(&mut self) -> Option<()> {
        self.eat(b'[')?;
        self.ws();
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.ws();
            self.plain_str()?;
            self.ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The text of the object at the cursor, found by its braces outside strings; what is
    /// inside is checked by serde_json afterwards.
    fn object_span(&mut self) -> Option<&'a str> {
        if self.peek()? != b'{' {
            return None;
        }
        let start = self.pos;
        let b = self.bytes();
        let mut depth = 0usize;
        let mut i = start;
        loop {
            i += memchr::memchr3(b'"', b'{', b'}', &b[i..])?;
            match b[i] {
                b'"' => {
                    // To the closing quote: one not preceded by an escaping backslash.
                    i += 1;
                    loop {
                        i += memchr::memchr2(b'"', b'\\', &b[i..])?;
                        if b[i] == b'\\' {
                            i += 2;
                            if i > b.len() {
                                return None;
                            }
                        } else {
                            break;
                        }
                    }
                }
                b'{' => depth += 1,
                _ => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos = i + 1;
                        return Some(&self.text[start..i + 1]);
                    }
                }
            }
            i += 1;
        }
    }

    /// A top-level member name, told by its first letter and then compared whole (with
    /// both quotes), and its bit in `decode_fast`'s duplicate check (11: unknown).
    fn top_level_key(&mut self) -> Option<(usize, TopLevel)> {
        use ObjectField as F;
        let rest = &self.bytes()[self.pos..];
        let (name, bit, member): (&[u8], usize, TopLevel) = match rest.get(1)? {
            b'@' => (b"\"@timestamp\"", 0, TopLevel::Timestamp),
            b's' => (b"\"source\"", 1, TopLevel::Source),
            b'd' => (b"\"destination\"", 2, TopLevel::Destination),
            b'e' => (b"\"event\"", 3, TopLevel::Object(F::Event)),
            b'h' => (b"\"host\"", 4, TopLevel::Object(F::Host)),
            b'n' => (b"\"network\"", 5, TopLevel::Object(F::Network)),
            b'm' => (b"\"monitor\"", 6, TopLevel::Object(F::Monitor)),
            b'p' => (b"\"process\"", 7, TopLevel::Object(F::Process)),
            b'u' => (b"\"user\"", 8, TopLevel::Object(F::User)),
            b'g' => (b"\"group\"", 9, TopLevel::Object(F::Group)),
            b'c' => (b"\"container\"", 10, TopLevel::Object(F::Container)),
            _ => (b"", 11, TopLevel::Other),
        };
        if !name.is_empty() && rest.starts_with(name) {
            self.pos += name.len();
            return Some((bit, member));
        }
        self.plain_str()?;
        Some((11, TopLevel::Other))
    }

    /// `source` / `destination`: the address and port, either absent.
    fn endpoint(&mut self) -> Option<(Option<&'a str>, Option<u64>)> {
        let (mut ip, mut port) = (None, None);
        self.eat(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some((None, None));
        }
        loop {
            self.ws();
            // The two names compared whole, with their quotes; anything else is skipped.
            let rest = &self.bytes()[self.pos..];
            let name = if rest.starts_with(b"\"ip\"") {
                self.pos += 4;
                1
            } else if rest.starts_with(b"\"port\"") {
                self.pos += 6;
                2
            } else {
                self.plain_str()?;
                0
            };
            self.ws();
            self.eat(b':')?;
            self.ws();
            match name {
                1 => set_once(&mut ip, self.plain_str()?)?,
                2 => set_once(&mut port, self.uint()?)?,
                _ => self.skip_value()?,
            }
            self.ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some((ip, port));
                }
                _ => return None,
            }
        }
    }
}

/// `@timestamp`: the fixed shape the monitor writes, or anything else RFC 3339 through
/// chrono. Both give the same value for the same instant (tests below).
fn parse_timestamp(s: &str) -> Option<Timestamp> {
    parse_utc_timestamp(s.as_bytes()).or_else(|| Timestamp::parse_rfc3339(s).ok())
}

/// `YYYY-MM-DDTHH:MM:SS[.F{1,9}]Z` with a year from 1900 to 2200, else `None`.
fn parse_utc_timestamp(s: &[u8]) -> Option<Timestamp> {
    if s.len() < 20
        || s[4] != b'-'
        || s[7] != b'-'
        || s[10] != b'T'
        || s[13] != b':'
        || s[16] != b':'
        || *s.last()? != b'Z'
    {
        return None;
    }
    let digit = |i: usize| -> Option<i64> {
        let d = s[i].wrapping_sub(b'0');
        (d < 10).then_some(i64::from(d))
    };
    let two = |i: usize| Some(digit(i)? * 10 + digit(i + 1)?);
    let (year, month, day) = (two(0)? * 100 + two(2)?, two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    // A leap second (60) and far years go to chrono.
    if !(1900..=2200).contains(&year)
        || !(1..=month_days).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let frac = &s[19..s.len() - 1];
    let nanos = match frac {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let mut n = 0;
            for i in 20..20 + digits.len() {
                n = n * 10 + digit(i)?;
            }
            n * 10i64.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    // Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(Timestamp(secs * Timestamp::NANOS_PER_SEC + nanos))
}

/// The general path: serde_json into the `In*` structs.
fn decode_general(line: &str) -> Result<Option<ConnectionRecord>, RecordError> {
    let doc: InDoc = serde_json::from_str(line).map_err(|e| RecordError::Json(e.to_string()))?;
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
    let timestamp =
        parse_timestamp(&ts).ok_or_else(|| RecordError::Invalid("@timestamp", ts.clone()))?;
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
    let process = build_process(
        doc.process,
        doc.user,
        doc.group,
        doc.container.and_then(|c| c.id),
    );
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

/// The one place a `ProcessInfo` is built from input objects (both paths).
fn build_process(
    p: Option<InProcess>,
    user: Option<InId>,
    group: Option<InId>,
    container_id: Option<String>,
) -> ProcessInfo {
    let p = p.unwrap_or_default();
    let parent = p.parent.unwrap_or_default();
    let user = user.unwrap_or_default();
    let group = group.unwrap_or_default();
    ProcessInfo {
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
        container_id,
    }
}

// Everything optional: which fields are required is decided in `decode_general`, so the
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::sample;

    /// Lines of every shape replay meets: what the monitor writes (several variants), the
    /// bench workload's sorted keys, other orders and spacing, and lines the fast path
    /// must leave to the general one (escapes, nulls, duplicates, other kinds, errors).
    fn corpus() -> Vec<String> {
        let mut lines = vec![sample().to_json_line().trim_end().to_string()];
        let mut v = sample();
        v.source = Some(Endpoint {
            ip: "192.0.2.200".parse().unwrap(),
            port: 40000,
        });
        v.destination.ip = "2001:db8::7".parse().unwrap();
        v.transport = Transport::Udp;
        v.partial = true;
        v.suppressed = 12;
        v.probe = Some("cgroup");
        let p = Arc::make_mut(&mut v.process);
        p.container_id = Some("abc123".into());
        p.command_line = Some("python3 -c \"print('\u{7}')\"\t\u{e9}\\x".into());
        p.tid = None;
        lines.push(v.to_json_line().trim_end().to_string());
        let fixed = [
            // The bench workload: keys sorted, nine fractional digits.
            r#"{"@timestamp":"2026-11-23T00:00:01.000000005Z","event":{"kind":"event","category":["network"],"type":["connection","start"],"action":"connect"},"host":{"hostname":"bench-host"},"group":{"id":"1000"},"process":{"args":["curl","-s"],"command_line":"curl -s","executable":"/usr/bin/curl","name":"curl","parent":{"executable":"/usr/bin/bash","name":"bash","pid":1},"pid":42,"thread":{"id":42}},"user":{"id":"1000","name":"alice"},"source":{"ip":"192.0.2.200","port":32769},"destination":{"ip":"203.0.113.88","port":8088},"network":{"transport":"tcp","type":"ipv4","direction":"egress"},"monitor":{"enrichment":"full","probe":"tracepoint"}}"#,
            " { \"destination\" : { \"port\" : 443 , \"ip\" : \"198.51.100.1\" } ,\n\t\"@timestamp\" : \"2026-11-23T10:00:00+01:00\" , \"process\" : { } } ",
            r#"{"@timestamp":"2026-11-23T10:00:00Z","user":{"id":0,"name":"root"},"group":{"id":0},"destination":{"ip":"::ffff:203.0.113.9","port":80},"network":{"transport":"UDP"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","container":{"id":"c1"},"source":{"port":5},"destination":{"ip":"203.0.113.9","port":0},"monitor":{"suppressed":0}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","host":{"hostname":"h\u0031"},"destination":{"ip":"203.0.113.9","port":80}}"#,
            r#"{"@time\u0073tamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","source":null,"process":null,"event":{"kind":null},"destination":{"ip":"203.0.113.9","port":80}}"#,
            r#"{"event":{"kind":"alert"},"rule":{"id":"x","reference":[]},"destination":{"ip":"203.0.113.9","port":80}}"#,
            r#"{"event":{"kind":"metric"},"monitor":{"events":5}}"#,
            r#"{"event":{"kind":"alert"},"destination":{"ip":"203.0.113.9","port":"80"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"destination":{"ip":"203.0.113.9","port":81}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80,"port":81}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","process":{"pid":1},"process":{"pid":2},"destination":{"ip":"203.0.113.9","port":80}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9"}}"#,
            r#"{"destination":{"ip":"203.0.113.9","port":80}}"#,
            r#"{"@timestamp":"yesterday","destination":{"ip":"203.0.113.9","port":80}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.999","port":80}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":65536}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80.0}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":080}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":-80}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"network":{"transport":"sctp"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"source":{"port":70000}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"source":{"ip":"x"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"monitor":{"suppressed":4294967296}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"process":{"pid":"x"}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"user":{"id":[1]}}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80}} trailing"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},}"#,
            r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"x":tru}"#,
            "[]",
            "{}",
            "not json",
            "",
        ];
        lines.extend(fixed.iter().map(|s| s.to_string()));
        // Nesting in an unknown field: within serde_json's limit of 128, and beyond it.
        for depth in [60, 100, 130] {
            lines.push(format!(
                r#"{{"@timestamp":"2026-11-23T10:00:00Z","x":{}{},"destination":{{"ip":"203.0.113.9","port":80}}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            ));
        }
        // A process longer than the cache takes.
        let mut long = sample();
        Arc::make_mut(&mut long.process).command_line = Some("x".repeat(10_000));
        lines.push(long.to_json_line().trim_end().to_string());
        lines
    }

    /// The decoder (fast path, cold and warm cache, and uncached) gives what the general
    /// path gives, errors included.
    fn assert_paths_agree(dec: &mut RecordDecoder, line: &str) {
        let general = decode_general(line);
        assert_eq!(dec.decode(line), general, "line: {line}");
        assert_eq!(dec.decode(line), general, "again, from the cache: {line}");
        assert_eq!(
            RecordDecoder::uncached().decode(line),
            general,
            "uncached: {line}"
        );
    }

    #[test]
    fn fast_and_general_paths_give_the_same_records_and_errors() {
        let lines = corpus();
        let mut dec = RecordDecoder::new();
        for line in &lines {
            assert_paths_agree(&mut dec, line);
        }
        // The common shapes really take the fast path.
        for line in &lines[..6] {
            assert!(dec.decode_fast(line).is_some(), "fast path refused: {line}");
        }
        // Each error still names its field.
        assert_eq!(
            dec.decode(
                r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9"}}"#
            ),
            Err(RecordError::Missing("destination.port"))
        );
        assert_eq!(
            dec.decode(r#"{"destination":{"ip":"203.0.113.9","port":80}}"#),
            Err(RecordError::Missing("@timestamp"))
        );
        assert_eq!(
            dec.decode(r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"ip":"203.0.113.9","port":80},"network":{"transport":"sctp"}}"#),
            Err(RecordError::Invalid("network.transport", "sctp".into()))
        );
    }

    #[test]
    fn damaged_lines_decode_as_the_general_path_decodes_them() {
        // Every byte of three lines cut, dropped, or replaced by JSON punctuation, a digit,
        // a letter or a control character: whatever the fast path makes of the damage must
        // be what serde_json makes of it.
        let lines = corpus();
        let mut dec = RecordDecoder::new();
        let mut checked = 0;
        for line in &lines[..3] {
            dec.decode(line).unwrap();
            let b = line.as_bytes();
            for i in 0..b.len() {
                let mut variants = vec![b[..i].to_vec(), [&b[..i], &b[i + 1..]].concat()];
                for r in *b"\"\\{}[],: 0x-.\x01" {
                    let mut m = b.to_vec();
                    m[i] = r;
                    variants.push(m);
                }
                for v in &variants {
                    if let Ok(s) = std::str::from_utf8(v) {
                        assert_paths_agree(&mut dec, s);
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
    }

    #[test]
    fn one_process_one_shared_process_info() {
        let mut dec = RecordDecoder::new();
        let line = sample().to_json_line();
        let a = dec.decode(line.trim_end()).unwrap().unwrap();
        let other = line.replace("T10:00:00.500Z", "T10:00:01.500Z");
        assert_ne!(other, line);
        let b = dec.decode(other.trim_end()).unwrap().unwrap();
        assert!(
            Arc::ptr_eq(&a.process, &b.process),
            "same process bytes, same Arc"
        );
        assert!(
            Arc::ptr_eq(&a.host_name, &b.host_name),
            "same host, same Arc"
        );
        // Another user is another process, even with the same process object.
        let alice = line.replace(
            r#""user":{"id":"0","name":"root"}"#,
            r#""user":{"id":"1000","name":"alice"}"#,
        );
        assert_ne!(alice, line);
        let c = dec.decode(alice.trim_end()).unwrap().unwrap();
        assert_eq!(c.process.user_name.as_deref(), Some("alice"));
        assert_eq!(c.process.pid, a.process.pid);
    }

    #[test]
    fn timestamp_fast_path_matches_chrono() {
        let mut x = 0x5eed_u64;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        for i in 0..20_000u64 {
            // 1900-01-01 to 2199-12-31.
            let secs = -2_208_988_800 + (next() % (300 * 365 * 86_400)) as i64;
            let nanos = (next() % 1_000_000_000) as u32;
            let base = DateTime::<Utc>::from_timestamp(secs, 0)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string();
            let digits = (i % 10) as usize;
            let s = if digits == 0 {
                format!("{base}Z")
            } else {
                let frac = format!("{nanos:09}");
                format!("{base}.{}Z", &frac[..digits])
            };
            let fast = parse_utc_timestamp(s.as_bytes());
            assert!(fast.is_some(), "{s}");
            assert_eq!(fast, Timestamp::parse_rfc3339(&s).ok(), "{s}");
        }
        for s in [
            "2024-02-29T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2000-02-29T12:00:00.5Z",
            "1900-02-29T12:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-11-00T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T23:60:00Z",
            "2016-12-31T23:59:60Z",
            "2026-11-23t10:00:00z",
            "2026-11-23 10:00:00Z",
            "2026-11-23T10:00:00.1234567891Z",
            "2026-11-23T10:00:00.Z",
            "2026-11-23T10:00:00+02:00",
            "2026-11-23T10:00:00.25-00:30",
            "1899-12-31T23:59:59Z",
            "2201-01-01T00:00:00Z",
            "+2026-11-23T10:00:00Z",
            "2026-1-23T10:00:00Z",
            "2026-11-23T10:00:0aZ",
            "",
        ] {
            assert_eq!(parse_timestamp(s), Timestamp::parse_rfc3339(s).ok(), "{s}");
        }
    }

    #[test]
    fn string_scan_and_ipv4_parse_match_the_plain_definitions() {
        let mut x = 0xface_u64;
        let mut next = move || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        // Mostly printable bytes with the odd stop and high byte, every length to 40.
        let alphabet = b"abc09.:/ -_\"\\\x01\x1f\x7f\x80\xc3\xff";
        for _ in 0..50_000 {
            let len = (next() % 41) as usize;
            let b: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 16 == 0 {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    } else {
                        b'a' + (r >> 8) as u8 % 26
                    }
                })
                .collect();
            let naive = b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            assert_eq!(string_stop(&b), naive, "{b:?}");
        }
        // Addresses and near-addresses: what std accepts, this accepts the same way.
        let mut dec = RecordDecoder::new();
        let parts = [
            "0", "1", "01", "00", "9", "10", "99", "100", "199", "255", "256", "999", "1000", "",
            "a",
        ];
        for _ in 0..50_000 {
            let n = 1 + next() % 5;
            let mut s = String::new();
            for i in 0..n {
                if i > 0 {
                    s.push(if next() % 20 == 0 { ':' } else { '.' });
                }
                s.push_str(parts[(next() % parts.len() as u64) as usize]);
            }
            let std: Option<Ipv4Addr> = s.parse().ok();
            if let Some(fast) = parse_ipv4(s.as_bytes()) {
                assert_eq!(Some(fast), std, "{s}");
            }
            assert_eq!(dec.address(&s), s.parse::<IpAddr>().ok(), "{s}");
            assert_eq!(dec.address(&s), s.parse::<IpAddr>().ok(), "cached: {s}");
        }
        for s in [
            "203.0.113.7",
            "0.0.0.0",
            "255.255.255.255",
            "2001:db8::1",
            "::ffff:192.0.2.1",
        ] {
            assert_eq!(dec.address(s), s.parse().ok(), "{s}");
            assert_eq!(dec.address(s), s.parse().ok(), "cached: {s}");
        }
        assert!(parse_ipv4(b"192.0.2.1").is_some());
        // More IPv6 addresses than cache slots, each seen several times.
        for i in 0..3000 {
            let s = format!("2001:db8::{:x}", (i * 7) % 1000);
            assert_eq!(dec.address(&s), s.parse().ok(), "{s}");
        }
    }
}
