//! Entry points for the fuzz targets (`fuzz/`, see fuzz/README.md), which check internal
//! paths against each other. Not an API: hidden from the docs, and it changes with the
//! targets. Thin wrappers only, so the internals they reach stay crate-private.

use crate::output::OutputRecord;
use crate::output::syslog::fit;
use crate::output::syslog::format::{Facility, Framer, SyslogFormat};
use crate::record::{ConnectionRecord, RecordDecoder, RecordError};

/// The replay decoder (`record::json::read`) with its paths reachable one by one.
pub struct ReplayDecoder(RecordDecoder);

impl ReplayDecoder {
    /// A decoder that remembers objects across lines, as replay uses it.
    pub fn cached() -> Self {
        ReplayDecoder(RecordDecoder::new())
    }

    /// A decoder that remembers nothing (`ConnectionRecord::from_json_line`'s).
    pub fn uncached() -> Self {
        ReplayDecoder(RecordDecoder::uncached())
    }

    /// One line as text: fast path, else the general path.
    pub fn decode(&mut self, line: &str) -> Result<Option<ConnectionRecord>, RecordError> {
        self.0.decode(line)
    }

    /// One line as bytes (no line feed), as replay decodes a line it had to gather.
    pub fn decode_line(&mut self, line: &[u8]) -> Result<Option<ConnectionRecord>, RecordError> {
        self.0.decode_line(line)
    }

    /// The line at the start of `input` read where it lies: the record and the bytes
    /// through its line feed, or `None` when the fast path leaves it to the caller.
    pub fn decode_in_place(&mut self, input: &[u8]) -> Option<(ConnectionRecord, usize)> {
        self.0.decode_in_place(input)
    }

    /// The fast path alone on one line: `None` where it defers to the general path.
    pub fn decode_fast(&mut self, line: &[u8]) -> Option<ConnectionRecord> {
        self.0.decode_fast(line, false).map(|(rec, _)| rec)
    }
}

/// The general path alone: serde_json into the input structs (the fast path's oracle).
pub fn decode_general(line: &str) -> Result<Option<ConnectionRecord>, RecordError> {
    crate::record::decode_general(line)
}

/// A syslog framer as the output hub builds one.
pub struct SyslogFramer(Framer);

impl SyslogFramer {
    pub fn new(
        format: SyslogFormat,
        local: bool,
        facility: Facility,
        hostname: &str,
        app_name: &str,
        sd_id: &str,
        max_message: usize,
    ) -> Self {
        SyslogFramer(Framer::new(
            format,
            local,
            facility,
            hostname,
            app_name,
            sd_id,
            max_message,
        ))
    }

    /// Appends the message for `rec` to `out`; true when the JSON was shortened to fit.
    pub fn frame(&self, rec: &OutputRecord, out: &mut Vec<u8>) -> bool {
        self.0.frame(rec, out).truncated
    }
}

/// `fit::fit_json`: `json` (valid JSON) shortened to `budget` bytes.
pub fn fit_json(json: &str, budget: usize) -> String {
    fit::fit_json(json, budget)
}

/// A DNS query record carrying `q` written as its JSON line and read back (the general
/// path): it must be one line and equal to what was written.
pub fn dns_record_round_trip(q: &crate::record::DnsQuery) {
    use std::sync::Arc;
    let rec = ConnectionRecord {
        timestamp: crate::record::Timestamp(1_800_000_000_000_000_000),
        host_name: "fuzz".into(),
        process: Arc::new(crate::record::ProcessInfo::default()),
        source: None,
        destination: crate::record::Endpoint {
            ip: std::net::IpAddr::from([192, 0, 2, 53]),
            port: 53,
        },
        transport: crate::record::Transport::Udp,
        partial: false,
        suppressed: 0,
        probe: None,
        dns_resolver: false,
        domain: None,
        domain_source: None,
        dns: Some(Arc::new(q.clone())),
        connection_id: None,
        life: None,
    };
    let line = rec.to_json_line();
    assert_eq!(line.matches('\n').count(), 1, "one line: {line}");
    let back = ConnectionRecord::from_json_line(line.trim_end())
        .expect("a written record reads back")
        .expect("an event");
    assert_eq!(back, rec, "{line}");
}

/// RELP: parses `server` frame after frame as the session's reader does, until it needs
/// more or refuses; every frame must lie inside what was given.
pub fn relp_parse_all(server: &[u8]) {
    use crate::output::syslog::relp::{MAX_RESPONSE, parse_frame};
    let mut rest = server;
    while let Ok(Some((frame, used))) = parse_frame(rest) {
        assert!(
            used > 0 && used <= rest.len(),
            "used {used} of {}",
            rest.len()
        );
        assert!(frame.data.len() <= MAX_RESPONSE);
        assert!(!frame.command.is_empty() && frame.command.len() <= 32);
        rest = &rest[used..];
    }
}

/// RELP: a session (open, then a batch of `msgs` messages) against a server that sends
/// `server` and hangs up. Returns how many messages counted as acknowledged; never more
/// than the batch or than the `rsp 200` answers the server sent.
pub fn relp_session(server: &[u8], msgs: usize) -> usize {
    use crate::output::syslog::relp::Session;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt as _;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let server = server.to_vec();
    rt.block_on(async move {
        let (client, mut srv) = tokio::io::duplex(1 << 20);
        let answers = server.clone();
        let feeder = tokio::spawn(async move {
            let _ = srv.write_all(&answers).await;
            // Read what the client writes until it is done, so it never blocks on a
            // full pipe, then hang up.
            let _ = srv.shutdown().await;
            let mut sink = tokio::io::sink();
            let _ = tokio::io::copy(&mut srv, &mut sink).await;
        });
        // Long timeouts: the end of the server's stream, not a timer, ends every session.
        let long = Duration::from_secs(60);
        let Ok(mut s) = Session::open(Box::new(client), long, long).await else {
            feeder.abort();
            return 0;
        };
        let batch: Vec<Vec<u8>> = (0..msgs)
            .map(|i| format!("<14>1 - - - - - - {i}").into_bytes())
            .collect();
        let sent = s.send_batch(&batch, &mut Vec::new()).await;
        drop(s);
        let _ = feeder.await;
        // Every acknowledgement is an `rsp` whose DATA (after a SP) starts with `200`.
        let oks = server.windows(4).filter(|w| *w == b" 200").count();
        assert!(sent.count <= msgs, "{} of {msgs}", sent.count);
        assert!(
            sent.count <= oks,
            "{} acknowledged with {oks} answers",
            sent.count
        );
        assert!(
            sent.count == msgs || sent.error.is_some(),
            "a short batch says why"
        );
        sent.count
    })
}
