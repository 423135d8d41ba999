//! Every string pattern of every rule on one field, matched in one pass.
//!
//! Sigma string values are literals with optional `*` / `?` wildcards under a mode
//! (equals, contains, startswith, endswith). Each pattern is keyed by a literal it must
//! contain (the whole value, or a wildcard value's longest literal piece); one
//! case-insensitive Aho-Corasick pass over the field finds every key that occurs, and only
//! the patterns behind those keys are verified (position check for literals, a glob match
//! for wildcards). `re` values and values without any literal run on every pass. So the
//! cost of a pass grows with the field's length and the number of candidates, not with the
//! number of rules.
//!
//! (A first version put all patterns into one `regex-automata` multi-pattern regex with an
//! overlapping search; that cost about 500 ns per field for the default classes, because
//! an overlapping all-patterns search cannot stop early. This is about ten times faster.)

use std::collections::HashMap;

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::nfa::contiguous;
use aho_corasick::{Anchored, MatchKind, StartKind};
use regex_automata::meta::Regex;

use super::field::Field;

/// Which string comparison a pattern makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StrMode {
    Exact,
    Contains,
    StartsWith,
    EndsWith,
}

/// A pattern as a rule gives it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PatternSpec {
    /// A Sigma value with wildcards and escapes.
    Wildcard {
        value: String,
        mode: StrMode,
        cased: bool,
    },
    /// A Sigma `re` value with its flags applied (`(?i:...)` etc.).
    Regex(String),
}

#[derive(Clone, Debug, PartialEq)]
enum GlobTok {
    Lit(Box<[u8]>),
    One,
    Many,
}

#[derive(Debug)]
enum Pattern {
    Literal {
        lit: Box<[u8]>,
        mode: StrMode,
        cased: bool,
    },
    /// Tokens with the mode folded in (leading/trailing `Many`).
    Glob {
        toks: Box<[GlobTok]>,
        cased: bool,
    },
    Regex(Box<Regex>),
}

/// Sigma wildcard syntax: `*` any run, `?` one character, `\*` `\?` `\\` literal, and a
/// backslash before anything else is itself literal (so Windows paths need no doubling).
fn tokenize(value: &str) -> Vec<GlobTok> {
    let mut toks = Vec::new();
    let mut lit: Vec<u8> = Vec::new();
    let flush = |lit: &mut Vec<u8>, toks: &mut Vec<GlobTok>| {
        if !lit.is_empty() {
            toks.push(GlobTok::Lit(std::mem::take(lit).into_boxed_slice()));
        }
    };
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&n @ ('*' | '?' | '\\')) => {
                    chars.next();
                    lit.push(n as u8);
                }
                _ => lit.push(b'\\'),
            },
            '*' => {
                flush(&mut lit, &mut toks);
                if toks.last() != Some(&GlobTok::Many) {
                    toks.push(GlobTok::Many);
                }
            }
            '?' => {
                flush(&mut lit, &mut toks);
                toks.push(GlobTok::One);
            }
            c => {
                let mut b = [0; 4];
                lit.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    flush(&mut lit, &mut toks);
    toks
}

/// Sigma value to a regex (used for values whose case folding needs Unicode).
fn wildcard_regex(value: &str, mode: StrMode, cased: bool) -> String {
    let mut body = String::new();
    for t in tokenize(value) {
        match t {
            GlobTok::Lit(l) => body.push_str(&regex_syntax::escape(&String::from_utf8_lossy(&l))),
            GlobTok::One => body.push('.'),
            GlobTok::Many => body.push_str(".*"),
        }
    }
    let flags = if cased { "(?s)" } else { "(?is)" };
    match mode {
        StrMode::Exact => format!(r"{flags}\A(?:{body})\z"),
        StrMode::Contains => format!("{flags}(?:{body})"),
        StrMode::StartsWith => format!(r"{flags}\A(?:{body})"),
        StrMode::EndsWith => format!(r"{flags}(?:{body})\z"),
    }
}

/// Compiles a `re` pattern on its own, for an error naming the value; the result is kept
/// for `StringSet::build` (compiling is most of the cost of a set of many expressions).
pub(crate) fn check_regex(p: &str) -> Result<Regex, String> {
    Regex::new(p).map_err(|e| e.to_string().replace('\n', " "))
}

