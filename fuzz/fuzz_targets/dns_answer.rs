//! The DNS answer path (monitor/src/dns/parse.rs): arbitrary bytes as a kernel-captured
//! answer, over UDP and TCP, whole or cut. It must parse or be refused (counted), never
//! panic or hang; a parsed answer's names are safe text (no control character, no quote
//! or backslash that is not part of an `\xNN` escape), its addresses belong to the name
//! asked, and its record writes as one JSON line that reads back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::dns::parse_answer;

fuzz_target!(|data: &[u8]| {
    let (flags, payload) = match data.split_first() {
        Some((f, rest)) => (*f, rest),
        None => return,
    };
    // The kernel copies at most `monitor_common::DNS_PAYLOAD_LEN` (512) bytes.
    let payload = &payload[..payload.len().min(512)];
    let Ok(q) = parse_answer(payload, flags & 1 != 0, flags & 2 != 0) else {
        return;
    };
    // Printable ASCII only, and a backslash only as the start of `\xNN`.
    let safe = |s: &str| {
        let b = s.as_bytes();
        b.iter().enumerate().all(|(i, &c)| {
            (0x21..=0x7e).contains(&c) && (c != b'\\' || b.get(i + 1) == Some(&b'x'))
        })
    };
    for name in std::iter::once(&q.question_name).chain(q.answers.iter().map(|a| &a.name)) {
        assert!(safe(name) || name.is_empty(), "unsafe name text {name:?}");
    }
    assert!(q.answers.len() <= monitor::dns::parse::MAX_ANSWERS);
    monitor::fuzzing::dns_record_round_trip(&q);
});
