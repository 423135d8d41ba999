//! The replay decoder's address cache: recent addresses by their text. Reading one (std's
//! parser for IPv6) costs more than finding it, and a host talks to the same ones again and
//! again.
//!
//! An entry is found by the text's first and last eight bytes and its length: together
//! they are the whole text up to 16 bytes (every IPv4 address and most IPv6 ones), so such
//! a lookup is a few word comparisons; longer texts also compare their bytes. (The previous
//! form, the text as six zero-padded words, cost about 150 instructions per lookup.)

use std::net::IpAddr;

/// The longest address text kept: an IPv6 address with an embedded IPv4 one is at most 45
/// characters.
pub(super) const ADDRESS_MAX_BYTES: usize = 45;

/// An address in the cache.
#[derive(Clone, Copy)]
struct KnownAddress {
    head: u64,
    tail: u64,
    len: u8,
    /// The whole text, compared only when longer than 16 bytes.
    text: [u8; ADDRESS_MAX_BYTES],
    ip: IpAddr,
}

/// Two addresses per set, the more recently used first.
pub(super) struct ParsedAddresses {
    ways: Box<[Option<KnownAddress>]>,
    set_bits: u32,
}

/// The first and last eight bytes of `t` as little-endian words (overlapping when `t` is
/// shorter than 16 bytes); for a `t` shorter than 8, its bytes in one word, twice. With
/// the length they determine every text of up to 16 bytes.
#[inline(always)]
fn ends(t: &[u8]) -> (u64, u64) {
    match (t.first_chunk::<8>(), t.last_chunk::<8>()) {
        (Some(h), Some(l)) => (u64::from_le_bytes(*h), u64::from_le_bytes(*l)),
        _ => {
            let w = t.iter().rev().fold(0u64, |w, &b| (w << 8) | u64::from(b));
            (w, w)
        }
    }
}

impl ParsedAddresses {
    /// `2 << set_bits` addresses (`set_bits` from 1 to 30).
    pub(super) fn new(set_bits: u32) -> Self {
        assert!((1..=30).contains(&set_bits), "set_bits out of range");
        ParsedAddresses {
            ways: vec![None; 2 << set_bits].into_boxed_slice(),
            set_bits,
        }
    }

    /// The address `text` reads as (`parse` on a miss, its answer kept when `Some`).
    /// Texts longer than `ADDRESS_MAX_BYTES` go to `parse` every time.
    #[inline]
    pub(super) fn get(
        &mut self,
        text: &[u8],
        parse: impl FnOnce(&[u8]) -> Option<IpAddr>,
    ) -> Option<IpAddr> {
        let len = text.len();
        if len > ADDRESS_MAX_BYTES {
            return parse(text);
        }
        let (head, tail) = ends(text);
        let h = (head ^ tail.rotate_left(29) ^ len as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let set = 2 * (h >> (64 - self.set_bits)) as usize;
        let ways = &mut self.ways[set..set + 2];
        let known = |a: &Option<KnownAddress>| {
            a.as_ref().is_some_and(|a| {
                usize::from(a.len) == len
                    && a.head == head
                    && a.tail == tail
                    && (len <= 16 || a.text[..len] == *text)
            })
        };
        if known(&ways[0]) {
            return ways[0].as_ref().map(|a| a.ip);
        }
        if known(&ways[1]) {
            ways.swap(0, 1);
            return ways[0].as_ref().map(|a| a.ip);
        }
        let ip = parse(text)?;
        let mut kept = [0u8; ADDRESS_MAX_BYTES];
        kept[..len].copy_from_slice(text);
        ways[1] = ways[0].take();
        ways[0] = Some(KnownAddress {
            head,
            tail,
            len: len as u8,
            text: kept,
            ip,
        });
        Some(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn std_parse(t: &[u8]) -> Option<IpAddr> {
        std::str::from_utf8(t).ok()?.parse().ok()
    }

    #[test]
    fn ends_determine_short_texts() {
        // Texts of up to 16 bytes that differ in one byte anywhere differ in their ends.
        for len in 0..=16usize {
            let base: Vec<u8> = (0..len as u8).map(|i| b'0' + i).collect();
            for i in 0..len {
                let mut other = base.clone();
                other[i] = b'x';
                assert_ne!(ends(&base), ends(&other), "len {len}, byte {i}");
            }
        }
        assert_eq!(ends(b"1.2.3.4"), ends(b"1.2.3.4"));
        assert_eq!(ends(b""), (0, 0));
    }

    #[test]
    fn answers_as_the_parser_does_hit_or_miss() {
        let mut cache = ParsedAddresses::new(4);
        let texts = [
            "203.0.113.7",
            "0.0.0.0",
            "255.255.255.255",
            "2001:db8::1",
            "::ffff:192.0.2.1",
            "2001:db8:ffff:ffff:ffff:ffff:ffff:1",
            "2001:db8:ffff:ffff:ffff:ffff:ffff:2",
            "0000:0000:0000:0000:0000:ffff:192.168.100.200",
            "not an address",
            "",
            "1.2.3",
        ];
        for _ in 0..3 {
            for t in texts {
                assert_eq!(
                    cache.get(t.as_bytes(), std_parse),
                    std_parse(t.as_bytes()),
                    "{t}"
                );
            }
        }
    }

    #[test]
    fn long_texts_with_the_same_ends_are_told_apart() {
        let mut cache = ParsedAddresses::new(1);
        let a = "2001:db8:0001:ffff:ffff:ffff:ffff:1";
        let b = "2001:db8:0002:ffff:ffff:ffff:ffff:1";
        assert_eq!(ends(a.as_bytes()), ends(b.as_bytes()));
        assert_eq!(cache.get(a.as_bytes(), std_parse), std_parse(a.as_bytes()));
        assert_eq!(cache.get(b.as_bytes(), std_parse), std_parse(b.as_bytes()));
        assert_eq!(cache.get(a.as_bytes(), std_parse), std_parse(a.as_bytes()));
        // A hit does not call the parser.
        assert_eq!(
            cache.get(b.as_bytes(), |_| panic!("parsed again")),
            std_parse(b.as_bytes())
        );
    }

    #[test]
    fn too_long_texts_are_parsed_every_time_and_misses_replace_the_older_way() {
        let mut cache = ParsedAddresses::new(1);
        let long = "x".repeat(ADDRESS_MAX_BYTES + 1);
        let mut calls = 0;
        for _ in 0..2 {
            cache.get(long.as_bytes(), |t| {
                calls += 1;
                std_parse(t)
            });
        }
        assert_eq!(calls, 2);
        // More addresses than the cache holds, each seen several times.
        let mut cache = ParsedAddresses::new(3);
        for i in 0..5_000u32 {
            let n = (i * 7) % 300;
            let s = match n % 4 {
                0 => format!("2001:db8::{n:x}"),
                1 => format!("2001:db8:{n:x}:ffff:ffff:ffff:ffff:{n:x}"),
                2 => format!("::ffff:198.51.{}.{}", n % 256, n / 256),
                _ => format!("203.0.{}.{}", n % 256, n / 256),
            };
            assert_eq!(cache.get(s.as_bytes(), std_parse), s.parse().ok(), "{s}");
        }
    }
}