#[inline]
fn utf8_len(b: u8) -> usize {
    match b {
        0..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
}

#[inline]
fn bytes_eq(a: &[u8], b: &[u8], cased: bool) -> bool {
    if cased {
        a == b
    } else {
        a.eq_ignore_ascii_case(b)
    }
}

/// Glob match of the whole haystack; `*` backtracks to the last star only, which is
/// complete for patterns of literals, `?` and `*`.
fn glob(toks: &[GlobTok], hay: &[u8], cased: bool) -> bool {
    let (mut t, mut h) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if t < toks.len() {
            match &toks[t] {
                GlobTok::Many => {
                    star = Some((t + 1, h));
                    t += 1;
                    continue;
                }
                GlobTok::One if h < hay.len() => {
                    h += utf8_len(hay[h]);
                    t += 1;
                    continue;
                }
                GlobTok::Lit(l)
                    if hay.len() - h >= l.len() && bytes_eq(&hay[h..h + l.len()], l, cased) =>
                {
                    h += l.len();
                    t += 1;
                    continue;
                }
                _ => {}
            }
        } else if h >= hay.len() {
            return true;
        }
        match star {
            Some((st, sh)) if sh < hay.len() => {
                let nh = sh + utf8_len(hay[sh]);
                star = Some((st, nh));
                t = st;
                h = nh;
            }
            _ => return false,
        }
    }
}

/// Keys are at most this long: a longer literal is keyed by its first bytes and verified
/// whole. Building the DFA is quadratic in the length of a key (a 4 kB key took 2 s, a
/// 50 kB one 15 s), and a key this long already finds almost only true candidates.
const MAX_KEY: usize = 64;

/// Up to this many key bytes (about as many automaton states) and `CHUNK_KEYS` keys, the
/// keys are one DFA, the fastest to step. Real rule sets have a few kilobytes of keys per
/// field.
const MAX_DFA_KEY_BYTES: usize = 64 << 10;

/// Past that, the keys are contiguous NFAs of at most this many keys each: linear space,
/// where a DFA of a huge set takes hundreds of megabytes, and linear time overall, where
/// one automaton over all keys is quadratic in their number when keys are prefixes of
/// other keys (aho-corasick's state shuffle: 40,000 keys took 10 s in a debug build).
const CHUNK_KEYS: usize = 4096;

/// The Aho-Corasick automata over a field's keys.
#[derive(Debug)]
enum Keys {
    Dfa(Box<DFA>),
    /// Each with the id of its first key.
    Nfa(Vec<(usize, contiguous::NFA)>),
}

/// A field's patterns, compiled.
#[derive(Debug)]
pub(crate) struct StringSet {
    pub field: Field,
    /// Aho-Corasick automaton over the keys, stepped by hand so every key ending at every
    /// position is seen without iterator overhead.
    ac: Option<Keys>,
    /// Byte length of each key (a match's start is its end minus this).
    key_len: Vec<usize>,
    /// Aho-Corasick key id to the patterns keyed by it.
    by_key: Vec<Vec<u32>>,
    patterns: Vec<Pattern>,
    /// Patterns without a key: verified on every pass.
    always: Vec<u32>,
}

