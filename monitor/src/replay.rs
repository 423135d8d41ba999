//! The replay source: connection records as JSON lines (what `monitor run --events` writes),
//! from a file or standard input.
//!
//! Lines of other kinds (alerts, metrics) are skipped, so a whole `run` output can be fed
//! back. Blank lines are skipped. Anything else that is not a valid connection event is an
//! error naming the line number; what came before it has already gone through the pipeline.

use std::io::BufRead;

use thiserror::Error;

use crate::record::{ConnectionRecord, RecordDecoder, RecordError};

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("{input}: line {line}: {error}")]
    Record {
        input: String,
        line: u64,
        error: RecordError,
    },
    #[error("{input}: line {line}: reading failed: {error}")]
    Io {
        input: String,
        line: u64,
        error: std::io::Error,
    },
}

pub struct ReplaySource<R> {
    reader: R,
    /// Name used in errors (`-` for standard input is written as `<stdin>`).
    input: String,
    line: u64,
    /// A line that straddles refills of the reader's buffer; empty otherwise.
    buf: Vec<u8>,
    decoder: RecordDecoder,
}

impl<R: BufRead> ReplaySource<R> {
    pub fn new(reader: R, input: impl Into<String>) -> Self {
        ReplaySource {
            reader,
            input: input.into(),
            line: 0,
            buf: Vec::new(),
            decoder: RecordDecoder::new(),
        }
    }

    /// Line number of the last line read (1-based).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The next connection event, `Ok(None)` at the end of input.
    pub fn next_record(&mut self) -> Result<Option<ConnectionRecord>, ReplayError> {
        loop {
            let available = self.reader.fill_buf().map_err(|error| ReplayError::Io {
                input: self.input.clone(),
                line: self.line + 1,
                error,
            })?;
            // The common case: the decoder reads the line where it lies and finds its end.
            let whole_line_refused = self.buf.is_empty();
            if whole_line_refused && let Some((rec, read)) = self.decoder.decode_in_place(available)
            {
                self.reader.consume(read);
                self.line += 1;
                return Ok(Some(rec));
            }
            // Otherwise a line wholly inside the reader's buffer is decoded where it lies;
            // one that straddles a refill is gathered in `buf` first.
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
                // The fast path has seen this whole line and refused it.
                RecordDecoder::decode_line_general(&available[..end])
            } else {
                self.buf.extend_from_slice(&available[..end]);
                self.decoder.decode_line(&self.buf)
            };
            self.reader.consume(consumed);
            self.buf.clear();
            match result {
                Ok(Some(rec)) => return Ok(Some(rec)),
                Ok(None) => continue,
                Err(error) => {
                    return Err(ReplayError::Record {
                        input: self.input.clone(),
                        line: self.line,
                        error,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"@timestamp":"2026-11-23T10:00:00Z","event":{"kind":"event"},"process":{"pid":7,"executable":"/usr/bin/curl"},"destination":{"ip":"203.0.113.7","port":8088},"network":{"transport":"tcp"}}"#;

    #[test]
    fn reads_events_skips_other_kinds_and_blank_lines() {
        let input = format!("{GOOD}\n\n{{\"event\":{{\"kind\":\"alert\"}}}}\n{GOOD}\n");
        let mut src = ReplaySource::new(input.as_bytes(), "t.jsonl");
        assert_eq!(src.next_record().unwrap().unwrap().destination.port, 8088);
        assert!(src.next_record().unwrap().is_some());
        assert_eq!(src.line(), 4);
        assert!(src.next_record().unwrap().is_none());
    }

    #[test]
    fn error_names_input_and_line() {
        let input = format!("{GOOD}\n{GOOD}\nnot json\n");
        let mut src = ReplaySource::new(input.as_bytes(), "t.jsonl");
        src.next_record().unwrap();
        src.next_record().unwrap();
        let err = src.next_record().unwrap_err().to_string();
        assert!(err.starts_with("t.jsonl: line 3: "), "{err}");
        let input = r#"{"@timestamp":"2026-11-23T10:00:00Z","destination":{"port":80}}"#;
        let err = ReplaySource::new(input.as_bytes(), "x")
            .next_record()
            .unwrap_err()
            .to_string();
        assert_eq!(err, "x: line 1: missing field `destination.ip`");
    }

    #[test]
    fn a_line_that_is_not_utf8_is_an_error_naming_it() {
        let mut input = format!("{GOOD}\n").into_bytes();
        input.extend_from_slice(b"{\"@timestamp\":\"\xff\"}\n");
        let mut src = ReplaySource::new(&input[..], "t.jsonl");
        src.next_record().unwrap().unwrap();
        let err = src.next_record().unwrap_err().to_string();
        assert_eq!(
            err,
            "t.jsonl: line 2: not a JSON object: not UTF-8 text (byte 16 of the line)"
        );
    }

    #[test]
    fn records_of_one_process_share_its_process_info() {
        let input = format!("{GOOD}\n{}\n", GOOD.replace("10:00:00Z", "10:00:30Z"));
        let mut src = ReplaySource::new(input.as_bytes(), "t.jsonl");
        let a = src.next_record().unwrap().unwrap();
        let b = src.next_record().unwrap().unwrap();
        assert_ne!(a.timestamp, b.timestamp);
        assert!(std::sync::Arc::ptr_eq(&a.process, &b.process));
    }
}
