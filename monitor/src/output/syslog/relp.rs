//! RELP, the Reliable Event Logging Protocol (rsyslog's `imrelp`/`omrelp`, librelp), client
//! side: a session that acknowledges every message.
//!
//! A frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF`: TXNR 1..=999,999,999 (0 for the
//! server's `serverclose` hint), COMMAND 1..32 letters, DATALEN the bytes of DATA (0: no SP,
//! no DATA). A session opens with `open` offering `relp_version=0` and `commands=syslog`;
//! each message is a `syslog` command with the next TXNR; the server answers each command
//! with `rsp` and the same TXNR, DATA `200 OK` (or `500 reason`). Up to [`WINDOW`] messages
//! are unacknowledged at once. `close` ends a session; the server may say `serverclose`
//! before it drops one.
//!
//! What the server sends is not trusted: numbers have at most 9 digits, a response is at
//! most [`MAX_RESPONSE`] bytes, an answer to a TXNR that is not outstanding or a frame that
//! breaks the grammar ends the session (its unacknowledged messages are sent again on the
//! next one), and every wait has a timeout.
//!
//! Exactly once: a message counts as delivered only when its `rsp 200` came back. A session
//! that breaks before that (the collector crashed, the network dropped) resends it on the
//! next session, so nothing is lost. The one window for a duplicate is a collector that
//! wrote the message and died (or lost the connection) before its `rsp` reached us; the
//! resent copy carries the same `event.id`, so the SIEM can drop it.

use std::io;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::transport::Sent;

/// Unacknowledged messages at most (librelp's default window).
pub(crate) const WINDOW: usize = 128;
/// Largest response DATA accepted. Real answers are `200 OK` plus, for `open`, a few offers.
pub(crate) const MAX_RESPONSE: usize = 64 * 1024;
/// Largest TXNR; the next one after it is 1.
const MAX_TXNR: u32 = 999_999_999;
/// How long a session waits for the server's answer to a command before it gives up on the
/// session (the messages are sent again on the next one).
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A frame from the server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    pub txnr: u32,
    pub command: &'a [u8],
    pub data: &'a [u8],
}

#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum RelpError {
    #[error("the RELP server sent a malformed frame: {0}")]
    Malformed(&'static str),
    #[error("the RELP server sent a {0}-byte frame, more than the {MAX_RESPONSE} allowed")]
    TooLarge(u64),
    #[error("the RELP server answered transaction {0}, which is not outstanding")]
    UnknownTxnr(u32),
    #[error("the RELP server sent the unexpected command `{0}`")]
    UnexpectedCommand(String),
    #[error("the RELP server refused the session: {0}")]
    OpenRefused(String),
    #[error("the RELP server refused a message: {0}")]
    Refused(String),
    #[error("the RELP server closed the session (serverclose)")]
    ServerClose,
    #[error("the RELP server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the RELP server closed the connection")]
    Eof,
}