impl StringSet {
    /// Builds the set, taking `re` patterns from `compiled` where they are; `check` is
    /// called now and then (`Err` stops the build: the load's compile-time budget), as
    /// regular expressions compile one by one.
    pub fn build(
        field: Field,
        specs: &[PatternSpec],
        compiled: &HashMap<String, Regex>,
        check: &dyn Fn() -> Result<(), String>,
    ) -> Result<StringSet, String> {
        let mut patterns = Vec::with_capacity(specs.len());
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut by_key: Vec<Vec<u32>> = Vec::new();
        let mut key_ids: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut always = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            if i % 64 == 0 {
                check()?;
            }
            let i = i as u32;
            let (pattern, key) = match spec {
                PatternSpec::Regex(p) => (
                    Pattern::Regex(Box::new(match compiled.get(p) {
                        Some(r) => r.clone(),
                        None => Regex::new(p).map_err(|e| e.to_string())?,
                    })),
                    None,
                ),
                // ASCII case folding is what the fast path does; values with other letters
                // go through a Unicode case-insensitive regex.
                PatternSpec::Wildcard { value, mode, cased } if !*cased && !value.is_ascii() => (
                    Pattern::Regex(Box::new(
                        Regex::new(&wildcard_regex(value, *mode, *cased))
                            .map_err(|e| e.to_string())?,
                    )),
                    None,
                ),
                PatternSpec::Wildcard { value, mode, cased } => {
                    let toks = tokenize(value);
                    let wild = toks.iter().any(|t| !matches!(t, GlobTok::Lit(_)));
                    if !wild {
                        let lit: Box<[u8]> = match toks.into_iter().next() {
                            Some(GlobTok::Lit(l)) => l,
                            _ => Box::new([]),
                        };
                        let key = (!lit.is_empty()).then(|| lit[..lit.len().min(MAX_KEY)].to_vec());
                        (
                            Pattern::Literal {
                                lit,
                                mode: *mode,
                                cased: *cased,
                            },
                            key,
                        )
                    } else {
                        let mut full = Vec::new();
                        if matches!(mode, StrMode::Contains | StrMode::EndsWith) {
                            full.push(GlobTok::Many);
                        }
                        full.extend(toks);
                        if matches!(mode, StrMode::Contains | StrMode::StartsWith)
                            && full.last() != Some(&GlobTok::Many)
                        {
                            full.push(GlobTok::Many);
                        }
                        full.dedup_by(|a, b| *a == GlobTok::Many && *b == GlobTok::Many);
                        // The key is the literal a match must begin with (at the start of
                        // the value, or after the leading `*`), so each occurrence found
                        // is verified by one glob anchored there.
                        let key = match (full.first(), full.get(1)) {
                            (Some(GlobTok::Lit(l)), _) => Some(l[..l.len().min(MAX_KEY)].to_vec()),
                            (Some(GlobTok::Many), Some(GlobTok::Lit(l))) => {
                                Some(l[..l.len().min(MAX_KEY)].to_vec())
                            }
                            _ => None,
                        };
                        (
                            Pattern::Glob {
                                toks: full.into_boxed_slice(),
                                cased: *cased,
                            },
                            key,
                        )
                    }
                }
            };
            patterns.push(pattern);
            match key {
                None => always.push(i),
                // Keys match case-insensitively, so keys equal but for ASCII case are one.
                // Hashed: a scan of the keys so far made 30,000 values take 15 s.
                Some(k) => match key_ids.entry(k.to_ascii_lowercase()) {
                    std::collections::hash_map::Entry::Occupied(e) => by_key[*e.get()].push(i),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(keys.len());
                        keys.push(k);
                        by_key.push(vec![i]);
                    }
                },
            }
        }
        let key_bytes: usize = keys.iter().map(Vec::len).sum();
        let ac = if keys.is_empty() {
            None
        } else if key_bytes <= MAX_DFA_KEY_BYTES && keys.len() <= CHUNK_KEYS {
            Some(Keys::Dfa(Box::new(
                DFA::builder()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .start_kind(StartKind::Unanchored)
                    .build(&keys)
                    .map_err(|e| e.to_string())?,
            )))
        } else {
            let mut chunks = Vec::with_capacity(keys.len().div_ceil(CHUNK_KEYS));
            for (i, chunk) in keys.chunks(CHUNK_KEYS).enumerate() {
                check()?;
                let nfa = contiguous::Builder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .build(chunk)
                    .map_err(|e| e.to_string())?;
                chunks.push((i * CHUNK_KEYS, nfa));
            }
            Some(Keys::Nfa(chunks))
        };
        Ok(StringSet {
            field,
            ac,
            key_len: keys.iter().map(Vec::len).collect(),
            by_key,
            patterns,
            always,
        })
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Verifies the patterns keyed by `key`, which occurs at `start` of `hb`.
    #[inline]
    fn verify(&self, key: usize, start: usize, hb: &[u8], bits: &mut [u64]) {
        for &p in &self.by_key[key] {
            if is_set(bits, p) {
                continue;
            }
            let ok = match &self.patterns[p as usize] {
                Pattern::Literal { lit, mode, cased } => {
                    // The key is the literal, or its first MAX_KEY bytes: then the rest is
                    // compared here. The automaton ignores ASCII case; `cased` does not.
                    let end = start + lit.len();
                    end <= hb.len()
                        && (if *cased || lit.len() != self.key_len[key] {
                            bytes_eq(&hb[start..end], lit, *cased)
                        } else {
                            true
                        })
                        && match mode {
                            StrMode::Exact => start == 0 && end == hb.len(),
                            StrMode::StartsWith => start == 0,
                            StrMode::EndsWith => end == hb.len(),
                            StrMode::Contains => true,
                        }
                }
                Pattern::Glob { toks, cased } => match toks.first() {
                    // `*KEY...`: anchored where this occurrence of KEY starts.
                    Some(GlobTok::Many) => glob(&toks[1..], &hb[start..], *cased),
                    // `KEY...`: only an occurrence at the start can begin a match.
                    _ => start == 0 && glob(toks, hb, *cased),
                },
                Pattern::Regex(_) => unreachable!("regex patterns have no key"),
            };
            if ok {
                set(bits, p);
            }
        }
    }

    /// Finds every occurrence in `hb` of the keys of `ac` (numbered from `first`) and
    /// verifies the patterns behind it.
    #[inline(always)]
    fn scan<A: Automaton>(&self, ac: &A, first: usize, hb: &[u8], bits: &mut [u64]) {
        let Ok(mut sid) = ac.start_state(Anchored::No) else {
            return;
        };
        for (i, &byte) in hb.iter().enumerate() {
            sid = ac.next_state(Anchored::No, sid, byte);
            if !ac.is_special(sid) || !ac.is_match(sid) {
                continue;
            }
            let end = i + 1;
            for k in 0..ac.match_len(sid) {
                let key = first + ac.match_pattern(sid, k).as_usize();
                self.verify(key, end - self.key_len[key], hb, bits);
            }
        }
    }

    /// Marks in `bits` every pattern that matches `hay` (bits are OR-ed, so list fields
    /// call this once per element).
    pub fn run(&self, hay: &str, bits: &mut [u64]) {
        let hb = hay.as_bytes();
        match &self.ac {
            Some(Keys::Dfa(ac)) => self.scan(&**ac, 0, hb, bits),
            Some(Keys::Nfa(chunks)) => {
                for (first, ac) in chunks {
                    self.scan(ac, *first, hb, bits);
                }
            }
            None => {}
        }
        for &p in &self.always {
            if is_set(bits, p) {
                continue;
            }
            let ok = match &self.patterns[p as usize] {
                Pattern::Literal { lit, mode, .. } => {
                    lit.is_empty()
                        && match mode {
                            // An empty value equals only the empty string; the empty string is a
                            // prefix, suffix and part of everything.
                            StrMode::Exact => hb.is_empty(),
                            _ => true,
                        }
                }
                Pattern::Glob { toks, cased } => glob(toks, hb, *cased),
                Pattern::Regex(r) => r.is_match(hay),
            };
            if ok {
                set(bits, p);
            }
        }
    }
}

