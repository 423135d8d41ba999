//! The replay source: connection records as JSON lines (what `monitor run --events` writes),
//! from a file or standard input.
//!
//! Lines of other kinds (alerts, metrics) are skipped, so a whole `run` output can be fed
//! back. Blank lines are skipped. Anything else that is not a valid connection event is an
//! error naming the line number; what came before it has already gone through the pipeline.

use std::io::BufRead;

use thiserror::Error;

pub mod mapped;
mod run;

pub use run::{Setup, run};

use crate::record::{ConnectionRecord, JsonLines, LineError, RecordError};

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
    lines: JsonLines<R>,
    /// Name used in errors (`-` for standard input is written as `<stdin>`).
    input: String,
}

impl<R: BufRead> ReplaySource<R> {
    pub fn new(reader: R, input: impl Into<String>) -> Self {
        ReplaySource {
            lines: JsonLines::new(reader),
            input: input.into(),
        }
    }

    /// Line number of the last line read (1-based).
    pub fn line(&self) -> u64 {
        self.lines.line()
    }

    /// The next connection event, `Ok(None)` at the end of input.
    pub fn next_record(&mut self) -> Result<Option<ConnectionRecord>, ReplayError> {
        self.lines.next_record().map_err(|e| match e {
            LineError::Io(error) => ReplayError::Io {
                input: self.input.clone(),
                line: self.lines.line() + 1,
                error,
            },
            LineError::Record(error) => ReplayError::Record {
                input: self.input.clone(),
                line: self.lines.line(),
                error,
            },
        })
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

    /// A line as the bench workload writes it: the decoder reads `event` to `user` as one
    /// known run, `network` and `monitor` as another.
    fn workload_line(pid: u32, user: &str, sport: u16) -> String {
        format!(
            r#"{{"@timestamp":"2026-11-23T00:00:01.000000005Z","event":{{"kind":"event","category":["network"],"type":["connection","start"],"action":"connect"}},"host":{{"hostname":"bench-host"}},"group":{{"id":"1000"}},"process":{{"args":["curl","-s"],"command_line":"curl -s","executable":"/usr/bin/curl","name":"curl","parent":{{"executable":"/usr/bin/bash","name":"bash","pid":1}},"pid":{pid},"thread":{{"id":{pid}}}}},"user":{{"id":"1000","name":"{user}"}},"source":{{"ip":"192.0.2.200","port":{sport}}},"destination":{{"ip":"203.0.113.88","port":8088}},"network":{{"transport":"tcp","type":"ipv4","direction":"egress"}},"monitor":{{"enrichment":"full","probe":"tracepoint"}}}}"#
        )
    }

    /// Everything a source reads: records, the error (if any) and the last line number.
    fn read_all<R: BufRead>(reader: R) -> (Vec<ConnectionRecord>, Option<String>, u64) {
        let mut src = ReplaySource::new(reader, "t.jsonl");
        let mut records = Vec::new();
        loop {
            match src.next_record() {
                Ok(Some(rec)) => records.push(rec),
                Ok(None) => return (records, None, src.line()),
                Err(e) => return (records, Some(e.to_string()), src.line()),
            }
        }
    }

    #[test]
    fn lines_across_buffer_refills_read_as_from_one_buffer() {
        // Known runs (the second line of a process on), other kinds, blank and padded
        // lines, a CRLF line, and a last line without a line feed; then the same with a
        // line that is not UTF-8 after a known run.
        let lines = [
            workload_line(42, "alice", 40000),
            workload_line(42, "alice", 40001),
            workload_line(43, "bob", 40002),
            String::new(),
            r#"{"event":{"kind":"alert"},"rule":{"id":"x"}}"#.to_string(),
            format!("{}\r", workload_line(43, "bob", 40003)),
            format!("  {}\t", workload_line(42, "alice", 40004)),
            workload_line(44, "alice", 40005),
        ];
        let good = lines.join("\n").into_bytes();
        let mut bad = good.clone();
        bad.push(b'\n');
        let mut broken = workload_line(42, "alice", 40006).into_bytes();
        let at = broken.len() - 10;
        broken[at] = 0xff;
        bad.extend_from_slice(&broken);
        bad.extend_from_slice(format!("\n{}\n", GOOD).as_bytes());

        let whole = read_all(&good[..]);
        assert_eq!(whole.0.len(), 6);
        assert_eq!(whole.1, None);
        assert_eq!(whole.2, 8);
        for (rec, line) in whole.0.iter().zip([0, 1, 2, 5, 6, 7]) {
            let text = lines[line].trim();
            assert_eq!(
                Some(rec),
                ConnectionRecord::from_json_line(text).unwrap().as_ref()
            );
        }
        assert!(std::sync::Arc::ptr_eq(
            &whole.0[0].process,
            &whole.0[1].process
        ));
        let whole_bad = read_all(&bad[..]);
        assert_eq!(
            whole_bad.1.as_deref(),
            Some(
                format!(
                    "t.jsonl: line 9: not a JSON object: not UTF-8 text (byte {} of the line)",
                    at + 1
                )
                .as_str()
            )
        );
        assert_eq!(whole_bad.0, whole.0);
        // Buffers of every size from one byte to longer than a line: each line, and each
        // known run in it, straddles refills at every place.
        let longest = lines.iter().map(String::len).max().unwrap();
        for capacity in (1..=64).chain((65..longest + 64).step_by(7)) {
            let reader = std::io::BufReader::with_capacity(capacity, &good[..]);
            assert_eq!(read_all(reader), whole, "buffer of {capacity}");
            let reader = std::io::BufReader::with_capacity(capacity, &bad[..]);
            assert_eq!(read_all(reader), whole_bad, "buffer of {capacity}");
        }
    }
}
