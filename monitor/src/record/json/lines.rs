//! A stream of JSON lines read into records: the reading protocol between a `BufRead` and
//! the line decoder (`read`), so a source only numbers lines and names its input.
//!
//! The common case: the decoder reads the line where it lies in the reader's buffer and
//! finds its end itself (`decode_in_place`), so the line is never searched for its line
//! feed nor copied. A line it refuses is decoded where it lies by the general path; a line
//! that straddles a refill of the buffer is gathered first.

use std::io::{self, BufRead};

use super::LineDecoder;
use crate::record::{ConnectionRecord, RecordError};

/// Why a line gave no record.
#[derive(Debug)]
pub(crate) enum LineError {
    /// Reading the input failed (the line being read: `JsonLines::line() + 1`).
    Io(io::Error),
    /// Line `JsonLines::line()` is not a connection record that can be read.
    Record(RecordError),
}

/// Connection records from JSON lines. Lines of other kinds (alerts, metrics) and blank
/// lines are skipped.
pub(crate) struct JsonLines<R> {
    reader: R,
    line: u64,
    /// A line that straddles refills of the reader's buffer; empty otherwise.
    buf: Vec<u8>,
    decoder: LineDecoder,
}

impl<R: BufRead> JsonLines<R> {
    pub(crate) fn new(reader: R) -> Self {
        JsonLines {
            reader,
            line: 0,
            buf: Vec::new(),
            decoder: LineDecoder::new(),
        }
    }

    /// Line number of the last line read (1-based).
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// The next connection record, `Ok(None)` at the end of input. Inlined into the
    /// source's own `next_record`, so a record is built where the source returns it.
    #[inline]
    pub(crate) fn next_record(&mut self) -> Result<Option<ConnectionRecord>, LineError> {
        loop {
            let available = self.reader.fill_buf().map_err(LineError::Io)?;
            let whole_line_refused = self.buf.is_empty();
            if whole_line_refused && let Some((rec, read)) = self.decoder.decode_in_place(available)
            {
                self.reader.consume(read);
                self.line += 1;
                return Ok(Some(rec));
            }
            let (end, consumed) = match memchr::memchr(b'\n', available) {
                Some(i) => (i, i + 1),
                None if available.is_empty() => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    // The last line, without a newline.
                    (0, 0)
                }
                None => {
                    self.buf.extend_from_slice(available);
                    let n = available.len();
                    self.reader.consume(n);
                    continue;
                }
            };
            self.line += 1;
            let result = if whole_line_refused {
                // The decoder has seen this whole line in place and refused it.
                LineDecoder::decode_line_general(&available[..end])
            } else {
                self.buf.extend_from_slice(&available[..end]);
                self.decoder.decode_line(&self.buf)
            };
            self.reader.consume(consumed);
            self.buf.clear();
            match result {
                Ok(Some(rec)) => return Ok(Some(rec)),
                Ok(None) => continue,
                Err(error) => return Err(LineError::Record(error)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::BufReader;

    use super::*;
    use crate::record::decode_general;
    use crate::record::json::read::tests::corpus;

    const GOOD: &str = r#"{"@timestamp":"2026-11-23T10:00:00Z","process":{"pid":7,"executable":"/usr/bin/curl"},"destination":{"ip":"203.0.113.7","port":8088}}"#;

    type Outcome = (Vec<ConnectionRecord>, Option<(u64, RecordError)>);

    /// serde_json on each line by itself: the records up to the first error, and that
    /// error with its line number.
    fn reference(lines: &[&str]) -> Outcome {
        let mut records = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let text = line.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
            if text.is_empty() {
                continue;
            }
            match decode_general(text) {
                Ok(Some(rec)) => records.push(rec),
                Ok(None) => {}
                Err(e) => return (records, Some((i as u64 + 1, e))),
            }
        }
        (records, None)
    }

    fn read(input: &[u8], capacity: usize) -> Outcome {
        let mut lines = JsonLines::new(BufReader::with_capacity(capacity, input));
        let mut records = Vec::new();
        loop {
            match lines.next_record() {
                Ok(Some(rec)) => records.push(rec),
                Ok(None) => return (records, None),
                Err(LineError::Record(e)) => return (records, Some((lines.line(), e))),
                Err(LineError::Io(e)) => panic!("reading a slice: {e}"),
            }
        }
    }

    #[test]
    fn a_stream_of_lines_reads_as_serde_json_reads_each_line() {
        // Each line of the reader's corpus between known good lines, through buffers that
        // cut it at different places: the same records, and the same error on the same
        // line, as serde_json line by line.
        for line in corpus().iter().filter(|l| !l.contains('\n')) {
            let lines = [GOOD, line.as_str(), GOOD, "", line.as_str()];
            let input = lines.join("\n");
            let expected = reference(&lines);
            for capacity in [1, 7, 64, 300, 1 << 16] {
                assert_eq!(read(input.as_bytes(), capacity), expected, "{line}");
            }
        }
    }
}