impl From<RelpError> for io::Error {
    fn from(e: RelpError) -> io::Error {
        let kind = match e {
            RelpError::Timeout(_) => io::ErrorKind::TimedOut,
            RelpError::Eof | RelpError::ServerClose => io::ErrorKind::ConnectionReset,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

/// Parses one frame at the start of `buf`: `Ok(None)` when more bytes are needed, else the
/// frame and the bytes it took. Never reads past `buf` and never allocates.
pub(crate) fn parse_frame(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, RelpError> {
    let mut pos = 0;
    let Some(txnr) = number(buf, &mut pos, "TXNR")? else {
        return Ok(None);
    };
    let Some(command) = word(buf, &mut pos)? else {
        return Ok(None);
    };
    let Some(len) = number(buf, &mut pos, "DATALEN")? else {
        return Ok(None);
    };
    // `number` stopped at the byte after the digits: SP before DATA, or LF when empty.
    let data_start = pos;
    if len as usize > MAX_RESPONSE {
        return Err(RelpError::TooLarge(len));
    }
    let len = len as usize;
    let data = if len == 0 {
        match buf.get(pos - 1) {
            Some(b'\n') => &buf[data_start..data_start],
            // `0 ` followed by the trailer is what some servers write for empty DATA.
            Some(b' ') => match buf.get(pos) {
                None => return Ok(None),
                Some(b'\n') => {
                    pos += 1;
                    &buf[data_start..data_start]
                }
                Some(_) => return Err(RelpError::Malformed("DATALEN 0 with data")),
            },
            _ => return Err(RelpError::Malformed("DATALEN not ended")),
        }
    } else {
        if buf[pos - 1] != b' ' {
            return Err(RelpError::Malformed("no SP before DATA"));
        }
        if buf.len() < data_start + len + 1 {
            return Ok(None);
        }
        pos = data_start + len;
        if buf[pos] != b'\n' {
            return Err(RelpError::Malformed("DATA not followed by LF"));
        }
        pos += 1;
        &buf[data_start..data_start + len]
    };
    if txnr > MAX_TXNR as u64 {
        return Err(RelpError::Malformed("TXNR out of range"));
    }
    Ok(Some((
        Frame {
            txnr: txnr as u32,
            command,
            data,
        },
        pos,
    )))
}

/// Digits up to 9, then SP or LF (consumed). `Ok(None)`: incomplete.
fn number(buf: &[u8], pos: &mut usize, what: &'static str) -> Result<Option<u64>, RelpError> {
    let start = *pos;
    let mut n: u64 = 0;
    loop {
        let Some(&b) = buf.get(*pos) else {
            return Ok(None);
        };
        *pos += 1;
        match b {
            b'0'..=b'9' => {
                if *pos - start > 9 {
                    return Err(RelpError::Malformed(match what {
                        "TXNR" => "TXNR longer than 9 digits",
                        _ => "DATALEN longer than 9 digits",
                    }));
                }
                n = n * 10 + u64::from(b - b'0');
            }
            b' ' | b'\n' if *pos - start > 1 => {
                if b == b'\n' && what == "TXNR" {
                    return Err(RelpError::Malformed("frame ends after TXNR"));
                }
                return Ok(Some(n));
            }
            _ => {
                return Err(RelpError::Malformed(match what {
                    "TXNR" => "TXNR is not a number",
                    _ => "DATALEN is not a number",
                }));
            }
        }
    }
}

/// 1..32 ASCII letters, then SP (consumed).
fn word<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, RelpError> {
    let start = *pos;
    loop {
        let Some(&b) = buf.get(*pos) else {
            return Ok(None);
        };
        match b {
            b'a'..=b'z' | b'A'..=b'Z' if *pos - start < 32 => *pos += 1,
            b' ' if *pos > start => {
                *pos += 1;
                return Ok(Some(&buf[start..*pos - 1]));
            }
            _ => return Err(RelpError::Malformed("COMMAND is not 1..32 letters")),
        }
    }
}

/// Appends the frame `TXNR COMMAND LEN[ DATA]\n` to `out`.
pub(crate) fn write_frame(out: &mut Vec<u8>, txnr: u32, command: &str, data: &[u8]) {
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(num.format(txnr).as_bytes());
    out.push(b' ');
    out.extend_from_slice(command.as_bytes());
    out.push(b' ');
    out.extend_from_slice(num.format(data.len()).as_bytes());
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
}

/// The status of an `rsp`: Ok for `200`, else the server's text (escaped for the log).
fn rsp_status(data: &[u8]) -> Result<(), String> {
    let first_line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    if first_line.starts_with(b"200") && matches!(first_line.get(3), None | Some(b' ')) {
        Ok(())
    } else {
        let shown = &first_line[..first_line.len().min(200)];
        Err(String::from_utf8_lossy(shown).escape_debug().to_string())
    }
}

/// A byte stream a RELP session runs over: plain TCP or TLS.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One open RELP session.
pub(crate) struct Session {
    stream: Box<dyn Stream>,
    /// Bytes read and not parsed yet.
    rx: Vec<u8>,
    /// The TXNR of the last command sent.
    txnr: u32,
    answer_timeout: Duration,
}

fn next_txnr(t: u32) -> u32 {
    if t >= MAX_TXNR { 1 } else { t + 1 }
}

impl Session {
    /// Opens a session on `stream`: `open` with our offers, and the server's `rsp 200`
    /// within `open_timeout`, which must accept the `syslog` command. Later commands wait
    /// up to `answer_timeout` for their answers.
    pub async fn open(
        stream: Box<dyn Stream>,
        open_timeout: Duration,
        answer_timeout: Duration,
    ) -> io::Result<Session> {
        let mut s = Session {
            stream,
            rx: Vec::with_capacity(4096),
            txnr: 0,
            answer_timeout: open_timeout,
        };
        let offers = concat!(
            "relp_version=0\nrelp_software=monitor,",
            env!("CARGO_PKG_VERSION"),
            "\ncommands=syslog"
        );
        let mut frame = Vec::new();
        s.txnr = 1;
        write_frame(&mut frame, 1, "open", offers.as_bytes());
        s.stream.write_all(&frame).await?;
        let (txnr, data) = s.answer().await?;
        if txnr != 1 {
            return Err(RelpError::UnknownTxnr(txnr).into());
        }
        if let Err(why) = rsp_status(&data) {
            return Err(RelpError::OpenRefused(why).into());
        }
        let accepts_syslog = data.split(|&b| b == b'\n').any(|offer| {
            offer
                .strip_prefix(b"commands=")
                .is_some_and(|c| c.split(|&b| b == b',').any(|c| c == b"syslog"))
        });
        if !accepts_syslog {
            return Err(RelpError::OpenRefused(
                "the server does not offer the `syslog` command".into(),
            )
            .into());
        }
        s.answer_timeout = answer_timeout;
        Ok(s)
    }

    /// Reads the next `rsp` (its TXNR and DATA). `serverclose` and other commands are errors.
    async fn answer(&mut self) -> Result<(u32, Vec<u8>), RelpError> {
        loop {
            if let Some((frame, used)) = parse_frame(&self.rx)? {
                let out = match frame.command {
                    b"rsp" => Ok((frame.txnr, frame.data.to_vec())),
                    b"serverclose" => Err(RelpError::ServerClose),
                    other => Err(RelpError::UnexpectedCommand(
                        String::from_utf8_lossy(other).into_owned(),
                    )),
                };
                self.rx.drain(..used);
                return out;
            }
            let mut chunk = [0u8; 4096];
            let n = match tokio::time::timeout(self.answer_timeout, self.stream.read(&mut chunk))
                .await
            {
                Err(_) => return Err(RelpError::Timeout(self.answer_timeout)),
                Ok(Err(_)) | Ok(Ok(0)) => return Err(RelpError::Eof),
                Ok(Ok(n)) => n,
            };
            self.rx.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends `msgs` as `syslog` commands, at most [`WINDOW`] unacknowledged, and reports
    /// how many from the start were acknowledged (`Sent::count`). On an error the session
    /// is unusable; the caller drops it and resends from `count` on a new one.
    pub async fn send_batch(&mut self, msgs: &[Vec<u8>], scratch: &mut Vec<u8>) -> Sent {
        let mut sent = Sent::default();
        if let Err(e) = self.send_windowed(msgs, scratch, &mut sent.count).await {
            sent.error = Some(e);
        }
        sent
    }

    async fn send_windowed(
        &mut self,
        msgs: &[Vec<u8>],
        scratch: &mut Vec<u8>,
        prefix: &mut usize,
    ) -> io::Result<()> {
        // (txnr, index) of the commands not answered yet, oldest first; `acked` marks
        // answers that came out of order until the prefix before them is complete.
        let mut outstanding: std::collections::VecDeque<(u32, usize)> =
            std::collections::VecDeque::with_capacity(WINDOW);
        let mut acked = vec![false; msgs.len()];
        let mut next = 0;
        while *prefix < msgs.len() {
            scratch.clear();
            while next < msgs.len() && outstanding.len() < WINDOW {
                self.txnr = next_txnr(self.txnr);
                write_frame(scratch, self.txnr, "syslog", &msgs[next]);
                outstanding.push_back((self.txnr, next));
                next += 1;
            }
            if !scratch.is_empty() {
                self.stream.write_all(scratch).await?;
            }
            let (txnr, data) = self.answer().await?;
            let Some(at) = outstanding.iter().position(|&(t, _)| t == txnr) else {
                return Err(RelpError::UnknownTxnr(txnr).into());
            };
            let (_, index) = outstanding.remove(at).expect("position found it");
            if let Err(why) = rsp_status(&data) {
                return Err(RelpError::Refused(why).into());
            }
            acked[index] = true;
            while *prefix < msgs.len() && acked[*prefix] {
                *prefix += 1;
            }
        }
        Ok(())
    }

    /// Ends the session: `close`, and the server's answer (best effort, bounded by the
    /// answer timeout).
    pub async fn close(&mut self) -> io::Result<()> {
        self.txnr = next_txnr(self.txnr);
        let mut frame = Vec::new();
        write_frame(&mut frame, self.txnr, "close", b"");
        self.stream.write_all(&frame).await?;
        let (txnr, _) = self.answer().await?;
        if txnr != self.txnr {
            return Err(RelpError::UnknownTxnr(txnr).into());
        }
        let _ = self.stream.shutdown().await;
        Ok(())
    }

    /// Whether the server has said something while no command was outstanding: only
    /// `serverclose` (or garbage, or the end of the connection) can come then, so the
    /// session is not used for another batch.
    pub fn has_unsolicited(&mut self) -> bool {
        if !self.rx.is_empty() {
            return true;
        }
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut byte = [0u8; 1];
        let mut buf = tokio::io::ReadBuf::new(&mut byte);
        match std::pin::Pin::new(&mut self.stream).poll_read(&mut cx, &mut buf) {
            std::task::Poll::Pending => false,
            std::task::Poll::Ready(Ok(())) if buf.filled().is_empty() => true,
            std::task::Poll::Ready(Ok(())) => {
                self.rx.extend_from_slice(buf.filled());
                true
            }
            std::task::Poll::Ready(Err(_)) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> Result<Option<(Frame<'_>, usize)>, RelpError> {
        parse_frame(s)
    }

    #[test]
    fn parses_answers_and_needs_more_for_partial_frames() {
        let (f, n) = parse(b"2 rsp 6 200 OK\n3 rsp").unwrap().unwrap();
        assert_eq!(
            (f.txnr, f.command, f.data, n),
            (2, &b"rsp"[..], &b"200 OK"[..], 15)
        );
        let (f, n) = parse(b"0 serverclose 0\n").unwrap().unwrap();
        assert_eq!(
            (f.txnr, f.command, f.data, n),
            (0, &b"serverclose"[..], &b""[..], 16)
        );
        // librelp writes `N rsp 0 \n`? Accept the SP form as well as the bare one.
        let (f, n) = parse(b"5 rsp 0 \n").unwrap().unwrap();
        assert_eq!((f.txnr, f.data, n), (5, &b""[..], 9));
        let whole = b"1 rsp 93 200 OK\nrelp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog\n";
        let (f, n) = parse(whole).unwrap().unwrap();
        assert_eq!((f.txnr, n), (1, whole.len()));
        for cut in 0..whole.len() {
            assert_eq!(parse(&whole[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn hostile_frames_are_errors_not_hangs_or_panics() {
        for (bad, want) in [
            (&b"x rsp 6 200 OK\n"[..], "TXNR is not a number"),
            (b"1234567890 rsp 0\n", "longer than 9"),
            (b"1 rsp 999999999 ", "more than"),
            (b"1 rsp 65537 ", "more than"),
            (b"1 rsp 12345678901 ", "longer than 9"),
            (b"1 r$p 0\n", "COMMAND"),
            (b"1 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 0\n", "COMMAND"),
            (b"1  rsp 0\n", "COMMAND"),
            (b"1 rsp 2 OKX\n", "DATA not followed by LF"),
            (b"1 rsp 0 x\n", "DATALEN 0 with data"),
            (b"1 rsp -1\n", "DATALEN is not a number"),
            (b"\n", "TXNR is not a number"),
            (b"1\n", "frame ends after TXNR"),
            (b"1 rsp \n", "DATALEN is not a number"),
        ] {
            let e = parse(bad).expect_err(&String::from_utf8_lossy(bad));
            assert!(
                e.to_string().contains(want),
                "{:?}: {e}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn frames_are_written_as_librelp_reads_them() {
        let mut out = Vec::new();
        write_frame(&mut out, 7, "syslog", b"<85>1 - - - - - - {}");
        write_frame(&mut out, 8, "close", b"");
        assert_eq!(out, b"7 syslog 20 <85>1 - - - - - - {}\n8 close 0\n");
        assert_eq!(next_txnr(MAX_TXNR), 1);
        assert_eq!(rsp_status(b"200 OK"), Ok(()));
        assert!(
            rsp_status(b"500 error\nmore")
                .unwrap_err()
                .contains("500 error")
        );
        assert!(rsp_status(b"2000").is_err());
    }

    /// A scripted server on one side of a duplex pipe.
    async fn session_with(
        script: impl FnOnce(tokio::io::DuplexStream) -> tokio::task::JoinHandle<()>,
    ) -> io::Result<Session> {
        let (client, server) = tokio::io::duplex(1 << 20);
        let _task = script(server);
        Session::open(
            Box::new(client),
            Duration::from_millis(500),
            Duration::from_millis(500),
        )
        .await
    }

    async fn read_frames(s: &mut tokio::io::DuplexStream, buf: &mut Vec<u8>) -> Vec<(u32, String)> {
        let mut chunk = [0u8; 65536];
        let n = s.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let mut out = Vec::new();
        while let Some((f, used)) = parse_frame(buf).unwrap() {
            out.push((f.txnr, String::from_utf8_lossy(f.command).into_owned()));
            buf.drain(..used);
        }
        out
    }

    const OPEN_OK: &[u8] = b"1 rsp 37 200 OK\nrelp_version=0\ncommands=syslog\n";

    #[tokio::test]
    async fn acks_in_any_order_count_only_the_acknowledged_prefix() {
        let mut sess = session_with(|mut srv| {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                read_frames(&mut srv, &mut buf).await;
                srv.write_all(OPEN_OK).await.unwrap();
                let mut got = Vec::new();
                while got.len() < 4 {
                    got.extend(read_frames(&mut srv, &mut buf).await);
                }
                // 3 and 2 acknowledged (out of order), 4 refused: 2 and 3 count.
                srv.write_all(b"3 rsp 6 200 OK\n2 rsp 6 200 OK\n4 rsp 8 500 full\n")
                    .await
                    .unwrap();
                std::future::pending::<()>().await;
            })
        })
        .await
        .unwrap();
        let msgs = vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()];
        let sent = sess.send_batch(&msgs, &mut Vec::new()).await;
        assert_eq!(sent.count, 2);
        assert!(sent.error.unwrap().to_string().contains("500 full"));
    }

    #[tokio::test]
    async fn unknown_txnr_serverclose_silence_and_eof_end_the_session() {
        for (answer, want) in [
            (&b"99 rsp 6 200 OK\n"[..], "not outstanding"),
            (b"0 serverclose 0\n", "serverclose"),
            (b"2 syslog 1 x\n", "unexpected command"),
            (b"2 rsp 99999999 ", "more than"),
            (b"", "did not answer"),
        ] {
            let answer = answer.to_vec();
            let mut sess = session_with(move |mut srv| {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    read_frames(&mut srv, &mut buf).await;
                    srv.write_all(OPEN_OK).await.unwrap();
                    read_frames(&mut srv, &mut buf).await;
                    srv.write_all(&answer).await.unwrap();
                    std::future::pending::<()>().await;
                })
            })
            .await
            .unwrap();
            let sent = sess.send_batch(&[b"m".to_vec()], &mut Vec::new()).await;
            assert_eq!(sent.count, 0);
            let e = sent.error.expect("an error").to_string();
            assert!(e.contains(want), "{e}");
        }
        // The server hangs up mid-batch.
        let mut sess = session_with(|mut srv| {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                read_frames(&mut srv, &mut buf).await;
                srv.write_all(OPEN_OK).await.unwrap();
                read_frames(&mut srv, &mut buf).await;
                srv.write_all(b"2 rsp 6 200 OK\n").await.unwrap();
            })
        })
        .await
        .unwrap();
        let sent = sess
            .send_batch(&[b"m".to_vec(), b"n".to_vec()], &mut Vec::new())
            .await;
        assert_eq!(sent.count, 1);
        assert!(sent.error.unwrap().to_string().contains("closed"));
    }

    #[tokio::test]
    async fn open_refused_or_without_syslog_is_an_error() {
        for (answer, want) in [
            (&b"1 rsp 11 500 go away\n"[..], "500 go away"),
            (
                b"1 rsp 34 200 OK\nrelp_version=0\ncommands=foo\n",
                "does not offer",
            ),
        ] {
            let answer = answer.to_vec();
            let e = session_with(move |mut srv| {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    read_frames(&mut srv, &mut buf).await;
                    srv.write_all(&answer).await.unwrap();
                    std::future::pending::<()>().await;
                })
            })
            .await
            .err()
            .expect("refused");
            assert!(e.to_string().contains(want), "{e}");
        }
    }

    #[tokio::test]
    async fn more_than_a_window_is_paced_by_the_acks() {
        let n = WINDOW * 3 + 5;
        let mut sess = session_with(move |mut srv| {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                read_frames(&mut srv, &mut buf).await;
                srv.write_all(OPEN_OK).await.unwrap();
                let mut max_unacked = 0;
                let mut seen = 0;
                while seen < n {
                    let frames = read_frames(&mut srv, &mut buf).await;
                    seen += frames.len();
                    max_unacked = max_unacked.max(frames.len());
                    for (t, cmd) in frames {
                        assert_eq!(cmd, "syslog");
                        let mut out = Vec::new();
                        write_frame(&mut out, t, "rsp", b"200 OK");
                        srv.write_all(&out).await.unwrap();
                    }
                }
                assert!(max_unacked <= WINDOW);
                std::future::pending::<()>().await;
            })
        })
        .await
        .unwrap();
        let msgs: Vec<Vec<u8>> = (0..n).map(|i| i.to_string().into_bytes()).collect();
        let sent = sess.send_batch(&msgs, &mut Vec::new()).await;
        assert!(sent.error.is_none(), "{:?}", sent.error);
        assert_eq!(sent.count, n);
    }
}
