//! The replay reader: the decoder's hand-written fast path against serde_json's general
//! path, on every line of the input.
//!
//! The input is a file of lines. One cached decoder reads them all in order, as replay
//! does, so objects and runs remembered from earlier lines are in play for later ones.
//! Each line must give the same record (or the same kind of error) through every way in:
//! bytes, text, in place followed by the real next lines, uncached, and `ReplaySource`
//! over the whole input with buffers that cut lines at odd places.
#![no_main]

use std::io::BufReader;

use libfuzzer_sys::fuzz_target;
use monitor::fuzzing::{ReplayDecoder, decode_general};
use monitor::record::{ConnectionRecord, RecordError};
use monitor::replay::{ReplayError, ReplaySource};

type Decoded = Result<Option<ConnectionRecord>, RecordError>;

/// What a line of bytes means, by the general path alone: UTF-8 checked, JSON whitespace
/// trimmed (only that: other Unicode whitespace is an error), blank lines skipped.
fn reference(line: &[u8]) -> Decoded {
    let Ok(text) = std::str::from_utf8(line) else {
        return Err(RecordError::Json("not UTF-8".into()));
    };
    let text = text.trim_matches([' ', '\t', '\r', '\n']);
    if text.is_empty() {
        return Ok(None);
    }
    decode_general(text)
}

/// An error's kind and the field it names; its message text may differ between paths.
fn kind(e: &RecordError) -> (&'static str, &'static str) {
    match e {
        RecordError::Json(_) => ("json", ""),
        RecordError::Missing(f) => ("missing", f),
        RecordError::Invalid(f, _) => ("invalid", f),
        RecordError::TimeOutOfRange(_) => ("time out of range", ""),
    }
}

fn assert_same(got: &Decoded, want: &Decoded, how: &str, line: &[u8]) {
    let same = match (got, want) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => kind(a) == kind(b),
        _ => false,
    };
    assert!(
        same,
        "{how}: {got:?}\nexpected {want:?}\nline: {}",
        line.escape_ascii()
    );
}

fuzz_target!(|data: &[u8]| {
    let mut cached = ReplayDecoder::cached();
    let mut expected = Vec::new();
    let mut start = 0;
    for line in data.split(|b| *b == b'\n') {
        let end = start + line.len();
        let want = reference(line);

        // Twice: as met, then with whatever the first read remembered.
        assert_same(&cached.decode_line(line), &want, "bytes", line);
        assert_same(&cached.decode_line(line), &want, "bytes, again", line);
        assert_same(
            &ReplayDecoder::uncached().decode_line(line),
            &want,
            "bytes, uncached",
            line,
        );
        if let Ok(text) = std::str::from_utf8(line) {
            // The text API does not trim: serde_json's own whitespace rules apply.
            let general = decode_general(text);
            assert_same(&cached.decode(text), &general, "text", line);
            assert_same(
                &ConnectionRecord::from_json_line(text),
                &general,
                "from_json_line",
                line,
            );
        }

        // In place, with the input's real next lines after the line feed: the decoder
        // must stop at this line's end, and read the lines it reads alone.
        let fast = cached.decode_fast(line);
        if let Some(rec) = &fast {
            assert_same(&Ok(Some(rec.clone())), &want, "fast path", line);
        }
        if end < data.len() {
            let in_place = cached.decode_in_place(&data[start..]);
            if let Some((rec, read)) = &in_place {
                assert_eq!(*read, line.len() + 1, "in place, bytes read");
                assert_same(&Ok(Some(rec.clone())), &want, "in place", line);
            }
            assert_eq!(
                in_place.map(|(rec, _)| rec),
                fast,
                "in place and alone, the fast path reads the same lines: {}",
                line.escape_ascii()
            );
        } else {
            // No line feed after it: the line is left to the caller.
            assert!(cached.decode_in_place(&data[start..]).is_none());
        }

        expected.push(want);
        start = end + 1;
    }

    // The whole input through replay: with the default buffer (most lines read in place)
    // or a small one (lines gathered across refills). One of them per input, chosen by its
    // length, as each replay decoder allocates its caches (about a megabyte) anew.
    let capacity = if data.len() % 2 == 0 {
        8192
    } else {
        1 + data.len() % 97
    };
    {
        let mut src = ReplaySource::new(BufReader::with_capacity(capacity, data), "fuzz");
        let mut lines = expected.iter().enumerate();
        loop {
            let got = src.next_record();
            // The next line replay should stop at: a record or an error, skipping the rest.
            let want = lines.find(|(_, r)| !matches!(r, Ok(None)));
            match (got, want) {
                (Ok(None), None) => break,
                (Ok(Some(rec)), Some((i, Ok(Some(w))))) => {
                    assert_eq!(&rec, w, "replay, line {}", i + 1);
                    assert_eq!(src.line(), i as u64 + 1, "replay's line number");
                }
                (Err(ReplayError::Record { line, error, .. }), Some((i, Err(w)))) => {
                    assert_eq!(line, i as u64 + 1, "replay's error line");
                    assert_eq!(kind(&error), kind(w), "replay, line {line}: {error}");
                    break;
                }
                (got, want) => panic!("replay (buffer {capacity}): {got:?}, expected {want:?}"),
            }
        }
    }
});
