//! The replay source: connection records as JSON lines (what `monitor run --events` writes),
//! from a file or standard input.
//!
//! Lines of other kinds (alerts, metrics) are skipped, so a whole `run` output can be fed
//! back. Blank lines are skipped. Anything else that is not a valid connection event is an
//! error naming the line number; what came before it has already gone through the pipeline.

use std::io::BufRead;

use thiserror::Error;

use crate::record::{ConnectionRecord, RecordError};

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
    buf: String,
}

impl<R: BufRead> ReplaySource<R> {
    pub fn new(reader: R, input: impl Into<String>) -> Self {
        ReplaySource {
            reader,
            input: input.into(),
            line: 0,
            buf: String::with_capacity(1024),
        }
    }

    /// Line number of the last line read (1-based).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The next connection event, `Ok(None)` at the end of input.
    pub fn next_record(&mut self) -> Result<Option<ConnectionRecord>, ReplayError> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_line(&mut self.buf)
                .map_err(|error| ReplayError::Io {
                    input: self.input.clone(),
                    line: self.line + 1,
                    error,
                })?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let text = self.buf.trim();
            if text.is_empty() {
                continue;
            }
            match ConnectionRecord::from_json_line(text) {
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
}