#[inline]
pub(crate) fn is_set(bits: &[u64], p: u32) -> bool {
    bits[(p >> 6) as usize] & (1 << (p & 63)) != 0
}

#[inline]
fn set(bits: &mut [u64], p: u32) {
    bits[(p >> 6) as usize] |= 1 << (p & 63);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(value: &str, mode: StrMode) -> PatternSpec {
        PatternSpec::Wildcard {
            value: value.into(),
            mode,
            cased: false,
        }
    }

    fn matches(specs: &[PatternSpec], hay: &str) -> Vec<u32> {
        let s = StringSet::build(Field::Image, specs, &HashMap::new(), &|| Ok(())).unwrap();
        let mut bits = vec![0u64; s.len().div_ceil(64)];
        s.run(hay, &mut bits);
        (0..s.len() as u32).filter(|&p| is_set(&bits, p)).collect()
    }

    #[test]
    fn literal_modes() {
        let specs = [
            w("/usr/bin/curl", StrMode::Exact),
            w("/curl", StrMode::EndsWith),
            w("/usr/", StrMode::StartsWith),
            w("bin", StrMode::Contains),
            w("/CURL", StrMode::EndsWith),
        ];
        assert_eq!(matches(&specs, "/usr/bin/curl"), vec![0, 1, 2, 3, 4]);
        assert_eq!(matches(&specs, "/usr/bin/curl2"), vec![2, 3]);
        assert_eq!(matches(&specs, "/opt/curl"), vec![1, 4]);
    }

    #[test]
    fn globs_and_escapes() {
        let specs = [
            w("/python3.??", StrMode::EndsWith),
            w("/perl5.*", StrMode::EndsWith),
            w(r"a\*b", StrMode::Exact),
            w("*", StrMode::Exact),
            w("", StrMode::Exact),
            w("x*y?z", StrMode::Contains),
        ];
        assert_eq!(matches(&specs, "/usr/bin/python3.11"), vec![0, 3]);
        assert_eq!(matches(&specs, "/usr/bin/python3.111"), vec![3]);
        assert_eq!(matches(&specs, "/usr/bin/perl5.36.0"), vec![1, 3]);
        assert_eq!(matches(&specs, "a*b"), vec![2, 3]);
        assert_eq!(matches(&specs, "axb"), vec![3]);
        assert_eq!(matches(&specs, ""), vec![3, 4]);
        assert_eq!(matches(&specs, "..xaaayéz.."), vec![3, 5]);
    }

    #[test]
    fn cased_and_unicode() {
        let specs = [
            PatternSpec::Wildcard {
                value: "Socket".into(),
                mode: StrMode::Contains,
                cased: true,
            },
            w("ÉTÉ", StrMode::Contains),
            PatternSpec::Regex("(?i:^a.c$)".into()),
        ];
        assert_eq!(matches(&specs, "use Socket"), vec![0]);
        assert_eq!(matches(&specs, "use socket"), Vec::<u32>::new());
        assert_eq!(matches(&specs, "un été"), vec![1]);
        assert_eq!(matches(&specs, "AbC"), vec![2]);
    }

    #[test]
    fn literals_longer_than_a_key_are_verified_whole() {
        let long = format!("{}-tail", "x".repeat(100));
        let specs = [
            w(&long, StrMode::Contains),
            w(&format!("{}-other", "x".repeat(100)), StrMode::Contains),
            w(&long.to_uppercase(), StrMode::Exact),
            PatternSpec::Wildcard {
                value: long.clone(),
                mode: StrMode::EndsWith,
                cased: true,
            },
            w(&format!("{long}*end"), StrMode::StartsWith),
        ];
        assert_eq!(matches(&specs, &long), vec![0, 2, 3]);
        assert_eq!(matches(&specs, &format!("a {long} b")), vec![0]);
        assert_eq!(
            matches(&specs, &format!("a {}", long.to_uppercase())),
            vec![0]
        );
        assert_eq!(matches(&specs, &format!("{long} the end")), vec![0, 4]);
        // The shared 64-byte prefix alone matches nothing.
        assert_eq!(matches(&specs, &"x".repeat(120)), Vec::<u32>::new());
    }

    #[test]
    fn large_key_sets_use_nfas_with_the_same_results() {
        // About 70 kB of keys, past the DFA's share, in two automata.
        let mut specs: Vec<PatternSpec> = (0..8_000)
            .map(|i| w(&format!("/tool{i}"), StrMode::EndsWith))
            .collect();
        specs.push(w("Needle", StrMode::Contains));
        let needle = specs.len() as u32 - 1;
        let s = StringSet::build(Field::Image, &specs, &HashMap::new(), &|| Ok(())).unwrap();
        assert!(matches!(&s.ac, Some(Keys::Nfa(c)) if c.len() == 2));
        let mut bits = vec![0u64; s.len().div_ceil(64)];
        s.run("/usr/bin/TOOL1234 needle", &mut bits);
        let hits: Vec<u32> = (0..s.len() as u32).filter(|&p| is_set(&bits, p)).collect();
        assert_eq!(hits, vec![needle]);
        let mut bits = vec![0u64; s.len().div_ceil(64)];
        s.run("/usr/bin/tool1234", &mut bits);
        let hits: Vec<u32> = (0..s.len() as u32).filter(|&p| is_set(&bits, p)).collect();
        assert_eq!(hits, vec![1234]);
        // A key of the second automaton.
        let mut bits = vec![0u64; s.len().div_ceil(64)];
        s.run("/usr/bin/tool7999", &mut bits);
        let hits: Vec<u32> = (0..s.len() as u32).filter(|&p| is_set(&bits, p)).collect();
        assert_eq!(hits, vec![7999]);
        assert!(matches!(
            StringSet::build(Field::Image, &specs[..10], &HashMap::new(), &|| Ok(()))
                .unwrap()
                .ac,
            Some(Keys::Dfa(_))
        ));
    }

    #[test]
    fn keys_that_are_prefixes_of_keys_build_in_linear_time() {
        // `/x1` is a prefix of `/x10`..`/x19`: one automaton over 40,000 such keys took 10 s
        // in a debug build, quadratic in their number.
        let specs: Vec<PatternSpec> = (0..40_000)
            .map(|i| w(&format!("/x{i}"), StrMode::Exact))
            .collect();
        let t = std::time::Instant::now();
        let s = StringSet::build(Field::Image, &specs, &HashMap::new(), &|| Ok(())).unwrap();
        // Room for a loaded machine; the quadratic build is five times slower still.
        assert!(
            t.elapsed() < std::time::Duration::from_secs(6),
            "{:?}",
            t.elapsed()
        );
        let mut bits = vec![0u64; s.len().div_ceil(64)];
        s.run("/X39999", &mut bits);
        let hits: Vec<u32> = (0..s.len() as u32).filter(|&p| is_set(&bits, p)).collect();
        assert_eq!(hits, vec![39_999]);
    }
}
