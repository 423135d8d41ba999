//! The ECS JSON form of records and alerts (what every output writes).
//!
//! Length: over 800 lines (about 2,000) with its serde_json oracle tests, one job; only
//! `record::json` reaches it.
//!
//! The documents have a fixed shape, so they are written by hand: keys are constant text,
//! numbers go through `itoa`, and strings are escaped sixteen bytes at a time. The output
//! is byte for byte what serde_json wrote for the former `EcsDoc` structs (kept in the
//! tests as the oracle): the same key order, the same escaping (`"`, `\`, and every control
//! character below 0x20 as `\b \f \n \r \t` or `\u00XX`; DEL and non-ASCII UTF-8
//! unchanged), so attacker-controlled names and command lines cannot break a record or
//! forge another.
//!
//! Most of a record repeats from the one before: the same process (its command line and
//! arguments are most of the text), the same rule, the same addresses, the same second.
//! Each thread keeps what it wrote for those (`WriterCaches`) and copies it.

use std::cell::RefCell;

use crate::arc_slots::ArcSlots;

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
        WriterCaches::with(|caches| write_doc(out, caches, self, self.timestamp, None, None));
    }

    /// `write_json_object` with `event.id` (the outputs' records).
    pub(crate) fn write_json_object_with_id<S: JsonSink>(&self, out: &mut S, id: &str) {
        WriterCaches::with(|caches| write_doc(out, caches, self, self.timestamp, None, Some(id)));
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
        WriterCaches::with(|caches| {
            write_doc(out, caches, &self.event, self.timestamp, Some(self), None)
        });
    }

    /// `write_json_object` with `event.id` (the outputs' records).
    pub(crate) fn write_json_object_with_id<S: JsonSink>(&self, out: &mut S, id: &str) {
        WriterCaches::with(|caches| {
            write_doc(
                out,
                caches,
                &self.event,
                self.timestamp,
                Some(self),
                Some(id),
            )
        });
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
fn write_doc<S: JsonSink>(
    out: &mut S,
    caches: &mut WriterCaches,
    r: &ConnectionRecord,
    ts: Timestamp,
    alert: Option<&Alert>,
    id: Option<&str>,
) {
    out.put("{\"@timestamp\":\"");
    caches.second.put(out, ts);
    out.put(if alert.is_some() {
        "\",\"event\":{\"kind\":\"alert\""
    } else {
        "\",\"event\":{\"kind\":\"event\""
    });
    if let Some(id) = id {
        // Hex digits only (output::event_id): nothing to escape.
        out.put(",\"id\":\"");
        out.put(id);
        out.put("\"");
    }
    if r.dns.is_some() {
        out.put(",\"category\":[\"network\"],\"type\":[\"protocol\",\"info\"],\"action\":");
    } else if let Some(l) = &r.life {
        out.put(",\"category\":[\"network\"],\"type\":");
        out.put(l.action().event_type());
        out.put(",\"action\":");
    } else {
        out.put(",\"category\":[\"network\"],\"type\":[\"connection\",\"start\"],\"action\":");
    }
    put_literal(out, r.action());
    let life = r.life.as_deref();
    if let Some(l) = life {
        put_life_event(out, l);
    }
    if let Some(a) = alert {
        out.put(",\"severity\":");
        put_u32(out, a.level.severity());
        if let Some(score) = a.risk_score {
            out.put(",\"risk_score\":");
            put_u32(out, score);
        }
    }
    out.put("},\"host\":{\"hostname\":");
    caches.host.put(out, &r.host_name, put_str::<String>);
    out.put("}");
    caches.processes.put(out, &r.process, write_process);

    let (src_bytes, src_packets) =
        life.map_or((None, None), |l| (l.source_bytes, l.source_packets));
    if let Some(src) = r.source {
        out.put(",\"source\":{\"ip\":\"");
        caches.addresses.put(out, src.ip);
        out.put("\"");
        if src.port != 0 {
            out.put(",\"port\":");
            put_u32(out, src.port.into());
        }
        put_counts(out, src_bytes, src_packets);
        out.put("}");
    } else if src_bytes.is_some() || src_packets.is_some() {
        // No address (an unbound or wildcard-bound local end): the counts alone, the first
        // without its comma.
        out.put(",\"source\":{");
        match (src_bytes, src_packets) {
            (Some(b), p) => {
                out.put("\"bytes\":");
                put_u64(out, b);
                put_counts(out, None, p);
            }
            (None, p) => {
                out.put("\"packets\":");
                put_u64(out, p.unwrap_or(0));
            }
        }
        out.put("}");
    }
    out.put(",\"destination\":{\"ip\":\"");
    caches.addresses.put(out, r.destination.ip);
    out.put("\",\"port\":");
    put_u32(out, r.destination.port.into());
    put_opt_field(out, ",\"domain\":", r.domain.as_deref());
    if let Some(l) = life {
        put_counts(out, l.destination_bytes, l.destination_packets);
    }
    out.put("},\"network\":{\"transport\":");
    put_literal(out, r.transport.as_str());
    out.put(",\"type\":");
    put_literal(out, r.network_type());
    out.put(if r.ingress() {
        ",\"direction\":\"ingress\""
    } else {
        ",\"direction\":\"egress\""
    });
    if let Some(l) = life {
        put_network_totals(out, l);
    }
    out.put("}");
    if let Some(id) = &r.process.container_id {
        out.put(",\"container\":{\"id\":");
        put_str(out, id);
        out.put("}");
    }
    if let Some(q) = &r.dns {
        put_dns(out, q);
    }
    if let Some(code) = life.and_then(|l| l.error_code.as_deref()) {
        out.put(",\"error\":{\"code\":");
        put_str(out, code);
        out.put("}");
    }

    if let Some(a) = alert {
        caches.rules.put(out, &a.rule, write_rule);
        out.put(",\"threat\":{\"framework\":\"MITRE ATT&CK\",\"technique\":{\"id\":");
        put_str_array(out, &a.techniques);
        // ECS keeps sub-techniques (`T1059.004`) in their own field as well.
        if a.techniques.iter().any(|t| is_subtechnique(t)) {
            out.put(",\"subtechnique\":{\"id\":[");
            let subs = a.techniques.iter().filter(|t| is_subtechnique(t));
            for (i, t) in subs.enumerate() {
                if i > 0 {
                    out.put(",");
                }
                put_str(out, t);
            }
            out.put("]}");
        }
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
    if r.dns_resolver {
        out.put(",\"dns_resolver\":true");
    }
    if r.domain.is_some()
        && let Some(src) = r.domain_source
    {
        out.put(",\"domain_source\":");
        put_literal(out, src.as_str());
    }
    if let Some(id) = r.connection_id {
        out.put(",\"connection_id\":\"");
        out.put(&super::connection_id_text(id));
        out.put("\"");
    }
    if let Some(reason) = life.and_then(|l| l.reason.as_deref()) {
        out.put(",\"outcome_reason\":");
        put_str(out, reason);
    }
    if let Some(l) = life
        && l.action() == LifeAction::Flow
    {
        out.put(if l.flow_idle {
            ",\"flow_end\":\"idle\""
        } else {
            ",\"flow_end\":\"close\""
        });
    }
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
        if let Some(c) = &a.correlation {
            put_correlation(out, c);
        }
    }
    out.put("}}");
}

/// `,"process":{...},"user":{...}` and `,"group":{...}`: everything the document takes
/// from the process, except `container` (which comes later).
fn write_process(out: &mut String, p: &ProcessInfo) {
    out.put(",\"process\":{\"pid\":");
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
    if let Some(sha256) = p.sha256() {
        out.put(",\"hash\":{\"sha256\":");
        put_str(out, sha256);
        out.put("}");
    }
    if !p.ancestors.is_empty() {
        out.put(",\"ancestors\":");
        put_str_array(out, &p.ancestors);
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
    if let Some(uid) = &p.user_id {
        fields.key(out, "\"id\":");
        put_id(out, uid);
    }
    if let Some(name) = &p.user_name {
        fields.key(out, "\"name\":");
        put_str(out, name);
    }
    out.put("}");
    if let Some(gid) = &p.group_id {
        out.put(",\"group\":{\"id\":");
        put_id(out, gid);
        out.put("}");
    }
}

/// `,"rule":{...}`.
fn write_rule(out: &mut String, rule: &RuleMeta) {
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
    out.put("}");
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
    // Numbers under fixed keys cannot fail to serialize.
    out.put(&serde_json::to_string(beacon).expect("serialize beacon stats"));
}

/// `,"correlation":{...}`. Only correlation alerts carry it (one per group and window), and
/// its group values are of any JSON type, so serde_json writes it (strings escaped as
/// everywhere else: no value can break the line or the record).
fn put_correlation<S: JsonSink>(out: &mut S, c: &Correlation) {
    out.put(",\"correlation\":");
    // Strings, numbers and JSON values under fixed keys cannot fail to serialize.
    out.put(&serde_json::to_string(c).expect("serialize correlation"));
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

// ---- what each thread keeps ----------------------------------------------------------

/// Sets (log2) of the process, rule and host-name caches (two texts each), and the longest
/// text one keeps.
const PROCESS_SET_BITS: u32 = 7;
const RULE_SET_BITS: u32 = 5;
const HOST_SET_BITS: u32 = 1;
#[cfg(test)]
const PROCESS_SLOTS: usize = 2 << PROCESS_SET_BITS;
#[cfg(test)]
const RULE_SLOTS: usize = 2 << RULE_SET_BITS;
const FRAGMENT_MAX: usize = 16 * 1024;
/// Slots of the address cache: a busy host talks to a few thousand addresses.
const ADDRESS_SLOTS: usize = 1024;

/// Text this thread wrote before, reused while its source is unchanged. Bounded: about
/// 300 KiB per writing thread for typical processes and rules (at most 5 MiB, plus one
/// host name).
struct WriterCaches {
    processes: FragmentCache<ProcessInfo>,
    rules: FragmentCache<RuleMeta>,
    addresses: AddressTexts,
    host: FragmentCache<str>,
    second: SecondCache,
}

impl WriterCaches {
    fn new() -> Self {
        WriterCaches {
            processes: FragmentCache::new(PROCESS_SET_BITS),
            rules: FragmentCache::new(RULE_SET_BITS),
            addresses: AddressTexts::new(),
            host: FragmentCache::new(HOST_SET_BITS),
            second: SecondCache {
                secs: i64::MIN,
                text: String::new(),
            },
        }
    }

    fn with<R>(f: impl FnOnce(&mut WriterCaches) -> R) -> R {
        thread_local! {
            static CACHES: RefCell<WriterCaches> = RefCell::new(WriterCaches::new());
        }
        CACHES.with_borrow_mut(f)
    }
}

/// The text written for values shared through an `Arc` (processes, rules, the host name),
/// found by the `Arc`'s address (`ArcSlots`: an equal address is the same, unchanged value).
struct FragmentCache<T: ?Sized> {
    owners: ArcSlots<T>,
    /// Per slot of `owners`.
    texts: Box<[String]>,
}

impl<T: ?Sized> FragmentCache<T> {
    /// `2 << set_bits` texts.
    fn new(set_bits: u32) -> Self {
        let owners = ArcSlots::new(set_bits);
        FragmentCache {
            texts: (0..owners.len()).map(|_| String::new()).collect(),
            owners,
        }
    }

    /// Puts what `write` writes for `value`: the kept text, or written now and kept.
    fn put<S: JsonSink>(&mut self, out: &mut S, value: &Arc<T>, write: fn(&mut String, &T)) {
        let (slot, kept) = self.owners.slot_of(value);
        let text = &mut self.texts[slot];
        if !kept {
            text.clear();
            write(text, value);
            if text.len() > FRAGMENT_MAX {
                // Too big to keep: written once, then the memory goes back.
                out.put(text);
                *text = String::new();
                self.owners.forget(slot);
                return;
            }
        }
        out.put(text);
    }
}

/// Address text, direct-mapped by the address.
struct AddressTexts {
    keys: Box<[Option<IpAddr>]>,
    texts: Box<[String]>,
}

impl AddressTexts {
    fn new() -> Self {
        AddressTexts {
            keys: vec![None; ADDRESS_SLOTS].into_boxed_slice(),
            texts: (0..ADDRESS_SLOTS).map(|_| String::new()).collect(),
        }
    }

    fn put<S: JsonSink>(&mut self, out: &mut S, ip: IpAddr) {
        let bits = match ip {
            IpAddr::V4(v4) => u64::from(v4.to_bits()),
            IpAddr::V6(v6) => {
                let b = v6.to_bits();
                (b as u64) ^ (b >> 64) as u64 ^ 0x6
            }
        };
        let slot = (bits.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize % ADDRESS_SLOTS;
        let text = &mut self.texts[slot];
        if self.keys[slot] != Some(ip) {
            text.clear();
            write_ip(text, ip);
            self.keys[slot] = Some(ip);
        }
        out.put(text);
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of the last second written.
struct SecondCache {
    /// Seconds since the epoch; `i64::MIN` (no `Timestamp` has it) until the first.
    secs: i64,
    text: String,
}

impl SecondCache {
    /// `Timestamp::to_rfc3339` (chrono, `SecondsFormat::AutoSi`, `Z`): the second, then
    /// `.mmm`, `.uuuuuu` or `.nnnnnnnnn` as the nanoseconds need, then `Z`.
    fn put<S: JsonSink>(&mut self, out: &mut S, ts: Timestamp) {
        let secs = ts.0.div_euclid(Timestamp::NANOS_PER_SEC);
        let nanos = ts.0.rem_euclid(Timestamp::NANOS_PER_SEC) as u32;
        if secs != self.secs {
            self.text.clear();
            if !write_second(&mut self.text, secs) {
                self.secs = i64::MIN;
                out.put(&ts.to_rfc3339());
                return;
            }
            self.secs = secs;
        }
        out.put(&self.text);
        let (frac, scale) = if nanos == 0 {
            (0, 0)
        } else if nanos.is_multiple_of(1_000_000) {
            (nanos / 1_000_000, 1_000)
        } else if nanos.is_multiple_of(1_000) {
            (nanos / 1_000, 1_000_000)
        } else {
            (nanos, 1_000_000_000)
        };
        if scale > 0 {
            // A leading 1 keeps the zero padding; it is cut off again.
            let mut digits = itoa::Buffer::new();
            let digits = digits.format(u64::from(frac) + scale);
            out.put(".");
            out.put(&digits[1..]);
        }
        out.put("Z");
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of `secs` since the epoch, or false for a year outside 0 to 9999
/// (unreachable for i64 nanoseconds, years 1677 to 2262; chrono writes such years signed).
fn write_second(out: &mut String, secs: i64) -> bool {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return false;
    }
    let mut buf = [0u8; 19];
    let mut two = |at: usize, v: u32| {
        buf[at] = b'0' + (v / 10) as u8;
        buf[at + 1] = b'0' + (v % 10) as u8;
    };
    let year = year as u32;
    two(0, year / 100);
    two(2, year % 100);
    two(5, month);
    two(8, day);
    two(11, sod / 3600);
    two(14, sod / 60 % 60);
    two(17, sod % 60);
    for (at, sep) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        buf[at] = sep;
    }
    out.put(std::str::from_utf8(&buf).expect("ASCII digits"));
    true
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

// ---- values --------------------------------------------------------------------------

#[inline]
fn put_u32<S: JsonSink>(out: &mut S, n: u32) {
    out.put(itoa::Buffer::new().format(n));
}

/// `user.id` / `group.id`: a string in ECS, a number's digits quoted, any other text as
/// given (escaped: it comes from the input).
fn put_id<S: JsonSink>(out: &mut S, id: &AccountId) {
    match id {
        AccountId::Num(n) => {
            out.put("\"");
            put_u32(out, *n);
            out.put("\"");
        }
        AccountId::Text(t) => put_str(out, t),
    }
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

/// A technique id with a sub-technique suffix (`T1059.004`).
pub(crate) fn is_subtechnique(id: &str) -> bool {
    id.contains('.')
}

/// `,"outcome":..,"duration":..` inside `event` of a lifecycle record.
fn put_life_event<S: JsonSink>(out: &mut S, l: &Lifecycle) {
    match l.success {
        Some(true) => out.put(",\"outcome\":\"success\""),
        Some(false) => out.put(",\"outcome\":\"failure\""),
        None => {}
    }
    if let Some(d) = l.duration_ns {
        out.put(",\"duration\":");
        put_u64(out, d);
    }
}

/// `,"bytes":..,"packets":..` of one end.
fn put_counts<S: JsonSink>(out: &mut S, bytes: Option<u64>, packets: Option<u64>) {
    if let Some(b) = bytes {
        out.put(",\"bytes\":");
        put_u64(out, b);
    }
    if let Some(p) = packets {
        out.put(",\"packets\":");
        put_u64(out, p);
    }
}

/// `network.bytes` and `network.packets`: both ends together, when both are known.
fn put_network_totals<S: JsonSink>(out: &mut S, l: &Lifecycle) {
    if let (Some(a), Some(b)) = (l.source_bytes, l.destination_bytes) {
        out.put(",\"bytes\":");
        put_u64(out, a.saturating_add(b));
    }
    if let (Some(a), Some(b)) = (l.source_packets, l.destination_packets) {
        out.put(",\"packets\":");
        put_u64(out, a.saturating_add(b));
    }
}

fn put_u64<S: JsonSink>(out: &mut S, n: u64) {
    out.put(itoa::Buffer::new().format(n));
}

/// `,"dns":{...}`: ECS `dns.*` of a DNS query record.
fn put_dns<S: JsonSink>(out: &mut S, q: &DnsQuery) {
    out.put(",\"dns\":{\"type\":\"answer\",\"question\":{\"name\":");
    put_str(out, &q.question_name);
    out.put(",\"type\":");
    put_str(out, &q.question_type);
    out.put("},\"response_code\":");
    put_str(out, &q.response_code);
    out.put(",\"answers\":[");
    for (i, a) in q.answers.iter().enumerate() {
        if i > 0 {
            out.put(",");
        }
        out.put("{\"name\":");
        put_str(out, &a.name);
        out.put(",\"type\":");
        put_str(out, &a.kind);
        out.put(",\"ttl\":");
        put_u32(out, a.ttl);
        if !a.data.is_empty() {
            out.put(",\"data\":");
            put_str(out, &a.data);
        }
        out.put("}");
    }
    out.put("],\"resolved_ip\":[");
    let mut text = String::new();
    for (i, ip) in q.resolved_ip.iter().enumerate() {
        if i > 0 {
            out.put(",");
        }
        text.clear();
        write_ip(&mut text, *ip);
        out.put("\"");
        out.put(&text);
        out.put("\"");
    }
    out.put("]}");
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
fn word_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Whether any of 16 bytes needs escaping. Written so LLVM turns it into a few SSE2
/// instructions (compares and a mask) instead of sixteen branches.
#[inline(always)]
fn block_needs_escape(block: &[u8; 16]) -> bool {
    let mut any = false;
    for &b in block {
        any |= (b < 0x20) | (b == b'"') | (b == b'\\');
    }
    any
}

/// A JSON string: quoted and escaped. Runs that need no escaping are copied whole; they are
/// found sixteen bytes at a time.
fn put_str<S: JsonSink>(out: &mut S, s: &str) {
    out.put("\"");
    let bytes = s.as_bytes();
    let len = bytes.len();
    let mut run = 0; // start of the bytes not yet written
    if len < 16 {
        // Short strings (names, paths, users) are mostly clean: one test, no loop.
        let clean = if len >= 8 {
            escape_mask(word_at(bytes, 0)) | escape_mask(word_at(bytes, len - 8)) == 0
        } else {
            !bytes.iter().any(|&b| needs_escape(b))
        };
        if !clean {
            escape_range(out, s, &mut run, 0, len);
        }
    } else {
        let mut at = 0; // bytes before this are done
        while at < len {
            // The last block may overlap the one before it.
            let block = if at + 16 <= len { at } else { len - 16 };
            let end = block + 16;
            if block_needs_escape(bytes[block..end].try_into().expect("16 bytes")) {
                escape_range(out, s, &mut run, at, end);
            }
            at = end;
        }
    }
    out.put(&s[run..]);
    out.put("\"");
}

/// Escapes the bytes of `s[from..to]` that need it, writing each with the unwritten run
/// before it (from `*run`). Eight bytes at a time where there are eight.
fn escape_range<S: JsonSink>(out: &mut S, s: &str, run: &mut usize, from: usize, to: usize) {
    let bytes = s.as_bytes();
    let mut escape = |out: &mut S, at: usize| {
        // `bytes[at]` is ASCII, so `at` and `at + 1` are character boundaries.
        out.put(&s[*run..at]);
        out.put(escape_of(bytes[at]));
        *run = at + 1;
    };
    if to < 8 {
        for (at, &b) in bytes.iter().enumerate().take(to).skip(from) {
            if needs_escape(b) {
                escape(out, at);
            }
        }
        return;
    }
    let mut at = from;
    while at < to {
        // The last word may overlap bytes already done; their bits are cleared.
        let word = at.min(to - 8);
        let mut mask = escape_mask(word_at(bytes, word)) & (!0u64 << (8 * (at - word)));
        while mask != 0 {
            escape(out, word + (mask.trailing_zeros() / 8) as usize);
            mask &= mask - 1;
        }
        at = word + 8;
    }
}

/// An address as `IpAddr`'s `Display` writes it (RFC 5952 for IPv6: lower-case hex, the
/// first longest run of two or more zero groups as `::`, mapped IPv4 as `::ffff:a.b.c.d`).
pub(crate) fn write_ip(out: &mut String, ip: IpAddr) {
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
                technique: TechniqueOut {
                    id: &a.techniques,
                    subtechnique: a.techniques.iter().any(|t| is_subtechnique(t)).then(|| {
                        SubtechniqueOut {
                            id: a.techniques.iter().filter(|t| is_subtechnique(t)).collect(),
                        }
                    }),
                },
            });
            if !a.labels.is_empty() {
                doc.labels = Some(&a.labels);
            }
            doc.monitor.detector = Some(a.detector.as_str());
            doc.monitor.level = Some(a.level.as_str());
            doc.monitor.aggregate = a.aggregate.as_ref();
            doc.monitor.beacon = a.beacon.as_ref();
            doc.monitor.correlation = a.correlation.as_deref();
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
            source: Option<EndpointOut<'a>>,
            destination: EndpointOut<'a>,
            network: NetworkOut,
            #[serde(skip_serializing_if = "Option::is_none")]
            container: Option<ContainerOut<'a>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            dns: Option<DnsOut<'a>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            error: Option<ErrorOut<'a>>,
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
                let life = r.life.as_deref();
                let counts = |b: Option<u64>, p: Option<u64>| (b, p);
                let (src_bytes, src_packets) =
                    life.map_or((None, None), |l| counts(l.source_bytes, l.source_packets));
                let (dst_bytes, dst_packets) = life.map_or((None, None), |l| {
                    counts(l.destination_bytes, l.destination_packets)
                });
                let total = |a: Option<u64>, b: Option<u64>| match (a, b) {
                    (Some(a), Some(b)) => Some(a.saturating_add(b)),
                    _ => None,
                };
                let source = match r.source {
                    Some(s) => Some(EndpointOut {
                        ip: Some(s.ip.to_string()),
                        port: if s.port == 0 { None } else { Some(s.port) },
                        domain: None,
                        bytes: src_bytes,
                        packets: src_packets,
                    }),
                    None if src_bytes.is_some() || src_packets.is_some() => Some(EndpointOut {
                        ip: None,
                        port: None,
                        domain: None,
                        bytes: src_bytes,
                        packets: src_packets,
                    }),
                    None => None,
                };
                EcsDoc {
                    timestamp: r.timestamp.to_rfc3339(),
                    event: EventOut {
                        kind,
                        category: ["network"],
                        r#type: if r.dns.is_some() {
                            ["protocol", "info"]
                        } else {
                            match life.map(|l| l.action()) {
                                Some(LifeAction::Close | LifeAction::Flow) => ["connection", "end"],
                                Some(LifeAction::Outcome | LifeAction::Listen) => {
                                    ["connection", "info"]
                                }
                                _ => ["connection", "start"],
                            }
                        },
                        action: r.action(),
                        outcome: life
                            .and_then(|l| l.success)
                            .map(|s| if s { "success" } else { "failure" }),
                        duration: life.and_then(|l| l.duration_ns),
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
                        hash: p.sha256().map(|sha256| HashOut { sha256 }),
                        ancestors: if p.ancestors.is_empty() {
                            None
                        } else {
                            Some(&p.ancestors)
                        },
                        parent: ParentOut {
                            pid: p.parent.pid,
                            name: p.parent.name.as_deref(),
                            executable: p.parent.executable.as_deref(),
                            command_line: p.parent.command_line.as_deref(),
                        },
                    },
                    user: UserOut {
                        id: p.user_id.as_ref().map(|u| u.to_string()),
                        name: p.user_name.as_deref(),
                    },
                    group: p.group_id.as_ref().map(|g| IdOut { id: g.to_string() }),
                    source,
                    destination: EndpointOut {
                        ip: Some(r.destination.ip.to_string()),
                        port: Some(r.destination.port),
                        domain: r.domain.as_deref(),
                        bytes: dst_bytes,
                        packets: dst_packets,
                    },
                    network: NetworkOut {
                        transport: r.transport.as_str(),
                        r#type: r.network_type(),
                        direction: if r.ingress() { "ingress" } else { "egress" },
                        bytes: total(src_bytes, dst_bytes),
                        packets: total(src_packets, dst_packets),
                    },
                    container: p.container_id.as_deref().map(|id| ContainerOut { id }),
                    dns: r.dns.as_deref().map(|q| DnsOut {
                        r#type: "answer",
                        question: QuestionOut {
                            name: &q.question_name,
                            r#type: &q.question_type,
                        },
                        response_code: &q.response_code,
                        answers: q
                            .answers
                            .iter()
                            .map(|a| AnswerOut {
                                name: &a.name,
                                r#type: &a.kind,
                                ttl: a.ttl,
                                data: (!a.data.is_empty()).then_some(a.data.as_str()),
                            })
                            .collect(),
                        resolved_ip: q.resolved_ip.iter().map(|ip| ip.to_string()).collect(),
                    }),
                    error: life
                        .and_then(|l| l.error_code.as_deref())
                        .map(|code| ErrorOut { code }),
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
                        dns_resolver: r.dns_resolver.then_some(true),
                        domain_source: r.domain.as_ref().and(r.domain_source).map(|d| d.as_str()),
                        connection_id: r.connection_id.map(connection_id_text),
                        outcome_reason: life.and_then(|l| l.reason.as_deref()),
                        flow_end: life
                            .filter(|l| l.action() == LifeAction::Flow)
                            .map(|l| if l.flow_idle { "idle" } else { "close" }),
                        detector: None,
                        level: None,
                        aggregate: None,
                        beacon: None,
                        correlation: None,
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
            outcome: Option<&'static str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            duration: Option<u64>,
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
            #[serde(skip_serializing_if = "Option::is_none")]
            hash: Option<HashOut<'a>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            ancestors: Option<&'a Vec<String>>,
            parent: ParentOut<'a>,
        }

        #[derive(Serialize)]
        struct HashOut<'a> {
            sha256: &'a str,
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
        struct EndpointOut<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            ip: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            port: Option<u16>,
            #[serde(skip_serializing_if = "Option::is_none")]
            domain: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            bytes: Option<u64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            packets: Option<u64>,
        }

        #[derive(Serialize)]
        struct ErrorOut<'a> {
            code: &'a str,
        }

        #[derive(Serialize)]
        struct DnsOut<'a> {
            r#type: &'static str,
            question: QuestionOut<'a>,
            response_code: &'a str,
            answers: Vec<AnswerOut<'a>>,
            resolved_ip: Vec<String>,
        }

        #[derive(Serialize)]
        struct QuestionOut<'a> {
            name: &'a str,
            r#type: &'a str,
        }

        #[derive(Serialize)]
        struct AnswerOut<'a> {
            name: &'a str,
            r#type: &'a str,
            ttl: u32,
            #[serde(skip_serializing_if = "Option::is_none")]
            data: Option<&'a str>,
        }

        #[derive(Serialize)]
        struct NetworkOut {
            transport: &'static str,
            r#type: &'static str,
            direction: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            bytes: Option<u64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            packets: Option<u64>,
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
            #[serde(skip_serializing_if = "Option::is_none")]
            subtechnique: Option<SubtechniqueOut<'a>>,
        }

        #[derive(Serialize)]
        struct SubtechniqueOut<'a> {
            id: Vec<&'a String>,
        }

        #[derive(Serialize)]
        struct MonitorOut<'a> {
            enrichment: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            suppressed: Option<u32>,
            #[serde(skip_serializing_if = "Option::is_none")]
            probe: Option<&'static str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            dns_resolver: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            domain_source: Option<&'static str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            connection_id: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            outcome_reason: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            flow_end: Option<&'static str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            detector: Option<&'static str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            level: Option<&'static str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            aggregate: Option<&'a Aggregate>,
            #[serde(skip_serializing_if = "Option::is_none")]
            beacon: Option<&'a BeaconStats>,
            #[serde(skip_serializing_if = "Option::is_none")]
            correlation: Option<&'a Correlation>,
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

        /// Mostly numbers; sometimes text as a replayed record may carry it.
        fn account_id(&mut self) -> AccountId {
            if self.chance(80) {
                return self.number().into();
            }
            match self.below(3) {
                0 => AccountId::Text("S-1-5-18".into()),
                1 => AccountId::Text(format!("{:03}", self.below(100)).into()),
                _ => AccountId::Text(self.hostile().into()),
            }
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
                    user_id: self.chance(70).then(|| self.account_id()),
                    user_name: self.text(),
                    group_id: self.chance(70).then(|| self.account_id()),
                    container_id: self.text(),
                    hashes: self
                        .chance(50)
                        .then(|| format!("SHA256={:064x}", self.next()).into()),
                    ancestors: self.list(3),
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
                dns_resolver: self.chance(20),
                domain: self.chance(30).then(|| self.hostile().into()),
                domain_source: self.pick(&[
                    None,
                    Some(DomainSource::Process),
                    Some(DomainSource::Host),
                ]),
                dns: self.chance(20).then(|| {
                    Arc::new(DnsQuery::new(
                        self.hostile(),
                        self.hostile(),
                        "NOERROR".into(),
                        (0..self.below(3))
                            .map(|_| DnsAnswerRecord {
                                name: self.hostile(),
                                kind: "A".into(),
                                ttl: self.number(),
                                data: if self.chance(20) {
                                    String::new()
                                } else {
                                    self.hostile()
                                },
                            })
                            .collect(),
                        (0..self.below(3)).map(|_| self.address()).collect(),
                    ))
                }),
                connection_id: self.chance(30).then(|| self.next()),
                life: self.chance(40).then(|| {
                    Arc::new(Lifecycle {
                        action: self.pick(&[
                            None,
                            Some(LifeAction::Outcome),
                            Some(LifeAction::Close),
                            Some(LifeAction::Accept),
                            Some(LifeAction::Listen),
                            Some(LifeAction::Flow),
                        ]),
                        success: self.pick(&[None, Some(true), Some(false)]),
                        reason: self.chance(30).then(|| self.hostile()),
                        error_code: self.chance(30).then(|| self.hostile()),
                        ingress: self.chance(50),
                        flow_idle: self.chance(50),
                        duration_ns: self.chance(50).then(|| self.next()),
                        source_bytes: self.chance(50).then(|| self.next()),
                        destination_bytes: self.chance(50).then(|| self.next()),
                        source_packets: self.chance(50).then(|| self.next()),
                        destination_packets: self.chance(50).then(|| self.next()),
                    })
                }),
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
                techniques: self.list(3).into(),
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
                    sizes: self.chance(50).then(|| self.next()),
                    median_bytes: self.chance(50).then(|| self.float()),
                    size_jitter: self.chance(50).then(|| self.float()),
                    size_score: self.chance(50).then(|| self.float()),
                }),
                correlation: self.chance(30).then(|| {
                    Box::new(Correlation {
                        kind: "value_count",
                        rules: self.list(2),
                        group: (0..self.below(3))
                            .map(|_| (self.hostile(), self.hostile().into()))
                            .collect(),
                        count: self.next(),
                        field: Some(self.list(1)),
                        values: Some(self.list(3).into_iter().map(Into::into).collect()),
                        first_seen: self.hostile(),
                        last_seen: self.hostile(),
                        timespan: self.hostile(),
                    })
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
        // More shared processes than cache slots, so slots are reused and evicted too.
        let shared: Vec<Arc<ProcessInfo>> = (0..PROCESS_SLOTS * 3 / 2)
            .map(|_| rng.record().process)
            .collect();
        let hosts: Vec<Arc<str>> = (0..3).map(|_| rng.hostile().into()).collect();
        for _ in 0..20_000 {
            let mut r = rng.record();
            if rng.chance(60) {
                r.process = shared[rng.below(shared.len() as u64) as usize].clone();
            }
            if rng.chance(60) {
                r.host_name = hosts[rng.below(hosts.len() as u64) as usize].clone();
            }
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
        // Shared rules and processes, more than the caches have slots.
        let rules: Vec<Arc<RuleMeta>> = (0..RULE_SLOTS * 3 / 2)
            .map(|_| rng.alert(Level::Low, Detector::Rule).rule)
            .collect();
        let processes: Vec<Arc<ProcessInfo>> =
            (0..PROCESS_SLOTS).map(|_| rng.record().process).collect();
        for i in 0..10_000 {
            let mut a = rng.alert(levels[i % 5], [Detector::Rule, Detector::Beacon][i / 5 % 2]);
            if rng.chance(70) {
                a.rule = rules[rng.below(rules.len() as u64) as usize].clone();
            }
            if rng.chance(50) {
                a.event.process = processes[rng.below(processes.len() as u64) as usize].clone();
            }
            let mut line = Vec::new();
            a.write_json(&mut line);
            assert_same(&line, &oracle::alert_line(&a));
            assert_eq!(a.to_json_line().as_bytes(), &line[..]);
            let object = put(|s| a.write_json_object(s));
            assert_eq!(object.as_bytes(), &line[..line.len() - 1]);
        }
    }

    #[test]
    fn sub_techniques_are_also_written_as_ecs_subtechnique_ids() {
        let mut rng = Rng(0x5eed_000b);
        let mut a = rng.alert(Level::High, Detector::Rule);
        a.techniques = vec!["T1059.004".to_string(), "T1571".to_string()].into();
        let line = a.to_json_line();
        assert_same(line.as_bytes(), &oracle::alert_line(&a));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let t = &v["threat"]["technique"];
        assert_eq!(t["id"], serde_json::json!(["T1059.004", "T1571"]));
        assert_eq!(t["subtechnique"]["id"], serde_json::json!(["T1059.004"]));

        a.techniques = vec!["T1571".to_string()].into();
        let line = a.to_json_line();
        assert_same(line.as_bytes(), &oracle::alert_line(&a));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(v["threat"]["technique"].get("subtechnique").is_none());
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
        let random: Vec<i64> = (0..200_000).map(|_| rng.timestamp().0).collect();
        // Runs within one second and across second boundaries, as a stream has them.
        let mut t = 1_795_000_000 * ns - 3;
        let stream = std::iter::from_fn(|| {
            t += rng.pick(&[1, 7, 1_000, 999_999, 1_000_000, 10_000_000, 333_333_333]);
            Some(t)
        })
        .take(100_000)
        .collect::<Vec<_>>();
        let mut second = WriterCaches::new().second;
        for t in edges.into_iter().chain(random).chain(stream) {
            let ts = Timestamp(t);
            assert_eq!(put(|o| second.put(o, ts)), ts.to_rfc3339(), "{t}");
        }
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut rng = Rng(0x5eed_0005);
        let mut cache = AddressTexts::new();
        let mut check = |ip: IpAddr| {
            assert_eq!(put(|o| write_ip(o, ip)), ip.to_string(), "{ip:?}");
            // Twice through the cache: written, then kept (or replaced by a colliding one).
            assert_eq!(put(|o| cache.put(o, ip)), ip.to_string(), "{ip:?}");
            assert_eq!(put(|o| cache.put(o, ip)), ip.to_string(), "{ip:?}");
        };
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

    fn event_with(process: &Arc<ProcessInfo>) -> ConnectionRecord {
        let mut r = Rng(0x5eed_0007).record();
        r.process = process.clone();
        r
    }

    /// The process text is cached per `Arc`; every way a process can change or go away
    /// gives the text of the process now in the record.
    #[test]
    fn cached_process_text_follows_the_process() {
        let mut rng = Rng(0x5eed_0008);
        let check =
            |r: &ConnectionRecord| assert_same(r.to_json_line().as_bytes(), &oracle::event_line(r));
        let a = rng.record().process;
        check(&event_with(&a));
        check(&event_with(&a));
        // `make_mut` cannot change the value in place while the cache holds a `Weak`.
        let mut b = a.clone();
        drop(a);
        Arc::make_mut(&mut b).command_line = Some("changed \"cmd\"\n".to_string());
        check(&event_with(&b));
        // A process dropped, then new ones allocated (the allocator may reuse addresses).
        drop(b);
        for _ in 0..1_000 {
            let p = rng.record().process;
            check(&event_with(&p));
            check(&event_with(&p));
        }
        // A process too big to keep is written in full every time.
        let mut big = (*rng.record().process).clone();
        big.args = (0..100)
            .map(|i| format!("{i}\"{}", "x".repeat(300)))
            .collect();
        let big = Arc::new(big);
        let r = event_with(&big);
        assert!(r.to_json_line().len() > FRAGMENT_MAX);
        check(&r);
        check(&r);
    }

    /// The rule text is cached per `Arc` too; a changed rule is written anew.
    #[test]
    fn cached_rule_text_follows_the_rule() {
        let mut rng = Rng(0x5eed_000a);
        let check = |a: &Alert| assert_same(a.to_json_line().as_bytes(), &oracle::alert_line(a));
        let mut a = rng.alert(Level::High, Detector::Rule);
        check(&a);
        check(&a);
        let mut rule = a.rule.clone();
        Arc::make_mut(&mut rule).description = "new\n\"description\"".to_string();
        a.rule = rule;
        check(&a);
        for _ in 0..500 {
            let b = rng.alert(Level::Low, Detector::Beacon);
            check(&b);
            check(&b);
        }
    }

    /// Each thread keeps its own cache; threads writing the same processes agree.
    #[test]
    fn threads_write_shared_processes_alike() {
        let mut rng = Rng(0x5eed_0009);
        let records: Vec<ConnectionRecord> = (0..2_000).map(|_| rng.record()).collect();
        let expected: Vec<Vec<u8>> = records.iter().map(oracle::event_line).collect();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for (r, want) in records.iter().zip(&expected) {
                        assert_same(r.to_json_line().as_bytes(), want);
                    }
                });
            }
        });
    }
}
